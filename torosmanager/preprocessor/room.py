"""Room on the disks a calibration job writes to, looked at before it writes anything.

A 10560² product is 446 MB of float32, and a night has hundreds of them: a job that started on
a disk without room for its products would fill it, and with it the journals and the
telescope's next frames that share it. So a job first adds up what it will write on each disk
(its products, at most the size of the frames as float32, and its masters) and starts only if
each disk keeps ``Preprocessor → Minimum Free Bytes`` free afterwards. One that finds no room
waits, queued, and is tried again (:mod:`.jobs`); so does one that meets a full disk on the way.
"""

import math
import os

from ..disk_space import FULL_DISK_ERRORS, existing_ancestor, free_bytes, total_bytes
from .reading import FITS_BLOCK

#: FITS blocks counted for a product's header: the raw frame's header, the provenance cards
#: and the ``HISTORY`` lines, with a wide margin (100 kB, against 64 MB for a 4096² product).
HEADER_BLOCKS = 36


class NoRoom(Exception):
    """A disk the job writes to has no room for what it would write; the message says which,
    how much is free and how much is needed. The job waits and is tried again."""


def image_bytes(width, height):
    """Bytes of a float32 image of *width* × *height* as a FITS file, header included."""
    return (HEADER_BLOCKS + math.ceil(width * height * 4 / FITS_BLOCK)) * FITS_BLOCK


def is_full_disk(error):
    """Whether *error* is a write that found its disk full."""
    return isinstance(error, OSError) and error.errno in FULL_DISK_ERRORS


def require_room(outputs, minimum, in_flight):
    """Raise :class:`NoRoom` unless every disk keeps *minimum* bytes free once *outputs* are
    written.

    Parameters
    ----------
    outputs : iterable of (str, int, str or None)
        The files the job will write: each one's directory, size in bytes, and the file it
        replaces (a run before made it), whose bytes it frees, or ``None``.
    minimum : int
        ``Preprocessor → Minimum Free Bytes``.
    in_flight : int
        Files written at once: each is written beside the file it replaces and then renamed
        over it, so the largest file counts this many times more on each disk.
    """
    disks = {}
    for directory, size, replaced in outputs:
        existing = existing_ancestor(directory)
        disk = disks.setdefault(os.stat(existing).st_dev,
                                {"directory": existing, "needed": 0, "files": 0, "largest": 0})
        disk["needed"] += max(0, size - _size(replaced))
        disk["files"] += 1
        disk["largest"] = max(disk["largest"], size)
    for disk in disks.values():
        needed = disk["needed"] + in_flight * disk["largest"]
        free = free_bytes(disk["directory"])
        if free - needed < minimum:
            said = (f"no room for this job's {disk['files']} file(s): the disk of "
                    f"{disk['directory']} has {free / 1e6:,.1f} MB free; they need "
                    f"{needed / 1e6:,.1f} MB and Preprocessor → Minimum Free Bytes keeps "
                    f"{minimum / 1e6:,.1f} MB free")
            total = total_bytes(disk["directory"])
            if needed + minimum > total:  # not even on the empty disk: waiting cannot help
                said += (f"; the disk holds {total / 1e6:,.1f} MB in all, so it never will "
                         "have room: lower Minimum Free Bytes (and restart), or cancel this "
                         "job and calibrate its frames on a larger disk")
            raise NoRoom(said)


def _size(path):
    """Bytes of the file at *path*; 0 if there is none (or *path* is ``None``)."""
    if path is None:
        return 0
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
