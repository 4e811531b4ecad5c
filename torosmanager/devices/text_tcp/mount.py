"""A mount computer speaking the plain-text TCP protocol, as a :class:`~torosmanager.devices.Mount`.

Commands used (``docs/devices/text-tcp.md`` defines them):

=========================  ====================================================================
``get all``                ``ra``, ``dec`` (apparent), ``alt``, ``az``, ``slewing``, ``parked``,
                           ``tracking``, then ``.EOF``: one query for the whole state
``set ra HH:MM:SS.SS``     the target's apparent right ascension
``set dec sDD:MM:SS.S``    the target's apparent declination
``slew``                   go to the target, then track it
``stop``                   stop a slew (or a park) where it is
``track on|off``           sidereal tracking
``park`` / ``unpark``      go to the park position (tracking off) / leave it
=========================  ====================================================================

Each command costs at least ``Command Interval`` (1 s by default): a slew is three commands, and
a state read within an interval of the previous one is answered from that one.
"""

import logging
import threading

from astropy.time import Time

from ...earth_rotation import use_astropy_offline
from ...sexagesimal import format_dec, format_ra, parse_sexagesimal
from ..base import DeviceError, wait_for
from ..mount import Mount, MountState
from .connection import TextTcpConnection
from ..coordinates import (apparent_to_icrs, below_horizon, horizontal, icrs_to_apparent,
                           site_location)

logger = logging.getLogger(__name__)

#: The query answering the whole state, and the tags read from its answer.
STATE_QUERY = "get all"
RA_TAG, DEC_TAG, ALTITUDE_TAG, AZIMUTH_TAG = "ra", "dec", "alt", "az"
SLEWING_TAG, PARKED_TAG, TRACKING_TAG = "slewing", "parked", "tracking"
#: How the mount computer writes a yes/no value.
FLAGS = {"0": False, "1": True}

#: How health reports name the coordinates the mount computer uses.
COORDINATES = "apparent (JNow: true equator and equinox of date)"


class TextTcpMount(Mount):
    """A mount computer on TCP (port 5240 by default) speaking plain text.

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Timeout`` (seconds per request), ``Command Interval`` (least
        seconds between two commands).
    site : dict
        ``Name``, ``Latitude``, ``Longitude`` (degrees east), ``Elevation`` (metres).
    """

    def __init__(self, device_settings, site):
        super().__init__()
        use_astropy_offline()
        self.connection = TextTcpConnection(self.kind, device_settings)
        self.site = site
        self.location = site_location(site)
        # The state made from the latest answer: answers repeated from the connection's cache
        # are not converted again (a few milliseconds of astropy each).
        self._converted = (None, None)
        self._conversion_lock = threading.Lock()

    def connect(self):
        self.connection.connect()
        try:
            # Whether it really is a mount computer answering.
            self.state()
        except DeviceError:
            self.connection.disconnect()
            raise

    def disconnect(self):
        self.connection.disconnect()

    def describe(self):
        report = self.connection.describe()
        report["Coordinates"] = COORDINATES
        if not report["Connected"]:
            return report
        try:
            answer = self._answer("reading the state")
            report.update(Parked=self._flag(answer, PARKED_TAG),
                          Slewing=self._flag(answer, SLEWING_TAG),
                          Tracking=self._flag(answer, TRACKING_TAG))
        except DeviceError as error:
            report["Connected"] = False
            report["Error"] = str(error)
        return report

    def state(self):
        answer = self._answer("reading the state")
        # Converted under the lock: threads asking together for the same new answer wait for
        # one conversion rather than each doing it (on a busy computer, side by side).
        with self._conversion_lock:
            source, state = self._converted
            if source is not answer:
                state = self._convert(answer)
                self._converted = (answer, state)
        return MountState(**state.__dict__)

    def _convert(self, answer):
        """The :class:`MountState` of the mount computer's *answer* (apparent place → ICRS)."""
        now = Time.now()
        ra_hours = self._angle(answer, RA_TAG)
        apparent_dec = self._angle(answer, DEC_TAG)
        ra, dec = apparent_to_icrs(ra_hours, apparent_dec, self.location, now)
        if ALTITUDE_TAG in answer and AZIMUTH_TAG in answer:
            altitude, azimuth = self._number(answer, ALTITUDE_TAG), self._number(answer,
                                                                                 AZIMUTH_TAG)
        else:
            altitude, azimuth = horizontal(ra, dec, self.location, now)
        return MountState(ra=ra, dec=dec, altitude=altitude, azimuth=azimuth,
                          slewing=self._flag(answer, SLEWING_TAG),
                          parked=self._flag(answer, PARKED_TAG),
                          tracking=self._flag(answer, TRACKING_TAG))

    def unpark(self):
        if not self._flag(self._answer("unparking"), PARKED_TAG):
            return
        self.connection.command("unpark")
        # Confirm it, polling at the rate the mount computer allows, within one timeout (plus
        # the interval the first poll waits for its turn).
        wait_for(lambda: not self._flag(self._answer("unparking"), PARKED_TAG),
                 self.connection.timeout + self.connection.interval,
                 f"{self.connection.label} to report it is unparked", self.connection.interval)

    def start_slew(self, ra, dec):
        connection = self.connection
        operation = f"slewing to ICRS RA {ra:.5f}° Dec {dec:+.5f}°"
        if self._flag(self._answer(operation), PARKED_TAG):
            raise connection.error(operation, "the mount is parked (unpark it first)")
        now = Time.now()
        refusal = below_horizon(ra, dec, self.location, now, self.site["Name"])
        if refusal:
            raise connection.error(operation, refusal)
        ra_hours, apparent_dec = icrs_to_apparent(ra, dec, self.location, now)
        logger.info("%s: slewing to ICRS %.5f %+.5f = apparent RA %s Dec %s", connection.label,
                    ra, dec, format_ra(ra_hours), format_dec(apparent_dec))
        connection.command(f"set ra {format_ra(ra_hours)}")
        connection.command(f"set dec {format_dec(apparent_dec)}")
        connection.command("slew")

    def start_park(self):
        if self._flag(self._answer("parking"), PARKED_TAG):
            return
        self.connection.command("park")

    def abort(self):
        self.connection.command("stop")

    def set_tracking(self, enabled):
        self.connection.command(f"track {'on' if enabled else 'off'}")

    def _answer(self, operation):
        """The answer to the state query (at most ``Command Interval`` old)."""
        if not self.connection.connected:
            raise self.connection.error(operation, "not connected (connect() first)")
        return self.connection.query(STATE_QUERY)

    def _value(self, answer, tag):
        if tag not in answer:
            raise self.connection.error(
                repr(STATE_QUERY), f"the answer has no {tag!r} (tags: {sorted(answer)})")
        return answer[tag]

    def _flag(self, answer, tag):
        value = self._value(answer, tag)
        if value not in FLAGS:
            raise self.connection.error(repr(STATE_QUERY), f"{tag} is {value!r}, not 0 or 1")
        return FLAGS[value]

    def _angle(self, answer, tag):
        value = self._value(answer, tag)
        try:
            return parse_sexagesimal(value)
        except ValueError as error:
            raise self.connection.error(repr(STATE_QUERY), f"{tag} is {value!r}, not an "
                                                           f"angle") from error

    def _number(self, answer, tag):
        value = self._value(answer, tag)
        try:
            return float(value)
        except ValueError as error:
            raise self.connection.error(repr(STATE_QUERY), f"{tag} is {value!r}, not a "
                                                           f"number") from error
