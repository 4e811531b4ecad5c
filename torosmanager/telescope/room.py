"""Room on the data disk for the next frame.

A 10k × 10k camera writes 200 MB a frame: a night can fill a disk. No exposure is started that
could not be written, and the disk keeps ``Telescope → Minimum Free Bytes`` for what shares it
(the journals, the logs, the preprocessor's products). An order that finds no room is refused
for now, or stops before its next frame, keeping the frames it took, to be tried again once
there is room. A disk that stops taking writes (remounted read-only as a failing disk or an
NFS server does, its permissions changed) is refused the same way, until it takes them again.
"""

import errno
import math
import os
import tempfile

from ..disk_space import FULL_DISK_ERRORS, free_bytes
from ..workorders import FaultCode, WorkOrderError

#: Bytes of a FITS block: a file is a whole number of them.
FITS_BLOCK = 2880
#: FITS blocks of a frame's header (its 40-odd cards fill two; the rest is margin).
HEADER_BLOCKS = 4
#: The largest ADU a 16-bit frame holds; a camera that counts higher writes 32-bit pixels.
MAX_16_BIT_ADU = 65535
#: The errors of a frame's write that found the disk refusing writes: remounted read-only,
#: permissions changed, I/O errors, an NFS directory gone: no frame is taken until a file
#: can be made there again (:func:`unwritable`).
UNWRITABLE_ERRORS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ESTALE)


class NoRoom(WorkOrderError):
    """The data disk has no room for the next frame (a Fault the client may send again)."""

    def __init__(self, message):
        super().__init__(message, FaultCode.UNAVAILABLE)


class Unwritable(NoRoom):
    """The data directory cannot be written (its disk read-only, its permissions): no room
    for any frame until it can, looked at again as room is."""


def frame_bytes(camera):
    """Bytes of one frame of *camera* (a :class:`~torosmanager.devices.camera.CameraInfo`)
    as a FITS file."""
    pixel_bytes = 2 if camera.max_adu <= MAX_16_BIT_ADU else 4
    data_blocks = math.ceil(camera.width * camera.height * pixel_bytes / FITS_BLOCK)
    return (HEADER_BLOCKS + data_blocks) * FITS_BLOCK


def require_room(directory, needed, minimum):
    """Raise :class:`NoRoom` unless the disk of *directory* (created later if missing) has
    *needed* bytes free over *minimum*."""
    free = free_bytes(directory)
    if free - needed < minimum:
        raise NoRoom(f"no room for a frame: the data directory {directory} has "
                     f"{free / 1e6:,.1f} MB free; a frame needs {needed / 1e6:,.1f} MB and "
                     f"Telescope → Minimum Free Bytes keeps {minimum / 1e6:,.1f} MB free")


def unwritable(directory):
    """Why no frame can be written in *directory* (made if missing), or ``None``: tried with
    a file, since root passes every permission check that a read-only disk or /proc fails."""
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        return cannot_write(directory, error)
    return None


def cannot_write(directory, error):
    """Why no frame can be written in *directory*, which refused a write with *error*."""
    return f"the data directory {directory} (Telescope → Data Directory) cannot be " \
           f"written: {error.strerror or error}"


def not_written(directory, error):
    """What the failed write of a frame in *directory* (*error*, an :class:`OSError` from
    :func:`~.fits.write_frame`) says of the disk: :class:`NoRoom` for a full disk,
    :class:`Unwritable` for a disk that refuses writes; ``None`` for another error."""
    if error.errno in FULL_DISK_ERRORS:
        return NoRoom(f"no room for a frame: the disk filled while {error.filename} was "
                      f"written: [Errno {error.errno}] {error.strerror}")
    if error.errno in UNWRITABLE_ERRORS:
        return Unwritable(cannot_write(directory, error))
    return None


def describe(directory, needed, minimum, unwritable_reason=None):
    """The data disk, for the health report: free MB, a frame's MB, the frames it has room
    for (MB: XML-RPC's integers stop at 2³¹); and, while no frame can be written there,
    ``Unwritable``: why (no frames left then)."""
    free = free_bytes(directory)
    report = {"Directory": directory, "Free MB": round(free / 1e6, 1),
              "Frame MB": round(needed / 1e6, 3),
              "Frames Left": max(0, (free - minimum) // needed) if needed else None}
    if unwritable_reason is not None:
        report.update({"Frames Left": 0, "Unwritable": unwritable_reason})
    return report
