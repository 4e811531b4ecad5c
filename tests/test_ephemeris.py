"""The Sun, the Moon and sidereal time from ERFA agree with astropy's full transforms within
what the planner can tell apart (seconds of arc; its margins are degrees)."""

from datetime import datetime, timezone

import numpy as np
import pytest

from torosmanager import ephemeris

SITES = {"CTMO": (25.9958, -97.5690, 12.0), "Cordón Macón": (-24.62, -67.32, 4650.0)}
STARTS = [datetime(2026, 11, 21, 20, 0, tzinfo=timezone.utc),
          datetime(2027, 5, 10, 4, 30, tzinfo=timezone.utc)]
#: Over a day and a half, the planner's search span, at 13 instants.
SECONDS = np.linspace(0, 36 * 3600, 13)
ARCSEC = 1 / 3600


def separation(ra1, dec1, ra2, dec2):
    """Degrees between two places given in radians."""
    cosine = (np.sin(dec1) * np.sin(dec2)
              + np.cos(dec1) * np.cos(dec2) * np.cos(ra1 - ra2))
    return np.degrees(np.arccos(np.clip(cosine, -1, 1)))


@pytest.fixture(scope="module")
def astropy():
    from torosmanager.earth_rotation import use_astropy_offline
    use_astropy_offline()
    import astropy.units as u
    from astropy.coordinates import TETE, EarthLocation, get_body
    from astropy.time import Time

    def places(start, site):
        latitude, longitude, elevation = SITES[site]
        location = EarthLocation(lat=latitude * u.deg, lon=longitude * u.deg,
                                 height=elevation * u.m)
        times = Time(start) + SECONDS * u.s
        sun = get_body("sun", times, location).transform_to(TETE(obstime=times,
                                                                 location=location))
        moon = get_body("moon", times, location)  # seen from the site, GCRS axes
        lst = times.sidereal_time("apparent", longitude=longitude * u.deg).radian
        return sun, moon, lst, times.jyear

    return places


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("site", SITES)
def test_the_sun_of_date_is_astropys_within_its_aberration(astropy, start, site):
    sun, _, _, _ = astropy(start, site)
    ra, dec = ephemeris.sun_of_date(*ephemeris.julian_dates(start, SECONDS))
    # The geometric place: the annual aberration (20.5″) and light time are left out.
    assert separation(ra, dec, sun.ra.radian, sun.dec.radian).max() < 40 * ARCSEC


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("site", SITES)
def test_the_moon_seen_from_the_site_is_astropys(astropy, start, site):
    _, moon, _, _ = astropy(start, site)
    ra, dec = ephemeris.moon_from_site(*ephemeris.julian_dates(start, SECONDS), *SITES[site])
    assert separation(ra, dec, moon.ra.radian, moon.dec.radian).max() < 5 * ARCSEC
    # Not the geocentric place: the Moon's parallax from the site reaches a degree.
    # (A "site" at 0°, 0° and minus the Earth's equatorial radius is its centre.)
    geocentric = ephemeris.moon_from_site(*ephemeris.julian_dates(start, SECONDS), 0, 0,
                                          -6_378_137.0)
    assert separation(*geocentric, moon.ra.radian, moon.dec.radian).max() > 0.2


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("site", SITES)
def test_apparent_sidereal_time_is_astropys(astropy, start, site):
    _, _, lst, _ = astropy(start, site)
    ours = ephemeris.apparent_sidereal_time(*ephemeris.julian_dates(start, SECONDS),
                                            SITES[site][1])
    difference = np.angle(np.exp(1j * (ours - lst)))  # wrapped to ±π
    # UT1 is taken as UTC: under 0.9 s of the Earth's rotation, 14″.
    assert np.degrees(np.abs(difference)).max() < 15 * ARCSEC


@pytest.mark.parametrize("start", STARTS)
def test_the_julian_year_is_astropys(astropy, start):
    _, _, _, jyear = astropy(start, "CTMO")
    assert ephemeris.julian_year(*ephemeris.julian_dates(start, SECONDS)) == \
        pytest.approx(jyear, abs=1e-9)


def test_julian_dates_keep_the_fraction_of_a_second():
    day, fraction = ephemeris.julian_dates(datetime(2026, 11, 21, 0, 0, 0, 500_000,
                                                    tzinfo=timezone.utc), np.array([0.0, 1.5]))
    assert day[0] + fraction[0] == pytest.approx(2461365.5 + 0.5 / 86400, abs=1e-10)
    assert (fraction[1] - fraction[0]) * 86400 == pytest.approx(1.5, abs=1e-6)


#: Latitudes whose longest night is checked: the two sites, the equator (longest at the
#: equinoxes) and 60° north (long twilights).
NIGHT_LATITUDES = [25.9958, -24.62, 0.0, 60.0]


@pytest.mark.parametrize("latitude", NIGHT_LATITUDES)
def test_the_longest_night_is_the_longest_dark_spell_of_a_year(latitude):
    # A year of the Sun's altitude every 2 minutes, from ERFA's Sun of date and sidereal time
    # every hour (interpolated: the Sun moves 0.04° an hour); the longest run below -18° is
    # the longest night.
    from torosmanager.night import hour_angle_altitude

    hours = np.arange(0.0, 367 * ephemeris.SECONDS_PER_DAY, 3600.0)
    utc1, utc2 = ephemeris.julian_dates(datetime(2027, 1, 1, tzinfo=timezone.utc), hours)
    sun_ra, sun_dec = ephemeris.sun_of_date(utc1, utc2)
    hour_angle = np.unwrap(ephemeris.apparent_sidereal_time(utc1, utc2, 0.0) - sun_ra)
    step = 120.0
    seconds = np.arange(0.0, hours[-1], step)
    altitude = hour_angle_altitude(latitude, np.interp(seconds, hours, sun_dec),
                                   np.interp(seconds, hours, hour_angle))
    dark = altitude < -18.0
    edges = np.flatnonzero(np.diff(dark.astype(np.int8)))
    starts, ends = edges[dark[edges + 1]], edges[~dark[edges + 1]]
    ends = ends[ends > starts[0]]
    longest = step * np.max(ends[:len(starts)] - starts[:len(ends)])
    assert ephemeris.longest_night(latitude, -18.0) == pytest.approx(longest, abs=300)


def test_where_the_sun_stays_below_the_limit_the_longest_night_is_a_day():
    # At the winter solstice the Sun culminates at 90° - |latitude| - 23.44°: -13.4° at 80° S,
    # -8.4° at 75° N, below the civil twilight's -6°.
    assert ephemeris.longest_night(-80.0, -6.0) == ephemeris.SECONDS_PER_DAY
    assert ephemeris.longest_night(75.0, -6.0) == ephemeris.SECONDS_PER_DAY
    assert ephemeris.longest_night(75.0, -18.0) < ephemeris.SECONDS_PER_DAY
