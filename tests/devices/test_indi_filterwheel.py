"""The indi driver's filter wheel against INDI's filter wheel simulator."""

import sys
from pathlib import Path

import pytest

from torosmanager.devices import DeviceError, wait_for
from torosmanager.devices.indi import IndiFilterWheel

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from indi_server import FILTER_NAMES, indi_server, make_device  # noqa: E402,F401

POLL_INTERVAL = 0.05
#: Seconds a turn of the simulated wheel may take.
MOVE_TIMEOUT = 10.0


@pytest.fixture
def wheel(make_device):
    return make_device(IndiFilterWheel, "filter wheel")


def test_the_filter_names_come_from_filter_name_in_slot_order(wheel):
    state = wheel.state()
    assert state.names == FILTER_NAMES
    assert state.current in FILTER_NAMES
    assert wheel.describe()["Filter"] == state.current


def test_a_move_reports_no_filter_while_turning_then_the_new_one(wheel, indi_server):
    target = "Blue" if wheel.state().current != "Blue" else "Green"
    wheel.start_move(target)
    # Acknowledged (Busy) before start_move returned: the old filter is no longer reported.
    assert wheel.state().current in (None, target)
    wait_for(lambda: wheel.state().current == target, MOVE_TIMEOUT, f"the wheel to reach {target}",
             POLL_INTERVAL)
    # INDI counts slots from 1.
    assert indi_server.get("filter wheel", "FILTER_SLOT", "FILTER_SLOT_VALUE") == str(
        FILTER_NAMES.index(target) + 1)


def test_an_unknown_filter_is_refused_with_the_wheel_s_names(wheel):
    with pytest.raises(DeviceError, match=r"filter wheel \(INDI device 'Filter Simulator'.*"
                                          r"no such filter; the wheel has 'Red', 'Green'"):
        wheel.start_move("Ultraviolet")


def test_a_wheel_without_filter_names_does_not_connect(make_device):
    with pytest.raises(DeviceError, match="did not define SLOT_LABELS"):
        make_device(IndiFilterWheel, "filter wheel", Properties={"FILTER_NAME": "SLOT_LABELS"},
                    Timeout=1.0)
