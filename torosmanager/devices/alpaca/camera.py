"""An ASCOM Alpaca camera as a :class:`~torosmanager.devices.Camera`.

Images are downloaded here rather than through alpyca's ``ImageArray``, which sends its request
without any timeout and converts the pixels to nested Python lists: the binary Alpaca ImageBytes
encoding is asked for, through the device's session (so bounded by its ``Timeout``), and decoded
with numpy; servers that ignore the ``Accept`` header and answer JSON are decoded too. Alpaca
arrays are indexed ``[x][y]``; :meth:`AlpacaCamera.image` returns them transposed, ``[y, x]``, as
C-contiguous unsigned integers ready for a FITS file.
"""

import logging
import math

import numpy as np
from alpaca.camera import Camera as AlpacaCameraDevice
from alpaca.camera import CameraStates, raise_alpaca_if
from alpaca.exceptions import AlpacaRequestException, DriverException, InvalidOperationException

from ..base import wait_for
from ..camera import Camera, CameraInfo, CameraState, FrameType
from .connection import AlpacaConnection

logger = logging.getLogger(__name__)

#: Seconds between looks at a camera being aborted, until it is idle.
IDLE_POLL_INTERVAL = 0.1

#: Electrons per ADU when the camera does not report ``ElectronsPerADU``.
DEFAULT_GAIN = 1.0

#: The device setting that gives the read noise (electrons RMS), which ASCOM cameras do not
#: report; without it, :data:`UNKNOWN_READ_NOISE` (0, "not known") is reported.
READ_NOISE_SETTING = "Read Noise"
UNKNOWN_READ_NOISE = 0.0

#: The largest value of an unsigned 16-bit pixel.
UINT16_MAX = np.iinfo(np.uint16).max

#: The media type of the Alpaca ImageBytes encoding.
IMAGEBYTES = "application/imagebytes"

#: The ImageBytes header: eleven little-endian 32-bit integers.
IMAGEBYTES_HEADER = np.dtype([
    ("metadata_version", "<i4"), ("error_number", "<i4"), ("client_transaction", "<u4"),
    ("server_transaction", "<u4"), ("data_start", "<i4"), ("image_element_type", "<i4"),
    ("transmission_element_type", "<i4"), ("rank", "<i4"), ("dimension1", "<i4"),
    ("dimension2", "<i4"), ("dimension3", "<i4"),
])

#: Numpy types of the ImageBytes transmission element types (ASCOM ImageArrayElementTypes).
TRANSMISSION_TYPES = {
    1: "<i2", 2: "<i4", 3: "<f8", 4: "<f4", 5: "<u8", 6: "u1", 7: "<i8", 8: "<u2", 9: "<u4",
}

#: The camera states during which an exposure is under way (including its readout).
BUSY_STATES = (CameraStates.cameraWaiting, CameraStates.cameraExposing,
               CameraStates.cameraReading, CameraStates.cameraDownload)

#: How health reports name the camera states.
STATE_NAMES = {
    CameraStates.cameraIdle: "idle", CameraStates.cameraWaiting: "waiting",
    CameraStates.cameraExposing: "exposing", CameraStates.cameraReading: "reading",
    CameraStates.cameraDownload: "downloading", CameraStates.cameraError: "error",
}


class AlpacaCamera(Camera):
    """An ASCOM Alpaca camera, read out full frame at its current binning.

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Device Number``, ``Timeout`` (seconds per request), and optionally
        ``Read Noise`` (electrons RMS).
    """

    def __init__(self, device_settings):
        super().__init__()
        self.connection = AlpacaConnection(self.kind, AlpacaCameraDevice, device_settings)
        self.read_noise = float(device_settings.get(READ_NOISE_SETTING, UNKNOWN_READ_NOISE))
        self._info = None
        self._exposure_min = 0.0

    def connect(self):
        connection = self.connection
        connection.connect()
        bin_x, bin_y = connection.get("BinX"), connection.get("BinY")
        if bin_x != bin_y:
            logger.warning("%s: binning is %d×%d; TOROS reports %d", connection.label,
                           bin_x, bin_y, bin_x)
        width = connection.get("CameraXSize") // bin_x
        height = connection.get("CameraYSize") // bin_y
        # Another client may have left a subframe: every TOROS frame is a full frame.
        for name, value in (("StartX", 0), ("StartY", 0), ("NumX", width), ("NumY", height)):
            connection.set(name, value)
        self._exposure_min = float(connection.optional("ExposureMin", 0.0))
        if not connection.flag("HasShutter", default=True):
            logger.warning("%s has no shutter: dark and bias frames see whatever light reaches "
                           "the sensor", connection.label)
        self._info = CameraInfo(
            name=str(connection.optional("SensorName", "") or connection.get("Name")),
            width=int(width), height=int(height), binning=int(bin_x),
            gain=float(connection.optional("ElectronsPerADU", DEFAULT_GAIN)),
            read_noise=self.read_noise,
            pixel_size=float(connection.get("PixelSizeX")),
            max_adu=int(connection.get("MaxADU")),
        )
        logger.info("%s: %s", connection.label, self._info)

    def disconnect(self):
        self.connection.disconnect()

    def describe(self):
        def fields():
            state = CameraStates(self.connection.get("CameraState"))
            return {"Camera State": STATE_NAMES.get(state, str(int(state))),
                    "Image Ready": self.connection.flag("ImageReady")}
        return self.connection.describe(fields)

    def info(self):
        self.connection.require_connected("reading the camera's description")
        return self._info

    def state(self):
        connection = self.connection
        connection.require_connected("reading the state")
        camera_state = connection.get("CameraState")
        if camera_state == CameraStates.cameraError:
            # Waiting on a camera in error would only end at the caller's timeout.
            raise connection.error("exposing", "the camera reports CameraState Error")
        return CameraState(
            exposing=camera_state in BUSY_STATES,
            image_ready=connection.flag("ImageReady"),
            # ASCOM allows InvalidOperationException for PercentCompleted between exposures.
            percent_complete=_float_or_none(connection.optional(
                "PercentCompleted", also=(InvalidOperationException,))),
            temperature=_float_or_none(connection.optional("CCDTemperature")),
        )

    def start_exposure(self, seconds, frame_type):
        connection = self.connection
        frame_type = FrameType(frame_type)
        duration = float(seconds)
        if frame_type is FrameType.BIAS:
            # A camera that cannot expose for 0 s reports its shortest exposure.
            duration = max(duration, self._exposure_min)
        operation = f"starting a {duration:g} s {frame_type.value} exposure"
        connection.require_connected(operation)
        if CameraStates(connection.get("CameraState")) in BUSY_STATES:
            # Left under way by an order stopped while the camera did not answer its abort:
            # the camera refuses a new exposure until it is idle.
            logger.warning("%s: an exposure was left under way; aborting it first",
                           connection.label)
            self.abort()
            wait_for(lambda: CameraStates(connection.get("CameraState")) not in BUSY_STATES,
                     connection.timeout, f"{connection.label} to be idle", IDLE_POLL_INTERVAL)
        connection.run("StartExposure", duration, frame_type.shutter_open, operation=operation)

    def abort(self):
        connection = self.connection
        connection.require_connected("aborting the exposure")
        if connection.flag("CanAbortExposure", default=False):
            connection.run("AbortExposure")
        elif connection.flag("CanStopExposure", default=False):
            # StopExposure reads the image out; the caller discards it by not reading it.
            logger.info("%s cannot abort an exposure; stopping it instead", connection.label)
            connection.run("StopExposure")
        else:
            raise connection.error("aborting the exposure",
                                   "the camera can neither abort nor stop an exposure")

    def set_cooling(self, setpoint):
        connection = self.connection
        operation = f"cooling the CCD to {setpoint:g} °C"
        connection.require_connected(operation)
        connection.capable("CanSetCCDTemperature", operation)
        connection.set("SetCCDTemperature", float(setpoint))
        connection.set("CoolerOn", True)

    def image(self):
        connection = self.connection
        connection.require_connected("reading the image")
        if not connection.flag("ImageReady"):
            raise connection.error("reading the image", "no image is ready (ImageReady is false)")
        response = connection.call("downloading the image", self._download)
        pixels = connection.call("decoding the image", decode_image, response)
        return to_unsigned(pixels, self._info.max_adu)

    def _download(self):
        """GET ``imagearray`` through the device's session (so with its timeout)."""
        device = self.connection.device
        response = device.rqs.get(f"{device.base_url}/imagearray",
                                  headers={"Accept": f"{IMAGEBYTES}, application/json"})
        if not 200 <= response.status_code < 300:
            raise AlpacaRequestException(response.status_code, response.text.strip())
        return response


def decode_image(response):
    """The pixels of an ``imagearray`` answer, as a 2-D array indexed ``[y, x]``.

    Raises
    ------
    alpaca.exceptions.*
        For an Alpaca error in the answer.
    ValueError
        For an answer that is not a monochrome Alpaca image.
    """
    if IMAGEBYTES in response.headers.get("Content-Type", ""):
        return decode_imagebytes(response.content)
    answer = response.json()
    _raise_alpaca_error(answer["ErrorNumber"], answer["ErrorMessage"])
    pixels = np.asarray(answer["Value"])
    if pixels.ndim != 2:
        raise ValueError(f"only monochrome images are supported; got {pixels.ndim} dimensions")
    return pixels.T


def decode_imagebytes(body):
    """The pixels of an ImageBytes message, as a 2-D array indexed ``[y, x]``."""
    if len(body) < IMAGEBYTES_HEADER.itemsize:
        raise ValueError(f"an ImageBytes answer of {len(body)} bytes is shorter than its header")
    header = np.frombuffer(body, dtype=IMAGEBYTES_HEADER, count=1)[0]
    data_start = int(header["data_start"])
    if header["error_number"]:
        message = body[data_start:].decode("utf-8", errors="replace")
        _raise_alpaca_error(int(header["error_number"]), message)
    if header["rank"] != 2:
        raise ValueError(f"only monochrome images are supported; got rank {header['rank']}")
    element = TRANSMISSION_TYPES.get(int(header["transmission_element_type"]))
    if element is None:
        raise ValueError(f"unknown ImageBytes element type {header['transmission_element_type']}")
    columns, rows = int(header["dimension1"]), int(header["dimension2"])
    pixels = np.frombuffer(body, dtype=element, count=columns * rows, offset=data_start)
    # The rightmost Alpaca index (y) varies fastest on the wire.
    return pixels.reshape(columns, rows).T


def to_unsigned(pixels, max_adu):
    """*pixels* as a C-contiguous unsigned array: 16-bit when *max_adu* allows, else 32-bit."""
    dtype = np.uint16 if max_adu <= UINT16_MAX else np.uint32
    if pixels.dtype != dtype:
        if pixels.dtype.kind == "f":
            pixels = np.rint(pixels)
        pixels = np.clip(pixels, 0, np.iinfo(dtype).max).astype(dtype)
    return np.ascontiguousarray(pixels)


def _raise_alpaca_error(number, message):
    """Raise the alpyca exception for a non-zero Alpaca error *number*."""
    if number:
        raise_alpaca_if(number, message)
        raise DriverException(number, message)


def _float_or_none(value):
    """An optional reading as a float: ``None`` when the camera has none, NaN when it answers
    what is no number (``'n/a'``): the frame's header leaves such a reading out, saying so
    (:func:`~torosmanager.telescope.fits.header`), where ``float()`` failed the frame."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)
