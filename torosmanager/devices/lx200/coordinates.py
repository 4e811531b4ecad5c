"""ICRS ↔ the LX200 mount's JNow coordinates, and the horizontal position, with astropy.

An LX200 mount points in apparent coordinates of date ("JNow"): :class:`~astropy.coordinates.TETE`
(true equator and equinox of date) at the site and the current *real* time, without refraction
(the mount applies refraction itself, if it does). TOROS speaks ICRS degrees. Times are real
UTC, not the TOROS clock: the mount tracks the real sky even when the daemons run on a
simulated clock.
"""

import astropy.units as u
from astropy.coordinates import TETE, AltAz, EarthLocation, SkyCoord

DEGREES_PER_HOUR = 15.0
HOURS_PER_DAY = 24.0
DEGREES_PER_TURN = 360.0


def site_location(site):
    """The :class:`EarthLocation` of the configuration's ``Site`` dict."""
    return EarthLocation.from_geodetic(lon=site["Longitude"] * u.deg,
                                       lat=site["Latitude"] * u.deg,
                                       height=site["Elevation"] * u.m)


def icrs_to_jnow(ra, dec, location, obstime):
    """ICRS degrees → the mount's ``(right ascension [0, 24) hours, declination degrees)``."""
    converted = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").transform_to(
        TETE(obstime=obstime, location=location))
    return (float(converted.ra.deg) / DEGREES_PER_HOUR) % HOURS_PER_DAY, float(converted.dec.deg)


def jnow_to_icrs(ra_hours, dec, location, obstime):
    """The mount's right ascension (hours) and declination → ICRS ``(ra, dec)`` degrees."""
    converted = SkyCoord(ra_hours * DEGREES_PER_HOUR * u.deg, dec * u.deg,
                         frame=TETE(obstime=obstime, location=location)).icrs
    return float(converted.ra.deg) % DEGREES_PER_TURN, float(converted.dec.deg)


def horizontal(ra, dec, location, obstime):
    """Geometric ``(altitude, azimuth)`` degrees of ICRS *ra*, *dec* at *location*, *obstime*."""
    where = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").transform_to(
        AltAz(obstime=obstime, location=location))
    return float(where.alt.deg), float(where.az.deg)
