"""Tonight at the site: dark hours, target altitudes (checked against astropy), airmass."""

from datetime import datetime, timedelta, timezone

import erfa
import numpy as np
import pytest

from torosmanager.config import default_config
from torosmanager.night import (GRID_MINUTES, Night, airmass, hour_angle_of, local_night_date,
                                sun_altitude)

SITE = default_config()["Site"]  # CTMO, Brownsville
AFTERNOON = datetime(2026, 11, 21, 20, 0, tzinfo=timezone.utc)  # 14:00 local


#: The observatories of the collaboration and one far north, where the Sun stays low.
SITES = [SITE, {"Latitude": -24.62, "Longitude": -67.32, "Elevation": 4650.0},
         {"Latitude": 69.0, "Longitude": 20.0, "Elevation": 0.0}]


@pytest.fixture(scope="module")
def night():
    nights = Night(SITE)
    return nights, nights.window(AFTERNOON, -18.0)


def test_the_next_night_is_bounded_by_astronomical_twilight(night):
    nights, window = night
    assert window.start > AFTERNOON
    assert sun_altitude(SITE, window.start + (window.end - window.start) / 2) < -18
    assert timedelta(hours=9) < window.end - window.start < timedelta(hours=12)


@pytest.mark.parametrize("site", SITES[:2], ids=["CTMO", "Cordón Macón"])
@pytest.mark.parametrize("day", [0, 61, 122, 183, 244, 305])
def test_the_night_begins_and_ends_within_the_minute_the_sun_crosses_the_limit(site, day):
    """Its edges were grid points, up to 5 minutes inside the dark hours at dusk and at dawn
    ("dark from 01:04" for a Sun at -18° at 01:00:20); now the whole minutes just inside."""
    afternoon = AFTERNOON + timedelta(days=day) - timedelta(hours=site["Longitude"] / 15 + 6)
    window = Night(site).window(afternoon, -18.0)
    minute = timedelta(minutes=1)
    assert window.start.second == window.end.second == 0
    assert sun_altitude(site, window.start) < -18 < sun_altitude(site, window.start - minute)
    assert sun_altitude(site, window.end) < -18 < sun_altitude(site, window.end + minute)


# astropy says, for the instants after the IERS table's end, that it takes the mean pole.
@pytest.mark.filterwarnings("ignore:Tried to get polar motions for times after IERS data")
@pytest.mark.parametrize("site", SITES, ids=["CTMO", "Cordón Macón", "69° N"])
def test_the_suns_altitude_is_astropys_within_a_hundredth_of_a_degree(site):
    """The dome decides daylight on this Sun: astropy's apparent Sun in ``AltAz`` (without
    refraction), at instants over four years, some after the IERS table's end."""
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body
    from astropy.time import Time

    location = EarthLocation(lat=site["Latitude"] * u.deg, lon=site["Longitude"] * u.deg,
                             height=site["Elevation"] * u.m)
    offsets = np.random.default_rng(7).uniform(0, 4 * 365 * 86400, 40)
    instants = [datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=float(offset))
                for offset in offsets]
    times = Time(instants)
    expected = get_body("sun", times, location).transform_to(
        AltAz(obstime=times, location=location)).alt.deg
    ours = [sun_altitude(site, instant) for instant in instants]
    assert np.max(np.abs(np.array(ours) - expected)) < 0.01
    assert np.ptp(expected) > 60  # day and night, not one instant repeated


def test_during_the_night_the_window_is_the_rest_of_it(night):
    nights, window = night
    midnight = window.start + timedelta(hours=4)
    current = nights.window(midnight, -18.0)
    assert current.start == midnight and current.end == window.end


@pytest.mark.parametrize("hours", [0.5, 4, 9])
def test_the_whole_night_in_progress_is_given_from_its_start_when_asked(night, hours):
    """What the demo replays when it is started during the night: asked of a Night that has
    not seen that night yet (no cache), the same night as found from the afternoon."""
    _, window = night
    asked = window.start + timedelta(hours=hours)
    whole = Night(SITE).window(asked, -18.0, whole=True)
    assert (whole.start, whole.end) == (window.start, window.end)
    assert np.array_equal(whole.times, window.times)
    # Also after the rest of it was asked for first (and remembered).
    nights = Night(SITE)
    assert nights.window(asked, -18.0).start == asked
    assert nights.window(asked + timedelta(minutes=20), -18.0, whole=True).start == window.start


def test_a_night_says_whether_it_began_at_dusk_or_only_when_it_was_looked_for(night):
    """A polar night has no dusk: its start is only where the search began (a close of the
    dome "tonight" cannot be told from one before it by that start)."""
    _, window = night
    asked = window.start + timedelta(hours=4)
    assert Night(SITE).window(asked, -18.0, whole=True).starts_at_dusk
    assert Night(SITE).window(asked, -18.0).starts_at_dusk  # the rest of a night that did
    pole = Night({"Latitude": -89.99, "Longitude": 0.0, "Elevation": 2835.0})
    june = datetime(2026, 6, 10, 6, 0, tzinfo=timezone.utc)
    polar = pole.window(june, -18.0, whole=True)
    assert polar.start == june and not polar.starts_at_dusk


@pytest.mark.parametrize("asked", [
    [timedelta(minutes=-1), timedelta(minutes=1)],    # a daemon asking through dawn
    [timedelta(minutes=1), timedelta(minutes=3)],     # first asked just after dawn
    [timedelta(minutes=-30), timedelta(minutes=-3)],  # too little left to plan in
    [timedelta(minutes=-30), timedelta(hours=2)],     # hours later, the same Night
])
def test_at_dawn_the_window_moves_to_the_next_night(night, asked):
    _, tonight = night
    nights = Night(SITE)
    for offset in asked:
        window = nights.window(tonight.end + offset, -18.0)
        if offset <= -timedelta(minutes=GRID_MINUTES):
            assert window.end == tonight.end  # the rest of tonight
        else:
            assert timedelta(hours=12) < window.start - tonight.end < timedelta(hours=15)
            assert timedelta(hours=9) < window.end - window.start < timedelta(hours=12)


def test_altitudes_agree_with_astropy(night):
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    nights, window = night
    rng = np.random.default_rng(7)
    ra, dec = rng.uniform(0, 360, 20), rng.uniform(-40, 80, 20)
    ours = nights.altitudes(window, ra, dec)
    location = EarthLocation(lat=SITE["Latitude"] * u.deg, lon=SITE["Longitude"] * u.deg,
                             height=SITE["Elevation"] * u.m)
    every = slice(None, None, 15)
    times = Time(window.times[every])
    reference = SkyCoord(ra * u.deg, dec * u.deg)[:, None].transform_to(
        AltAz(obstime=times[None, :], location=location)).alt.deg
    above = reference > 10  # refraction, which astropy leaves out too, matters only lower
    assert np.abs(ours[:, every] - reference)[above].max() < 0.05


def test_max_altitude_of_a_target_that_never_rises(night):
    nights, window = night
    highest, _ = nights.max_altitude(window, 0.0, -85.0)
    assert highest < 0  # from latitude 26° north, Dec −85° stays below the horizon


@pytest.mark.parametrize("altitude, expected", [(90, 1.0), (30, 1.995), (10, 5.6)])
def test_airmass(altitude, expected):
    assert airmass(altitude) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("instant, date", [
    (datetime(2026, 11, 22, 2, 0, tzinfo=timezone.utc), "20261121"),   # 20:00 local
    (datetime(2026, 11, 22, 11, 0, tzinfo=timezone.utc), "20261121"),  # 05:00 local
    (datetime(2026, 11, 22, 19, 0, tzinfo=timezone.utc), "20261122"),  # 13:00 local
])
def test_frames_belong_to_the_evening_the_night_began(instant, date):
    assert local_night_date(instant, SITE["Longitude"]) == date


def test_precession_is_astropys_fk5():
    """`precess` applies astropy's ICRS → FK5 rotation, computed once per equinox: the same
    places as astropy's own transform, to well under a micro-arcsecond, poles included."""
    import astropy.units as u
    from astropy.coordinates import FK5, SkyCoord
    from astropy.time import Time

    from torosmanager.night import precess

    rng = np.random.default_rng(12)
    ra = np.concatenate([rng.uniform(0, 360, 500), [0.0, 359.9999, 123.0]])
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, 500))),
                          [89.9999, -89.9999, 0.0]])
    for jyear in (2000.0, 2026.9, 2051.3):
        ours = SkyCoord(*precess(ra, dec, jyear), unit="deg")
        theirs = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").transform_to(
            FK5(equinox=Time(jyear, format="jyear")))
        separation = ours.separation(SkyCoord(theirs.ra, theirs.dec)).to(u.arcsec).value
        assert separation.max() < 1e-6


@pytest.mark.parametrize("latitude", [25.9958, -24.62])
def test_the_hour_angle_is_read_back_from_altitude_and_azimuth(latitude):
    """``hour_angle_of`` undoes ERFA's hour angle → horizon (``hd2ae``), west positive."""
    rng = np.random.default_rng(7)
    hour_angles = rng.uniform(-np.pi, np.pi, 200)
    declinations = rng.uniform(-np.pi / 2, np.pi / 2, 200)
    azimuths, altitudes = erfa.hd2ae(hour_angles, declinations, np.radians(latitude))
    for hour_angle, azimuth, altitude in zip(hour_angles, azimuths, altitudes):
        found = hour_angle_of(latitude, np.degrees(altitude), np.degrees(azimuth))
        difference = (found - np.degrees(hour_angle) + 180) % 360 - 180
        assert abs(difference) < 1e-9
