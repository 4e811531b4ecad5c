"""The alerts daemon's book of events: each alert read, and the orders each one planned.

The journal keeps every Alert order as received and its state, like every daemon's. This book
keeps what the daemon made of it, in two tables of the same SQLite file (synchronous, WAL):

``alerts``
    one row per Alert order read: its event, type, serial, issue time, kind, whether it is a
    test, and the outcome (targets, coverage, or why it was ignored);
``event_orders``
    one row per Observation order an alert planned, with the work order itself, written
    *before* the order is sent to the scheduler, and its state here: ``planned`` (not yet
    accepted by the scheduler), ``submitted``, ``refused``, ``superseded`` (cancelled by a
    later alert of the event) or ``cancelled`` (by a retraction).

So a daemon stopped half-way through an event submits, after its restart, exactly the orders
it had planned (the scheduler takes a resubmitted order by its ID, once).

A row whose JSON cannot be read (edited by hand, or damaged on its disk) is left out of what
the book answers, and named once in the log: it must not stop every later alert of its event,
nor the report of every event. A retraction cancels the event's orders at the scheduler by its
group, whatever the book holds.
"""

import difflib
import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime

from ..journal import UnreadableRows, json_object
from ..workorders import format_utc
from .event import alert_label

log = logging.getLogger(__name__)

PLANNED = "planned"
SUBMITTED = "submitted"
REFUSED = "refused"
SUPERSEDED = "superseded"
CANCELLED = "cancelled"
#: Orders that still stand for their event (their fate is the scheduler's).
STANDING = (PLANNED, SUBMITTED)
#: Issue times this close are one alert's: a GCN notice's time has centiseconds on the
#: socket, whole seconds in its VOEvent (14:05:40.37 and 14:05:40).
SAME_ISSUE_SECONDS = 1.0
#: An event ID that names no event is compared with this many of the latest events, and the
#: closest names, at most this many, are offered (an operator's typo).
SIMILAR_AMONG = 1000
SIMILAR_SHOWN = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    order_id TEXT PRIMARY KEY,      -- the Alert work order's ID in the journal
    event_id TEXT NOT NULL,
    alert_type TEXT NOT NULL,
    serial INTEGER NOT NULL,
    issued TEXT NOT NULL,
    kind TEXT NOT NULL,
    test INTEGER NOT NULL,
    received TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT '{}'   -- JSON: Targets, Coverage, Ignored, ...
);
CREATE INDEX IF NOT EXISTS alerts_by_event ON alerts (event_id);
-- The latest events without reading every alert of years of them (50,000 alerts took 1.5 s
-- a status page).
CREATE INDEX IF NOT EXISTS alerts_by_received ON alerts (received);
CREATE TABLE IF NOT EXISTS event_orders (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    alert_order_id TEXT NOT NULL REFERENCES alerts (order_id),
    work_order TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS event_orders_by_event ON event_orders (event_id);
CREATE INDEX IF NOT EXISTS event_orders_by_alert ON event_orders (alert_order_id);
"""


@dataclass(frozen=True)
class AlertRow:
    """One alert read, as the book keeps it."""

    order_id: str
    event_id: str
    alert_type: str
    serial: int
    issued: str
    kind: str
    test: bool
    received: str
    outcome: dict

    @property
    def name(self):
        """How the alert is named in a list (:func:`~.event.alert_label`)."""
        return alert_label(self.alert_type, self.serial)


@dataclass(frozen=True)
class EventOrder:
    """One Observation order an alert planned."""

    id: str
    event_id: str
    alert_order_id: str
    work_order: dict
    state: str
    message: str

    def night_over(self, now):
        """Whether the night it is for has ended by *now*: its ``Not After``, that night's
        dawn, has passed (an order without one has no end)."""
        not_after = self.work_order.get("Not After")
        return not_after is not None and not_after <= format_utc(now)


class EventBook:
    """Alerts and the orders they planned, in SQLite.

    Parameters
    ----------
    path : str
        The SQLite file (the alerts daemon's journal file: one file to back up).
    """

    def __init__(self, path):
        self._lock = threading.Lock()
        self._unreadable = UnreadableRows(log, lambda key, error: (
            f"{path}: the alerts book's row of {key} cannot be read ({error}); it is left out"))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # macOS: a commit reaches the disk, not only the drive's cache (F_FULLFSYNC; a no-op
        # elsewhere). Without them a power cut could lose an order already acknowledged.
        self._db.execute("PRAGMA fullfsync=ON")
        self._db.execute("PRAGMA checkpoint_fullfsync=ON")
        self._db.executescript(_SCHEMA)

    def close(self):
        with self._lock:
            self._db.close()

    # --- alerts --------------------------------------------------------------------------
    def record_alert(self, order_id, alert, received):
        """Keep what alert order *order_id* is (idempotent: a resumed order keeps its row)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO alerts (order_id, event_id, alert_type, serial, issued, "
                "kind, test, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (order_id, alert.event_id, alert.alert_type, alert.serial,
                 alert.issued.isoformat(), alert.kind, int(alert.test), received))

    def copies_before(self, order_id, alert):
        """The IDs of the alert orders before *order_id* that carried the same alert (event,
        type, serial, and issue time within :data:`SAME_ISSUE_SECONDS`), the first first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT order_id, issued FROM alerts WHERE event_id = ? AND alert_type = ? AND "
                "serial = ? AND rowid < (SELECT rowid FROM alerts WHERE order_id = ?) "
                "ORDER BY rowid",
                (alert.event_id, alert.alert_type, alert.serial, order_id)).fetchall()
        return [row["order_id"] for row in rows
                if abs((datetime.fromisoformat(row["issued"]) - alert.issued).total_seconds())
                < SAME_ISSUE_SECONDS]

    def same_alert_acted_on(self, order_id, alert, skymap_digest, now):
        """The row of another alert acted on (read before alert order *order_id*, or after it
        but planned first: alerts are localised side by side, planned one at a time) that was
        the same alert by what it says, and whose plan still stands; ``None`` when there is
        none.

        The same alert: the same event and type, the same skymap (its
        :attr:`~.skymap.Skymap.digest`; ``None``: a map that could not be had, taken for
        the same), and the same serial or one of the two without a serial (0: an LVK JSON
        alert carries none). So an LVK alert from ``igwn.gwalert`` and as a VOEvent, which
        share no serial nor issue time, are one alert. Its plan stands until the dawn of the
        last night it planned (its outcome's ``Plan Ends``), *now* or later: a skymap given
        again once its nights are over is planned again.
        """
        for row in self.alerts(alert.event_id):
            if (row.order_id != order_id and row.alert_type == alert.alert_type
                    and "Skymap SHA-256" in row.outcome
                    and skymap_digest in (None, row.outcome["Skymap SHA-256"])
                    and (row.serial == alert.serial or 0 in (row.serial, alert.serial))
                    and row.outcome.get("Plan Ends", "") > format_utc(now)):
                return row
        return None

    def issued_later(self, order_id, alert):
        """The row of an alert of the same event, issued after *alert* (or at the same time
        with a higher serial), that was acted on or ignored by the policy: its plan is the
        newer one. ``None`` when there is none. Not counted: a retraction (it acts whenever it
        comes), and an alert that came to nothing of its own (one that failed, a skymap that
        could not be fetched, or is still being localised; one passed over, or repeating
        another): an alert is never passed over for one that has no plan."""
        def issue(row):
            return datetime.fromisoformat(row.issued), row.serial

        later = [row for row in self.alerts(alert.event_id)
                 if row.order_id != order_id and row.alert_type != "RETRACTION"
                 and ("Targets" in row.outcome or "Ignored" in row.outcome)
                 and issue(row) > (alert.issued, alert.serial)]
        return max(later, key=issue, default=None)

    def kind_of(self, event_id):
        """The kind of *event_id*, as its first alert read said; ``None`` for none read."""
        with self._lock:
            row = self._db.execute("SELECT kind FROM alerts WHERE event_id = ? ORDER BY "
                                   "received, rowid LIMIT 1", (event_id,)).fetchone()
        return None if row is None else row["kind"]

    def named_after_missions(self, trigger):
        """The events whose id is the bare trigger number *trigger* after a mission's name
        (``["Swift-1227767"]`` for ``"1227767"``): what an operator who gave the number alone
        may have meant."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT event_id FROM alerts WHERE event_id LIKE ? "
                                    "ORDER BY event_id", (f"%-{trigger}",)).fetchall()
        return [row["event_id"] for row in rows]

    def similar_events(self, event_id):
        """The events *event_id* may have been meant for: the same name in another case, else
        the closest names among the recent events (a letter or two off)."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT event_id FROM alerts WHERE "
                                    "lower(event_id) = lower(?)", (event_id,)).fetchall()
        if rows:
            return sorted(row["event_id"] for row in rows)
        return difflib.get_close_matches(event_id, self.recent_events(SIMILAR_AMONG),
                                         n=SIMILAR_SHOWN)

    def numbered_events(self):
        """The events whose id is a bare number: trigger numbers read before they were named
        after their missions (see :func:`~torosmanager.alerts.formats.event_id`), or an
        operator's retraction of a number."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT event_id FROM alerts "
                                    "WHERE event_id NOT GLOB '*[^0-9]*'").fetchall()
        return [row["event_id"] for row in rows]

    def rename_alert(self, order_id, event_id):
        """File the alert of *order_id*, and the orders it planned, under *event_id*, in one
        transaction.

        Parameters
        ----------
        order_id : str
            The Alert work order's ID.
        event_id : str
            The event's new name.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("UPDATE alerts SET event_id = ? WHERE order_id = ?",
                                 (event_id, order_id))
                self._db.execute("UPDATE event_orders SET event_id = ? WHERE alert_order_id = ?",
                                 (event_id, order_id))
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def retracted(self, event_id):
        """Whether a retraction of *event_id* has been read."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM alerts WHERE event_id = ? AND alert_type = "
                                   "'RETRACTION' LIMIT 1", (event_id,)).fetchone()
        return row is not None

    def set_outcome(self, order_id, outcome):
        """Keep what came of an alert (targets, coverage, or why it was ignored)."""
        with self._lock:
            self._db.execute("UPDATE alerts SET outcome = ? WHERE order_id = ?",
                             (json.dumps(outcome, default=str), order_id))

    def note_problem(self, order_id, problem):
        """Add *problem* to what came of an alert that failed, unless it says one already:
        the event's report then says it failed."""
        with self._lock:
            self._db.execute("UPDATE alerts SET outcome = json_set(outcome, '$.Problem', ?) "
                             "WHERE order_id = ? AND json_type(outcome, '$.Problem') IS NULL",
                             (problem, order_id))

    def note_withdrawn(self, order_id):
        """Note that alert order *order_id*, cancelled, has withdrawn its orders (cancelled
        at the scheduler, or found ended there, whose rows stay as they were)."""
        with self._lock:
            self._db.execute("UPDATE alerts SET outcome = json_set(outcome, '$.Withdrawn', "
                             "json('true')) WHERE order_id = ?", (order_id,))

    def not_withdrawn(self):
        """The alert orders with orders still standing here, not noted withdrawn
        (:meth:`note_withdrawn`)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT event_orders.alert_order_id FROM event_orders JOIN alerts ON "
                "alerts.order_id = event_orders.alert_order_id WHERE event_orders.state IN "
                f"({', '.join('?' for _ in STANDING)}) AND "
                "json_extract(alerts.outcome, '$.Withdrawn') IS NULL", STANDING).fetchall()
        return [row["alert_order_id"] for row in rows]

    def event_count(self):
        """How many events the alerts read are about."""
        with self._lock:
            return self._db.execute("SELECT COUNT(DISTINCT event_id) FROM alerts").fetchone()[0]

    def recent_events(self, limit=None):
        """The IDs of the events, the one whose latest alert came last first; only the first
        *limit* when given."""
        found = {}
        with self._lock:
            rows = self._db.execute("SELECT event_id FROM alerts "
                                    "ORDER BY received DESC, rowid DESC")
            for row in rows:  # newest first, a few alerts an event: stops early
                found.setdefault(row["event_id"], None)
                if len(found) == limit:
                    break
        return list(found)

    def alerts(self, event_id=None):
        """The alerts read, oldest first; only *event_id*'s when given."""
        query = "SELECT * FROM alerts" + (" WHERE event_id = ?" if event_id else "")
        with self._lock:
            rows = self._db.execute(query + " ORDER BY received, rowid",
                                    (event_id,) if event_id else ()).fetchall()
        return self._unreadable.read(rows, lambda row: AlertRow(
            row["order_id"], row["event_id"], row["alert_type"], row["serial"], row["issued"],
            row["kind"], bool(row["test"]), row["received"], json_object(row["outcome"])),
            "order_id")

    # --- the orders they planned ------------------------------------------------------------
    def plan(self, alert_order_id, event_id, work_orders):
        """Keep the Observation orders an alert is about to submit, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO event_orders (id, event_id, alert_order_id, "
                    "work_order, state, message) VALUES (?, ?, ?, ?, ?, ?)",
                    [(order["ID"], event_id, alert_order_id, json.dumps(order), PLANNED,
                      "planned") for order in work_orders])
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def orders(self, *, event_id=None, alert_order_id=None, states=None):
        """The planned orders of an event or of one alert, in the order planned."""
        clauses, values = [], []
        if event_id is not None:
            clauses.append("event_id = ?")
            values.append(event_id)
        if alert_order_id is not None:
            clauses.append("alert_order_id = ?")
            values.append(alert_order_id)
        if states is not None:
            clauses.append(f"state IN ({', '.join('?' for _ in states)})")
            values.extend(states)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM event_orders{where} ORDER BY rowid",
                                    values).fetchall()
        return self._unreadable.read(rows, lambda row: EventOrder(
            row["id"], row["event_id"], row["alert_order_id"], json_object(row["work_order"]),
            row["state"], row["message"]), "id")

    def mark(self, order_ids, state, message):
        """Set the state of planned orders here (what the scheduler made of them)."""
        with self._lock:
            self._db.executemany("UPDATE event_orders SET state = ?, message = ? WHERE id = ?",
                                 [(state, message, order_id) for order_id in order_ids])
