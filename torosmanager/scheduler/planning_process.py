"""A large queue planned in a process of its own.

Planning is Python, and Python runs one thread at a time in a process: while the scheduler plans
thousands of queued orders (130 ms for 2,000 here), the threads of its front desk wait their
turn, and orders arriving meanwhile wait with them. A child process plans on another core
instead. It is *spawned*, not forked: it inherits none of the daemon's sockets, threads or
locks. It starts with the daemon, in the background, and plans one target at once
(:meth:`Planner.warm_up <torosmanager.scheduler.planner.Planner.warm_up>`): its start-up and
its first plan's imports (a few seconds of CPU) are not paid when the queue first grows large
enough (``Scheduler → Planning Process From``), which is when orders are pouring in and the
front desk needs the CPU. It runs with a lower priority (``Scheduler → Planning Process
Niceness``): on a machine whose processors the front desk's clients keep busy, a plan of
thousands of orders is background work, and the processor time it would take is orders not
answered. A small queue is planned in the daemon, where it takes a few milliseconds.
"""

import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone

from .planner import Planner

log = logging.getLogger(__name__)

#: The planner of the child process (see _start).
_planner = None
#: Seconds between the child's looks at whether the daemon that started it is still there.
PARENT_POLL_SECONDS = 1.0
#: The largest nice value (the lowest priority) there is.
MAX_NICE = 19


class PlanningStopped(Exception):
    """A plan asked of a :class:`PlanningProcess` that was stopped before it answered."""


class PlanningProcess:
    """Plans with a :class:`~torosmanager.scheduler.planner.Planner` of the same site and
    constraints, in a child process (see :meth:`start`).

    Parameters
    ----------
    site : dict
        The configuration's ``Site`` section.
    constraints : Constraints
    niceness : int, optional
        Added to the child's nice value (0: none).
    """

    def __init__(self, site, constraints, niceness=0):
        # (the daemon's PID given, not asked by the child: it may already be gone by then)
        self._arguments = (dict(site), constraints, niceness, os.getpid())
        self._pool = None
        self._stopped = False
        self._lock = threading.Lock()

    def plan(self, targets, now, start_position=None, free_from=None):
        """:meth:`Planner.plan <torosmanager.scheduler.planner.Planner.plan>` in the child
        process; its exceptions are raised here. A child that died (killed, out of memory) is
        replaced by a new one for this plan, which is tried once more.

        Raises
        ------
        PlanningStopped
            :meth:`stop` was called before the plan was made.
        """
        for attempt in (1, 2):
            pool = self._started()
            try:
                return _submit(pool, _plan, targets, now, start_position, free_from).result()
            except Exception as error:
                # Stopped meanwhile, the pool says so in several ways: broken (its child
                # terminated), the plan cancelled, or shut down before the plan was submitted.
                if self._stopped:
                    raise PlanningStopped("the planning process was stopped") from error
                if not isinstance(error, BrokenProcessPool):
                    raise  # the planner's own error
                with self._lock:
                    if self._pool is pool:
                        self._pool = None
                pool.shutdown(wait=False)
                if attempt == 2:
                    raise
                log.error("the planning process ended unexpectedly; starting a new one")

    def start(self):
        """Start the child process now, without waiting for it to be ready (it plans once it
        is); :meth:`plan` starts it too if it is not."""
        _submit(self._started(), _ready)

    def stop(self):
        """End the child process, if started, at once: neither its start (seconds of imports
        on a busy machine) nor a plan under way is waited for; a plan is only a proposal, and
        :meth:`plan` raises :class:`PlanningStopped` to whoever waits for one."""
        with self._lock:
            pool, self._pool, self._stopped = self._pool, None, True
        if pool is None:
            return
        # (Python 3.14 has pool.terminate_workers(); None: the pool found its child dead first)
        for child in list((pool._processes or {}).values()):
            child.terminate()
        pool.shutdown(wait=True, cancel_futures=True)  # its own thread reaps the child

    def _started(self):
        with self._lock:
            if self._stopped:
                raise PlanningStopped("the planning process was stopped")
            if self._pool is None:
                log.info("starting the planning process")
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start, initargs=self._arguments)
            return self._pool


def _submit(pool, function, *arguments):
    """*pool*'s submit, with SIGINT blocked in this thread: the child the pool may spawn for
    it inherits the block (through exec), so that a Ctrl-C before :func:`_start` ignores it
    does not end the child with a traceback of its own. (A Ctrl-C meant for this process,
    arriving meanwhile, is only delayed until the block ends: a few milliseconds.)"""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return pool.submit(function, *arguments)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _start(site, constraints, niceness, daemon):
    global _planner
    # Ctrl-C in a terminal reaches the whole process group: the daemon stops this process,
    # which would otherwise end with a traceback of its own ("Process SpawnProcess-1:").
    # (Blocked from its start, see _submit; ignored from now on.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _lower_priority(niceness)
    threading.Thread(target=_end_with, args=(daemon,), name="end-with-the-daemon",
                     daemon=True).start()
    _planner = Planner(site, constraints)
    _planner.warm_up(datetime.now(timezone.utc))


def _lower_priority(niceness):
    """Add *niceness* to this process's nice value: to each of its threads on Linux, which
    gives each its own (numpy's BLAS starts some as it is imported)."""
    value = min(os.getpriority(os.PRIO_PROCESS, 0) + niceness, MAX_NICE)
    try:
        threads = [int(thread) for thread in os.listdir("/proc/self/task")]
    except FileNotFoundError:  # one value for the whole process (macOS)
        threads = [0]
    for thread in threads:
        os.setpriority(os.PRIO_PROCESS, thread, value)


def _end_with(daemon):
    """End this process once the daemon that started it is gone: a daemon killed (SIGKILL,
    the OOM killer) cannot stop it, and the pool's worker, which holds both ends of its own
    queue, would wait for work for ever."""
    while os.getppid() == daemon:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(0)


def _ready():
    return True


def _plan(targets, now, start_position, free_from):
    return _planner.plan(targets, now, start_position, free_from)
