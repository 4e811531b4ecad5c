"""An ASCOM Alpaca telescope as a :class:`~torosmanager.devices.Mount`.

TOROS speaks ICRS degrees; an Alpaca telescope speaks right ascension in hours and declination in
degrees in the system its ``EquatorialSystem`` names. The conversion (astropy, a few milliseconds)
is exact to well under an arcsecond:

=====================  =========================================================================
EquatorialSystem       frame used
=====================  =========================================================================
topocentric (JNow)     :class:`~astropy.coordinates.TETE` at the site and the current real time:
                       apparent place, true equator and equinox of date, without refraction
                       (the mount applies refraction itself when ``DoesRefraction`` is set)
J2000                  ICRS (the ASCOM definition; FK5 J2000 differs by 0.02")
J2050                  FK5, equinox J2050
B1950                  FK4, equinox B1950
other                  assumed J2000, with a warning at connect
not implemented        assumed topocentric (what drivers did before the property existed)
=====================  =========================================================================

Times are real UTC, not the TOROS clock: the mount tracks the real sky even when the daemons run
on a simulated clock.
"""

import logging

import astropy.units as u
from alpaca.telescope import EquatorialCoordinateType, PierSide, Telescope
from astropy.coordinates import FK4, FK5, ICRS, SkyCoord
from astropy.time import Time

from ...earth_rotation import use_astropy_offline
from ..base import wait_for
from ...units import DEGREES_PER_HOUR, DEGREES_PER_TURN, HOURS_PER_DAY
from ..coordinates import (apparent_frame, below_horizon, differs_from_site, horizontal,
                           site_location)
from ..mount import LOOKING_EAST, LOOKING_WEST, Mount, MountState
from .connection import AlpacaConnection

logger = logging.getLogger(__name__)

#: Seconds between polls of ``AtPark`` after ``Unpark``.
UNPARK_POLL_INTERVAL = 0.2

#: How health reports and logs name the equatorial systems.
SYSTEM_NAMES = {
    EquatorialCoordinateType.equOther: "other",
    EquatorialCoordinateType.equTopocentric: "topocentric (JNow)",
    EquatorialCoordinateType.equJ2000: "J2000",
    EquatorialCoordinateType.equJ2050: "J2050",
    EquatorialCoordinateType.equB1950: "B1950",
}
#: ``SideOfPier`` as :class:`~..mount.MountState` names it (unknown: ``None``).
PIER_SIDES = {PierSide.pierEast: LOOKING_WEST, PierSide.pierWest: LOOKING_EAST}


def mount_frame(system, location, obstime):
    """The astropy frame of a mount's equatorial coordinates.

    Parameters
    ----------
    system : EquatorialCoordinateType
        What the mount reports; ``equOther`` is taken as J2000.
    location : EarthLocation
        The site, for topocentric coordinates.
    obstime : Time
        The instant, for topocentric coordinates.
    """
    if system == EquatorialCoordinateType.equTopocentric:
        return apparent_frame(location, obstime)
    if system == EquatorialCoordinateType.equJ2050:
        return FK5(equinox="J2050")
    if system == EquatorialCoordinateType.equB1950:
        return FK4(equinox="B1950")
    return ICRS()


def icrs_to_mount(ra, dec, system, location, obstime):
    """ICRS degrees → the mount's ``(right ascension [0, 24) hours, declination degrees)``."""
    frame = mount_frame(system, location, obstime)
    if isinstance(frame, ICRS):
        mount_ra, mount_dec = ra, dec
    else:
        converted = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").transform_to(frame)
        mount_ra, mount_dec = converted.ra.deg, converted.dec.deg
    return (mount_ra / DEGREES_PER_HOUR) % HOURS_PER_DAY, float(mount_dec)


def mount_to_icrs(ra_hours, dec, system, location, obstime):
    """The mount's right ascension (hours) and declination → ICRS ``(ra, dec)`` degrees."""
    frame = mount_frame(system, location, obstime)
    ra = ra_hours * DEGREES_PER_HOUR
    if not isinstance(frame, ICRS):
        converted = SkyCoord(ra * u.deg, dec * u.deg, frame=frame).icrs
        ra, dec = converted.ra.deg, converted.dec.deg
    return float(ra) % DEGREES_PER_TURN, float(dec)


class AlpacaMount(Mount):
    """An ASCOM Alpaca telescope.

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Device Number``, ``Timeout`` (seconds per request).
    site : dict
        ``Name``, ``Latitude``, ``Longitude`` (degrees east), ``Elevation`` (metres).
    """

    def __init__(self, device_settings, site):
        super().__init__()
        use_astropy_offline()
        self.connection = AlpacaConnection(self.kind, Telescope, device_settings)
        self.site = site
        self.location = site_location(site)
        #: The mount's :class:`EquatorialCoordinateType`, read at :meth:`connect`.
        self.system = None

    def connect(self):
        self.connection.connect()
        self.system = self._read_system()
        self._check_site()

    def disconnect(self):
        self.connection.disconnect()

    def describe(self):
        def fields():
            return {
                "Parked": self.connection.flag("AtPark"),
                "Slewing": self.connection.flag("Slewing"),
                "Tracking": self.connection.flag("Tracking"),
                "Equatorial System": SYSTEM_NAMES.get(self.system, "unknown"),
            }
        return self.connection.describe(fields)

    def state(self):
        connection = self.connection
        connection.require_connected("reading the state")
        ra_hours = connection.get("RightAscension")
        mount_dec = connection.get("Declination")
        now = Time.now()
        ra, dec = mount_to_icrs(ra_hours, mount_dec, self.system, self.location, now)
        altitude = connection.optional("Altitude")
        azimuth = connection.optional("Azimuth")
        if altitude is None or azimuth is None:
            altitude, azimuth = horizontal(ra, dec, self.location, now)
        return MountState(
            ra=ra, dec=dec, altitude=float(altitude), azimuth=float(azimuth),
            slewing=connection.flag("Slewing"),
            parked=connection.flag("AtPark"),
            tracking=connection.flag("Tracking"),
            pier_side=PIER_SIDES.get(connection.optional("SideOfPier")),
        )

    def unpark(self):
        connection = self.connection
        connection.require_connected("unparking")
        if not connection.flag("AtPark"):
            return
        connection.capable("CanUnpark", "unparking")
        connection.run("Unpark")
        # Unpark is synchronous in the ASCOM interface, but confirm it, within one timeout.
        wait_for(lambda: not connection.flag("AtPark"), connection.timeout,
                 f"{connection.label} to report it is unparked", UNPARK_POLL_INTERVAL)

    def start_slew(self, ra, dec):
        connection = self.connection
        operation = f"slewing to ICRS RA {ra:.5f}° Dec {dec:+.5f}°"
        connection.require_connected(operation)
        if connection.flag("AtPark"):
            raise connection.error(operation, "the mount is parked (unpark it first)")
        now = Time.now()
        refusal = below_horizon(ra, dec, self.location, now, self.site["Name"])
        if refusal:
            raise connection.error(operation, refusal)
        # The synchronous SlewToCoordinates would block past the request timeout.
        connection.capable("CanSlewAsync", operation)
        if not connection.flag("Tracking"):
            # ASCOM refuses an equatorial slew while not tracking.
            connection.capable("CanSetTracking", f"{operation}: switching tracking on")
            connection.set("Tracking", True)
        ra_hours, mount_dec = icrs_to_mount(ra, dec, self.system, self.location, now)
        logger.info("%s: slewing to ICRS %.5f %+.5f = %s RA %.6f h Dec %+.5f°",
                    connection.label, ra, dec, SYSTEM_NAMES.get(self.system, "?"),
                    ra_hours, mount_dec)
        connection.run("SlewToCoordinatesAsync", ra_hours, mount_dec, operation=operation)

    def start_park(self):
        connection = self.connection
        connection.require_connected("parking")
        if connection.flag("AtPark"):
            return
        connection.capable("CanPark", "parking")
        connection.start("parking", connection.device.Park)

    def abort(self):
        connection = self.connection
        connection.require_connected("aborting the slew")
        if connection.flag("AtPark"):
            # Nothing moves, and ASCOM mounts refuse AbortSlew while parked.
            logger.info("%s: parked, so there is no slew to abort", connection.label)
            return
        connection.run("AbortSlew")

    def set_tracking(self, enabled):
        connection = self.connection
        operation = f"switching tracking {'on' if enabled else 'off'}"
        connection.require_connected(operation)
        connection.capable("CanSetTracking", operation)
        connection.set("Tracking", bool(enabled))

    def _read_system(self):
        connection = self.connection
        raw = connection.optional("EquatorialSystem")
        if raw is None:
            logger.warning("%s does not report EquatorialSystem; assuming topocentric (JNow) "
                           "coordinates", connection.label)
            return EquatorialCoordinateType.equTopocentric
        system = EquatorialCoordinateType(raw)
        if system == EquatorialCoordinateType.equOther:
            logger.warning("%s reports EquatorialSystem 'other'; assuming J2000 coordinates",
                           connection.label)
        logger.info("%s: equatorial coordinates are %s", connection.label,
                    SYSTEM_NAMES[system])
        return system

    def _check_site(self):
        """Warn when the mount's own site differs from the configured one."""
        connection = self.connection
        for key, name in (("Latitude", "SiteLatitude"), ("Longitude", "SiteLongitude")):
            value = connection.optional(name)
            if value is None:
                continue
            if differs_from_site(value, self.site[key]):
                logger.warning("%s: its %s is %.4f° but Site → %s is %.4f°; horizon checks and "
                               "topocentric coordinates use the configured site",
                               connection.label, name, value, key, self.site[key])
