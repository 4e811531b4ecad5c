"""What the dome's safety guard last found, kept across a restart of the dome daemon.

``Dome → Reopen Delay`` (20 minutes by default) is the time conditions must have been good
before the dome may open. A guard remembering nothing of the process before it would make
every restart of the dome daemon (a configuration change, a package upgrade, a crash) cost
that long a wait on a clear night. So at each check the guard writes down whether conditions
were good and for how long, in one row of a table of the dome's journal file; a new guard
reads it at its start (:meth:`SafetyMemory.recall`) and decides whether to carry it on
(:class:`~torosmanager.dome.safety.SafetyGuard`).

Losing the row only ever costs the wait: it is written without waiting for the disk.
"""

import logging
import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from ..workorders import format_utc

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS safety_memory (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    checked TEXT NOT NULL,   -- when the guard last checked (UTC, ISO 8601)
    good_for REAL            -- for how long conditions had then been good, s; NULL: bad
)
"""


@dataclass(frozen=True)
class LastCheck:
    """The guard's last check before the restart.

    Attributes
    ----------
    checked : datetime
        When it was made (timezone-aware UTC).
    good_for : float or None
        Seconds the conditions had then been good, on the clock that setting the system clock
        does not move; ``None`` if they were bad.
    """

    checked: datetime
    good_for: float | None


class SafetyMemory:
    """The guard's last check, in table ``safety_memory`` of the SQLite file *path* (the dome's
    journal)."""

    def __init__(self, path):
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # Each check rewrites one row: no wait for the disk (in WAL mode the row is on it at
        # the next checkpoint); a row lost to a power cut only means waiting Reopen Delay.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def remember(self, checked, good_for):
        """Write down a check made at *checked*: conditions good for *good_for* seconds, or
        bad (``None``)."""
        self._db.execute("INSERT OR REPLACE INTO safety_memory (only_row, checked, good_for) "
                         "VALUES (1, ?, ?)", (format_utc(checked), good_for))

    def recall(self):
        """The last check written down, as a :class:`LastCheck`; ``None`` if there is none or
        it cannot be read (said in the log)."""
        row = self._db.execute("SELECT checked, good_for FROM safety_memory").fetchone()
        if row is None:
            return None
        checked, good_for = row
        try:
            when = datetime.fromisoformat(checked.replace("Z", "+00:00"))
            if when.utcoffset() is None:
                raise ValueError("no time zone")
            if good_for is not None and not (isinstance(good_for, float)
                                             and math.isfinite(good_for) and good_for >= 0):
                raise ValueError(f"good_for {good_for!r} is not a number of seconds")
        except (AttributeError, ValueError) as error:
            log.warning("%s: the safety guard's last check cannot be read (%r, %r: %s); "
                        "conditions count as good only from now", self.path, checked,
                        good_for, error)
            return None
        return LastCheck(when, good_for)

    def close(self):
        self._db.close()
