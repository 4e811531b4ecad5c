"""The night planner: windows, reasons, priorities first, overheads, and offline operation."""

import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from torosmanager.config import default_config
from torosmanager.scheduler.planner import Constraints, Planner, Target, duration_of

CONFIG = default_config()
AFTERNOON = datetime(2026, 11, 21, 20, 0, tzinfo=timezone.utc)
#: Transits around 05:30 UTC, high in the sky all night from Brownsville in November.
HIGH = {"ra": 30.0, "dec": 20.0}


@pytest.fixture(scope="module")
def planner():
    settings = dict(CONFIG["Observing"], **{"Moon Separation": 0.0})
    return Planner(CONFIG["Site"], Constraints.from_settings(settings))


def target(name, priority=5.0, duration=600.0, **where):
    return Target(name, where.get("ra", HIGH["ra"]), where.get("dec", HIGH["dec"]), priority,
                  duration, where.get("not_before"), where.get("not_after"))


def between(start, end):
    """A window on the night of the tests, from (hour, minute) *start* to *end* UTC."""
    return {"not_before": datetime(2026, 11, 22, *start, tzinfo=timezone.utc),
            "not_after": datetime(2026, 11, 22, *end, tzinfo=timezone.utc)}


def test_an_empty_night(planner):
    plan = planner.plan([], AFTERNOON)
    assert plan.entries == [] and plan.night_start > AFTERNOON


def test_entries_keep_their_full_length_and_do_not_overlap_with_slews(planner):
    targets = [target(f"t{i}", duration=300 + 30 * i, ra=20 + 5 * i) for i in range(8)]
    plan = planner.plan(targets, AFTERNOON)
    assert len(plan.entries) == 8
    for entry, source in zip(sorted(plan.entries, key=lambda e: e.id), sorted(
            targets, key=lambda t: t.id)):
        assert (entry.end - entry.start).total_seconds() == pytest.approx(source.duration)
    for first, second in zip(plan.entries, plan.entries[1:]):
        assert (second.start - first.end).total_seconds() >= second.slew - 1e-6
        assert second.slew >= CONFIG["Observing"]["Settle Time"]
    assert plan.entries[0].start >= plan.night_start


def test_higher_priority_wins_when_both_cannot_fit(planner):
    window = {"not_before": datetime(2026, 11, 22, 4, 0, tzinfo=timezone.utc),
              "not_after": datetime(2026, 11, 22, 4, 20, tzinfo=timezone.utc)}
    low, high = target("low", 3.0, 900, **window), target("high", 8.0, 900, **window)
    plan = planner.plan([low, high], AFTERNOON)
    assert [entry.id for entry in plan.entries] == ["high"]
    assert plan.unscheduled == {"low": "no room left tonight after orders of higher or equal "
                                        "priority"}


def test_an_order_goes_into_a_gap_it_fits_and_one_too_long_for_every_gap_is_left_out(planner):
    first = target("first", 9.0, 1200, **between((4, 0), (4, 30)))
    second = target("second", 8.0, 1200, **between((5, 0), (6, 0)))
    short = target("short", 5.0, 1200, **between((4, 0), (6, 0)))
    long = target("long", 4.0, 2700, **between((4, 0), (6, 0)))
    plan = planner.plan([long, short, second, first], AFTERNOON, refine=False)
    starts = {entry.id: entry for entry in plan.entries}
    assert list(starts) == ["first", "short", "second"]
    assert starts["first"].end <= starts["short"].start
    assert starts["short"].end <= starts["second"].start
    assert plan.unscheduled == {"long": "no room left tonight after orders of higher or equal "
                                        "priority"}


def test_of_equal_priority_the_order_left_out_is_told_so(planner):
    window = between((4, 0), (4, 20))
    plan = planner.plan([target("a", 5.0, 900, **window), target("b", 5.0, 900, **window)],
                        AFTERNOON)
    (left_out,) = plan.unscheduled
    assert plan.unscheduled[left_out] == ("no room left tonight after orders of higher or equal "
                                          "priority")


def test_an_order_alone_that_fits_only_without_its_slew_says_so(planner):
    """Its window is eleven minutes, the mount 100 s of slew and settling away: it was said to
    have no room "after orders of higher priority", with no other order."""
    window = between((4, 0), (4, 11))
    plan = planner.plan([target("alone", 5.0, 600, **window)], window["not_before"],
                        start_position=(210.0, -20.0), free_from=window["not_before"])
    assert plan.unscheduled == {"alone": (
        "needs 10 min without a break after 100 s of slew and settling, and is observable for "
        "at most 11 min at a stretch from 04:00 UTC tonight")}


def test_a_window_that_closes_before_dusk_is_not_said_to_have_ended(planner):
    """Asked in the afternoon, an order whose window closes before tonight's dark hours was
    said to have "ended" hours before its end."""
    closes = AFTERNOON + timedelta(hours=2)
    plan = planner.plan([target("dusk", not_before=AFTERNOON, not_after=closes)], AFTERNOON)
    assert plan.unscheduled == {"dusk": (
        f"its window closes at {closes:%Y-%m-%d %H:%M} UTC, before tonight's dark hours begin "
        f"({plan.night_start:%H:%M} UTC)")}
    later = planner.plan([target("dusk", not_before=AFTERNOON, not_after=closes)],
                         closes + timedelta(minutes=1))
    assert later.unscheduled == {"dusk": f"its window ended at {closes:%Y-%m-%d %H:%M} UTC"}


@pytest.mark.parametrize("airmass", [3.0, 10.0])
def test_the_telescopes_minimum_altitude_is_kept_where_the_airmass_limit_is_lower(airmass):
    """A Max Airmass of 3 is 19.5° of altitude: orders were planned from 19.8°, below the
    telescope's Minimum Altitude of 20°, which refused them at dispatch (and they failed)."""
    settings = dict(CONFIG["Observing"], **{"Max Airmass": airmass, "Moon Separation": 0.0})
    planner = Planner(CONFIG["Site"], Constraints.from_settings(settings))
    assert planner.constraints.min_altitude == 20.0
    # Rising at dusk from the east: planned at its earliest, now at 20° and above.
    plan = planner.plan([target("rising", 9.5, 600, ra=120.0, dec=20.0)], AFTERNOON)
    (entry,) = plan.entries
    assert 20.0 <= entry.altitude < 21.0
    # Culminating just below the telescope's limit, though above airmass 3's altitude (said
    # rounded down: not "reaches 20.0°"); and just above it, within the plan's margin:
    low = planner.plan([target("low", 5.0, 600, ra=60.0, dec=-44.1),
                        target("on", 5.0, 600, ra=60.0, dec=-43.9)], AFTERNOON)
    assert low.unscheduled == {
        "low": "never above 20° (Observing → Minimum Altitude) in tonight's dark hours; it "
               "reaches 19.9°",
        "on": "never above 20° (Observing → Minimum Altitude) in tonight's dark hours; it "
              "reaches 20.1°, within the plan's margin of 0.3°"}


def test_refining_slips_in_an_order_for_which_placed_ones_make_room(planner):
    targets = [target("early", 9.0, 1200, **between((4, 0), (4, 40))),
               target("late", 8.0, 1200, **between((4, 35), (5, 40))),  # 15 min after early
               target("slipped", 5.0, 1200, **between((4, 0), (5, 0)))]
    greedy = planner.plan(targets, AFTERNOON, refine=False)
    assert [entry.id for entry in greedy.entries] == ["early", "late"]
    assert "slipped" in greedy.unscheduled
    refined = planner.plan(targets, AFTERNOON)
    assert sorted(entry.id for entry in refined.entries) == ["early", "late", "slipped"]
    assert refined.unscheduled == {}


def test_an_order_stays_inside_its_own_window(planner):
    window = {"not_before": datetime(2026, 11, 22, 6, 0, tzinfo=timezone.utc),
              "not_after": datetime(2026, 11, 22, 7, 0, tzinfo=timezone.utc)}
    entry, = planner.plan([target("w", **window)], AFTERNOON).entries
    assert window["not_before"] <= entry.start and entry.end <= window["not_after"]


@pytest.mark.parametrize("changes, reason", [
    ({"dec": -85.0}, "never below airmass 2 (altitude 30°) in tonight's dark hours; it reaches"),
    ({"duration": 15 * 3600.0}, "needs 15.0 h without a break but is observable for at most"),
    ({"not_after": datetime(2026, 11, 21, 19, 0, tzinfo=timezone.utc)},
     "its window ended at 2026-11-21 19:00 UTC"),
    ({"not_before": datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)},
     "its window opens at 2026-11-23 00:00 UTC, after tonight"),
    # 34° high at 08:26, under 30° from 09:54: too low in its window, wherever the Moon is.
    ({"ra": 90.0, "dec": -30.0, "not_before": datetime(2026, 11, 22, 11, 5, tzinfo=timezone.utc)},
     "never below airmass 2 (altitude 30°) in its window's dark hours tonight (11:05–11:3"),
])
def test_what_cannot_be_observed_is_explained(planner, changes, reason):
    duration = changes.pop("duration", 600.0)
    plan = planner.plan([target("x", duration=duration, **changes)], AFTERNOON)
    assert plan.entries == [] and plan.unscheduled["x"].startswith(reason)


def test_the_moon_is_kept_at_a_distance():
    """A target beside the Moon, as seen from the site, is never observed while near it."""
    import astropy.units as u
    from astropy.coordinates import EarthLocation, SkyCoord, get_body
    from astropy.time import Time

    site = CONFIG["Site"]
    location = EarthLocation(lat=site["Latitude"] * u.deg, lon=site["Longitude"] * u.deg,
                             height=site["Elevation"] * u.m)
    midnight = Time(datetime(2026, 11, 22, 6, 0, tzinfo=timezone.utc))
    # The Moon's direction from the site (GCRS: ICRS axes), not `.icrs`, whose origin is the
    # solar system's barycentre.
    moon = get_body("moon", midnight, location)
    planner = Planner(CONFIG["Site"], Constraints.from_settings(CONFIG["Observing"]))
    plan = planner.plan([target("near", ra=moon.ra.deg, dec=moon.dec.deg, duration=300)],
                        AFTERNOON)
    for entry in plan.entries:
        there = get_body("moon", Time(entry.start), location)
        distance = there.separation(SkyCoord(entry.ra, entry.dec, unit="deg").transform_to(
            there.frame)).deg
        assert distance >= CONFIG["Observing"]["Moon Separation"]
    if not plan.entries:
        assert "too close to the Moon" in plan.unscheduled["near"]


def test_the_moon_is_kept_at_a_distance_only_while_it_is_up():
    """Once the Moon has set its light is gone: a target within Moon Separation of it is
    observed then. (With the default settings it cannot matter: 30° from a Moon below the
    horizon is below airmass 2. A wider separation, here 60°, or a higher Max Airmass can.)"""
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body
    from astropy.time import Time

    site = CONFIG["Site"]
    location = EarthLocation(lat=site["Latitude"] * u.deg, lon=site["Longitude"] * u.deg,
                             height=site["Elevation"] * u.m)
    planner = Planner(site, Constraints.from_settings(dict(CONFIG["Observing"],
                                                           **{"Moon Separation": 60.0})))
    # 46° from the Moon all night; the Moon sets about 10:37 UTC, dawn is at 11:33.
    near = target("near", ra=70.0, dec=40.0, duration=1200.0)
    plan = planner.plan([near], datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc))
    entry, = plan.entries
    for instant in (entry.start, entry.end):
        moon = get_body("moon", Time(instant), location)
        assert moon.transform_to(AltAz(obstime=Time(instant), location=location)).alt.deg < 0
        assert moon.separation(SkyCoord(70.0, 40.0, unit="deg").transform_to(
            moon.frame)).deg < 60.0


def test_a_planner_replanning_the_night_plans_as_a_fresh_one_would():
    """The Moon's track is computed once a night and reused by later plans of that night (the
    scheduler's re-plans): a later plan is the one a new planner makes, and a new night gets a
    new track."""
    settings = dict(CONFIG["Observing"], **{"Moon Separation": 30.0})
    reused = Planner(CONFIG["Site"], Constraints.from_settings(settings))
    targets = [target(f"t{number}", ra=number * 24.0, dec=number * 6.0 - 30.0, duration=900)
               for number in range(15)]
    reused.plan(targets, AFTERNOON)
    first_track = reused.moon_track(reused.night.window(AFTERNOON, settings["Sun Altitude"]))
    for hours in (3.0, 7.5):
        later = AFTERNOON + timedelta(hours=hours)
        fresh = Planner(CONFIG["Site"], Constraints.from_settings(settings))
        again, anew = reused.plan(targets, later), fresh.plan(targets, later)
        assert [(e.id, e.start) for e in again.entries] == [(e.id, e.start)
                                                            for e in anew.entries]
        assert again.unscheduled == anew.unscheduled
    window = reused.night.window(AFTERNOON + timedelta(hours=7.5), settings["Sun Altitude"])
    assert reused.moon_track(window)[0] == first_track[0]  # the same night's track
    next_night = reused.night.window(AFTERNOON + timedelta(days=1), settings["Sun Altitude"])
    assert reused.moon_track(next_night)[0] > first_track[0] + timedelta(hours=20)


def test_nothing_is_planned_before_the_telescope_is_free(planner):
    during = datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc)
    free = during + timedelta(minutes=40)
    entry, = planner.plan([target("next")], during, free_from=free).entries
    assert entry.start >= free


def test_duration_counts_frames_readouts_and_calibration():
    observing = dict(CONFIG["Observing"], **{"Flat Frames": 2})
    order = {"Exposure Time": 30.0, "Number of Exposures": 4, "Calibration Frames": True}
    readout = observing["Readout Time"]
    expected = (4 * (30 + readout) + observing["Bias Frames"] * readout
                + observing["Dark Frames"] * (30 + readout)
                + 2 * (observing["Flat Exposure Time"] + readout))
    assert duration_of(order, observing) == expected


def test_an_order_tried_again_is_planned_for_the_frames_still_missing():
    """The telescope takes only the frames an earlier attempt did not: an order interrupted
    after most of its frames was planned for all of them again (found by an audit: 25 minutes
    reserved for the last of five 300 s frames)."""
    observing = dict(CONFIG["Observing"], **{"Flat Frames": 2})
    order = {"Exposure Time": 300.0, "Number of Exposures": 5, "Calibration Frames": True}
    readout = observing["Readout Time"]
    done = {"Frames Done": 4, "Calibration Done": {"BIAS": observing["Bias Frames"], "FLAT": 1}}
    expected = (300 + readout + observing["Dark Frames"] * (300 + readout)
                + observing["Flat Exposure Time"] + readout)
    assert duration_of(order, observing, done) == expected
    everything = {"Frames Done": 5, "Calibration Done": {"BIAS": 9, "DARK": 9, "FLAT": 9}}
    assert duration_of(order, observing, everything) == readout  # never nothing


OFFLINE_PLAN = """
import socket
def refuse(*args, **kwargs):
    raise AssertionError("tried to reach the network")
socket.socket.connect = refuse
from datetime import datetime, timezone
from torosmanager.earth_rotation import use_astropy_offline
use_astropy_offline()
from torosmanager.config import default_config
from torosmanager.scheduler.planner import Constraints, Planner, Target
config = default_config()
planner = Planner(config["Site"], Constraints.from_settings(config["Observing"]))
# Two years on, the bundled IERS tables are stale: planning must still work.
now = datetime(2028, 11, 21, 20, 0, tzinfo=timezone.utc)
plan = planner.plan([Target(str(i), 10.0 * i, 20.0, 5.0, 600.0) for i in range(12)], now)
print(len(plan.entries))
"""


def test_planning_works_with_the_network_off():
    command = [sys.executable, "-c", OFFLINE_PLAN]
    if os.geteuid() == 0 and shutil.which("unshare"):
        command = ["unshare", "--net"] + command  # a namespace with no network at all
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 0


def test_a_need_is_rounded_up_and_what_is_available_down():
    """"needs 103 min without a break but is observable for at most 103 min" was said of
    102.6 and 102.8 minutes, both rounded to 103."""
    import math

    from torosmanager.scheduler.planner import span_text
    assert span_text(102.6 * 60, math.ceil) == "103 min"
    assert span_text(102.8 * 60, math.floor) == "102 min"
    assert span_text(5.04 * 3600, math.ceil) == "5.1 h"
    assert span_text(102.6 * 60) == "103 min"
