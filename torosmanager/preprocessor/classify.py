"""What each frame is: its kind (from ``IMAGETYP``), detector geometry, filter and exposure.

``IMAGETYP`` is read without regard to case, spaces, ``-`` or ``_``, and with the words other
acquisition programs add (MaxIm DL's "Light Frame", "Flat Field"...):

=======  =====================================================================
kind     IMAGETYP
=======  =====================================================================
light    LIGHT, OBJECT, SCIENCE
bias     BIAS, ZERO
dark     DARK
flat     FLAT, SKYFLAT, DOMEFLAT, TWILIGHTFLAT
=======  =====================================================================

A frame of any other type, or without ``IMAGETYP``, is skipped with the reason (the job's
Status and log say it), never fatal; so is a file that cannot be read as a frame.
"""

import enum
import re
from dataclasses import dataclass

from astropy.io.fits.verify import VerifyError

from .reading import (FrameError, as_number, image_shape, pixel_scaling, read_header,
                      unparsable)


class Kind(str, enum.Enum):
    """The kinds of frame, as the products and Status name them."""

    BIAS = "bias"
    DARK = "dark"
    FLAT = "flat"
    LIGHT = "light"


#: IMAGETYP (upper case, without spaces, '-' or '_') → kind.
IMAGETYP_KINDS = {
    "LIGHT": Kind.LIGHT, "OBJECT": Kind.LIGHT, "SCIENCE": Kind.LIGHT,
    "BIAS": Kind.BIAS, "ZERO": Kind.BIAS,
    "DARK": Kind.DARK,
    "FLAT": Kind.FLAT, "SKYFLAT": Kind.FLAT, "DOMEFLAT": Kind.FLAT, "TWILIGHTFLAT": Kind.FLAT,
}
#: Words acquisition programs append to the type ("Light Frame", "Flat Field").
_DECORATIONS = ("FRAME", "FIELD")
_SEPARATORS = re.compile(r"[\s_\-]+")
#: What the messages list as accepted.
ACCEPTED_TYPES = "LIGHT/OBJECT/SCIENCE, BIAS/ZERO, DARK, FLAT/SKYFLAT/DOMEFLAT"
#: Cards this software writes into what it makes (products and masters): a frame holding one
#: is not raw, and calibrating it again would subtract the masters twice.
CALIBRATED_KEYS = ("CALSOFT", "BIASCOR")
#: Keys giving the gain (electrons per ADU), in order of preference.
GAIN_KEYS = ("GAIN", "EGAIN")
#: Keys giving levels of the raw data in ADU, which a product gives in electrons.
LEVEL_KEYS = ("DATAMIN", "DATAMAX")
#: Keys giving the exposure time, in order of preference.
EXPTIME_KEYS = ("EXPTIME", "EXPOSURE")
#: Exposure times closer than this are the same (seconds): headers round them differently.
EXPTIME_TOLERANCE = 1e-3


def kind_of(imagetyp):
    """The :class:`Kind` an ``IMAGETYP`` value names, or ``None``."""
    if not isinstance(imagetyp, str):
        return None
    key = _SEPARATORS.sub("", imagetyp.upper())
    for word in _DECORATIONS:
        if key.endswith(word) and key != word:
            key = key[:-len(word)]
    return IMAGETYP_KINDS.get(key)


@dataclass(frozen=True)
class Geometry:
    """The detector readout a frame comes from: its size in pixels and its binning."""

    width: int
    height: int
    xbin: int = 1
    ybin: int = 1

    @property
    def shape(self):
        """``(rows, columns)``."""
        return (self.height, self.width)

    @property
    def label(self):
        """For people: ``2048x2048 bin 1x1``."""
        return f"{self.width}x{self.height} bin {self.xbin}x{self.ybin}"

    @property
    def tag(self):
        """For file names: ``2048x2048_1x1``."""
        return f"{self.width}x{self.height}_{self.xbin}x{self.ybin}"


@dataclass(frozen=True)
class Frame:
    """One raw frame, as its header describes it.

    Attributes
    ----------
    path : str
    kind : Kind
    geometry : Geometry
    exptime : float
        Seconds (0 for a bias without ``EXPTIME``).
    filter : str
        ``FILTER``, stripped; ``""`` when there is none.
    gain : float or None
        ``GAIN``, or else ``EGAIN`` (electrons per ADU), when the header gives a positive one.
    gain_source : str
        Where *gain* comes from (``"the header's EGAIN"``), or why the header gives none
        (``"the header's GAIN, 0, is no gain"``, ``"no GAIN or EGAIN in the header"``).
    rdnoise : float or None
        ``RDNOISE`` (electrons) when the header gives one.
    date_obs : str
        ``DATE-OBS`` as written, or ``""``.
    saturate : float or None
        ``SATURATE`` (ADU).
    levels : tuple of (str, float)
        ``DATAMIN`` and ``DATAMAX`` (ADU), those the header gives: a product gives them in
        electrons.
    egain : bool
        Whether the header has an ``EGAIN`` card (a product's says 1: its data are
        electrons).
    bzero, bscale : float
        How the pixels are stored (``physical = stored × BSCALE + BZERO``).
    """

    path: str
    kind: Kind
    geometry: Geometry
    exptime: float
    filter: str = ""
    gain: float | None = None
    gain_source: str = ""
    rdnoise: float | None = None
    date_obs: str = ""
    saturate: float | None = None
    levels: tuple = ()
    egain: bool = False
    bzero: float = 0.0
    bscale: float = 1.0


def describe(path):
    """The :class:`Frame` of *path*.

    Raises
    ------
    FrameError
        When the file cannot be read, or its header does not make it a usable frame; the
        message is the reason, for the Status report.
    """
    header = read_header(path)
    try:
        return _frame(path, header)
    except VerifyError as error:  # a card astropy cannot parse: this file alone is skipped
        raise unparsable(header, error) from None


def _frame(path, header):
    for key in CALIBRATED_KEYS:
        if key in header:
            raise FrameError(f"already calibrated ({key} = {header[key]!r}): a product or a "
                             "master, not a raw frame; calibrate the raw frames instead")
    imagetyp = header.get("IMAGETYP")
    kind = kind_of(imagetyp)
    if kind is None:
        if imagetyp is None:
            raise FrameError(f"no IMAGETYP in its header (expected {ACCEPTED_TYPES})")
        raise FrameError(f"unknown IMAGETYP {imagetyp!r} (expected {ACCEPTED_TYPES})")
    exptime = _number(header, EXPTIME_KEYS)
    if exptime is None:
        if kind != Kind.BIAS:
            for key in EXPTIME_KEYS:
                if header.get(key) is not None:
                    raise FrameError(f"{key} {header[key]!r} is not a number of seconds")
            raise FrameError(f"a {kind.value} frame without EXPTIME")
        exptime = 0.0
    if exptime < 0:
        raise FrameError(f"EXPTIME {exptime:g} is not allowed; allowed: seconds, 0 or more")
    if kind == Kind.DARK and exptime <= 0:
        raise FrameError("a dark frame of 0 s: it measures no dark current (call it BIAS)")
    rows, columns = image_shape(header)
    geometry = Geometry(columns, rows, _binning(header, "XBINNING"), _binning(header, "YBINNING"))
    gain, gain_source = _gain(header)
    filter_name = header.get("FILTER", "")
    bzero, bscale = pixel_scaling(header)
    levels = tuple((key, level) for key in LEVEL_KEYS
                   if (level := _number(header, (key,))) is not None)
    return Frame(path=path, kind=kind, geometry=geometry, exptime=exptime,
                 filter=str(filter_name).strip() if filter_name is not None else "",
                 gain=gain, gain_source=gain_source,
                 rdnoise=_number(header, ("RDNOISE",)),
                 date_obs=str(header.get("DATE-OBS", "") or ""),
                 saturate=_number(header, ("SATURATE",)),
                 levels=levels, egain="EGAIN" in header,
                 bzero=bzero, bscale=bscale)


def _gain(header):
    """The header's gain (``GAIN``, or else ``EGAIN``), if positive, and where it comes from;
    or ``None`` and why there is none."""
    for key in GAIN_KEYS:
        value = as_number(header.get(key))
        if value is None:
            continue
        if value > 0:
            return value, f"the header's {key}"
        return None, f"the header's {key}, {value:g}, is no gain"
    return None, "no GAIN or EGAIN in the header"


def classify(paths):
    """Describe every file of *paths*.

    Returns
    -------
    (list of Frame, list of (str, FrameError))
        The usable frames, and the files that are not, with the reason for each (an
        :class:`~.reading.IncompleteFrame` for a file that may be whole later).
    """
    frames, unusable = [], []
    for path in paths:
        try:
            frames.append(describe(path))
        except FrameError as error:  # the caller says so (once)
            unusable.append((path, error))
    return frames, unusable


def same_exptime(first, second):
    """Whether two exposure times are the same, within :data:`EXPTIME_TOLERANCE`."""
    return abs(first - second) <= EXPTIME_TOLERANCE


def _number(header, keys):
    """The first of *keys* whose value in *header* is a number (:func:`~.reading.as_number`),
    as a float, or ``None``."""
    for key in keys:
        value = as_number(header.get(key))
        if value is not None:
            return value
    return None


def _binning(header, key):
    """The binning factor *key* of *header* (1 when absent), as the masters' cards are read:
    numeric text accepted (``XBINNING = '2'``), a fraction refused rather than cut to a whole
    number, which would match the frame with masters of another binning."""
    value = header.get(key, 1)
    number = as_number(value)
    if number is None or number < 1 or not number.is_integer():
        raise FrameError(f"{key} {value!r} is not a binning factor (a whole number of at "
                         "least 1)")
    return int(number)
