"""The journal: every accepted work order and each change of its state, in SQLite.

Each daemon keeps its own journal file (``Database → File``). Writes are synchronous in WAL mode,
so an order whose receipt was sent survives ``kill -9`` and a power cut.

States
------
accepted → queued → dispatched (scheduler) / running → done | failed | cancelled;
``interrupted`` marks work stopped from outside (weather, a target of opportunity) that may be
tried again.
"""

import contextlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass, field

ACCEPTED = "accepted"
QUEUED = "queued"
DISPATCHED = "dispatched"
RUNNING = "running"
INTERRUPTED = "interrupted"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"

#: States after which nothing more happens to an order.
FINAL_STATES = frozenset({DONE, FAILED, CANCELLED})
#: Every state, in the order an order usually passes through them.
STATES = (ACCEPTED, QUEUED, DISPATCHED, RUNNING, INTERRUPTED, DONE, FAILED, CANCELLED)
#: States of an order that has not ended.
UNFINISHED_STATES = tuple(state for state in STATES if state not in FINAL_STATES)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    wotype TEXT NOT NULL,
    submitted TEXT NOT NULL,        -- the order as received, to recognise a resubmission
    work_order TEXT NOT NULL,       -- the validated, normalised order (JSON)
    priority REAL NOT NULL,
    priority_reason TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_state ON orders (state);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL REFERENCES orders (id),
    time TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_order ON history (order_id);
"""


@dataclass
class OrderRecord:
    """One journaled work order and where it stands."""

    id: str
    wotype: str
    submitted: str
    work_order: dict
    priority: float
    priority_reason: str
    state: str
    message: str
    created: str
    updated: str
    progress: dict = field(default_factory=dict)

    @property
    def finished(self):
        """Whether the order has reached a final state."""
        return self.state in FINAL_STATES


class Journal:
    """The SQLite journal of one daemon; safe to share between threads.

    Parameters
    ----------
    path : str
        The database file; its directory is created if missing.
    """

    def __init__(self, path):
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        # One connection behind a lock: SQLite serialises writers anyway, and the front desk's
        # transactions are a few rows.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{path}: journal schema version {version} is newer than this "
                               f"software's ({SCHEMA_VERSION}); upgrade TOROS Manager")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self):
        """Close the database (after a checkpoint, so the WAL file is folded in)."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    def add(self, work_order, submitted, priority, priority_reason, time, reason):
        """Journal a newly accepted order, unless its ID is known already.

        Parameters
        ----------
        work_order : dict
            The validated order; its ``ID`` is the key.
        submitted : str
            The order as received, in canonical JSON.
        priority : float
            The priority assigned, with *priority_reason* saying why.
        time : str
            The clock's time, ISO 8601.
        reason : str
            Recorded with the ``accepted`` state.

        Returns
        -------
        (OrderRecord, bool)
            The journaled order, and whether this call created it (``False``: the ID existed,
            and the returned record is the earlier one).
        """
        order_id = work_order["ID"]
        with self._lock, self._transaction():
            existing = self.get(order_id)
            if existing is not None:
                return existing, False
            self._db.execute(
                "INSERT INTO orders (id, wotype, submitted, work_order, priority, priority_reason,"
                " state, message, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (order_id, work_order["WOType"], submitted, json.dumps(work_order), priority,
                 priority_reason, ACCEPTED, reason, time, time))
            self._db.execute("INSERT INTO history (order_id, time, state, reason) "
                             "VALUES (?, ?, ?, ?)", (order_id, time, ACCEPTED, reason))
            return self.get(order_id), True

    def transition(self, order_id, state, reason, time, *, only_from=None, progress=None):
        """Move an order to *state*, recording *reason* in its history.

        Parameters
        ----------
        only_from : iterable of str, optional
            Apply the change only if the order is in one of these states now; this is how two
            threads (a worker and a Cancel) avoid overwriting each other.
        progress : dict, optional
            Replaces the order's progress report (frames done, current step...).

        Returns
        -------
        str or None
            The state the order was in before, or ``None`` when nothing was changed.
        """
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        with self._lock, self._transaction():
            row = self._db.execute("SELECT state FROM orders WHERE id = ?", (order_id,)).fetchone()
            if row is None:
                raise KeyError(order_id)
            previous = row["state"]
            if only_from is not None and previous not in only_from:
                return None
            if progress is None:
                self._db.execute("UPDATE orders SET state = ?, message = ?, updated = ? "
                                 "WHERE id = ?", (state, reason, time, order_id))
            else:
                self._db.execute("UPDATE orders SET state = ?, message = ?, updated = ?, "
                                 "progress = ? WHERE id = ?",
                                 (state, reason, time, json.dumps(progress), order_id))
            self._db.execute("INSERT INTO history (order_id, time, state, reason) "
                             "VALUES (?, ?, ?, ?)", (order_id, time, state, reason))
            return previous

    def set_message(self, order_id, message, time):
        """Change an order's current message without a history entry (e.g. a planned time
        that moves a little at every plan)."""
        with self._lock, self._transaction():
            self._db.execute("UPDATE orders SET message = ?, updated = ? WHERE id = ?",
                             (message, time, order_id))

    def get(self, order_id):
        """The :class:`OrderRecord` of *order_id*, or ``None``."""
        with self._lock:
            row = self._db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        return None if row is None else _record(row)

    def history(self, order_id):
        """Every state an order has been in: a list of dicts with Time, Status and Reason."""
        with self._lock:
            rows = self._db.execute("SELECT time, state, reason FROM history WHERE order_id = ? "
                                    "ORDER BY seq", (order_id,)).fetchall()
        return [{"Time": row["time"], "Status": row["state"], "Reason": row["reason"]}
                for row in rows]

    def unfinished(self):
        """Orders not in a final state, oldest first."""
        marks = ", ".join("?" for _ in FINAL_STATES)
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM orders WHERE state NOT IN ({marks}) "
                                    "ORDER BY created, rowid", tuple(FINAL_STATES)).fetchall()
        return [_record(row) for row in rows]

    def in_states(self, states, wotype=None):
        """Orders in one of *states* (of *wotype*, if given), oldest first: the few active
        ones without reading (and decoding) the whole queue."""
        states = tuple(states)
        marks = ", ".join("?" for _ in states)
        query = f"SELECT * FROM orders WHERE state IN ({marks})"
        if wotype is not None:
            query += " AND wotype = ?"
            states += (wotype,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created, rowid", states).fetchall()
        return [_record(row) for row in rows]

    def ids_in_state(self, state):
        """The set of IDs of the orders in *state* (nothing decoded)."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM orders WHERE state = ?", (state,)).fetchall()
        return {row["id"] for row in rows}

    @contextlib.contextmanager
    def batch(self):
        """One transaction for the writes made inside it (from this thread): one commit, one
        fsync, for many small changes such as a plan's messages. Other threads wait."""
        with self._lock, self._transaction():
            yield self

    def recent(self, limit):
        """The *limit* orders changed most recently, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM orders ORDER BY updated DESC, rowid DESC "
                                    "LIMIT ?", (limit,)).fetchall()
        return [_record(row) for row in rows]

    def counts(self):
        """How many orders are in each state: a dict of state to count."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) AS n FROM orders GROUP BY state")
            return {row["state"]: row["n"] for row in rows}

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on an exception."""

    def __init__(self, db):
        self._db = db
        self._began = False

    def __enter__(self):
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._began = True
        return self

    def __exit__(self, kind, value, traceback):
        if self._began:
            self._db.execute("ROLLBACK" if kind else "COMMIT")
        return False


def _record(row):
    return OrderRecord(
        id=row["id"], wotype=row["wotype"], submitted=row["submitted"],
        work_order=json.loads(row["work_order"]), priority=row["priority"],
        priority_reason=row["priority_reason"], state=row["state"], message=row["message"],
        created=row["created"], updated=row["updated"], progress=json.loads(row["progress"]))
