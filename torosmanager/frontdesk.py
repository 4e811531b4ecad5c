"""The front desk: what every daemon does with a work order before its own work begins.

Validate it, refuse it with a clear :class:`xmlrpc.client.Fault` or journal it, and answer with a
receipt, in milliseconds. ``Status`` and ``Cancel`` queries are answered here for every daemon.
What a daemon then does with the order is its :class:`~torosmanager.handler.Handler`'s business.
"""

import json
import logging
import time
from datetime import datetime, timezone
from xmlrpc.client import Fault

from . import __version__
from .config import address_key
from .journal import CANCELLED, FINAL_STATES, QUEUED, UNFINISHED_STATES, JournalUnwritable
from .logs import Outage
from .workorders import (QUERIES, SCHEMAS, FaultCode, WorkOrderError, clip, format_utc,
                         refuse, shorten, validate, wotype_of)

log = logging.getLogger(__name__)


class FrontDesk:
    """Receives work orders for one daemon.

    Parameters
    ----------
    handler : Handler
        The daemon's own logic (which WOTypes it takes, what it does with them).
    journal : Journal
        Where accepted orders and their states are kept.
    clock : Clock
        The time written to the journal.
    config : dict
        The loaded configuration (for the other daemons' addresses in messages).
    earth_rotation : EarthRotationTable
        The IERS table astropy uses here, whose age the health report states.
    """

    def __init__(self, handler, journal, clock, config, earth_rotation):
        self.handler = handler
        handler.desk = self  # a handler may take orders from sources of its own (alerts)
        self.earth_rotation = earth_rotation
        self.journal = journal
        self.clock = clock
        self.config = config
        self.started = time.monotonic()
        self.started_at = datetime.now(timezone.utc)
        # A full disk refuses every order until there is room: said once, and when it ends.
        self._journal_outage = Outage(log)

    def front_desk(self, work_order):
        """Submit a work order (a struct) to this daemon, or ask about one.

        Work orders ({"WOType": "Observation", ...}) are validated and kept, and a receipt
        struct is returned at once: ID, WOType, Status, Priority, Message. A work order the
        daemon cannot take raises a Fault that names the key, the value received and what is
        allowed. Queries: {"WOType": "Status", "ID": id} returns that order's state and history;
        {"WOType": "Status"} returns the daemon's health; {"WOType": "Cancel", "ID": id} cancels.
        """
        (answer,) = self.front_desks([work_order])
        if isinstance(answer, Fault):
            raise answer
        return answer

    def front_desks(self, work_orders):
        """Serve several work orders at once, as :meth:`front_desk` serves each: the new ones
        are journaled in one commit, and each answer is ready only after it.

        Returns
        -------
        list
            For each work order, in order, its answer or the :class:`~xmlrpc.client.Fault`
            that refuses it.
        """
        answers = [None] * len(work_orders)
        steps = {}
        waiting = {}  # index → its addition, for the coming commit

        def commit():
            while waiting:  # (each order waits for one commit at most)
                self.journal.commit(list(waiting.values()))
                committed = list(waiting)
                waiting.clear()
                for index in committed:
                    _advance(steps[index], index, answers, waiting)

        for index, work_order in enumerate(work_orders):
            if not self.serves_at_once(work_order):
                commit()  # a query sees the orders that came before it
            steps[index] = self._steps(work_order)
            _advance(steps[index], index, answers, waiting)
        commit()
        return answers

    def serves_at_once(self, work_order):
        """Whether *work_order* is one to journal (not a query): its answer takes no more than
        checks and a commit, which may be shared (see :meth:`front_desks`)."""
        if not isinstance(work_order, dict):
            return False
        wotype = work_order.get("WOType")
        return wotype in self.handler.wotypes and SCHEMAS[wotype].journaled

    def _steps(self, work_order):
        """Serve *work_order*: a generator that yields the journal addition it waits for, and
        returns the answer or raises the Fault that refuses the order."""
        try:
            return (yield from self._serve(work_order))
        except WorkOrderError as error:
            log.info("refused a work order: %s", error)
            raise Fault(int(error.code), str(error)) from None
        except JournalUnwritable as error:
            # The disk, not the order nor this software: said plainly, with no traceback,
            # and as a Fault a client may send again later.
            self._journal_outage.failed("refusing work orders: %s", error)
            raise Fault(int(FaultCode.UNAVAILABLE),
                        f"the {self.handler.service} daemon cannot keep work orders now: "
                        f"{error}; the order was not accepted: send it again later"
                        ) from None
        except Exception as error:
            log.exception("internal error while handling %s", shorten(work_order))
            raise Fault(int(FaultCode.INTERNAL),
                        f"internal error in the {self.handler.service} daemon "
                        f"({type(error).__name__}: {clip(str(error))}); its log has the "
                        "details") from None

    def _serve(self, work_order):
        if not isinstance(work_order, dict):
            raise WorkOrderError(f"a work order must be a struct (dict); received "
                                 f"{type(work_order).__name__} {shorten(work_order)}")
        wotype = wotype_of(work_order)
        if wotype not in self.handler.wotypes and wotype not in QUERIES:
            raise WorkOrderError(self._wrong_daemon(wotype), FaultCode.WRONG_DAEMON)
        order = validate(work_order, now=self.clock.now())
        if wotype == "Status":
            return self.status(order.get("ID"))
        if wotype == "Cancel":
            if "ID" in order and "Group ID" in order:
                raise WorkOrderError(f"'ID' and 'Group ID': received both, "
                                     f"{shorten(order['ID'])} and {shorten(order['Group ID'])}; "
                                     "allowed: one of them ('ID' cancels one order, 'Group ID' "
                                     "every order of a group)")
            if "ID" not in order:
                return self.cancel_group(order["Group ID"], order.get("User", "unknown"),
                                         order["Keep Running"])
            if order["Keep Running"]:
                raise refuse("Keep Running", True, "only with 'Group ID' (an order named by "
                             "its 'ID' is cancelled whether it has started or not)")
            return self.cancel(order["ID"], order.get("User", "unknown"))
        if not SCHEMAS[wotype].journaled:
            return self.handler.signal(order)
        return (yield from self._accept(order, work_order))

    def _resubmitted(self, record, submitted, received, order):
        if record.submitted != submitted:
            differing = _differing(record, received, order)
            if differing:
                raise WorkOrderError(_conflict(record, differing), FaultCode.CONFLICT)
        log.info("[WO %s] resubmitted unchanged", record.id)
        self.handler.resubmitted(record)
        record = self.journal.get(record.id)
        return self._receipt(record, f"already received at {record.created}; "
                                     f"now {record.state}: {record.message}")

    def _wrong_daemon(self, wotype):
        places = [f"the {service} daemon ({self.config[address_key(service)]['HTTP']})"
                  for service in SCHEMAS[wotype].services]
        return (f"'WOType': received {wotype!r}, which this {self.handler.service} daemon does "
                f"not take; send it to " + " or ".join(places) + "; this daemon takes: "
                + ", ".join(repr(name) for name in self.handler.wotypes + QUERIES))

    def _accept(self, order, received):
        """Journal a validated work order and hand it to the handler: a generator that yields
        the order's journal addition, and returns the receipt once it is committed."""
        submitted = _canonical(received)
        try:
            self.handler.check(order)
        except WorkOrderError:
            # A resubmission gets its receipt even when the daemon's own checks would refuse
            # it now (a filter removed, a night ended). Looked up only here: a new order costs
            # no extra journal read.
            existing = self.journal.get(order["ID"])
            if existing is None:
                raise
            return self._resubmitted(existing, submitted, received, order)
        priority, reason = self.handler.assign_priority(order)
        order["Priority"] = priority
        now = format_utc(self.clock.now())
        queued = self.handler.queued_reason(order)
        addition = self.journal.prepare(order, submitted, priority, reason, now,
                                        f"received from {order['User']}", queued)
        yield addition
        try:
            record, created = addition.result()
        except JournalUnwritable as error:
            done = self.handler.unrecorded(order)
            if done is None:
                raise
            raise JournalUnwritable(f"{error}; {done} all the same") from error
        self._journal_outage.answered("the journal %s takes work orders again",
                                      self.journal.path)
        self.handler.journal_waiting_ends()
        if not created:  # the same ID arrived meanwhile, or in the same commit
            return self._resubmitted(record, submitted, received, order)
        log.info("[WO %s] accepted %s from %s, priority %.2f (%s)%s", record.id, record.wotype,
                 order["User"], priority, reason, f" → {QUEUED}: {queued}" if queued else "")
        self.handler.accepted(record)
        if self.handler.accepting_changes_state:
            record = self.journal.get(record.id)
        return self._receipt(record, record.message)

    def status(self, order_id=None):
        """The state and history of one order, or, without *order_id*, the daemon's health."""
        if order_id is None:
            return self.health()
        record = self._find(order_id)
        answer = self._receipt(record, record.message)
        answer.update({
            "Priority Reason": record.priority_reason,
            "Work Order": _without_none(self.handler.shown(record.work_order)),
            # xmlrpc.client marshals no str subclass: each state as its plain value.
            "History": [dict(entry, Status=entry["Status"].value)
                        for entry in self.journal.history(record.id)],
            "Progress": record.progress,
            "Created": record.created,
            "Updated": record.updated,
        })
        return answer

    def cancel(self, order_id, user):
        """Cancel an order that has not ended; return its receipt."""
        record = self._find(order_id)
        if record.finished:
            raise WorkOrderError(f"'ID': received {shorten(order_id)}, an order that is already "
                                 f"{record.state} ({record.message}); only orders that have not "
                                 "ended can be cancelled", FaultCode.NOT_CANCELLABLE)
        reason = f"cancelled by {user}"
        if not self._cancel(record, reason):  # it ended while we looked
            record = self.journal.get(record.id)
            raise WorkOrderError(f"'ID': received {shorten(order_id)}, an order that has just ended "
                                 f"({record.state})", FaultCode.NOT_CANCELLABLE)
        return self._receipt(self.journal.get(record.id), reason)

    def cancel_group(self, group_id, user, keep_running=False):
        """Cancel every order of *group_id* that has not ended (with *keep_running*, only those
        not yet started); return what was cancelled and what was left."""
        cancelled, kept = [], []
        started = self.handler.started_states
        for record in self.journal.unfinished():
            if record.work_order.get("Group ID") != group_id:
                continue
            if keep_running and record.state in started:
                kept.append(record.id)
                continue
            try:
                if self._cancel(record, f"cancelled by {user} with its group {group_id}"):
                    cancelled.append(record.id)  # (one that ended meanwhile is left as it ended)
            except WorkOrderError:              # at a step that cannot be stopped
                kept.append(record.id)
        if cancelled or kept:
            message = (f"{len(cancelled)} order(s) of group {group_id} cancelled"
                       + (f"; {len(kept)} already started left running" if kept else ""))
        else:
            message = (f"nothing to cancel: no order of this daemon that has not ended has "
                       f"Group ID {group_id!r} (compared exactly, case included)")
        log.info("%s by %s", message, user)
        return {"WOType": "Cancel", "Group ID": group_id, "Status": "cancelled",
                "Cancelled": cancelled, "Kept": kept, "Message": message,
                "Service": self.handler.service}

    def _cancel(self, record, reason):
        """Mark *record* cancelled unless it has ended, and tell the handler; whether it was.

        Raises
        ------
        WorkOrderError
            The order is, as it is now, at a step its daemon does not stop
            (``handler.cancel_refusal``).
        """
        previous = self.journal.transition(record.id, CANCELLED, reason,
                                           format_utc(self.clock.now()),
                                           only_from=UNFINISHED_STATES,
                                           check=self._refuse_if_not_cancellable)
        if previous is None:
            return False
        log.info("[WO %s] %s (was %s)", record.id, reason, previous)
        self.handler.cancelled(record, previous)
        return True

    def _refuse_if_not_cancellable(self, record):
        """Raise the refusal of a Cancel of *record*, as it is now, if its daemon gives one."""
        refusal = self.handler.cancel_refusal(record)
        if refusal is not None:
            raise WorkOrderError(f"'ID': received {shorten(record.id)}, a {record.wotype} order "
                                 f"{record.state}, which cannot be cancelled: {refusal}",
                                 FaultCode.NOT_CANCELLABLE)

    def health(self):
        """The daemon's health: version, uptime, clock, Earth-rotation table, queue, devices."""
        counts = self.journal.counts()
        now = self.clock.now()
        active = sum(n for state, n in counts.items() if state not in FINAL_STATES)
        uptime = time.monotonic() - self.started
        return {
            "Service": self.handler.service,
            "Version": __version__,
            "Status": "running",
            "Message": f"{self.handler.service} daemon up {uptime:.0f} s, {active} order(s) "
                       "not ended",
            "Address": self.config[address_key(self.handler.service)]["HTTP"],
            "Started": format_utc(self.started_at),
            "Uptime": round(uptime, 3),
            "Clock": self.clock.describe(),
            "Now": format_utc(now),
            "Earth Rotation": self.earth_rotation.health(now),
            "Queue": {state.value: n for state, n in counts.items()},
            "Journal": {"File": self.journal.path,
                        "Free MB": round(self.journal.free_bytes() / 1e6, 1)},
            "Devices": self.handler.devices(),
            "Takes": list(self.handler.wotypes),
            **self.handler.health(),
        }

    def _find(self, order_id):
        record = self.journal.get(order_id)
        if record is None:
            raise WorkOrderError(f"'ID': received {shorten(order_id)}; the {self.handler.service} "
                                 "daemon has no work order with this ID", FaultCode.NOT_FOUND)
        return record

    def _receipt(self, record, message):
        return {
            "ID": record.id,
            "WOType": record.wotype,
            "Status": record.state.value,  # a plain str: xmlrpc.client marshals no subclass
            "Priority": record.priority,
            "Message": message,
            "Service": self.handler.service,
        }


def _advance(step, index, answers, waiting):
    """Run the generator *step* (a work order being served, see :meth:`FrontDesk._steps`) on
    to its next addition, put in *waiting* under *index*, or to its answer, put in *answers*."""
    try:
        waiting[index] = next(step)
    except StopIteration as stop:
        answers[index] = stop.value
    except Fault as fault:
        answers[index] = fault


def _canonical(order):
    """The order as received, without its ID, as comparable text."""
    content = {key: value for key, value in order.items() if key != "ID"}
    return json.dumps(content, sort_keys=True, default=str)


def _differing(record, received, order):
    """The keys whose values differ between the order *record* received and *received*
    (validated: *order*): the same text apart, a key set to None is one left out, 30 is 30.0,
    as every language's XML-RPC client may send it, and two spellings of one value are the
    same (``RA`` 23.1 and ``"01:32:24"``, a time with and without its ``Z``, ``Yes`` and
    true): the scheduler sends the telescope the order as it normalised it."""
    before = json.loads(record.submitted)
    now = json.loads(_canonical(received))
    return sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key)
                  and _normalised(record.work_order.get(key)) != _normalised(order.get(key)))


def _normalised(value):
    """A validated value as comparable text (a datetime and its ISO text alike)."""
    return json.dumps(value, sort_keys=True, default=str)


def _conflict(record, differing):
    return (f"'ID': received {shorten(record.id)}, already used on {record.created} for a different "
            f"work order (differing keys: {', '.join(repr(key) for key in differing)}); "
            "resubmit it unchanged, or use a new ID")


def _without_none(order):
    # XML-RPC has no null in its base standard: leave absent what is not set.
    return {key: value for key, value in order.items() if value is not None}
