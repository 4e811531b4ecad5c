"""The scheduler's night: plan, dispatch at the planned time, follow, retry, open and close.

One thread does it all, a tick at a time (every ``Follow Interval``, or at once when an order
arrives or is cancelled):

1. the dome: the :class:`~torosmanager.scheduler.dome_keeper.DomeKeeper` asks how it is, and
   (``Manage Dome``) asks it to open when it is dark (Sun below ``Sun Altitude``) and the dome
   allows it, to close and park, with the telescope, when it is not; observations are sent
   only while it is open;
2. follow every dispatched order with Status queries until it ends; an interrupted or failed
   observation goes back into the queue until ``Max Retries`` is spent, tried again after
   ``Retry Delay``, doubled at each try up to ``Max Retry Delay`` (an interruption the
   telescope says was not the order's doing, ``Interrupted By``, does not count and waits for
   nothing: a target of opportunity, the dome closing, a stop of the telescope daemon; nor
   does one at dawn),
   then fails, its frames to analyse (``Output: Analysis``) handed to the preprocessor all
   the same (:mod:`torosmanager.hand_offs`); one that makes no progress for ``Stall
   Timeout`` (and one exposure's time: a frame being exposed reports nothing until it is read
   out) is
   stopped and retried; an order dispatched and not yet running, or interrupted by a target of
   opportunity and not yet shown so, is followed every ``Dispatched Follow Interval``; a done
   observation whose frames the telescope has yet to hand to the preprocessor is followed
   until it has;
3. expire queued orders whose ``Not After`` has passed (the frames of one tried before are
   handed to the preprocessor as those of a failed one);
4. plan the queued observations (when prompted, or every ``Replan Interval``; a queue of
   ``Planning Process From`` orders or more in a child process, see
   :mod:`.planning_process`), and show each its planned time or the reason it cannot be
   observed;
5. dispatch the first planned observation when its slew should begin, one at a time; a target of
   opportunity observable now is dispatched at once and the telescope interrupts what it does.

Everything it knows is in the journal, so a restart loses nothing.
"""

import collections
import json
import logging
import re
import threading
import time
import xmlrpc.client
from datetime import timedelta

from ..client import connect, status_of, unavailable
from ..journal import (CANCELLED, DISPATCHED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING,
                       JournalUnwritable)
from ..logs import Outage, SaidOnChange
from ..hand_offs import HAND_OFF, PENDING, PendingHandOffs
from ..workorders import format_utc, parse_utc
from .dome_keeper import KEEPER, DomeKeeper
from .peer_clocks import PeerClocks
from .plan_command import as_dict
from .planner import Constraints, Planner, target_of
from .planning_process import PlanningProcess, PlanningStopped

log = logging.getLogger(__name__)

_NUMBERS = re.compile(r"[-+]?\d+(?:[.:]\d+)*")

#: The progress entry of an order tried again after a failure: not before then (ISO 8601).
RETRY_AFTER = "Retry After"
#: The executor of each WOType the scheduler takes.
EXECUTOR = {"Observation": "telescope", "Dome": "dome"}
#: States of an order handed to its executor.
ACTIVE = (DISPATCHED, RUNNING)
#: Shortest real pause between ticks: a fast simulated clock must not spin the loop.
MIN_REAL_TICK_SECONDS = 0.02
#: The telescope's pointing not yet asked in this tick (``None`` means it did not say).
_NOT_ASKED = object()


class Dispatcher:
    """Runs the night for a :class:`~torosmanager.scheduler.handler.SchedulerHandler`."""

    def __init__(self, handler):
        self.handler = handler
        self.config = handler.config
        self.settings = handler.config["Scheduler"]
        self.clock = handler.clock
        self.journal = handler.journal
        self.observing = handler.config["Observing"]
        constraints = Constraints.from_settings(self.observing)
        self.planner = Planner(handler.config["Site"], constraints)
        # A large queue's plan, made apart so that the front desk does not wait for it.
        self.planning_process = PlanningProcess(handler.config["Site"], constraints,
                                                self.settings["Planning Process Niceness"])
        self.dome = DomeKeeper(self.config, self.clock, self.planner.night)
        self.peer_clocks = PeerClocks(self.config, self.clock)
        self.plan = None
        # Each planned order's Object Name, read with the queue when the plan was made: the
        # health report, asked hundreds of times a second, reads nothing from the journal.
        self._plan_names = {}
        self._plan_lock = threading.Lock()
        self._wake = threading.Event()
        self._replan = threading.Event()
        # Set by a wake that must not wait (anything but an ordinary arrival), and by arrivals.
        self._at_once = threading.Event()
        self._arrived = threading.Event()
        self._stop = threading.Event()
        self._last_plan = None
        # The intervals between plans, Status queries and progress are measured on the
        # clock's monotonic count (Clock.elapsed): a system clock set back an hour would
        # otherwise stop following the order under way, and the night, for that hour.
        self._last_plan_elapsed = 0.0
        self._plan_line = SaidOnChange(log)  # a plan of an unchanged queue: at DEBUG
        self._gather_seconds = self.settings["Max Replan Delay"]  # see _make_plan
        self._pointing_this_tick = _NOT_ASKED  # see _pointing
        self._awaiting_start = False     # an order is dispatched and not yet running
        self._last_progress = {}   # order ID -> (signature, Clock.elapsed() it last changed)
        self._last_follow = {}     # order ID -> Clock.elapsed() of its last Status query
        self._interrupting = set()  # orders a target of opportunity interrupts, until shown so
        # Done observations whose frames the telescope has yet to hand to the preprocessor
        # (None until read from the journal at the first tick), and when they were last asked.
        self._hand_offs = None
        self._hand_offs_asked = None
        # Failed observations whose frames this daemon hands to the preprocessor itself.
        self.failed_frames = PendingHandOffs(handler, FAILED)
        self._outages = collections.defaultdict(lambda: Outage(log))  # executor -> Outage
        self._journal_outage = Outage(log)
        self._telescope_unavailable = Outage(log)  # its data disk, or journal, full
        self._telescope_silent = Outage(log)       # not running, or out of reach
        self._dispatch_blocked = None  # why the order due cannot be handed over, if it cannot
        #: Executor -> since when (ISO 8601) it has not answered about the order under way.
        self.executor_silent = {}
        #: What the telescope takes, from its last health Status (``None`` until it answers).
        self.telescope_limits = None
        self._thread = threading.Thread(target=self._run, name="dispatcher")

    # --- called from other threads ------------------------------------------------------

    def start(self):
        self.failed_frames.start()
        self.dome.start()
        if self.settings["Planning Process From"]:
            self.planning_process.start()
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._at_once.set()
        self._wake.set()
        self.planning_process.stop()  # first: a plan under way there is abandoned, not waited for
        if self._thread.is_alive():
            self._thread.join()
        self.dome.stop()
        self.failed_frames.stop()

    def wake(self, replan=True, gather=False):
        """Run a tick now (an order arrived, ended or was cancelled).

        Parameters
        ----------
        replan : bool
            Plan the queue again in that tick.
        gather : bool
            An ordinary arrival: wait for others (see :meth:`_gather_arrivals`), so that
            orders arriving together are planned once, not once each. A target of
            opportunity, an order ending or a cancel wakes at once.
        """
        if replan:
            self._replan.set()
        if gather:
            self._arrived.set()
        else:
            self._at_once.set()
        self._wake.set()

    def plan_report(self, offset=0, limit=None):
        """The current plan, or a page of it (see
        :func:`~torosmanager.scheduler.plan_command.as_dict`), in XML-RPC types."""
        with self._plan_lock:
            plan, made, names = self.plan, self._last_plan, self._plan_names
        silent = self.executor_silent.get("telescope")
        waiting = self.dome.waiting or (silent and f"the telescope daemon does not answer "
                                                   f"since {silent}")
        return as_dict(plan, names, made, self.observing["Sun Altitude"],
                       offset, limit, waiting=waiting)

    # --- the loop -----------------------------------------------------------------------

    def _run(self):
        tick = max(self.clock.real_seconds(self.settings["Follow Interval"]),
                   MIN_REAL_TICK_SECONDS)
        while not self._stop.is_set():
            try:
                self.tick()
            except PlanningStopped:
                log.info("a plan under way abandoned: the scheduler is stopping")
            except JournalUnwritable as error:  # its disk full: said once, tried each tick
                self._journal_outage.failed("the scheduler's tick cannot journal: %s", error)
            except Exception:  # the night must go on; the log says what went wrong
                log.exception("the scheduler's tick failed; trying again")
            else:
                self._journal_outage.answered("the scheduler's tick journals again")
            # An order dispatched but not yet running is followed again soon, so that this
            # daemon's Status agrees with the executor's within moments, not a Follow Interval;
            # so is an order a target of opportunity interrupts, until it shows so, and the
            # dome while it opens or closes, so that the night starts when it is open.
            soon = self._awaiting_start or self._interrupting or self.dome.request_under_way
            self._wake.wait(min(tick, self.settings["Dispatched Follow Interval"])
                            if soon else tick)
            if self._arrived.is_set() and not self._at_once.is_set():
                self._gather_arrivals()
            self._wake.clear()
            self._arrived.clear()
            self._at_once.clear()

    def _gather_arrivals(self):
        """Wait until no order has arrived for ``Replan Delay`` (real seconds), for at most
        ``Max Replan Delay`` in all (longer after a long plan, see :meth:`_make_plan`), or
        until a wake that must not wait: a steady stream of arrivals is planned every ``Max
        Replan Delay``, not after each pause between two."""
        deadline = time.monotonic() + self._gather_seconds
        while True:
            self._arrived.clear()
            left = deadline - time.monotonic()
            if left <= 0 or self._at_once.wait(min(self.settings["Replan Delay"], left)):
                return
            if not self._arrived.is_set():
                return

    def tick(self):
        """One pass: dome, targets of opportunity, follow-up, expiry, plan, dispatch."""
        now = self.clock.now()
        self._pointing_this_tick = _NOT_ASKED
        # Before anything else, a target of opportunity is planned alone and sent: following
        # the other orders or planning the queue would only delay it. So is asking the dome,
        # when it was open at the last tick (a Follow Interval ago at most): the telescope
        # asks the dome itself before it exposes, so a dome closed since is still respected.
        sent_early = self.dome.is_open and self._dispatch_target_of_opportunity(now)
        dome_open = self._keep_dome(now)
        if dome_open and not sent_early:
            self._dispatch_target_of_opportunity(now)
        # What goes wrong with one order (a bug, an order journaled by an older release that
        # this one would refuse) ends that order failed, with the reason; the night goes on.
        active = self.journal.in_states(ACTIVE)
        for record in active:
            with self.handler.failing_on_error(record.id, "following it"):
                self._follow(record)
        self._awaiting_start = any(record.state == DISPATCHED for record in active)
        self._follow_hand_offs()
        if self.telescope_limits is None:
            # Learned at once, not with the first plan: until then, an order the telescope
            # cannot take (a filter it lacks) is accepted here, and refused only when sent.
            self._pointing()
        queued = [record for record in self.journal.in_states([QUEUED], "Observation")
                  if not self._expired(record, now)]
        # The queries above may have waited on a daemon that was busy starting: read the clock
        # again, so that nothing is planned or dispatched for a moment already past.
        if (self._replan.is_set() or self._last_plan is None
                or (self.clock.elapsed() - self._last_plan_elapsed
                    >= self.settings["Replan Interval"])):
            self._replan.clear()
            self._make_plan(queued)
            still_queued = self.journal.ids_in_state(QUEUED)
            queued = [record for record in queued if record.id in still_queued]
        if dome_open:
            self._dispatch(queued, self.clock.now())

    def _keep_dome(self, now):
        """Whether the dome is open, after the :class:`DomeKeeper` has done what dusk or dawn
        asks (``Manage Dome``); a dome that opened or closed since the last tick needs a new
        plan."""
        is_open, changed = self.dome.keep(now, manage=self.settings["Manage Dome"])
        if changed:
            self._replan.set()
        return is_open

    # --- follow-up ----------------------------------------------------------------------

    def _follow(self, record):
        last, elapsed = self._last_follow.get(record.id), self.clock.elapsed()
        if (record.state != DISPATCHED and record.id not in self._interrupting
                and last is not None and elapsed - last < self.settings["Follow Interval"]):
            return
        self._last_follow[record.id] = elapsed
        executor = EXECUTOR[record.wotype]
        try:
            status = status_of(connect(self.config, executor), record.id)
        except (OSError, xmlrpc.client.Error) as error:
            self._outages[executor].failed("[WO %s] cannot follow it at the %s daemon: %s",
                                           record.id, executor, error)
            self._unfollowed(record, executor, error)
            return
        self._outages[executor].answered("[WO %s] the %s daemon answers again", record.id,
                                         executor)
        self.executor_silent.pop(executor, None)
        if record.message.startswith(f"the {executor} daemon does not answer since "):
            self._last_progress.pop(record.id, None)  # its own message, even if unchanged
        if status is None:  # it never arrived: hand it over again
            self.handler.transition(record.id, QUEUED, f"the {executor} daemon does not "
                                    "know it; queued again", only_from=ACTIVE)
            self._forget(record.id)
            self.wake()
            return
        state, message = status["Status"], status["Message"]
        progress = dict(record.progress, **status.get("Progress", {}))
        if state == RUNNING:
            self._running(record, message, progress)
        elif state == DONE:
            self._end(record, DONE, f"done at the {executor}: {message}", progress)
            if progress.get(HAND_OFF) == PENDING and self._hand_offs is not None:
                self._hand_offs.add(record.id)
        elif state == CANCELLED:
            self._end(record, CANCELLED, f"cancelled at the {executor}: {message}", progress)
        elif state in (FAILED, INTERRUPTED) and record.wotype == "Dome":
            self._end(record, FAILED, f"{state} at the dome: {message}", progress)
        elif state in (FAILED, INTERRUPTED):
            self._retry(record, state, message, progress)

    def _unfollowed(self, record, executor, error):
        """*executor* does not answer about *record*: the order keeps its state (the
        telescope may expose still) and says so in its message, once; the plan's heading says
        why nothing more is sent (:attr:`executor_silent`). Its Status, once it answers,
        gives the order its own message again."""
        since = self.executor_silent.setdefault(executor, format_utc(self.clock.now()))
        said = f"the {executor} daemon does not answer since {since}"
        if not record.message.startswith(said):
            self.handler.transition(record.id, record.state, f"{said} ({error}): followed "
                                    f"again when it does; it said: {record.message}",
                                    only_from={record.state})

    def _follow_hand_offs(self):
        """Follow the done observations whose frames the telescope has yet to hand to the
        preprocessor (``Hand-off: pending``), so that this daemon's Status, too, says when it
        has. One query a ``Follow Interval`` while the oldest is still pending: the telescope
        tries them together, oldest first, and they are handed over together."""
        if self._hand_offs is None:  # those a stop left, once
            self._hand_offs = {record.id for record in self.journal.in_states(
                [DONE], "Observation", progress=(HAND_OFF, PENDING))}
        elapsed = self.clock.elapsed()
        if not self._hand_offs or (self._hand_offs_asked is not None and elapsed
                                   - self._hand_offs_asked < self.settings["Follow Interval"]):
            return
        self._hand_offs_asked = elapsed
        for order_id in sorted(self._hand_offs):
            try:
                if self._hand_off_pending(order_id):
                    return
            except (OSError, xmlrpc.client.Error):
                return  # asked again at the next Follow Interval (an outage is said elsewhere)
            except JournalUnwritable:
                raise  # its disk full: this tick stops, the order is asked again later
            except Exception:  # noqa: BLE001 - a done order's message must not stop the night
                log.exception("[WO %s] following its hand-off to the preprocessor failed; "
                              "given up", order_id)
            self._hand_offs.discard(order_id)

    def _hand_off_pending(self, order_id):
        """Whether the telescope still has *order_id*'s frames to hand over; when it has
        handed them (or been refused), its message and progress are journaled here too."""
        status = status_of(connect(self.config, "telescope"), order_id)
        if status is None or status["Status"] != DONE:
            return False  # an order the telescope no longer has as done: nothing to learn
        progress = status.get("Progress", {})
        if progress.get(HAND_OFF) == PENDING:
            return True
        record = self.journal.get(order_id)
        if record is not None:
            kept = {key: value for key, value in record.progress.items() if key != HAND_OFF}
            self.handler.transition(order_id, DONE, f"done at the telescope: "
                                    f"{status['Message']}", only_from={DONE},
                                    progress=dict(kept, **progress))
        return False

    def _running(self, record, message, progress):
        signature = json.dumps([message, progress], sort_keys=True, default=str)
        previous, elapsed = self._last_progress.get(record.id), self.clock.elapsed()
        if previous is None or previous[0] != signature:
            self._last_progress[record.id] = (signature, elapsed)
            if record.state != RUNNING or record.message != message:
                self.handler.transition(record.id, RUNNING, message, only_from=ACTIVE,
                                        progress=progress)
            return
        stalled = elapsed - previous[1]
        # A frame being exposed reports nothing until it is read out.
        if stalled > self.settings["Stall Timeout"] + record.work_order.get("Exposure Time", 0.0):
            log.warning("[WO %s] no progress for %.0f s: stopping it", record.id, stalled)
            self._last_progress.pop(record.id, None)
            try:
                connect(self.config, "telescope").front_desk(
                    {"WOType": "Park", "User": KEEPER,
                     "Reason": f"order {record.id} made no progress for {stalled:.0f} s"})
            except (OSError, xmlrpc.client.Error) as error:
                log.error("[WO %s] cannot stop the stalled order: %s", record.id, error)

    def _retry(self, record, state, message, progress):
        attempts = progress.get("Attempts", 1)
        stopped_by = progress.pop("Interrupted By", None) if state == INTERRUPTED else None
        if state == INTERRUPTED and (stopped_by or self._night_over()):
            # Not a try: a target of opportunity's turn, the dome closing, the telescope
            # daemon's stop (the telescope says who stopped the order), or dawn (this
            # daemon's own Park may reach the telescope before the closing dome's).
            progress["Attempts"] = attempts - 1
            self.handler.transition(record.id, QUEUED, f"interrupted ({message}); queued "
                                    "again", only_from=ACTIVE, progress=progress)
        elif attempts <= self.settings["Max Retries"]:
            # Not at once: a device or a link coming back needs a moment, and the tries left
            # were spent within 0.1 s on a refusal that lasts (a mount not answering).
            progress[RETRY_AFTER] = format_utc(self.clock.now() + timedelta(
                seconds=retry_delay(self.settings, attempts)))
            self.handler.transition(record.id, QUEUED, f"{state} at the telescope ({message}); "
                                    f"will try again (try {attempts + 1} of "
                                    f"{self.settings['Max Retries'] + 1}) from "
                                    f"{progress[RETRY_AFTER]}", only_from=ACTIVE,
                                    progress=progress)
        else:
            self._fail(record, f"{state} at the telescope after {attempts} tries: {message}",
                       progress, only_from=ACTIVE)
        self._forget(record.id)
        self.wake()

    def _night_over(self):
        """Whether this daemon closes the dome for the night's end now (``Manage Dome``)."""
        return self.settings["Manage Dome"] and not self.planner.night.is_dark(
            self.clock.now(), self.observing["Sun Altitude"])

    def _fail(self, record, message, progress, only_from):
        """End observation *record* failed for good, handing the frames it took to the
        preprocessor when its ``Output`` is ``Analysis``: they are calibrated all the same."""
        files = progress.get("Files", [])
        handing = bool(files) and record.work_order.get("Output") == "Analysis"
        if handing:
            progress = dict(progress, **{HAND_OFF: PENDING})
            message += f"; its {len(files)} frame(s) wait for the preprocessor"
            # Counted first: the health report never shows the end without its hand-off.
            # Should the end not be journaled, the retry thread drops the order.
            self.failed_frames.add(record.id)
        self.handler.transition(record.id, FAILED, message, only_from=only_from,
                                progress=progress)
        if handing:
            self.failed_frames.wake()

    def _end(self, record, state, message, progress):
        self.handler.transition(record.id, state, message, only_from=ACTIVE, progress=progress)
        self._forget(record.id)
        self.wake()

    def _forget(self, order_id):
        self._last_progress.pop(order_id, None)
        self._last_follow.pop(order_id, None)
        self._interrupting.discard(order_id)

    # --- expiry, plan, dispatch -----------------------------------------------------------

    def _expired(self, record, now):
        deadline = record.work_order.get("Not After")
        if deadline and format_utc(now) > deadline:
            self._fail(record, f"expired: its window ended at {deadline}", record.progress,
                       only_from={QUEUED})
            return True
        return False

    def _make_plan(self, queued):
        """Plan *queued*, and show each order what the plan says of it. A plan that took t
        real seconds makes the next wait up to t / ``Max Planning Share`` for orders that
        keep arriving (``Max Replan Delay`` if longer): in a flood, each plan of the growing
        queue takes longer, and is out of date within moments."""
        pointing = self._pointing()
        began = time.monotonic()  # (the telescope's answer is no planning)
        now, elapsed = self.clock.now(), self.clock.elapsed()
        targets = []
        for record in queued:
            with self.handler.failing_on_error(record.id, "planning it"):
                # Tried before: only the frames still missing are planned.
                targets.append(self._target(record, done=record.progress))
        active = self.journal.in_states(ACTIVE, "Observation")
        free_from = now
        # The order under way keeps the telescope until it ends, and leaves it on its field.
        for record in active:
            with self.handler.failing_on_error(record.id, "planning around it"):
                started = parse_utc(record.progress.get("Dispatched At", format_utc(now)))
                under_way = self._target(record)
                free_from = max(free_from, started + timedelta(seconds=under_way.duration))
                pointing = under_way.ra, under_way.dec
        plan = self._plan_each_failing_alone(targets, now, pointing, free_from)
        planned = {entry.id for entry in plan.entries}
        names = {record.id: record.work_order.get("Object Name") for record in queued
                 if record.id in planned}
        with self._plan_lock:
            self.plan, self._last_plan, self._plan_names = plan, now, names
            self._last_plan_elapsed = elapsed
        blocked = self._dispatch_blocked
        messages = {entry.id: blocked if blocked and _due(entry, now) else
                    f"planned for {entry.start:%H:%M} UTC (altitude {entry.altitude:.0f}°)"
                    for entry in plan.entries}
        messages.update((order_id, f"not observable tonight: {reason}")
                        for order_id, reason in plan.unscheduled.items())
        self._tell(queued, messages)
        took = time.monotonic() - began
        self._gather_seconds = max(self.settings["Max Replan Delay"],
                                   took / self.settings["Max Planning Share"])
        # The plans every Replan Interval of an unchanged queue say the same: once is enough.
        self._plan_line.log((frozenset(record.id for record in queued), frozenset(planned)),
                            "planned %d of %d queued observation(s) in %.3f s, sum of "
                            "priorities %.1f; orders that keep arriving are planned again "
                            "within %.1f s", len(plan.entries), len(queued), took,
                            plan.total_priority, self._gather_seconds)

    def _target(self, record, done=None):
        return target_of(record.work_order, record.priority, self.observing,
                         urgent=record.priority >= self.config["Priorities"]["ToO Threshold"],
                         done=done)

    def _plan_each_failing_alone(self, targets, now, pointing, free_from):
        """The plan of *targets*. When planning them raises, each target is planned alone: an
        order whose planning raises alone ends failed (saying why), the rest are planned."""
        apart_from = self.settings["Planning Process From"]
        try:
            if apart_from and len(targets) >= apart_from:
                return self.planning_process.plan(targets, now, pointing, free_from)
            return self.planner.plan(targets, now, pointing, free_from)
        except PlanningStopped:
            raise
        except Exception:  # noqa: BLE001 - the culprit is found below, and its error logged
            log.warning("planning %d order(s) failed: planning each alone", len(targets))
        planned = []
        for target in targets:
            with self.handler.failing_on_error(target.id, "planning it"):
                self.planner.plan([target], now, pointing, free_from)
                planned.append(target)
        return self.planner.plan(planned, now, pointing, free_from)

    def _tell(self, queued, messages):
        """Show each queued order its message from *messages* (order ID to message), all in
        one commit. An order's history gets an entry only when the kind of message changes:
        the numbers in it (a planned time, an altitude) move a little at every plan, and a
        night of those would bury what matters."""
        changes = []
        for record in queued:
            message = messages.get(record.id)
            if message is None or message == record.message:
                continue
            recorded = _kind(record.message) != _kind(message)
            changes.append((record.id, message, recorded))
            if recorded:  # a message, not a change of state: in the log when asked for
                log.debug("[WO %s] %s: %s", record.id, QUEUED, message)
        if changes:
            self.journal.set_messages(changes, QUEUED, format_utc(self.clock.now()))

    def _pointing_for_interruption(self, active):
        """Where the telescope points when a target of opportunity comes: at the observation
        under way, if one is, without asking (the telescope's answer, with its coordinate
        transforms, would cost the target of opportunity milliseconds); else asked."""
        running = [record for record in active if record.state == RUNNING]
        if running:
            return running[0].work_order["RA"], running[0].work_order["Dec"]
        return self._pointing()

    def _pointing(self):
        """Where the telescope points (``None`` when it does not say), asked once per tick;
        what it takes is learned from the same answer (:attr:`telescope_limits`)."""
        if self._pointing_this_tick is not _NOT_ASKED:
            return self._pointing_this_tick
        self._pointing_this_tick = None
        try:
            health = self.peer_clocks.status("telescope", lambda: connect(
                self.config, "telescope").front_desk({"WOType": "Status"}))
            self.executor_silent.pop("telescope", None)   # it answers (its order ended?)
            self.telescope_limits = health.get("Limits", self.telescope_limits)
            pointing = health["Devices"]["Pointing"]
            self._pointing_this_tick = pointing["RA"], pointing["Dec"]
        except (OSError, KeyError, xmlrpc.client.Error):
            pass
        return self._pointing_this_tick

    def _dispatch(self, queued, now):
        active = self.journal.in_states(ACTIVE, "Observation")
        if self._target_of_opportunity(queued, active, now):
            return
        with self._plan_lock:
            plan = self.plan
        if active or plan is None:
            return  # one observation at a time
        by_id = {record.id: record for record in queued}
        for entry in plan.entries:  # in time order
            if entry.id not in by_id or self.journal.get(entry.id).state != QUEUED:
                continue
            if _due(entry, now) and not _retry_waits(by_id[entry.id], now):
                with self.handler.failing_on_error(entry.id, "dispatching it"):
                    self._send(by_id[entry.id], now,
                               f"its planned time, {entry.start:%H:%M:%S} UTC")
            return

    def _dispatch_target_of_opportunity(self, now):
        """Send a queued target of opportunity now if one is observable (see
        :meth:`_target_of_opportunity`), reading only such orders and the active ones; return
        whether one was sent."""
        threshold = self.config["Priorities"]["ToO Threshold"]
        urgent = [record for record in self.journal.in_states([QUEUED], "Observation", threshold)
                  if not self._expired(record, now)]
        return bool(urgent) and self._target_of_opportunity(
            urgent, self.journal.in_states(ACTIVE, "Observation"), now)

    def _target_of_opportunity(self, queued, active, now):
        """Dispatch the most urgent target of opportunity that is observable now, over a
        running order of lower priority; return whether one was sent."""
        threshold = self.config["Priorities"]["ToO Threshold"]
        soon = now + timedelta(seconds=self.settings["Follow Interval"])
        for record in sorted(queued, key=self._urgency()):
            if record.priority < threshold:
                return False
            if any(other.priority >= record.priority for other in active):
                return False
            not_before = record.work_order.get("Not Before")
            if not_before and not_before > format_utc(soon) or _retry_waits(record, now):
                continue  # not yet allowed to start (an alert's later night): no plan
            with self.handler.failing_on_error(record.id, "planning it as a target of "
                                                          "opportunity"):
                # Unrefined: a target of opportunity is wanted at its earliest, not at its
                # lowest airmass.
                alone = self.planner.plan([self._target(record, done=record.progress)], now,
                                          self._pointing_for_interruption(active), now,
                                          refine=False)
                if alone.entries and alone.entries[0].start - timedelta(
                        seconds=alone.entries[0].slew) <= soon:
                    if self._send(record, now, "once: a target of opportunity, observable "
                                               "now"):
                        # The telescope stops what it does in its own time: follow the
                        # orders it interrupts until they show it, so that the scheduler's
                        # Status shows them queued again within moments.
                        self._interrupting.update(other.id for other in active)
                    return True
        return False

    def _urgency(self):
        """The sort key of targets of opportunity, the most urgent first: the highest
        priority, then, among equals, the earliest in the plan (the field setting first, the
        shortest slew; the times their orders show), then the first received."""
        with self._plan_lock:
            plan = self.plan
        planned = {} if plan is None else {entry.id: n for n, entry in enumerate(plan.entries)}
        return lambda record: (-record.priority, planned.get(record.id, len(planned)))

    def _send(self, record, now, why):
        """Hand ``record`` to the telescope; return whether it took it."""
        attempts = record.progress.get("Attempts", 0) + 1
        try:
            receipt = connect(self.config, "telescope").front_desk(record.work_order)
        except xmlrpc.client.Fault as refusal:
            self._telescope_silent.answered("[WO %s] the telescope daemon answers again",
                                            record.id)
            if unavailable(refusal):  # not now: tried again next tick
                self._telescope_unavailable.failed("[WO %s] the telescope cannot take orders "
                                                   "now: %s", record.id, refusal.faultString)
                self._wait_for_telescope(record, "waiting: the telescope cannot take it now: "
                                                 f"{refusal.faultString}")
                return False
            self._dispatch_blocked = None
            self.handler.transition(record.id, FAILED, f"the telescope daemon refused it: "
                                    f"{refusal.faultString}", only_from={QUEUED})
            self.wake()
            return False
        except (OSError, xmlrpc.client.Error) as error:
            # Tried again at each tick (a fraction of a second): said once, and on the order.
            self._telescope_silent.failed("[WO %s] the telescope daemon does not answer: %s "
                                          "(tried again until it does)", record.id, error)
            self._wait_for_telescope(record, "waiting: the telescope daemon does not answer: "
                                             f"{error}")
            return False
        self._dispatch_blocked = None
        self._telescope_silent.answered("[WO %s] the telescope daemon answers again",
                                        record.id)
        self._telescope_unavailable.answered("[WO %s] the telescope takes orders again",
                                             record.id)
        if self.handler.transition(record.id, DISPATCHED, f"dispatched at {why}; the "
                                   f"telescope answered {receipt['Status']}: "
                                   f"{receipt['Message']}", only_from={QUEUED},
                                   progress=_dispatched(record.progress, attempts, now)) is None:
            self.handler.cancel_at_executor(record.id)  # cancelled while it was handed over
            return False
        self._awaiting_start = True
        self._replan.set()
        return True

    def _wait_for_telescope(self, record, waiting):
        """*record* is due, but the telescope cannot take it (*waiting* says why): the order
        says so, and so do the plans made until one is handed over (their "planned for" would
        hide it), its history once (as any queued order's message, see :meth:`_tell`)."""
        self._dispatch_blocked = waiting
        self._tell([record], {record.id: waiting})


def _due(entry, now):
    """Whether the slew to plan entry *entry* should have begun by *now*."""
    return entry.start - timedelta(seconds=entry.slew) <= now


def retry_delay(settings, attempts):
    """Seconds an order waits after its *attempts*-th try failed: ``Retry Delay``, doubled at
    each try, at most ``Max Retry Delay`` (*settings*: the ``Scheduler`` section).

    Examples
    --------
    >>> [retry_delay({"Retry Delay": 60.0, "Max Retry Delay": 3600.0}, n) for n in (1, 2, 3, 99)]
    [60.0, 120.0, 240.0, 3600.0]
    """
    return min(settings["Retry Delay"] * 2.0 ** (attempts - 1), settings["Max Retry Delay"])


def _dispatched(progress, attempts, now):
    """*progress* of an order dispatched at *now*, its *attempts*-th try: its wait to be tried
    again is over."""
    progress = {key: value for key, value in progress.items() if key != RETRY_AFTER}
    return dict(progress, Attempts=attempts, **{"Dispatched At": format_utc(now)})


def _retry_waits(record, now):
    """Whether *record*, tried before, waits for its ``Retry After`` still (the plan starts it
    then: its slew would begin before)."""
    retry_after = record.progress.get(RETRY_AFTER)
    return retry_after is not None and parse_utc(retry_after) > now


def _kind(message):
    """A message without its numbers."""
    return _NUMBERS.sub("#", message)
