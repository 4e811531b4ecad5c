"""The simulated focuser, as a specification: it starts half-way along its range, moves at
``Focuser Speed`` steps per clock second (its position is where it is on the way), refuses a
position outside 0 to ``Focuser Maximum``, and reads a tube that cools by ``Tube Cooling
Rate`` °C an hour from ``Tube Temperature``.
"""

import pytest

from torosmanager.config import default_config
from torosmanager.devices import DeviceError
from torosmanager.devices.simulator import SimulatedFocuser

from stepped_clock import SteppedClock

SETTINGS = dict(default_config()["Simulator"], **{
    "Focuser Maximum": 10_000, "Focuser Speed": 100.0, "Tube Temperature": 12.0,
    "Tube Cooling Rate": 2.0})


@pytest.fixture
def clock():
    return SteppedClock()


@pytest.fixture
def focuser(clock):
    made = SimulatedFocuser(SETTINGS, clock)
    made.connect()
    return made


def test_it_starts_half_way_and_still(focuser):
    state = focuser.state()
    assert (state.position, state.moving, state.maximum) == (5_000, False, 10_000)
    assert focuser.describe() == {"Driver": "simulator", "Connected": True, "Position": 5_000,
                                  "Moving": False, "Maximum": 10_000, "Temperature": 12.0}


def test_a_move_takes_its_steps_at_the_speed(focuser, clock):
    focuser.start_move(4_000)  # 1,000 steps at 100 a second: 10 s
    clock.advance(2.5)
    state = focuser.state()
    assert (state.position, state.moving) == (4_750, True)
    clock.advance(7.5)
    assert (focuser.state().position, focuser.state().moving) == (4_000, False)


def test_a_move_asked_on_the_way_starts_from_where_it_is(focuser, clock):
    focuser.start_move(6_000)
    clock.advance(5.0)  # at 5,500
    focuser.start_move(5_000)
    clock.advance(4.0)
    assert focuser.state().position == 5_100
    clock.advance(1.0)
    assert (focuser.state().position, focuser.state().moving) == (5_000, False)


@pytest.mark.parametrize("position", [-1, 10_001, 2.5, "5000", True])
def test_a_position_outside_its_range_is_refused(focuser, position):
    with pytest.raises(DeviceError, match="cannot move to .*: the focuser takes a whole "
                                          "number of steps from 0 to 10000"):
        focuser.start_move(position)
    assert focuser.state().position == 5_000


def test_the_tube_cools_through_the_night(focuser, clock):
    clock.advance(90 * 60)
    assert focuser.state().temperature == pytest.approx(12.0 - 2.0 * 1.5)


def test_it_answers_only_when_connected(clock):
    with pytest.raises(DeviceError, match="not connected"):
        SimulatedFocuser(SETTINGS, clock).state()


def test_focus_is_best_at_best_focus_and_moves_as_the_tube_cools(clock):
    settings = dict(SETTINGS, **{"Best Focus": 6_000, "Focus Temperature Coefficient": -30.0,
                                 "Defocus Blur": 2.0})
    focuser = SimulatedFocuser(settings, clock)
    focuser.connect()
    assert focuser.truth_best_focus() == 6_000
    assert focuser.blur() == pytest.approx(2.0)  # 1,000 steps away, at 5,000
    clock.advance(3600)  # 2 °C colder: focus 60 steps outward
    assert focuser.truth_best_focus() == pytest.approx(6_060)
    focuser.start_move(6_060)
    clock.advance(60)  # 10.6 s of travel; the tube cools 1/30 °C more meanwhile
    assert focuser.blur() == pytest.approx(2.0 * 1.0 / 1000, abs=1e-3)
