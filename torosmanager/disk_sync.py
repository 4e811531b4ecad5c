"""Flushing a file to the disk itself, whatever the system: :func:`flush_to_disk`."""

import fcntl
import os


def flush_to_disk(descriptor):
    """Write the file's data and metadata to the disk, as ``fsync(2)`` does on Linux.

    On macOS ``fsync`` only hands them to the drive, which may keep them in its cache through
    a power cut; ``F_FULLFSYNC`` asks the drive to write them (macOS's ``fsync(2)`` says so).
    Where it is refused (a file system without it, such as some network ones), ``fsync``.

    Parameters
    ----------
    descriptor : int
        An open file's (or directory's) descriptor.
    """
    full_sync = getattr(fcntl, "F_FULLFSYNC", None)  # macOS only
    if full_sync is not None:
        try:
            fcntl.fcntl(descriptor, full_sync)
            return
        except OSError:
            pass  # refused by this file system: fsync below, which raises if it fails too
    os.fsync(descriptor)
