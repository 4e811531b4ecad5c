"""Calibrating one science frame, in a worker: raw ADU in, electrons out.

For a raw frame ``A`` (ADU, after the overscan and trim of :mod:`.layout`) of exposure time
``t`` and gain ``g``, with the masters of :mod:`.masters` (bias ``B`` in ADU, dark ``D`` in
electrons per second, flat ``F`` normalised to median 1)::

    E = ((A - B) × g - D × t) / F          electrons, float32

which is what ccdproc's ``subtract_bias``, ``gain_correct``, ``subtract_dark`` (scaled by
exposure time) and ``flat_correct`` (``norm_value=1``) give, one after the other. Here it is
computed as ``(A - O) × S`` with ``O = B + D × t / g`` and ``S = g / F``, two whole frames
that depend only on the masters, ``t`` and ``g``: each worker computes them once for a group
of frames and keeps them (:data:`TERMS_CACHE_SIZE`), so a frame costs one subtraction and one
multiplication per pixel on top of reading and writing it. Rows are read from the file's map,
calibrated and written a block at a time (:data:`BLOCK_BYTES`), so a frame is never held whole
in memory, except for cosmic-ray cleaning, which looks at the whole image.
"""

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .reading import FrameError, RawFrame, read_image
from .writing import ImageWriter

#: Bytes of one block of rows calibrated and written at a time: large enough that a write is
#: efficient, small enough to stay in the CPU cache.
BLOCK_BYTES = 4 * 2 ** 20
#: Groups of (offset, scale) terms a worker keeps: a night's frames are sent group by group.
TERMS_CACHE_SIZE = 2
#: astroscrappy's settings: its defaults, with the cleaned pixels replaced by the mean of the
#: unmasked neighbours.
COSMIC_SIGCLIP = 4.5
COSMIC_OBJLIM = 5.0


@dataclass(frozen=True)
class ScienceTask:
    """One science frame to calibrate.

    Attributes
    ----------
    path, output : str
        The raw frame, and the product to write.
    layout : Layout
    bias, dark, flat : str or None
        Master files (the bias is required).
    exptime, gain : float
        Seconds, and electrons per ADU.
    cards : tuple
        ``(key, value, comment)`` provenance cards for the product's header.
    history : tuple of str
        ``HISTORY`` lines.
    cosmic_rays : bool
        Whether to clean cosmic rays (astroscrappy).
    read_noise : float
        Electrons, for the cosmic-ray noise model.
    saturation : float or None
        Electrons, for the cosmic-ray cleaning (saturated stars are left alone).
    """

    path: str
    output: str
    layout: object
    bias: str
    dark: str | None
    flat: str | None
    exptime: float
    gain: float
    cards: tuple = ()
    history: tuple = ()
    cosmic_rays: bool = False
    read_noise: float = 0.0
    saturation: float | None = None


def task_calibrate(task):
    """Calibrate *task*'s frame and write its product; return the number of pixels cleaned of
    cosmic rays (0 when not cleaning).

    Raises
    ------
    FrameError
        When the raw frame cannot be read or does not fit its masters.
    """
    height, width = task.layout.shape
    rows = max(1, BLOCK_BYTES // (width * np.dtype(np.float32).itemsize))
    with RawFrame(task.path) as frame:
        if tuple(frame.shape) != tuple(task.layout.raw_shape):
            raise FrameError(f"a {frame.shape[1]}x{frame.shape[0]} frame, while its masters "
                             f"are for {task.layout.raw_shape[1]}x{task.layout.raw_shape[0]}")
        header = _product_header(frame.header, task)
        blocks = _calibrated_blocks(frame, task, rows)
        if not task.cosmic_rays:
            with ImageWriter(task.output, header, (height, width)) as writer:
                for _, block in blocks:
                    writer.write(block)
            return 0
        image = np.empty((height, width), dtype=np.float32)
        for start, block in blocks:
            image[start:start + len(block)] = block
    cleaned = _clean_cosmic_rays(image, task)
    header["NCOSMIC"] = (cleaned, "pixels cleaned of cosmic rays")
    with ImageWriter(task.output, header, (height, width)) as writer:
        for start in range(0, height, rows):
            writer.write(image[start:start + rows])
    return cleaned


def _calibrated_blocks(frame, task, rows):
    """``(first row, calibrated rows)`` of *frame*, block after block (the block's memory is
    reused: consume each before asking for the next)."""
    # The fast path folds BZERO into the offset: stored + BZERO - O = stored - (O - BZERO).
    fast = task.layout.identity and frame.unit_scale
    offset, scale = _terms(task, frame.bzero if fast else 0.0)
    reader = None if fast else task.layout.reader(frame)
    height, width = task.layout.shape
    buffer = np.empty((rows, width), dtype=np.float32)
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        if fast:
            block = buffer[:stop - start]
            block[...] = frame.stored[start:stop]
        else:
            block = reader.rows(start, stop)
        block -= offset[start:stop]
        block *= scale[start:stop]
        yield start, block


def _product_header(raw, task):
    header = raw.copy()
    for key, value, comment in task.cards:
        header[key] = (value, comment)
    if task.cosmic_rays:
        header["CRCLEAN"] = (True, "cosmic rays cleaned (astroscrappy, L.A.Cosmic)")
    for line in task.history:
        header.add_history(line)
    return header


def _clean_cosmic_rays(image, task):
    """Clean *image* (electrons) in place with astroscrappy; return the pixels cleaned."""
    import astroscrappy  # optional: only when Preprocessor → Cosmic Rays is on

    bad = ~np.isfinite(image)
    if bad.any():
        image[bad] = 0.0
    mask, cleaned = astroscrappy.detect_cosmics(
        image, inmask=bad, gain=1.0, readnoise=task.read_noise, sigclip=COSMIC_SIGCLIP,
        objlim=COSMIC_OBJLIM,
        satlevel=task.saturation if task.saturation else np.inf, cleantype="meanmask")
    image[...] = cleaned
    image[bad] = np.nan
    return int(np.count_nonzero(mask))


# --- the per-group terms, cached in each worker ----------------------------------------------

_terms_cache = OrderedDict()
_terms_lock = threading.Lock()  # a Dask worker runs tasks in threads


def _terms(task, bzero):
    """``(O - bzero, S)`` for *task*'s masters, exposure time and gain (see the module notes)."""
    key = (_identity(task.bias), _identity(task.dark), _identity(task.flat),
           float(task.exptime), float(task.gain), float(bzero))
    with _terms_lock:
        if key in _terms_cache:
            _terms_cache.move_to_end(key)
            return _terms_cache[key]
    terms = _compute_terms(task, bzero)
    with _terms_lock:
        _terms_cache[key] = terms
        while len(_terms_cache) > TERMS_CACHE_SIZE:
            _terms_cache.popitem(last=False)
    return terms


def _compute_terms(task, bzero):
    shape = tuple(task.layout.shape)
    offset = _master(task.bias, shape)
    if task.dark:
        offset += _master(task.dark, shape) * np.float32(task.exptime / task.gain)
    if bzero:
        offset -= np.float32(bzero)
    if task.flat:
        scale = np.float32(task.gain) / _master(task.flat, shape)
    else:
        scale = np.full(shape, task.gain, dtype=np.float32)
    return offset, scale


def _master(path, shape):
    data, _ = read_image(path)
    if data.shape != shape:
        raise FrameError(f"the master {os.path.basename(path)} is {data.shape[1]}x"
                         f"{data.shape[0]}, the calibrated frame {shape[1]}x{shape[0]}")
    return data


def _identity(path):
    """A master file's identity: its name, and its time and size, so that a master rewritten
    by a re-run is read again."""
    if path is None:
        return None
    status = os.stat(path)
    return (path, status.st_mtime_ns, status.st_size)
