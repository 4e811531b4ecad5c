"""The planner's plans, checked independently with astropy (none of the planner's own code).

Thirty random targets observable at CTMO on one night are planned with the default
constraints; every planned observation is sampled every 30 s from its start to its end.
bench/scheduling.py does the same at scale, against astroplan.
"""

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from torosmanager.config import default_config
from torosmanager.scheduler.planner import Constraints, Planner, Target

from plan_samples import samples

CONFIG = default_config()
SITE = CONFIG["Site"]
SETTINGS = CONFIG["Observing"]  # airmass 2, Sun -18°, Moon 30°, 2°/s, 10 s settle and readout
AFTERNOON = datetime(2026, 11, 21, 20, 0, tzinfo=timezone.utc)
TARGETS = 30
SEED = 11
EXPOSURE_RANGE = (60.0, 600.0)
#: Floating-point slack when comparing instants, seconds.
TOLERANCE = 1e-3


def location():
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    return EarthLocation(lat=SITE["Latitude"] * u.deg, lon=SITE["Longitude"] * u.deg,
                         height=SITE["Elevation"] * u.m)


def random_targets():
    """Targets up at airmass ≤ 2 at CTMO at some time of the night (by astropy)."""
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.time import Time

    rng = np.random.default_rng(SEED)
    night = Time(datetime(2026, 11, 22, 1, 0)) + np.arange(0, 10.5, 0.5) * u.hour
    frame = AltAz(obstime=night, location=location())
    targets = []
    while len(targets) < TARGETS:
        ra, dec = rng.uniform(0, 360), math.degrees(math.asin(rng.uniform(-1, 1)))
        secz = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame).secz.value
        if ((secz > 0) & (secz <= CONFIG["Observing"]["Max Airmass"])).any():
            seconds = rng.uniform(*EXPOSURE_RANGE) + SETTINGS["Readout Time"]
            targets.append(Target(f"q{len(targets)}", ra, dec, round(rng.uniform(0, 10), 2),
                                  seconds))
    return targets


@pytest.fixture(scope="module")
def planned():
    targets = random_targets()
    plan = Planner(SITE, Constraints.from_settings(SETTINGS)).plan(targets, AFTERNOON)
    assert len(plan.entries) >= TARGETS // 2
    return {target.id: target for target in targets}, plan


def test_every_observation_keeps_the_airmass_and_sun_limits(planned):
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord, get_body

    _, plan = planned
    owner, times = samples(plan.entries, AFTERNOON)
    frame = AltAz(obstime=times, location=location())
    ra = np.array([plan.entries[i].ra for i in owner])
    dec = np.array([plan.entries[i].dec for i in owner])
    target = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame)
    sun = get_body("sun", times, location()).transform_to(frame)
    assert (target.alt.deg > 0).all()
    assert target.secz.value.max() <= SETTINGS["Max Airmass"]
    assert sun.alt.deg.max() <= SETTINGS["Sun Altitude"]


def test_observations_are_full_length_and_leave_time_to_slew(planned):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    targets, plan = planned
    for entry in plan.entries:
        length = (entry.end - entry.start).total_seconds()
        assert length == pytest.approx(targets[entry.id].duration, abs=TOLERANCE)
    for before, after in zip(plan.entries, plan.entries[1:]):
        distance = SkyCoord(before.ra * u.deg, before.dec * u.deg).separation(
            SkyCoord(after.ra * u.deg, after.dec * u.deg)).deg
        needed = distance / SETTINGS["Slew Rate"] + SETTINGS["Settle Time"]
        assert (after.start - before.end).total_seconds() >= needed - TOLERANCE


def test_the_plan_is_in_time_order_and_in_the_night(planned):
    _, plan = planned
    starts = [entry.start for entry in plan.entries]
    assert starts == sorted(starts)
    assert plan.night_start <= starts[0] and plan.entries[-1].end <= plan.night_end


def test_every_observation_keeps_away_from_the_moon(planned):
    import astropy.units as u
    from astropy.coordinates import SkyCoord, get_body

    _, plan = planned
    owner, times = samples(plan.entries, AFTERNOON)
    ra = np.array([plan.entries[i].ra for i in owner])
    dec = np.array([plan.entries[i].dec for i in owner])
    # The Moon as seen from the site; the targets (no distance) are carried into its frame.
    moon = get_body("moon", times, location())
    distance = moon.separation(SkyCoord(ra * u.deg, dec * u.deg).transform_to(moon.frame)).deg
    assert distance.min() >= SETTINGS["Moon Separation"]


def test_each_entry_records_the_slew_from_the_entry_before(planned):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    _, plan = planned
    for before, after in zip(plan.entries, plan.entries[1:]):
        distance = SkyCoord(before.ra * u.deg, before.dec * u.deg).separation(
            SkyCoord(after.ra * u.deg, after.dec * u.deg)).deg
        assert after.slew == pytest.approx(
            distance / SETTINGS["Slew Rate"] + SETTINGS["Settle Time"], abs=0.1)


def test_a_plan_made_during_the_night_keeps_the_airmass_limit():
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.time import Time
    planner = Planner(SITE, Constraints.from_settings(dict(SETTINGS, **{"Moon Separation": 0})))
    planner.plan([], AFTERNOON)  # as the daemon does: the night is now cached
    now = datetime(2026, 11, 22, 4, 0, 10, tzinfo=timezone.utc)  # 4 min 50 s before a grid point
    # A target rising through airmass 2 two minutes after now.
    crossing = now + timedelta(minutes=2)
    lst = Time(crossing).sidereal_time("apparent", longitude=SITE["Longitude"] * u.deg).deg
    latitude, dec = math.radians(SITE["Latitude"]), 10.0
    limit = math.asin(1 / SETTINGS["Max Airmass"])
    hour_angle = math.degrees(math.acos(
        (math.sin(limit) - math.sin(latitude) * math.sin(math.radians(dec)))
        / (math.cos(latitude) * math.cos(math.radians(dec)))))
    target = Target("rising", (lst + hour_angle) % 360, dec, 9.0, 60.0)
    entry = planner.plan([target], now).entries[0]
    secz = SkyCoord(target.ra * u.deg, target.dec * u.deg).transform_to(
        AltAz(obstime=Time(entry.start), location=location())).secz.value
    assert secz <= SETTINGS["Max Airmass"]
