"""The simulated CCD camera: exposure timing in clock time, frames from :mod:`.frames`.

An exposure of ``t`` seconds started at ``t0`` is under way until ``t0 + t + Readout Time``
(clock seconds); then its image is ready. What the frame shows (pointing, filter, frame number)
is fixed when the exposure starts; the pixels are computed on the first :meth:`image` call, so
:meth:`start_exposure` returns at once even for a large CCD.

Decisions
---------
* A BIAS frame is a zero-second read whatever time is asked for.
* LIGHT frames need the mount's position and LIGHT and FLAT frames the filter in the beam, both
  read when the exposure starts; a filter wheel still turning is refused (:class:`DeviceError`)
  rather than giving a frame through no known filter. Without a filter wheel the beam is
  unfiltered. A parked mount still sees the sky, at the zenith.
* The frames' +y axis lies at ``Simulator → Position Angle`` from north through east, east
  left of north; with the tube looking west (a German equatorial mount after its meridian
  flip) the frame is turned 180° more, as a real camera on such a mount is.
* :meth:`abort` discards the exposure under way (and is a no-op otherwise); :meth:`image` then
  raises until the next exposure is ready.
* The CCD starts at :data:`CCD_TEMPERATURE` and stays there until :meth:`set_cooling` gives
  it another setpoint, which it reaches at ``Simulator → Cooling Rate`` in clock time; the dark
  current in the frames does not follow it.
"""

import math
from dataclasses import dataclass

import numpy as np

from ...units import SECONDS_PER_MINUTE
from ..base import DeviceError
from ..camera import Camera, CameraInfo, CameraState, FrameType
from ..mount import frame_angle
from .common import SimulatedDevice, finite_number
from .frames import MAX_ADU, FrameModel, FrameRequest
from .sky import throughput

#: The model name, for the FITS ``INSTRUME`` keyword.
CAMERA_NAME = "TOROS simulated CCD"
#: Pixel size, micrometres (a typical large-format CCD).
PIXEL_SIZE = 9.0
#: The simulated CCD's temperature, °C, until a setpoint is set (regulated there already).
CCD_TEMPERATURE = -20.0
#: Binning: the simulated camera reads every pixel.
BINNING = 1
#: Percent complete of a finished exposure.
COMPLETE = 100.0


@dataclass
class _Exposure:
    """An exposure started, and its image once made."""

    request: FrameRequest
    started: float  # Clock.elapsed() counts (see SimulatedDevice)
    ready_at: float
    image: np.ndarray | None = None


class SimulatedCamera(SimulatedDevice, Camera):
    """A CCD that images the simulated sky through the given mount, filter wheel and focuser.

    Parameters
    ----------
    simulator_settings : dict
        The ``Simulator`` section: detector (``Width``, ``Height``, ``Gain``, ``Read Noise``,
        ``Bias Level``, ``Dark Current``, ``Readout Time``), optics (``Pixel Scale``,
        ``Vignetting``, ``Seeing``), sky (``Sky Background``, ``Star Density``, ``Flat Level``)
        and ``Seed``.
    site : dict
        The ``Site`` section (kept for the interface; the mount knows the horizon).
    clock : torosmanager.clock.Clock
        The shared clock.
    mount : Mount, optional
        Where LIGHT frames point: ``mount.state().ra`` and ``.dec``.
    filter_wheel : FilterWheel, optional
        The filter for LIGHT and FLAT frames: ``filter_wheel.state().current``.
    focuser : SimulatedFocuser, optional
        How far out of focus LIGHT frames are (:meth:`~.focuser.SimulatedFocuser.blur`);
        without one they are in focus.

    Notes
    -----
    The ``truth_*`` methods give what the frames are made from, so tests can check calibration
    against it; a real camera has no such thing.
    """

    def __init__(self, simulator_settings, site, clock, mount=None, filter_wheel=None,
                 focuser=None):
        super().__init__(clock)
        self.site = site
        self._mount = mount
        self._filter_wheel = filter_wheel
        self._focuser = focuser
        self._model = FrameModel(simulator_settings)
        self._position_angle = float(simulator_settings["Position Angle"])
        self._readout = float(simulator_settings["Readout Time"])
        self._frames = 0          # exposures started, so each frame's noise has its own seed
        self._exposure = None
        self._cooling_rate = float(simulator_settings["Cooling Rate"])
        # The CCD's temperature since the clock's elapsed count, and where the cooler takes it.
        self._temperature, self._since, self._setpoint = CCD_TEMPERATURE, 0.0, CCD_TEMPERATURE

    # -- the interface -------------------------------------------------------------------------

    def info(self):
        """The :class:`CameraInfo` (from the settings).

        Raises
        ------
        DeviceError
            When not connected.
        """
        with self._lock:
            self._require_connected()
        model = self._model
        return CameraInfo(name=CAMERA_NAME, width=model.width, height=model.height,
                          binning=BINNING, gain=model.gain, read_noise=model.read_noise,
                          pixel_size=PIXEL_SIZE, max_adu=MAX_ADU)

    def state(self):
        """The :class:`CameraState` now; ``percent_complete`` covers exposure and readout.

        Raises
        ------
        DeviceError
            When not connected.
        """
        with self._lock:
            self._require_connected()
            exposure, now = self._exposure, self._clock.elapsed()
            temperature = self._temperature_at(now)
            if exposure is None:
                return CameraState(exposing=False, image_ready=False, percent_complete=None,
                                   temperature=temperature)
            ready = now >= exposure.ready_at
            total = exposure.ready_at - exposure.started
            percent = COMPLETE if ready or total <= 0 else \
                COMPLETE * (now - exposure.started) / total
            return CameraState(exposing=not ready, image_ready=ready, percent_complete=percent,
                               temperature=temperature)

    def set_cooling(self, setpoint):
        """Take the CCD to *setpoint* °C at ``Simulator → Cooling Rate`` (°C per minute of
        the clock), from where it is now.

        Raises
        ------
        DeviceError
            When not connected.
        """
        setpoint = finite_number(setpoint, "the CCD's setpoint")
        with self._lock:
            self._require_connected()
            now = self._clock.elapsed()
            self._temperature, self._since = self._temperature_at(now), now
            self._setpoint = setpoint

    def _temperature_at(self, count):
        """The CCD's temperature at the clock's elapsed *count* (with the lock held)."""
        change = self._cooling_rate * (count - self._since) / SECONDS_PER_MINUTE
        gap = self._setpoint - self._temperature
        return self._setpoint if abs(gap) <= change else self._temperature + math.copysign(
            change, gap)

    def start_exposure(self, seconds, frame_type):
        """Start an exposure of *seconds* of *frame_type*; returns at once.

        Parameters
        ----------
        seconds : float
            Exposure time, clock seconds, at least 0 (ignored for a bias).
        frame_type : FrameType or str
            ``LIGHT``, ``BIAS``, ``DARK`` or ``FLAT``.

        Raises
        ------
        DeviceError
            When not connected, exposing already, for a bad time or frame type, or when the
            mount or filter wheel cannot say where the camera looks (see the module notes).
        """
        frame_type = _frame_type(frame_type)
        seconds = finite_number(seconds, "the exposure time")
        if seconds < 0:
            raise DeviceError(f"the exposure time must not be negative, got {seconds:g}")
        if frame_type == FrameType.BIAS:
            seconds = 0.0
        with self._lock:
            self._require_connected()
            self._refuse_if_exposing()
        # Outside the lock: the mount and filter wheel take their own, and may take a while.
        ra, dec, angle = (self._pointing() if frame_type == FrameType.LIGHT
                          else (None, None, 0.0))
        filter_name = self._filter() if frame_type.shutter_open else None
        defocus = (self._focuser.blur() if self._focuser is not None
                   and frame_type == FrameType.LIGHT else 0.0)
        with self._lock:
            self._require_connected()
            self._refuse_if_exposing()
            now = self._clock.elapsed()
            request = FrameRequest(self._frames, frame_type, seconds, ra, dec, filter_name,
                                   defocus, angle)
            self._frames += 1
            self._exposure = _Exposure(request, now, now + seconds + self._readout)

    def abort(self):
        """Discard the exposure under way; no-op when none is (a ready image is kept)."""
        with self._lock:
            self._require_connected()
            exposure = self._exposure
            if exposure is not None and self._clock.elapsed() < exposure.ready_at:
                self._exposure = None

    def image(self):
        """The last exposure's image: a new ``uint16`` ``[y, x]`` array in ADU.

        Raises
        ------
        DeviceError
            When not connected, before any exposure, after an abort, or before the exposure
            and its readout are over.
        """
        with self._lock:
            self._require_connected()
            exposure, now = self._exposure, self._clock.elapsed()
            if exposure is None:
                raise DeviceError("no image: no exposure was taken since the last abort")
            if now < exposure.ready_at:
                raise DeviceError(f"the image is not ready: the exposure ends in "
                                  f"{exposure.ready_at - now:.1f} s")
            image = exposure.image
        if image is None:
            # Rendering takes a while for a large CCD: without the lock, so state() answers.
            image = self._model.render(exposure.request)
            with self._lock:
                if exposure.image is None:
                    exposure.image = image
                image = exposure.image
        return image.copy()

    def describe(self):
        """``Driver``, ``Connected``, the CCD's size, and the exposure's progress."""
        with self._lock:
            fields = {"Name": CAMERA_NAME, "Width": self._model.width,
                      "Height": self._model.height, "Seed": self._model.seed,
                      "Frames": self._frames}
            if self._connected:
                state = self.state()
                fields.update({"Exposing": state.exposing, "Image Ready": state.image_ready,
                               "Temperature": state.temperature})
            return self._describe(fields)

    # -- the truth, for tests and calibration checks ---------------------------------------------

    def truth_bias_level_adu(self):
        """The bias level, ADU: the mean of a bias frame."""
        return self._model.bias_level

    def truth_read_noise_adu(self):
        """The read noise, ADU RMS: the standard deviation of a bias frame."""
        return self._model.read_noise / self._model.gain

    def truth_dark_electrons_per_second(self):
        """The dark current, electrons per second per pixel (the same on every pixel)."""
        return self._model.dark_current

    def truth_sky_electrons_per_second(self, filter_name):
        """Sky electrons per second per pixel through *filter_name* where the flat field is 1.

        The sky on pixel ``[y, x]`` is this times ``truth_flat(filter_name)[y, x]``.
        """
        return self._model.sky_rate(filter_name)

    def truth_throughput(self, filter_name):
        """The fraction of the clear filter's light *filter_name* passes (sky and stars)."""
        return throughput(filter_name)

    def truth_flat(self, filter_name):
        """The flat-field response ``F`` of *filter_name*, a float64 ``[y, x]`` array.

        ``F`` is the vignetting profile (1 at the optical centre) times the pixel-to-pixel
        pattern, the same for the same seed and filter. A master flat normalised to mean 1
        should match ``F / F.mean()`` within its noise.
        """
        return self._model.flat_response(filter_name).astype(np.float64)

    def truth_stars(self, ra, dec):
        """The stars on a frame pointed at ICRS *ra*, *dec*, at position angle 0 (a
        :class:`~.frames.FieldStars`)."""
        return self._model.field_stars(ra, dec)

    def truth_expected_electrons(self, seconds, frame_type, ra=None, dec=None, filter_name=None):
        """The noise-free electrons per pixel of such a frame (float64 ``[y, x]``)."""
        frame_type = _frame_type(frame_type)
        seconds = 0.0 if frame_type == FrameType.BIAS else float(seconds)
        request = FrameRequest(0, frame_type, seconds, ra, dec, filter_name)
        return self._model.expected_electrons(request)

    # -- helpers ------------------------------------------------------------------------------

    def _refuse_if_exposing(self):
        """Raise when an exposure is under way; call with the lock held."""
        exposure = self._exposure
        if exposure is not None and self._clock.elapsed() < exposure.ready_at:
            raise DeviceError("an exposure is already under way")

    def _pointing(self):
        """The mount's ICRS (RA, Dec) now, and the frame's position angle there."""
        if self._mount is None:
            raise DeviceError("the simulated camera has no mount to point with")
        try:
            state = self._mount.state()
        except DeviceError as error:
            raise DeviceError(f"cannot tell where the camera points: {error}") from error
        return state.ra, state.dec, frame_angle(self._position_angle, state.pier_side)

    def _filter(self):
        """The filter in the beam now (``None`` without a filter wheel)."""
        if self._filter_wheel is None:
            return None
        try:
            current = self._filter_wheel.state().current
        except DeviceError as error:
            raise DeviceError(f"cannot tell which filter is in the beam: {error}") from error
        if current is None:
            raise DeviceError("the filter wheel is turning: wait for it before exposing")
        return current


def _frame_type(value):
    """*value* as a :class:`FrameType` (a member, or its name in any case)."""
    if isinstance(value, FrameType):
        return value
    try:
        return FrameType(str(value).upper())
    except ValueError:
        allowed = ", ".join(member.value for member in FrameType)
        raise DeviceError(f"unknown frame type {value!r}; use one of {allowed}") from None
