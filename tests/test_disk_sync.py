"""A file is flushed to the disk itself: fsync on Linux; on macOS, where fsync leaves the data
in the drive's cache, F_FULLFSYNC, and fsync where a file system refuses that."""

import fcntl
import os

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


def calls(monkeypatch, refuse_full_sync):
    """Record what flush_to_disk asks of the system, as macOS would answer."""
    asked = []

    def fcntl_call(descriptor, command, *_):
        asked.append(("fcntl", command))
        if refuse_full_sync:
            raise OSError(45, "Operation not supported")  # ENOTSUP, as a file system may say
        return 0

    monkeypatch.setattr(fcntl, "F_FULLFSYNC", MACOS_F_FULLFSYNC, raising=False)
    monkeypatch.setattr(fcntl, "fcntl", fcntl_call)
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: asked.append(("fsync",)) or
                        real_fsync(descriptor))
    return asked


def test_on_linux_it_is_fsync(written, tmp_path):
    assert not hasattr(fcntl, "F_FULLFSYNC")
    flush_to_disk(written)  # a real fsync of a real file
    closed = os.open(tmp_path, os.O_RDONLY)
    os.close(closed)
    with pytest.raises(OSError, match="Bad file descriptor"):
        flush_to_disk(closed)  # and its failure is not swallowed


def test_on_macos_it_is_f_fullfsync(written, monkeypatch):
    asked = calls(monkeypatch, refuse_full_sync=False)
    flush_to_disk(written)
    assert asked == [("fcntl", MACOS_F_FULLFSYNC)]


def test_where_f_fullfsync_is_refused_it_is_fsync(written, monkeypatch):
    asked = calls(monkeypatch, refuse_full_sync=True)
    flush_to_disk(written)
    assert asked == [("fcntl", MACOS_F_FULLFSYNC), ("fsync",)]
