"""The dome's safety guard across a restart of the dome daemon: conditions found good before it
count towards ``Reopen Delay`` when the guard's last check is recent (within ``Weather Max
Age``) and nothing but the scheduler's heartbeat was missing since; otherwise the whole delay
is waited, as on a first start.

Each guard runs in the test's process on a clock that moves when the test says, writing its
checks in a real SQLite file (the dome journal's) that the next guard reads.
"""

import logging
import sqlite3
from datetime import timedelta
from types import SimpleNamespace

import pytest

from helpers_guard import Weather, guard_with
from stepped_clock import NIGHT, SteppedClock
from torosmanager.config import default_config
from torosmanager.dome.safety_memory import SafetyMemory
from torosmanager.workorders import format_utc

#: Seconds between the old guard's last check and the new guard's start: a daemon restart.
RESTART = 5.0


@pytest.fixture
def dome(tmp_path):
    """``start()`` builds and starts a guard (a dome daemon starting) on one clock, weather
    monitor and journal file; every guard is stopped at the end."""
    clock = SteppedClock(NIGHT)
    monitor = Weather(clock)
    config = default_config()
    guards = []

    def start(memory=None):
        """*memory*: the journal file's, opened here by default."""
        guard = guard_with(config, clock, monitor,
                           memory=memory or SafetyMemory(str(tmp_path / "dome.sqlite3")))
        guard.start()
        guards.append(guard)
        return guard

    yield SimpleNamespace(start=start, clock=clock, monitor=monitor,
                          delay=config["Dome"]["Reopen Delay"],
                          max_age=config["Dome"]["Weather Max Age"],
                          file=tmp_path / "dome.sqlite3")
    for guard in guards:
        guard.stop()


def good_for(dome, seconds):
    """A guard that has had the scheduler's heartbeat and good conditions for *seconds*,
    stopped as the daemon stops, RESTART seconds before the next start."""
    guard = dome.start()
    guard.heartbeat("scheduler")
    guard.check()
    dome.clock.advance(seconds)
    guard.heartbeat("scheduler")
    guard.check()
    guard.stop()
    dome.clock.advance(RESTART)
    return guard


def heard(guard):
    """The scheduler's first heartbeat to a new guard, and its check: may it open?"""
    guard.heartbeat("scheduler")
    guard.check()
    return guard.may_open()


def test_a_restart_after_the_reopen_delay_waits_only_for_the_heartbeat(dome, caplog):
    good_for(dome, dome.delay + 60)
    with caplog.at_level(logging.INFO, logger="torosmanager.dome.safety"):
        guard = dome.start()
    started = dome.clock.now()
    assert guard.may_open() == (False, f"unsafe since {format_utc(started)}: no heartbeat "
                                       "from the scheduler yet")
    assert heard(guard) == (True, "")
    # The time the daemon was down is not counted: good since RESTART seconds later.
    assert guard.report()["Good Since"] == format_utc(
        started - timedelta(seconds=dome.delay + 60))
    assert caplog.messages[0] == (
        f"conditions had been good for {dome.delay + 60:.0f} s at the last check before this "
        f"start, {RESTART:.0f} s ago (within Dome → Weather Max Age, {dome.max_age:g} s): once "
        "they are good again, that counts towards Dome → Reopen Delay")


def test_a_restart_before_the_reopen_delay_waits_the_rest_of_it(dome):
    good_for(dome, 600)
    guard = dome.start()
    dome.clock.advance(30)  # the heartbeat comes 30 s after the start
    allowed, why_not = heard(guard)
    good_since = dome.clock.now() - timedelta(seconds=600)
    ready = good_since + timedelta(seconds=dome.delay)
    assert not allowed
    assert why_not == (f"conditions good only since {format_utc(good_since)}; the dome may "
                       f"open from {format_utc(ready)} (Dome → Reopen Delay)")
    dome.clock.advance(dome.delay - 600)
    assert guard.may_open() == (True, "")


def test_a_last_check_older_than_the_weather_max_age_is_not_carried(dome, caplog):
    good_for(dome, dome.delay + 60)
    dome.clock.advance(dome.max_age)  # with RESTART: beyond
    with caplog.at_level(logging.INFO, logger="torosmanager.dome.safety"):
        guard = dome.start()
    allowed, why_not = heard(guard)
    assert not allowed and why_not.startswith(
        f"conditions good only since {format_utc(dome.clock.now())};")
    assert "is not within Dome → Weather Max Age (300 s) of now" in caplog.messages[0]


def test_bad_weather_after_the_restart_is_not_carried_over(dome):
    good_for(dome, dome.delay + 60)
    guard = dome.start()
    dome.monitor.unsafe = "rain"
    guard.check()
    dome.monitor.unsafe = ""
    allowed, why_not = heard(guard)
    assert not allowed and why_not.startswith(
        f"conditions good only since {format_utc(dome.clock.now())};")


def test_conditions_bad_at_the_last_check_before_the_restart_are_not_carried(dome):
    good_for(dome, dome.delay + 60)
    guard = dome.start()
    dome.monitor.unsafe = "wind"
    heard(guard)  # bad: written down so
    guard.stop()
    dome.monitor.unsafe = ""
    dome.clock.advance(RESTART)
    allowed, why_not = heard(dome.start())
    assert not allowed and why_not.startswith(
        f"conditions good only since {format_utc(dome.clock.now())};")


def test_a_clock_set_back_across_the_restart_carries_nothing(dome):
    good_for(dome, dome.delay + 60)
    dome.clock.set_to(dome.clock.now() - timedelta(hours=1))
    allowed, _ = heard(dome.start())
    assert not allowed


@pytest.mark.parametrize("checked, good_for_seconds", [
    ("yesterday", 1500.0), ("2026-11-21T05:00:00", 1500.0), (None, 1500.0),
    (format_utc(NIGHT), -5.0), (format_utc(NIGHT), "long"), (format_utc(NIGHT), b"\x00")])
def test_a_last_check_that_cannot_be_read_is_said_and_carries_nothing(dome, caplog,
                                                                       checked,
                                                                       good_for_seconds):
    """Written by hand or by another version: the guard starts as on a first start."""
    with sqlite3.connect(dome.file) as db:  # without the column types, as another version
        db.execute("CREATE TABLE safety_memory (only_row INTEGER PRIMARY KEY, checked, "
                   "good_for)")
        db.execute("INSERT INTO safety_memory VALUES (1, ?, ?)", (checked, good_for_seconds))
    with caplog.at_level(logging.WARNING, logger="torosmanager.dome.safety_memory"):
        guard = dome.start()
    allowed, why_not = heard(guard)
    assert not allowed and "Reopen Delay" in why_not
    (warning,) = caplog.messages
    assert warning.startswith(f"{dome.file}: the safety guard's last check cannot be read")
    assert warning.endswith("conditions count as good only from now")


def test_a_first_start_has_nothing_to_carry(dome):
    allowed, why_not = heard(dome.start())
    assert not allowed and why_not.startswith(
        f"conditions good only since {format_utc(NIGHT)};")


def test_a_journal_file_that_fails_the_guard_costs_only_the_wait(dome, caplog):
    """The table gone (an old backup put back): the guard starts, checks and keeps the dome
    safe as ever, saying once that its checks cannot be written down."""
    good_for(dome, dome.delay + 60)
    memory = SafetyMemory(str(dome.file))
    with sqlite3.connect(dome.file) as db:
        db.execute("DROP TABLE safety_memory")
    with caplog.at_level(logging.WARNING, logger="torosmanager.dome.safety"):
        guard = dome.start(memory)
        allowed, why_not = heard(guard)
        guard.check()
    assert not allowed and why_not.startswith(
        f"conditions good only since {format_utc(dome.clock.now())};")
    read, written = caplog.messages  # each said once
    assert read == (f"cannot read the safety guard's last check in {dome.file} (no such "
                    "table: safety_memory): conditions count as good only from the next good "
                    "check")
    assert written == (f"cannot write the safety check down in {dome.file} (no such table: "
                       "safety_memory): a restart of the dome daemon would wait Dome → Reopen "
                       "Delay in full")
