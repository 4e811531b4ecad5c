"""The indi driver's focuser against INDI's focuser simulator.

The simulator (INDI 1.9.9) is an absolute focuser from 0 to 100000 steps, starting half-way,
with a sensor (``FOCUS_TEMPERATURE``, 0 °C until set). It moves 100 µs a step (its ``DELAY``)
and sleeps through an absolute move before it answers ``Ok``, never ``Busy``; a relative move
(``REL_FOCUS_POSITION``) first sets ``ABS_FOCUS_POSITION`` ``Busy``, so that is how a move under
way is seen here.
"""

import sys
import xmlrpc.client
from pathlib import Path

import pytest

from torosmanager.devices import DeviceError, wait_for
from torosmanager.devices.indi import IndiFocuser

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from indi_server import (  # noqa: E402,F401
    FOCUSER_MAXIMUM,
    FOCUSER_START,
    indi_server,
    make_device,
)

__all__ = ["indi_server", "make_device"]  # fixtures, imported for pytest

POLL_INTERVAL = 0.05
#: Seconds a move in these tests may take (the simulator moves 10000 steps a second).
MOVE_TIMEOUT = 5.0
#: Steps of the moves in these tests: a fifth of a second, half a second.
SHORT_MOVE = 2000
LONG_MOVE = 5000
#: The ``Timeout`` of a device that is expected not to connect.
REFUSAL_TIMEOUT = 1.0
#: A temperature to give the simulator's sensor, °C, and the one it starts with.
TEMPERATURE = 12.5
START_TEMPERATURE = 0.0

#: How the messages name the simulator, as a regular expression.
LABEL = r"^focuser \(INDI device 'Focuser Simulator' at 127\.0\.0\.1:\d+\)"
POSITION = ("focuser", "ABS_FOCUS_POSITION", "FOCUS_ABSOLUTE_POSITION")


def server_position(indi_server):
    """The position as the server has it."""
    return int(indi_server.get(*POSITION))


@pytest.fixture
def focuser(make_device, indi_server):
    """A connected focuser; the simulator is put back where it started, for the next test."""
    yield make_device(IndiFocuser, "focuser")
    if server_position(indi_server) != FOCUSER_START:
        indi_server.set("focuser", "ABS_FOCUS_POSITION", FOCUS_ABSOLUTE_POSITION=FOCUSER_START)
        indi_server.wait_for(*POSITION, str(FOCUSER_START), timeout=MOVE_TIMEOUT)


def arrival(focuser, position):
    """The focuser's state once it has stopped at *position*."""
    return wait_for(lambda: (state := focuser.state()).position == position and not state.moving
                    and state, MOVE_TIMEOUT, f"the focuser to reach {position}", POLL_INTERVAL)


def test_it_connects_and_reports_the_simulator_s_position_range_and_temperature(focuser):
    assert focuser.state().position == FOCUSER_START
    assert focuser.state().maximum == FOCUSER_MAXIMUM
    assert focuser.state().moving is False
    assert focuser.state().temperature == START_TEMPERATURE


def test_a_move_returns_once_the_simulator_answered_and_ends_at_the_target(focuser, indi_server):
    target = FOCUSER_START + SHORT_MOVE
    focuser.start_move(target)
    # The simulator answers once it has moved (it reports no Busy for an absolute move), so
    # the focuser is there when start_move returns.
    assert focuser.state().position == target
    arrival(focuser, target)
    assert server_position(indi_server) == target
    assert indi_server.get("focuser", "ABS_FOCUS_POSITION", "_STATE") == "Ok"


def test_a_move_under_way_is_reported_as_moving_until_it_arrives(focuser, indi_server):
    # A relative move by another client: the simulator sets ABS_FOCUS_POSITION Busy, then sleeps
    # through the move. Inward, the simulator's default, counts down.
    indi_server.set("focuser", "FOCUS_MOTION", FOCUS_INWARD="On")
    indi_server.set("focuser", "REL_FOCUS_POSITION", FOCUS_RELATIVE_POSITION=LONG_MOVE)
    wait_for(lambda: focuser.state().moving, MOVE_TIMEOUT, "the focuser to move", POLL_INTERVAL)
    assert arrival(focuser, FOCUSER_START - LONG_MOVE).moving is False


@pytest.mark.parametrize("position", [FOCUSER_MAXIMUM + 1, -1, 1.5, True])
def test_a_position_outside_the_range_is_refused_naming_it_and_nothing_is_sent(
        focuser, indi_server, position):
    with pytest.raises(DeviceError, match=LABEL + rf": moving to position {position!r} failed: "
                                          rf"the focuser takes a whole number of steps from 0 to "
                                          rf"{FOCUSER_MAXIMUM}$"):
        focuser.start_move(position)
    # The simulator refuses an out-of-range position itself, with an Alert: none came.
    assert indi_server.get("focuser", "ABS_FOCUS_POSITION", "_STATE") == "Ok"
    assert focuser.state().position == FOCUSER_START


def test_the_temperature_is_the_focuser_s_sensor(focuser, indi_server):
    indi_server.set("focuser", "FOCUS_TEMPERATURE", TEMPERATURE=TEMPERATURE)
    try:
        wait_for(lambda: focuser.state().temperature == TEMPERATURE, MOVE_TIMEOUT,
                 f"the temperature to read {TEMPERATURE}", POLL_INTERVAL)
        assert focuser.describe()["Temperature"] == TEMPERATURE
    finally:
        indi_server.set("focuser", "FOCUS_TEMPERATURE", TEMPERATURE=START_TEMPERATURE)


def test_without_focus_max_or_a_sensor_the_range_is_the_position_s_and_no_temperature(
        make_device):
    focuser = make_device(IndiFocuser, "focuser", Properties={
        "FOCUS_MAX": "NO_SUCH_PROPERTY", "FOCUS_TEMPERATURE": "NO_SUCH_SENSOR"})
    # The simulator bounds ABS_FOCUS_POSITION by its maximum.
    assert focuser.state().maximum == FOCUSER_MAXIMUM
    assert focuser.state().temperature is None
    assert focuser.describe()["Temperature"] == "n/a"


def test_a_focuser_without_an_absolute_position_is_refused_at_connect(make_device):
    # A relative focuser defines no ABS_FOCUS_POSITION. (The simulator's Relative mode keeps
    # defining it, so it is renamed to one the device lacks.)
    focuser = make_device(IndiFocuser, "focuser", connect=False, Timeout=REFUSAL_TIMEOUT,
                          Properties={"ABS_FOCUS_POSITION": "NO_SUCH_PROPERTY"})
    with pytest.raises(DeviceError, match=LABEL + r": connecting failed: the device does not "
                                          r"define NO_SUCH_PROPERTY: it is a relative focuser.*"
                                          r"the focus model needs an absolute focuser"):
        focuser.connect()
    assert focuser.describe()["Connected"] is False
    with pytest.raises(DeviceError, match=r"not connected"):
        focuser.state()


def test_the_health_report_is_the_state_and_goes_over_xml_rpc(focuser):
    report = focuser.describe()
    assert report == {"Driver": "indi", "Connected": True, "Address": report["Address"],
                      "Device": "Focuser Simulator", "Position": FOCUSER_START, "Moving": False,
                      "Maximum": FOCUSER_MAXIMUM, "Temperature": START_TEMPERATURE}
    assert xmlrpc.client.loads(xmlrpc.client.dumps((report,)))[0][0] == report
