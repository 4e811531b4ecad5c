"""Tonight at the site: when it is dark, and how high a target gets.

ERFA computes, once per night, the Sun's place and the local sidereal time at a few instants
(:mod:`torosmanager.ephemeris`), interpolated on a grid of times; a target's altitude on that
grid is then a few vectorised numpy operations (the hour angle formula), fast enough for the
front desk. Targets are precessed from ICRS to the equinox
of the night with astropy; what is left out (refraction, nutation, aberration) moves a target by
well under 0.1°, which is negligible against altitude limits of degrees.

The night is the stretch of time during which the Sun is below the given altitude: the one in
progress, or else the next one. Its edges are where the Sun's altitude crosses the limit
between two grid points (interpolated), rounded inward to the whole minute, not the grid
points themselves, which lost up to a grid step of dark time at each end.
"""

import dataclasses
import functools
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from . import ephemeris

#: Spacing of the grid, minutes: fine enough that the Sun's altitude (≤ 0.25°/min) and a
#: target's (≤ 0.25°/min) move under 1.5° between samples.
GRID_MINUTES = 5
#: How far ahead to look for the next night, hours (more than a day, so one is always found
#: outside the polar regions).
SEARCH_HOURS = 36
#: Instants over the search span at which ERFA gives the Sun and sidereal time.
ANCHORS = 7
#: Nights remembered: a daemon runs for weeks, and a few recent nights cover every caller.
MAX_CACHED_NIGHTS = 16
#: Hours after a search that found no night (a polar summer) before searching again.
NO_NIGHT_RETRY_HOURS = 1
#: Hours before an instant of the night from which its start is looked for, nearest first: a
#: night is found whole from an instant of daylight before it.
LOOKBACK_HOURS = (6, 12, 18, 24)
#: Precession matrices kept (one per equinox, that is per night; see :func:`precess`).
PRECESSION_MATRICES = 16
#: Days in a Julian year.
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class NightWindow:
    """One night: from *start* to *end* (UTC), the Sun below *sun_limit* degrees.

    *starts_at_dusk* is false in a polar night, when the Sun stayed below *sun_limit* as far
    back as the search looked: *start* is then only the instant the night was looked for,
    not a dusk.
    """

    start: datetime
    end: datetime
    sun_limit: float
    times: np.ndarray        # the grid's instants, as datetime64[s] (UTC)
    lst_radians: np.ndarray  # local apparent sidereal time on the grid
    equinox_jyear: float     # the equinox targets are precessed to
    starts_at_dusk: bool = True

    def contains(self, instant):
        """Whether *instant* falls inside this night."""
        return self.start <= instant <= self.end


class Night:
    """The nights at one site.

    Parameters
    ----------
    site : dict
        The configuration's ``Site`` section (``Latitude``, ``Longitude``, ``Elevation``).
    """

    def __init__(self, site):
        self.latitude = float(site["Latitude"])
        self.longitude = float(site["Longitude"])
        self.elevation = float(site["Elevation"])
        self._lock = threading.Lock()
        self._cache = {}

    def window(self, now, sun_limit, whole=False):
        """The night in progress at *now*, or else the next one (``None`` if none is found).

        A night with less than one grid step left counts as over: there is no time left in it
        to plan, and the next night is returned. The dome's daylight verdict does not use this
        grid: it computes the Sun at each instant (:mod:`torosmanager.dome.safety`).

        Parameters
        ----------
        now : datetime
            Timezone-aware UTC.
        sun_limit : float
            The Sun's altitude below which it counts as night, degrees.
        whole : bool
            Give the night in progress from its start (the demo replays it whole), rather than
            what is left of it.
        """
        step = timedelta(minutes=GRID_MINUTES)
        night = self._cached(now, sun_limit)
        if night is not None and night.end - now < step:
            # One step after a night's last dark sample the Sun is above the limit (that
            # sample's successor was light), so the night found from there is the next one.
            night = self._cached(max(now, night.end) + step, sun_limit)
        if night is None:
            return None
        if night.start < now and not whole:  # the rest of the night in progress
            keep = night.times >= np.datetime64(now.replace(tzinfo=None), "s")
            night = dataclasses.replace(night, start=now, times=night.times[keep],
                                        lst_radians=night.lst_radians[keep])
        return night

    def is_dark(self, now, sun_limit):
        """Whether *now* lies in a night, to its last dark sample: unlike :meth:`window`, also
        in its last grid step, which has no time left to plan in but may end an observation
        planned before it.

        Parameters
        ----------
        now : datetime
            Timezone-aware UTC.
        sun_limit : float
            The Sun's altitude below which it counts as night, degrees.
        """
        night = self._cached(now, sun_limit)
        return night is not None and night.contains(now)

    def _cached(self, now, sun_limit):
        """The whole night in progress at *now*, or else the next one.

        A night found from an instant is the answer for every instant from then until its end,
        so it is computed once a night; a search that finds no night is redone after
        ``NO_NIGHT_RETRY_HOURS``.
        """
        with self._lock:
            for (limit, found_at, valid_until), night in self._cache.items():
                if limit == sun_limit and found_at <= now <= valid_until:
                    return night
            night = self._compute(now, sun_limit)
            valid_until = (night.end if night is not None
                           else now + timedelta(hours=NO_NIGHT_RETRY_HOURS))
            self._cache[sun_limit, now, valid_until] = night
            if len(self._cache) > MAX_CACHED_NIGHTS:
                self._cache.pop(next(iter(self._cache)))
            return night

    def _compute(self, now, sun_limit):
        """The whole night in progress at *now*, or else the next one."""
        night = self._search(now, sun_limit)
        if night is not None and night.start == now:
            # The search began in the dark: the night began earlier. It is found whole from an
            # instant of daylight before it (none in a polar night: then it begins now).
            for hours in LOOKBACK_HOURS:
                earlier = now - timedelta(hours=hours)
                whole = self._search(earlier, sun_limit)
                if whole is not None and earlier < whole.start <= now <= whole.end:
                    return whole
        return night

    def _search(self, now, sun_limit):
        """The first dark stretch of the grid from *now* on (beginning at *now* when it is
        already dark), or ``None``."""
        start = now.replace(second=0, microsecond=0)
        steps = np.arange(0, SEARCH_HOURS * 60 + GRID_MINUTES, GRID_MINUTES)
        # The Sun and sidereal time only at a few instants: the Sun moves 1° a day and
        # sidereal time is linear, so both are interpolated on the grid, and the Sun's
        # altitude is the hour-angle formula. The Sun's place is on the true equator and
        # equinox of date, the frame apparent sidereal time refers to.
        anchors = np.linspace(0, steps[-1], ANCHORS)
        utc1, utc2 = ephemeris.julian_dates(start, anchors * 60)
        sun_ra, sun_dec = ephemeris.sun_of_date(utc1, utc2)
        lst = np.interp(steps, anchors, np.unwrap(
            ephemeris.apparent_sidereal_time(utc1, utc2, self.longitude)))
        sun_ra = np.interp(steps, anchors, np.unwrap(sun_ra))
        sun_dec = np.interp(steps, anchors, sun_dec)
        altitude = hour_angle_altitude(self.latitude, sun_dec, lst - sun_ra)
        dark = altitude < sun_limit
        if not dark.any():
            return None
        first = int(np.argmax(dark))
        after = np.nonzero(~dark[first:])[0]
        last = first + (int(after[0]) - 1 if after.size else dark.size - first - 1)
        grid = (np.datetime64(start.replace(tzinfo=None), "s")
                + (steps[first:last + 1] * 60).astype("timedelta64[s]"))
        night_start = now if first == 0 else _crossing(start, steps, altitude, first - 1,
                                                      sun_limit, later=True)
        night_end = (_to_datetime(grid[-1]) if last == dark.size - 1
                     else _crossing(start, steps, altitude, last, sun_limit, later=False))
        equinox = float(ephemeris.julian_year(*ephemeris.julian_dates(start, steps[first] * 60)))
        return NightWindow(start=night_start, end=night_end, sun_limit=sun_limit,
                           times=grid, lst_radians=np.mod(lst[first:last + 1], 2 * np.pi),
                           equinox_jyear=equinox, starts_at_dusk=first != 0)

    def altitudes(self, night, ra, dec):
        """Altitudes (degrees) of targets over the night's grid.

        Parameters
        ----------
        night : NightWindow
        ra, dec : float or array
            ICRS degrees.

        Returns
        -------
        numpy.ndarray
            Shape ``(len(night.times),)`` for one target, ``(n_targets, len(night.times))``
            for arrays.
        """
        ra_now, dec_now = precess(np.atleast_1d(ra), np.atleast_1d(dec), night.equinox_jyear)
        altitude = altitude_grid(self.latitude, ra_now, dec_now, night.lst_radians)
        return altitude[0] if np.ndim(ra) == 0 else altitude

    def altitude_at(self, instant, ra, dec):
        """The altitude (degrees, without refraction) of a target (ICRS degrees) at
        *instant* (UTC datetime), as :meth:`altitudes` computes it on the night's grid."""
        utc1, utc2 = ephemeris.julian_dates(instant, 0.0)
        # The equinox of the day (one precession matrix a day, not one per instant: the
        # equinox moves 0.14″ in a day).
        equinox = round(float(ephemeris.julian_year(utc1, utc2)) * DAYS_PER_YEAR) / DAYS_PER_YEAR
        ra_now, dec_now = precess(np.atleast_1d(ra), np.atleast_1d(dec), equinox)
        return _altitude_at(self.latitude, self.longitude, utc1, utc2, np.radians(ra_now[0]),
                            np.radians(dec_now[0]))

    def rises_above(self, night, ra, dec, altitude):
        """The first instant of *night*'s grid at which a target is above *altitude*
        (degrees), or ``None``."""
        above = np.flatnonzero(self.altitudes(night, ra, dec) >= altitude)
        return _to_datetime(night.times[above[0]]) if len(above) else None

    def max_altitude(self, night, ra, dec):
        """The highest altitude a target reaches during *night*, and when (UTC datetime)."""
        altitude = self.altitudes(night, ra, dec)
        best = int(np.argmax(altitude))
        return float(altitude[best]), _to_datetime(night.times[best])


def precess(ra, dec, jyear):
    """ICRS degrees to the mean equator and equinox of Julian year *jyear* (astropy FK5).

    ICRS → FK5 is a rotation (frame bias, then precession), so it is computed by astropy once
    per equinox (:func:`_precession_matrix`) and applied to the targets with numpy: the
    scheduler and the telescope check targets against the night's equinox many times a night.
    """
    x, y, z = np.tensordot(_precession_matrix(float(jyear)), unit_vectors(ra, dec), axes=1)
    return (np.degrees(np.arctan2(y, x)) % 360.0,
            np.degrees(np.arctan2(z, np.hypot(x, y))))


@functools.lru_cache(maxsize=PRECESSION_MATRICES)
def _precession_matrix(jyear):
    """The rotation from ICRS to FK5 at the equinox *jyear*: its columns are the ICRS axes
    transformed by astropy."""
    import astropy.units as u
    from astropy.coordinates import FK5, SkyCoord
    from astropy.time import Time

    axes = SkyCoord(ra=[0.0, 90.0, 0.0] * u.deg, dec=[0.0, 0.0, 90.0] * u.deg,
                    frame="icrs").transform_to(FK5(equinox=Time(jyear, format="jyear")))
    return axes.cartesian.xyz.value


def reached_text(altitude):
    """The highest altitude a target reaches, for a reason it is refused: to 0.1°, rounded
    down (19.96° against a limit of 20° is not "20.0°")."""
    return f"{math.floor(altitude * 10) / 10:.1f}°"


def airmass(altitude):
    """Airmass at *altitude* degrees (Pickering 2002; good to the horizon)."""
    altitude = np.clip(np.asarray(altitude, dtype=float), 0.0, 90.0)
    return 1.0 / np.sin(np.radians(altitude + 244.0 / (165.0 + 47.0 * altitude ** 1.1)))


def hour_angle_altitude(latitude, declination, hour_angle):
    """Altitude (degrees) from the site's *latitude* (degrees) and a place's *declination* and
    *hour_angle* (radians, on the equator of date); numpy arrays broadcast."""
    latitude = np.radians(latitude)
    sine = (np.sin(latitude) * np.sin(declination)
            + np.cos(latitude) * np.cos(declination) * np.cos(hour_angle))
    return np.degrees(np.arcsin(np.clip(sine, -1.0, 1.0)))


def hour_angle_of(latitude, altitude, azimuth):
    """Hour angle (degrees, −180 to 180: west of the meridian positive) of the place at
    *altitude*, *azimuth* (degrees, from north through east) seen from *latitude* (degrees).

    From the horizontal coordinates alone, with no clock: those a mount reports, in the time
    it keeps itself.

    Examples
    --------
    >>> round(hour_angle_of(26.0, 0.0, 270.0), 6)  # due west on the horizon, on the equator
    90.0
    """
    latitude, altitude, azimuth = np.radians([latitude, altitude, azimuth])
    return float(np.degrees(np.arctan2(
        -np.sin(azimuth) * np.cos(altitude),
        np.sin(altitude) * np.cos(latitude) - np.cos(altitude) * np.cos(azimuth) *
        np.sin(latitude))))


def altitude_grid(latitude, ra, dec, lst):
    """Altitudes (degrees), targets × times, of places at *ra*, *dec* (arrays, degrees, on the
    equator of date) at local sidereal times *lst* (an array, radians), from a site at
    *latitude* (degrees).

    :func:`hour_angle_altitude`'s formula as the dot product of each place's unit vector with
    the zenith's: no cosine over the whole grid, half the time of the hour angles' for a
    plan's thousands of targets.
    """
    latitude = np.radians(latitude)
    zenith = np.stack([np.cos(latitude) * np.cos(lst), np.cos(latitude) * np.sin(lst),
                       np.full(np.shape(lst), np.sin(latitude))])
    sine = dot_products(unit_vectors(ra, dec), zenith)
    return np.degrees(np.arcsin(np.clip(sine, -1.0, 1.0)))


def unit_vectors(ra, dec):
    """Unit vectors (3, n) of directions given in degrees (arrays or numbers)."""
    ra, dec = np.radians(np.asarray(ra, dtype=float)), np.radians(np.asarray(dec, dtype=float))
    return np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def dot_products(first, second):
    """The dot product of every vector of *first* (3, n) with every vector of *second* (3, m):
    an array (n, m). By :func:`numpy.einsum`'s own loop, not a BLAS matrix product, whose
    threads keep every core busy for a while after it returns (a flood's plan took 40 % more
    CPU that way)."""
    return np.einsum("ki,kj->ij", first, second)


def sun_altitude(site, instant):
    """The Sun's altitude (degrees) at *site* and *instant*, as the night's grid computes it.

    ERFA's Sun and apparent sidereal time (:mod:`torosmanager.ephemeris`): geometric, without
    refraction, within 0.01° of astropy's ``AltAz`` (``tests/test_night.py``). About 0.4 ms,
    against 27 ms for astropy's frames, and the dome asks every ``Check Interval``: ten times
    a second at a simulated clock's 100×.
    """
    utc1, utc2 = ephemeris.julian_dates(instant, 0.0)
    sun_ra, sun_dec = ephemeris.sun_of_date(utc1, utc2)
    return _altitude_at(site["Latitude"], site["Longitude"], utc1, utc2, sun_ra, sun_dec)


def _altitude_at(latitude, longitude, utc1, utc2, ra, dec):
    """The altitude (degrees) at the site of a place on the equator of date (radians), at
    the UTC Julian date ``utc1 + utc2``."""
    lst = ephemeris.apparent_sidereal_time(utc1, utc2, longitude)
    return float(hour_angle_altitude(latitude, dec, lst - ra))


def local_night_date(instant, longitude):
    """The date of the evening a night began, at the site's local solar time (``YYYYMMDD``).

    Frames taken before local noon belong to the previous evening's night.
    """
    local = instant.astimezone(timezone.utc) + timedelta(hours=longitude / 15.0 - 12.0)
    return local.strftime("%Y%m%d")


def _crossing(start, steps, altitude, before, limit, later):
    """The instant the Sun's *altitude* crosses *limit* between grid points *before* and
    *before* + 1 (*steps* minutes after *start*), interpolated, as a whole minute: the next one
    at dusk (*later*), the one before at dawn, lest the night take in a moment of twilight."""
    low, high = altitude[before], altitude[before + 1]
    fraction = (limit - low) / (high - low) if high != low else 0.0
    minutes = steps[before] + fraction * (steps[before + 1] - steps[before])
    whole = np.ceil(minutes) if later else np.floor(minutes)
    return start + timedelta(minutes=float(whole))


def _to_datetime(value):
    if hasattr(value, "to_datetime"):
        return value.to_datetime(timezone=timezone.utc)
    return datetime.fromisoformat(str(np.datetime_as_string(value, unit="s"))).replace(
        tzinfo=timezone.utc)
