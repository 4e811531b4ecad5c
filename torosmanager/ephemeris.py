"""The Sun's and the Moon's places and the sidereal time at a few instants, for planning.

The planner needs them once a night, at a handful of instants (:mod:`torosmanager.night`,
:meth:`torosmanager.scheduler.planner.Planner.moon_track`), and the dome the Sun at every safety
check (:func:`torosmanager.night.sun_altitude`). astropy's ``get_body`` and frame
transforms give them through its frame machinery, about 10 ms a call, which was most of a cold
plan's time for a short target list. These functions call ERFA (pyerfa: the IAU's SOFA
routines, which astropy itself calls underneath) directly, with the IAU 2006/2000A models.

Left out, each far below the planner's margins (0.5° on the Moon, degrees on altitudes):

- UT1 − UTC (under 0.9 s, so under 14″ of the Earth's rotation): UT1 is taken as UTC;
- the Sun's aberration and light time (about 20″ each): its place is geometric;
- polar motion (under 1″).

Times are two-part Julian dates in UTC (``utc1 + utc2``), as ERFA takes them; see
:func:`julian_dates`.
"""

from datetime import timezone

import erfa
import numpy as np

SECONDS_PER_DAY = 86_400.0
#: The Sun's greatest declination, degrees (the obliquity of the ecliptic, within 0.01° of it
#: for centuries).
SUN_GREATEST_DECLINATION = 23.44
#: ERFA's reference ellipsoid number for WGS84 (``erfa.gd2gc``).
WGS84 = 1


def julian_dates(start, seconds):
    """Two-part UTC Julian dates of *start* plus *seconds*.

    Parameters
    ----------
    start : datetime
        Timezone-aware (or naive UTC).
    seconds : float or numpy.ndarray
        Offsets from *start*.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``utc1`` (the day part) and ``utc2`` (the fraction), broadcast to *seconds*' shape.
    """
    if start.tzinfo is not None:
        start = start.astimezone(timezone.utc)
    day, fraction = erfa.dtf2d("UTC", start.year, start.month, start.day, start.hour,
                               start.minute, start.second + start.microsecond / 1e6)
    offsets = np.asarray(seconds, dtype=float) / SECONDS_PER_DAY
    return np.broadcast_to(day, offsets.shape).copy(), fraction + offsets


def modified_julian_dates(start, seconds):
    """UTC modified Julian dates of *start* plus *seconds* (see :func:`julian_dates`), as one
    float each: the day part is reduced first, so that no digit of the fraction is lost."""
    day, fraction = julian_dates(start, seconds)
    return day - erfa.DJM0 + fraction


def _terrestrial_time(utc1, utc2):
    """TT two-part Julian dates of UTC ones (leap seconds from ERFA's table)."""
    return erfa.taitt(*erfa.utctai(utc1, utc2))


def sun_of_date(utc1, utc2):
    """The Sun's geocentric right ascension and declination, radians, on the true equator
    and equinox of date (the frame apparent sidereal time refers to)."""
    tt1, tt2 = _terrestrial_time(utc1, utc2)
    heliocentric, _ = erfa.epv00(tt1, tt2)    # the Earth's, au, axes of the GCRS
    sun = -heliocentric["p"]
    of_date = np.einsum("...ij,...j->...i", erfa.pnm06a(tt1, tt2), sun)
    ra, dec = erfa.c2s(of_date)
    return erfa.anp(ra), dec


def apparent_sidereal_time(utc1, utc2, longitude):
    """Local apparent sidereal time, radians in [0, 2π), at *longitude* (degrees east)."""
    tt1, tt2 = _terrestrial_time(utc1, utc2)
    return erfa.anp(erfa.gst06a(utc1, utc2, tt1, tt2) + np.radians(longitude))


def moon_from_site(utc1, utc2, latitude, longitude, elevation):
    """The Moon's right ascension and declination seen from the site, radians, on the GCRS
    axes (ICRS's): topocentric, since the Moon's parallax reaches 1°.

    Parameters
    ----------
    utc1, utc2 : numpy.ndarray
        Two-part UTC Julian dates.
    latitude, longitude : float
        Geodetic, degrees (north, east).
    elevation : float
        Metres above the WGS84 ellipsoid.
    """
    tt1, tt2 = _terrestrial_time(utc1, utc2)
    geocentric = erfa.moon98(tt1, tt2)["p"] * erfa.DAU     # metres, GCRS
    site = erfa.gd2gc(WGS84, np.radians(longitude), np.radians(latitude), elevation)  # ITRS
    to_terrestrial = erfa.c2t06a(tt1, tt2, utc1, utc2, 0.0, 0.0)
    site_gcrs = np.einsum("...ji,j->...i", to_terrestrial, site)  # the inverse: transpose
    ra, dec = erfa.c2s(geocentric - site_gcrs)
    return erfa.anp(ra), dec


def julian_year(utc1, utc2):
    """The Julian epoch (e.g. 2026.9) of UTC Julian dates, as astropy's ``Time.jyear``."""
    return erfa.epj(utc1, utc2)


def longest_night(latitude, sun_altitude):
    """Seconds of the longest night of the year at *latitude* (degrees): the Sun below
    *sun_altitude* (degrees); 24 hours where it stays below it for a whole day.

    The night is worked out for each declination the Sun takes in a year (every 0.1°), the
    Sun taken as fixed for the day and refraction left out: good to a few minutes, enough to
    tell an order that can never fit a night. (The longest is at the winter solstice, except
    near the equator, where twilight is shortest at the equinoxes.)
    """
    phi = np.radians(latitude)
    delta = np.radians(np.linspace(-SUN_GREATEST_DECLINATION, SUN_GREATEST_DECLINATION,
                                   int(20 * SUN_GREATEST_DECLINATION) + 1))
    # The hour angle at which the Sun crosses the altitude (triangle pole–zenith–Sun).
    cosine = ((np.sin(np.radians(sun_altitude)) - np.sin(phi) * np.sin(delta))
              / (np.cos(phi) * np.cos(delta)))
    above = np.arccos(np.clip(cosine, -1.0, 1.0))  # half the Sun's time above it, radians
    return float(SECONDS_PER_DAY * (1.0 - above.min() / np.pi))
