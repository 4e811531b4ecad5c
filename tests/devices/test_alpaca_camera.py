"""The alpaca driver's camera against alpaca-simulators' camera (images rendered by cabaret)."""

import logging
import sys
import xmlrpc.client
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("alpaca", reason="alpyca is not installed (pip install alpyca)")

import requests  # noqa: E402
from alpaca.exceptions import InvalidOperationException  # noqa: E402
from astropy.io import fits  # noqa: E402

from torosmanager.devices import CameraInfo, DeviceError, FrameType, wait_for  # noqa: E402
from torosmanager.devices.base import NotCapable  # noqa: E402
from torosmanager.devices.alpaca import AlpacaCamera, AlpacaMount  # noqa: E402
from torosmanager.devices.alpaca.camera import (  # noqa: E402
    IMAGEBYTES_HEADER, decode_image, to_unsigned,
)

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from alpaca_server import (  # noqa: E402,F401
    CAMERA_HEIGHT, CAMERA_WIDTH, COOLING_TIME, HOST, J2000_TELESCOPE, SITE, UNCOOLED_CAMERA,
    WARM_CAMERA, WARM_CCD, alpaca_server, simulators, sky_position,
)

POLL_INTERVAL = 0.1
#: Seconds past the exposure time before a frame counts as late (rendering and catalogue query).
READOUT_TIMEOUT = 30.0
SLEW_TIMEOUT = 30.0
LIGHT_SECONDS = 1.0
DARK_SECONDS = 0.5
#: ADU: stars stand out of the sky background by more than this; noise in a dark never does.
STAR_CONTRAST = 1000
#: Where the light frame looks: high in the south-west.
FIELD_ALTITUDE, FIELD_AZIMUTH = 70.0, 200.0
#: The simulated camera's sensor (alpaca-simulators' template).
SENSOR = CameraInfo(name="Simulator Sensor", width=CAMERA_WIDTH, height=CAMERA_HEIGHT,
                    binning=1, gain=1.0, read_noise=0.0, pixel_size=10.0, max_adu=65535)
#: Electrons RMS, as a configuration could give it.
READ_NOISE = 7.5
#: °C, the template's CCD temperature.
CCD_TEMPERATURE = -20.0


#: A small image for the decoding tests: columns (x) and rows (y).
COLUMNS, ROWS = 5, 3
#: ImageBytes element types: Int32 and UInt16.
INT32, UINT16 = 2, 8
#: The Alpaca error number of InvalidOperationException.
INVALID_OPERATION = 0x40B


def alpaca_pixels():
    """An Alpaca ImageArray, indexed [x][y], whose pixel (x, y) holds 100 x + y."""
    x, y = np.meshgrid(np.arange(COLUMNS), np.arange(ROWS), indexing="ij")
    return 100 * x + y


def imagebytes(pixels, element_type=INT32, element_dtype="<i4", error=0, message=""):
    """An ImageBytes answer holding *pixels* (indexed [x][y]) or an error."""
    header = np.zeros(1, dtype=IMAGEBYTES_HEADER)
    header["metadata_version"] = 1
    header["error_number"] = error
    header["data_start"] = IMAGEBYTES_HEADER.itemsize
    header["image_element_type"] = header["transmission_element_type"] = element_type
    header["rank"] = 2
    header["dimension1"], header["dimension2"] = pixels.shape
    body = message.encode() if error else np.ascontiguousarray(pixels, element_dtype).tobytes()
    return answer(header.tobytes() + body, "application/imagebytes")


def answer(content, content_type):
    response = requests.Response()
    response.status_code = 200
    response.headers["Content-Type"] = content_type
    response._content = content
    return response


@pytest.fixture
def camera(simulators):
    made = AlpacaCamera(simulators.settings())
    made.connect()
    yield made
    made.disconnect()


def wait_for_image(camera, seconds):
    wait_for(lambda: camera.state().image_ready, seconds + READOUT_TIMEOUT, "the image",
             POLL_INTERVAL)


@pytest.mark.parametrize("response", [
    imagebytes(alpaca_pixels()),
    imagebytes(alpaca_pixels(), UINT16, "<u2"),
    answer(("{\"ErrorNumber\": 0, \"ErrorMessage\": \"\", \"Value\": "
            + str(alpaca_pixels().tolist()) + "}").encode(), "application/json"),
], ids=["imagebytes-int32", "imagebytes-uint16", "json"])
def test_alpaca_images_are_decoded_to_y_x(response):
    image = to_unsigned(decode_image(response), max_adu=65535)
    assert image.shape == (ROWS, COLUMNS)
    assert image.dtype == np.uint16 and image.flags.c_contiguous
    assert image[2, 4] == 402  # row y = 2, column x = 4


def test_an_imagebytes_error_is_the_alpaca_exception():
    with pytest.raises(InvalidOperationException, match="no image"):
        decode_image(imagebytes(alpaca_pixels(), error=INVALID_OPERATION, message="no image"))


def test_info_and_describe(simulators, camera):
    assert camera.info() == SENSOR
    report = camera.describe()
    assert report == {"Driver": "alpaca", "Connected": True,
                      "Address": f"{HOST}:{simulators.port}/0",
                      "Camera State": "idle", "Image Ready": False}
    xmlrpc.client.dumps((report,))


def test_the_ccd_is_cooled_to_its_setpoint(simulators):
    """SetCCDTemperature and CoolerOn: the simulator's warm CCD then cools there in its own
    time."""
    camera = AlpacaCamera(simulators.settings(WARM_CAMERA))
    camera.connect()
    try:
        assert camera.state().temperature == pytest.approx(WARM_CCD)
        camera.set_cooling(-10.0)
        cooled = wait_for(lambda: (t := camera.state().temperature) <= -9.5 and t,
                          4 * COOLING_TIME, "the CCD to cool", POLL_INTERVAL)
        assert cooled == pytest.approx(-10.0, abs=0.5)
    finally:
        camera.disconnect()


def test_a_camera_that_cannot_set_its_temperature_says_so(simulators):
    camera = AlpacaCamera(simulators.settings(UNCOOLED_CAMERA))
    camera.connect()
    try:
        with pytest.raises(NotCapable, match=r"cooling the CCD to -10 °C failed: the device "
                                             r"cannot do it \(CanSetCCDTemperature is false\)"):
            camera.set_cooling(-10.0)
    finally:
        camera.disconnect()


def test_read_noise_comes_from_the_settings(simulators):
    camera = AlpacaCamera(dict(simulators.settings(), **{"Read Noise": READ_NOISE}))
    camera.connect()
    assert camera.info().read_noise == READ_NOISE
    camera.disconnect()


def test_a_light_frame_of_the_field_the_mount_points_at(simulators, camera, tmp_path):
    ra, dec = sky_position(FIELD_ALTITUDE, FIELD_AZIMUTH)
    simulators.catalogue.add_field(ra, dec)
    mount = AlpacaMount(simulators.settings(J2000_TELESCOPE), SITE)
    mount.connect()
    mount.unpark()
    mount.start_slew(ra, dec)
    wait_for(lambda: not mount.state().slewing, SLEW_TIMEOUT, "the slew", POLL_INTERVAL)

    camera.start_exposure(LIGHT_SECONDS, FrameType.LIGHT)
    assert camera.state().exposing
    wait_for_image(camera, LIGHT_SECONDS)
    state = camera.state()
    assert not state.exposing
    assert state.temperature == CCD_TEMPERATURE
    image = camera.image()
    assert image.shape == (CAMERA_HEIGHT, CAMERA_WIDTH)  # [y, x]
    assert image.dtype == np.uint16 and image.flags.c_contiguous
    assert image.max() > np.median(image) + STAR_CONTRAST, "no stars in the light frame"

    # What the telescope daemon does with it: a FITS file.
    path = tmp_path / "light.fits"
    fits.PrimaryHDU(image).writeto(path)
    with fits.open(path) as written:
        assert written[0].data.dtype == np.uint16
        assert np.array_equal(written[0].data, image)
    mount.disconnect()


@pytest.mark.parametrize("frame_type, seconds", [(FrameType.BIAS, 0.0),
                                                 (FrameType.DARK, DARK_SECONDS)])
def test_bias_and_dark_frames_see_no_stars(camera, frame_type, seconds):
    camera.start_exposure(seconds, frame_type)
    wait_for_image(camera, seconds)
    image = camera.image()
    assert image.shape == (CAMERA_HEIGHT, CAMERA_WIDTH) and image.dtype == np.uint16
    assert image.max() < np.median(image) + STAR_CONTRAST


def test_abort_discards_the_exposure(camera):
    camera.start_exposure(DARK_SECONDS, FrameType.DARK)
    assert camera.state().exposing
    camera.abort()
    state = camera.state()
    assert not state.exposing and not state.image_ready
    # alpaca-simulators' AbortExposure leaves its exposure task running, which then marks an
    # image ready; let it finish so that it cannot do that during the next test.
    wait_for_image(camera, DARK_SECONDS)


def test_an_exposure_left_under_way_is_aborted_before_the_next(camera, caplog):
    """An exposure left under way (an order stopped while the camera did not answer its
    abort): the next order failed at once, the camera refusing to start while not idle. It
    is aborted first, saying so."""
    camera.start_exposure(DARK_SECONDS, FrameType.DARK)
    with caplog.at_level(logging.WARNING):
        camera.start_exposure(DARK_SECONDS, FrameType.DARK)
    assert "an exposure was left under way; aborting it first" in caplog.text
    assert camera.state().exposing
    wait_for_image(camera, DARK_SECONDS)
    assert camera.image().shape == (camera.info().height, camera.info().width)


def test_an_exposure_the_camera_refuses(simulators, camera):
    too_long = 2 * 3600.0  # the simulated camera's ExposureMax is 3600 s
    with pytest.raises(DeviceError) as refused:
        camera.start_exposure(too_long, FrameType.DARK)
    message = str(refused.value)
    assert message.startswith(f"camera (Alpaca camera 0 at {HOST}:{simulators.port}): "
                              "starting a 7200 s DARK exposure failed: InvalidValueException:")
    assert "too long" in message


def test_an_exposure_that_fails_in_the_camera_is_a_device_error(simulators, camera):
    # Without its catalogue the simulated camera cannot render a light frame: CameraState Error.
    with simulators.catalogue.missing():
        camera.start_exposure(DARK_SECONDS, FrameType.LIGHT)
        with pytest.raises(DeviceError, match="the camera reports CameraState Error"):
            wait_for_image(camera, DARK_SECONDS)


def test_no_image_before_an_exposure(camera):
    with pytest.raises(DeviceError, match=r"reading the image failed: no image is ready"):
        camera.image()
