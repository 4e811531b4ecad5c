"""One daemon per journal: a second daemon started on the same journal (two configurations
naming one ``Database → File``, a copy started by hand beside the service) refuses to start.

Two daemons on one journal would each take the other's running orders for interrupted ones,
and run them again at once: the scheduler dispatching an observation twice, the preprocessor
calibrating a night twice into the same files. The daemon holds an exclusive ``flock`` on
``<journal>.lock`` (a file of its own: SQLite's locks on the journal itself are another kind,
and are let go between transactions) for as long as it runs; the system lets it go when the
process ends, however it ends, so a daemon killed leaves nothing to clean up.
"""

import fcntl
import os


class JournalInUse(Exception):
    """Another process holds the journal."""


def lock_journal(database):
    """Hold *database*'s lock file; return its descriptor (close it to let go).

    Raises
    ------
    JournalInUse
        When another process holds it: the message names the process, if it wrote its PID.
    OSError
        When the lock file cannot be made.
    """
    path = f"{database}.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
        os.close(descriptor)
        raise JournalInUse(f"the journal {database} is in use by another daemon"
                           + (f" (pid {holder})" if holder.isdigit() else "")
                           + f": one daemon per journal ({path} is locked)") from None
    except BaseException:
        os.close(descriptor)
        raise
    try:  # for the message of a second daemon; the lock holds without it (a full disk)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError:
        pass
    return descriptor
