"""A PNG preview of a FITS frame, for the telescope's status page and the night report.

The image is scaled with astropy's zscale (as ds9 shows a raw frame), shrunk by averaging blocks
of pixels to at most :data:`MAX_SIDE` pixels a side, and encoded as an 8-bit greyscale PNG with
the standard library's zlib: no plotting library draws it (astropy.visualization, for zscale,
does import matplotlib, at the first preview).
"""

import struct
import zlib

import numpy as np
from astropy.io import fits

#: The longest side of a preview, pixels.
MAX_SIDE = 512
#: The zlib compression level: previews are made while observing, so fast beats small.
COMPRESSION = 6


def preview_png(path, max_side=MAX_SIDE):
    """A PNG (bytes) of the FITS image at *path*, north up as stored (row 0 at the bottom)."""
    # Imported here: astropy.visualization imports matplotlib, which took a second of every
    # telescope daemon's start-up, for a page that may never be looked at.
    from astropy.visualization import ZScaleInterval

    with fits.open(path, memmap=False) as hdus:
        data = np.asarray(hdus[0].data, dtype=np.float32)
    factor = max(1, int(np.ceil(max(data.shape) / max_side)))
    rows, columns = (data.shape[0] // factor) * factor, (data.shape[1] // factor) * factor
    small = data[:rows, :columns].reshape(rows // factor, factor, columns // factor,
                                          factor).mean(axis=(1, 3))
    low, high = ZScaleInterval().get_limits(small)
    scaled = np.clip((small - low) / max(high - low, 1e-9), 0, 1)
    grey = (scaled * 255).astype(np.uint8)[::-1]  # FITS row 0 is the bottom of the picture
    return encode_png(grey)


def encode_png(grey):
    """Encode a 2-D uint8 array as a greyscale PNG (RFC 2083)."""
    height, width = grey.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in grey)  # filter type 0 on every row

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, COMPRESSION)) + chunk(b"IEND", b""))
