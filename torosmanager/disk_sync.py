"""Flushing a file to the disk itself, whatever the system (:func:`flush_to_disk`), and writing
one whole or not at all (:func:`write_durably`)."""

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


def sync_directory(directory):
    """Flush *directory*'s entries, so that a rename in it is durable."""
    descriptor = os.open(directory or ".", os.O_RDONLY)
    try:
        flush_to_disk(descriptor)
    finally:
        os.close(descriptor)


def write_durably(path, temporary, write):
    """Write *path* whole or not at all: ``write(stream)`` into *temporary* (beside it), flushed
    to the disk, renamed over *path*, and the rename flushed.

    A write that fails leaves no temporary file (unless the disk cannot delete it any more:
    read-only) and raises an :class:`OSError` with the system's errno and strerror and *path*
    as its filename (:func:`system_error`): astropy rewords a full disk as an OSError of its
    own, without the errno that tells a full disk from another failure.
    """
    try:
        with open(temporary, "wb") as stream:
            write(stream)
            stream.flush()
            flush_to_disk(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        try:
            os.unlink(temporary)
        except OSError:  # never made; or a disk now read-only
            pass
        system = system_error(error) if isinstance(error, OSError) else None
        if system is None or system is error:
            raise
        raise OSError(system.errno, system.strerror, path) from error
    sync_directory(os.path.dirname(path))


def system_error(error):
    """The system's own error (an :class:`OSError` with an ``errno``) behind *error*, or
    ``None``. astropy rewords a failed write as an OSError of its own, without the errno
    ("Not enough space on disk: requested …, available …. " and the text of the error it
    caught), at each level that catches it: the errno says what happened, once."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno is not None:
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
