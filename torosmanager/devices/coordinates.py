"""ICRS ↔ a mount's apparent coordinates, and the horizontal position, with astropy.

TOROS speaks ICRS degrees. Most mounts (LX200, INDI, a mount computer, an Alpaca telescope in
its topocentric system) point in apparent coordinates of date, "JNow": right ascension and
declination referred to the true equator and equinox of date, topocentric, without refraction
(a mount applies refraction itself, if it does). astropy calls that frame
:class:`~astropy.coordinates.TETE`; a conversion takes a few milliseconds and is exact to well
under an arcsecond.

Each function takes the time (*obstime*) it converts at. The Alpaca and INDI drivers pass the
real UTC time (those mounts keep the real time, and their simulators run in it); the LX200 driver
passes its daemon's clock's time, which is real UTC in operation (see its module).
"""

import astropy.units as u
from astropy.coordinates import TETE, AltAz, EarthLocation, SkyCoord

from ..earth_rotation import iers_table
from ..units import DEGREES_PER_HOUR, DEGREES_PER_TURN, HOURS_PER_DAY

#: Targets below this altitude (degrees, geometric) are refused before a mount is asked.
HORIZON_ALTITUDE = 0.0

#: A mount's own site may differ from the configured one by this much (degrees) unwarned.
SITE_TOLERANCE = 0.01



def site_location(site):
    """The :class:`EarthLocation` of the configuration's ``Site`` dict."""
    return EarthLocation.from_geodetic(lon=site["Longitude"] * u.deg,
                                       lat=site["Latitude"] * u.deg,
                                       height=site["Elevation"] * u.m)


def apparent_frame(location, obstime):
    """The apparent (JNow) frame at *location* and *obstime*."""
    iers_table()  # read once per process, not once per thread that needs it
    return TETE(obstime=obstime, location=location)


def icrs_to_apparent(ra, dec, location, obstime):
    """ICRS degrees → apparent ``(right ascension [0, 24) hours, declination degrees)``."""
    apparent = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").transform_to(
        apparent_frame(location, obstime))
    return (float(apparent.ra.deg) / DEGREES_PER_HOUR) % HOURS_PER_DAY, float(apparent.dec.deg)


def apparent_to_icrs(ra_hours, dec, location, obstime):
    """Apparent right ascension (hours) and declination (degrees) → ICRS ``(ra, dec)`` degrees."""
    where = SkyCoord(ra_hours * DEGREES_PER_HOUR * u.deg, dec * u.deg,
                     frame=apparent_frame(location, obstime)).icrs
    return float(where.ra.deg) % DEGREES_PER_TURN, float(where.dec.deg)


def horizontal(ra, dec, location, obstime):
    """Geometric ``(altitude, azimuth)`` degrees of ICRS *ra*, *dec* at *location*, *obstime*."""
    iers_table()  # read once per process, not once per thread that needs it
    where = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").transform_to(
        AltAz(obstime=obstime, location=location))
    return float(where.alt.deg), float(where.az.deg)


def below_horizon(ra, dec, location, obstime, site_name):
    """Why a mount must not be sent to ICRS *ra*, *dec* at *obstime*: ``"the target is below
    the horizon at SITE (altitude -3.2°)"``, or ``""`` when it is above
    :data:`HORIZON_ALTITUDE`."""
    altitude, _ = horizontal(ra, dec, location, obstime)
    if altitude < HORIZON_ALTITUDE:
        return f"the target is below the horizon at {site_name} (altitude {altitude:.1f}°)"
    return ""


def differs_from_site(value, configured):
    """Whether a mount's own latitude or longitude *value* (degrees) differs from the
    *configured* one by more than :data:`SITE_TOLERANCE`, around the circle (mounts give
    longitudes as 0–360 or ±180)."""
    difference = (float(value) - configured + DEGREES_PER_TURN / 2) % DEGREES_PER_TURN
    return abs(difference - DEGREES_PER_TURN / 2) > SITE_TOLERANCE
