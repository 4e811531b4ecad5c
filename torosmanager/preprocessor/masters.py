"""Master calibration frames: bias, dark and flat, combined a block of rows at a time.

Definitions (``A`` is a raw frame in ADU after the overscan and trim of :mod:`.layout`, ``g``
its gain in electrons per ADU, ``t`` its exposure time in seconds; every combination is the
sigma-clipped mean of :mod:`.combine`):

bias, ADU
    ``B = combine(A_i)``.
dark, electrons per second
    ``D = combine((A_i - B) × g_i / t_i)``: the dark current, bias-subtracted, so that a frame
    of any exposure time ``t`` has ``D × t`` electrons of it. Masters are made per exposure
    time; a science frame uses the one of its own time, else the closest longer one (scaled
    down by the ratio of times), else the longest shorter one (scaled up, said in Status).
flat, dimensionless
    ``F = combine(((A_i - B) × g_i - D × t_i) / m_i)`` normalised by its own median, where
    ``m_i`` is the median of flat ``i`` after its bias and dark, so that flats of different
    brightness (twilight) weigh alike. Pixels below :data:`MIN_FLAT_RESPONSE` of the median
    are dead; they are set to NaN, and come out NaN in the science frames.

Memory: a worker holds one block of rows of every input frame (``frames × rows × width ×
4`` bytes, at most :data:`MAX_STACK_BYTES`), never whole frames; the process that assembles
the master holds the master itself.

The functions whose names start with ``task_`` run in the worker processes (or on a Dask
cluster); the others in the process that runs the night.
"""

import hashlib
import os
import re
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.io.fits.verify import VerifyError

from ..fits_text import fits_card, fits_text
from .classify import Kind
from .combine import CLIP_MAXITERS, CLIP_SIGMA, METHOD, clipped_mean
from .reading import RawFrame, as_number, image_shape, read_header, unparsable
from .writing import write_hdus

#: Largest stack of rows one worker combines at a time, bytes: ``Block Rows`` is lowered for
#: large sets of frames so that memory stays bounded whatever their number.
MAX_STACK_BYTES = 512 * 2 ** 20
#: Pixels sampled to measure a flat's level (its median): a regular grid of about this many.
LEVEL_SAMPLE_PIXELS = 1_000_000
#: Flat-field responses below this fraction of the median are dead pixels.
MIN_FLAT_RESPONSE = 0.05
#: The unit of each kind of master, as ``BUNIT`` says.
UNITS = {Kind.BIAS: u.adu, Kind.DARK: u.electron / u.s, Kind.FLAT: u.dimensionless_unscaled}
#: ``BUNIT`` of a master flat.
FLAT_BUNIT = "electron/electron"
#: ``IMAGETYP`` of masters: not a raw type, so that a master is never taken for a raw frame.
MASTER_TYPES = {Kind.BIAS: "MASTER BIAS", Kind.DARK: "MASTER DARK", Kind.FLAT: "MASTER FLAT"}
#: Characters allowed in file names made from filter names.
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9.+-]")
#: Hex digits of the digest of a master's inputs kept in its file name.
DIGEST_LENGTH = 8
#: Inputs named in ``IMCMB001``..``IMCMB999`` cards (three digits); more go to ``HISTORY``.
IMCMB_CARDS = 999
#: The ``HISTORY`` lines naming the inputs beyond :data:`IMCMB_CARDS` begin so.
INPUT_HISTORY = "input: "
_IMCMB_KEY = re.compile(r"IMCMB\d{3}$")


@dataclass(frozen=True)
class Master:
    """A master frame on the disk.

    Attributes
    ----------
    kind : Kind
    geometry : Geometry
        The raw frames' readout it calibrates.
    shape : tuple of int
        Its own ``(rows, columns)`` (after trimming).
    path : str
    exptime : float
        The dark's exposure time; the flats' mean; 0 for a bias.
    filter : str
    ncombine : int
    night : str
        ``YYYYMMDD`` of the night its frames were taken.
    source : str
        ``"night"`` (made from this job's frames) or ``"library"``.
    level : float
        A bias's median (ADU), used to convert ``SATURATE``; 0 otherwise.
    library_file : str
        For a library master a job uses: the library's file, which *path* is the job's own
        link to (:meth:`.MasterLibrary.pinned`); ``""`` otherwise.
    """

    kind: Kind
    geometry: object
    shape: tuple
    path: str
    exptime: float
    filter: str
    ncombine: int
    night: str
    source: str = "night"
    level: float = 0.0
    library_file: str = ""

    @property
    def label(self):
        """For people: ``flat R 2048x2048 bin 1x1``."""
        middle = {Kind.DARK: f" {self.exptime:g} s", Kind.FLAT: f" {self.filter or 'no filter'}"}
        return f"{self.kind.value}{middle.get(self.kind, '')} {self.geometry.label}"

    @property
    def name(self):
        """The file's name."""
        return os.path.basename(self.path)


@dataclass(frozen=True)
class StackSpec:
    """What a worker needs to combine rows of a set of frames into a master.

    Attributes
    ----------
    kind : Kind
    paths : tuple of str
    exptimes, gains, scales : tuple of float
        Per input frame; ``scales`` are the flats' ``1 / m_i`` (1 for the other kinds).
    layout : Layout
    bias, dark : str or None
        The master bias and dark the inputs are corrected with (darks and flats).
    sigma, maxiters : float, int
        Clipping parameters.
    """

    kind: Kind
    paths: tuple
    exptimes: tuple
    gains: tuple
    scales: tuple
    layout: object
    bias: str | None = None
    dark: str | None = None
    sigma: float = CLIP_SIGMA
    maxiters: int = CLIP_MAXITERS


# --- in the workers -----------------------------------------------------------------------

def task_combine_rows(spec, start, stop):
    """Rows ``[start, stop)`` of the master *spec* describes: a float32 array."""
    width = spec.layout.shape[1]
    stack = np.empty((len(spec.paths), stop - start, width), dtype=np.float32)
    with _Masters(spec) as masters:
        bias, dark = masters.rows(start, stop)
        for index, path in enumerate(spec.paths):
            plane = stack[index]
            with RawFrame(path) as frame:
                spec.layout.reader(frame).rows(start, stop, out=plane)
            _correct(spec, index, plane, bias, dark)
    return clipped_mean(stack, spec.sigma, spec.maxiters)


def task_flat_level(spec, index):
    """What flat *index* of *spec* is like, on a grid of pixels: ``(level, saturated,
    full)``, its median after its bias and dark, and the fraction of those pixels saturated
    in the raw frame, at or above *full* (:func:`saturation_level`; ``None``: not known, none
    counted)."""
    layout = spec.layout
    height, width = layout.shape
    step = max(1, int(np.sqrt(height * width / LEVEL_SAMPLE_PIXELS)))
    samples, saturated = [], 0
    with _Masters(spec) as masters, RawFrame(spec.paths[index]) as frame:
        reader = layout.reader(frame)
        full = saturation_level(frame)
        for row in range(step // 2, height, step):
            if full is not None:  # (before the overscan is subtracted)
                raw = frame.rows(layout.rows.start + row, layout.rows.start + row + 1)
                saturated += np.count_nonzero(raw[0, layout.columns][step // 2::step] >= full)
            plane = reader.rows(row, row + 1)
            bias, dark = masters.rows(row, row + 1)
            _correct(spec, index, plane, bias, dark, scale=False)
            samples.append(plane[0, step // 2::step].copy())
    sampled = np.concatenate(samples)
    return float(np.nanmedian(sampled)), saturated / sampled.size, full


def saturation_level(frame):
    """The value (ADU) from which a pixel of the raw *frame* (a :class:`~.reading.RawFrame`) is
    saturated: its ``SATURATE``, else the largest its file's integers can hold; ``None`` for a
    file of floats without one."""
    level = as_number(frame.header.get("SATURATE"))
    if level is not None:
        return level
    if np.issubdtype(frame.stored_type, np.integer):
        return float(np.iinfo(frame.stored_type).max) * frame.bscale + frame.bzero
    return None


def _correct(spec, index, plane, bias, dark, scale=True):
    """Turn one input's rows into what is combined (see the module notes), in place."""
    if spec.kind == Kind.BIAS:
        return
    plane -= bias
    plane *= np.float32(spec.gains[index])
    if spec.kind == Kind.DARK:
        plane *= np.float32(1.0 / spec.exptimes[index])
        return
    if dark is not None:
        plane -= dark * np.float32(spec.exptimes[index])
    if scale:
        plane *= np.float32(spec.scales[index])


class _Masters:
    """The rows of a spec's master bias and dark, read from their files."""

    def __init__(self, spec):
        self._frames = [RawFrame(path) if path else None for path in (spec.bias, spec.dark)]

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        for frame in self._frames:
            if frame is not None:
                frame.close()
        return False

    def rows(self, start, stop):
        return tuple(None if frame is None else frame.rows(start, stop)
                     for frame in self._frames)


# --- in the process running the night ----------------------------------------------------

def stack_rows(count, width, block_rows):
    """Rows combined per task: ``Block Rows``, lowered to keep a stack within
    :data:`MAX_STACK_BYTES`."""
    fitting = MAX_STACK_BYTES // max(1, count * width * np.dtype(np.float32).itemsize)
    return max(1, min(block_rows, fitting))


def master_digest(kind, paths, layout):
    """A short digest naming a master by its inputs, so that re-running a night rewrites the
    same file and another set of frames makes another file."""
    text = "\n".join([kind.value, str(layout.overscan_text), str(layout.trim_text)]
                     + sorted(os.path.basename(path) for path in paths))
    return hashlib.sha1(text.encode()).hexdigest()[:DIGEST_LENGTH]


def master_name(kind, geometry, digest, exptime=0.0, filter_name=""):
    """``dark_2048x2048_1x1_30s_1a2b3c4d.fits`` and the like."""
    parts = [kind.value, geometry.tag]
    if kind == Kind.DARK:
        parts.append(f"{exptime:g}s")
    elif kind == Kind.FLAT:
        parts.append(safe_name(filter_name))
    return "_".join(parts + [digest]) + ".fits"


def safe_name(filter_name):
    """A filter name usable in a file name (``nofilter`` for none)."""
    return _UNSAFE_CHARACTERS.sub("-", filter_name) or "nofilter"


def master_header(kind, frames, layout, night, *, gains=None, bias=None, dark=None,
                  software="", when=""):
    """The header of a master made of *frames* (a list of :class:`~.classify.Frame`)."""
    geometry = frames[0].geometry
    exptimes = [frame.exptime for frame in frames]
    cards = [
        ("IMAGETYP", MASTER_TYPES[kind], "master calibration frame"),
        ("EXPTIME", float(np.mean(exptimes)) if kind != Kind.BIAS else 0.0,
         "[s] exposure time of the inputs" + (" (mean)" if kind == Kind.FLAT else "")),
        ("FILTER", frames[0].filter if kind == Kind.FLAT else "", "filter of the inputs"),
        ("NCOMBINE", len(frames), "number of frames combined"),
        ("COMBINE", METHOD, "how the frames were combined"),
        ("CLIPCEN", "median", "clipping centre"),
        ("CLIPDEV", "std", "clipping deviation"),
        ("CLIPSIG", CLIP_SIGMA, "clipping threshold, standard deviations"),
        ("CLIPITER", CLIP_MAXITERS, "most clipping rounds"),
        ("NIGHT", night, "night of the inputs (YYYYMMDD)"),
        ("RAWNX", geometry.width, "columns of the raw frames"),
        ("RAWNY", geometry.height, "rows of the raw frames"),
        ("XBINNING", geometry.xbin, "binning along columns"),
        ("YBINNING", geometry.ybin, "binning along rows"),
        ("DATE-OBS", min((frame.date_obs for frame in frames if frame.date_obs), default=""),
         "start of the earliest input"),
    ]
    if gains is not None:
        cards.append(("GAINUSED", float(np.mean(gains)), "[e-/ADU] gain applied to the inputs"))
    if bias is not None:
        cards += [("BIASCOR", bias.name, "master bias subtracted"),
                  ("BIASSRC", bias.source, "where the master bias came from")]
    if kind == Kind.FLAT:
        cards += [("DARKCOR", dark.name if dark else "none", "master dark subtracted"),
                  ("FLATNORM", "median", "normalised to median 1"),
                  ("FLATMIN", MIN_FLAT_RESPONSE, "responses below this are dead (NaN)")]
    cards += layout.cards()
    cards += [("CALSOFT", software, "software that made this master"),
              ("CALDATE", when, "UTC when this master was made")]
    names = [os.path.basename(frame.path) for frame in frames]
    cards += [(f"IMCMB{number:03d}", name, "input frame")
              for number, name in enumerate(names[:IMCMB_CARDS], start=1)]
    header = fits.Header([fits_card(key, value, comment) for key, value, comment in cards])
    for name in names[IMCMB_CARDS:]:
        header.add_history(fits_text(INPUT_HISTORY + name))  # a raw frame named in any language
    header.add_history(f"{METHOD} of {len(frames)} {kind.value} frame(s), clipped at "
                       f"{CLIP_SIGMA:g} std about the median, at most {CLIP_MAXITERS} rounds")
    return header


def write_master(path, kind, data, header):
    """Write a master as a :class:`~astropy.nddata.CCDData` with its unit, atomically."""
    # Imported here: astropy.nddata loads its WCS and coordinates (seconds of CPU), which the
    # daemon then pays at its first master rather than at every start; the workers, which
    # only combine rows, never do.
    from astropy.nddata import CCDData

    ccd = CCDData(data, unit=UNITS[kind], header=header)
    hdus = ccd.to_hdu()
    if kind == Kind.FLAT:
        # astropy writes no BUNIT for dimensionless data, and then cannot read it back into a
        # CCDData; a ratio of electrons is dimensionless and says so.
        hdus[0].header["BUNIT"] = (FLAT_BUNIT, "dimensionless: a ratio of responses")
    write_hdus(path, hdus)


def normalise_flat(data):
    """Divide a combined flat by its median and mark dead pixels NaN, in place.

    Returns
    -------
    (float, int)
        The median before normalising, and the number of dead pixels.
    """
    median = float(np.nanmedian(data))
    if not np.isfinite(median) or median <= 0:
        raise ValueError(f"the combined flat's median is {median:g}: not a flat field")
    data /= np.float32(median)
    dead = ~(data >= MIN_FLAT_RESPONSE)  # NaN counts as dead too
    data[dead] = np.nan
    return median, int(np.count_nonzero(dead))


def master_inputs(path):
    """The names of the frames the master in *path* was made of, as its header gives them
    (``IMCMBnnn`` cards, then ``HISTORY`` lines).

    Raises
    ------
    FrameError
        When the file cannot be read as a frame.
    """
    header = read_header(path)
    names = {str(value) for key, value in header.items() if _IMCMB_KEY.match(key)}
    names.update(str(line)[len(INPUT_HISTORY):] for line in header.get("HISTORY", [])
                 if str(line).startswith(INPUT_HISTORY))
    return names


def master_from_file(path, source):
    """Describe the master in *path* (one this module wrote) as a :class:`Master`.

    Raises
    ------
    ValueError
        When the file is not such a master: the message names the card.
    FrameError
        When it cannot be read as a frame, or a card of its header cannot be parsed.
    """
    header = read_header(path)
    try:
        return _master(path, header, source)
    except VerifyError as error:
        raise unparsable(header, error) from None


def _master(path, header, source):
    from .classify import Geometry

    kinds = {value: kind for kind, value in MASTER_TYPES.items()}
    imagetyp = header.get("IMAGETYP")
    kind = kinds.get(imagetyp) if isinstance(imagetyp, str) else None
    if kind is None:
        raise ValueError(f"IMAGETYP {imagetyp!r} is not a master's")
    bunit = header.get("BUNIT", "")
    unit = u.Unit(bunit, parse_strict="silent") if isinstance(bunit, str) else None
    if unit != UNITS[kind]:
        raise ValueError(f"BUNIT {bunit!r}, expected {UNITS[kind]}")
    geometry = Geometry(*(_card_number(header, key, default, lowest=1, whole=True)
                          for key, default in (("RAWNX", None), ("RAWNY", None),
                                               ("XBINNING", 1), ("YBINNING", 1))))
    return Master(kind=kind, geometry=geometry, shape=image_shape(header), path=path,
                  exptime=_card_number(header, "EXPTIME", 0.0, lowest=0),
                  filter=str(header.get("FILTER", "")).strip(),
                  ncombine=_card_number(header, "NCOMBINE", 1, lowest=1, whole=True),
                  night=str(header.get("NIGHT", "")), source=source,
                  level=_card_number(header, "BIASLEV", 0.0))


def _card_number(header, key, default, lowest=None, whole=False):
    """The card *key* of a master's *header* as a finite number (an ``int`` if *whole*), at
    least *lowest*; *default* when the card is absent (``None``: it must be there).

    Raises
    ------
    ValueError
        Naming the card and its value: the master's meaning cannot be known.
    """
    value = header.get(key, default)
    if value is None and default is None:
        raise ValueError(f"no {key} card")
    number = as_number(value)
    if number is None or (lowest is not None and number < lowest) \
            or (whole and not number.is_integer()):
        kind = "a whole number" if whole else "a number"
        least = "" if lowest is None else f" of at least {lowest:g}"
        raise ValueError(f"{key} {value!r} is not {kind}{least}")
    return int(number) if whole else number
