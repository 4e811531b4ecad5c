"""Directions on the sphere, and the site's horizon through ERFA (as astropy converts).

Positions are handled as unit vectors so that slews follow great circles and need no special
case at RA 0/360 or near the poles. A direction is given as a (longitude, latitude) pair in
degrees: (RA, Dec) on the sky, or (azimuth, altitude) on the horizon.
"""

import functools

import erfa
import numpy as np
from astropy import units as u
from astropy.time import Time
from astropy.utils import iers

from ... import earth_rotation, ephemeris

#: Below this angle (radians) two directions count as the same: no path to interpolate.
SAME_DIRECTION = 1e-12
#: Minutes of the Earth's orientation remembered (a night's worth).
EARTH_ORIENTATIONS = 1024
#: The polar motion (x, y), arcseconds, astropy's transformations take outside its IERS
#: table: the 50-year mean.
MEAN_POLAR_MOTION = (0.035, 0.29)


def unit_vector(longitude, latitude):
    """The unit vector of (*longitude*, *latitude*), degrees."""
    lon, lat = np.radians(longitude), np.radians(latitude)
    return np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def longitude_latitude(vector):
    """The (longitude in [0, 360), latitude) of *vector*, degrees.

    At a pole the longitude is undefined and comes out as 0.
    """
    x, y, z = vector
    longitude = float(np.degrees(np.arctan2(y, x))) % 360.0
    latitude = float(np.degrees(np.arctan2(z, np.hypot(x, y))))
    return longitude, latitude


def angle_between(a, b):
    """The angle between the vectors *a* and *b*, degrees (stable near 0° and 180°)."""
    return float(np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b)), np.dot(a, b))))


def great_circle_point(start, end, fraction):
    """The point *fraction* (0–1) of the way along the great circle from *start* to *end*.

    Opposite directions have no unique great circle between them; one through the pole of
    *start*'s frame (or, from a pole, through longitude 0) is taken.
    """
    angle = np.radians(angle_between(start, end))
    if angle < SAME_DIRECTION:
        return np.array(end, dtype=float)
    # The unit vector perpendicular to start, towards end, in their common plane.
    towards = end - np.dot(start, end) * start
    norm = np.linalg.norm(towards)
    if norm < SAME_DIRECTION:
        axis = np.array([0.0, 0.0, 1.0]) if abs(start[2]) < 1.0 - SAME_DIRECTION \
            else np.array([1.0, 0.0, 0.0])
        towards = axis - np.dot(start, axis) * start
        norm = np.linalg.norm(towards)
    towards = towards / norm
    step = angle * fraction
    return np.cos(step) * start + np.sin(step) * towards


class Horizon:
    """Conversions between ICRS and the site's horizontal coordinates at a given instant.

    Altitudes are geometric (no atmospheric refraction: astropy's default zero pressure), which
    is what matters for a horizon limit to within a fraction of a degree.

    The conversions are ERFA's ``atco13`` and ``atoc13``, the routines under astropy's ICRS ↔
    AltAz transformation, with the Earth's orientation (UT1 − UTC, polar motion) from
    astropy's IERS table: the same numbers as astropy's transformation (within 1e-8°) for a
    twentieth of its time (about 0.2 ms against 5 ms). The simulated mount converts at every
    poll, and its daemon's other threads wait on those polls.

    Parameters
    ----------
    site : dict
        The ``Site`` section: ``Latitude`` and ``Longitude`` (degrees) and ``Elevation`` (m).

    Notes
    -----
    The IERS table is read through :func:`torosmanager.earth_rotation.iers_table`: offline,
    and once per process.
    """

    def __init__(self, site):
        self.longitude = np.radians(site["Longitude"])
        self.latitude = np.radians(site["Latitude"])
        self.elevation = float(site["Elevation"])

    def _observer(self, when):
        """ERFA's arguments for the site at *when*: UTC, UT1 − UTC, longitude, latitude,
        height, polar motion, and no refraction (pressure, temperature, humidity and
        wavelength all 0)."""
        utc1, utc2 = ephemeris.julian_dates(when, 0.0)
        dut1, xp, yp = earth_orientation(when.replace(second=0, microsecond=0))
        return (utc1, utc2, dut1, self.longitude, self.latitude, self.elevation, xp, yp,
                0.0, 0.0, 0.0, 0.0)

    def altaz(self, ra, dec, when):
        """The (altitude, azimuth) in degrees of ICRS *ra*, *dec* at the datetime *when*."""
        azimuth, zenith_distance, *_ = erfa.atco13(np.radians(ra), np.radians(dec), 0.0, 0.0,
                                                   0.0, 0.0, *self._observer(when))
        return 90.0 - float(np.degrees(zenith_distance)), float(np.degrees(azimuth)) % 360.0

    def radec(self, altitude, azimuth, when):
        """The ICRS (RA, Dec) in degrees of *altitude*, *azimuth* at the datetime *when*."""
        ra, dec = erfa.atoc13("A", np.radians(azimuth), np.radians(90.0 - altitude),
                              *self._observer(when))
        return float(np.degrees(ra)) % 360.0, float(np.degrees(dec))


@functools.lru_cache(maxsize=EARTH_ORIENTATIONS)
def earth_orientation(minute):
    """UT1 − UTC (seconds) and the polar motion (radians) at the datetime *minute*, from
    astropy's IERS table; once a minute, in which they change by under a microsecond of
    rotation. Outside the table (a simulated clock years ahead), as astropy's
    transformations: UT1 − UTC 0, and the polar motion's 50-year mean."""
    instant = Time(minute)
    table = earth_rotation.iers_table()
    try:
        dut1 = float(table.ut1_utc(instant).to_value(u.s))
    except iers.IERSRangeError:
        dut1 = 0.0
    xp, yp, status = table.pm_xy(instant, return_status=True)
    if status in (iers.TIME_BEFORE_IERS_RANGE, iers.TIME_BEYOND_IERS_RANGE):
        xp, yp = MEAN_POLAR_MOTION * u.arcsec
    return dut1, float(xp.to_value(u.radian)), float(yp.to_value(u.radian))
