"""Reading raw frames fast: the header with astropy, the pixels straight from the file.

A camera's 16-bit frames are stored as signed integers with ``BZERO = 32768`` (the FITS way of
writing unsigned data). astropy 8 refuses to memory-map such scaled data, and reading it
without a map makes a full-frame copy in memory (and a second one to scale it). Here the
header is parsed by astropy, the data's place in the file is computed from it, and the pixels
are mapped read-only with :class:`numpy.memmap` in their stored (big-endian) type: a block of
rows costs only the pages it touches, and ``BZERO``/``BSCALE`` are applied by the caller on
that block, in the same pass that converts it to ``float32``.

The file is opened read-only: raw frames are never modified.
"""

import errno
import os
import re
import warnings

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from astropy.utils.exceptions import AstropyUserWarning

from ..units import finite_float

#: FITS files are made of blocks of this many bytes.
FITS_BLOCK = 2880
#: The numpy type of stored FITS pixels, by BITPIX (FITS data are big-endian).
STORED_TYPES = {8: np.dtype("u1"), 16: np.dtype(">i2"), 32: np.dtype(">i4"),
                64: np.dtype(">i8"), -32: np.dtype(">f4"), -64: np.dtype(">f8")}
#: The largest value a pixel in physical units (float32) can have.
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: The most axes a FITS array may have (the standard's limit on ``NAXIS``).
MAX_AXES = 999
#: File name endings taken for FITS frames (compared without regard to case).
FITS_SUFFIXES = (".fits", ".fit", ".fts")
#: Compressed FITS files' endings, and what decompresses them: listed as skipped, saying so.
COMPRESSED_SUFFIXES = {".fz": "a tile-compressed image (fpack): decompress it with funpack",
                       ".gz": "gzip-compressed: decompress it with gunzip",
                       ".bz2": "bzip2-compressed: decompress it with bunzip2"}
#: Header keys that describe how the pixels are stored, not what they show.
STRUCTURAL_KEYS = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND",
                   "PCOUNT", "GCOUNT", "BZERO", "BSCALE", "BLANK", "CHECKSUM", "DATASUM",
                   "ZIMAGE")


#: Errors reading a file that may pass by themselves: a network file system's (a lost
#: server's EIO, a handle made stale by a copy that replaced the file) or a busy device's.
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.ESTALE, errno.EAGAIN, errno.EBUSY,
                              errno.ETIMEDOUT})
#: How every FITS file begins (its first card's key and value indicator).
FITS_START = b"SIMPLE  ="


class FrameError(Exception):
    """A file that cannot be used as a frame; the message says why, for the Status report."""


class IncompleteFrame(FrameError):
    """A FITS file not whole yet (empty, its header or its pixels cut short: still being
    written or copied), or not readable for now (:class:`UnreadableForNow`): reading it again
    later may succeed (:mod:`.incomplete`)."""


class UnreadableForNow(IncompleteFrame):
    """A file whose reading failed with an error that may pass (:data:`TRANSIENT_ERRNOS`),
    whatever its age."""


def is_fits_name(name):
    """Whether *name* ends like a FITS file (``.fits``, ``.fit``, ``.fts``)."""
    return name.lower().endswith(FITS_SUFFIXES)


def compressed_fits(name):
    """Why *name*, a compressed FITS file (``x.fits.fz``, ``x.fit.gz``...), is not read;
    ``None`` for any other name."""
    stem, suffix = os.path.splitext(name.lower())
    if suffix in COMPRESSED_SUFFIXES and (suffix == ".fz" or is_fits_name(stem)):
        return COMPRESSED_SUFFIXES[suffix]
    return None


class RawFrame:
    """One frame's header and pixels, mapped from its file.

    Parameters
    ----------
    path : str
        A FITS file whose primary HDU, or first image extension, is a 2-D image.

    Raises
    ------
    FrameError
        For a file that cannot be read, is not FITS, is truncated, or holds no 2-D image.
    """

    def __init__(self, path):
        self.path = path
        self.header, offset, self.stored_type = _locate_image(path)
        self.shape = image_shape(self.header)
        try:
            self.bzero, self.bscale = pixel_scaling(self.header)
            #: The stored integer that marks a pixel with no value (``BLANK``), or ``None``:
            #: such pixels are read as NaN, as a float frame's NaN pixels are.
            self.blank = _blank(self.header, self.stored_type)
        except VerifyError as error:
            raise unparsable(self.header, error) from None
        try:
            self.stored = np.memmap(path, dtype=self.stored_type, mode="r", offset=offset,
                                    shape=self.shape)
        except (OSError, ValueError) as error:
            raise FrameError(f"cannot map its pixels: {error}") from None

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()
        return False

    def close(self):
        """Release the map (the pages stay in the system's cache)."""
        stored, self.stored = self.stored, None
        if stored is not None:
            mapping = getattr(stored, "_mmap", None)
            del stored
            if mapping is not None:
                try:
                    mapping.close()
                except BufferError:
                    pass  # a caller still holds a view; the map goes with it

    @property
    def unit_scale(self):
        """Whether the physical value is the stored one plus ``BZERO`` (``BSCALE`` is 1)."""
        return self.bscale == 1.0

    def rows(self, start, stop, out=None):
        """Rows ``[start, stop)`` in physical units (``stored × BSCALE + BZERO``), float32.

        Parameters
        ----------
        out : numpy.ndarray, optional
            A float32 ``(stop - start, width)`` array to fill instead of a new one.
        """
        block = self.stored[start:stop]
        if out is None:
            out = np.empty(block.shape, dtype=np.float32)
        out[...] = block
        self.blank_out(block, out)
        if self.bscale != 1.0:
            out *= np.float32(self.bscale)
        if self.bzero:
            out += np.float32(self.bzero)
        return out

    def region(self, rows, columns):
        """A rectangle of the frame in physical units, float32 (a new array)."""
        stored = self.stored[rows, columns]
        block = stored.astype(np.float32)
        self.blank_out(stored, block)
        if self.bscale != 1.0:
            block *= np.float32(self.bscale)
        if self.bzero:
            block += np.float32(self.bzero)
        return block

    def blank_out(self, stored, values):
        """Set to NaN the *values* whose *stored* integers are the frame's ``BLANK``."""
        if self.blank is not None:
            values[stored == self.blank] = np.nan

    def image(self):
        """The whole frame in physical units, float32 (a new array)."""
        return self.rows(0, self.shape[0])


def _blank(header, stored_type):
    """*header*'s ``BLANK`` for an integer image, or ``None`` (FITS gives it no meaning for
    floats, whose undefined pixels are NaN)."""
    if stored_type.kind not in "iu":
        return None
    value = header.get("BLANK")
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def read_header(path):
    """The header of *path*'s image (primary HDU, or first image extension).

    Raises
    ------
    FrameError
        As :class:`RawFrame` does.
    """
    header, _, _ = _locate_image(path)
    return header


def image_shape(header):
    """``(rows, columns)`` of an image's *header* (``NAXIS2``, ``NAXIS1``), as its file's
    layout was read (:class:`FrameError` for a value that is not a whole number)."""
    return _whole(header, "NAXIS2", 0), _whole(header, "NAXIS1", 0)


def pixel_scaling(header):
    """``(BZERO, BSCALE)`` of *header* (defaults 0 and 1; numeric text taken), as floats.

    Raises
    ------
    FrameError
        When either is not a finite number: the pixels' values cannot be known; or when they
        scale integer pixels beyond what float32 holds: every value would be infinite.
    """
    values = []
    for key, default in (("BZERO", 0.0), ("BSCALE", 1.0)):
        value = header.get(key, default)
        number = as_number(value)
        if number is None:
            raise FrameError(f"{key} {value!r} is not a number")
        values.append(number)
    bzero, bscale = values
    stored = STORED_TYPES.get(header.get("BITPIX"))
    if stored is not None and stored.kind in "iu":
        limits = np.iinfo(stored)
        if max(abs(limits.min * bscale + bzero), abs(limits.max * bscale + bzero)) > FLOAT32_MAX:
            raise FrameError(f"BSCALE {bscale:g} and BZERO {bzero:g} put its pixels beyond "
                             f"what float32 holds (±{FLOAT32_MAX:.3g})")
    return bzero, bscale


def as_number(value):
    """*value* of a header card as a finite ``float``: a number, or numeric text as some
    cameras' software writes it (``EXPTIME = '30'``); ``None`` for anything else."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    return finite_float(value)


#: How astropy names a card it cannot parse, in its error.
_UNPARSABLE_CARD = re.compile(r"Unparsable card \(([^)]*)\)")


def unparsable(header, error):
    """The :class:`FrameError` for astropy's *error* about a card of *header* it cannot parse
    (``EXPTIME = 1.0.0``, a date without quotes): the card as written, for the person who will
    fix the file. Such a file is skipped, saying why, instead of failing its night's job."""
    found = _UNPARSABLE_CARD.search(str(error))
    if found is None:
        return FrameError(f"its header cannot be read: {_short(error)}")
    key = found.group(1)
    try:
        card = header.cards[key]
    except (KeyError, IndexError):
        card = None
    # The card as the file has it: astropy keeps it only privately; its public ``image``
    # is a "fixed" card, not what the file says.
    written = getattr(card, "_image", None)
    if not isinstance(written, str):
        return FrameError(f"its {key} card cannot be parsed")
    return FrameError(f"its {key} card cannot be parsed: {written.rstrip()!r}")


def read_image(path):
    """The image of *path* as a float32 array in physical units, and its header."""
    with RawFrame(path) as frame:
        return frame.image(), frame.header


def _locate_image(path):
    """``(header, data offset, stored dtype)`` of the first 2-D image in *path*."""
    try:
        size = os.path.getsize(path)
        stream = open(path, "rb")
    except OSError as error:
        raise _read_error(error) from None
    with stream:
        if size == 0:
            raise IncompleteFrame("an empty file")
        position = 0
        first = True
        others = []  # what the file holds instead, for the message
        while position < size:
            stream.seek(position)
            try:
                with warnings.catch_warnings():
                    # astropy warns, then fails, on a file of zeros: the failure is the news.
                    warnings.simplefilter("ignore", AstropyUserWarning)
                    header = fits.Header.fromfile(stream)
            except (OSError, ValueError, EOFError, UnicodeDecodeError) as error:
                # (astropy says what it cannot read with an OSError of no errno.)
                if isinstance(error, OSError) and error.errno is not None:
                    if first or error.errno in TRANSIENT_ERRNOS:
                        raise _read_error(error) from None
                elif first:
                    raise _not_fits(stream, size, error) from None
                break
            offset = stream.tell()
            if offset % FITS_BLOCK:  # fromfile stops at the END card; data start on a block
                offset += FITS_BLOCK - offset % FITS_BLOCK
            try:
                if first and header.get("SIMPLE") is not True:
                    raise FrameError("not a FITS file (no SIMPLE = T)")
                data_bytes = _data_bytes(header)
                found = _image_in(header, offset, size, data_bytes)
            except VerifyError as error:
                raise unparsable(header, error) from None
            if found is not None:
                return found
            first = False
            if data_bytes:
                axes = [_whole(header, f"NAXIS{axis}", 0)
                        for axis in range(_whole(header, "NAXIS", 0, MAX_AXES), 0, -1)]
                others.append(f"{len(axes)}-D data of {' × '.join(map(str, axes))}")
            position = offset + _padded(data_bytes)
    if others:
        raise FrameError(f"holds no 2-D image (it holds {', '.join(others)}; a 2-D frame "
                         "is expected)")
    raise FrameError("holds no 2-D image")


def _read_error(error):
    """The :class:`FrameError` for an :class:`OSError` reading a file: an
    :class:`IncompleteFrame` for one that may pass (:data:`TRANSIENT_ERRNOS`)."""
    kind = UnreadableForNow if error.errno in TRANSIENT_ERRNOS else FrameError
    return kind(f"cannot read it: {error.strerror or error}")


def _not_fits(stream, size, error):
    """The :class:`FrameError` for a first header that astropy cannot read (*error*) in a
    file of *size* bytes: an :class:`IncompleteFrame` when the file begins as FITS does (its
    header is still being written)."""
    stream.seek(0)
    if stream.read(len(FITS_START)) == FITS_START[:min(size, len(FITS_START))]:
        return IncompleteFrame(f"its header ends at byte {size}, before its END card (still "
                               f"being written?): {_short(error)}")
    return FrameError(f"not a FITS file ({_short(error)})")


def _image_in(header, offset, size, data_bytes):
    """``(header, data offset, stored dtype)`` if *header* (of the HDU whose *data_bytes*
    start at *offset*, in a file of *size* bytes) describes a 2-D image, else ``None``.

    Raises
    ------
    FrameError
        When it cannot be one (compressed, truncated, an unknown BITPIX).
    """
    if header.get("ZIMAGE") is True:
        raise FrameError("a tile-compressed image (fpack): decompress it with funpack")
    if _one_plane(header) and all(image_shape(header)):
        if header.get("BITPIX") not in STORED_TYPES:
            raise FrameError(f"BITPIX {header.get('BITPIX')!r} is not a FITS pixel type")
        if offset + data_bytes > size:
            raise IncompleteFrame(f"truncated: its header announces {data_bytes} bytes of "
                                  f"pixels, the file has {max(size - offset, 0)}")
        return header, offset, STORED_TYPES[header["BITPIX"]]
    return None


def _one_plane(header):
    """Whether *header* (whose axes :func:`_data_bytes` has read) describes one plane: 2 axes,
    or more of which all but the first two have length 1 (some cameras write a frame as a
    cube of one plane, ``NAXIS3 = 1``: the same pixels, in the same order)."""
    axes = _whole(header, "NAXIS", 0, highest=MAX_AXES)
    return axes >= 2 and all(_whole(header, f"NAXIS{axis}", 0) == 1
                             for axis in range(3, axes + 1))


def _data_bytes(header):
    """Bytes of data after *header* (before padding), per the FITS standard.

    Raises
    ------
    FrameError
        When a card it needs is not a whole number.
    """
    axes = _whole(header, "NAXIS", 0, highest=MAX_AXES)
    if axes == 0:
        return 0
    count = 1
    for axis in range(1, axes + 1):
        count *= _whole(header, f"NAXIS{axis}", 0)
    count = (count + _whole(header, "PCOUNT", 0)) * _whole(header, "GCOUNT", 1)
    bitpix = header.get("BITPIX", 8)
    if bitpix not in STORED_TYPES:
        raise FrameError(f"BITPIX {bitpix!r} is not a FITS pixel type")
    return STORED_TYPES[bitpix].itemsize * count


def _whole(header, key, default, highest=None):
    """The structural card *key* of *header* as an ``int`` (*default* when absent, blank or
    0): taken as leniently as ``int()`` takes it, or a :class:`FrameError` naming it.

    A negative value, or one above *highest*, is refused too: the file's layout computed from
    it would run backwards (the reading would never end) or count axes for hours.
    """
    value = header.get(key, default)
    try:
        number = int(value or default)
    except (TypeError, ValueError, OverflowError):
        raise FrameError(f"{key} {value!r} is not a whole number: its header does not "
                         "describe its data") from None
    if number < 0 or (highest is not None and number > highest):
        allowed = f"0 to {highest}" if highest is not None else "0 or more"
        raise FrameError(f"{key} {value!r} is out of range ({allowed}): its header does not "
                         "describe its data")
    return number


def _padded(size):
    return -(-size // FITS_BLOCK) * FITS_BLOCK


def _short(error):
    """The first line of an error, trimmed: astropy's messages can be long."""
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
