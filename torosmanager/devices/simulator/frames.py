"""The simulated CCD's frames: what falls on each pixel, in electrons, then the ADU read out.

The model, per pixel ``(y, x)``, for an exposure of ``t`` seconds through filter ``f``::

    expected electrons = Dark Current × t                                   every frame
                       + F(y, x, f) × T(f) × t × (Sky Background + stars)   LIGHT
                       + F(y, x, f) × Flat Level                           FLAT
    electrons          = Poisson(expected electrons)
    ADU                = Bias Level + electrons / Gain + Normal(0, Read Noise / Gain)

rounded and clipped to ``[0, MAX_ADU]`` as ``uint16``. ``T(f)`` is the filter's
:func:`~.sky.throughput`; ``F`` the flat-field response: a vignetting profile
``1 - Vignetting × r² / r_corner²`` (1 at the centre, ``1 - Vignetting`` in the corners) times a
pixel-to-pixel pattern of :data:`PIXEL_RESPONSE_RMS` about 1, drawn from the seed and the filter
name, so the same seed and filter always give the same ``F``. A BIAS frame has ``t = 0``. A FLAT
is a uniform source that gives ``Flat Level`` electrons at the centre whatever the exposure
time (as if its brightness were matched to the time); only its dark current grows with ``t``.

Stars are Gaussians of FWHM ``Seeing`` (arcseconds), integrated over each pixel, projected
(tangent plane) with north up (+y) and east left (-x), the pointing at the centre of the frame.
Out of focus they are wider: the request's ``defocus`` FWHM is added in quadrature (a real
defocused star is a ring; its half-flux diameter grows the same way, which is what autofocus
measures).

Noise is drawn from a generator seeded with the simulator seed and the frame's index, so frames
differ from one another but a sequence of frames is the same for the same seed.
"""

import math
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ...units import ARCSEC_PER_DEGREE
from ..camera import FrameType
from .sky import StarField, gnomonic, throughput

#: Saturation: the largest value a 16-bit ADC reads out.
MAX_ADU = 65535
#: Seed tags of the random streams, so that the noise, flat-field and star streams never coincide.
NOISE_STREAM = 1
FLAT_STREAM = 2
#: RMS of the pixel-to-pixel response about 1 (a typical CCD's 1%).
PIXEL_RESPONSE_RMS = 0.01
#: Gaussian FWHM in standard deviations: 2 √(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Star stamps reach this many standard deviations from the centre: the flux beyond is < 1e-6.
STAMP_SIGMAS = 5.0
#: Most stamp pixels rendered in one batch, to bound memory in very dense fields.
MAX_STAMP_PIXELS = 4_000_000
#: How many filters' flat-field responses are kept (each is a float32 frame).
FLAT_CACHE_SIZE = 2
#: Abramowitz & Stegun 7.1.26: erf(x) ≈ 1 - t (a1 + t (a2 + ...)) exp(-x²), t = 1/(1 + p x),
#: for x ≥ 0, with an error below 1.5e-7; numpy has no erf and scipy is not a dependency.
ERF_P = 0.3275911
ERF_COEFFICIENTS = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


@dataclass(frozen=True)
class FrameRequest:
    """Everything a frame depends on, fixed when its exposure starts.

    Attributes
    ----------
    index : int
        The frame's number since the camera was made (seeds its noise).
    frame_type : FrameType
    seconds : float
        Exposure time (0 for a bias).
    ra, dec : float or None
        Where the telescope pointed (LIGHT frames only).
    filter_name : str or None
        The filter in the beam (LIGHT and FLAT frames; ``None`` for no filter wheel).
    defocus : float
        Arcseconds of FWHM the focus adds to the seeing, in quadrature (0: in focus).
    angle : float
        Degrees from north through east of the frame's +y axis (east is left of north).
    """

    index: int
    frame_type: FrameType
    seconds: float
    ra: float | None = None
    dec: float | None = None
    filter_name: str | None = None
    defocus: float = 0.0
    angle: float = 0.0


@dataclass(frozen=True)
class FieldStars:
    """The stars that fall on a frame, for checking an image against the truth.

    Attributes
    ----------
    x, y : numpy.ndarray
        Pixel coordinates of the centres (0-based, ``image[y, x]``); may lie just off the frame.
    ra, dec : numpy.ndarray
        ICRS degrees.
    rate : numpy.ndarray
        Electrons per second through the clear filter at the optical centre; on the detector a
        star gives ``rate × throughput × F`` per second.
    """

    x: np.ndarray
    y: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    rate: np.ndarray


class FrameModel:
    """Makes the simulated CCD's frames (see the module notes for the model).

    Parameters
    ----------
    settings : dict
        The ``Simulator`` section.
    """

    def __init__(self, settings):
        self.seed = int(settings["Seed"])
        self.width = int(settings["Width"])
        self.height = int(settings["Height"])
        self.pixel_scale = float(settings["Pixel Scale"])
        self.gain = float(settings["Gain"])
        self.read_noise = float(settings["Read Noise"])
        self.bias_level = float(settings["Bias Level"])
        self.dark_current = float(settings["Dark Current"])
        self.sky_background = float(settings["Sky Background"])
        self.flat_level = float(settings["Flat Level"])
        self.vignetting = float(settings["Vignetting"])
        self.seeing = float(settings["Seeing"])
        self.star_field = StarField(self.seed, float(settings["Star Density"]))
        self._flats = OrderedDict()
        # The camera renders outside its own lock, while tests or health may ask for the truth.
        self._flats_lock = threading.Lock()

    # -- the truth ----------------------------------------------------------------------------

    def flat_response(self, filter_name):
        """The flat-field response ``F`` for *filter_name*: a read-only float32 ``[y, x]`` array.

        Always the same for the same seed and filter; about 1 at the centre.
        """
        with self._flats_lock:
            if filter_name not in self._flats:
                self._flats[filter_name] = self._make_flat_response(filter_name)
                while len(self._flats) > FLAT_CACHE_SIZE:
                    self._flats.popitem(last=False)
            self._flats.move_to_end(filter_name)
            return self._flats[filter_name]

    def _make_flat_response(self, filter_name):
        """Compute :meth:`flat_response` (vignetting times the pixel pattern)."""
        rows = np.arange(self.height, dtype=np.float64) - (self.height - 1) / 2.0
        columns = np.arange(self.width, dtype=np.float64) - (self.width - 1) / 2.0
        corner_squared = rows[0] ** 2 + columns[0] ** 2
        radius_squared = rows[:, None] ** 2 + columns[None, :] ** 2
        response = (1.0 - self.vignetting * radius_squared / corner_squared).astype(np.float32)
        # The name's CRC, not hash(), which differs from one Python process to the next.
        name_key = zlib.crc32(("" if filter_name is None else str(filter_name)).encode())
        rng = np.random.default_rng([self.seed, FLAT_STREAM, name_key])
        pattern = rng.standard_normal((self.height, self.width), dtype=np.float32)
        pattern *= PIXEL_RESPONSE_RMS
        pattern += 1.0
        response *= pattern
        response.flags.writeable = False
        return response

    def sigma(self, defocus=0.0):
        """The stars' Gaussian standard deviation, pixels, *defocus* arcseconds of FWHM out of
        focus."""
        return math.hypot(self.seeing, defocus) / self.pixel_scale / FWHM_PER_SIGMA

    def _stamp_half(self, sigma):
        return max(1, math.ceil(STAMP_SIGMAS * sigma))

    def field_stars(self, ra, dec, defocus=0.0, angle=0.0):
        """The :class:`FieldStars` whose light reaches a frame pointed at ICRS *ra*, *dec*
        (*defocus* arcseconds of FWHM out of focus), its +y axis *angle* degrees from north
        through east."""
        margin = self._stamp_half(self.sigma(defocus)) + 1
        half_diagonal = math.hypot(self.width / 2.0 + margin, self.height / 2.0 + margin)
        radius = half_diagonal * self.pixel_scale / ARCSEC_PER_DEGREE
        stars = self.star_field.around(ra, dec, radius)
        xi, eta, in_front = gnomonic(stars.ra, stars.dec, ra, dec)
        pixels_per_degree = ARCSEC_PER_DEGREE / self.pixel_scale
        # At angle 0 north is up and east left: x falls as RA (xi) grows. The frame's axes
        # are turned by *angle*, as a FITS CD matrix of that position angle says.
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        x = (self.width - 1) / 2.0 + (sin * eta - cos * xi) * pixels_per_degree
        y = (self.height - 1) / 2.0 + (sin * xi + cos * eta) * pixels_per_degree
        on_frame = (in_front & (x > -margin) & (x < self.width - 1 + margin)
                    & (y > -margin) & (y < self.height - 1 + margin))
        return FieldStars(x[on_frame], y[on_frame], stars.ra[on_frame], stars.dec[on_frame],
                          stars.rate[on_frame])

    def sky_rate(self, filter_name):
        """Sky electrons per second per pixel through *filter_name*, at the optical centre."""
        return self.sky_background * throughput(filter_name)

    def expected_electrons(self, request):
        """The noise-free electrons per pixel of the frame *request* describes (float64)."""
        seconds = request.seconds
        expected = np.full((self.height, self.width), self.dark_current * seconds)
        if request.frame_type == FrameType.LIGHT:
            light = self.star_image(request.ra, request.dec, request.defocus, request.angle)
            light += self.sky_background
            light *= throughput(request.filter_name) * seconds
            light *= self.flat_response(request.filter_name)
            expected += light
        elif request.frame_type == FrameType.FLAT:
            expected += self.flat_level * self.flat_response(request.filter_name)
        return expected

    # -- making a frame -----------------------------------------------------------------------

    def render(self, request):
        """The frame *request* describes, in ADU: a ``uint16`` ``[y, x]`` array."""
        expected = self.expected_electrons(request)
        rng = np.random.default_rng([self.seed, NOISE_STREAM, request.index])
        # float32 from here on: ample for values below 65536 and half the memory traffic,
        # which is most of the time a large frame takes.
        if np.any(expected):
            adu = rng.poisson(expected).astype(np.float32)
        else:
            adu = np.zeros(expected.shape, dtype=np.float32)
        del expected
        adu /= self.gain
        adu += self.bias_level
        read_noise = rng.standard_normal(adu.shape, dtype=np.float32)
        read_noise *= self.read_noise / self.gain
        adu += read_noise
        np.rint(adu, out=adu)
        np.clip(adu, 0, MAX_ADU, out=adu)
        return adu.astype(np.uint16)

    def star_image(self, ra, dec, defocus=0.0, angle=0.0):
        """Star electrons per second (clear filter, before the flat field) per pixel, float64,
        *defocus* arcseconds of FWHM out of focus, the frame at position *angle*."""
        image = np.zeros((self.height, self.width))
        stars = self.field_stars(ra, dec, defocus, angle)
        sigma = self.sigma(defocus)
        half = self._stamp_half(sigma)
        side = 2 * half + 1
        batch = max(1, MAX_STAMP_PIXELS // (side * side))
        for first in range(0, len(stars.x), batch):
            chosen = slice(first, first + batch)
            self._add_stamps(image, stars.x[chosen], stars.y[chosen], stars.rate[chosen],
                             sigma, half)
        return image

    def _add_stamps(self, image, x, y, rate, sigma, half):
        """Add each star's pixel-integrated Gaussian of *sigma* pixels, a stamp *half* pixels
        each side of it, to *image*."""
        offsets = np.arange(-half, half + 1)
        columns = np.rint(x).astype(np.int64)[:, None] + offsets      # (stars, side)
        rows = np.rint(y).astype(np.int64)[:, None] + offsets
        profile_x = _pixel_gaussian(columns - x[:, None], sigma)
        profile_y = _pixel_gaussian(rows - y[:, None], sigma)
        stamps = rate[:, None, None] * profile_y[:, :, None] * profile_x[:, None, :]
        rows = np.broadcast_to(rows[:, :, None], stamps.shape)
        columns = np.broadcast_to(columns[:, None, :], stamps.shape)
        inside = (rows >= 0) & (rows < self.height) & (columns >= 0) & (columns < self.width)
        np.add.at(image.reshape(-1), rows[inside] * self.width + columns[inside], stamps[inside])


def _pixel_gaussian(offset, sigma):
    """The fraction of a unit 1-D Gaussian of *sigma* pixels falling in the pixel centred
    *offset* away."""
    scale = 1.0 / (math.sqrt(2.0) * sigma)
    return 0.5 * (_erf((offset + 0.5) * scale) - _erf((offset - 0.5) * scale))


def _erf(values):
    """The error function, elementwise (see :data:`ERF_COEFFICIENTS`)."""
    magnitude = np.abs(values)
    t = 1.0 / (1.0 + ERF_P * magnitude)
    polynomial = np.zeros_like(t)
    for coefficient in reversed(ERF_COEFFICIENTS):
        polynomial = (polynomial + coefficient) * t
    return np.sign(values) * (1.0 - polynomial * np.exp(-magnitude ** 2))
