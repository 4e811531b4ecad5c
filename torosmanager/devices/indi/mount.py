"""An INDI telescope as a :class:`~torosmanager.devices.Mount`.

INDI mounts take and report ``EQUATORIAL_EOD_COORD``: right ascension (hours) and declination
(degrees) of date (JNow), the apparent place, converted from and to TOROS's ICRS degrees by
:mod:`torosmanager.devices.coordinates`.

Properties used (standard names; ``Properties`` renames them): ``CONNECTION``,
``EQUATORIAL_EOD_COORD``, ``ON_COORD_SET`` (``TRACK``: track once there),
``TELESCOPE_ABORT_MOTION``, ``TELESCOPE_PARK``, ``TELESCOPE_TRACK_STATE``, and, when the device
defines them, ``HORIZONTAL_COORD`` (altitude and azimuth as the mount reports them) and
``GEOGRAPHIC_COORD`` (compared with the configured site at :meth:`IndiMount.connect`).

Times are real UTC, not the TOROS clock: the mount tracks the real sky even when the daemons run
on a simulated clock.
"""

import logging

from astropy.time import Time

from ...earth_rotation import use_astropy_offline
from ..base import DeviceError, DeviceFault
from ..coordinates import (apparent_to_icrs, below_horizon, differs_from_site, horizontal,
                           icrs_to_apparent, site_location)
from ..mount import LOOKING_EAST, LOOKING_WEST, Mount, MountState
from .connection import ALERT, BUSY, OK, ON, IndiConnection

logger = logging.getLogger(__name__)

#: Standard property and member names (INDI telescope standard properties).
EQUATORIAL = "EQUATORIAL_EOD_COORD"
HORIZONTAL = "HORIZONTAL_COORD"
ON_COORD_SET = "ON_COORD_SET"
ABORT_MOTION = "TELESCOPE_ABORT_MOTION"
PARK = "TELESCOPE_PARK"
TRACK_STATE = "TELESCOPE_TRACK_STATE"
GEOGRAPHIC = "GEOGRAPHIC_COORD"
PIER_SIDE = "TELESCOPE_PIER_SIDE"
#: ``TELESCOPE_PIER_SIDE``'s switches as :class:`~..mount.MountState` names them.
PIER_SIDES = {"PIER_WEST": LOOKING_EAST, "PIER_EAST": LOOKING_WEST}


class IndiMount(Mount):
    """An INDI telescope.

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Device``, ``Properties``, ``Timeout`` (seconds per request).
    site : dict
        ``Name``, ``Latitude``, ``Longitude`` (degrees east), ``Elevation`` (metres).
    """

    def __init__(self, device_settings, site):
        super().__init__()
        use_astropy_offline()
        self.connection = IndiConnection(self.kind, device_settings)
        self.site = site
        self.location = site_location(site)
        # Set while a slew TOROS started is under way: an Alert then means the slew failed.
        self._slewing_to = None

    def connect(self):
        self.connection.connect(required=(EQUATORIAL,))
        self._check_site()

    def disconnect(self):
        self.connection.disconnect()

    def describe(self):
        def fields():
            state = self.state()
            return {"Parked": state.parked, "Slewing": state.slewing,
                    "Tracking": state.tracking, "Equatorial System": "JNow (EQUATORIAL_EOD_COORD)"}
        return self.connection.describe(fields)

    def state(self):
        connection = self.connection
        operation = "reading the state"
        coordinates = connection.read(EQUATORIAL, operation)
        if coordinates.state == ALERT and self._slewing_to is not None:
            target, self._slewing_to = self._slewing_to, None
            why = f": {coordinates.message}" if coordinates.message else ""
            # The mount's own verdict: not asked again (see wait_for's error_grace).
            raise DeviceFault(str(connection.error(
                f"slewing to {target}", f"the mount reports {coordinates.name} Alert{why}")))
        slewing = coordinates.state == BUSY
        if not slewing:
            self._slewing_to = None
        now = Time.now()
        ra, dec = apparent_to_icrs(connection.value(coordinates, "RA", operation),
                                   connection.value(coordinates, "DEC", operation),
                                   self.location, now)
        reported = connection.optional(HORIZONTAL, operation)
        if reported is not None:
            altitude = connection.value(reported, "ALT", operation)
            azimuth = connection.value(reported, "AZ", operation)
        else:
            altitude, azimuth = horizontal(ra, dec, self.location, now)
        parked = self._parked()
        tracking = connection.optional(TRACK_STATE, operation)
        side = connection.optional(PIER_SIDE, operation)
        return MountState(
            ra=ra, dec=dec, altitude=float(altitude), azimuth=float(azimuth),
            slewing=slewing, parked=parked,
            # A mount without the property tracks whenever it is not parked (ON_COORD_SET TRACK);
            # a parked one never does, though INDI may announce TRACK_OFF a moment after PARK.
            tracking=not parked and (tracking is None or tracking.values.get("TRACK_ON") == ON),
            pier_side=None if side is None else next(
                (name for switch, name in PIER_SIDES.items() if side.values.get(switch) == ON),
                None),
        )

    def _parked(self):
        park = self.connection.optional(PARK, "reading the park state")
        # PARK is switched on when parking starts; the mount is parked once the state is Ok.
        return park is not None and park.values.get("PARK") == ON and park.state == OK

    def unpark(self):
        connection = self.connection
        operation = "unparking"
        connection.require_connected(operation)
        if not self._parked():
            return
        connection.switch(PARK, "UNPARK", operation)
        if not connection.wait(lambda: not self._parked()):
            raise connection.error(operation, f"still parked after {connection.timeout:g} s")

    def start_slew(self, ra, dec):
        connection = self.connection
        operation = f"slewing to ICRS RA {ra:.5f}° Dec {dec:+.5f}°"
        connection.require_connected(operation)
        if self._parked():
            raise connection.error(operation, "the mount is parked (unpark it first)")
        now = Time.now()
        refusal = below_horizon(ra, dec, self.location, now, self.site["Name"])
        if refusal:
            raise connection.error(operation, refusal)
        if connection.optional(ON_COORD_SET, operation) is not None:
            # Slew, then track there (rather than stop, or sync).
            connection.switch(ON_COORD_SET, "TRACK", operation)
        ra_hours, jnow_dec = icrs_to_apparent(ra, dec, self.location, now)
        logger.info("%s: slewing to ICRS %.5f %+.5f = JNow RA %.6f h Dec %+.5f°",
                    connection.label, ra, dec, ra_hours, jnow_dec)
        self._slewing_to = f"ICRS RA {ra:.5f}° Dec {dec:+.5f}°"
        try:
            connection.send(EQUATORIAL, {"RA": ra_hours, "DEC": jnow_dec}, operation)
        except DeviceError:
            self._slewing_to = None
            raise

    def start_park(self):
        connection = self.connection
        operation = "parking"
        connection.require_connected(operation)
        if self._parked():
            return
        self._require(PARK, operation)
        connection.switch(PARK, "PARK", operation)

    def abort(self):
        connection = self.connection
        operation = "aborting the slew"
        connection.require_connected(operation)
        if self._parked():
            logger.info("%s: parked, so there is no slew to abort", connection.label)
            return
        self._slewing_to = None
        connection.switch(ABORT_MOTION, "ABORT", operation)

    def set_tracking(self, enabled):
        connection = self.connection
        operation = f"switching tracking {'on' if enabled else 'off'}"
        connection.require_connected(operation)
        self._require(TRACK_STATE, operation)
        connection.switch(TRACK_STATE, "TRACK_ON" if enabled else "TRACK_OFF", operation)

    def _require(self, standard, operation):
        """Raise a :class:`DeviceError` about *operation* unless the device defines *standard*."""
        if self.connection.optional(standard, operation) is None:
            raise self.connection.error(operation, f"the device cannot do it (it defines no "
                                                   f"{self.connection.property_name(standard)})")

    def _check_site(self):
        """Warn when the mount's own site differs from the configured one."""
        connection = self.connection
        site = connection.optional(GEOGRAPHIC, "reading the site")
        if site is None:
            return
        for key, member in (("Latitude", "LAT"), ("Longitude", "LONG")):
            value = site.values.get(member)
            if value is None:
                continue
            if differs_from_site(value, self.site[key]):
                logger.warning("%s: its %s %s is %.4f° but Site → %s is %.4f°; horizon checks "
                               "and coordinates of date use the configured site",
                               connection.label, site.name, member, value, key, self.site[key])
