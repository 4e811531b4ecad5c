"""Directions on the sphere, and the site's horizon through astropy.

Positions are handled as unit vectors so that slews follow great circles and need no special
case at RA 0/360 or near the poles. A direction is given as a (longitude, latitude) pair in
degrees: (RA, Dec) on the sky, or (azimuth, altitude) on the horizon.
"""

import numpy as np
from astropy import units as u
from astropy.coordinates import ICRS, AltAz, EarthLocation, SkyCoord
from astropy.time import Time

#: Below this angle (radians) two directions count as the same: no path to interpolate.
SAME_DIRECTION = 1e-12


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

    Parameters
    ----------
    site : dict
        The ``Site`` section: ``Latitude`` and ``Longitude`` (degrees) and ``Elevation`` (m).

    Notes
    -----
    Each conversion costs a few milliseconds; call
    :func:`torosmanager.earth_rotation.use_astropy_offline` once first so astropy never tries the network.
    """

    def __init__(self, site):
        self.location = EarthLocation.from_geodetic(
            lon=site["Longitude"] * u.deg, lat=site["Latitude"] * u.deg,
            height=site["Elevation"] * u.m)

    def _frame(self, when):
        return AltAz(obstime=Time(when), location=self.location)

    def altaz(self, ra, dec, when):
        """The (altitude, azimuth) in degrees of ICRS *ra*, *dec* at the datetime *when*."""
        horizontal = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").transform_to(
            self._frame(when))
        return float(horizontal.alt.deg), float(horizontal.az.deg)

    def radec(self, altitude, azimuth, when):
        """The ICRS (RA, Dec) in degrees of *altitude*, *azimuth* at the datetime *when*."""
        sky = SkyCoord(alt=altitude * u.deg, az=azimuth * u.deg,
                       frame=self._frame(when)).transform_to(ICRS())
        return float(sky.ra.deg) % 360.0, float(sky.dec.deg)
