"""Writing products atomically: under a temporary name, then renamed.

As for the telescope's raw frames (:mod:`torosmanager.telescope.fits`), a reader never sees a
half-written product under its final name. A calibrated frame is written as it is computed, a
block of rows at a time (:class:`ImageWriter`), so no full-frame copy is made for the write.

Masters are flushed to the disk before they are renamed. Science frames are not, one by one: a
flush per file makes every worker wait for the disk in turn. They are written around the page
cache where the file system allows it (:class:`DirectFile`, ``O_DIRECT``): the bytes go to the
disk as they are written, from one reused buffer, while the other workers calibrate. Otherwise
(:class:`BufferedFile`) each product's write-back is started as soon as it is written
(:func:`start_writeback`, without waiting for it): the system's own write-back would wait until
the dirty pages are ``vm.dirty_expire_centisecs`` old (30 s by default) or a tenth of the
memory, and a night's products would then all be written during the final flush. Either way the
night's job flushes them all (:func:`sync_files`) before it says it is done, which waits only
for what is still on its way; a product left unflushed by a power cut belongs to a job that was
not done, which runs again from the beginning at the next start.
"""

import concurrent.futures
import ctypes
import errno
import fcntl
import functools
import logging
import mmap
import os
import re
import sys
import threading

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError

from ..disk_sync import flush_to_disk, sync_directory, write_durably
from ..fits_text import fits_card, fits_text
from .reading import FITS_BLOCK, STRUCTURAL_KEYS

log = logging.getLogger(__name__)

#: Big-endian float32, the FITS ``BITPIX = -32`` pixel.
FITS_FLOAT32 = np.dtype(">f4")
#: Bytes gathered before one write to the disk when writing around the page cache
#: (:class:`DirectFile`): a few times a block of rows, so that each write keeps the disk
#: busy long enough to be worth its wait.
DIRECT_WRITE_BYTES = 4 * 2 ** 20
#: The alignment ``O_DIRECT`` asks of buffers, file offsets and lengths: a memory page, which
#: is a multiple of every disk's logical block (512 bytes or 4 kB).
DIRECT_ALIGNMENT = mmap.PAGESIZE
#: Linux's ``sync_file_range`` flag that starts writing a file's dirty pages and returns at
#: once (``<linux/fs.h>``).
SYNC_FILE_RANGE_WRITE = 2
#: A file's temporary name (:func:`temporary_name`), with the ID of the process writing it.
_TEMPORARY = re.compile(r"\..+\.(\d+)\.part")


@functools.lru_cache(maxsize=None)
def _sync_file_range():
    """Linux's ``sync_file_range`` from the C library, or ``None`` (other systems); looked up
    once, at its first use."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


def temporary_name(path):
    """The hidden name a file is written under before it is renamed to *path*."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{os.getpid()}.part")  # (as _TEMPORARY reads it)


def remove_orphans(directory):
    """Delete the files in *directory* left under their temporary names
    (:func:`temporary_name`) by a process that is gone (a worker or the daemon killed while
    writing them)."""
    for name in os.listdir(directory):
        match = _TEMPORARY.fullmatch(name)
        if match and not process_alive(int(match.group(1))):
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            log.warning("deleted %s, left half written in %s by a process that is gone",
                        name, directory)


def process_alive(pid):
    """Whether process *pid* exists (another user's too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def image_header(header, shape, cards=(), history=()):
    """A primary header for a float32 image of *shape* carrying *header*'s descriptive cards.

    The structural keys of *header* (``BITPIX``, ``NAXISn``, ``BZERO``...) are dropped: they
    described the raw file's pixels. *cards*, ``(key, value, comment)`` each, come after
    them and replace *header*'s cards of the same key; *history* lines come last. Their text
    is made ASCII (:mod:`torosmanager.fits_text`: a raw frame named in any language).
    """
    replaced = {key.upper() for key, _, _ in cards}
    result = [fits.Card("SIMPLE", True, "conforms to FITS standard"),
              fits.Card("BITPIX", -32, "32-bit IEEE floating point"),
              fits.Card("NAXIS", 2), fits.Card("NAXIS1", shape[1]), fits.Card("NAXIS2", shape[0])]
    # One list made into a Header at once: adding cards one by one re-indexes it each time.
    carried = (_carried(card) for card in header.cards
               if card.keyword not in STRUCTURAL_KEYS and not card.keyword.startswith("NAXIS")
               and card.keyword not in replaced)
    result += [card for card in carried if card is not None]
    result += [fits_card(key, value, comment) for key, value, comment in cards]
    result += [fits.Card("HISTORY", fits_text(line)) for line in history]
    return fits.Header(result)


def _carried(card):
    """A raw header's *card* as a product can carry it.

    A card holding a control character (``OBJECT = 'M31\\x7f'``, from some camera's software)
    cannot be written by astropy, and the frame would go uncalibrated for a card no step
    reads: such a card is carried as :func:`fits_text` spells it (``'M31?'``), or left out
    (``None``, logged) when even that is not a card (its keyword holds the character).
    """
    written = getattr(card, "_image", None)  # as the file has it: see reading.unparsable
    if not isinstance(written, str) or (written.isascii() and written.isprintable()):
        return card
    spelled = fits.Card.fromstring(fits_text(written))
    try:
        spelled.verify("exception")
    except VerifyError:
        log.warning("a raw header's card %r is left out of the product: it is not a FITS "
                    "card", written.rstrip())
        return None
    return spelled


class ImageWriter:
    """Writes a float32 FITS image row block by row block, atomically.

    Parameters
    ----------
    path : str
        The final name; its directory must exist.
    header : astropy.io.fits.Header
        Descriptive cards (see :func:`image_header`).
    shape : tuple of int
        ``(rows, columns)`` of the image.
    cards, history : sequence
        Cards to add or replace, and ``HISTORY`` lines (see :func:`image_header`).
    durable : bool
        Flush the file to the disk before renaming it (else see :func:`sync_files`).
    direct : bool
        Write around the system's page cache (``O_DIRECT``, see :class:`DirectFile`) where the
        file system allows it; else, or where it does not, through the page cache.

    Use as a context manager: the file appears under *path* only if the block exits without
    an exception, after every row has been written.
    """

    def __init__(self, path, header, shape, durable=True, cards=(), history=(), direct=False):
        self.path = path
        self.durable = durable
        self.direct = direct
        self.shape = tuple(shape)
        self._header = image_header(header, self.shape, cards, history)
        self._temporary = temporary_name(path)
        self._file = None
        self._rows = 0

    def __enter__(self):
        self._file = open_output(self._temporary, self.direct)
        try:
            self._file.write_bytes(self._header.tostring().encode("ascii"))
        except BaseException:
            self._file.close()
            _remove(self._temporary)
            raise
        return self

    def write(self, rows):
        """Append *rows*, a float32 ``(n, columns)`` array (any byte order)."""
        if rows.shape[1:] != self.shape[1:]:
            raise ValueError(f"rows of width {rows.shape[1]} for an image {self.shape[1]} wide")
        self._file.write_pixels(rows)
        self._rows += rows.shape[0]

    def __exit__(self, kind, value, traceback):
        output, self._file = self._file, None
        try:
            if kind is None:
                if self._rows != self.shape[0]:
                    raise ValueError(f"{self._rows} rows written of {self.shape[0]}")
                output.write_bytes(b"\0" * (-output.tell() % FITS_BLOCK))
                output.finish()
                if self.durable:
                    flush_to_disk(output.fileno())
                else:
                    start_writeback(output.fileno())
        except BaseException:
            output.close()
            _remove(self._temporary)
            raise
        output.close()
        if kind is not None:
            _remove(self._temporary)
            return False
        os.replace(self._temporary, self.path)
        if self.durable:
            sync_directory(os.path.dirname(self.path))
        return False


#: Aligned buffers of :class:`DirectFile`, kept for the next file: a fresh buffer's pages cost
#: the system more than the copy into them (a worker writes one product after another).
_free_staging: list = []
_staging_lock = threading.Lock()  # a Dask worker runs tasks in threads
#: Buffers kept at most: two per file, and a process rarely writes more than two files at once.
KEPT_STAGING_BUFFERS = 4


def _take_staging():
    with _staging_lock:
        if _free_staging:
            return _free_staging.pop()
    return mmap.mmap(-1, DIRECT_WRITE_BYTES)  # anonymous maps are page-aligned


def _give_back_staging(staging):
    with _staging_lock:
        if len(_free_staging) < KEPT_STAGING_BUFFERS:
            _free_staging.append(staging)
            return
    staging.close()


def open_output(path, direct):
    """A new file at *path* to write a FITS image into: a :class:`DirectFile` when *direct*
    and the file system takes ``O_DIRECT``, else a :class:`BufferedFile`."""
    if direct and hasattr(os, "O_DIRECT"):
        try:
            return DirectFile(path)
        except OSError as error:
            if error.errno != errno.EINVAL:  # EINVAL: this file system has no O_DIRECT
                raise
    return BufferedFile(path)


class BufferedFile:
    """A new file written through the page cache; pixels converted to big-endian in a
    reused buffer on their way."""

    def __init__(self, path):
        self._stream = open(path, "wb")
        self._buffer = None

    def tell(self):
        return self._stream.tell()

    def fileno(self):
        return self._stream.fileno()

    def write_bytes(self, data):
        self._stream.write(data)

    def write_pixels(self, rows):
        """Append *rows* (float32, any byte order) as big-endian float32."""
        if rows.dtype == FITS_FLOAT32:
            block = rows
        else:
            if self._buffer is None or self._buffer.shape[0] < rows.shape[0]:
                self._buffer = np.empty(rows.shape, dtype=FITS_FLOAT32)
            block = self._buffer[:rows.shape[0]]
            block[...] = rows
        self._stream.write(memoryview(np.ascontiguousarray(block)).cast("B"))

    def finish(self):
        """Hand everything written to the system."""
        self._stream.flush()

    def close(self):
        self._stream.close()


class DirectFile:
    """A new file written with ``O_DIRECT``: from this process's memory straight to the disk,
    around the page cache, while the caller goes on computing.

    Writing a product through the page cache costs the system a fresh page of memory for every
    4 kB written, filled, later written to the disk and kept until memory is wanted; on a
    virtual machine whose host lends memory on demand, getting those pages is what writing
    costs most, and it varies from one run to the next. Written directly, the bytes go from
    two reused buffers to the disk: while a thread of this file writes one (the write returns
    once the disk has the bytes, and lets go of Python's lock meanwhile), the caller fills the
    other, so that calibrating and writing overlap within each worker. ``fsync`` is still
    needed (the file's size and blocks, the disk's own cache), and :func:`sync_files` does it.

    ``O_DIRECT`` wants the buffer, the file offsets and the lengths aligned
    (:data:`DIRECT_ALIGNMENT`): bytes are gathered in an aligned buffer of
    :data:`DIRECT_WRITE_BYTES` and written whole; the last, partial block is written padded,
    and the file cut back to its length. Where a write is refused (``EINVAL``: a file system
    that takes the flag at open but not the writes), the rest goes through the page cache.

    Raises
    ------
    OSError
        When the file cannot be made (``EINVAL``: the file system does not allow O_DIRECT).
    """

    def __init__(self, path):
        self._descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT,
                                   0o666)
        self._buffers = (_take_staging(), _take_staging())
        self._staging = self._buffers[0]   # the one being filled
        self._fill = 0        # bytes gathered in it
        self._written = 0     # bytes handed to the writer
        self._writer = SerialThread("direct-write")  # its write is on the other buffer

    def tell(self):
        return self._written + self._fill

    def fileno(self):
        return self._descriptor

    def write_bytes(self, data):
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            count = min(len(view) - done, len(self._staging) - self._fill)
            self._staging[self._fill:self._fill + count] = view[done:done + count]
            self._fill += count
            done += count
            if self._fill == len(self._staging):
                self._hand_over()

    def write_pixels(self, rows):
        """Append *rows* (float32, any byte order) as big-endian float32, converted straight
        into the aligned buffer."""
        values = np.ascontiguousarray(rows).reshape(-1)
        itemsize = FITS_FLOAT32.itemsize
        done = 0
        while done < values.size:
            # The header is whole FITS blocks and every pixel 4 bytes: the fill stays a
            # multiple of 4, so the buffer always has room for a whole pixel.
            count = min(values.size - done, (len(self._staging) - self._fill) // itemsize)
            target = np.frombuffer(self._staging, dtype=FITS_FLOAT32, count=count,
                                   offset=self._fill)
            target[...] = values[done:done + count]
            del target  # the buffer cannot be closed while a view of it lives
            self._fill += count * itemsize
            done += count
            if self._fill == len(self._staging):
                self._hand_over()

    def finish(self):
        """Write what is left, padded to the alignment, wait for every write, and cut the file
        to its length."""
        length = self.tell()
        padded = -(-self._fill // DIRECT_ALIGNMENT) * DIRECT_ALIGNMENT
        self._staging[self._fill:padded] = bytes(padded - self._fill)
        self._fill = padded
        self._hand_over()
        self._writer.wait()
        os.ftruncate(self._descriptor, length)

    def close(self):
        """Stop the writer (after its write under way) and close the file."""
        self._writer.shutdown()
        buffers, self._buffers = self._buffers, ()
        try:
            os.close(self._descriptor)
        finally:
            for staging in buffers:
                _give_back_staging(staging)

    def _hand_over(self):
        """Give the buffer's whole aligned blocks to the writer and go on in the other buffer,
        which starts with the rest."""
        count = self._fill - self._fill % DIRECT_ALIGNMENT
        self._writer.wait()  # the other buffer is free again
        full = self._staging
        other = self._buffers[1] if full is self._buffers[0] else self._buffers[0]
        rest = self._fill - count
        other[:rest] = full[count:self._fill]
        self._writer.submit(self._write, full, count, self._written)
        self._staging, self._fill = other, rest
        self._written += count

    def _write(self, staging, count, position):
        """In the writer's thread: bytes ``[0, count)`` of *staging* at *position*."""
        with memoryview(staging) as view:
            done = 0
            while done < count:
                try:
                    done += os.pwrite(self._descriptor, view[done:count], position + done)
                except OSError as error:
                    if error.errno != errno.EINVAL or not self._through_page_cache():
                        raise

    def _through_page_cache(self):
        """Clear ``O_DIRECT`` on the file; whether it was set."""
        flags = fcntl.fcntl(self._descriptor, fcntl.F_GETFL)
        if not flags & os.O_DIRECT:
            return False
        fcntl.fcntl(self._descriptor, fcntl.F_SETFL, flags & ~os.O_DIRECT)
        return True


def write_hdus(path, hdus):
    """Write an :class:`~astropy.io.fits.HDUList` to *path* atomically (a full disk raised
    with its errno: :func:`~torosmanager.disk_sync.write_durably`)."""
    write_durably(path, temporary_name(path), hdus.writeto)


def start_writeback(descriptor):
    """Start writing the open file *descriptor*'s dirty pages to the disk, and return without
    waiting for it (Linux; elsewhere nothing: the later fsync does it all). It makes nothing
    durable: a later :func:`sync_files` does, and finds less left to write.

    The start is made by a thread of this process, on a duplicate of *descriptor* (the caller
    may close it at once): handing the pages to the disk can itself wait, when the disk's queue
    is full (Linux's write-back throttling, ``/sys/block/*/queue/wbt_lat_usec``), and a worker
    that waited there instead of calibrating its next frame left a CPU idle (14-15 % of a first
    4096² job's time, docs/benchmarks.md). One start waits at most: the next one waits for it,
    so that a slow disk holds back the workers instead of gathering open files.
    """
    sync_file_range = _sync_file_range()
    if sync_file_range is None:
        return
    duplicate = os.dup(descriptor)
    try:
        with _writeback_lock:
            _writeback_thread().submit(_start_and_close, sync_file_range, duplicate)
    except BaseException:
        os.close(duplicate)
        raise


#: Held while a write-back start is handed over: a Dask worker runs tasks in threads.
_writeback_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _writeback_thread():
    """This process's thread starting write-backs (:func:`start_writeback`), made at its first
    use."""
    return SerialThread("writeback")


def _start_and_close(sync_file_range, descriptor):
    try:
        # A failure costs only speed: the fsync that follows writes what this did not start.
        sync_file_range(descriptor, 0, 0, SYNC_FILE_RANGE_WRITE)
    finally:
        os.close(descriptor)


class SerialThread:
    """A thread of its own that runs its owner's tasks one at a time: a task handed over waits
    for the one before, so that the owner never has more than one under way; a task's error
    is raised to the owner when it next waits (:meth:`wait`, :meth:`submit`)."""

    def __init__(self, name):
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                             thread_name_prefix=name)
        self._pending = None

    def submit(self, function, *args):
        """Run ``function(*args)`` in the thread once the task before it is done."""
        self.wait()
        self._pending = self._thread.submit(function, *args)

    def wait(self):
        """Wait until the last task handed over is done."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def shutdown(self):
        """Stop the thread, after its task under way."""
        self._thread.shutdown(wait=True)


def sync_files(paths):
    """Flush *paths* (and the directories holding them) to the disk."""
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            flush_to_disk(descriptor)
        finally:
            os.close(descriptor)
    for directory in sorted({os.path.dirname(path) for path in paths}):
        sync_directory(directory)


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
