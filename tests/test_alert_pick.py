"""The pick of an alert's targets for tonight, checked against the baseline and with astropy.

The site is CTMO (the configuration's defaults: latitude 25.99°, longitude −97.57°), with the
default Scheduler limits (airmass 2, i.e. altitude 30°; Sun below −18°; Moon 30° away, near
RA 160° Dec +7° that night). On 2026-12-01 the dark hours run 01:00–11:35 UTC.
"""

import copy
import math
from datetime import datetime, timezone

import numpy as np
import pytest

from torosmanager.alerts.pick import Candidate, pick, reference_pick
from torosmanager.config import default_config
from torosmanager.scheduler.planner import Plan, Planner

CONFIG = default_config()
SITE = CONFIG["Site"]
OBSERVING = CONFIG["Observing"]
EVENING = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)   # an hour before dusk
AFTERNOON = datetime(2026, 12, 1, 18, 0, tzinfo=timezone.utc)  # local noon: the next night
MIDNIGHT = datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)    # the night half gone
TEN_MINUTES = 600.0
#: Float slack when adding seconds, and altitude slack (degrees) against the planner's own
#: altitude: it uses a fast formula within 0.05° of astropy's full transform.
SECONDS_SLACK = 1e-6
ALTITUDE_AGREEMENT = 0.1
#: Every target is checked every this many seconds of its slot with astropy.
CHECK_SECONDS = 60.0

#: Two that never rise above 30° here, three up only in the last two hours of the night, three
#: setting in the evening, four within a degree or two of each other, two up from 04:00.
SCENARIO = [Candidate(*row) for row in [
    ("never-1", 40.0, -80.0, 0.20), ("never-2", 120.0, -82.0, 0.15),
    ("late-1", 185.0, 40.0, 0.12), ("late-2", 190.0, 42.0, 0.10), ("late-3", 180.0, 45.0, 0.09),
    ("evening-1", 330.0, 20.0, 0.08), ("evening-2", 332.0, 21.0, 0.07),
    ("evening-3", 334.0, 19.0, 0.06),
    ("near-1", 30.0, 20.0, 0.05), ("near-2", 31.0, 20.5, 0.045), ("near-3", 29.5, 21.0, 0.04),
    ("near-4", 30.5, 19.0, 0.035),
    ("middle-1", 90.0, 10.0, 0.03), ("middle-2", 100.0, 30.0, 0.025),
]]
NEAR = [candidate for candidate in SCENARIO if candidate.name.startswith("near")]
BUDGET_HOURS = 1.5
#: Where the telescope points before the alert (far from every candidate: a long first slew).
PARKED = (250.0, -20.0)


def location():
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    return EarthLocation(lat=SITE["Latitude"] * u.deg, lon=SITE["Longitude"] * u.deg,
                         height=SITE["Elevation"] * u.m)


def slews(chosen, start_position=None):
    """Seconds of slew and settle before each choice, from astropy's separations."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    positions = [start_position] + [(c.candidate.ra, c.candidate.dec) for c in chosen]
    seconds = []
    for before, after in zip(positions, positions[1:]):
        angle = 0.0 if before is None else SkyCoord(*before, unit="deg").separation(
            SkyCoord(*after, unit="deg")).to_value(u.deg)
        seconds.append(angle / OBSERVING["Slew Rate"] + OBSERVING["Settle Time"])
    return seconds


def sampled(chosen):
    """Each choice's ICRS position and instants every CHECK_SECONDS of its slot, flattened."""
    import astropy.units as u
    from astropy.time import Time

    ra, dec, instants = [], [], []
    for choice in chosen:
        span = (choice.end - choice.start).total_seconds()
        for offset in np.append(np.arange(0.0, span, CHECK_SECONDS), span):
            ra.append(choice.candidate.ra)
            dec.append(choice.candidate.dec)
            instants.append(Time(choice.start) + offset * u.s)
    return np.array(ra), np.array(dec), Time(instants)


def astropy_times(instants):
    from astropy.time import Time

    return Time(instants)


def altitudes(ra, dec, times):
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord, get_body

    frame = AltAz(obstime=times, location=location())
    target = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame).alt.deg
    sun = get_body("sun", times, location()).transform_to(frame).alt.deg
    return target, sun


def names(result):
    return [choice.candidate.name for choice in result.chosen]


@pytest.fixture(scope="module")
def scenario():
    return (pick(SCENARIO, EVENING, CONFIG, TEN_MINUTES, BUDGET_HOURS, start_position=PARKED),
            reference_pick(SCENARIO, EVENING, CONFIG, TEN_MINUTES, BUDGET_HOURS,
                           start_position=PARKED))


def test_the_pick_covers_more_than_the_baseline(scenario):
    chosen, baseline = scenario
    assert chosen.covered > baseline.covered
    assert chosen.covered == pytest.approx(sum(c.candidate.weight for c in chosen.chosen))
    # The late targets are worth waiting for; the baseline tries them at dusk.
    assert {"late-1", "late-2", "late-3"} <= set(names(chosen))
    assert all(chosen.not_chosen[name].startswith("over the budget of 90 min")
               for name in ("near-3", "near-4", "middle-1", "middle-2"))


def test_the_baseline_covers_what_its_list_really_covers(scenario):
    _, baseline = scenario
    # By duration alone the budget holds 9: the two that never rise, the three late ones,
    # the three evening ones and near-1. From dusk, only the last four can be observed.
    assert names(baseline) == ["evening-1", "evening-2", "evening-3", "near-1"]
    assert baseline.covered == pytest.approx(0.26)
    assert baseline.not_chosen["late-1"].startswith("not observable when its turn came, at 01:")
    assert baseline.not_chosen["near-2"] == (
        "not among the 9 heaviest that the budget holds by duration")


def test_a_target_that_never_rises_is_never_chosen_and_every_other_has_a_reason(scenario):
    for result in scenario:
        assert not {"never-1", "never-2"} & set(names(result))
        for never in ("never-1", "never-2"):
            assert result.not_chosen[never].startswith(
                "never below airmass 2 (altitude 30°) in tonight's dark hours; it reaches -")
        assert sorted(names(result) + list(result.not_chosen)) == sorted(
            candidate.name for candidate in SCENARIO)
        assert all(result.not_chosen.values())
        weights = [next(c.weight for c in SCENARIO if c.name == name)
                   for name in result.not_chosen]
        assert weights == sorted(weights, reverse=True)  # heaviest first


@pytest.mark.parametrize("which", ["pick", "reference"])
def test_the_slots_are_dark_above_the_airmass_limit_and_within_the_budget(scenario, which):
    result = scenario[0] if which == "pick" else scenario[1]
    chosen = result.chosen
    assert chosen
    starts = [choice.start for choice in chosen]
    assert starts == sorted(starts)
    assert all(result.night_start <= c.start and c.end <= result.night_end for c in chosen)
    assert all((c.end - c.start).total_seconds() == pytest.approx(TEN_MINUTES) for c in chosen)
    before = slews(chosen, PARKED)
    # The first slew starts at dusk at the earliest; each slew fits between two slots.
    ready = [result.night_start] + [c.end for c in chosen[:-1]]
    for choice, previous_end, slew in zip(chosen, ready, before):
        assert (choice.start - previous_end).total_seconds() >= slew - SECONDS_SLACK
    used = sum((c.end - c.start).total_seconds() for c in chosen) + sum(before)
    assert used <= BUDGET_HOURS * 3600 + SECONDS_SLACK
    target, sun = altitudes(*sampled(chosen))
    limit = math.degrees(math.asin(1 / OBSERVING["Max Airmass"]))
    assert target.min() >= limit
    assert sun.max() <= OBSERVING["Sun Altitude"]
    at_start, _ = altitudes(np.array([c.candidate.ra for c in chosen]),
                            np.array([c.candidate.dec for c in chosen]), astropy_times(starts))
    assert np.abs(at_start - [c.altitude for c in chosen]).max() < ALTITUDE_AGREEMENT


def test_a_budget_in_targets():
    result = pick(SCENARIO, EVENING, CONFIG, TEN_MINUTES, budget_hours=10, max_targets=3)
    # The three heaviest that can be observed at all.
    assert sorted(names(result)) == ["late-1", "late-2", "late-3"]
    assert result.not_chosen["evening-1"] == "the plan already has the most entries allowed (3)"


@pytest.mark.parametrize("duration, count", [(580.0, 3), (TEN_MINUTES, 2)])
def test_a_budget_in_hours_counts_the_slews(duration, count):
    """Half an hour: three 580 s targets and their short slews fit; three of 600 s would take
    the whole half hour before any slew, so only two fit."""
    result = pick(NEAR, EVENING, CONFIG, duration, budget_hours=0.5)
    assert len(result.chosen) == count
    used = count * duration + sum(slews(result.chosen))
    assert used <= 0.5 * 3600 + SECONDS_SLACK
    assert all(reason.startswith("over the budget of 30 min")
               for reason in result.not_chosen.values())


def test_the_baseline_stops_when_the_slews_have_spent_the_budget():
    baseline = reference_pick(NEAR, EVENING, CONFIG, TEN_MINUTES, budget_hours=0.5)
    assert names(baseline) == ["near-1", "near-2"]
    assert baseline.not_chosen["near-3"] == "the budget of 0.5 h was spent before its turn"


def test_in_the_afternoon_the_pick_is_for_the_coming_night():
    result = pick(SCENARIO, AFTERNOON, CONFIG, TEN_MINUTES, BUDGET_HOURS)
    assert datetime(2026, 12, 2, 0, 50, tzinfo=timezone.utc) < result.night_start < datetime(
        2026, 12, 2, 1, 10, tzinfo=timezone.utc)
    assert result.chosen and all(c.start >= result.night_start for c in result.chosen)


def test_in_the_middle_of_the_night_only_the_rest_of_it_is_used():
    result = pick(SCENARIO, MIDNIGHT, CONFIG, TEN_MINUTES, BUDGET_HOURS)
    assert result.night_start == MIDNIGHT
    assert result.chosen and all(c.start >= MIDNIGHT for c in result.chosen)
    # The evening targets set (below 30°) around 04:20 UTC: not visible any more tonight.
    for name in ("evening-1", "evening-2", "evening-3"):
        assert result.not_chosen[name].startswith("never below airmass 2")
    assert result.visible_tonight == pytest.approx(
        sum(c.weight for c in SCENARIO if not c.name.startswith(("never", "evening"))))


def test_visible_tonight_and_total_by_hand():
    """90-minute targets: one up for hours, one up for only 73 minutes before dawn, one never."""
    candidates = [Candidate("high", 30.0, 20.0, 0.5), Candidate("brief", 200.0, 40.0, 0.3),
                  Candidate("never", 40.0, -80.0, 0.2)]
    result = pick(candidates, EVENING, CONFIG, 5400.0)
    assert result.total == pytest.approx(1.0)
    assert result.visible_tonight == pytest.approx(0.5)
    assert result.covered == pytest.approx(0.5) and names(result) == ["high"]
    assert result.not_chosen["brief"] == ("needs 90 min without a break but is observable for "
                                          "at most 73 min at a stretch tonight")


def test_the_baseline_is_returned_when_it_covers_more(monkeypatch):
    """Should the greedy plan ever cover less than the baseline, the baseline is the pick."""
    def empty_plan(self, targets, now, *arguments, **options):
        return Plan(EVENING, EVENING, unscheduled={t.id: "left out" for t in targets})

    monkeypatch.setattr(Planner, "plan", empty_plan)
    result = pick(NEAR, EVENING, CONFIG, TEN_MINUTES, budget_hours=0.5)
    assert names(result) == ["near-1", "near-2"]


def test_a_site_without_dark_hours_picks_nothing_and_says_why():
    config = copy.deepcopy(CONFIG)
    config["Site"]["Latitude"] = 80.0  # midsummer: the Sun never goes below −18°
    result = pick(NEAR, datetime(2026, 6, 21, tzinfo=timezone.utc), config, TEN_MINUTES)
    assert result.chosen == [] and result.night_start is None and result.total == pytest.approx(
        sum(c.weight for c in NEAR))
    assert all(reason.startswith("no dark hours") for reason in result.not_chosen.values())


def test_two_candidates_with_one_name_are_refused():
    with pytest.raises(ValueError, match="share a name"):
        pick([NEAR[0], NEAR[0]], EVENING, CONFIG, TEN_MINUTES)


def random_candidates(count, seed):
    """Positions uniform on the sky, probabilities summing to 1."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(count))
    return [Candidate(f"c{i}", rng.uniform(0, 360), math.degrees(math.asin(rng.uniform(-1, 1))),
                      float(weights[i])) for i in range(count)]


def test_two_hundred_candidates_are_picked_better_than_the_reference():
    # (How fast: bench/alerts.py, not a unit test.)
    candidates = random_candidates(200, seed=3)
    duration = 3 * (60.0 + OBSERVING["Readout Time"])  # the GW default: 3 × 60 s
    result = pick(candidates, EVENING, CONFIG, duration)
    assert len(result.chosen) == CONFIG["Alerts"]["Max Targets"]
    assert result.covered > reference_pick(candidates, EVENING, CONFIG, duration).covered
