"""The dome trusts the Sun's altitude only from a clock a time service keeps: on a real clock it
stays closed while the kernel says the system clock is not synchronized (a computer without a
real-time clock, booted offline, may be hours wrong and open the dome at noon)."""

import logging
import sys

import pytest

from helpers_guard import guard_with
from observatory import dome_safety, settings, wait_until
from stepped_clock import NIGHT, SteppedClock
from torosmanager.clock import Clock
from torosmanager.clock_sync import ClockSync, system_clock_sync
from torosmanager.config import default_config

SYNCHRONIZED = ClockSync(True, max_error=0.05)
UNSYNCHRONIZED = ClockSync(False, max_error=16.0)
UNKNOWN = ClockSync(None, detail="adjtimex refused: Operation not permitted")
NOT_SYNCHRONIZED_REASON = "system clock not synchronized"


class RealClockAt(Clock):
    """A real (not simulated) clock that reads *instant*: the dark of a night at the site."""

    def __init__(self, instant=NIGHT):
        super().__init__()
        self.instant = instant

    def now(self):
        return self.instant


class Kernel:
    """Answers what the kernel is made to say, and counts the questions."""

    def __init__(self, answer):
        self.answer, self.asked = answer, 0

    def __call__(self):
        self.asked += 1
        return self.answer


def guard(clock, kernel, require=True):
    config = default_config()
    config["Dome"]["Require Synchronized Clock"] = require
    made = guard_with(config, clock, clock_sync=kernel)
    made.heartbeat("scheduler")
    return made


def clock_reasons(guard):
    return [reason for reason in guard.evaluate(guard.clock.now())
            if reason.startswith(NOT_SYNCHRONIZED_REASON)]


def test_an_unsynchronized_real_clock_is_unsafe_and_says_how_to_fix_it():
    watched = guard(RealClockAt(), Kernel(UNSYNCHRONIZED))
    [reason] = clock_reasons(watched)
    assert "systemd-timesyncd, chrony" in reason and "Require Synchronized Clock" in reason
    assert watched.evaluate(NIGHT) == [reason]  # a dark night, fine weather: only the clock


def test_a_synchronized_real_clock_is_safe_and_the_report_shows_its_error():
    watched = guard(RealClockAt(), Kernel(SYNCHRONIZED))
    assert watched.evaluate(NIGHT) == []
    assert watched.report()["Clock"] == "synchronized (the kernel's maximum error 0.05 s)"


def test_the_report_shows_an_unsynchronized_clock():
    watched = guard(RealClockAt(), Kernel(UNSYNCHRONIZED))
    watched.evaluate(NIGHT)
    assert watched.report()["Clock"] == "NOT synchronized (the kernel's maximum error 16 s)"


def test_a_clock_whose_state_cannot_be_known_is_trusted_and_said_once(caplog):
    watched = guard(RealClockAt(), Kernel(UNKNOWN))
    with caplog.at_level(logging.WARNING, logger="torosmanager.dome.safety"):
        assert watched.evaluate(NIGHT) == []
        assert watched.evaluate(NIGHT) == []
    said = [record.getMessage() for record in caplog.records]
    assert said == ["the system clock: not known whether synchronized: adjtimex refused: "
                    "Operation not permitted; the Sun's altitude is computed from it as it is"]
    assert watched.report()["Clock"].startswith("not known whether synchronized")


def test_the_kernel_is_not_asked_when_the_setting_is_off():
    kernel = Kernel(UNSYNCHRONIZED)
    watched = guard(RealClockAt(), kernel, require=False)
    assert watched.evaluate(NIGHT) == [] and kernel.asked == 0
    assert watched.report()["Clock"] == \
        "not checked (Dome → Require Synchronized Clock is off)"


def test_a_simulated_clock_is_not_checked():
    kernel = Kernel(UNSYNCHRONIZED)
    watched = guard(SteppedClock(), kernel)
    assert watched.evaluate(NIGHT) == [] and kernel.asked == 0
    assert watched.report()["Clock"] == "simulated: not checked"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="asks Linux's kernel")
def test_linux_answers_whether_its_clock_is_synchronized():
    answer = system_clock_sync()
    assert answer.synchronized in (True, False), answer
    assert answer.max_error >= 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="asks Linux's kernel")
def test_the_dome_daemon_on_a_real_clock_says_what_the_kernel_says(make_site):
    """A real dome process on real time: its verdict is this machine's kernel's."""
    site = make_site(settings(Clock={"Mode": "real"})).start("dome")
    kernel = system_clock_sync()
    shown = wait_until(lambda: (safety := dome_safety(site))["Clock"] != "not checked yet"
                       and safety, "the dome's first clock check")
    assert shown["Clock"].startswith("synchronized" if kernel.synchronized
                                     else "NOT synchronized"), shown
    # (Real time: the daylight verdict may go either way, and is not looked at.)
    assert (NOT_SYNCHRONIZED_REASON in shown["Reason"]) == (not kernel.synchronized), shown
