"""Flushing a file to the disk itself, whatever the system: :func:`flush_to_disk`."""

import errno
import fcntl
import os

#: What a file system that has no F_FULLFSYNC answers (then fsync is all there is); any other
#: error, such as EIO, is the disk's and is raised.
NO_FULL_SYNC = frozenset((errno.ENOTSUP, errno.EINVAL, errno.ENOTTY))


def flush_to_disk(descriptor):
    """Write the file's data and metadata to the disk, as ``fsync(2)`` does on Linux.

    On macOS ``fsync`` only hands them to the drive, which may keep them in its cache through
    a power cut; ``F_FULLFSYNC`` asks the drive to write them (macOS's ``fsync(2)`` says so).
    Where it is refused (a file system without it, such as some network ones), ``fsync``.

    Raises
    ------
    OSError
        When the data could not be written (EIO, say), or *descriptor* is not open.

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
        except OSError as error:
            if error.errno not in NO_FULL_SYNC:
                raise
    os.fsync(descriptor)
