"""The simulated filter wheel, as a specification: the ``Filters`` by slot, starting at slot 0;
any change takes ``Filter Change Time`` of clock time (position ``None`` meanwhile); a name the
wheel does not have is refused with the names it does have.
"""

from datetime import timedelta

import pytest

from torosmanager.config import default_config
from torosmanager.devices import DeviceError
from torosmanager.devices.simulator import SimulatedFilterWheel

from stepped_clock import SteppedClock

#: Seconds: a moment, to step past an instant that sums of steps may miss by a microsecond.
MOMENT = 0.001


@pytest.fixture
def settings():
    return default_config()["Simulator"]


@pytest.fixture
def clock():
    return SteppedClock()


@pytest.fixture
def wheel(settings, clock):
    made = SimulatedFilterWheel(settings, clock)
    made.connect()
    return made


def test_the_wheel_holds_the_configured_filters_and_starts_at_slot_0(settings, wheel):
    state = wheel.state()
    assert state.names == settings["Filters"]
    assert state.position == 0 and state.current == settings["Filters"][0]


def test_a_change_takes_the_filter_change_time(settings, clock, wheel):
    change_time = settings["Filter Change Time"]
    wheel.start_move("R")
    assert wheel.state().position is None and wheel.state().current is None
    clock.advance(change_time / 2)
    assert wheel.state().position is None
    clock.advance(change_time / 2 + MOMENT)
    assert wheel.state().current == "R"
    assert wheel.state().position == settings["Filters"].index("R")


@pytest.mark.parametrize("hours", [-1, 1])
def test_a_change_lasts_its_time_when_the_system_clock_is_set(settings, clock, wheel, hours):
    """The system clock set back or forward an hour mid-change (NTP, a person): the change
    neither lasts an hour longer nor ends at once."""
    change_time = settings["Filter Change Time"]
    wheel.start_move("R")
    clock.advance(change_time / 2)
    clock.set_to(clock.now() + timedelta(hours=hours))
    assert wheel.state().position is None
    clock.advance(change_time / 2 + MOMENT)
    assert wheel.state().current == "R"

def test_asking_for_the_filter_in_the_beam_is_done_at_once(settings, wheel):
    wheel.start_move(settings["Filters"][0])
    assert wheel.state().position == 0


def test_an_unknown_filter_is_refused_naming_the_filters_there_are(settings, wheel):
    with pytest.raises(DeviceError) as raised:
        wheel.start_move("H-alpha")
    assert "H-alpha" in str(raised.value)
    assert all(name in str(raised.value) for name in settings["Filters"])
    assert wheel.state().position == 0, "the wheel did not move"


def test_a_move_asked_during_a_move_follows_it(settings, clock, wheel):
    change_time = settings["Filter Change Time"]
    wheel.start_move("B")
    clock.advance(change_time / 2)
    wheel.start_move("I")
    clock.advance(change_time / 2 + MOMENT)
    assert wheel.state().position is None, "the second change has just begun"
    clock.advance(change_time)
    assert wheel.state().current == "I"


def test_the_filters_come_from_the_settings(settings, clock):
    settings["Filters"] = ["g", "r", "i"]
    wheel = SimulatedFilterWheel(settings, clock)
    wheel.connect()
    assert wheel.state().names == ["g", "r", "i"]
    with pytest.raises(DeviceError, match="g, r, i"):
        wheel.start_move("V")


def test_a_disconnected_wheel_refuses_to_move(wheel):
    wheel.disconnect()
    with pytest.raises(DeviceError, match="not connected"):
        wheel.start_move("V")
    with pytest.raises(DeviceError, match="not connected"):
        wheel.state()
    description = wheel.describe()
    assert description["Driver"] == "simulator" and description["Connected"] is False
