"""The alerts daemon: alerts in, target-of-opportunity orders out, with nobody in the loop.

An Alert order (from any program, ``toros alert``, or one of the daemon's own sources: GCN
Kafka, the VOEvent Transport Protocol, GCN Classic socket notices) is journaled by the front
desk before it is answered, like every order. A reader then reads it (milliseconds) and acts
on a duplicate or a retraction itself, so that a retraction waits for no skymap being fetched
or tiled; a worker localises and plans any other alert:

- **a duplicate** (an alert of the same event, type, serial and issue time already read, its
  order not failed) does nothing more; one that comes while the first is still handled waits
  for it to end, and is acted on if it failed;
- **a retraction** marks its event retracted, then cancels every order of the event at the
  scheduler (``Cancel`` by ``Group ID``, running ones included): no exposure of it starts
  afterwards. It does not wait for other work on the event (the deadline is
  ``Alerts → Retraction Deadline``); an alert of the event still being submitted checks for
  the retraction after each order and cancels again;
- **an alert issued before one of its event already acted on or ignored** (delivered late,
  or again by another source) does nothing more: the newer plan stands;
- **an alert that repeats one acted on**, once its skymap is had (the same event, type and
  skymap, and the same serial or none: an LVK alert from ``igwn.gwalert`` and as a VOEvent)
  does nothing more until the dawn of the last night the other planned; one whose linked
  skymap cannot be had is taken for such a repeat if an alert of the same event and type,
  its serial the same or none, was acted on (its map tried once, the alert done, not
  failed);
- **any other alert** is weighed by the policy (:mod:`.policy`), localised and turned into
  tonight's pick (:mod:`.response`). The orders are written to the events book
  (:mod:`.events`) *before* they are submitted; an update first cancels its event's orders not
  yet started (their IDs go into the new orders' ``Supersedes``), then asks the scheduler
  which of the others it has observed tonight or is observing: tonight's pick leaves their
  fields out. An update the policy ignores for what it says of its event
  (:func:`.policy.rules_out`) cancels those orders and submits none. Alerts are localised
  side by side (a skymap fetched slowly holds up no other alert), then planned one at a time
  for each event.

Cancelling an Alert order withdraws what it asked for: the orders it submitted are cancelled
at the scheduler, also those submitted after the Cancel came (it is checked before each), and
an alert cancelled while it is localised plans nothing. What a stop (or a kill) leaves
standing at the scheduler is withdrawn at the next start.

After a restart, an alert that was being handled is handled again: the orders it had planned
are submitted as planned (the scheduler takes each ID once), so nothing is lost or doubled.
"""

import dataclasses
import logging
import sqlite3
import threading
import time
import xmlrpc.client
from datetime import datetime, timezone

from ..client import connect, unavailable
from ..config import ConfigError
from ..handler import Handler, Workers
from ..journal import (ACCEPTED, CANCELLED as SCHEDULER_CANCELLED, DISPATCHED, DONE, FAILED,
                       FINAL_STATES, QUEUED, RUNNING)
from ..workorders import BINARY_ALERT_FORMATS, FaultCode, WorkOrderError
from . import report
from .event import alert_label
from .events import (CANCELLED, PLANNED, REFUSED, STANDING, SUBMITTED, SUPERSEDED, EventBook)
from .formats import AlertFormatError, is_trigger_number
from .formats.lvk_json import schema_warning
from .galaxies import CatalogError, GalaxyCatalog
from .intake import alert_of, alert_text
from .policy import issued_too_late
from .response import USER, assess, plan_orders
from .sources import make_sources
from .sources.kafka import CLIENT_ID_VARIABLE, CLIENT_SECRET_VARIABLE
from .sources.kafka import credentials as kafka_credentials
from .targets import Stopping, TargetError
from .telescope_check import TelescopeCheck

log = logging.getLogger(__name__)

#: Alerts read at once. Reading an alert takes milliseconds (5 ms for a 2 MB LVK alert), and a
#: retraction is acted on where it is read: it waits for no skymap being fetched or tiled. Two,
#: so that a retraction waiting for a scheduler that does not answer leaves one to read on.
ALERT_READERS = 2
#: Alerts localised and planned at once (a large map read and tiled).
ALERT_WORKERS = 4
#: Alerts that only link their skymap (an LVK VOEvent's), with no position to fall back on,
#: localised and planned at once, apart from the others: each may wait for GraceDB up to
#: Alerts → Skymap Download Timeout, and while it waits, an alert that carries its map or its
#: position (a JSON LVK alert, a GRB, a neutrino) is not queued behind it.
ALERT_FETCHERS = 4
#: The priority journaled with an Alert order: alerts are read as they arrive, so it only
#: orders them in the journal's reports.
ALERT_ORDER_PRIORITY = 10.0
#: An Alert order's messages while it is read, and while it is localised and planned (its
#: skymap read, its fields or galaxies chosen), and after a restart: how its history tells a
#: daemon stopped by the alert (its memory) from one stopped while it waited (see resume).
READING = "reading the alert"
LOCALISING = "localising it and planning its orders"
ALERTS_OWN_WORK = frozenset({READING, LOCALISING})
#: Its message once read, until a worker localises it.
TO_PLAN = "waiting for a worker to localise it"
REREAD = "to be read again after a restart"
#: The scheduler's states of an order of the event observed, or being observed: an update
#: leaves its field out of tonight's pick.
OBSERVED_STATES = frozenset(state.value for state in (DISPATCHED, RUNNING, DONE))


class AlertsHandler(Handler):
    """Read alerts, submit (or cancel) their events' Observation orders at the scheduler."""

    service = "alerts"
    wotypes = ("Alert", "Events")

    @classmethod
    def check_environment(cls, config):
        # Not found at the first connection: every reconnection would fail until restarted,
        # saying 'No provider for SASL mechanism GSSAPI', and no alert would ever come.
        kafka = config["Alerts"]["Kafka"]
        if kafka["Enabled"] and not all(kafka_credentials(kafka)):  # (unset, or empty)
            raise ConfigError(
                f"Alerts → Kafka → Enabled is true, but no client ID and secret are given: set "
                f"Alerts → Kafka → Client ID and Client Secret, or {CLIENT_ID_VARIABLE} and "
                f"{CLIENT_SECRET_VARIABLE} in the daemon's own environment (its systemd unit's "
                "or launchd plist's, not a shell's)")

    @classmethod
    def request_limit(cls, config):
        # An LVK alert with its skymap, in base64, is a few MB: more than any other order.
        server = config["Server"]["Max Request Bytes"]
        alerts = config["Alerts"]["Max Request Bytes"]
        if alerts > server:
            return alerts, "Alerts → Max Request Bytes"
        return server, "Server → Max Request Bytes"

    def __init__(self, config, journal, clock):
        super().__init__(config, journal, clock)
        self.settings = config["Alerts"]
        self.book = EventBook(journal.path)
        self.workers = Workers("alert", ALERT_WORKERS)
        self.readers = Workers("alert-read", ALERT_READERS, self.workers.stopping)
        self.fetchers = Workers("alert-fetch", ALERT_FETCHERS, self.workers.stopping)
        self.catalog = None
        self.catalog_problem = None
        self.sources = {}  # title of its section under Alerts → source
        self.telescope_check = TelescopeCheck(config, clock)
        self._event_locks = {}
        self._event_locks_lock = threading.Lock()
        self._received = {}  # alert order ID → monotonic time of arrival (retraction deadline)
        self._cancelled = set()  # alert orders cancelled while this process runs
        # Alert order ID → the orders of the same alert waiting for it to end (read again
        # then: acted on if it failed), and the lock that orders their waits and its end.
        self._waiting_copies = {}
        self._waiting_copies_lock = threading.Lock()
        self.drawn_maps = {}  # the reports' PNG maps, by (event, latest alert order)
        self.fetched_maps = {}  # skymaps of the alerts that link theirs, by alert order
        self.observed_weights = {}  # the reports' Observed, by (latest alert, fields taken)
        self._name_numbered_events()

    def _name_numbered_events(self):
        """Name the events an earlier version kept under a bare trigger number after their
        mission, as their alerts are read now (``1227767`` → ``Swift-1227767``): else the
        update or retraction of an event followed across an upgrade would be another event,
        and a retraction would cancel nothing. Each alert goes to its own name (a Swift and a
        Fermi trigger of one number were one event); an operator's retraction or skymap, or an
        alert that cannot be read again, follows them when they all went to one. Their orders
        keep their ``Group ID``, which a retraction cancels too (:meth:`_cancel_groups`)."""
        now = self.clock.now()
        for event_id in self.book.numbered_events():
            names, left = {}, []
            for row in self.book.alerts(event_id):
                named = self._name_now(row.order_id, now)
                if named is None or named == event_id:
                    left.append(row.order_id)
                else:
                    names[row.order_id] = named
            if not names:
                log.info("event %s keeps its bare number: none of its alerts is a mission's "
                         "(an operator's retraction or skymap, or one not read again)", event_id)
                continue
            if len(set(names.values())) == 1:
                names.update(dict.fromkeys(left, next(iter(names.values()))))
            elif left:
                log.warning("event %s: %d alert(s) keep the bare number: they name neither of "
                            "%s", event_id, len(left), " and ".join(sorted(set(names.values()))))
            try:
                for order_id, named in names.items():
                    self.book.rename_alert(order_id, named)
            except sqlite3.Error as error:  # a full disk, say: the daemon serves all the same
                log.warning("event %s could not be renamed now (%s); tried again at the next "
                            "start", event_id, error)
                return
            log.warning("event %s is now named %s, as its alerts are read now: a trigger number "
                        "is named after its mission", event_id,
                        " and ".join(sorted(set(names.values()))))

    def _name_now(self, order_id, now):
        """The event the alert of *order_id* is about, as it is read now; ``None`` for one named
        by whoever sent it (an operator's retraction or skymap) or not read again."""
        record = self.journal.get(order_id)
        if record is None or record.work_order["Format"] in ("retraction", "skymap"):
            return None
        try:
            return alert_of(record.work_order, now).event_id
        except AlertFormatError:
            return None

    # --- front desk ------------------------------------------------------------------------
    def check(self, order):
        if order["Format"] == "skymap" and not order.get("Event ID"):
            raise WorkOrderError("'Event ID' is required with Format 'skymap': a bare skymap "
                                 "does not say which event it locates")
        if order["Format"] == "retraction" and not order.get("Event ID"):
            raise WorkOrderError("'Event ID' is required with Format 'retraction': the event "
                                 "to stand down from")
        if order["Format"] == "retraction" and self.book.kind_of(order["Event ID"]) is None:
            # A mistyped name ("s2498") stood down an event of its own, while the real one
            # went on being observed: the operator was told it was done.
            raise WorkOrderError(f"'Event ID': received {order['Event ID']!r}; the alerts "
                                 "daemon has read no alert of this event, to stand down from"
                                 f"{self._event_hint(order['Event ID'])}")

    def _event_hint(self, event_id):
        """For an event ID naming no event: the events it may mean. A bare trigger number's
        carry their mission's name (see :func:`~torosmanager.alerts.formats.event_id`);
        another's, the same letters in another case, or a name close to it."""
        if not is_trigger_number(event_id):
            named = self.book.similar_events(str(event_id))
            return f"; did you mean {' or '.join(map(repr, named))}?" if named else ""
        named = self.book.named_after_missions(str(event_id))
        return ("; a trigger number is named after its mission" + (
            f": {', '.join(named)}" if named else ", as toros alerts lists events (Swift-1227767)"))

    def assign_priority(self, order):
        return ALERT_ORDER_PRIORITY, "alerts are read in the order they arrive"

    def queued_reason(self, order):
        return "queued to be read"

    def accepted(self, record):
        self._received[record.id] = time.monotonic()
        self.readers.submit(self.process, record.id)

    def cancelled(self, record, previous_state):
        # Cancelling an alert withdraws what it asked for, also what a worker is still
        # submitting (it asks _withdrawn before each order). One cancelled before a restart
        # is not read again.
        self._cancelled.add(record.id)
        self.workers.submit(self._withdraw, record.id)

    def shown(self, work_order):
        # The payload may be megabytes (a skymap): its size, not its content, in a Status.
        payload = work_order.get("Payload", "")
        return dict(work_order, Payload=f"({len(payload):,} characters: the alert as received, "
                                        "kept in the journal)")

    def signal(self, order):
        """Answer an Events query: every event's state, or one event's report."""
        event_id = order.get("Event ID")
        if event_id is None:
            return {"Events": report.events(self, order.get("Limit")),
                    "Total Events": self.book.event_count()}
        found = report.event_report(self, event_id)
        if found is None:
            raise WorkOrderError(f"'Event ID': received {event_id!r}; the alerts daemon has "
                                 f"read no alert of this event{self._event_hint(event_id)}",
                                 FaultCode.NOT_FOUND)
        return found

    def health(self):
        # Every Status without an ID asks: a count, not every alert read.
        return {"Events": self.book.event_count(),
                "Galaxy Catalog": self._catalog_health(),
                "Sources": {title: source.health() for title, source in self.sources.items()},
                "Telescope Check": self.telescope_check.describe()}

    def page_sections(self):
        return report.page_sections(self)

    def page_asset(self, path):
        return report.page_asset(self, path)

    # --- life cycle -------------------------------------------------------------------------
    def start(self):
        self._load_catalog()
        super().start()
        self._withdraw_cancelled()
        self.sources = make_sources(self.settings, self._deliver)
        for title, source in self.sources.items():
            source.start()
            log.info("listening for alerts: %s", title)
        self.telescope_check.start()

    def resume(self, record):
        if record.state == RUNNING and record.message in ALERTS_OWN_WORK:
            stops = 1 + self._stops_while_reading(record.id)
            limit = self.settings["Max Stops While Reading"]
            if stops >= limit:  # the alert itself may stop the daemon (memory): not again
                self.transition(record.id, FAILED, f"the alerts daemon stopped {stops} times "
                                f"while reading this alert (Alerts → Max Stops While Reading: "
                                f"{limit}); not read again, lest it stop the daemon again: "
                                "the daemon's log and the system's (an out-of-memory kill?) "
                                "say why")
                return
        if record.state in (ACCEPTED, QUEUED, RUNNING):
            self.transition(record.id, QUEUED, REREAD)
            self.readers.submit(self.process, record.id)

    def _stops_while_reading(self, order_id):
        """How many times the daemon stopped before while reading *order_id* (its history:
        :data:`READING` or :data:`LOCALISING` followed by :data:`REREAD`)."""
        history = self.journal.history(order_id)
        return sum(1 for before, after in zip(history, history[1:])
                   if before["Reason"] in ALERTS_OWN_WORK and after["Reason"] == REREAD)

    def stop(self):
        super().stop()
        self.telescope_check.stop()
        for source in self.sources.values():
            source.stop()
        self.readers.stop()
        self.workers.stop()
        self.fetchers.stop()
        self.book.close()

    def transition(self, order_id, state, reason, **options):
        """As :meth:`.Handler.transition`; an alert order that fails (an internal error too)
        also leaves its reason in the event's book, whose report then says failed."""
        changed = super().transition(order_id, state, reason, **options)
        if changed is not None and state == FAILED:
            self.book.note_problem(order_id, reason)
        if changed is not None and state in FINAL_STATES:
            with self._waiting_copies_lock:
                copies = self._waiting_copies.pop(order_id, [])
            for copy in copies:
                self.readers.submit(self.process, copy)
        return changed

    # --- one alert ----------------------------------------------------------------------------
    def process(self, order_id):
        """Read one queued alert order (in a reader): a duplicate or a retraction is done with
        here, any other alert handed to a worker (:meth:`act`), or to a fetcher if it only
        links its skymap."""
        with self.failing_on_error(order_id, "handling the alert"):
            self._process(order_id)

    def _process(self, order_id):
        received = self._received.pop(order_id, None)  # None: queued before a restart
        record = self.journal.get(order_id)
        if self.transition(order_id, RUNNING, READING, only_from={QUEUED}) is None:
            return  # cancelled meanwhile
        now = self.clock.now()
        try:
            alert = alert_of(record.work_order, now)
        except AlertFormatError as error:
            self.transition(order_id, FAILED, f"not a valid alert: {error}")
            return
        if record.work_order["Format"] == "retraction":  # an operator's: the event's kind
            alert = dataclasses.replace(alert, kind=self.book.kind_of(alert.event_id)
                                        or alert.kind)
        too_late = issued_too_late(alert, now, self.settings)
        if too_late:  # not in the event's book, where it would stand for its event
            self.transition(order_id, FAILED, f"{_name(alert)}: {too_late}")
            return
        misfit = schema_warning(alert)
        if misfit:
            log.warning("[WO %s] %s", order_id, misfit)
        self.book.record_alert(order_id, alert, record.created)
        duplicate = self._copy_before(order_id, alert)
        if duplicate is not None and self._waits_for(order_id, duplicate):
            return
        if duplicate is not None:
            message = (f"{_name(alert)} was read before (alert order {duplicate}): nothing "
                       "more to do")
            self.book.set_outcome(order_id, {"Summary": message, "Same As": duplicate})
            self._finish(order_id, message)
        elif alert.is_retraction:
            self._read(order_id, "cancelling its event's orders")
            self._retract(order_id, alert, received)
        else:
            self._read(order_id, TO_PLAN)
            pool = self.fetchers if alert.waits_for_its_map else self.workers
            pool.submit(self.act, order_id, alert)

    def _waits_for(self, order_id, earlier):
        """Whether alert order *order_id* waits for *earlier*, which carried the same alert
        and is still being handled: it is read again once *earlier* ends, and acted on if
        that failed. (Two brokers deliver an alert milliseconds apart; if the first's skymap
        could not be had, the second, taken for a duplicate, was lost with it.)"""
        with self._waiting_copies_lock:
            if self.journal.state_of(earlier) in FINAL_STATES:
                return False  # ended meanwhile: its outcome stands
            self.transition(order_id, QUEUED, f"waiting for alert order {earlier}, the same "
                            "alert, to end", only_from={RUNNING})
            self._waiting_copies.setdefault(earlier, []).append(order_id)
        return True

    def _copy_before(self, order_id, alert):
        """An earlier alert order that carried the same *alert* and has not failed (under way
        or done), or ``None``. One that failed (its skymap not fetched in time, say) does not
        count: the same alert sent again, by its broker or an operator, is acted on."""
        return next((earlier for earlier in self.book.copies_before(order_id, alert)
                     if self.journal.state_of(earlier) != FAILED), None)

    def act(self, order_id, alert):
        """Localise *alert*, read from alert order *order_id*, and submit its orders (in a
        worker). The policy and the skymap come first, then the event's alerts are handled
        one at a time: a skymap fetched slowly (a VOEvent's) holds up no other alert of its
        event, such as the same alert from igwn.gwalert, which carries its map."""
        with self.failing_on_error(order_id, "handling the alert"):
            if self.workers.stopping.is_set():
                return  # read again after the restart; waiting, it did not stop the daemon
            # The alert's own work again: a daemon stopped by the skymap (its memory) counts it.
            if self.transition(order_id, RUNNING, LOCALISING, only_from={RUNNING}) is None:
                return  # cancelled meanwhile
            planned_before = bool(self.book.orders(alert_order_id=order_id))  # a restart
            assessed = None
            # One passed over for an alert issued later (which stays so) needs no skymap.
            if not planned_before and self.book.issued_later(order_id, alert) is None:
                # A linked map is tried again while it cannot be had (announced a moment
                # before GraceDB serves it), unless the alert has a twin acted on already.
                retry = self._twin(order_id, alert) is None
                try:
                    assessed = assess(alert, self.config, self.workers.stopping, retry)
                except Stopping:
                    self._read(order_id, TO_PLAN)  # waiting, it did not stop the daemon
                    return
                except TargetError as error:
                    self._not_localised(order_id, alert, error)
                    return
                if alert.skymap_url is not None and assessed.skymap is not None:
                    report.keep_recent(self.fetched_maps, order_id, assessed.skymap)
            with self._event_lock(alert.event_id):
                if self.workers.stopping.is_set():
                    self._read(order_id, TO_PLAN)  # waiting, it did not stop the daemon
                    return
                if self._withdrawn(order_id):
                    return  # cancelled while its skymap was fetched: nothing planned
                later = self.book.issued_later(order_id, alert)
                if later is not None:
                    self._pass_over(order_id, alert, later)
                elif planned_before:
                    self._read(order_id, "submitting its orders to the scheduler")
                    self._submit_all(order_id, alert)
                elif self._plan(order_id, assessed):
                    self._submit_all(order_id, alert)

    def _twin(self, order_id, alert):
        """The row of an alert acted on, whose plan stands (its event not retracted), that
        *alert* (which links its skymap) may be the twin of: the same event and type, and
        the same serial or none, as an LVK alert from ``igwn.gwalert`` is to its VOEvent;
        ``None`` when there is none."""
        if alert.skymap_url is None or self.book.retracted(alert.event_id):
            return None
        return self.book.same_alert_acted_on(order_id, alert, None, self.clock.now())

    def _not_localised(self, order_id, alert, error):
        """*alert*'s localisation cannot be had (*error*): it fails, unless its twin (as
        :meth:`_twin` finds it once the event's alerts being planned are) was acted on: then
        the event is followed all the same, and the alert repeats its twin."""
        with self._event_lock(alert.event_id):
            twin = self._twin(order_id, alert)
        if twin is None:
            self.book.set_outcome(order_id, {"Problem": str(error)})
            self.transition(order_id, FAILED, f"{_name(alert)}: {error}")
            return
        message = (f"{_name(alert)}: {error}; {twin.name} (alert order {twin.order_id}), of "
                   "the same event and type, its serial the same or none, was acted on and "
                   "its plan stands; nothing submitted")
        self.book.set_outcome(order_id, {"Event": {"ID": alert.event_id,
                                                   "Alert Type": alert.alert_type},
                                         "Summary": message, "Problem": str(error),
                                         "Same As": twin.order_id})
        log.warning("[WO %s] %s", order_id, message)
        self._finish(order_id, message)

    def _read(self, order_id, next_step):
        """Say the alert is read: a stop from now on is not the alert's doing (the scheduler
        may be away), and does not count against it (see :meth:`resume`)."""
        self.transition(order_id, RUNNING, f"read; {next_step}", only_from={RUNNING})

    def _submit_all(self, order_id, alert):
        """Submit the orders planned for *alert*, then finish its alert order."""
        accepted = self._submit(order_id, alert.event_id)
        if accepted is None:
            return  # stopping: still running in the journal, resumed after the restart
        outcome = self.book.alerts(alert.event_id)
        summary = next(row.outcome.get("Summary", "") for row in outcome
                       if row.order_id == order_id)
        if self.book.retracted(alert.event_id):  # while they were submitted (see _submit)
            self._finish(order_id, f"{_name(alert)}: {summary}; its event was retracted "
                         "meanwhile: its orders are cancelled")
            return
        refused = self.book.orders(alert_order_id=order_id, states=(REFUSED,))
        if refused and not accepted:  # a setting the telescope cannot follow: said as a failure
            self.transition(order_id, FAILED, f"{_name(alert)}: {summary}; the scheduler "
                            f"refused all {len(refused)}: {refused[0].message}",
                            only_from={RUNNING})
            return
        self._finish(order_id, f"{_name(alert)}: {summary}; {accepted} accepted by the "
                     "scheduler")

    def _plan(self, order_id, assessed):
        """Work out the orders of an :func:`assess`-ed alert and keep them in the book, first
        stopping the event's orders not yet started; whether there are orders to submit
        (``False``: the alert is finished, or the daemon is stopping)."""
        alert = assessed.alert
        if self.book.retracted(alert.event_id):  # before, or while its skymap was fetched
            self._finish(order_id, f"{_name(alert)}: its event was retracted; nothing "
                         "submitted")
            return False
        if assessed.ignored:
            summary = assessed.summary()
            standing = (self.book.orders(event_id=alert.event_id, states=STANDING)
                        if assessed.event_ruled_out else [])
            if standing:
                # What the event's newest alert says rules it out: the plan of the earlier
                # ones is stood down (those already started finish).
                self._read(order_id, "cancelling its event's orders not yet started")
                replaced = self._supersede(alert.event_id, standing, order_id)
                if replaced is None:
                    return False  # stopping: read again after the restart
                summary += (f"; its event's {len(replaced)} earlier order(s) not yet started "
                            "are cancelled")
            self.book.set_outcome(order_id, dict(assessed.outcome(), Summary=summary))
            self._finish(order_id, f"{_name(alert)} {summary}")
            return False
        if assessed.skymap is not None and self._same_as_before(order_id, assessed):
            return False
        standing = self.book.orders(event_id=alert.event_id, states=STANDING)
        replaced, observed = [], []
        if standing:
            self._read(order_id, "asking the scheduler what it has started of its event")
            replaced = self._supersede(alert.event_id, standing, order_id)
            if replaced is None:
                return False  # stopping: read again after the restart
            # Asked once nothing more of the event can start: what is observed is known.
            observed = self._observed_tonight(alert.event_id)
            if observed is None:
                return False
            self.transition(order_id, RUNNING, LOCALISING, only_from={RUNNING})
        # Orders are named by event, alert and number: S230518h-2-07 is the seventh order of
        # the second alert read of S230518h (numbered on across its nights).
        number = next(position for position, row in
                      enumerate(self.book.alerts(alert.event_id), start=1)
                      if row.order_id == order_id)
        response = plan_orders(assessed, self.config, self.clock.now(), self.catalog,
                               id_prefix=f"{alert.event_id}-{number}", supersedes=replaced,
                               observed=observed)
        self.book.set_outcome(order_id, response.outcome())
        self._read(order_id, "submitting its orders to the scheduler")
        self.book.plan(order_id, alert.event_id, response.orders)
        log.info("[WO %s] %s: %s", order_id, _name(alert), response.summary())
        return True

    def _same_as_before(self, order_id, assessed):
        """Whether the alert repeats one acted on whose plan stands (the same LVK alert
        from another source, see :meth:`.EventBook.same_alert_acted_on`); if so it is finished,
        leaving that plan as it is."""
        alert, digest = assessed.alert, assessed.skymap.digest
        same = self.book.same_alert_acted_on(order_id, alert, digest, self.clock.now())
        if same is None:
            return False
        message = (f"{_name(alert)} repeats {same.name} (alert order {same.order_id}): the "
                   "same type and skymap, whose plan stands; nothing submitted")
        self.book.set_outcome(order_id, {"Event": assessed.event(), "Summary": message,
                                         "Skymap SHA-256": digest, "Same As": same.order_id})
        self._finish(order_id, message)
        return True

    def _observed_tonight(self, event_id):
        """The work orders of the event the scheduler has done tonight, or has started;
        ``None`` if the daemon is stopping first."""
        observed = []
        now = self.clock.now()
        for order in self.book.orders(event_id=event_id, states=(SUBMITTED,)):
            if order.night_over(now):
                continue
            state = self._state_at_scheduler(order.id)
            if state is None:
                return None
            if state in OBSERVED_STATES:
                observed.append(order.work_order)
        return observed

    def _submit(self, order_id, event_id):
        """Submit the alert's planned orders; the number the scheduler has (those submitted
        before a restart too), or ``None`` if stopping."""
        for planned in self.book.orders(alert_order_id=order_id, states=(PLANNED,)):
            if self.book.retracted(event_id) or self._withdrawn(order_id):
                break
            try:
                receipt = self._ask_scheduler(planned.work_order)
            except xmlrpc.client.Fault as refusal:
                log.warning("[WO %s] the scheduler refused %s: %s", order_id, planned.id,
                            refusal.faultString)
                self.book.mark([planned.id], REFUSED, refusal.faultString)
                continue
            if receipt is None:
                return None
            self.book.mark([planned.id], SUBMITTED,
                           f"{receipt.get('Status')}: {receipt.get('Message')}")
        if self.book.retracted(event_id):  # retracted while these were being submitted
            if self._cancel_event(event_id) is None:
                return None  # stopping: submitted again, and cancelled, after the restart
        elif self._withdrawn(order_id):
            self._withdraw(order_id)  # cancelled while these were being submitted
        return len(self.book.orders(alert_order_id=order_id, states=(SUBMITTED,)))

    def _withdrawn(self, order_id):
        """Whether alert order *order_id* has been cancelled (a Cancel withdraws what it
        asked for, :meth:`_withdraw`); asked before each order submitted, so kept in memory,
        not read from the journal with the alert's payload."""
        return order_id in self._cancelled

    def _supersede(self, event_id, standing, order_id):
        """Cancel the event's orders not yet started (*standing*, rows of the book; the running
        ones finish): the IDs of those replaced, or ``None`` if the daemon is stopping
        first."""
        answer = self._cancel_groups(event_id, keep_running=True)
        if answer is None:
            return None
        cancelled, kept = answer
        # Those left running, or ended meanwhile, stay submitted: the scheduler has their
        # state. One planned but never submitted is replaced all the same.
        replaced = [order.id for order in standing
                    if order.id in cancelled or order.state == PLANNED]
        self.book.mark(replaced, SUPERSEDED, f"cancelled: superseded by alert order {order_id}")
        log.info("[WO %s] %s: %d earlier order(s) cancelled, %d already started left running",
                 order_id, event_id, len(replaced), len(kept))
        return replaced

    def _pass_over(self, order_id, alert, later):
        """*alert* came after one of its event issued later (*later*, a row of the book):
        delivered late, or again from another source. Acting on it would replace the newer
        plan with an older one."""
        message = (f"{_name(alert)} was issued at {_utc(alert.issued)}, before "
                   f"{later.name} (alert order {later.order_id}, issued at "
                   f"{_utc(datetime.fromisoformat(later.issued))}), read already: the newer "
                   "plan stands; nothing submitted")
        self.book.set_outcome(order_id, {"Event": {"ID": alert.event_id,
                                                   "Alert Type": alert.alert_type},
                                         "Summary": message, "Issued Later": later.order_id})
        log.info("[WO %s] %s", order_id, message)
        self._finish(order_id, message)

    def _retract(self, order_id, alert, received):
        cancelled = self._cancel_event(alert.event_id)
        if cancelled is None:
            return  # stopping: read again after the restart
        elapsed = None if received is None else time.monotonic() - received
        took = "" if elapsed is None else f" {elapsed:.2f} s after it arrived"
        by = alert.properties.get("stood_down_by")
        by = "" if by is None else f" by {by} ({alert.properties['reason']})"
        message = (f"{_name(alert)}{by}: {cancelled} order(s) of the event cancelled at the "
                   f"scheduler{took}")
        deadline = self.settings["Retraction Deadline"]
        if elapsed is not None and elapsed > deadline:
            log.error("[WO %s] %s, over Alerts → Retraction Deadline (%g s)", order_id, message,
                      deadline)
        self.book.set_outcome(order_id, {"Event": {"ID": alert.event_id,
                                                   "Alert Type": alert.alert_type},
                                         "Summary": message, "Cancelled": cancelled})
        self._finish(order_id, message)

    def _cancel_event(self, event_id):
        """Cancel every order of *event_id* at the scheduler; the number cancelled there, or
        ``None`` if the daemon is stopping first."""
        answer = self._cancel_groups(event_id)
        if answer is None:
            return None
        cancelled = answer[0]
        # Cancelled already by this Cancel sent before a restart, its answer lost then.
        for order in self.book.orders(event_id=event_id, states=(SUBMITTED,)):
            if (order.id not in cancelled
                    and self._state_at_scheduler(order.id) == SCHEDULER_CANCELLED.value):
                cancelled.add(order.id)
        # Those the scheduler had finished (observed, or failed) keep their state there: a
        # retraction does not unobserve a field. One planned but never submitted is cancelled.
        standing = [order.id for order in self.book.orders(event_id=event_id, states=STANDING)
                    if order.id in cancelled or order.state == PLANNED]
        self.book.mark(standing, CANCELLED, "cancelled: the event was retracted")
        return len(cancelled)

    def _cancel_groups(self, event_id, keep_running=False):
        """Cancel the event's orders at the scheduler (with *keep_running*, those not yet
        started): by its ``Group ID``, and one by one those submitted under another, before
        the event was renamed (see :meth:`_name_numbered_events`; another event's orders may
        share that old group). ``(cancelled IDs, IDs left running)``, or ``None`` if the daemon
        is stopping first."""
        by_group = {"WOType": "Cancel", "Group ID": event_id, "User": USER}
        if keep_running:
            by_group["Keep Running"] = True
        answer = self._ask_scheduler(by_group)
        if answer is None:
            return None
        cancelled, kept = set(answer.get("Cancelled", [])), list(answer.get("Kept", []))
        for order in self.book.orders(event_id=event_id, states=(SUBMITTED,)):
            if order.work_order.get("Group ID", event_id) == event_id:
                continue
            state = self._state_at_scheduler(order.id)
            if state is None:
                return None
            if keep_running and state in (DISPATCHED, RUNNING):
                kept.append(order.id)
            elif state in (ACCEPTED, QUEUED, DISPATCHED, RUNNING):
                try:
                    if self._ask_scheduler({"WOType": "Cancel", "ID": order.id,
                                            "User": USER}) is None:
                        return None
                    cancelled.add(order.id)
                except xmlrpc.client.Fault as refusal:  # it ended meanwhile
                    log.info("%s: %s", order.id, refusal.faultString)
        return cancelled, kept

    def _withdraw(self, order_id):
        """An Alert order was cancelled: cancel the orders it had submitted, and those only
        planned (one may have reached the scheduler as the daemon was killed). When the
        daemon stops first, what is left is withdrawn at its next start
        (:meth:`_withdraw_cancelled`)."""
        for planned in self.book.orders(alert_order_id=order_id, states=STANDING):
            try:
                answer = self._ask_scheduler({"WOType": "Cancel", "ID": planned.id,
                                              "User": USER})
            except xmlrpc.client.Fault as refusal:
                if planned.state == SUBMITTED or refusal.faultCode != FaultCode.NOT_FOUND:
                    # Ended already (observed, failed): its state stays the scheduler's.
                    log.info("[WO %s] %s: %s", order_id, planned.id, refusal.faultString)
                    continue
                answer = {}  # planned only: it never reached the scheduler
            if answer is None:
                return  # stopping
            self.book.mark([planned.id], CANCELLED, "cancelled with its alert order")
        self.book.note_withdrawn(order_id)

    def _withdraw_cancelled(self):
        """Withdraw, in a worker, what alert orders cancelled before the last stop still have
        standing at the scheduler: the daemon stopped (or was killed) before it was done."""
        cancelled = self.journal.ids_in_state(SCHEDULER_CANCELLED)
        for alert_order_id in self.book.not_withdrawn() if cancelled else ():
            if alert_order_id in cancelled:
                log.info("[WO %s] withdrawing what the cancelled alert order still has "
                         "standing at the scheduler", alert_order_id)
                self._cancelled.add(alert_order_id)
                self.workers.submit(self._withdraw, alert_order_id)

    def _state_at_scheduler(self, order_id):
        """The state of *order_id* at the scheduler (its Status), ``""`` when the scheduler
        does not know it, or ``None`` when this daemon is stopping first."""
        try:
            answer = self._ask_scheduler({"WOType": "Status", "ID": order_id})
        except xmlrpc.client.Fault as refusal:  # not known there
            log.info("%s: %s", order_id, refusal.faultString)
            return ""
        return None if answer is None else answer.get("Status", "")

    def _ask_scheduler(self, order):
        """The scheduler's answer to *order*, trying again while it does not answer; ``None``
        when the daemon is stopping first. A refusal (Fault) is raised."""
        attempt = 0
        while not self.workers.stopping.is_set():
            attempt += 1
            try:
                return connect(self.config, "scheduler").front_desk(order)
            except (OSError, xmlrpc.client.ProtocolError, xmlrpc.client.Fault) as error:
                if isinstance(error, xmlrpc.client.Fault) and not unavailable(error):
                    raise  # a refusal
                # Nothing planned is dropped: keep trying, and say so now and then.
                if attempt & (attempt - 1) == 0:  # attempts 1, 2, 4, 8...: less often in time
                    log.warning("the scheduler %s (attempt %d): %s",
                                "cannot take it now" if unavailable(error) else "does not answer",
                                attempt, error)
                self.workers.stopping.wait(self.clock.real_seconds(
                    self.settings["Scheduler Retry Interval"]))
        return None

    def _finish(self, order_id, message):
        self.transition(order_id, DONE, message, only_from={RUNNING})

    def _event_lock(self, event_id):
        with self._event_locks_lock:
            return self._event_locks.setdefault(event_id, threading.Lock())

    # --- sources and catalogue -------------------------------------------------------------
    def _deliver(self, format_name, payload, origin):
        """Hand an alert from a source to the front desk, as any client would."""
        if isinstance(payload, bytes) and format_name not in BINARY_ALERT_FORMATS:
            payload = alert_text(payload)
        order = {"WOType": "Alert", "Format": format_name, "Payload": payload,
                 "Origin": origin, "User": origin.split(":")[0]}
        while True:
            try:
                receipt = self.desk.front_desk(order)
                break
            except xmlrpc.client.Fault as refusal:
                # The journal cannot keep it now (its disk full): the source holds the alert,
                # and what comes after it, until it can; a Kafka offset stays unstored.
                if not unavailable(refusal) or \
                        self.workers.stopping.wait(self.clock.real_seconds(
                            self.settings["Delivery Retry Interval"])):
                    raise
        log.info("[WO %s] alert from %s: %s", receipt["ID"], origin, receipt["Message"])

    def _load_catalog(self):
        settings = self.settings["Galaxy Catalog"]
        if settings["File"] is None:
            return
        started = time.monotonic()
        try:
            self.catalog = GalaxyCatalog.load(settings)
        except (CatalogError, OSError) as error:
            self.catalog_problem = str(error)
            log.error("the galaxy catalogue cannot be used; gravitational-wave maps will be "
                      "tiled: %s", error)
            return
        log.info("galaxy catalogue %s: %d galaxies loaded in %.1f s", settings["File"],
                 len(self.catalog), time.monotonic() - started)

    def _catalog_health(self):
        settings = self.settings["Galaxy Catalog"]
        if settings["File"] is None:
            return {"File": None, "Message": "not configured: maps are tiled"}
        if self.catalog is None:
            return {"File": settings["File"], "Message": self.catalog_problem or "loading"}
        return {"File": settings["File"], "Galaxies": len(self.catalog),
                "Luminosity Weight": settings["Luminosity Weight"]}


def _utc(instant):
    return f"{instant.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def _name(alert):
    """How an alert is named in messages: ``S230518h INITIAL #1``."""
    test = " (test)" if alert.test else ""
    return f"{alert.event_id} {alert_label(alert.alert_type, alert.serial)}{test}"
