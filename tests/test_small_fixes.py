"""Small fixes (issue 10, point 9), as specifications: a Preprocessing order whose light frames
were all skipped fails saying why; CALDATE is the configured clock's time; the preprocessor
calibrates the path it checked; ``Not Before`` after ``Not After`` is refused at the front desk;
the dome's daylight verdict changes when the Sun crosses its limit, not on a 5-minute grid."""

import re
from datetime import datetime, timedelta, timezone

import pytest
from astropy.io import fits

from helpers_guard import guard_with
from observatory import wait_until
from preprocessing_data import make_night
from stepped_clock import SteppedClock
from torosmanager.clock import Clock
from torosmanager.config import default_config, load_config
from torosmanager.journal import DONE, FAILED, Journal
from torosmanager.launcher import local_config
from torosmanager.night import GRID_MINUTES, Night, sun_altitude
from torosmanager.preprocessor.handler import PreprocessorHandler
from torosmanager.preprocessor.pipeline import (LISTED_SKIPPED, Outcome, Settings,
                                                calibrate)
from torosmanager.workorders import WorkOrderError, validate

# --- 1. every light frame skipped: the order fails, saying why --------------------------------


def night_of_lights_without_their_bias(root):
    """Biases of 128x128 (a master is made) and two lights of 96x64 (no bias of their size)."""
    night = make_night(root, biases=3, darks={}, flats={}, lights=[])
    small = make_night(root, name=night.directory.name, biases=0, darks={}, flats={},
                       lights=[("R", 10.0, 2)], simulator={"Width": 96, "Height": 64},
                       order_id="small")
    return night, small.files["LIGHT"]


def test_masters_made_while_every_light_frame_was_skipped_are_not_a_success(tmp_path, runner):
    night, lights = night_of_lights_without_their_bias(tmp_path)
    outcome = calibrate(str(night.directory), Settings(), runner)
    assert list(outcome.masters) == ["bias 128x128 bin 1x1"] and not outcome.products
    assert not outcome.succeeded
    message = outcome.failure()
    assert message.startswith("nothing could be calibrated: all 2 light frame(s) were skipped")
    for light in lights:
        assert (f"{light}: no bias for 96x64 bin 1x1, in this night or the master library"
                in message)
    assert "1 master(s) made" in message


def test_a_night_of_calibration_frames_only_succeeds_with_its_masters(tmp_path, runner):
    night = make_night(tmp_path, biases=3, darks={}, flats={}, lights=[])
    outcome = calibrate(str(night.directory), Settings(), runner)
    assert outcome.masters and outcome.succeeded


def test_the_failure_names_the_first_skipped_frames_and_counts_the_rest():
    lines = [f"/data/raw/light{number:02d}.fits: no bias" for number in range(12)]
    outcome = Outcome(skipped=list(lines), skipped_lights=list(lines), lights=12)
    message = outcome.failure()
    assert all(line in message for line in lines[:LISTED_SKIPPED])
    assert lines[LISTED_SKIPPED] not in message
    assert f"and {12 - LISTED_SKIPPED} more (see Skipped)" in message


# --- 2. CALDATE is the configured clock's time ------------------------------------------------

#: An instant no wall clock running these tests shows.
SIMULATED = datetime(2031, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


def test_caldate_is_the_configured_clocks_time(tmp_path, runner):
    night = make_night(tmp_path, biases=3, darks={}, flats={}, lights=[("R", 10.0, 1)])
    outcome = calibrate(str(night.directory), Settings(), runner, clock=SteppedClock(SIMULATED))
    written = [*outcome.products, *outcome.masters.values()]
    assert len(written) == 2
    for path in written:
        assert fits.getheader(path)["CALDATE"] == "2031-03-04T05:06:07"


# --- 3. the preprocessor calibrates the path it checked ---------------------------------------


@pytest.fixture
def preprocessor(tmp_path):
    """A preprocessor handler in this process, allowed into ``<tmp_path>/data``."""
    config = load_config(local_config(str(tmp_path), {"Preprocessor": {"Workers": 1}}))
    journal = Journal(str(tmp_path / "preprocessor.sqlite3"))
    handler = PreprocessorHandler(config, journal, Clock.from_config(config))
    handler.start()
    yield handler
    handler.stop()
    journal.close()


def small_night(root, name):
    return make_night(root, name=name, biases=3, darks={}, flats={}, lights=[("R", 10.0, 1)])


def checked(handler, location):
    """A Preprocessing order for *location*, as the front desk leaves it after its checks."""
    order = validate({"WOType": "Preprocessing", "File Location": location})
    handler.check(order)
    return order


def run_checked(handler, order):
    """Journal a checked order, hand it to the handler, and wait for its end."""
    record, _ = handler.journal.add(order, "{}", 5.0, "test", order["Datetime"], "received",
                                    handler.queued_reason(order))
    handler.accepted(record)
    return wait_until(lambda: handler.journal.get(record.id).state in (DONE, FAILED)
                      and handler.journal.get(record.id), f"order {record.id} to end")


def test_a_link_re_pointed_after_the_check_does_not_move_the_job(tmp_path, preprocessor):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    inside, outside = small_night(data, "20261121"), small_night(elsewhere, "20261121")
    link = data / "tonight"
    link.symlink_to(inside.directory)
    order = checked(preprocessor, str(link))
    link.unlink()
    link.symlink_to(outside.directory)  # now it points outside the allowed directories
    record = run_checked(preprocessor, order)
    assert record.state == DONE, record.message
    assert (inside.reduced / inside.files["LIGHT"][0].rsplit("/", 1)[1]).exists()
    assert not outside.reduced.exists()


def test_a_directory_replaced_by_a_link_outside_while_queued_fails_the_job(tmp_path,
                                                                           preprocessor):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    night = small_night(data, "20261121")
    order = checked(preprocessor, str(night.directory))
    elsewhere.mkdir()
    moved = night.directory.rename(elsewhere / "20261121")
    night.directory.symlink_to(moved)
    record = run_checked(preprocessor, order)
    assert record.state == FAILED
    # The field, then what is allowed; a long temporary path is elided in the middle.
    assert record.message.startswith("refused when the job started: 'File Location': "
                                     f"received '{str(night.directory)[:20]}")
    assert record.message.endswith("(Preprocessor → Allowed Directories)")
    assert not (moved / "reduced").exists()


# --- 4. Not Before after Not After is refused at the front desk -------------------------------

OBSERVATION = {"WOType": "Observation", "RA": 346.5, "Dec": 13.2, "Filter": "I",
               "Exposure Time": 30}


@pytest.mark.parametrize("not_after", ["2026-11-10T03:00:00Z", "2026-11-10T04:00:00Z"])
def test_not_before_must_be_earlier_than_not_after(not_after):
    order = dict(OBSERVATION, **{"Not Before": "2026-11-10T04:00:00Z", "Not After": not_after})
    with pytest.raises(WorkOrderError) as refused:
        validate(order)
    assert str(refused.value) == (
        f"'Not Before' and 'Not After': received '2026-11-10T04:00:00Z' and {not_after!r}; "
        "allowed: 'Not Before' must be earlier than 'Not After'")


def test_a_window_in_the_right_order_is_accepted():
    order = validate(dict(OBSERVATION, **{"Not Before": "2026-11-10T02:00:00Z",
                                          "Not After": "2026-11-10T04:00:00+01:00"}))
    assert order["Not After"] == "2026-11-10T03:00:00.000Z"


# --- 5. the dome says daylight when the Sun crosses its limit ---------------------------------

SITE = default_config()["Site"]
#: How close to the crossing the verdict must already be right.
CLOSE = timedelta(seconds=5)
#: How precisely the test finds the crossing.
PRECISION = timedelta(seconds=0.5)
#: Degrees the reported altitude may differ from the limit just after the crossing.
ALTITUDE_TOLERANCE = 0.05


def guard_at(limit, clock):
    config = default_config()
    config["Observing"]["Sun Altitude Limit"] = limit
    return guard_with(config, clock)


def daylight(guard, instant):
    """The guard's daylight reasons at *instant* (an empty list when it is dark)."""
    return [reason for reason in guard.evaluate(instant) if reason.startswith("daylight")]


def crossing(limit, dark, light):
    """The instant between *dark* and *light* when the Sun crosses *limit* (bisection)."""
    while abs(light - dark) > PRECISION:
        middle = dark + (light - dark) / 2
        if sun_altitude(SITE, middle) < limit:
            dark = middle
        else:
            light = middle
    return dark + (light - dark) / 2


@pytest.mark.parametrize("edge", ["dawn", "dusk"])
def test_the_daylight_verdict_changes_at_the_suns_crossing(edge):
    limit = -6.0
    night = Night(SITE).window(datetime(2026, 11, 21, 20, 0, tzinfo=timezone.utc), limit)
    step = timedelta(minutes=GRID_MINUTES)
    # The grid's dark samples bound the night; the crossing lies within a step outside them.
    if edge == "dawn":
        instant = crossing(limit, dark=night.end, light=night.end + step)
        dark_side, light_side = instant - CLOSE, instant + CLOSE
    else:
        instant = crossing(limit, dark=night.start, light=night.start - step)
        dark_side, light_side = instant + CLOSE, instant - CLOSE
    guard = guard_at(limit, SteppedClock(instant))
    assert daylight(guard, dark_side) == []
    [verdict] = daylight(guard, light_side)
    reported = float(re.match(r"daylight: Sun at (-?[\d.]+)° \(limit -6°\)$", verdict)[1])
    assert reported == pytest.approx(limit, abs=ALTITUDE_TOLERANCE)


def test_the_schedulers_dome_orders_never_share_an_id():
    """Two Dome orders sent within the same second (a close right after an open, a fast
    simulated clock) get different IDs; the time stays readable in them."""
    from datetime import datetime, timezone

    from torosmanager.scheduler.dome_keeper import dome_order_id

    now = datetime(2026, 11, 10, 2, 0, 0, tzinfo=timezone.utc)
    ids = {dome_order_id(now) for _ in range(1000)}
    assert len(ids) == 1000
    assert all(order_id.startswith("scheduler-20261110T020000-") for order_id in ids)


def test_a_reason_never_prints_a_number_of_many_digits():
    """The longest order the schema allows (100,000 exposures of a day) is explained in days."""
    import re
    from datetime import datetime, timezone

    from torosmanager.config import default_config
    from torosmanager.scheduler.planner import Constraints, Planner, Target
    from torosmanager.workorders import MAX_EXPOSURE_TIME, MAX_NUMBER_OF_EXPOSURES

    config = default_config()
    planner = Planner(config["Site"], Constraints.from_settings(config["Observing"]))
    longest = Target("longest", 330.0, 35.0, 5.0, MAX_EXPOSURE_TIME * MAX_NUMBER_OF_EXPOSURES)
    plan = planner.plan([longest], datetime(2026, 11, 9, 20, 0, tzinfo=timezone.utc))
    reason = plan.unscheduled["longest"]
    assert "days without a break" in reason
    assert max(len(digits) for digits in re.findall(r"[\d,.]+", reason)) <= 12
