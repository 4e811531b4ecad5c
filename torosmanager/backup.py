"""A consistent copy of a daemon's journal, safe while the daemon runs (``toros backup``,
:mod:`torosmanager.commands.backup`).

A journal (``Database → File``, one per daemon) is copied with SQLite's online backup API
(:meth:`sqlite3.Connection.backup`) into a new file: a snapshot of one instant that holds every
order acknowledged before the copy began, taken while the daemon goes on writing. The copy is
a single file (rollback journal mode, no ``-wal``), checked with ``PRAGMA integrity_check``
before it gets its name, so a file with that name is a whole backup.
"""

import os
import sqlite3
from urllib.parse import quote

#: Seconds to wait for a lock the daemon holds (a checkpoint) before giving up.
BUSY_TIMEOUT = 30.0
#: Pages copied per step: all of them in one step, i.e. in one read transaction. In WAL mode a
#: reader never blocks the daemon's writes, and a copy made in several steps starts over each
#: time another connection writes, so on a busy journal it might never end.
ALL_PAGES = -1
#: What ``PRAGMA integrity_check`` answers for a sound database.
INTEGRITY_OK = "ok"


class BackupError(Exception):
    """A journal could not be read, or the copy could not be written; the message says which."""


def copy_journal(journal, target):
    """Copy the SQLite database *journal* to *target* (a new file) with the online backup API.

    Parameters
    ----------
    journal : str
        A daemon's journal; it may be in use.
    target : str
        The copy's path; it must not exist yet.

    Returns
    -------
    int
        The copy's size, bytes.

    Raises
    ------
    BackupError
        When *journal* cannot be read, *target* exists or cannot be written, or the copy fails
        its integrity check.
    """
    if not os.path.isfile(journal):
        raise BackupError(f"{journal} cannot be read: there is no such file (is this the "
                          "machine that runs the daemon? --service picks the journals)")
    if not os.access(journal, os.R_OK):
        raise BackupError(f"{journal} cannot be read: permission denied (run as root, e.g. "
                          "sudo toros backup DIR)")
    if os.path.exists(target):
        raise BackupError(f"{target} exists already; it is not overwritten")
    partial = os.path.join(os.path.dirname(target) or ".",
                           f".{os.path.basename(target)}.partial")
    try:
        source = _open_journal(journal)
    except sqlite3.Error as error:
        raise BackupError(f"{journal} cannot be read: {error}") from None
    try:
        _write_copy(source, journal, partial)
        os.replace(partial, target)
    except BackupError:
        _remove(partial)
        raise
    except (OSError, sqlite3.Error) as error:
        _remove(partial)
        raise BackupError(f"cannot write {target}: {getattr(error, 'strerror', None) or error}"
                          ) from None
    finally:
        source.close()
    return os.path.getsize(target)


def _open_journal(journal):
    """A connection to *journal* that never creates it.

    Read-write, as the daemon and the ``sqlite3`` program open it, rather than ``mode=ro``: a
    read-only connection may create the ``-wal`` and ``-shm`` files beside a stopped daemon's
    journal but cannot remove them, and made by root they would lock the daemon (user toros)
    out of its own journal. A read-write connection that is the last one removes them on close.
    Nothing is written through it.
    """
    uri = f"file:{quote(os.path.abspath(journal))}?mode=rw"
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT)


def _write_copy(source, journal, path):
    """Back *source* up into a new file at *path*, as one self-contained file, and check it."""
    _remove(path)  # left by a copy that was interrupted
    copy = sqlite3.connect(path, isolation_level=None)
    try:
        try:
            source.backup(copy, pages=ALL_PAGES)
        except sqlite3.Error as error:
            raise BackupError(f"{journal} cannot be read: {error}") from None
        # The copy inherits WAL mode from the journal; a backup is better one file.
        copy.execute("PRAGMA journal_mode=DELETE")
        verdict = [row[0] for row in copy.execute("PRAGMA integrity_check")]
        if verdict != [INTEGRITY_OK]:
            raise BackupError(f"the copy of {journal} fails its integrity check: "
                              f"{'; '.join(verdict)}")
    finally:
        copy.close()


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
