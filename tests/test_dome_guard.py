"""The dome's safety guard when a check itself fails: the dome closes and stays closed.

A check is the safety monitor's verdict, the Sun, the clock and the heartbeat (see
:mod:`torosmanager.dome.safety`). A driver raising what no one foresaw (a weather station's
text where a number belongs), or a bug in the check, raised out of it: the guard logged
"trying again" and left the dome as it was, open in the rain, and a Dome order could open it.
"""

import logging
from datetime import timedelta
from types import SimpleNamespace

from stepped_clock import NIGHT, SteppedClock
from torosmanager.config import default_config
from torosmanager.dome.safety import SafetyGuard
from torosmanager.workorders import format_utc


class Monitor:
    """A safety monitor that fails as *failure* says (``None``: fresh, safe weather)."""

    def __init__(self, clock):
        self.clock = clock
        self.failure = None

    def state(self):
        if self.failure is not None:
            raise self.failure
        return SimpleNamespace(safe=True, reason="safe", updated=self.clock.now())


def watched():
    """A guard on a dark night with a heartbeat, its monitor, and the reasons it closed for."""
    clock = SteppedClock(NIGHT)
    closed = []
    handler = SimpleNamespace(config=default_config(), clock=clock,
                              safety_monitor=Monitor(clock), close_for_safety=closed.append,
                              keep_telescope_parked=lambda: None)
    guard = SafetyGuard(handler)
    guard.heartbeat("scheduler")
    return guard, handler.safety_monitor, closed


def test_a_check_that_fails_closes_the_dome_and_refuses_to_open(caplog):
    guard, monitor, closed = watched()
    guard.check()
    assert guard.report()["Safe"] and not closed

    monitor.failure = ValueError("could not convert string to float: 'n/a'")
    with caplog.at_level(logging.INFO, logger="torosmanager.dome.safety"):
        guard.check()
        guard.check()  # failing again: closed again, not said again
    reason = "the safety check failed (ValueError: could not convert string to float: 'n/a')"
    assert closed == [f"{reason} (since {format_utc(NIGHT)})"] * 2
    assert guard.may_open() == (False, f"unsafe since {format_utc(NIGHT)}: {reason}")
    assert guard.report()["Reason"] == reason
    assert caplog.messages == [f"{reason}; the dome stays closed until checks succeed",
                               f"conditions bad: {reason}"]
    assert "Traceback" in caplog.text


def test_the_dome_may_open_again_only_after_the_reopen_delay_once_checks_succeed(caplog):
    guard, monitor, closed = watched()
    monitor.failure = KeyError("Value")
    guard.check()
    monitor.failure = None
    guard.clock.advance(60)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="torosmanager.dome.safety"):
        guard.check()
    assert caplog.messages[0] == "the safety checks succeed again"
    allowed, why_not = guard.may_open()
    assert not allowed and "Reopen Delay" in why_not
    guard.clock.advance(guard.settings["Reopen Delay"])
    assert guard.may_open() == (True, "")
    assert len(closed) == 1


def test_a_clock_set_back_keeps_no_silent_scheduler_alive():
    """Set back an hour (NTP stepping a clock that ran fast, or a person), the clock made the
    last heartbeat an hour younger: a dome whose scheduler had died stayed open that hour."""
    guard, _, closed = watched()
    guard.check()
    guard.clock.set_to(NIGHT - timedelta(hours=1))
    guard.clock.advance(guard.settings["Heartbeat Timeout"] + 1)
    guard.check()
    assert len(closed) == 1
    assert closed[0].startswith(f"no heartbeat from the scheduler since {format_utc(NIGHT)}")


def test_a_clock_set_forward_does_not_end_the_reopen_delay():
    guard, monitor, _ = watched()
    monitor.failure = KeyError("Value")
    guard.check()
    monitor.failure = None
    guard.check()
    guard.clock.set_to(NIGHT + timedelta(hours=1))
    allowed, why_not = guard.may_open()
    assert not allowed
    ready = NIGHT + timedelta(hours=1, seconds=guard.settings["Reopen Delay"])
    assert why_not == (f"conditions good only since {format_utc(NIGHT)}; the dome may open "
                       f"from {format_utc(ready)} (Dome → Reopen Delay)")
    guard.clock.advance(guard.settings["Reopen Delay"])
    assert guard.may_open() == (True, "")
