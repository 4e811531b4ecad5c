"""Writing products atomically: under a temporary name, then renamed.

As for the telescope's raw frames (:mod:`torosmanager.telescope.fits`), a reader never sees a
half-written product under its final name. A calibrated frame is written as it is computed, a
block of rows at a time (:class:`ImageWriter`), so no full-frame copy is made for the write.

Masters are flushed to the disk before they are renamed. Science frames are not, one by one: a
flush per file makes every worker wait for the disk in turn, while the system's own write-back
keeps the disk busy all the time. The night's job flushes them all (:func:`sync_files`) before
it says it is done; a product left unflushed by a power cut belongs to a job that was not done,
which runs again from the beginning at the next start.
"""

import os

import numpy as np
from astropy.io import fits

from .reading import FITS_BLOCK, STRUCTURAL_KEYS

#: Big-endian float32, the FITS ``BITPIX = -32`` pixel.
FITS_FLOAT32 = np.dtype(">f4")


def temporary_name(path):
    """The hidden name a file is written under before it is renamed to *path*."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{os.getpid()}.part")


def image_header(header, shape, cards=(), history=()):
    """A primary header for a float32 image of *shape* carrying *header*'s descriptive cards.

    The structural keys of *header* (``BITPIX``, ``NAXISn``, ``BZERO``...) are dropped: they
    described the raw file's pixels. *cards*, ``(key, value, comment)`` each, come after
    them and replace *header*'s cards of the same key; *history* lines come last.
    """
    replaced = {key.upper() for key, _, _ in cards}
    result = [fits.Card("SIMPLE", True, "conforms to FITS standard"),
              fits.Card("BITPIX", -32, "32-bit IEEE floating point"),
              fits.Card("NAXIS", 2), fits.Card("NAXIS1", shape[1]), fits.Card("NAXIS2", shape[0])]
    # One list made into a Header at once: adding cards one by one re-indexes it each time.
    result += [card for card in header.cards
               if card.keyword not in STRUCTURAL_KEYS and not card.keyword.startswith("NAXIS")
               and card.keyword not in replaced]
    result += [fits.Card(key, value, comment) for key, value, comment in cards]
    result += [fits.Card("HISTORY", line) for line in history]
    return fits.Header(result)


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

    Use as a context manager: the file appears under *path* only if the block exits without
    an exception, after every row has been written.
    """

    def __init__(self, path, header, shape, durable=True, cards=(), history=()):
        self.path = path
        self.durable = durable
        self.shape = tuple(shape)
        self._header = image_header(header, self.shape, cards, history)
        self._temporary = temporary_name(path)
        self._stream = None
        self._rows = 0
        self._buffer = None

    def __enter__(self):
        self._stream = open(self._temporary, "wb")
        self._stream.write(self._header.tostring().encode("ascii"))
        return self

    def write(self, rows):
        """Append *rows*, a float32 ``(n, columns)`` array (any byte order)."""
        if rows.shape[1:] != self.shape[1:]:
            raise ValueError(f"rows of width {rows.shape[1]} for an image {self.shape[1]} wide")
        if rows.dtype == FITS_FLOAT32:
            block = rows
        else:
            if self._buffer is None or self._buffer.shape[0] < rows.shape[0]:
                self._buffer = np.empty(rows.shape, dtype=FITS_FLOAT32)
            block = self._buffer[:rows.shape[0]]
            block[...] = rows
        self._stream.write(memoryview(np.ascontiguousarray(block)).cast("B"))
        self._rows += rows.shape[0]

    def __exit__(self, kind, value, traceback):
        stream, self._stream = self._stream, None
        try:
            if kind is None:
                if self._rows != self.shape[0]:
                    raise ValueError(f"{self._rows} rows written of {self.shape[0]}")
                stream.write(b"\0" * (-stream.tell() % FITS_BLOCK))
                stream.flush()
                if self.durable:
                    os.fsync(stream.fileno())
        except BaseException:
            stream.close()
            _remove(self._temporary)
            raise
        stream.close()
        if kind is not None:
            _remove(self._temporary)
            return False
        os.replace(self._temporary, self.path)
        if self.durable:
            sync_directory(os.path.dirname(self.path))
        return False


def write_hdus(path, hdus):
    """Write an :class:`~astropy.io.fits.HDUList` to *path* atomically."""
    temporary = temporary_name(path)
    try:
        with open(temporary, "wb") as stream:
            hdus.writeto(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    sync_directory(os.path.dirname(path))


def sync_files(paths):
    """Flush *paths* (and the directories holding them) to the disk."""
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    for directory in sorted({os.path.dirname(path) for path in paths}):
        sync_directory(directory)


def sync_directory(directory):
    """Flush *directory*'s entries, so that a rename in it is durable."""
    descriptor = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
