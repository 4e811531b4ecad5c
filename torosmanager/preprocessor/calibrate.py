"""Calibrating one science frame, in a worker: raw ADU in, electrons out.

For a raw frame ``A`` (ADU, after the overscan and trim of :mod:`.layout`) of exposure time
``t`` and gain ``g``, with the masters of :mod:`.masters` (bias ``B`` in ADU, dark ``D`` in
electrons per second, flat ``F`` normalised to median 1)::

    E = ((A - B) × g - D × t) / F          electrons, float32

which is what ccdproc's ``subtract_bias``, ``gain_correct``, ``subtract_dark`` (scaled by
exposure time) and ``flat_correct`` (``norm_value=1``) give, one after the other. Here it is
computed as ``(A - O) × S`` with ``O = B + D × t / g`` and ``S = g / F``, two whole frames that
depend only on the masters, ``t`` and ``g``: computed once per group of frames, by the local
workers together (a band of rows each) into shared memory that they all map
(:func:`share_terms`), or by each worker (a Dask cluster's), and kept while the group lasts; so
a frame costs one subtraction and one multiplication per pixel on top of reading and writing
it. Rows are read from the file's map, calibrated and written a block at a time
(:data:`BLOCK_BYTES`), so a frame is never held whole in memory, except for cosmic-ray
cleaning, which looks at the whole image. Products are flushed to the disk by the night's job,
all together, at the end (see :mod:`.writing`).
"""

import os
import threading
from dataclasses import dataclass

import numpy as np

from .reading import FrameError, RawFrame
from .writing import ImageWriter

#: Bytes of one block of rows calibrated and written at a time: large enough that a write is
#: efficient, small enough that a worker's block, the terms' rows it uses and its big-endian
#: copy stay in the CPU's cache (two workers on 4 MB blocks took 1.4 times as long).
BLOCK_BYTES = 2 ** 20
#: Where local workers find the terms the night's process shares with them (Linux's shared
#: memory): computed once and held once, whatever the number of workers.
SHARED_MEMORY = "/dev/shm"
OFFSET_SUFFIX, SCALE_SUFFIX = "-offset.npy", "-scale.npy"
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
    terms : str or None
        Where :func:`share_terms` left this group's terms, or ``None``: the worker computes
        them itself.
    terms_bzero : float
        The ``BZERO`` folded into those terms.
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
    terms: str | None = None
    terms_bzero: float = 0.0


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
        blocks = _calibrated_blocks(frame, task, rows)
        if not task.cosmic_rays:
            with ImageWriter(task.output, frame.header, (height, width), durable=False,
                             cards=task.cards, history=task.history) as writer:
                for _, block in blocks:
                    writer.write(block)
            return 0
        image = np.empty((height, width), dtype=np.float32)
        for start, block in blocks:
            image[start:start + len(block)] = block
    cleaned = _clean_cosmic_rays(image, task)
    cards = task.cards + (("CRCLEAN", True, "cosmic rays cleaned (astroscrappy, L.A.Cosmic)"),
                          ("NCOSMIC", cleaned, "pixels cleaned of cosmic rays"))
    with ImageWriter(task.output, frame.header, (height, width), durable=False, cards=cards,
                     history=task.history) as writer:
        for start in range(0, height, rows):
            writer.write(image[start:start + rows])
    return cleaned


def _calibrated_blocks(frame, task, rows):
    """``(first row, calibrated rows)`` of *frame*, block after block (the block's memory is
    reused: consume each before asking for the next)."""
    # The fast path folds BZERO into the offset: stored + BZERO - O = stored - (O - BZERO).
    fast = task.layout.identity and frame.unit_scale
    offset, scale = _terms(task, folded_bzero(task.layout, frame.bzero, frame.bscale))
    reader = None if fast else task.layout.reader(frame)
    height, width = task.layout.shape
    buffer = np.empty((rows, width), dtype=np.float32)
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        block = buffer[:stop - start]
        if fast:
            block[...] = frame.stored[start:stop]
        else:
            reader.rows(start, stop, out=block)
        block -= offset[start:stop]
        block *= scale[start:stop]
        yield start, block


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

#: The terms of the group of frames last calibrated by this worker: a night's frames are sent
#: group by group, so one group is enough (two frames, 0.9 GB at 10560², shared or its own).
_terms_cache = {}
_terms_lock = threading.Lock()  # a Dask worker runs tasks in threads


def folded_bzero(layout, bzero, bscale):
    """The ``BZERO`` folded into the offset term for frames stored so: only on the fast path
    (no overscan or trim, ``BSCALE`` 1), where stored values are used as they are."""
    return float(bzero) if layout.identity and bscale == 1.0 else 0.0


def share_terms(task, bzero, prefix, runner, stop=None):
    """Compute *task*'s group's terms once, into files named *prefix*… (in a private directory
    in shared memory) that every local worker maps instead of computing its own; return
    *prefix*, for :attr:`ScienceTask.terms`.

    The files are made here and filled by *runner*'s workers, a band of rows each, so that
    the first frames wait for these terms as little as possible.

    Raises
    ------
    FrameError, OSError, ValueError
        When a master cannot be read (as a worker raised it).
    Stopped
        When *stop* was set meanwhile.
    """
    shape = tuple(task.layout.shape)
    for suffix in (OFFSET_SUFFIX, SCALE_SUFFIX):
        # Only made and sized here: tmpfs gives the pages as the workers fill them.
        empty = np.lib.format.open_memmap(prefix + suffix, mode="w+", dtype=np.float32,
                                          shape=shape)
        del empty
    band = -(-shape[0] // max(1, runner.workers))
    bands = [(task, bzero, prefix, first, min(shape[0], first + band))
             for first in range(0, shape[0], band)]
    for _, _, error in runner.run(task_fill_terms, bands, stop):
        if error is not None:
            raise error
    return prefix


def task_fill_terms(task, bzero, prefix, first, last):
    """Fill rows *first* to *last* of the terms :func:`share_terms` made at *prefix*."""
    offset, scale = (np.load(prefix + suffix, mmap_mode="r+")
                     for suffix in (OFFSET_SUFFIX, SCALE_SUFFIX))
    _fill_terms(task, bzero, offset, scale, first, last)


def remove_terms(prefix):
    """Delete the files :func:`share_terms` made (workers' maps keep their pages meanwhile)."""
    for suffix in (OFFSET_SUFFIX, SCALE_SUFFIX):
        try:
            os.unlink(prefix + suffix)
        except FileNotFoundError:
            pass


def _terms(task, bzero):
    """``(O - bzero, S)`` for *task*'s masters, exposure time and gain (see the module notes):
    the shared ones when the night's process made them, else computed here."""
    if task.terms is not None and bzero == task.terms_bzero:
        key = ("shared",) + _identity(task.terms + OFFSET_SUFFIX)
    else:
        key = (_identity(task.bias), _identity(task.dark), _identity(task.flat),
               float(task.exptime), float(task.gain), float(bzero))
    with _terms_lock:
        terms = _terms_cache.get(key)
        if terms is not None:
            return terms
        _terms_cache.clear()  # let the last group's terms go before making these
    if key[0] == "shared":
        terms = tuple(np.load(task.terms + suffix, mmap_mode="r")
                      for suffix in (OFFSET_SUFFIX, SCALE_SUFFIX))
    else:
        shape = tuple(task.layout.shape)
        terms = (np.empty(shape, dtype=np.float32), np.empty(shape, dtype=np.float32))
        _fill_terms(task, bzero, *terms)
    with _terms_lock:
        _terms_cache[key] = terms
    return terms


def _fill_terms(task, bzero, offset, scale, first=0, last=None):
    """Compute rows *first* to *last* (all by default) of the terms into *offset* and
    *scale*, a block of rows at a time, straight from the masters' files: no full-frame
    temporaries."""
    shape = tuple(task.layout.shape)
    dark_factor = np.float32(task.exptime / task.gain)
    gain = np.float32(task.gain)
    masters = [_open_master(path, shape) for path in (task.bias, task.dark, task.flat)]
    bias, dark, flat = masters
    try:
        rows = max(1, BLOCK_BYTES // (shape[1] * np.dtype(np.float32).itemsize))
        work = np.empty((rows, shape[1]), dtype=np.float32)
        last = shape[0] if last is None else last
        for start in range(first, last, rows):
            stop = min(last, start + rows)
            block = offset[start:stop]
            block[...] = bias.stored[start:stop]
            if dark is not None:
                product = work[:stop - start]
                np.multiply(dark.stored[start:stop], dark_factor, out=product)
                block += product
            if bzero:
                block -= np.float32(bzero)
            if flat is not None:
                np.divide(gain, flat.stored[start:stop], out=scale[start:stop])
            else:
                scale[start:stop] = gain
    finally:
        for master in masters:
            if master is not None:
                master.close()


def _open_master(path, shape):
    """A master's file, mapped; its stored values are its values (float32, unscaled)."""
    if path is None:
        return None
    frame = RawFrame(path)
    if tuple(frame.shape) != shape or frame.bzero or not frame.unit_scale:
        frame.close()
        raise FrameError(f"the master {os.path.basename(path)} is not an unscaled "
                         f"{shape[1]}x{shape[0]} image")
    return frame


def _identity(path):
    """A master file's identity: its name, and its time and size, so that a master rewritten
    by a re-run is read again."""
    if path is None:
        return None
    status = os.stat(path)
    return (path, status.st_mtime_ns, status.st_size)
