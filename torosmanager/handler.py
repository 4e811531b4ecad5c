"""What a daemon does with the work orders its front desk accepted.

Each daemon subclasses :class:`Handler`: it names the WOTypes it takes, may add checks of its
own (those that need its configuration), assigns priorities, starts the work and resumes it
after a restart. Everything here is called from the front desk's thread and must return quickly:
long work belongs in :class:`Workers`.
"""

import contextlib
import logging
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

from .journal import (ACCEPTED, FAILED, FINAL_STATES, INTERRUPTED, QUEUED, RUNNING,
                      UNFINISHED_STATES, JournalUnwritable, OrderState)
from .logs import Outage
from .workorders import clip, clip_priority, format_utc

log = logging.getLogger(__name__)

#: The states that end a run of an order (an interrupted observation's run too).
ENDINGS = FINAL_STATES | {INTERRUPTED}


class Handler:
    """The base of every daemon's logic.

    Parameters
    ----------
    config : dict
        The loaded configuration.
    journal : Journal
        This daemon's journal.
    clock : Clock
        The shared clock.
    """

    #: The daemon's name, as in ``systemctl start <service>``.
    service = ""
    #: The WOTypes this daemon takes (Status and Cancel are answered by every daemon).
    wotypes: tuple[str, ...] = ()
    #: The states in which an order's work has begun (a Cancel of a group with Keep Running
    #: leaves these alone).
    started_states: tuple[OrderState, ...] = (RUNNING,)

    #: The front desk, once it is made: a daemon may hand it orders of its own (the alerts
    #: daemon's sources).
    desk = None
    #: Whether :meth:`accepted` may change the order's state before it returns (the receipt
    #: then shows the state read again from the journal); ``False`` for a daemon whose
    #: :meth:`accepted` only hands the order to other threads.
    accepting_changes_state = True
    #: Whether this daemon transforms coordinates with astropy, and so reads astropy's
    #: Earth-rotation table at start-up, in the background, rather than at its first
    #: observation (the others only report the table's age, from the cache).
    transforms_coordinates = False

    @classmethod
    def check_environment(cls, config):
        """Refuse (raise :class:`~torosmanager.config.ConfigError`) settings this daemon cannot
        run with in the environment it starts in, which a restart would not change. The
        default refuses nothing."""

    @classmethod
    def request_limit(cls, config):
        """The largest request this daemon takes, bytes, and the setting that says so."""
        return config["Server"]["Max Request Bytes"], "Server → Max Request Bytes"

    def __init__(self, config, journal, clock):
        self.config = config
        self.journal = journal
        self.clock = clock
        # Order ID → (state, reason, options): ends that the journal could not take, written
        # before the next change it takes (see transition and failing_on_error).
        self._unjournaled = {}
        self._unjournaled_lock = threading.Lock()
        # A journal that cannot be written fails every worker's step until there is room:
        # said once, and when it takes changes again.
        self._journal_outage = Outage(log)
        self._stopping = threading.Event()  # set by stop(): no order is resumed afterwards

    # --- called by the front desk ---------------------------------------------------------

    def check(self, order):
        """Refuse (raise :class:`~torosmanager.workorders.WorkOrderError`) what the schema
        allows but this daemon's configuration does not. The default accepts everything."""

    def assign_priority(self, order):
        """The priority of a new order and a one-line reason.

        A requested priority is kept, clipped to 0–10; otherwise the configured default.
        """
        requested = order.get("Priority")
        if requested is None:
            default = self.config["Priorities"]["Default Priority"]
            return default, f"default priority: {default:g}"
        clipped = clip_priority(requested)
        if clipped != requested:
            return clipped, f"requested {requested:g}, clipped to {clipped:g}"
        return clipped, f"requested: {clipped:g}"

    def signal(self, order):
        """Answer a work order that is not journaled (a ``Heartbeat``); return a dict."""
        raise NotImplementedError(f"the {self.service} daemon takes no {order['WOType']} signal")

    def queued_reason(self, order):
        """What a new order waits for: it is journaled ``queued`` with this reason, in the
        commit that journals its receipt (one fsync, not two). ``None`` leaves it
        ``accepted``, for :meth:`accepted` to move on. The default: ``"queued"``."""
        return "queued"

    def accepted(self, record):
        """Start work on a newly journaled order (``queued`` unless :meth:`queued_reason`
        said otherwise). The default does nothing more."""

    def unrecorded(self, order):
        """Act on a validated *order* that the journal cannot keep (its disk is full), when
        waiting would be unsafe; return what was done, or ``None``. The order is refused
        either way. The default does nothing."""
        return None

    def resubmitted(self, record):
        """The same order arrived again, unchanged. The default does nothing (idempotent);
        a daemon may take it as a request to try an interrupted order again."""

    def cancel_refusal(self, record):
        """Why *record*, not ended, cannot be cancelled, or ``None`` (the default: it can)."""
        return None

    def cancelled(self, record, previous_state):
        """Stop work on an order the front desk has just marked cancelled."""

    def shown(self, work_order):
        """*work_order* as a Status answer shows it; the default shows it all."""
        return work_order

    def devices(self):
        """The devices (or peers) this daemon drives, for the health report."""
        return {}

    def health(self):
        """Fields of the daemon's own added to its health report (the scheduler's plan)."""
        return {}

    def page_sections(self):
        """Extra ``(title, HTML)`` sections for the daemon's status page; none by default."""
        return []

    def page_asset(self, path):
        """``(content type, bytes)`` served at *path* beside the status page, or ``None``."""
        return None

    # --- life cycle ----------------------------------------------------------------------

    def start(self):
        """Resume the orders that had not ended when the daemon last stopped.

        One whose change the journal cannot take now (its disk full, or failing: the daemon
        starts all the same, refusing new orders) is resumed once it can, tried again every
        ``Database → Retry Interval`` in a thread of its own.
        """
        unresumed = [record.id for record in self.journal.unfinished()
                     if not self._resumed(record)]
        if unresumed:
            threading.Thread(target=self._resume_later, args=(unresumed,), name="resume",
                             daemon=True).start()

    def _resumed(self, record):
        """Resume *record*; ``False`` when the journal cannot take its change now."""
        try:
            self.resume(record)
        except JournalUnwritable as error:
            self._journal_outage.failed("unfinished orders are resumed once the journal takes "
                                        "changes again: %s", error)
            return False
        return True

    def _resume_later(self, order_ids):
        """Resume *order_ids* (see :meth:`start`) once the journal takes their changes."""
        interval = self.clock.real_seconds(self.config["Database"]["Retry Interval"])
        try:
            while order_ids and not self._stopping.wait(interval):
                order_ids = [order_id for order_id in order_ids
                             if (record := self.journal.get(order_id)) is not None
                             and record.state not in FINAL_STATES
                             and not self._resumed(record)]
        except Exception:  # noqa: BLE001 - as a failure at the start would be: said, in the log
            log.exception("the unfinished orders %s could not be resumed",
                          ", ".join(order_ids))

    def resume(self, record):
        """Pick up one unfinished order after a restart.

        An order caught between ``accepted`` and ``queued`` is queued; one that was running
        cannot be continued half-way and is marked failed with the reason. Subclasses extend
        this for their own states.
        """
        if record.state == ACCEPTED:
            self.transition(record.id, QUEUED, "queued after a restart")
        elif record.state == RUNNING:
            self.transition(record.id, FAILED,
                            f"the {self.service} daemon stopped while this order was running")

    def stop(self):
        """Stop taking new work; let work in progress finish or leave it journaled.
        Subclasses call this first."""
        self._stopping.set()

    # --- helpers -------------------------------------------------------------------------

    @contextlib.contextmanager
    def failing_on_error(self, order_id, doing, unjournaled=None):
        """Work on one order, *doing* something: any exception ends that order ``failed`` with
        the reason (and its traceback once in the log), and the daemon goes on with the others.

        Every worker of every daemon runs its orders inside this, so that no bug leaves an
        order ``running`` for ever. A journal that cannot be written (its disk full) is no
        fault of the order: it keeps its last journaled state; its own end, if it got that far,
        is journaled later (:meth:`transition`), else with *unjournaled* (a state) it is moved
        there, saying why, with the next change this daemon journals.
        """
        try:
            yield
        except JournalUnwritable as error:
            with self._unjournaled_lock:
                ending = self._unjournaled.get(order_id)  # its own end, kept by transition
                if ending is None and unjournaled is not None:
                    self._unjournaled[order_id] = (unjournaled, f"stopped while {doing}: {error}",
                                                   {"only_from": set(UNFINISHED_STATES)})
            if ending is not None:
                self._journal_outage.failed("[WO %s] %s (%s), journaled once the journal takes "
                                            "changes again: %s", order_id, ending[0],
                                            ending[1], error)
                return
            during = _recording(error)
            self._journal_outage.failed(
                "[WO %s] stopped while %s%s: %s", order_id, doing,
                "" if during is None else f" ({type(during).__name__}: {during})", error)
        except Exception as error:  # noqa: BLE001 - the order ends failed, saying why
            log.exception("[WO %s] failed while %s", order_id, doing)
            try:
                self.transition(order_id, FAILED, f"internal error in the {self.service} "
                                f"daemon while {doing} ({type(error).__name__}: "
                                f"{clip(str(error))}); its log has the details",
                                only_from=set(UNFINISHED_STATES))
            except JournalUnwritable as unwritable:
                log.error("[WO %s] its failure could not be journaled: %s", order_id,
                          unwritable)

    def transition(self, order_id, state, reason, **options):
        """Journal a change of state at the clock's time and log it under the order's ID.

        An order's end (:data:`ENDINGS`) that the journal cannot take now (its disk full) is
        kept, and written before the next change it takes: the work is done, whatever the
        journal's disk, and its end is not lost while the daemon runs.

        Raises
        ------
        JournalUnwritable
            When the journal cannot take the change now.
        """
        self.journal_waiting_ends()  # first, in the order they happened
        try:
            previous = self._journal_change(order_id, state, reason, **options)
        except JournalUnwritable:
            if state in ENDINGS:
                with self._unjournaled_lock:
                    self._unjournaled[order_id] = (state, reason, options)
            raise
        self._journal_outage.answered("the journal %s takes changes again", self.journal.path)
        return previous

    def _journal_change(self, order_id, state, reason, **options):
        previous = self.journal.transition(order_id, state, reason,
                                           format_utc(self.clock.now()), **options)
        if previous is not None:
            log.info("[WO %s] %s → %s: %s", order_id, previous, state, reason)
        return previous

    def journal_waiting_ends(self):
        """Write the ends the journal could not take when they happened, if any (the front
        desk calls this once the journal takes an order again)."""
        if self._unjournaled:
            self._journal_unjournaled()

    def _journal_unjournaled(self):
        """Write the ends of the orders stopped while the journal could not be written."""
        with self._unjournaled_lock:
            waiting, self._unjournaled = self._unjournaled, {}
        while waiting:
            order_id, (state, reason, options) = next(iter(waiting.items()))
            try:
                self._journal_change(order_id, state, reason, **options)
            except JournalUnwritable:  # full again: kept for the next change
                with self._unjournaled_lock:
                    self._unjournaled = {**waiting, **self._unjournaled}
                return
            del waiting[order_id]


def _recording(error):
    """What was being recorded when the journal refused *error*'s write: the first exception
    before it that is not SQLite's own (a frame that could not be written), or ``None``."""
    context = error.__context__
    while isinstance(context, sqlite3.Error):
        context = context.__context__
    return context


class Workers:
    """A small pool of threads for long work, stoppable at once.

    Parameters
    ----------
    name : str
        Used in thread names, for the logs.
    count : int
        Threads in the pool.
    stopping : threading.Event, optional
        The flag to share with another pool whose work waits on the same things: stopping
        either tells both pools' work to stop. A new one by default.
    """

    def __init__(self, name, count, stopping=None):
        self.stopping = stopping if stopping is not None else threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix=name)

    def submit(self, function, *args):
        """Run ``function(*args)`` in a worker; its exceptions are logged, never lost."""
        future = self._pool.submit(function, *args)
        future.add_done_callback(_log_failure)
        return future

    def stop(self):
        """Tell running work to stop (:attr:`stopping`), drop what has not started, and wait."""
        self.stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _log_failure(future):
    if not future.cancelled() and future.exception() is not None:
        error = future.exception()
        log.error("a worker failed", exc_info=(type(error), error, error.__traceback__))
