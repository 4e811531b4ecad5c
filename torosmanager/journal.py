"""The journal: every accepted work order and each change of its state, in SQLite.

Each daemon keeps its own journal file (``Database → File``). Writes are synchronous in WAL mode,
so an order whose receipt was sent survives ``kill -9`` and a power cut. New orders arriving
together share a commit and its fsync (:meth:`Journal.commit`).

States
------
accepted → queued → dispatched (scheduler) / running → done | failed | cancelled;
``interrupted`` marks work stopped from outside (weather, a target of opportunity) that may be
tried again. A state is an :class:`OrderState`, a ``str``: it equals, and is stored and
printed as, its value (``QUEUED == "queued"``).
"""

import enum
import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypeVar

from .disk_space import free_bytes, free_space_text
from .printable import printable
from .units import finite_float
from .workorders import shorten

log = logging.getLogger(__name__)
#: What :meth:`UnreadableRows.read` makes of each row.
_Made = TypeVar("_Made")

#: SQLite's primary result codes that mean the journal's file cannot be written now, however
#: good the data: SQLITE_READONLY (a file system remounted read-only after errors),
#: SQLITE_IOERR, SQLITE_FULL (its disk is full). Extended codes carry them in the low byte.
UNWRITABLE_CODES = frozenset({8, 10, 13})


def _unwritable(error: sqlite3.Error) -> bool:
    """Whether SQLite's *error* means the file cannot be written (:data:`UNWRITABLE_CODES`)."""
    code = getattr(error, "sqlite_errorcode", 0)  # (typeshed here does not know it)
    return code & 0xFF in UNWRITABLE_CODES


class JournalUnwritable(sqlite3.OperationalError):
    """The journal's file cannot be written now (its disk is full, read-only, failing); what
    was being written is rolled back. The message names the file and its disk's free space.

    Nothing is wrong with the order being written: the same write succeeds once there is
    room again.
    """


class DamagedRow(ValueError):
    """A row of the journal that cannot be read as an order: edited by hand, or damaged on
    its disk. The message names the order and, for each column that cannot be read, its value.

    A daemon's start repairs those of unfinished orders (:meth:`Journal.set_aside_damaged`);
    meanwhile the journal's lists leave such a row out, and reading it alone raises this.
    """

    def __init__(self, order_id: str, damage: dict[str, str]) -> None:
        super().__init__(f"order {order_id!r}: its journal row cannot be read: "
                         + "; ".join(damage.values()))
        self.order_id = order_id
        self.damage = damage


class OrderState(str, enum.Enum):
    """Where a work order stands.

    A ``str``, so that it compares equal to, hashes like and is written to SQLite as its
    value. It reads as its value in f-strings and logs too (``str()`` and ``format()``). One
    thing does not take it: :mod:`xmlrpc.client` marshals no subclass of ``str``, so an
    answer carries :attr:`value` (the front desk does this).
    """

    ACCEPTED = "accepted"
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    def __format__(self, format_spec: str) -> str:
        return format(self.value, format_spec)


# The states by their names, as importers have always used them.
ACCEPTED = OrderState.ACCEPTED
QUEUED = OrderState.QUEUED
DISPATCHED = OrderState.DISPATCHED
RUNNING = OrderState.RUNNING
INTERRUPTED = OrderState.INTERRUPTED
DONE = OrderState.DONE
FAILED = OrderState.FAILED
CANCELLED = OrderState.CANCELLED

#: States after which nothing more happens to an order.
FINAL_STATES = frozenset({DONE, FAILED, CANCELLED})
#: Every state, in the order an order usually passes through them.
STATES = tuple(OrderState)
#: States of an order that has not ended.
UNFINISHED_STATES = tuple(state for state in STATES if state not in FINAL_STATES)

#: 3: an order's texts (as received, and validated) are kept apart from its state, so that a
#: change of state does not rewrite them (2: each order has an integer key, which its history
#: refers to; 1: the order's ID).
SCHEMA_VERSION = 3
#: Orders whose messages :meth:`Journal.set_messages` changes in one commit. A flood's plan
#: tells thousands of orders why they wait (about 20 µs each): in one commit, every order
#: arriving meanwhile would wait for it (0.1 s for 5,000). A few milliseconds at a time, the
#: front desk's commits go in between.
MESSAGES_PER_COMMIT = 200
_ORDER_TEXTS = """
-- Each order's texts, written once. In the row of its state, every change of state rewrote
-- them: 0.7 s a change for an alert of 60 MB, the journal's lock held meanwhile.
CREATE TABLE IF NOT EXISTS order_texts (
    order_key INTEGER PRIMARY KEY REFERENCES orders (key),
    submitted TEXT NOT NULL,        -- the order as received, to recognise a resubmission
    work_order TEXT NOT NULL        -- the validated, normalised order (JSON)
);
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    wotype TEXT NOT NULL,
    priority REAL NOT NULL,
    priority_reason TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_state ON orders (state);
-- The status page's orders changed most recently, without sorting the whole journal (a
-- million orders, years of nights, took 2 s a page).
CREATE INDEX IF NOT EXISTS orders_by_updated ON orders (updated);
""" + _ORDER_TEXTS + """-- An order as one row, as read; one whose texts are missing (a hand, a disk) reads them as
-- NULL, which Journal.set_aside_damaged repairs.
CREATE VIEW IF NOT EXISTS order_rows AS
    SELECT orders.*, submitted, work_order FROM orders
    LEFT JOIN order_texts ON order_texts.order_key = orders.key;
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    order_key INTEGER NOT NULL REFERENCES orders (key),
    time TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_order ON history (order_key);
-- Rows of orders that could not be read, as they were found, before they were repaired
-- (Journal.set_aside_damaged): what a hand or a disk left is kept for whoever looks into it.
CREATE TABLE IF NOT EXISTS damaged_orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    found TEXT NOT NULL,
    damage TEXT NOT NULL,
    key INTEGER, id, wotype, submitted, work_order, priority, priority_reason, state, message,
    progress, created, updated
);
-- How many orders are in each state, kept by the database itself in every commit: a health
-- report reads a few rows, not the whole journal, however long the observatory has run.
CREATE TABLE IF NOT EXISTS state_counts (
    state TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS count_new_order AFTER INSERT ON orders BEGIN
    INSERT INTO state_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS count_new_state AFTER UPDATE OF state ON orders
WHEN OLD.state IS NOT NEW.state BEGIN
    UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO state_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
"""
#: The columns of ``order_rows``, which ``damaged_orders`` has too.
ORDER_COLUMNS = ("key, id, wotype, submitted, work_order, priority, priority_reason, state, "
                 "message, progress, created, updated")
#: The columns of ``order_texts`` (the others of ``order_rows`` are in ``orders``).
TEXT_COLUMNS = frozenset({"submitted", "work_order"})
#: A journal of schema 1 made one of schema 3, in one transaction. Its history was indexed by
#: order ID, so a new order's rows went to a random page of that index: a commit of ten new
#: orders took 1.0-1.2 ms, against 0.7-0.9 ms with the integer key (rows appended at the end).
_FROM_SCHEMA_1 = """
DROP TRIGGER IF EXISTS count_new_order;  -- (a journal from before the counts has none)
DROP TRIGGER IF EXISTS count_new_state;
DROP INDEX IF EXISTS orders_by_state;
DROP INDEX IF EXISTS history_by_order;
ALTER TABLE history RENAME TO history_1;
ALTER TABLE orders RENAME TO orders_1;
""" + _SCHEMA + """
INSERT INTO orders (id, wotype, priority, priority_reason, state, message, progress, created,
                    updated)
    SELECT id, wotype, priority, priority_reason, state, message, progress, created, updated
    FROM orders_1 ORDER BY rowid;
INSERT INTO order_texts (order_key, submitted, work_order)
    SELECT orders.key, orders_1.submitted, orders_1.work_order
    FROM orders_1 JOIN orders ON orders.id = orders_1.id;
INSERT INTO history (seq, order_key, time, state, reason)
    SELECT history_1.seq, orders.key, history_1.time, history_1.state, history_1.reason
    FROM history_1 JOIN orders ON orders.id = history_1.order_id ORDER BY history_1.seq;
DROP TABLE history_1;
DROP TABLE orders_1;
"""
#: A journal of schema 2 made one of schema 3, in one transaction: its orders' texts moved
#: out of their rows.
_FROM_SCHEMA_2 = _ORDER_TEXTS + """
INSERT INTO order_texts (order_key, submitted, work_order)
    SELECT key, submitted, work_order FROM orders ORDER BY key;
ALTER TABLE orders DROP COLUMN submitted;
ALTER TABLE orders DROP COLUMN work_order;
""" + _SCHEMA


@dataclass
class OrderRecord:
    """One journaled work order and where it stands."""

    id: str
    wotype: str
    #: The order as received, canonical JSON.
    submitted: str
    #: The validated, normalised order.
    work_order: dict[str, Any]
    priority: float
    priority_reason: str
    state: OrderState
    message: str
    #: ISO 8601 UTC, the daemon's clock.
    created: str
    updated: str
    #: What the daemon reports of the work under way (frames done, current step...).
    progress: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Whether the order has reached a final state."""
        return self.state in FINAL_STATES


class Journal:
    """The SQLite journal of one daemon; safe to share between threads.

    Parameters
    ----------
    path : str
        The database file; its directory is created if missing.
    """

    def __init__(self, path: str) -> None:
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        # New orders waiting for the next commit, and whether one is under way (see add).
        self._additions: list[Addition] = []
        self._additions_changed = threading.Condition()
        self._committing = False
        # One connection behind a lock: SQLite serialises writers anyway, and the front desk's
        # transactions are a few rows.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # macOS: a commit reaches the disk, not only the drive's cache (F_FULLFSYNC; a no-op
        # elsewhere). Without them a power cut could lose an order already acknowledged.
        self._db.execute("PRAGMA fullfsync=ON")
        self._db.execute("PRAGMA checkpoint_fullfsync=ON")
        self._db.execute("PRAGMA foreign_keys=ON")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{path}: journal schema version {version} is newer than this "
                               f"software's ({SCHEMA_VERSION}); upgrade TOROS Manager")
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(orders)")}
        schema = (_SCHEMA if not columns or "work_order" not in columns
                  else _FROM_SCHEMA_2 if "key" in columns else _FROM_SCHEMA_1)
        try:  # in one transaction (the daemon's lock keeps any other writer away meanwhile)
            self._db.executescript(f"BEGIN IMMEDIATE; {schema}; "
                                   f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
        except sqlite3.Error as error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            # A journal that has everything already opens all the same when it cannot be
            # written (its disk full): the daemon starts, refusing orders until there is
            # room (a dome daemon restarted after a crash must watch the weather).
            if not (_unwritable(error) and version == SCHEMA_VERSION
                    and self._has_tables(_SCHEMA)):
                raise
            log.warning("%s: opened as it is, since it cannot be written now (%s; %s): "
                        "orders are refused until it can", path, error,
                        free_space_text(path))
        if schema is not _SCHEMA:
            log.info("%s: the journal of schema %d converted to schema %d", path, version,
                     SCHEMA_VERSION)
        # Counted afresh at each opening, once (an index scan, about 0.1 ms per 1,000 orders):
        # a journal made before the counts starts right, and any drift ends with a restart.
        # The triggers keep them from then on, whichever program writes (so a journal that
        # cannot be written now keeps those they made).
        try:
            with self._transaction():
                self._db.execute("DELETE FROM state_counts")
                self._db.execute("INSERT INTO state_counts (state, n) "
                                 "SELECT state, COUNT(*) FROM orders GROUP BY state")
        except JournalUnwritable as error:
            log.warning("%s: the counts of orders by state are kept as they were: %s", path,
                        error)
        # The reads of many orders (a queue of thousands, read at each plan) go through a
        # connection of their own: in WAL mode a reader neither waits for the writer nor makes
        # it wait, so the front desk's commits go on meanwhile. It sees what has been
        # committed when its read begins.
        self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._reader.row_factory = sqlite3.Row
        self._reader.execute("PRAGMA query_only=ON")
        self._read_lock = threading.Lock()
        # The decoded work orders of the unfinished orders read so far, by ID: an order's work
        # order is written once, and the dispatcher reads the whole queue at every tick
        # (decoding 11,000 took 80 ms, the front desk's threads waiting meanwhile).
        self._work_orders: dict[str, dict[str, Any]] = {}
        # A row changed while the daemon runs must not stop its every plan or report.
        self._unreadable = UnreadableRows(log, lambda order_id, damaged: (
            f"{path}: {damaged}; left out until the daemon's next start repairs it"))

    def _has_tables(self, schema: str) -> bool:
        """Whether every table, index and trigger *schema* creates is in the file."""
        wanted = set(re.findall(r"CREATE (?:TABLE|INDEX|TRIGGER) IF NOT EXISTS (\w+)", schema))
        found = {row["name"] for row in self._db.execute("SELECT name FROM sqlite_master")}
        return wanted <= found

    def close(self) -> None:
        """Close the database, after a checkpoint that folds the WAL file in. One that cannot
        be made (the disk full) leaves the WAL file as it is: what it holds is committed, and
        the next opening reads it."""
        with self._lock, self._read_lock:
            self._reader.close()
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as error:
                log.warning("%s: its WAL file is left for the next opening to fold in: %s",
                            self.path, error)
            self._db.close()

    def add(self, work_order: dict[str, Any], submitted: str, priority: float,
            priority_reason: str, time: str, reason: str,
            queued: str | None = None) -> tuple["OrderRecord", bool]:
        """Journal a newly accepted order, unless its ID is known already.

        :meth:`prepare` then :meth:`commit`, for one order; the parameters are
        :meth:`prepare`'s.

        Returns
        -------
        (OrderRecord, bool)
            The journaled order, and whether this call created it (``False``: the ID existed,
            and the returned record is the earlier one).
        """
        addition = self.prepare(work_order, submitted, priority, priority_reason, time, reason,
                                queued)
        self.commit([addition])
        return addition.result()

    def prepare(self, work_order: dict[str, Any], submitted: str, priority: float,
                priority_reason: str, time: str, reason: str,
                queued: str | None = None) -> "Addition":
        """A newly accepted order, ready for :meth:`commit` (nothing is written yet).

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
        queued : str, optional
            When given, the order is also ``queued``, with this reason, in the same
            commit: its history shows both states, at *time*.
        """
        state, message = (QUEUED, queued) if queued is not None else (ACCEPTED, reason)
        # The record as written, neither read back nor decoded: the front desk's every new
        # order (the validated order holds only what JSON keeps as it is).
        record = OrderRecord(id=work_order["ID"], wotype=work_order["WOType"],
                             submitted=submitted, work_order=dict(work_order),
                             priority=priority, priority_reason=priority_reason, state=state,
                             message=message, created=time, updated=time)
        history = [(time, ACCEPTED, reason)]
        if queued is not None:
            history.append((time, QUEUED, queued))
        return Addition(record, json.dumps(work_order), history)

    def commit(self, additions: list["Addition"]) -> None:
        """Write *additions*, each unless its ID is known already; return once their commit
        has reached the disk, with each one's :meth:`Addition.result` set.

        Additions committed from several threads at once are written together, in one
        transaction and one fsync (group commit), and an order that cannot be written fails
        alone.
        """
        with self._additions_changed:
            self._additions.extend(additions)
            while self._committing and any(addition.outcome is None for addition in additions):
                self._additions_changed.wait()
            leading = any(addition.outcome is None for addition in additions)
            if leading:
                self._committing = True
        if leading:  # (its commit takes every addition waiting, these among them)
            try:
                self._commit_additions()
            finally:
                with self._additions_changed:
                    self._committing = False
                    self._additions_changed.notify_all()

    def _commit_additions(self) -> None:
        """Write every addition waiting (this thread's, and those that arrived while the
        previous commit went to the disk) in one transaction; then set each one's outcome.
        Not before the commit: a thread woken for another reason may look at its outcome at
        any moment, and must not answer before its order is on the disk."""
        outcomes: list[tuple[OrderRecord, bool] | BaseException]
        with self._lock:  # (taken first: orders arriving while it is waited for come too)
            with self._additions_changed:
                waiting, self._additions = self._additions, []
            try:
                outcomes = self._insert_all(waiting, self._insert)
            except Exception as error:  # noqa: BLE001 - one order could not be written
                if len(waiting) == 1:
                    outcomes = [error]
                else:  # again, each alone: only the one that cannot be written fails
                    try:
                        outcomes = self._insert_all(waiting, self._insert_alone)
                    except Exception as failure:  # noqa: BLE001 - the commit itself failed
                        outcomes = [failure] * len(waiting)
        for addition, outcome in zip(waiting, outcomes):
            addition.outcome = outcome

    def _insert_all(self, additions: list["Addition"],
                    insert: Callable[["Addition"], Any]) -> list[Any]:
        """Insert every addition with *insert* in one transaction (without a savepoint each,
        which would cost three statements an order); roll it back on an error."""
        try:
            with self._transaction():
                return [insert(addition) for addition in additions]
        except Exception:
            if self._db.in_transaction:  # a failed COMMIT may leave it open
                self._db.execute("ROLLBACK")
            raise

    def _insert_alone(self,
                      addition: "Addition") -> tuple["OrderRecord", bool] | BaseException:
        """Insert *addition* among others: an error undoes it alone, and is returned."""
        self._db.execute("SAVEPOINT addition")
        try:
            return self._insert(addition)
        except Exception as error:  # noqa: BLE001 - its own caller raises it
            self._db.execute("ROLLBACK TO addition")
            return error
        finally:
            self._db.execute("RELEASE addition")

    def _insert(self, addition: "Addition") -> tuple["OrderRecord", bool]:
        record = addition.record
        # A known ID is found by the insert itself: a new order, nearly every one, costs no
        # separate lookup.
        cursor = self._db.execute(
            "INSERT INTO orders (id, wotype, priority, priority_reason, state, message, created,"
            " updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (record.id, record.wotype, record.priority, record.priority_reason, record.state,
             record.message, record.created, record.updated))
        if not cursor.rowcount:
            existing = self.get(record.id)
            assert existing is not None  # (the conflict was on its ID)
            return existing, False
        self._db.execute("INSERT INTO order_texts (order_key, submitted, work_order) "
                         "VALUES (?, ?, ?)", (cursor.lastrowid, record.submitted,
                                              addition.encoded))
        self._db.executemany("INSERT INTO history (order_key, time, state, reason) "
                             "VALUES (?, ?, ?, ?)",
                             [(cursor.lastrowid, *entry) for entry in addition.history])
        return record, True

    def transition(self, order_id: str, state: OrderState | str, reason: str, time: str, *,
                   only_from: Iterable[str] | None = None,
                   progress: dict[str, Any] | None = None,
                   check: Callable[[OrderRecord], None] | None = None) -> OrderState | None:
        """Move an order to *state*, recording *reason* in its history.

        Parameters
        ----------
        state : OrderState or str
            The new state (a plain string is accepted when it is a state's value).
        time : str
            The clock's time, ISO 8601.
        only_from : iterable of OrderState or str, optional
            Apply the change only if the order is in one of these states now; this is how two
            threads (a worker and a Cancel) avoid overwriting each other.
        progress : dict, optional
            Replaces the order's progress report (frames done, current step...).
        check : callable, optional
            Called with the order's :class:`OrderRecord` as it is at the change, in the same
            transaction (a worker's progress cannot come between): what it raises leaves the
            order as it was and propagates. How a Cancel is refused at a step that cannot be
            stopped, decided on the step the order is at, not at an earlier reading.

        Returns
        -------
        OrderState or None
            The state the order was in before, or ``None`` when nothing was changed.

        Raises
        ------
        ValueError
            For a *state* that is not one of :class:`OrderState`.
        KeyError
            For an *order_id* the journal does not have.
        """
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        state = OrderState(state)
        reason = printable(reason)  # (it may quote a file name that is no UTF-8)
        with self._lock, self._transaction():
            row = self._db.execute("SELECT key, state FROM orders WHERE id = ?",
                                   (order_id,)).fetchone()
            if row is None:
                raise KeyError(order_id)
            previous = OrderState(row["state"])
            if only_from is not None and previous not in only_from:
                return None
            if check is not None:
                check(self._record(self._db.execute("SELECT * FROM order_rows WHERE id = ?",
                                                    (order_id,)).fetchone()))
            if progress is None:
                self._db.execute("UPDATE orders SET state = ?, message = ?, updated = ? "
                                 "WHERE id = ?", (state, reason, time, order_id))
            else:
                self._db.execute("UPDATE orders SET state = ?, message = ?, updated = ?, "
                                 "progress = ? WHERE id = ?",
                                 (state, reason, time, json.dumps(progress), order_id))
            self._db.execute("INSERT INTO history (order_key, time, state, reason) "
                             "VALUES (?, ?, ?, ?)", (row["key"], time, state, reason))
            if state in FINAL_STATES:
                self._work_orders.pop(order_id, None)
            return previous

    def set_messages(self, messages: Iterable[tuple[str, str, bool]], state: OrderState | str,
                     time: str) -> None:
        """Change the current messages of many orders in one commit (a plan's: each order's
        planned time, or why it cannot be observed).

        Parameters
        ----------
        messages : iterable of (str, str, bool)
            Order ID, its new message, and whether the message also enters the order's
            history (a new kind of message), or only replaces the current one (a planned time
            that moves a little at every plan).
        state : OrderState or str
            Only orders still in this state are changed: one cancelled or dispatched since
            keeps the message that says so.
        time : str
            The clock's time, ISO 8601.
        """
        messages = list(messages)
        for first in range(0, len(messages), MESSAGES_PER_COMMIT):
            chunk = messages[first:first + MESSAGES_PER_COMMIT]
            with self._lock, self._transaction():
                self._db.executemany("UPDATE orders SET message = ?, updated = ? "
                                     "WHERE id = ? AND state = ?",
                                     [(message, time, order_id, state)
                                      for order_id, message, _ in chunk])
                self._db.executemany("INSERT INTO history (order_key, time, state, reason) "
                                     "SELECT key, ?, state, message FROM orders "
                                     "WHERE id = ? AND state = ?",
                                     [(time, order_id, state)
                                      for order_id, _, recorded in chunk if recorded])

    def get(self, order_id: str) -> OrderRecord | None:
        """The :class:`OrderRecord` of *order_id*, or ``None``."""
        with self._lock:
            row = self._db.execute("SELECT * FROM order_rows WHERE id = ?",
                                   (order_id,)).fetchone()
        return None if row is None else self._record(row)

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """Every state an order has been in: a list of dicts with Time, Status (an
        :class:`OrderState`) and Reason."""
        with self._lock:
            rows = self._db.execute("SELECT time, history.state, reason FROM history "
                                    "JOIN orders ON orders.key = history.order_key "
                                    "WHERE orders.id = ? ORDER BY seq", (order_id,)).fetchall()
        # (a state that is none of ours, edited in by hand, is shown as it is)
        return [{"Time": row["time"], "Reason": row["reason"],
                 "Status": OrderState(row["state"]) if row["state"] in STATES else row["state"]}
                for row in rows]

    def unfinished(self) -> list[OrderRecord]:
        """Orders not in a final state, oldest first."""
        return self._records(self._unfinished_rows())

    def _unfinished_rows(self) -> list[sqlite3.Row]:
        marks = ", ".join("?" for _ in FINAL_STATES)
        with self._read_lock:
            return self._reader.execute(f"SELECT * FROM order_rows WHERE state NOT IN ({marks}) "
                                        "ORDER BY created, key",
                                        tuple(FINAL_STATES)).fetchall()

    def set_aside_damaged(self, time: str) -> list[str]:
        """Repair the rows of unfinished orders that cannot be read (:class:`DamagedRow`),
        each first copied as found into the table ``damaged_orders``; return their IDs.

        Such a row, edited by hand or damaged on its disk, would stop the daemon at every
        start. An order whose state, work order or priority cannot be read is failed, saying
        why; one whose progress report or order as submitted cannot be read gets an empty one
        and goes on. Each is logged as an error.

        Parameters
        ----------
        time : str
            The clock's time, ISO 8601: when they were found.
        """
        repaired = []
        for row in self._unfinished_rows():
            try:
                self._record(row)  # (which keeps its work order decoded for the queue's reads)
                json_object(row["submitted"])
            except (DamagedRow, TypeError, ValueError, RecursionError):
                self._repair(row, DamagedRow(row["id"], _damage(row)), time)
                repaired.append(row["id"])
        return repaired

    def _repair(self, row: sqlite3.Row, damaged: DamagedRow, time: str) -> None:
        """Keep *row* as found in ``damaged_orders``, then make it readable (see
        :meth:`set_aside_damaged`)."""
        fatal = damaged.damage.keys() & {"state", "work_order", "priority"}
        reason = f"{damaged}; kept as found in the journal's table damaged_orders"
        readable = {"work_order": json.dumps({"ID": row["id"], "WOType": row["wotype"]}),
                    "priority": 0.0, "progress": "{}", "submitted": "{}"}
        changes = {column: readable[column] for column in damaged.damage if column in readable}
        if fatal:
            changes.update(state=FAILED, message=reason, updated=time)
        with self._lock, self._transaction():
            self._db.execute(f"INSERT INTO damaged_orders (found, damage, {ORDER_COLUMNS}) "
                             f"SELECT ?, ?, {ORDER_COLUMNS} FROM order_rows WHERE key = ?",
                             (time, str(damaged), row["key"]))
            columns = {column: value for column, value in changes.items()
                       if column not in TEXT_COLUMNS}
            if columns:
                self._db.execute(f"UPDATE orders SET {', '.join(f'{c} = ?' for c in columns)} "
                                 "WHERE key = ?", (*columns.values(), row["key"]))
            texts = {column: changes.get(column, row[column]) for column in TEXT_COLUMNS}
            if texts != {column: row[column] for column in TEXT_COLUMNS}:
                # (an upsert: a row whose texts were lost has none to update)
                self._db.execute("INSERT INTO order_texts (order_key, submitted, work_order) "
                                 "VALUES (?, ?, ?) ON CONFLICT (order_key) DO UPDATE SET "
                                 "submitted = excluded.submitted, "
                                 "work_order = excluded.work_order",
                                 (row["key"], texts["submitted"], texts["work_order"]))
            if fatal:
                self._db.execute("INSERT INTO history (order_key, time, state, reason) "
                                 "VALUES (?, ?, ?, ?)", (row["key"], time, FAILED, reason))
        self._work_orders.pop(damaged.order_id, None)
        log.error("%s: %s", self.path, reason + (": the order is failed" if fatal else
                                                 ": emptied, the order goes on"))

    def in_states(self, states: Iterable[str], wotype: str | None = None,
                  min_priority: float | None = None,
                  progress: tuple[str, Any] | None = None) -> list[OrderRecord]:
        """Orders in one of *states* (of *wotype*, of at least *min_priority*, and whose
        progress holds the ``(key, value)`` *progress*, if given), oldest first: the few active
        or urgent ones without reading (and decoding) the whole queue, or the few done ones
        with something left to do."""
        values: tuple[Any, ...] = tuple(states)
        marks = ", ".join("?" for _ in values)
        query = f"SELECT * FROM order_rows WHERE state IN ({marks})"
        if wotype is not None:
            query += " AND wotype = ?"
            values += (wotype,)
        if min_priority is not None:
            query += " AND priority >= ?"
            values += (min_priority,)
        if progress is not None:
            # (CASE: a damaged progress, which json_extract would raise on, matches nothing)
            query += " AND CASE WHEN json_valid(progress) THEN json_extract(progress, ?) END = ?"
            values += (f'$."{progress[0]}"', progress[1])
        with self._read_lock:
            rows = self._reader.execute(query + " ORDER BY created, key", values).fetchall()
        return self._records(rows)

    def state_of(self, order_id: str) -> OrderState | None:
        """The state of *order_id*, or ``None`` (nothing else decoded: an alert's payload may
        be megabytes)."""
        with self._read_lock:
            row = self._reader.execute("SELECT state FROM orders WHERE id = ?",
                                       (order_id,)).fetchone()
        return None if row is None else OrderState(row["state"])

    def ids_in_state(self, state: str) -> set[str]:
        """The set of IDs of the orders in *state* (nothing decoded)."""
        with self._read_lock:
            rows = self._reader.execute("SELECT id FROM orders WHERE state = ?",
                                        (state,)).fetchall()
        return {row["id"] for row in rows}

    def recent(self, limit: int) -> list[OrderRecord]:
        """The *limit* orders changed most recently, newest first."""
        with self._read_lock:
            rows = self._reader.execute("SELECT * FROM order_rows ORDER BY updated DESC, key DESC "
                                        "LIMIT ?", (limit,)).fetchall()
        return self._records(rows)

    def newest_with(self, wotype: str, key: str, limit: int) -> list[OrderRecord]:
        """The *limit* orders of *wotype* whose work order holds *key*, the newest received
        first: what a daemon last did of one kind (the dome's last Shutter order), without
        reading its whole history."""
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT * FROM order_rows WHERE wotype = ? AND CASE WHEN json_valid(work_order) "
                "THEN json_type(work_order, ?) IS NOT NULL END ORDER BY key DESC LIMIT ?",
                (wotype, f'$."{key}"', limit)).fetchall()
        return self._records(rows)

    def counts(self) -> dict[OrderState, int]:
        """How many orders are in each state: a dict of state to count."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state, n FROM state_counts WHERE n > 0 ORDER BY state")
            # (orders in a state edited in by hand are left out until a start repairs them)
            return {OrderState(row["state"]): row["n"] for row in rows if row["state"] in STATES}

    def free_bytes(self) -> int:
        """Bytes free on the disk that holds the journal (for the health report)."""
        return free_bytes(os.path.dirname(os.path.abspath(self.path)))

    def _transaction(self) -> "_Transaction":
        return _Transaction(self)

    def _records(self, rows: list[sqlite3.Row]) -> list[OrderRecord]:
        """The records of *rows*, but those that cannot be read (see :class:`UnreadableRows`)."""
        return self._unreadable.read(rows, self._record, "id")

    def _record(self, row: sqlite3.Row) -> OrderRecord:
        """The :class:`OrderRecord` of *row*, its work order decoded once while the order is
        unfinished (each record gets a copy of its own); :class:`DamagedRow` if it cannot be
        read."""
        order_id = row["id"]
        try:
            state = OrderState(row["state"])
            if state in FINAL_STATES:
                self._work_orders.pop(order_id, None)
                work_order = json_object(row["work_order"])
            else:
                decoded = self._work_orders.get(order_id)
                if decoded is None:
                    decoded = self._work_orders[order_id] = json_object(row["work_order"])
                work_order = dict(decoded)
            progress = json_object(row["progress"])
            priority = finite_float(row["priority"])
            if priority is None:
                raise ValueError("a priority that is no finite number")
        except (TypeError, ValueError, RecursionError) as error:
            raise DamagedRow(order_id, _damage(row)) from error
        return OrderRecord(
            id=order_id, wotype=row["wotype"], submitted=row["submitted"],
            work_order=work_order, priority=priority,
            priority_reason=row["priority_reason"], state=state,
            message=row["message"], created=row["created"], updated=row["updated"],
            progress=progress)


class UnreadableRows:
    """Rows of a daemon's SQLite file that cannot be read (edited by hand, or damaged on its
    disk): each is left out of what is answered, and named once in the log.

    Parameters
    ----------
    logger : logging.Logger
    describe : callable
        ``describe(key, error)``: the log line for the row of *key* and what *make* raised.
    """

    def __init__(self, logger: logging.Logger,
                 describe: Callable[[Any, Exception], str]) -> None:
        self._logger = logger
        self._describe = describe
        self._named: set[Any] = set()

    def read(self, rows: Iterable[sqlite3.Row], make: Callable[[sqlite3.Row], _Made],
             key: str) -> list[_Made]:
        """``make(row)`` of each of *rows* but those for which it raises ``ValueError``
        (:class:`DamagedRow` is one), ``TypeError`` or ``RecursionError`` (a column's JSON,
        :func:`json_object`); each such row named once, by its column *key*."""
        made = []
        for row in rows:
            try:
                made.append(make(row))
            except (TypeError, ValueError, RecursionError) as error:
                if row[key] not in self._named:
                    self._named.add(row[key])
                    self._logger.error("%s", self._describe(row[key], error))
        return made


def json_object(text: Any) -> dict[str, Any]:
    """*text* (a column of a daemon's SQLite file) decoded as a JSON object; ``ValueError``,
    ``TypeError`` or ``RecursionError`` if it is none."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise TypeError(f"JSON {type(value).__name__}, not an object")
    return value


def _damage(row: sqlite3.Row) -> dict[str, str]:
    """What cannot be read in *row* of ``orders``: by column, a phrase naming its value."""
    damage = {}
    if row["state"] not in STATES:
        damage["state"] = f"state {shorten(row['state'])} is none of {', '.join(STATES)}"
    if finite_float(row["priority"]) is None:
        damage["priority"] = f"priority {shorten(row['priority'])} is not a finite number"
    for column in ("work_order", "progress", "submitted"):
        try:
            json_object(row[column])
        except (TypeError, ValueError, RecursionError) as error:
            damage[column] = f"{column} {shorten(row[column])} is not a JSON object ({error})"
    return damage


@dataclass
class Addition:
    """A new order waiting for its commit (:meth:`Journal.prepare`), and then the commit's
    outcome for it."""

    record: OrderRecord
    encoded: str
    #: (time, state, reason) of each history entry it starts with.
    history: list[tuple[str, OrderState, str]]
    #: The (record, created) pair, or the exception :meth:`result` raises.
    outcome: tuple[OrderRecord, bool] | BaseException | None = None

    def result(self) -> tuple[OrderRecord, bool]:
        """The journaled order and whether this addition created it (``False``: the ID
        existed, and the record is the earlier one); or raise the error that kept it out."""
        outcome = self.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None, "not committed yet"
        return outcome


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on an exception or a failed ``COMMIT``
    (which SQLite may leave open: every later write would then join a transaction never
    committed). An error that means the file cannot be written is raised as
    :class:`JournalUnwritable`."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._db = journal._db
        self._began = False

    def __enter__(self) -> "_Transaction":
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._began = True
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> Literal[False]:
        if self._began:
            try:
                self._db.execute("ROLLBACK" if kind else "COMMIT")
            except sqlite3.OperationalError as error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise self._named(error) from error
        if isinstance(value, sqlite3.OperationalError):
            named = self._named(value)
            if named is not value:
                raise named from value
        return False

    def _named(self, error: sqlite3.OperationalError) -> sqlite3.OperationalError:
        """*error* as a :class:`JournalUnwritable` when it means the file cannot be written."""
        if isinstance(error, JournalUnwritable) or not _unwritable(error):
            return error
        free = free_space_text(self._journal.path)
        return JournalUnwritable(f"the journal {self._journal.path} cannot be written "
                                 f"({error}; {free})")
