"""The indi driver's safety monitor against INDI's weather simulator (updated every second)."""

import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from torosmanager.clock import Clock
from torosmanager.devices import wait_for
from torosmanager.devices.indi import IndiSafetyMonitor

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from indi_server import WEATHER_PERIOD, indi_server, make_device  # noqa: E402,F401

POLL_INTERVAL = 0.1
#: Seconds the simulator may take to publish a change (a few update periods).
CHANGE_TIMEOUT = 5 * WEATHER_PERIOD
#: Millimetres of rain an hour: any is beyond the simulator's limit.
RAIN = 10
#: °C: within the simulator's warning margin below its 30 °C limit, and well inside it.
NEAR_THE_LIMIT = 28
MILD = 15
#: Seconds the server is paused to age the data.
PAUSE = 2.5
#: The speed of the simulated clock of the last test.
SPEED = 100.0


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def monitor(make_device, clock):
    return make_device(lambda settings: IndiSafetyMonitor(settings, clock), "safety monitor")


@pytest.fixture
def rain(indi_server):
    """Makes it rain on the simulated station while inside; dry again at the end."""
    indi_server.set("safety monitor", "WEATHER_CONTROL", Precip=RAIN)
    yield
    indi_server.set("safety monitor", "WEATHER_CONTROL", Precip=0)
    indi_server.wait_for("safety monitor", "WEATHER_STATUS", "WEATHER_RAIN_HOUR", "Ok",
                         CHANGE_TIMEOUT)


def test_it_is_safe_when_every_weather_light_is_ok_and_the_data_are_fresh(monitor, clock):
    state = monitor.state()
    assert state.safe and state.reason == "safe"
    assert (clock.now() - state.updated).total_seconds() <= WEATHER_PERIOD + 1
    assert monitor.describe()["Safe"] is True


def test_rain_makes_it_unsafe_naming_the_light(monitor, rain):
    def unsafe():
        state = monitor.state()
        return None if state.safe else state
    state = wait_for(unsafe, CHANGE_TIMEOUT, "the rain to show", POLL_INTERVAL)
    assert "WEATHER_RAIN_HOUR alert (10)" in state.reason


def test_a_warning_light_is_unsafe_too(monitor, indi_server):
    indi_server.set("safety monitor", "WEATHER_CONTROL", Temperature=NEAR_THE_LIMIT)
    try:
        def unsafe():
            state = monitor.state()
            return None if state.safe else state
        state = wait_for(unsafe, CHANGE_TIMEOUT, "the warning to show", POLL_INTERVAL)
        assert f"WEATHER_TEMPERATURE warning ({NEAR_THE_LIMIT:g})" in state.reason
    finally:
        indi_server.set("safety monitor", "WEATHER_CONTROL", Temperature=MILD)
        indi_server.wait_for("safety monitor", "WEATHER_STATUS", "WEATHER_TEMPERATURE", "Ok",
                             CHANGE_TIMEOUT)


def test_a_silent_server_makes_the_data_age(monitor, indi_server, clock):
    with indi_server.paused():
        time.sleep(PAUSE)
        state = monitor.state()
    assert (clock.now() - state.updated).total_seconds() >= PAUSE - WEATHER_PERIOD


def test_the_age_of_the_data_is_counted_in_the_clock_s_time(make_device):
    clock = Clock(start=datetime(2026, 11, 10, 2, 0, tzinfo=timezone.utc),
                  anchor=datetime.now(timezone.utc), speed=SPEED)
    fast = make_device(lambda settings: IndiSafetyMonitor(settings, clock), "safety monitor")
    wait_for(lambda: fast.state().updated is not None, CHANGE_TIMEOUT, "a verdict",
             POLL_INTERVAL)
    time.sleep(WEATHER_PERIOD / 2)
    age = clock.now() - fast.state().updated
    # Real seconds since the last update (under a period and a bit) times the speed.
    assert timedelta(0) <= age <= timedelta(seconds=(WEATHER_PERIOD + 1) * SPEED)
