"""The alpaca driver's focuser against alpaca-simulators' focuser.

The simulator's moves are instantaneous (IsMoving is false as soon as Move answers), so a focuser
on its way is one configured to report IsMoving until it is told to move (``MOVING_FOCUSER``).
What the server itself holds is read straight from it, not through the driver.
"""

import logging
import sys
import xmlrpc.client
from pathlib import Path

import pytest

pytest.importorskip("alpaca", reason="alpyca is not installed (pip install alpyca)")

from torosmanager.devices import DeviceError, FocuserState, wait_for  # noqa: E402
from torosmanager.devices.alpaca import AlpacaFocuser  # noqa: E402

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from alpaca_server import (  # noqa: E402,F401
    COMPENSATING_FOCUSER, FOCUSER_MAXIMUM, FOCUSER_POSITION, FOCUSER_TEMPERATURE,
    HARNESS_REQUEST_TIMEOUT, HOST, MOVING_FOCUSER, RELATIVE_FOCUSER, alpaca_server, simulators,
)

POLL_INTERVAL = 0.1
MOVE_TIMEOUT = 10.0
#: Somewhere inside the range, away from where the focuser starts.
TARGET = 25000


def on_the_server(simulators, name, device_number=0):
    """The focuser's property *name* as the server answers it (``GET``, not through the driver)."""
    response = simulators.http.get(f"{simulators.url}/api/v1/focuser/{device_number}/{name}",
                                   timeout=HARNESS_REQUEST_TIMEOUT)
    response.raise_for_status()
    answer = response.json()
    assert answer["ErrorNumber"] == 0, response.text
    return answer["Value"]


def label(simulators, device_number=0):
    """How the driver's messages name focuser *device_number*."""
    return f"focuser (Alpaca focuser {device_number} at {HOST}:{simulators.port})"


def arrive(focuser, position):
    """Wait until *focuser* has stopped at *position*; return its state then."""
    def arrived():
        state = focuser.state()
        return state if state.position == position and not state.moving else None
    return wait_for(arrived, MOVE_TIMEOUT, f"the focuser to reach {position}", POLL_INTERVAL)


@pytest.fixture
def connect(simulators):
    """``connect(device_number)``: a connected AlpacaFocuser, disconnected after the test."""
    made = []

    def connect(device_number=0):
        focuser = AlpacaFocuser(simulators.settings(device_number))
        made.append(focuser)
        focuser.connect()
        return focuser
    yield connect
    for focuser in made:
        focuser.disconnect()


@pytest.fixture
def focuser(connect):
    return connect()


def test_connects_and_reports_position_maximum_and_temperature(focuser):
    assert focuser.state() == FocuserState(position=FOCUSER_POSITION, moving=False,
                                           maximum=FOCUSER_MAXIMUM,
                                           temperature=FOCUSER_TEMPERATURE)


@pytest.mark.parametrize("position", [TARGET, 0, FOCUSER_MAXIMUM])
def test_a_move_arrives_at_the_position(simulators, focuser, position):
    focuser.start_move(position)
    assert arrive(focuser, position).maximum == FOCUSER_MAXIMUM
    assert on_the_server(simulators, "position") == position


def test_a_focuser_on_its_way_reports_moving_until_it_arrives(simulators, connect):
    focuser = connect(MOVING_FOCUSER)
    assert focuser.state().moving is True
    focuser.start_move(TARGET)
    assert arrive(focuser, TARGET).moving is False
    assert on_the_server(simulators, "position", MOVING_FOCUSER) == TARGET


@pytest.mark.parametrize("position", [FOCUSER_MAXIMUM + 1, -1, 2500.5],
                         ids=["beyond the maximum", "negative", "not whole"])
def test_a_position_outside_the_range_is_refused_naming_the_range(simulators, focuser, position):
    with pytest.raises(DeviceError) as refused:
        focuser.start_move(position)
    assert str(refused.value) == (f"{label(simulators)}: moving to position {position!r} failed: "
                                  "the focuser takes a whole number of steps from 0 to "
                                  f"{FOCUSER_MAXIMUM}")
    # The simulator would have clamped the target to the range: nothing moved at all.
    assert on_the_server(simulators, "position") == FOCUSER_POSITION
    assert focuser.state().position == FOCUSER_POSITION


def test_temperature_compensation_is_switched_off_at_connect(simulators, connect, caplog):
    assert on_the_server(simulators, "tempcomp", COMPENSATING_FOCUSER) is True
    with caplog.at_level(logging.INFO, logger="torosmanager.devices.alpaca.focuser"):
        connect(COMPENSATING_FOCUSER)
    assert on_the_server(simulators, "tempcomp", COMPENSATING_FOCUSER) is False
    assert (f"{label(simulators, COMPENSATING_FOCUSER)}: switched its temperature compensation "
            "off: ASCOM forbids moves while it is on, and the telescope daemon's focus model "
            "compensates for temperature itself") in caplog.text


def test_a_relative_focuser_is_refused_at_connect_and_left_disconnected(simulators):
    focuser = AlpacaFocuser(simulators.settings(RELATIVE_FOCUSER))
    with pytest.raises(DeviceError) as refused:
        focuser.connect()
    assert str(refused.value) == (f"{label(simulators, RELATIVE_FOCUSER)}: connecting failed: it "
                                  "is a relative focuser (Absolute is false); the focus model "
                                  "needs an absolute focuser, which knows where focus is")
    assert on_the_server(simulators, "connected", RELATIVE_FOCUSER) is False
    with pytest.raises(DeviceError, match="reading the position failed: not connected"):
        focuser.state()
    with pytest.raises(DeviceError, match="moving to position 25000 failed: not connected"):
        focuser.start_move(TARGET)
    assert focuser.describe() == {"Driver": "alpaca", "Connected": False,
                                  "Address": f"{HOST}:{simulators.port}/{RELATIVE_FOCUSER}"}


def test_describe_reports_the_state_marshallable_by_xmlrpc(simulators, focuser):
    report = focuser.describe()
    assert report == {"Driver": "alpaca", "Connected": True,
                      "Address": f"{HOST}:{simulators.port}/0", "Position": FOCUSER_POSITION,
                      "Moving": False, "Maximum": FOCUSER_MAXIMUM,
                      "Temperature": FOCUSER_TEMPERATURE}
    xmlrpc.client.dumps((report,))
