"""A file is flushed to the disk itself: fsync on Linux; on macOS, where fsync leaves the data
in the drive's cache, F_FULLFSYNC, and fsync where a file system refuses that."""

import errno
import fcntl
import os
import sys

import pytest

from torosmanager.disk_sync import flush_to_disk

#: macOS's F_FULLFSYNC, which Linux's fcntl module does not have.
MACOS_F_FULLFSYNC = 51


@pytest.fixture
def written(tmp_path):
    descriptor = os.open(tmp_path / "frame.fits", os.O_WRONLY | os.O_CREAT)
    os.write(descriptor, b"SIMPLE  =                    T")
    yield descriptor
    os.close(descriptor)


def calls(monkeypatch, full_sync_error=None):
    """Record what flush_to_disk asks of the system, as macOS would answer (F_FULLFSYNC
    failing with *full_sync_error*, an errno, when given)."""
    asked = []

    def fcntl_call(descriptor, command, *_):
        asked.append(("fcntl", command))
        if full_sync_error is not None:
            raise OSError(full_sync_error, os.strerror(full_sync_error))
        return 0

    monkeypatch.setattr(fcntl, "F_FULLFSYNC", MACOS_F_FULLFSYNC, raising=False)
    monkeypatch.setattr(fcntl, "fcntl", fcntl_call)
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: asked.append(("fsync",)) or
                        real_fsync(descriptor))
    return asked


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS has F_FULLFSYNC: the tests below")
def test_on_linux_it_is_fsync(written, tmp_path):
    assert not hasattr(fcntl, "F_FULLFSYNC")
    flush_to_disk(written)  # a real fsync of a real file
    closed = os.open(tmp_path, os.O_RDONLY)
    os.close(closed)
    with pytest.raises(OSError, match="Bad file descriptor"):
        flush_to_disk(closed)  # and its failure is not swallowed


def test_on_macos_it_is_f_fullfsync(written, monkeypatch):
    asked = calls(monkeypatch)
    flush_to_disk(written)
    assert asked == [("fcntl", MACOS_F_FULLFSYNC)]


def test_where_f_fullfsync_is_refused_it_is_fsync(written, monkeypatch):
    asked = calls(monkeypatch, errno.ENOTSUP)  # a file system without it
    flush_to_disk(written)
    assert asked == [("fcntl", MACOS_F_FULLFSYNC), ("fsync",)]


def test_a_disk_error_of_f_fullfsync_is_raised_not_hidden_by_fsync(written, monkeypatch):
    """fsync after an EIO could succeed, leaving the data in the drive's cache unsaid."""
    asked = calls(monkeypatch, errno.EIO)
    with pytest.raises(OSError, match="Input/output error"):
        flush_to_disk(written)
    assert asked == [("fcntl", MACOS_F_FULLFSYNC)]
