"""An LX200 mount as a :class:`~torosmanager.devices.Mount`.

The mount's coordinates are JNow (see :mod:`torosmanager.devices.coordinates`); they are read
with ``:GR#`` / ``:GD#`` in whichever precision the mount answers, set with ``:Sr`` / ``:Sd``
in the precision it last answered in, and the slew started with ``:MS#``. At connect the driver
asks for high precision (``:U#`` toggles it, so it is sent only when the mount answers in low
precision).
What the dialects do differently (status, park, unpark, tracking) is in :mod:`.dialects`.

Conversions and the horizon check are made at the daemons' clock's time: an LX200 mount keeps
the time it was set to (the driver does not set it), and the daemons plan the night by their
clock, so on a simulated clock the driver points where the simulated sky is. On a real clock
that is the real UTC time.
"""

import logging

from astropy.time import Time

from ...clock import Clock
from ...earth_rotation import use_astropy_offline
from ..base import DeviceError, wait_for
from ..mount import Mount, MountState
from .connection import DRIVER, Lx200Connection
from ..coordinates import (apparent_to_icrs, below_horizon, horizontal, icrs_to_apparent,
                           site_location)
from .dialects import DIALECTS
from .protocol import (BOOLEAN, NO_REPLY, SLEW_STARTED, TERMINATED, Precision, ProtocolError,
                       format_dec, format_ra, parse_boolean, parse_dec, parse_ra,
                       set_dec_command, set_ra_command, slew_refusal)

logger = logging.getLogger(__name__)

#: Seconds between polls of the status after an unpark.
UNPARK_POLL_INTERVAL = 0.2


class Lx200Mount(Mount):
    """A mount that speaks LX200 over a serial line or TCP.

    Parameters
    ----------
    device_settings : dict
        ``URL`` (``/dev/ttyUSB0`` or ``socket://HOST:PORT``), ``Baud Rate``, ``Dialect``
        (meade, onstep, 10micron), ``Timeout`` (seconds per request).
    site : dict
        ``Name``, ``Latitude``, ``Longitude`` (degrees east), ``Elevation`` (metres).
    clock : Clock, optional
        The daemons' clock, whose time the coordinates are converted at; real UTC by default.
    """

    def __init__(self, device_settings, site, clock=None):
        super().__init__()
        self.clock = Clock() if clock is None else clock
        use_astropy_offline()
        self.connection = Lx200Connection(self.kind, device_settings)
        dialect = DIALECTS.get(self.connection.dialect)
        if dialect is None:
            raise ValueError(f"no LX200 dialect {self.connection.dialect!r}; "
                             f"known: {', '.join(DIALECTS)}")
        self.dialect = dialect(self.connection)
        self.site = site
        self.location = site_location(site)
        #: The precision the mount last answered in; targets are sent in it.
        self.precision = None

    def connect(self):
        connection = self.connection
        connection.open()
        try:
            self._high_precision()
            self._read_dec()
            self.dialect.on_connect()
        except DeviceError:
            connection.close()
            raise
        logger.info("%s: connected, %s precision", connection.label, self.precision.value)

    def _high_precision(self):
        """Ask for high precision if the mount answers in low (``:U#`` toggles it); learn the
        precision it answers in. Done at connect and before each slew: a mount switched off
        and on (its port reopened) is back in low precision."""
        connection = self.connection
        self.precision = self._read_ra()[1]
        if self.precision is Precision.LOW:
            connection.request(":U#", NO_REPLY, "switching to high precision (:U#)")
            self.precision = self._read_ra()[1]
            if self.precision is Precision.LOW:
                logger.warning("%s stays in low precision after :U#; pointing is to 0.1 "
                               "minute of RA and 1' of Dec", connection.label)

    def disconnect(self):
        self.connection.close()

    def describe(self):
        connection = self.connection
        report = {"Driver": DRIVER, "Connected": connection.connected, "URL": connection.url,
                  "Dialect": connection.dialect}
        if not connection.connected:
            return report
        try:
            ra_hours, _ = self._read_ra()
            dec, _ = self._read_dec()
            status = self.dialect.status()
        except DeviceError as error:
            report["Connected"] = False
            report["Error"] = str(error)
            return report
        report.update({
            "Precision": self.precision.value,
            "RA (JNow)": format_ra(ra_hours, Precision.HIGH),
            "Dec (JNow)": format_dec(dec, Precision.HIGH),
            "Parked": status.parked, "Slewing": status.slewing, "Tracking": status.tracking,
        })
        return report

    def state(self):
        self.connection.require_connected("reading the state")
        ra_hours, _ = self._read_ra()
        mount_dec, _ = self._read_dec()
        status = self.dialect.status()
        now = Time(self.clock.now())
        ra, dec = apparent_to_icrs(ra_hours, mount_dec, self.location, now)
        altitude, azimuth = horizontal(ra, dec, self.location, now)
        return MountState(ra=ra, dec=dec, altitude=altitude, azimuth=azimuth,
                          slewing=status.slewing, parked=status.parked,
                          tracking=status.tracking, pier_side=self.dialect.pier_side())

    def unpark(self):
        connection = self.connection
        connection.require_connected("unparking")
        if not self.dialect.status().parked:
            return
        self.dialect.unpark()
        wait_for(lambda: not self.dialect.status().parked, connection.timeout,
                 f"{connection.label} to report it is unparked", UNPARK_POLL_INTERVAL)

    def start_slew(self, ra, dec):
        connection = self.connection
        operation = f"slewing to ICRS RA {ra:.5f}° Dec {dec:+.5f}°"
        connection.require_connected(operation)
        status = self.dialect.status()
        if status.parked:
            raise connection.error(operation, "the mount is parked (unpark it first)")
        now = Time(self.clock.now())
        refusal = below_horizon(ra, dec, self.location, now, self.site["Name"])
        if refusal:
            raise connection.error(operation, refusal)
        if not status.tracking:
            # OnStep refuses a goto in standby; every mount should track at the target.
            self.dialect.set_tracking(True)
        self._high_precision()
        ra_hours, mount_dec = icrs_to_apparent(ra, dec, self.location, now)
        precision = self.precision
        for command in (set_ra_command(ra_hours, precision),
                        set_dec_command(mount_dec, precision)):
            if not connection.ask(command, BOOLEAN, parse_boolean, operation):
                raise connection.error(operation, f"the mount refused {command!r} (answered 0)")
        logger.info("%s: slewing to ICRS %.5f %+.5f = JNow %s %s", connection.label, ra, dec,
                    format_ra(ra_hours, precision), format_dec(mount_dec, precision))
        code, message = connection.request(":MS#", self.dialect.slew_reply, operation)
        if code != SLEW_STARTED:
            try:
                cause = slew_refusal(code, message)
            except ProtocolError as error:
                raise connection.error(operation, f"unexpected answer to ':MS#': {error}") \
                    from error
            raise connection.error(operation, f"the mount refused: {cause}")

    def start_park(self):
        self.connection.require_connected("parking")
        if self.dialect.status().parked:
            return
        self.dialect.start_park()

    def abort(self):
        self.connection.require_connected("aborting the slew")
        self.connection.request(":Q#", NO_REPLY, "aborting the slew (:Q#)")

    def set_tracking(self, enabled):
        self.connection.require_connected(f"switching tracking {'on' if enabled else 'off'}")
        self.dialect.set_tracking(bool(enabled))

    def _read_ra(self):
        """``(hours, precision)`` from ``:GR#``; remembers the precision."""
        hours, precision = self.connection.ask(":GR#", TERMINATED, parse_ra,
                                               "reading the right ascension")
        self.precision = precision
        return hours, precision

    def _read_dec(self):
        return self.connection.ask(":GD#", TERMINATED, parse_dec, "reading the declination")
