"""A small disk of a test's own, to fill: a tmpfs of a few MB mounted in its directory.

A real file system that really runs out of space (ENOSPC, SQLite's "database or disk is
full"), rather than a mock of one. Mounting needs root, as CI runs; elsewhere the test is
skipped, saying why.
"""

import contextlib
import errno
import os
import subprocess

import pytest

#: Bytes written at a time when filling a disk.
FILL_CHUNK = 1 << 16


@contextlib.contextmanager
def small_disk(path, megabytes):
    """Mount a tmpfs of *megabytes* MB (10⁶ bytes) at *path* (created), and unmount it at
    the end, even if something still has a file open there."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("a small disk of its own (a tmpfs mount) needs root")
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes * 1_000_000},mode=0755",
                    "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(directory):
    """Write a file in *directory* until its disk is full; return the file's path."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * FILL_CHUNK
    with open(path, "wb", buffering=0) as stream:
        try:
            while True:
                stream.write(chunk)
        except OSError as error:
            if error.errno != errno.ENOSPC:  # (full, as wanted)
                raise
    return path
