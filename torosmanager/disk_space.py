"""Free space on the disk that holds (or will hold) a directory."""

import errno
import os
import shutil

#: The errors of a write that found its disk full (or its owner's quota used up).
FULL_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(directory: str) -> int:
    """Bytes free on the disk that holds (or will hold) *directory*."""
    return shutil.disk_usage(existing_ancestor(directory)).free


def total_bytes(directory: str) -> int:
    """Bytes the disk that holds (or will hold) *directory* holds in all, used or free."""
    return shutil.disk_usage(existing_ancestor(directory)).total


def free_space_text(path: str) -> str:
    """The free space on the disk that holds (or will hold) *path*, a file or a directory, in
    words: ``"3.2 MB free on its disk"``, or why it is unknown."""
    try:
        return f"{free_bytes(path) / 1e6:,.1f} MB free on its disk"
    except OSError as error:
        return f"its disk's free space unknown: {error}"


def existing_ancestor(directory: str) -> str:
    """*directory*, or its nearest ancestor that exists (the disk it will be made on)."""
    path = os.path.abspath(directory)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path
