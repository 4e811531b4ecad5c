"""The indi driver's dome against INDI's dome simulator (its shutter takes about 5 s, and it turns
10° a second, one step a second)."""

import sys
import time
from pathlib import Path

import pytest

from torosmanager.devices import DeviceError, ShutterState, wait_for
from torosmanager.devices.indi import IndiDome

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from indi_server import indi_server, make_device  # noqa: E402,F401

POLL_INTERVAL = 0.1
#: Seconds the simulated shutter or rotation may take.
MOTION_TIMEOUT = 20.0
#: A short rotation (the simulator turns a few degrees a second).
NEARBY_AZIMUTH = 8.0
#: Degrees of a rotation that is aborted, and seconds after which it is.
FAR_ROTATION = 150.0
ABORT_AFTER = 0.3
#: The simulator's park azimuth (its default), and where the park test starts from: far enough
#: that parking takes a few of the simulator's one-second steps.
PARK_AZIMUTH = 90.0
BEFORE_PARK_AZIMUTH = 130.0


@pytest.fixture
def dome(make_device):
    return make_device(IndiDome, "dome")


def settled(dome, what):
    """Wait until nothing moves; the dome's state then."""
    def still():
        state = dome.state()
        return None if state.slewing else state
    return wait_for(still, MOTION_TIMEOUT, what, POLL_INTERVAL)


def test_the_dome_rotates_to_an_azimuth(dome):
    dome.start_slew(NEARBY_AZIMUTH)
    state = settled(dome, "the rotation to end")
    assert state.azimuth == pytest.approx(NEARBY_AZIMUTH, abs=0.5)


def test_abort_stops_a_rotation_on_the_way(dome):
    start = dome.state().azimuth
    dome.start_slew(start + FAR_ROTATION)
    time.sleep(ABORT_AFTER)
    dome.abort()
    stopped = settled(dome, "the aborted rotation to stop")
    assert stopped.azimuth != pytest.approx((start + FAR_ROTATION) % 360, abs=1.0)


def test_outputs_are_recorded_since_an_indi_dome_has_none(dome):
    dome.set_output(1, True)
    assert dome.state().outputs == {1: True}


def test_a_dome_that_cannot_rotate_refuses_a_slew(make_device):
    roof = make_device(IndiDome, "dome", Properties={"ABS_DOME_POSITION": "NO_ROTATION"})
    assert roof.state().azimuth is None
    with pytest.raises(DeviceError, match=r"dome \(INDI device 'Dome Simulator'.*slewing to "
                                          r"azimuth 90.00° failed: .*defines no NO_ROTATION"):
        roof.start_slew(90.0)


def test_the_shutter_opens_then_starts_closing(dome):
    # (The whole close is seen in tests/test_indi_observatory.py: rain closes the dome.)
    assert dome.state().shutter is ShutterState.CLOSED
    dome.start_open()
    opening = dome.state()
    assert opening.shutter is ShutterState.OPENING and opening.slewing
    assert settled(dome, "the shutter to open").shutter is ShutterState.OPEN
    assert dome.describe()["Shutter"] == "open"
    dome.start_open()  # already open: nothing moves
    assert dome.state().shutter is ShutterState.OPEN
    dome.start_close()
    closing = dome.state()
    assert closing.shutter is ShutterState.CLOSING and closing.slewing


def test_the_dome_parks_at_its_park_azimuth_and_reads_parked(dome, indi_server):
    # Last in the module: INDI refuses to move a parked dome, and this one stays parked.
    dome.start_slew(BEFORE_PARK_AZIMUTH)
    assert not settled(dome, "the rotation to end").parked
    dome.start_park()
    parking = dome.state()
    assert parking.slewing and not parking.parked  # DOME_PARK is Busy until it is there
    # DOME_PARK and the last azimuth come from the simulator as two messages: in CI, under
    # load, a read between them found the dome parked at the azimuth before (110°).
    wait_for(lambda: (state := dome.state()).parked
             and abs(state.azimuth - PARK_AZIMUTH) <= 0.5, MOTION_TIMEOUT,
             f"the dome to be parked at {PARK_AZIMUTH}°", POLL_INTERVAL)
    # The simulator closes the shutter while it turns, and calls the dome parked as soon as it
    # is at the azimuth: the shutter may still be closing (the state says it is moving).
    still = settled(dome, "the shutter to close")
    assert still.parked and still.shutter is ShutterState.CLOSED
    # What the driver reads is what INDI's own client reads.
    assert indi_server.get("dome", "DOME_PARK", "PARK") == "On"
    assert dome.describe()["Parked"] is True
