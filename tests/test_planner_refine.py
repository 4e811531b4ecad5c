"""The planner's local search (torosmanager/scheduler/refine.py), checked with astropy alone.

Random targets at a northern site (CTMO) and a southern one (Cordón Macón) are planned greedy
only and refined; the refined plans are sampled every 30 s from each observation's start to its
end for the airmass, Sun and Moon limits, and checked for full-length observations, slews between
them, the orders' own windows, and a sum of priorities never below the greedy plan's.
"""

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from torosmanager.config import default_config
from torosmanager.scheduler.planner import Constraints, Planner, Target

from plan_samples import samples

CONFIG = default_config()
#: Airmass 2, Sun -18°, Moon 30°, 2°/s, 10 s settle and readout.
SETTINGS = CONFIG["Observing"]
SITES = {"CTMO": CONFIG["Site"],
         "Cordón Macón": {"Name": "Cordón Macón", "Latitude": -24.62, "Longitude": -67.32,
                          "Elevation": 4650.0}}
AFTERNOON = datetime(2026, 11, 21, 20, 0, tzinfo=timezone.utc)
#: Enough targets that the night is full and orders compete for it.
TARGETS = 150
SEED = 5
EXPOSURE_RANGE = (60.0, 600.0)
#: One target in this many gets a window of its own (Not Before / Not After).
WINDOW_EVERY = 7
WINDOW_HOURS = 2.5
#: Floating-point slack when comparing instants, seconds.
TOLERANCE = 1e-3


def location(site):
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    return EarthLocation(lat=site["Latitude"] * u.deg, lon=site["Longitude"] * u.deg,
                         height=site["Elevation"] * u.m)


def random_targets(site):
    """Targets up at airmass ≤ 2 at *site* at some time of the night (by astropy), some of
    them with a window of their own."""
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.time import Time

    rng = np.random.default_rng(SEED)
    night = Time(datetime(2026, 11, 22, 0, 0)) + np.arange(0, 12.5, 0.5) * u.hour
    frame = AltAz(obstime=night, location=location(site))
    targets = []
    while len(targets) < TARGETS:
        ra = rng.uniform(0, 360, TARGETS)
        dec = np.degrees(np.arcsin(rng.uniform(-1, 1, TARGETS)))
        secz = SkyCoord(ra * u.deg, dec * u.deg)[:, None].transform_to(frame[None, :]).secz.value
        for i in np.flatnonzero(((secz > 0) & (secz <= SETTINGS["Max Airmass"])).any(axis=1)):
            if len(targets) == TARGETS:
                break
            number = len(targets)
            window = {}
            if number % WINDOW_EVERY == 0:
                opens = AFTERNOON + timedelta(hours=float(rng.uniform(4, 12)))
                window = {"not_before": opens,
                          "not_after": opens + timedelta(hours=WINDOW_HOURS)}
            targets.append(Target(f"r{number}", float(ra[i]), float(dec[i]),
                                  round(float(rng.uniform(0, 10)), 2),
                                  float(rng.uniform(*EXPOSURE_RANGE)) + SETTINGS["Readout Time"],
                                  window.get("not_before"), window.get("not_after")))
    return targets


@pytest.fixture(scope="module", params=list(SITES))
def plans(request):
    """(site, targets by ID, greedy plan, refined plan) at each site."""
    site = SITES[request.param]
    targets = random_targets(site)
    planner = Planner(site, Constraints.from_settings(SETTINGS))
    greedy = planner.plan(targets, AFTERNOON, refine=False)
    refined = planner.plan(targets, AFTERNOON)
    return site, {target.id: target for target in targets}, greedy, refined


def test_refined_plans_keep_the_airmass_sun_and_moon_limits(plans):
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord, get_body

    site, _, _, plan = plans
    owner, times = samples(plan.entries, AFTERNOON)
    frame = AltAz(obstime=times, location=location(site))
    ra = np.array([plan.entries[i].ra for i in owner])
    dec = np.array([plan.entries[i].dec for i in owner])
    target = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame)
    assert (target.alt.deg > 0).all()
    assert target.secz.value.max() <= SETTINGS["Max Airmass"]
    assert get_body("sun", times, location(site)).transform_to(frame).alt.deg.max() \
        <= SETTINGS["Sun Altitude"]
    moon = get_body("moon", times, location(site))
    distance = moon.separation(SkyCoord(ra * u.deg, dec * u.deg).transform_to(moon.frame)).deg
    assert distance.min() >= SETTINGS["Moon Separation"]


def test_refined_plans_keep_full_length_slews_windows_and_the_night(plans):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    _, targets, _, plan = plans
    assert len({entry.id for entry in plan.entries}) == len(plan.entries)
    for entry in plan.entries:
        source = targets[entry.id]
        assert (entry.end - entry.start).total_seconds() == pytest.approx(source.duration,
                                                                           abs=TOLERANCE)
        if source.not_before is not None:
            assert source.not_before <= entry.start and entry.end <= source.not_after
    for before, after in zip(plan.entries, plan.entries[1:]):
        distance = SkyCoord(before.ra * u.deg, before.dec * u.deg).separation(
            SkyCoord(after.ra * u.deg, after.dec * u.deg)).deg
        needed = distance / SETTINGS["Slew Rate"] + SETTINGS["Settle Time"]
        assert (after.start - before.end).total_seconds() >= needed - TOLERANCE
        assert after.slew == pytest.approx(needed, abs=0.1)
    assert plan.night_start <= plan.entries[0].start
    assert plan.entries[-1].end <= plan.night_end


def test_refining_never_lowers_the_sum_of_priorities(plans):
    _, _, greedy, refined = plans
    assert refined.total_priority >= greedy.total_priority


def test_every_order_is_planned_or_explained(plans):
    _, targets, _, plan = plans
    planned = {entry.id for entry in plan.entries}
    assert planned.isdisjoint(plan.unscheduled)
    assert planned | set(plan.unscheduled) == set(targets)
    assert all(plan.unscheduled.values())


def test_the_refined_plan_is_the_same_every_time(plans):
    site, targets, _, plan = plans
    again = Planner(site, Constraints.from_settings(SETTINGS)).plan(list(targets.values()),
                                                                    AFTERNOON)
    assert [(entry.id, entry.start) for entry in again.entries] == [
        (entry.id, entry.start) for entry in plan.entries]


def secz_at_middle(entry, site):
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.time import Time

    middle = entry.start + (entry.end - entry.start) / 2
    return float(SkyCoord(entry.ra * u.deg, entry.dec * u.deg).transform_to(
        AltAz(obstime=Time(middle), location=location(site))).secz.value)


def test_a_rising_target_is_observed_nearer_its_transit():
    """Greedy, a target that rises at dusk and transits near dawn is observed as soon as it
    rises, near airmass 2; refined, later and higher, the other order still observed."""
    site = SITES["CTMO"]
    planner = Planner(site, Constraints.from_settings(dict(SETTINGS, **{"Moon Separation": 0})))
    # RA 100°: transits at CTMO about 08:40 UTC on 2026-11-22, dawn at 11:40; dusk at 00:40.
    targets = [Target("rising", 100.0, 25.0, 6.0, 900.0),
               Target("high", 30.0, 20.0, 8.0, 600.0)]
    greedy = planner.plan(targets, AFTERNOON, refine=False)
    refined = planner.plan(targets, AFTERNOON)
    assert {entry.id for entry in refined.entries} == {"rising", "high"}
    before = {entry.id: secz_at_middle(entry, site) for entry in greedy.entries}
    after = {entry.id: secz_at_middle(entry, site) for entry in refined.entries}
    assert before["rising"] > 1.5 and after["rising"] < 1.1
    assert sum(after.values()) < sum(before.values())


def test_targets_of_opportunity_are_kept_at_their_earliest_not_moved_toward_transit():
    """Three targets of opportunity up now, that transit three hours later, and a routine
    order: the refined plan keeps them first, one after the other, as the scheduler dispatches
    them (it showed them planned an hour later, toward their transit, and routine work before
    them)."""
    site = SITES["CTMO"]
    planner = Planner(site, Constraints.from_settings(dict(SETTINGS, **{"Moon Separation": 0})))
    now = datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc)
    # RA 60°-62°: at 03:00 UTC about 45° up at CTMO, transiting near 06:00.
    toos = [Target(f"too-{n}", 60.0 + n, 25.0, 10.0, 600.0, urgent=True) for n in range(3)]
    routine = Target("routine", 30.0, 20.0, 5.0, 600.0)
    greedy = {entry.id: entry.start for entry in planner.plan(toos + [routine], now,
                                                                refine=False).entries}
    refined = planner.plan(toos + [routine], now)
    assert {entry.id for entry in refined.entries[:3]} == {"too-0", "too-1", "too-2"}
    assert refined.entries[0].start - now < timedelta(minutes=1)
    for entry in refined.entries[:3]:      # later by a grid step at most
        assert entry.start - greedy[entry.id] <= timedelta(seconds=60), entry
    # Routine work is still moved toward its best airmass, and so were these before.
    assert refined.entries[3].start - greedy["routine"] > timedelta(minutes=30)
    as_routine = planner.plan([Target(t.id, t.ra, t.dec, t.priority, t.duration)
                               for t in toos] + [routine], now)
    assert min(entry.start for entry in as_routine.entries
               if entry.id.startswith("too")) - now > timedelta(minutes=30)


def test_a_budget_and_a_number_of_entries_hold_after_refining():
    site = SITES["CTMO"]
    targets = random_targets(site)
    planner = Planner(site, Constraints.from_settings(SETTINGS))
    budget, limit = 3 * 3600.0, 12
    plan = planner.plan(targets, AFTERNOON, budget=budget, max_entries=limit, refine=True)
    assert 0 < len(plan.entries) <= limit
    assert sum((entry.end - entry.start).total_seconds() + entry.slew
               for entry in plan.entries) <= budget + TOLERANCE
    greedy = planner.plan(targets, AFTERNOON, budget=budget, max_entries=limit, refine=False)
    assert plan.total_priority >= greedy.total_priority
    assert math.isfinite(plan.total_priority)


def test_a_high_priority_order_is_not_exchanged_for_lower_ones_worth_more_together():
    """Four short orders of priority 4 would fill the window a priority-10 order takes and
    add up to more; the refined plan still observes the priority-10 order."""
    site = SITES["CTMO"]
    planner = Planner(site, Constraints.from_settings(dict(SETTINGS, **{"Moon Separation": 0})))
    opens = datetime(2026, 11, 22, 4, 0, tzinfo=timezone.utc)
    window = {"not_before": opens, "not_after": opens + timedelta(minutes=25)}
    targets = [Target("urgent", 30.0, 20.0, 10.0, 1200.0, **window)] + [
        Target(f"routine-{n}", 30.0, 20.0 + n, 4.0, 280.0, **window) for n in range(4)]
    plan = planner.plan(targets, AFTERNOON)
    assert "urgent" in {entry.id for entry in plan.entries}
    greedy = planner.plan(targets, AFTERNOON, refine=False)
    assert plan.total_priority >= greedy.total_priority
