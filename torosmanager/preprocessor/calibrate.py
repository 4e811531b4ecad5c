"""Calibrating one science frame, in a worker: raw ADU in, electrons out.

For a raw frame ``A`` (ADU, after the overscan and trim of :mod:`.layout`) of exposure time
``t`` and gain ``g``, with the masters of :mod:`.masters` (bias ``B`` in ADU, dark ``D`` in
electrons per second, flat ``F`` normalised to median 1)::

    E = ((A - B) × g - D × t) / F          electrons, float32

which is what ccdproc's ``subtract_bias``, ``gain_correct``, ``subtract_dark`` (scaled by
exposure time) and ``flat_correct`` (``norm_value=1``) give, one after the other. Here it is
computed as ``(A - O) × S`` with ``O = B + D × t / g`` and ``S = g / F``, two whole frames that
depend only on the masters, ``t`` and ``g``: computed once per group of frames, by the local
workers into shared memory that they all map, each band of rows by the first worker whose frame
needs it (:func:`share_terms`, :class:`SharedTerms`: no frame waits for whole terms first), or
by each worker (a Dask cluster's, :class:`OwnTerms`), and kept while the group lasts; so a frame
costs one subtraction and one multiplication per pixel on top of reading and writing it. Rows
are read from the file's map, calibrated and written a block at a time (:data:`BLOCK_BYTES`),
so a frame is never held whole in memory, except for cosmic-ray cleaning, which looks at the
whole image. Products go through the page cache, or around it where configured
(``Preprocessor → Direct Writes From``, :func:`writes_direct`), and are flushed to the disk by the
night's job, all together, at the end (see :mod:`.writing`).
"""

import os
import threading
import time
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
#: The shared terms' files: float32 rows in this machine's byte order, nothing else; and the
#: bands file, one byte per band of rows, :data:`BAND_DONE` once the band is filled.
OFFSET_SUFFIX, SCALE_SUFFIX, BANDS_SUFFIX = "-offset.f32", "-scale.f32", "-bands"
BAND_DONE = 1
#: Seconds a worker sleeps while another fills the band it needs (a band takes about a
#: millisecond to fill).
TERMS_POLL_SECONDS = 0.0002
#: Seconds after which a worker fills a band claimed by another itself: the claimer may have
#: died (its job fails, but this worker's frame must end).
TERMS_WAIT_SECONDS = 30.0
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
    #: Write the product around the page cache (:func:`writes_direct`).
    direct: bool = False


def task_calibrate(task):
    """Calibrate *task*'s frame and write its product; return the number of pixels cleaned of
    cosmic rays (0 when not cleaning).

    Raises
    ------
    FrameError
        When the raw frame cannot be read or does not fit its masters.
    """
    height, width = task.layout.shape
    rows = block_rows(width)
    with RawFrame(task.path) as frame:
        if tuple(frame.shape) != tuple(task.layout.raw_shape):
            raise FrameError(f"a {frame.shape[1]}x{frame.shape[0]} frame, while its masters "
                             f"are for {task.layout.raw_shape[1]}x{task.layout.raw_shape[0]}")
        blocks = _calibrated_blocks(frame, task, rows)
        cards = task.cards + tuple(task.layout.reference_pixel_cards(frame.header))
        if not task.cosmic_rays:
            with ImageWriter(task.output, frame.header, (height, width), durable=False,
                             cards=cards, history=task.history,
                             direct=task.direct) as writer:
                for _, block in blocks:
                    writer.write(block)
            return 0
        image = np.empty((height, width), dtype=np.float32)
        for start, block in blocks:
            image[start:start + len(block)] = block
    cleaned = _clean_cosmic_rays(image, task)
    cards += (("CRCLEAN", True, "cosmic rays cleaned (astroscrappy, L.A.Cosmic)"),
                          ("NCOSMIC", cleaned, "pixels cleaned of cosmic rays"))
    with ImageWriter(task.output, frame.header, (height, width), durable=False, cards=cards,
                     history=task.history, direct=task.direct) as writer:
        for start in range(0, height, rows):
            writer.write(image[start:start + rows])
    return cleaned


def writes_direct(shape, from_megabytes):
    """Whether a product of *shape* is written around the page cache (``O_DIRECT``,
    :class:`~.writing.DirectFile`): when it has at least *from_megabytes* MiB (``Preprocessor →
    Direct Writes From``; 0: never).

    Around the cache, a product's bytes go from the worker's buffers to the disk while it
    calibrates the next rows, instead of first filling fresh pages of the system's memory.
    Which way is faster depends on the disk and on how fast the system hands out memory
    (``bench/preprocessing.py`` measures both), hence a setting. Its default, 256 MiB, follows
    our 2-CPU virtual machines: through the cache was up to a third faster for 4096² frames
    (64 MiB), and around it as fast or up to a fifth faster for 10560² frames (425 MiB).
    """
    if from_megabytes == 0:
        return False
    return shape[0] * shape[1] * np.dtype(np.float32).itemsize >= from_megabytes * 2 ** 20


def block_rows(width):
    """Rows of a frame *width* pixels wide in one block of :data:`BLOCK_BYTES` of float32."""
    return max(1, BLOCK_BYTES // (width * np.dtype(np.float32).itemsize))


def read_block(frame, reader, start, stop, out, scratch=None):
    """Rows ``[start, stop)`` of *frame* into the float32 *out*: the stored values as they are
    (their ``BZERO`` is folded into the offset term) when *reader* is ``None``, else through
    the layout's *reader* (overscan, trim) in physical units.

    *scratch*, an array of the stored integers' type in this machine's byte order and of at
    least *out*'s shape, makes the conversion two fast passes (swap the bytes, then widen)
    instead of numpy's slower cast from big-endian integers straight to float32.
    """
    if reader is not None:
        reader.rows(start, stop, out=out)
    elif scratch is not None and frame.stored.dtype.kind in "iu":
        native = scratch[:stop - start]
        native[...] = frame.stored[start:stop]
        out[...] = native
        frame.blank_out(native, out)
    else:
        out[...] = frame.stored[start:stop]
        frame.blank_out(frame.stored[start:stop], out)


def native_scratch(frame, shape):
    """An array for :func:`read_block`'s *scratch*: *frame*'s stored type in this machine's
    byte order, of *shape*."""
    return np.empty(shape, dtype=frame.stored.dtype.newbyteorder("="))


def apply_terms(block, offset, scale):
    """``(block - O) × S`` in place, with the terms' rows *offset* and *scale* of the block."""
    block -= offset
    block *= scale


def _calibrated_blocks(frame, task, rows):
    """``(first row, calibrated rows)`` of *frame*, block after block (the block's memory is
    reused: consume each before asking for the next)."""
    # The fast path folds BZERO into the offset: stored + BZERO - O = stored - (O - BZERO).
    fast = task.layout.identity and frame.unit_scale
    group = terms(task, folded_bzero(task.layout, frame.bzero, frame.bscale))
    reader = None if fast else task.layout.reader(frame)
    height, width = task.layout.shape
    buffer = np.empty((rows, width), dtype=np.float32)
    scratch = native_scratch(frame, (rows, width)) if fast else None
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        block = buffer[:stop - start]
        read_block(frame, reader, start, stop, block, scratch)
        apply_terms(block, *group.rows(start, stop))
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
_terms_cache: dict = {}
_terms_lock = threading.Lock()  # a Dask worker runs tasks in threads


def folded_bzero(layout, bzero, bscale):
    """The ``BZERO`` folded into the offset term for frames stored so: only on the fast path
    (no overscan or trim, ``BSCALE`` 1), where stored values are used as they are."""
    return float(bzero) if layout.identity and bscale == 1.0 else 0.0


def share_terms(task, bzero, prefix):
    """Make the files, named *prefix*… (in a private directory in shared memory), of *task*'s
    group's terms, which every local worker maps instead of computing its own; return
    *prefix*, for :attr:`ScienceTask.terms`.

    They are made empty here: the workers fill them as their frames need them, a band of
    :func:`block_rows` rows at a time, each band by the first worker to reach it
    (:class:`SharedTerms`). So no frame waits for whole terms to be computed first, and the
    disk keeps writing the first products while the terms are made.

    Raises
    ------
    OSError
        When the files cannot be made.
    """
    height, width = task.layout.shape
    for suffix in (OFFSET_SUFFIX, SCALE_SUFFIX):
        # Only sized here: tmpfs gives the pages as the workers fill them.
        with open(prefix + suffix, "wb") as stream:
            stream.truncate(height * width * np.dtype(np.float32).itemsize)
    with open(prefix + BANDS_SUFFIX, "wb") as stream:
        stream.truncate(band_count(task.layout.shape))
    return prefix


def remove_terms(prefix):
    """Delete the files :func:`share_terms` made and the workers' claims (workers' maps keep
    their pages meanwhile)."""
    directory, name = os.path.split(prefix)
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return
    for each in names:
        if each.startswith(name + "-"):
            try:
                os.unlink(os.path.join(directory, each))
            except FileNotFoundError:
                pass


def forget_terms():
    """Let this process's cached terms go (the next frame computes or maps them again)."""
    with _terms_lock:
        dropped = list(_terms_cache.values())
        _terms_cache.clear()
    for each in dropped:
        each.close()


def terms(task, bzero):
    """The terms ``(O - bzero, S)`` of *task*'s masters, exposure time and gain (see the module
    notes): the group's shared ones (:class:`SharedTerms`) when the night's process made
    their files, else computed here (:class:`OwnTerms`). Either gives a block's rows with
    ``rows(start, stop)``."""
    if task.terms is not None and bzero == task.terms_bzero:
        key = ("shared",) + _identity(task.terms + OFFSET_SUFFIX)
    else:
        key = terms_key(task, bzero)
    with _terms_lock:
        found = _terms_cache.get(key)
        if found is not None:
            return found
    forget_terms()  # let the last group's terms go before making these
    found = SharedTerms(task, bzero) if key[0] == "shared" else OwnTerms(task, bzero)
    with _terms_lock:
        _terms_cache[key] = found
    return found


def terms_key(task, bzero):
    """What the terms of *task* depend on, and nothing else: its masters (each file's identity,
    so that a master rewritten is read again), exposure time, gain, the folded *bzero* and the
    frame's shape."""
    return (_identity(task.bias), _identity(task.dark), _identity(task.flat),
            float(task.exptime), float(task.gain), float(bzero), tuple(task.layout.shape))


class OwnTerms:
    """A group's terms computed whole by this worker, into its own memory."""

    def __init__(self, task, bzero):
        shape = tuple(task.layout.shape)
        self.offset = np.empty(shape, dtype=np.float32)
        self.scale = np.empty(shape, dtype=np.float32)
        maker = _TermMaker(task, bzero)
        try:
            for start in range(0, shape[0], maker.rows):
                stop = min(shape[0], start + maker.rows)
                maker.compute(start, stop, self.offset[start:stop], self.scale[start:stop])
        finally:
            maker.close()

    def rows(self, start, stop):
        """``(O - bzero, S)`` of rows ``[start, stop)``."""
        return self.offset[start:stop], self.scale[start:stop]

    def close(self):
        """Nothing to release but memory."""


class SharedTerms:
    """A group's terms in the files :func:`share_terms` made, mapped, and filled band by band
    (:func:`block_rows` rows) by the first worker whose frame needs the band.

    A band is claimed by creating its claim file (``O_EXCL``: one worker wins), computed in
    the claimer's own buffers, written into the files, and marked done in the bands file
    (one byte per band, written after the band). A worker that finds its band claimed by
    another fills the next unclaimed band meanwhile, so that the workers share the work and
    neither waits; it waits (:data:`TERMS_POLL_SECONDS` at a time) only when every band up to
    the last is claimed, and after :data:`TERMS_WAIT_SECONDS` it fills the band itself (the
    claimer may be gone; the same bytes written twice do no harm). A band that failed (a
    master that cannot be read) is unclaimed again, and each frame reports the error.
    """

    def __init__(self, task, bzero):
        self._task, self._bzero = task, bzero
        self._prefix = task.terms
        shape = tuple(task.layout.shape)
        self.offset, self.scale = (np.memmap(self._prefix + suffix, dtype=np.float32,
                                             mode="r", shape=shape)
                                   for suffix in (OFFSET_SUFFIX, SCALE_SUFFIX))
        self._rows = block_rows(shape[1])
        self._row_bytes = shape[1] * np.dtype(np.float32).itemsize
        self._count = band_count(shape)
        self._ready = np.zeros(self._count, dtype=bool)      # known to be filled
        self._elsewhere = np.zeros(self._count, dtype=bool)  # known to be claimed by others
        self._maker = None
        self._buffers = None
        self._descriptors = None

    def rows(self, start, stop):
        """``(O - bzero, S)`` of rows ``[start, stop)`` (a block of :func:`block_rows` rows
        starting on a band), filled first if no worker has yet."""
        band = start // self._rows
        if not self._ready[band]:
            self._wait_for(band)
        return self.offset[start:stop], self.scale[start:stop]

    def fill_all(self):
        """Fill every band not yet filled (each claimed as a frame would)."""
        for band in range(self._count):
            if not self._ready[band]:
                self._wait_for(band)

    def close(self):
        """Release the masters' maps and the files (the terms' maps go with this object)."""
        if self._maker is not None:
            self._maker.close()
            self._maker = None
        for descriptor in self._descriptors or ():
            os.close(descriptor)
        self._descriptors = None

    def _wait_for(self, band):
        waited = time.monotonic()
        while True:
            self._refresh()
            if self._ready[band]:
                return
            if self._claim(band):
                self._fill(band)
                return
            ahead = self._unclaimed_after(band)
            if ahead is not None:
                self._fill(ahead)
            elif time.monotonic() - waited > TERMS_WAIT_SECONDS:
                self._fill(band)
                return
            else:
                time.sleep(TERMS_POLL_SECONDS)

    def _unclaimed_after(self, band):
        """The first band after *band* that nobody had claimed, now claimed here; or ``None``."""
        for other in range(band + 1, self._count):
            if not (self._ready[other] or self._elsewhere[other]) and self._claim(other):
                return other
        return None

    def _claim(self, band):
        try:
            os.close(os.open(self._claim_name(band), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o600))
        except FileExistsError:
            self._elsewhere[band] = True
            return False
        return True

    def _claim_name(self, band):
        return f"{self._prefix}-band{band}"

    def _refresh(self):
        """Learn which bands the workers have filled, from the bands file."""
        marks = os.pread(self._descriptors_of()[2], self._count, 0)
        self._ready |= np.frombuffer(marks, dtype=np.uint8, count=len(marks)) == BAND_DONE
        if self._maker is not None and self._ready.all():
            self._maker.close()  # every band is there: the masters are not needed any more
            self._maker = None

    def _fill(self, band):
        """Compute *band* and write it into the files, then mark it done."""
        start = band * self._rows
        stop = min(self.offset.shape[0], start + self._rows)
        try:
            if self._maker is None:
                self._maker = _TermMaker(self._task, self._bzero)
                self._buffers = [np.empty((self._rows, self.offset.shape[1]), dtype=np.float32)
                                 for _ in range(2)]
            offset, scale = (buffer[:stop - start] for buffer in self._buffers)
            self._maker.compute(start, stop, offset, scale)
            descriptors = self._descriptors_of()
            # Written into the files, not through the maps: tmpfs gives its pages in the
            # write, several times faster than page fault by page fault.
            for descriptor, rows in zip(descriptors, (offset, scale)):
                _write_at(descriptor, rows, start * self._row_bytes)
            os.pwrite(descriptors[2], bytes([BAND_DONE]), band)
        except BaseException:
            try:
                os.unlink(self._claim_name(band))  # another worker may try, and say why
            except FileNotFoundError:
                pass
            raise
        self._ready[band] = True

    def _descriptors_of(self):
        if self._descriptors is None:
            self._descriptors = [os.open(self._prefix + suffix, os.O_RDWR)
                                 for suffix in (OFFSET_SUFFIX, SCALE_SUFFIX, BANDS_SUFFIX)]
        return self._descriptors


def band_count(shape):
    """How many bands of :func:`block_rows` rows the terms of frames of *shape* are made in."""
    return -(-shape[0] // block_rows(shape[1]))


def _write_at(descriptor, rows, position):
    """Write the array *rows* whole into the file *descriptor* at byte *position*."""
    with memoryview(np.ascontiguousarray(rows)).cast("B") as view:
        done = 0
        while done < len(view):
            done += os.pwrite(descriptor, view[done:], position + done)


class _TermMaker:
    """Computes rows of the terms straight from the masters' files, a block at a time (no
    full-frame temporaries); the masters stay mapped until :meth:`close`."""

    def __init__(self, task, bzero):
        shape = tuple(task.layout.shape)
        self.rows = block_rows(shape[1])
        self._dark_factor = np.float32(task.exptime / task.gain)
        self._gain = np.float32(task.gain)
        self._bzero = np.float32(bzero)
        self._masters = []
        try:
            for path in (task.bias, task.dark, task.flat):
                self._masters.append(_open_master(path, shape))
        except BaseException:
            self.close()
            raise
        self._work = np.empty((self.rows, shape[1]), dtype=np.float32)

    def compute(self, start, stop, offset, scale):
        """Rows ``[start, stop)`` of ``O - bzero`` into *offset* and of ``S`` into *scale*."""
        bias, dark, flat = self._masters
        offset[...] = bias.stored[start:stop]
        if dark is not None:
            product = self._work[:stop - start]
            np.multiply(dark.stored[start:stop], self._dark_factor, out=product)
            offset += product
        if self._bzero:
            offset -= self._bzero
        if flat is not None:
            np.divide(self._gain, flat.stored[start:stop], out=scale)
        else:
            scale[...] = self._gain

    def close(self):
        for master in self._masters:
            if master is not None:
                master.close()
        self._masters = []


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
    """A master file's identity: its file (device and inode, whatever its name: a library
    master is each night's own link to it), and its time and size, so that a master
    rewritten by a re-run is read again."""
    if path is None:
        return None
    status = os.stat(path)
    return (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size)
