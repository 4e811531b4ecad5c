"""The simulated camera's exposures, as a specification: an exposure is under way for its time
plus the readout time of clock time, then its image is ready; asking for the image earlier, or
after an abort, raises; a second exposure cannot start during the first.
"""

import xmlrpc.client
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from torosmanager.clock import Clock
from torosmanager.config import default_config
from torosmanager.devices import DeviceError, FrameType, wait_for
from torosmanager.devices.simulator import (SimulatedCamera, SimulatedFilterWheel,
                                            SimulatedMount)

from stepped_clock import NIGHT, SteppedClock

#: Seconds: a moment, to step past an instant that sums of steps may miss by a microsecond.
MOMENT = 0.001
#: A small CCD keeps these tests quick; the frame model is checked in test_simulator_frames.
SIZE = 64


@pytest.fixture
def config():
    made = default_config()
    made["Simulator"].update({"Width": SIZE, "Height": SIZE})
    return made


@pytest.fixture
def readout(config):
    return config["Simulator"]["Readout Time"]


@pytest.fixture
def clock():
    return SteppedClock()


@pytest.fixture
def devices(config, clock):
    """(camera, mount, filter wheel), connected; the mount unparked."""
    settings, site = config["Simulator"], config["Site"]
    mount = SimulatedMount(settings, site, clock)
    wheel = SimulatedFilterWheel(settings, clock)
    camera = SimulatedCamera(settings, site, clock, mount=mount, filter_wheel=wheel)
    for device in (mount, wheel, camera):
        device.connect()
    mount.unpark()
    return camera, mount, wheel


@pytest.fixture
def camera(devices):
    return devices[0]


def test_info_comes_from_the_settings(config, camera):
    info = camera.info()
    settings = config["Simulator"]
    assert (info.width, info.height, info.binning) == (SIZE, SIZE, 1)
    assert info.gain == settings["Gain"] and info.read_noise == settings["Read Noise"]
    assert info.max_adu == 65535 and info.name == "TOROS simulated CCD"
    assert info.pixel_size > 0


def test_the_ccd_cools_and_warms_to_its_setpoint_at_the_cooling_rate(config, clock, camera):
    """From −20 °C at ``Cooling Rate`` (5 °C per minute by default), in the clock's time."""
    rate = config["Simulator"]["Cooling Rate"]
    assert camera.state().temperature == -20.0
    camera.set_cooling(-30.0)
    clock.advance(60)
    assert camera.state().temperature == pytest.approx(-20.0 - rate)
    clock.advance(3600)
    assert camera.state().temperature == -30.0  # and kept there
    camera.set_cooling(-25.0)
    clock.advance(30)
    assert camera.state().temperature == pytest.approx(-30.0 + rate / 2)


def test_an_idle_camera_has_no_image(camera):
    state = camera.state()
    assert not state.exposing and not state.image_ready
    with pytest.raises(DeviceError, match="no image"):
        camera.image()


def test_an_exposure_lasts_its_time_plus_the_readout(clock, camera, readout):
    camera.start_exposure(10.0, FrameType.LIGHT)
    assert camera.state().exposing and not camera.state().image_ready
    clock.advance(10.0)
    assert camera.state().exposing, "reading out"
    assert camera.state().percent_complete < 100.0
    with pytest.raises(DeviceError, match="not ready"):
        camera.image()
    clock.advance(readout + MOMENT)
    state = camera.state()
    assert not state.exposing and state.image_ready and state.percent_complete == 100.0
    image = camera.image()
    assert image.shape == (SIZE, SIZE) and image.dtype == np.uint16


@pytest.mark.parametrize("hours", [-1, 1])
def test_an_exposure_lasts_its_time_when_the_system_clock_is_set(clock, camera, readout, hours):
    """The system clock set back or forward an hour mid-exposure (NTP, a person): the image is
    ready after the exposure and readout, not an hour later, nor at once."""
    camera.start_exposure(10.0, FrameType.LIGHT)
    clock.advance(5.0)
    clock.set_to(clock.now() + timedelta(hours=hours))
    assert camera.state().exposing
    assert camera.state().percent_complete == pytest.approx(100.0 * 5.0 / (10.0 + readout))
    clock.advance(5.0 + readout + MOMENT)
    assert camera.state().image_ready

def test_image_can_be_read_again_and_is_the_callers_to_change(clock, camera, readout):
    camera.start_exposure(1.0, FrameType.DARK)
    clock.advance(1.0 + readout + MOMENT)
    first = camera.image()
    first[:] = 0
    assert np.any(camera.image() != 0)


def test_a_second_exposure_cannot_start_during_the_first(camera):
    camera.start_exposure(10.0, FrameType.DARK)
    with pytest.raises(DeviceError, match="under way"):
        camera.start_exposure(10.0, FrameType.DARK)


def test_abort_discards_the_exposure(clock, camera, readout):
    camera.start_exposure(10.0, FrameType.LIGHT)
    clock.advance(5.0)
    camera.abort()
    assert not camera.state().exposing and not camera.state().image_ready
    clock.advance(10.0 + readout)
    with pytest.raises(DeviceError, match="no image"):
        camera.image()
    camera.start_exposure(0.0, FrameType.BIAS)  # the camera is free again


def test_a_bias_is_a_zero_second_read_whatever_time_is_asked(clock, camera, readout):
    camera.start_exposure(30.0, FrameType.BIAS)
    clock.advance(readout + MOMENT)
    assert camera.state().image_ready


def test_frame_types_may_be_given_by_name(clock, camera, readout):
    camera.start_exposure(0.0, "bias")
    clock.advance(readout + MOMENT)
    assert camera.state().image_ready


def test_bad_exposures_are_refused(camera):
    with pytest.raises(DeviceError, match="frame type"):
        camera.start_exposure(1.0, "SCIENCE")
    with pytest.raises(DeviceError, match="negative"):
        camera.start_exposure(-1.0, FrameType.DARK)
    with pytest.raises(DeviceError, match="number"):
        camera.start_exposure("long", FrameType.DARK)


def test_light_frames_wait_for_a_turning_filter_wheel(devices):
    camera, _, wheel = devices
    wheel.start_move("V")
    with pytest.raises(DeviceError, match="filter wheel is turning"):
        camera.start_exposure(1.0, FrameType.LIGHT)
    camera.start_exposure(1.0, FrameType.DARK)  # a dark needs no filter


def test_light_frames_need_a_connected_mount(devices):
    camera, mount, _ = devices
    mount.disconnect()
    with pytest.raises(DeviceError, match="cannot tell where the camera points"):
        camera.start_exposure(1.0, FrameType.LIGHT)


def test_a_disconnected_camera_refuses_everything_but_describe(camera):
    camera.disconnect()
    for call in (camera.info, camera.state, camera.image, camera.abort,
                 lambda: camera.start_exposure(1.0, FrameType.DARK)):
        with pytest.raises(DeviceError, match="not connected"):
            call()
    assert camera.describe()["Connected"] is False


def test_describe_holds_only_xml_rpc_types(camera):
    description = camera.describe()
    assert description["Driver"] == "simulator" and description["Exposing"] is False
    xmlrpc.client.dumps((description,), allow_none=False)


def test_with_a_fast_real_clock_an_exposure_is_ready_in_a_fraction_of_a_second(config):
    clock = Clock(start=NIGHT, anchor=datetime.now(timezone.utc), speed=1000)
    camera = SimulatedCamera(config["Simulator"], config["Site"], clock)
    camera.connect()
    camera.start_exposure(30.0, FrameType.DARK)
    wait_for(lambda: camera.state().image_ready, timeout=10, what="the dark",
             poll_interval=0.01)
    assert camera.image().shape == (SIZE, SIZE)
