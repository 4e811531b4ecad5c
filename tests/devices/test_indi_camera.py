"""The indi driver's camera against INDI's CCD simulator: exposures arrive as FITS BLOBs."""

import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from torosmanager.devices import DeviceError, FrameType, wait_for
from torosmanager.devices.indi import IndiCamera

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from indi_server import (  # noqa: E402,F401
    CAMERA_BINNING,
    CAMERA_HEIGHT,
    CAMERA_WIDTH,
    SENSOR_HEIGHT,
    SENSOR_WIDTH,
    IndiServer,
    indi_server,
    make_device,
    unused_port,
)
import odd_indi_camera  # noqa: E402

POLL_INTERVAL = 0.05
#: Seconds of the test exposures, and what a readout may add on the simulator.
EXPOSURE = 0.5
READOUT_TIMEOUT = 10.0
#: The read noise given in the settings (INDI does not report one).
READ_NOISE = 7.5
#: The simulator's pixels, micrometres.
PIXEL_SIZE = 5.2
#: The simulator's shortest exposure, seconds.
SHORTEST_EXPOSURE = 0.01
#: An exposure long enough to be aborted mid-way.
LONG_EXPOSURE = 30.0
#: °C below where it is that the CCD is cooled to, and the seconds the simulator may take.
COOLING_STEP = 2.0
COOLING_PATIENCE = 30.0


@pytest.fixture
def camera(make_device):
    return make_device(IndiCamera, "camera", **{"Read Noise": READ_NOISE})


def expose(camera, seconds, frame_type):
    camera.start_exposure(seconds, frame_type)
    wait_for(lambda: camera.state().image_ready, seconds + READOUT_TIMEOUT,
             f"the {frame_type.value} frame", POLL_INTERVAL)
    return camera.image()


def test_the_ccd_is_cooled_to_its_setpoint(camera):
    """CCD_TEMPERATURE set: the simulator's CCD cools there in its own time."""
    start = camera.state().temperature
    setpoint = start - COOLING_STEP
    camera.set_cooling(setpoint)
    cooled = wait_for(lambda: (t := camera.state().temperature) is not None
                      and abs(t - setpoint) <= 0.5 and t, COOLING_PATIENCE, "the CCD to cool",
                      0.1)
    assert cooled == pytest.approx(setpoint, abs=0.5)


def test_the_description_comes_from_ccd_info_and_the_binning(camera):
    info = camera.info()
    assert (info.width, info.height, info.binning) == (CAMERA_WIDTH, CAMERA_HEIGHT,
                                                       CAMERA_BINNING)
    assert info.name == "CCD Simulator"
    assert info.max_adu == 2 ** 16 - 1
    assert info.pixel_size == pytest.approx(PIXEL_SIZE, abs=1e-3)
    assert info.read_noise == READ_NOISE
    assert camera.describe()["Driver"] == "indi"


def test_a_light_frame_arrives_as_the_simulated_ccd_s_pixels(camera):
    camera.start_exposure(EXPOSURE, FrameType.LIGHT)
    during = camera.state()
    assert during.exposing and not during.image_ready
    assert during.temperature is not None
    # From the seconds left that CCD_EXPOSURE counts down.
    assert 0 <= during.percent_complete <= 100
    wait_for(lambda: camera.state().image_ready, EXPOSURE + READOUT_TIMEOUT, "the frame",
             POLL_INTERVAL)
    assert not camera.state().exposing
    pixels = camera.image()
    assert pixels.shape == (CAMERA_HEIGHT, CAMERA_WIDTH)
    assert pixels.dtype == np.uint16 and pixels.flags["C_CONTIGUOUS"]
    # The simulator's sky glow and noise: not a blank frame.
    assert pixels.std() > 0 and pixels.max() > 0


def test_a_bias_takes_the_shortest_exposure_with_the_bias_frame_type(camera, indi_server):
    pixels = expose(camera, 0.0, FrameType.BIAS)
    assert pixels.shape == (CAMERA_HEIGHT, CAMERA_WIDTH)
    assert indi_server.get("camera", "CCD_FRAME_TYPE", "FRAME_BIAS") == "On"
    dark = expose(camera, SHORTEST_EXPOSURE, FrameType.DARK)
    assert dark.shape == pixels.shape
    assert indi_server.get("camera", "CCD_FRAME_TYPE", "FRAME_DARK") == "On"


def test_no_image_is_ready_before_an_exposure(camera):
    assert not camera.state().image_ready
    with pytest.raises(DeviceError, match=r"camera \(INDI device 'CCD Simulator'.*"
                                          r"reading the image failed: no image is ready"):
        camera.image()


def test_an_aborted_exposure_gives_no_image(camera):
    camera.start_exposure(LONG_EXPOSURE, FrameType.LIGHT)
    assert camera.state().exposing
    camera.abort()
    wait_for(lambda: not camera.state().exposing, READOUT_TIMEOUT, "the exposure to stop",
             POLL_INTERVAL)
    time.sleep(EXPOSURE)
    assert not camera.state().image_ready


def test_a_subframe_left_by_another_client_is_reset_to_the_full_frame(make_device, indi_server):
    indi_server.set("camera", "CCD_FRAME", X=8, Y=8, WIDTH=SENSOR_WIDTH // 2,
                    HEIGHT=SENSOR_HEIGHT // 2)
    indi_server.wait_for("camera", "CCD_FRAME", "WIDTH", str(SENSOR_WIDTH // 2))
    camera = make_device(IndiCamera, "camera")
    assert expose(camera, SHORTEST_EXPOSURE, FrameType.LIGHT).shape == (CAMERA_HEIGHT,
                                                                        CAMERA_WIDTH)


@pytest.fixture
def odd_camera(indi_server, tmp_path):
    """The camera of tests/devices/odd_indi_camera.py, whose temperature is ``n/a``, on a server
    of its own beside the simulators' (in their namespace)."""
    driver = tmp_path / "odd_indi_camera"
    driver.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} "
                      f"{shlex.quote(odd_indi_camera.__file__)}\n")
    driver.chmod(0o755)
    server = IndiServer(tmp_path, kinds=(), port=unused_port(), drivers=[str(driver)])
    camera = IndiCamera(server.settings("camera", Device=odd_indi_camera.DEVICE))
    try:
        server.start()
        camera.connect()
        yield camera
    finally:
        camera.disconnect()
        server.stop()


def test_a_temperature_that_is_no_number_is_unknown_and_the_frame_is_taken(odd_camera):
    """indipyclient drops a property defined with a number that is none (``n/a``): the
    temperature is unknown, the frame's header goes without it, and the frame is taken."""
    assert odd_camera.state().temperature is None
    assert "Temperature" not in odd_camera.describe()
    pixels = expose(odd_camera, EXPOSURE, FrameType.LIGHT)
    assert pixels.shape == (odd_indi_camera.HEIGHT, odd_indi_camera.WIDTH)
    assert (pixels == odd_indi_camera.PIXEL).all()
    assert odd_camera.state().temperature is None
