"""A consistent copy of a daemon's journal, safe while the daemon runs (``toros backup``,
:mod:`torosmanager.commands.backup`).

A journal (``Database → File``, one per daemon) is copied with SQLite's online backup API
(:meth:`sqlite3.Connection.backup`) into a new file: a snapshot of one instant that holds every
order acknowledged before the copy began, taken while the daemon goes on writing. The copy is
a single file (rollback journal mode, no ``-wal``), checked with ``PRAGMA integrity_check``
in a temporary file of its own beside it, then given its name with a hard link, which fails
rather than replace a file of that name: a file with that name is a whole backup, and no
other ``toros backup`` running at the same moment can take or remove it.
"""

import errno
import os
import sqlite3
import tempfile
from urllib.parse import quote

from .disk_sync import flush_to_disk, sync_directory

#: Seconds to wait for a lock the daemon holds (a checkpoint) before giving up.
BUSY_TIMEOUT = 30.0
#: Pages copied per step: all of them in one step, i.e. in one read transaction. In WAL mode a
#: reader never blocks the daemon's writes, and a copy made in several steps starts over each
#: time another connection writes, so on a busy journal it might never end.
ALL_PAGES = -1
#: What ``PRAGMA integrity_check`` answers for a sound database.
INTEGRITY_OK = "ok"
#: The tables every journal has had, in every schema (:mod:`torosmanager.journal`): a database
#: without them is not a daemon's journal (an empty file, another program's database).
JOURNAL_TABLES = ("orders", "history")
#: What SQLite leaves beside a database it writes: its rollback journal, and in WAL mode its
#: log and shared memory. A failed copy leaves none of them behind.
SIDE_FILES = ("-journal", "-wal", "-shm")
#: The name of a copy being written: hidden, and never one a copy is given.
PARTIAL_SUFFIX = ".partial"
#: Bytes written to find whether a directory still takes writes (a page of SQLite's).
PROBE_BYTES = 4096
#: The mode of a new file before the umask, as open(2) makes one.
FILE_MODE = 0o666
#: SQLite's primary result code of a full disk (the low byte of an extended code).
SQLITE_FULL = 13
_PRIMARY_CODE = 0xFF
#: What ``link(2)`` answers on a file system without hard links (FAT, some network ones).
NO_HARD_LINKS = frozenset((errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV))


class BackupError(Exception):
    """A journal could not be read, or the copy could not be written; the message says which."""


class TargetError(BackupError):
    """The copy could not be written into its directory (full, read-only, failing, not a
    directory), as opposed to the journal that could not be read."""


def copy_journal(journal, targets):
    """Copy the SQLite database *journal* to a new file with the online backup API.

    Parameters
    ----------
    journal : str
        A daemon's journal; it may be in use.
    targets : str or iterable of str
        The copy's path, or paths in one directory tried in turn: the copy takes the first
        that does not exist yet (another ``toros backup`` may have taken one meanwhile). An
        existing file is never overwritten.

    Returns
    -------
    (str, int)
        The copy's path, and its size in bytes.

    Raises
    ------
    BackupError
        When *journal* cannot be read or is not a daemon's journal, or the copy fails its
        integrity check.
    TargetError
        When the copy cannot be written, or every path of *targets* exists already.
    """
    targets = iter([targets] if isinstance(targets, str) else targets)
    first = next(targets)
    directory = os.path.dirname(first) or "."
    if not os.path.isfile(journal):
        raise BackupError(f"{journal} cannot be read: there is no such file (is this the "
                          "machine that runs the daemon? --service picks the journals)")
    if not os.access(journal, os.R_OK):
        raise BackupError(f"{journal} cannot be read: permission denied (run as root, e.g. "
                          "sudo toros backup DIR)")
    try:
        source = _open_journal(journal)
    except sqlite3.Error as error:
        raise BackupError(f"{journal} cannot be read: {error}") from None
    try:
        _check_is_journal(source, journal)
        # A name of its own, made by the system: a backup running at the same moment into the
        # same directory neither writes into it nor removes it.
        try:
            descriptor, partial = tempfile.mkstemp(
                dir=directory, prefix=f".{os.path.basename(first)}.", suffix=PARTIAL_SUFFIX)
        except OSError as error:
            raise TargetError(f"cannot write to {directory}: {error.strerror}") from None
        os.close(descriptor)
        try:
            # The mode a file the command made itself would have (mkstemp's is 0600).
            os.chmod(partial, FILE_MODE & ~_umask())
            _write_copy(source, journal, partial, directory)
            return _publish(partial, first, targets, directory)
        except OSError as error:  # flushing the copy (EIO), or a disk without modes
            raise TargetError(f"cannot write to {directory}: {error.strerror or error}"
                              ) from None
        finally:
            _remove_copy(partial)
    finally:
        source.close()


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


def _check_is_journal(source, journal):
    """Refuse a database that is not a daemon's journal, before anything is written."""
    try:
        tables = {row[0] for row in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as error:
        raise BackupError(f"{journal} cannot be read: {error}") from None
    lacking = [name for name in JOURNAL_TABLES if name not in tables]
    if lacking:
        what = ("an empty file" if os.path.getsize(journal) == 0
                else f"a database with the tables {', '.join(sorted(tables))}" if tables
                else "a database without tables")
        raise BackupError(f"{journal} is not a TOROS daemon's journal: it is {what}, without "
                          f"the table(s) {', '.join(lacking)} every journal has; nothing copied "
                          "(is Database → File right?)")


def _write_copy(source, journal, path, directory):
    """Back *source* up into the new, empty file *path*, as one self-contained file, and check
    it; a failure says whether *journal* could not be read or *directory* not written."""
    copy = sqlite3.connect(path, isolation_level=None)
    try:
        try:
            source.backup(copy, pages=ALL_PAGES)
        except sqlite3.Error as error:
            raise _which_side(error, journal, directory) from None
        try:
            # The copy inherits WAL mode from the journal; a backup is better one file.
            copy.execute("PRAGMA journal_mode=DELETE")
            verdict = [row[0] for row in copy.execute("PRAGMA integrity_check")]
        except sqlite3.Error as error:
            raise TargetError(f"cannot write to {directory}: {_target_reason(error, directory)}"
                              ) from None
        if verdict != [INTEGRITY_OK]:
            raise BackupError(f"the copy of {journal} fails its integrity check: "
                              f"{'; '.join(verdict)}")
    finally:
        copy.close()
    # SQLite flushed the copy at its commit; once more, lest the link below publish a file
    # whose data are still only in the cache.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        flush_to_disk(descriptor)
    finally:
        os.close(descriptor)


def _which_side(error, journal, directory):
    """The :class:`BackupError` for *error*, raised by SQLite's backup, which reads the journal
    and writes the copy: a full disk, or a directory that no longer takes writes, is the
    copy's side; anything else, the journal's."""
    if _is_full(error):
        return TargetError(f"cannot write to {directory}: {_target_reason(error, directory)}")
    refusal = _refuses_writes(directory)
    if refusal is not None:
        return TargetError(f"cannot write to {directory}: {refusal} (SQLite: {error})")
    return BackupError(f"{journal} cannot be read: {error}")


def _is_full(error):
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & _PRIMARY_CODE == SQLITE_FULL


def _target_reason(error, directory):
    """Why the copy could not be written into *directory*, in the system's words when a
    write there fails now, else SQLite's."""
    refusal = _refuses_writes(directory)
    if _is_full(error):
        return f"its disk is full ({refusal or os.strerror(errno.ENOSPC)}; SQLite: {error})"
    return f"{refusal} (SQLite: {error})" if refusal else str(error)


def _refuses_writes(directory):
    """Why *directory* does not take a small file now (its disk full, read-only, failing), or
    ``None`` when it does."""
    try:
        descriptor, probe = tempfile.mkstemp(dir=directory, prefix=".", suffix=PARTIAL_SUFFIX)
    except OSError as error:
        return error.strerror
    try:
        os.write(descriptor, b"\0" * PROBE_BYTES)
        flush_to_disk(descriptor)
    except OSError as error:
        return error.strerror
    finally:
        os.close(descriptor)
        _remove(probe)
    return None


def _publish(partial, first, others, directory):
    """Give the finished copy *partial* the first free name of *first* and *others*; its
    path and size."""
    size = os.path.getsize(partial)
    target = first
    while True:
        try:
            _link(partial, target)
            break
        except FileExistsError:
            target = next(others, None)
            if target is None:
                raise TargetError(f"{first} exists already; it is not overwritten") from None
        except OSError as error:
            raise TargetError(f"cannot write {target}: {error.strerror}") from None
    try:
        sync_directory(directory)
    except OSError as error:
        raise TargetError(f"cannot write {target}: {error.strerror}") from None
    return target, size


def _link(partial, target):
    """Give *partial* the name *target* too, failing with FileExistsError if it is taken."""
    try:
        os.link(partial, target)
    except OSError as error:
        if error.errno not in NO_HARD_LINKS:
            raise
        # No hard links here: the name is taken exclusively first, then the copy renamed over
        # that empty file of its own. A moment long, the name is an empty file.
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.replace(partial, target)


def _umask():
    # Only read by setting it: set back at once (the command has one thread).
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_copy(path):
    """Remove an unfinished copy and what SQLite left beside it (a rollback journal)."""
    for suffix in ("",) + SIDE_FILES:
        _remove(path + suffix)


def _remove(path):
    # Cleaning up after another failure: one more (a disk now read-only) changes nothing of
    # what is said.
    try:
        os.unlink(path)
    except OSError:
        pass
