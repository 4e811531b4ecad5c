"""Which pixels of a raw frame are data: the overscan to subtract and the region to keep.

``Preprocessor → Overscan`` and ``Preprocessor → Trim`` are FITS sections, ``[x1:x2,y1:y2]``,
1-based and inclusive, as in IRAF and :func:`ccdproc.subtract_overscan`/:func:`ccdproc.trim_image`
(whose parser is used). The overscan is reduced as ccdproc does with ``overscan_axis=None`` and
``median=True``: along its shorter side, so that a strip of columns at the side of the chip gives
one level per row and a strip of rows one level per column, each the median of its strip (a
median, so that a cosmic ray in the overscan does not shift a row). The level is subtracted from
every pixel of its row (or column), then the frame is cut to the trim section.

Masters and science frames go through the same layout, so they match pixel for pixel.
"""

from dataclasses import dataclass

import numpy as np

#: Per-row levels (median across the strip's columns), as ccdproc's ``overscan_axis=1``.
PER_ROW = 1
#: Per-column levels (median across the strip's rows), as ccdproc's ``overscan_axis=0``.
PER_COLUMN = 0


class LayoutError(ValueError):
    """An overscan or trim section that does not fit a frame; the message says why."""


@dataclass(frozen=True)
class Layout:
    """How a frame of one raw size is cut and levelled.

    Attributes
    ----------
    raw_shape : tuple of int
        ``(rows, columns)`` of the raw frames.
    rows, columns : slice
        The trim region, Python slices with explicit start and stop.
    overscan : tuple of slice or None
        The overscan region ``(rows, columns)``, or ``None``.
    overscan_axis : int or None
        :data:`PER_ROW` or :data:`PER_COLUMN`.
    overscan_text, trim_text : str or None
        The sections as configured, for headers.
    """

    raw_shape: tuple
    rows: slice
    columns: slice
    overscan: tuple | None = None
    overscan_axis: int | None = None
    overscan_text: str | None = None
    trim_text: str | None = None

    @classmethod
    def for_frame(cls, raw_shape, overscan=None, trim=None):
        """The layout of frames of *raw_shape* with the configured sections.

        Raises
        ------
        LayoutError
            When a section is malformed or falls outside the frame, or the overscan does not
            span the frame along its long side.
        """
        height, width = raw_shape
        rows, columns = slice(0, height), slice(0, width)
        if trim:
            rows, columns = _section(trim, raw_shape, "Trim")
        region = axis = None
        if overscan:
            region = _section(overscan, raw_shape, "Overscan")
            strip_height = region[0].stop - region[0].start
            strip_width = region[1].stop - region[1].start
            # ccdproc: reduce along the shorter side (axis 1 for a square strip).
            axis = PER_ROW if strip_width <= strip_height else PER_COLUMN
            if axis == PER_ROW and (region[0].start, region[0].stop) != (0, height):
                raise LayoutError(f"Preprocessor → Overscan {overscan} gives one level per row, "
                                  f"so it must span all {height} rows of the frame")
            if axis == PER_COLUMN and (region[1].start, region[1].stop) != (0, width):
                raise LayoutError(f"Preprocessor → Overscan {overscan} gives one level per "
                                  f"column, so it must span all {width} columns of the frame")
        return cls(tuple(raw_shape), rows, columns, region, axis, overscan, trim)

    @property
    def shape(self):
        """``(rows, columns)`` after trimming."""
        return (self.rows.stop - self.rows.start, self.columns.stop - self.columns.start)

    @property
    def identity(self):
        """Whether frames are used as they are (no overscan, no trim)."""
        return self.overscan is None and self.shape == tuple(self.raw_shape)

    def reader(self, frame):
        """A :class:`LayoutReader` of *frame* (a :class:`~.reading.RawFrame`)."""
        if tuple(frame.shape) != tuple(self.raw_shape):
            raise LayoutError(f"a {frame.shape[1]}x{frame.shape[0]} frame, not "
                              f"{self.raw_shape[1]}x{self.raw_shape[0]}")
        return LayoutReader(self, frame)

    def cards(self):
        """Header cards saying what was done: ``(key, value, comment)``."""
        cards = []
        if self.overscan_text:
            cards.append(("OVERSCAN", self.overscan_text, "overscan section subtracted"))
            cards.append(("OVSCAXIS", "row" if self.overscan_axis == PER_ROW else "column",
                          "one overscan level (median) per row or column"))
        if self.trim_text:
            cards.append(("TRIMSEC", self.trim_text, "raw section kept (FITS convention)"))
        return cards

    def reference_pixel_cards(self, header):
        """The ``CRPIX1``/``CRPIX2`` cards of a product whose raw *header* has them, counted
        from the trimmed frame's first pixel: its WCS still names the same sky."""
        cards = []
        for key, start in (("CRPIX1", self.columns.start), ("CRPIX2", self.rows.start)):
            if start and key in header:
                cards.append((key, float(header[key]) - start,
                              "reference pixel, in the trimmed frame"))
        return cards


class LayoutReader:
    """Reads a frame's levelled, trimmed rows, one block at a time."""

    def __init__(self, layout, frame):
        self.layout = layout
        self.frame = frame
        self._column_levels = None
        if layout.overscan_axis == PER_COLUMN:
            strip = frame.region(*layout.overscan)
            self._column_levels = _median(frame)(strip, axis=0)[layout.columns]

    def rows(self, start, stop, out=None):
        """Trimmed rows ``[start, stop)`` in ADU, overscan subtracted, float32.

        Parameters
        ----------
        out : numpy.ndarray, optional
            A float32 ``(stop - start, trimmed width)`` array to fill instead of a new one.
        """
        layout = self.layout
        first = layout.rows.start + start
        whole_rows = layout.columns == slice(0, layout.raw_shape[1])
        # Read straight into *out* when no column is trimmed away.
        block = self.frame.rows(first, first + (stop - start), out=out if whole_rows else None)
        if layout.overscan_axis == PER_ROW:
            levels = _median(self.frame)(block[:, layout.overscan[1]], axis=1)
            block -= levels[:, np.newaxis]
        if not whole_rows:
            if out is None:
                out = np.empty((stop - start, layout.shape[1]), dtype=np.float32)
            out[...] = block[:, layout.columns]
            block = out
        if self._column_levels is not None:
            block -= self._column_levels
        return block


def _median(frame):
    """The median for *frame*'s overscan: one that leaves out its pixels with no value
    (``BLANK``), when it has such pixels."""
    return np.median if frame.blank is None else np.nanmedian


def _section(text, raw_shape, key):
    """The Python slices of the FITS section *text*, checked against *raw_shape*."""
    # Imported here: ccdproc's package loads astropy's NDData, WCS and coordinates (seconds),
    # and only a camera with an overscan or a trim section needs its parser.
    from ccdproc.utils.slices import slice_from_string

    try:
        rows, columns = slice_from_string(text, fits_convention=True)
    except (ValueError, TypeError, IndexError) as error:
        raise LayoutError(f"Preprocessor → {key}: {text!r} is not a FITS section such as "
                          f"'[1:1024,1:1024]' ({error})") from None
    height, width = raw_shape
    normal = []
    for piece, size in ((rows, height), (columns, width)):
        start, stop, step = piece.indices(size)
        if step != 1 or piece.stop is not None and piece.stop > size or stop <= start:
            raise LayoutError(f"Preprocessor → {key} {text} does not fit a {width}x{height} "
                              "frame")
        normal.append(slice(start, stop))
    return tuple(normal)
