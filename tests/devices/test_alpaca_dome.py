"""The alpaca driver's dome and safety monitor against alpaca-simulators' devices."""

import logging
import sys
import xmlrpc.client
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("alpaca", reason="alpyca is not installed (pip install alpyca)")

from torosmanager.clock import Clock  # noqa: E402
from torosmanager.devices import ShutterState, wait_for  # noqa: E402
from torosmanager.devices.alpaca import AlpacaDome, AlpacaSafetyMonitor  # noqa: E402

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from alpaca_server import (  # noqa: E402,F401
    HOST, LONE_SAFETY_MONITOR, alpaca_server, simulators,
)

POLL_INTERVAL = 0.1
#: Seconds a dome operation may take (the simulated dome takes 4 s to rotate).
DOME_TIMEOUT = 15.0
TARGET_AZIMUTH = 123.4
#: The simulated dome's park azimuth.
PARK_AZIMUTH = 0.0
AZIMUTH_TOLERANCE = 1e-6
#: Seconds: the simulated weather station says its data are one second old.
WEATHER_AGE = 1.0
#: Seconds allowed between the clock read by a test and the one read by the driver.
CLOCK_TOLERANCE = 5.0
#: A simulated night, running ten times faster than real time.
SIMULATED_START = datetime(2026, 11, 21, 3, 0, tzinfo=timezone.utc)
SIMULATED_SPEED = 10.0


@pytest.fixture
def dome(simulators):
    made = AlpacaDome(simulators.settings())
    made.connect()
    yield made
    made.disconnect()


def test_the_shutter_opens_and_closes(simulators, dome):
    assert dome.state().shutter is ShutterState.CLOSED
    dome.start_open()
    wait_for(lambda: dome.state().shutter is ShutterState.OPEN, DOME_TIMEOUT,
             "the shutter to open", POLL_INTERVAL)
    report = dome.describe()
    assert report["Shutter"] == "open" and report["Address"] == f"{HOST}:{simulators.port}/0"
    xmlrpc.client.dumps((report,))
    dome.start_close()
    wait_for(lambda: dome.state().shutter is ShutterState.CLOSED, DOME_TIMEOUT,
             "the shutter to close", POLL_INTERVAL)


def test_rotation_then_park(dome):
    assert dome.state().parked
    dome.start_slew(TARGET_AZIMUTH)
    state = dome.state()
    assert state.slewing and not state.parked
    wait_for(lambda: not dome.state().slewing, DOME_TIMEOUT, "the rotation", POLL_INTERVAL)
    assert abs(dome.state().azimuth - TARGET_AZIMUTH) < AZIMUTH_TOLERANCE
    dome.start_park()
    wait_for(lambda: dome.state().parked, DOME_TIMEOUT, "the dome to park", POLL_INTERVAL)
    state = dome.state()
    assert not state.slewing and abs(state.azimuth - PARK_AZIMUTH) < AZIMUTH_TOLERANCE


def test_abort_stops_a_rotation(dome):
    dome.start_slew(TARGET_AZIMUTH)
    assert dome.state().slewing
    dome.abort()
    state = dome.state()
    assert not state.slewing and abs(state.azimuth - PARK_AZIMUTH) < AZIMUTH_TOLERANCE


def test_safe_then_unsafe(simulators):
    monitor = AlpacaSafetyMonitor(simulators.settings(), Clock())
    monitor.connect()
    state = monitor.state()
    now = datetime.now(timezone.utc)
    assert state.safe and state.reason == "safe"
    # Dated by the simulated weather station beside it: its data are a second old.
    assert monitor.dated_by_weather
    assert abs((now - timedelta(seconds=WEATHER_AGE) - state.updated).total_seconds()) \
        < CLOCK_TOLERANCE
    simulators.set_safe(False)
    state = monitor.state()
    assert not state.safe
    assert state.reason == f"IsSafe false reported by {HOST}:{simulators.port}"
    report = monitor.describe()
    assert report["Safe"] is False and report["Dated By"] == "observing conditions"
    xmlrpc.client.dumps((report,))
    monitor.disconnect()


def test_verdicts_are_dated_by_the_daemons_clock(simulators):
    clock = Clock(SIMULATED_START, datetime.now(timezone.utc), SIMULATED_SPEED)
    monitor = AlpacaSafetyMonitor(simulators.settings(), clock)
    monitor.connect()
    expected = clock.now() - timedelta(seconds=WEATHER_AGE * SIMULATED_SPEED)
    assert abs((monitor.state().updated - expected).total_seconds()) \
        < CLOCK_TOLERANCE * SIMULATED_SPEED
    monitor.disconnect()


def test_without_a_weather_station_the_clock_dates_the_verdict(simulators, caplog):
    clock = Clock(SIMULATED_START, datetime.now(timezone.utc), SIMULATED_SPEED)
    monitor = AlpacaSafetyMonitor(simulators.settings(LONE_SAFETY_MONITOR), clock)
    with caplog.at_level(logging.INFO, logger="torosmanager.devices.alpaca.safety"):
        monitor.connect()
    assert not monitor.dated_by_weather
    # The server has none (HTTP 400): not asked again at every verdict.
    assert "no usable observing conditions beside it" in caplog.text
    assert "asked again" not in caplog.text
    expected = clock.now()
    assert abs((monitor.state().updated - expected).total_seconds()) \
        < CLOCK_TOLERANCE * SIMULATED_SPEED
    assert monitor.describe()["Dated By"] == "clock"
    monitor.disconnect()


def test_auxiliary_outputs_are_recorded_with_a_warning(dome, caplog):
    """ASCOM domes have no auxiliary outputs: the driver keeps them as state and says so."""
    dome.set_output(1, True)
    assert dome.state().outputs == {1: True}
    assert "has no auxiliary outputs: output 01 is recorded, not switched" in caplog.text
