"""An INDI CCD as a :class:`~torosmanager.devices.Camera`.

An INDI CCD exposes when its ``CCD_EXPOSURE`` is set, counts the seconds left down in it (state
``Busy``), and sends the image as a BLOB in ``CCD1``, usually a FITS file. The connection asks
for BLOBs (``enableBLOB Also``) on this device only. :meth:`IndiCamera.image` decodes the FITS
BLOB into the 2-D array of unsigned ADU, indexed ``[y, x]``, that every camera hands the
telescope daemon, which writes its own FITS file with TOROS's headers (the driver's headers are
not kept).

Properties used (standard names; ``Properties`` renames them): ``CONNECTION``, ``CCD_EXPOSURE``,
``CCD_ABORT_EXPOSURE``, ``CCD_INFO``, ``CCD1`` (the image BLOB), and, when the device defines
them, ``CCD_FRAME_TYPE``, ``CCD_BINNING``, ``CCD_FRAME`` (set to the full frame at connect),
``CCD_TEMPERATURE``, ``CCD_TRANSFER_FORMAT`` (FITS is asked for) and ``UPLOAD_MODE`` (an image
only saved on the INDI server's disk would never reach TOROS).
"""

import io
import logging
import zlib

import numpy as np
from astropy.io import fits

from ..base import DeviceError, DeviceFault, NotCapable
from ..camera import Camera, CameraInfo, CameraState, FrameType
from .connection import ALERT, BUSY, ON, IndiConnection

logger = logging.getLogger(__name__)

#: Electrons per ADU: INDI has no standard property for it.
DEFAULT_GAIN = 1.0

#: The device setting that gives the read noise (electrons RMS), which INDI does not report.
READ_NOISE_SETTING = "Read Noise"
UNKNOWN_READ_NOISE = 0.0

#: Bits per pixel when ``CCD_INFO`` does not say.
DEFAULT_BITS_PER_PIXEL = 16

#: The largest value of an unsigned 16-bit pixel.
UINT16_MAX = np.iinfo(np.uint16).max

#: The format suffix of a BLOB the driver compressed with zlib (``CCD_COMPRESSION``).
ZLIB_SUFFIX = ".z"

#: A whole exposure, in percent.
PERCENT = 100.0

#: Standard property names (INDI CCD standard properties).
EXPOSURE = "CCD_EXPOSURE"
ABORT = "CCD_ABORT_EXPOSURE"
INFO = "CCD_INFO"
IMAGE = "CCD1"
FRAME_TYPE = "CCD_FRAME_TYPE"
BINNING = "CCD_BINNING"
FRAME = "CCD_FRAME"
TEMPERATURE = "CCD_TEMPERATURE"
COOLER = "CCD_COOLER"
TRANSFER_FORMAT = "CCD_TRANSFER_FORMAT"
UPLOAD_MODE = "UPLOAD_MODE"

#: :class:`FrameType` → the ``CCD_FRAME_TYPE`` switch.
FRAME_TYPE_SWITCHES = {
    FrameType.LIGHT: "FRAME_LIGHT", FrameType.BIAS: "FRAME_BIAS",
    FrameType.DARK: "FRAME_DARK", FrameType.FLAT: "FRAME_FLAT",
}


class IndiCamera(Camera):
    """An INDI CCD, read out full frame at its current binning.

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Device``, ``Properties``, ``Timeout`` (seconds per request), and
        optionally ``Read Noise`` (electrons RMS).
    """

    def __init__(self, device_settings):
        super().__init__()
        self.connection = IndiConnection(self.kind, device_settings, blobs=True)
        self.read_noise = float(device_settings.get(READ_NOISE_SETTING) or UNKNOWN_READ_NOISE)
        self._info = None
        # The connection's reconnections when the camera was last set up (see _set_up).
        self._set_up_at = None
        # The BLOB count before the exposure under way, and its length; None before any.
        self._blobs_before = None
        self._duration = 0.0

    def connect(self):
        self.connection.connect(required=(EXPOSURE, INFO, IMAGE))
        self._set_up("connecting")

    def _set_up(self, operation):
        """Read the camera's description and binning; ask for full frames, FITS, and images
        sent to this client. Done again before the first exposure after the device was
        connected again (a restarted server forgets its binning and frame): the frames and
        their headers then say what the camera does, not what it did."""
        connection = self.connection
        reconnections = connection.reconnections
        info_reading = connection.read(INFO, operation)
        info = info_reading.values
        binning = connection.optional(BINNING, operation)
        bin_x, bin_y = ((int(connection.value(binning, "HOR_BIN", operation)),
                         int(connection.value(binning, "VER_BIN", operation)))
                        if binning is not None else (1, 1))
        if bin_x != bin_y:
            logger.warning("%s: binning is %d×%d; TOROS reports %d", connection.label,
                           bin_x, bin_y, bin_x)
        full_width = int(connection.value(info_reading, "CCD_MAX_X", operation))
        full_height = int(connection.value(info_reading, "CCD_MAX_Y", operation))
        if connection.optional(FRAME, operation) is not None:
            # Another client may have left a subframe: every TOROS frame is a full frame.
            connection.send(FRAME, {"X": 0, "Y": 0, "WIDTH": full_width, "HEIGHT": full_height},
                            operation)
        self._prefer(TRANSFER_FORMAT, "FORMAT_FITS", operation)
        upload = connection.optional(UPLOAD_MODE, operation)
        if upload is not None and upload.values.get("UPLOAD_LOCAL") == ON:
            logger.warning("%s uploads images to the INDI server's disk only; asking for both "
                           "(its disk and this client)", connection.label)
            connection.switch(UPLOAD_MODE, "UPLOAD_BOTH", operation)
        bits = int(info.get("CCD_BITSPERPIXEL") or DEFAULT_BITS_PER_PIXEL)
        self._info = CameraInfo(
            name=connection.device_name,
            width=full_width // bin_x, height=full_height // bin_y, binning=bin_x,
            gain=DEFAULT_GAIN, read_noise=self.read_noise,
            pixel_size=float(info.get("CCD_PIXEL_SIZE_X") or info.get("CCD_PIXEL_SIZE", 0.0)),
            max_adu=int(2 ** bits - 1),
        )
        self._blobs_before = None
        self._set_up_at = reconnections
        logger.info("%s: %s", connection.label, self._info)

    def _prefer(self, standard, member, operation):
        """Switch *member* of *standard* on, if the device defines it and it is off."""
        reading = self.connection.optional(standard, operation)
        if reading is not None and member in reading.values and reading.values[member] != ON:
            self.connection.switch(standard, member, operation)

    def disconnect(self):
        self.connection.disconnect()

    def describe(self):
        def fields():
            state = self.state()
            report = {"Exposing": state.exposing, "Image Ready": state.image_ready}
            if state.temperature is not None:
                report["Temperature"] = state.temperature
            return report
        return self.connection.describe(fields)

    def info(self):
        self.connection.require_connected("reading the camera's description")
        return self._info

    def state(self):
        connection = self.connection
        operation = "reading the state"
        exposure = connection.read(EXPOSURE, operation)
        image_ready = self._image_ready()
        if exposure.state == ALERT and self._blobs_before is not None and not image_ready:
            # Waiting on a failed exposure would only end at the caller's timeout.
            # The camera's own verdict: not asked again (see wait_for's error_grace).
            raise DeviceFault(str(connection.error(
                "exposing", f"the camera reports {exposure.name} Alert"
                + (f": {exposure.message}" if exposure.message else ""))))
        exposing = exposure.state == BUSY or (self._blobs_before is not None and not image_ready)
        percent = None
        if exposing and self._duration > 0:
            left = exposure.values.get("CCD_EXPOSURE_VALUE", 0.0)
            percent = max(0.0, min(PERCENT, PERCENT * (1 - left / self._duration)))
        temperature = connection.optional(TEMPERATURE, operation)
        return CameraState(
            exposing=exposing, image_ready=image_ready, percent_complete=percent,
            temperature=(None if temperature is None else float(connection.value(
                temperature, "CCD_TEMPERATURE_VALUE", operation))),
        )

    def _image_ready(self):
        count = self.connection.blob(IMAGE)[0]
        return self._blobs_before is not None and count > self._blobs_before

    def start_exposure(self, seconds, frame_type):
        connection = self.connection
        frame_type = FrameType(frame_type)
        duration = float(seconds)
        operation = f"starting a {duration:g} s {frame_type.value} exposure"
        connection.require_connected(operation)
        if connection.reconnections != self._set_up_at:
            logger.info("%s was connected again since its set-up: reading its binning and "
                        "frame again", connection.label)
            self._set_up(operation)
        exposure = connection.read(EXPOSURE, operation)
        shortest = exposure.limits.get("CCD_EXPOSURE_VALUE", (0.0, 0.0))[0]
        # A camera that cannot expose for 0 s (a bias) takes its shortest exposure.
        duration = max(duration, shortest)
        frame_types = connection.optional(FRAME_TYPE, operation)
        if frame_types is not None:
            connection.switch(FRAME_TYPE, FRAME_TYPE_SWITCHES[frame_type], operation)
        elif frame_type is not FrameType.LIGHT:
            logger.warning("%s defines no %s: the %s frame is taken as the camera likes",
                           connection.label, FRAME_TYPE, frame_type.value)
        self._blobs_before = connection.blob(IMAGE)[0]
        self._duration = duration
        try:
            connection.send(EXPOSURE, {"CCD_EXPOSURE_VALUE": duration}, operation)
        except DeviceError:
            self._blobs_before = None
            raise

    def set_cooling(self, setpoint):
        """Switch ``CCD_COOLER`` on (when the camera has one) and set ``CCD_TEMPERATURE``: INDI
        drivers then cool to it."""
        connection = self.connection
        operation = f"cooling the CCD to {setpoint:g} °C"
        connection.require_connected(operation)
        if connection.optional(TEMPERATURE, operation) is None:
            raise NotCapable(f"{connection.label}: {operation} failed: the device defines no "
                             f"{connection.property_name(TEMPERATURE)}")
        if connection.optional(COOLER, operation) is not None:
            connection.switch(COOLER, "COOLER_ON", operation)
        connection.send(TEMPERATURE, {"CCD_TEMPERATURE_VALUE": float(setpoint)}, operation)

    def abort(self):
        connection = self.connection
        operation = "aborting the exposure"
        connection.require_connected(operation)
        self._blobs_before = None
        connection.switch(ABORT, "ABORT", operation)

    def image(self):
        connection = self.connection
        operation = "reading the image"
        connection.require_connected(operation)
        if not self._image_ready():
            raise connection.error(operation, f"no image is ready (no {IMAGE} BLOB since the "
                                              f"exposure started)")
        _, member, content, blob_format = connection.blob(IMAGE)
        try:
            pixels = decode_fits(content, blob_format)
        except (OSError, ValueError, TypeError, zlib.error) as error:
            raise connection.error(operation, f"cannot decode the {blob_format or 'unnamed'} "
                                              f"BLOB {member} of {len(content)} bytes: "
                                              f"{error}") from error
        return to_unsigned(pixels, self._info.max_adu)


def decode_fits(content, blob_format):
    """The pixels of a FITS BLOB, as a 2-D array indexed ``[y, x]`` (FITS row order).

    Raises
    ------
    ValueError
        For a BLOB that is not FITS (INDI's ``.fits``; ``.fits.z`` when the driver compresses
        with zlib, ``.fits.fz`` with fpack), or a FITS file without a 2-D image.
    """
    if blob_format and ".fits" not in blob_format.lower():
        raise ValueError(f"only FITS images are supported (ask the driver for "
                         f"{TRANSFER_FORMAT} FORMAT_FITS); got {blob_format!r}")
    if blob_format.lower().endswith(ZLIB_SUFFIX):
        # The driver's CCD_COMPRESSION: the whole file through zlib.
        content = zlib.decompress(content)
    with fits.open(io.BytesIO(content), memmap=False) as hdus:
        for hdu in hdus:
            if hdu.data is not None and hdu.data.ndim == 2:
                # Scaled (BZERO 32768) 16-bit data comes out as uint16 already.
                return np.array(hdu.data)
    raise ValueError("the FITS BLOB holds no 2-D image")


def to_unsigned(pixels, max_adu):
    """*pixels* as a C-contiguous unsigned array: 16-bit when *max_adu* allows, else 32-bit."""
    dtype = np.uint16 if max_adu <= UINT16_MAX else np.uint32
    if pixels.dtype != dtype:
        if pixels.dtype.kind == "f":
            pixels = np.rint(pixels)
        pixels = np.clip(pixels, 0, np.iinfo(dtype).max).astype(dtype)
    return np.ascontiguousarray(pixels)
