"""The simulated safety monitor, as a specification: unsafe inside any of the ``Unsafe Periods``
(start included, end excluded), safe otherwise, with fresh data; simulator controls force it
unsafe or safe, or make its data stale.
"""

import xmlrpc.client
from datetime import timedelta

import pytest

from torosmanager.config import default_config
from torosmanager.devices import DeviceError
from torosmanager.devices.simulator import SimulatedSafetyMonitor

from stepped_clock import NIGHT, SteppedClock

STORM = (NIGHT + timedelta(hours=1), NIGHT + timedelta(hours=2))


@pytest.fixture
def clock():
    return SteppedClock()


@pytest.fixture
def monitor(clock):
    settings = default_config()["Simulator"]
    settings["Unsafe Periods"] = [STORM]
    made = SimulatedSafetyMonitor(settings, clock)
    made.connect()
    return made


def test_safe_outside_the_unsafe_periods_with_fresh_data(clock, monitor):
    state = monitor.state()
    assert state.safe and state.reason == "safe"
    assert state.updated == clock.now()


def test_unsafe_from_the_start_of_a_period_saying_until_when(clock, monitor):
    clock.current = STORM[0]
    state = monitor.state()
    assert not state.safe
    assert state.reason == ("simulated bad weather until "
                            f"{STORM[1]:%Y-%m-%dT%H:%M:%S}.000Z")  # as every time is shown
    assert state.updated == clock.now()


def test_safe_again_at_the_end_of_the_period(clock, monitor):
    clock.current = STORM[1]
    assert monitor.state().safe


def test_periods_come_parsed_from_the_configuration(tmp_path, clock):
    from torosmanager.config import load_config

    path = tmp_path / "toros.conf.yaml"
    path.write_text("Simulator:\n  Unsafe Periods: ['2026-11-21T06:00:00/2026-11-21T07:00:00']\n")
    monitor = SimulatedSafetyMonitor(load_config(str(path))["Simulator"], clock)
    monitor.connect()
    assert monitor.state().safe
    clock.advance(90 * 60)
    assert not monitor.state().safe


def test_set_unsafe_forces_unsafe_with_the_reason_given(monitor):
    monitor.set_unsafe("rain")
    state = monitor.state()
    assert not state.safe and state.reason == "rain"


def test_set_safe_forces_safe_even_in_a_period_and_clear_forcing_releases(clock, monitor):
    clock.current = STORM[0]
    monitor.set_safe()
    assert monitor.state().safe
    monitor.clear_forcing()
    assert not monitor.state().safe


def test_stale_data_keep_the_time_they_went_stale(clock, monitor):
    monitor.set_stale(True)
    went_stale = clock.now()
    clock.advance(600)
    assert monitor.state().updated == went_stale
    monitor.set_stale(False)
    assert monitor.state().updated == clock.now()


def test_a_disconnected_monitor_refuses_to_answer(monitor):
    monitor.disconnect()
    with pytest.raises(DeviceError, match="not connected"):
        monitor.state()
    assert monitor.describe()["Connected"] is False


def test_describe_holds_only_xml_rpc_types(monitor):
    description = monitor.describe()
    assert description["Driver"] == "simulator" and description["Safe"] is True
    assert description["Updated"].endswith("Z")  # as every time is shown
    xmlrpc.client.dumps((description,), allow_none=False)


def test_a_weather_file_brings_bad_weather_when_it_says_unsafe(tmp_path):
    from torosmanager.clock import Clock
    from torosmanager.config import default_config
    from torosmanager.devices.simulator import SimulatedSafetyMonitor

    weather = tmp_path / "weather"
    monitor = SimulatedSafetyMonitor(dict(default_config()["Simulator"],
                                          **{"Weather File": str(weather)}), Clock())
    monitor.connect()
    assert monitor.state().safe  # no file: fair weather
    weather.write_text("unsafe: hail\n")
    assert monitor.state().safe is False and monitor.state().reason == "hail"
    weather.write_text("UNSAFE")  # the word alone: unsafe, and a reason that says why
    assert monitor.state().safe is False
    assert monitor.state().reason == "the weather file says unsafe"
    weather.write_text("clear skies")
    assert monitor.state().safe
