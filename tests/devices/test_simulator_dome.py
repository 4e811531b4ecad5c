"""The simulated dome, as a specification: it starts closed and parked at azimuth 0; the shutter
takes ``Shutter Travel Time`` for a full stroke (a share of it from half-way), rotation goes the
shortest way round at ``Dome Rotation Rate``, and an abort leaves a shutter caught half-way in
ERROR (ASCOM's shutterError) until it is opened or closed again.
"""

import xmlrpc.client
from datetime import timedelta

import pytest

from torosmanager.config import default_config
from torosmanager.devices import DeviceError, ShutterState
from torosmanager.devices.factory import dome_devices
from torosmanager.devices.simulator import SimulatedDome, SimulatedSafetyMonitor

from stepped_clock import SteppedClock

#: Seconds: a moment, to step past an instant that sums of steps may miss by a microsecond.
MOMENT = 0.001


@pytest.fixture
def settings():
    return default_config()["Simulator"]


@pytest.fixture
def travel(settings):
    return settings["Shutter Travel Time"]


@pytest.fixture
def rate(settings):
    return settings["Dome Rotation Rate"]


@pytest.fixture
def clock():
    return SteppedClock()


@pytest.fixture
def dome(settings, clock):
    made = SimulatedDome(settings, clock)
    made.connect()
    return made


def test_the_dome_starts_closed_and_parked_at_north(dome):
    state = dome.state()
    assert state.shutter == ShutterState.CLOSED
    assert state.parked and not state.slewing
    assert state.azimuth == 0.0


def test_opening_takes_the_shutter_travel_time(clock, dome, travel):
    dome.start_open()
    assert dome.state().shutter == ShutterState.OPENING and dome.state().slewing
    clock.advance(travel / 2)
    assert dome.state().shutter == ShutterState.OPENING
    clock.advance(travel / 2 + MOMENT)
    assert dome.state().shutter == ShutterState.OPEN and not dome.state().slewing


@pytest.mark.parametrize("hours", [-1, 1])
def test_motions_last_their_time_when_the_system_clock_is_set(clock, dome, travel, rate, hours):
    """The system clock set back or forward an hour mid-motion: the shutter and the rotation
    take their own time, not an hour more or none."""
    dome.start_open()
    dome.start_slew(90.0)
    clock.advance(travel / 2)
    clock.set_to(clock.now() + timedelta(hours=hours))
    state = dome.state()
    assert state.shutter == ShutterState.OPENING and state.slewing
    clock.advance(travel / 2 + MOMENT)
    assert dome.state().shutter == ShutterState.OPEN
    clock.advance(90.0 / rate)
    assert dome.state().azimuth == pytest.approx(90.0) and not dome.state().slewing

def test_closing_takes_the_shutter_travel_time(clock, dome, travel):
    dome.start_open()
    clock.advance(travel + MOMENT)
    dome.start_close()
    assert dome.state().shutter == ShutterState.CLOSING
    clock.advance(travel + MOMENT)
    assert dome.state().shutter == ShutterState.CLOSED


def test_opening_an_open_shutter_changes_nothing(clock, dome, travel):
    dome.start_open()
    clock.advance(travel + MOMENT)
    dome.start_open()
    assert dome.state().shutter == ShutterState.OPEN


def test_closing_half_way_through_opening_turns_back_from_there(clock, dome, travel):
    dome.start_open()
    clock.advance(travel / 4)
    dome.start_close()
    clock.advance(travel / 8)
    assert dome.state().shutter == ShutterState.CLOSING
    clock.advance(travel / 8 + MOMENT)
    assert dome.state().shutter == ShutterState.CLOSED


def test_an_abort_half_way_leaves_the_shutter_in_error_until_moved_again(clock, dome, travel):
    dome.start_open()
    clock.advance(travel / 2)
    dome.abort()
    clock.advance(travel)
    assert dome.state().shutter == ShutterState.ERROR and not dome.state().slewing
    dome.start_close()
    assert dome.state().shutter == ShutterState.CLOSING
    clock.advance(travel / 2 + MOMENT)
    assert dome.state().shutter == ShutterState.CLOSED


def test_rotation_goes_the_shortest_way_at_the_rotation_rate(clock, dome, rate):
    dome.start_slew(350.0)
    state = dome.state()
    assert state.slewing and not state.parked
    clock.advance(5.0 / rate)
    assert dome.state().azimuth == pytest.approx(355.0), "westward through north, not east"
    clock.advance(5.0 / rate + MOMENT)
    state = dome.state()
    assert state.azimuth == pytest.approx(350.0) and not state.slewing and not state.parked


def test_park_rotates_back_to_north_and_is_parked_on_arrival(clock, dome, rate):
    dome.start_slew(90.0)
    clock.advance(90.0 / rate + MOMENT)
    dome.start_park()
    assert not dome.state().parked
    clock.advance(45.0 / rate)
    assert dome.state().azimuth == pytest.approx(45.0)
    clock.advance(45.0 / rate + MOMENT)
    state = dome.state()
    assert state.parked and state.azimuth == pytest.approx(0.0) and not state.slewing


def test_park_does_not_close_the_shutter(clock, dome, travel):
    dome.start_open()
    clock.advance(travel + MOMENT)
    dome.start_slew(10.0)
    dome.start_park()
    clock.advance(travel)
    assert dome.state().parked and dome.state().shutter == ShutterState.OPEN


def test_abort_stops_rotation_where_it_is(clock, dome, rate):
    dome.start_slew(120.0)
    clock.advance(60.0 / rate)
    dome.abort()
    clock.advance(120.0 / rate)
    state = dome.state()
    assert state.azimuth == pytest.approx(60.0) and not state.slewing and not state.parked


def test_a_disconnected_dome_refuses_to_move(dome):
    dome.disconnect()
    with pytest.raises(DeviceError, match="not connected"):
        dome.start_open()
    with pytest.raises(DeviceError, match="not connected"):
        dome.state()
    assert dome.describe()["Connected"] is False


def test_describe_holds_only_xml_rpc_types(dome):
    description = dome.describe()
    assert description["Driver"] == "simulator"
    assert description["Shutter"] == "closed" and description["Parked"] is True
    xmlrpc.client.dumps((description,), allow_none=False)


def test_the_factory_builds_the_simulated_dome_and_safety_monitor(clock):
    dome, safety_monitor = dome_devices(default_config(), clock)
    assert isinstance(dome, SimulatedDome)
    assert isinstance(safety_monitor, SimulatedSafetyMonitor)


def test_auxiliary_outputs_are_state():
    from torosmanager.config import default_config
    from torosmanager.clock import Clock
    from torosmanager.devices.simulator import SimulatedDome

    dome = SimulatedDome(default_config()["Simulator"], Clock())
    dome.connect()
    dome.set_output(1, True)
    dome.set_output(2, False)
    assert dome.state().outputs == {1: True, 2: False}
