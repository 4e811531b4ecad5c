"""A small disk of a test's own, to fill: a tmpfs of a few MB mounted in its directory; or to
break: an ext4 file system in a file, which the kernel remounts read-only on errors.

Real file systems that really run out of space (ENOSPC, SQLite's "database or disk is full")
or fail (EIO, SQLite's "disk I/O error", as a dying disk's file system does), rather than mocks
of them. Mounting needs root, as CI runs; elsewhere the test is skipped, saying why.
"""

import contextlib
import errno
import os
import shutil
import subprocess
import time

import pytest

#: Bytes written at a time when filling a disk.
FILL_CHUNK = 1 << 16
#: Seconds a remount is tried for while a file is open for writing on the disk.
REMOUNT_PATIENCE = 10


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


@contextlib.contextmanager
def failing_disk(path, image, megabytes):
    """Mount at *path* (created) an ext4 file system of *megabytes* MB made in the file
    *image*, with ``errors=remount-ro``; yield a function that makes it fail: the kernel
    remounts it read-only at once, as on a disk's I/O errors (ext4's ``trigger_fs_error``).
    Unmounted at the end, even if something still has a file open there."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("a file system of its own (a loop mount) needs root")
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed (Debian package e2fsprogs)")
    with open(image, "wb") as stream:
        stream.truncate(megabytes * 1_000_000)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(path)], check=True)
    try:
        source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(path)], check=True,
                                capture_output=True, text=True).stdout.strip()
        trigger = f"/sys/fs/ext4/{os.path.basename(source)}/trigger_fs_error"
        if not os.path.exists(trigger):
            pytest.skip("this kernel cannot make a file system fail on purpose (no "
                        f"{trigger})")

        def fail():
            with open(trigger, "w", encoding="ascii") as stream:
                stream.write("the test's disk failing\n")

        yield fail
    finally:
        # The loop device goes once the file system is unmounted and its files closed.
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def remount(path, mode):
    """Remount the small disk at *path* read-only (*mode* ``"ro"``, as the kernel does a
    failing disk's, or an NFS server its export) or read-write again (``"rw"``). A tmpfs
    is not made read-only under a file open for writing ("mount point is busy"): tried again
    until it is."""
    deadline = time.monotonic() + REMOUNT_PATIENCE
    while True:
        done = subprocess.run(["mount", "-o", f"remount,{mode}", str(path)],
                              capture_output=True, text=True)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"cannot remount {path} {mode}: {done.stderr.strip()}")
        time.sleep(0.01)


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
