"""The preprocessor daemon's jobs: Preprocessing orders run one at a time, in a thread of their
own, their frames spread over the workers.

The front desk only queues an order (:meth:`JobQueue.enqueue`) and answers. The job thread
takes the orders by priority, then first come first served, runs :func:`.pipeline.calibrate`,
and journals its progress as the order's ``Progress``: ``Step``, ``Frames Done`` of ``Frames
Total``, and at the end ``Products``, ``Masters``, ``Skipped`` (``"file: reason"``) and
``Notes``. Progress is journaled at each new step and otherwise at most every
:data:`PROGRESS_INTERVAL` seconds, so a night of thousands of frames does not write thousands
of history rows.

The job calibrates the location as the front desk resolved and checked it, checked again
when the job starts (:meth:`~.handler.PreprocessorHandler.resolve`): a symbolic link changed
meanwhile cannot send the job, and its products, outside ``Allowed Directories``.

A Cancel stops the job between two tasks. When the daemon stops, the job under way is stopped
the same way but stays ``running`` in the journal; at the next start it is queued again and
run from the beginning (re-running a night is safe).

A job that finds no room on its disks (:mod:`.room`), before it writes or on the way, is queued
again saying so, and the job thread looks again every ``Preprocessor → Room Retry Interval``
(reading the frames' headers, writing nothing, journaling nothing) and takes no other order
meanwhile (it would most likely write to the same disk). Once there is room the order runs
again from the beginning.

A job that cannot reach its Dask scheduler (``Preprocessor → Executor``: restarted, its
computer down) is queued again the same way, and tried again every ``Room Retry Interval``
until the scheduler answers.

A job whose light frames find no master bias, neither among its own frames nor in the master
library (a target of opportunity's frames, taken without calibration frames before the night's
first masters, on a camera's first night), is not failed: its order is queued again, waiting
for masters, and runs again as soon as another job makes a master bias (which goes to the
library), or at the daemon's next start.

An order with ``Request: Prepare Calibration`` (the telescope's, at an observation's first
frame) runs in the job thread too, without workers: it only makes its frames' calibration terms
and keeps them for the job that calibrates them (:func:`.pipeline.prepare`).
"""

import logging
import threading
import time

from ..journal import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JournalUnwritable
from ..logs import SaidOnChange
from ..order_queue import OrderQueue
from ..workorders import PREPARE_CALIBRATION, WorkOrderError
from .executors import (LOCAL, ExecutorUnreachable, LocalRunner, RunnerError, Stopped,
                        make_runner)
from .pipeline import PreprocessingError, calibrate, check_room, prepare, shares_terms
from .reading import FrameError
from .room import NoRoom, is_full_disk
from .terms_store import TermsStore

log = logging.getLogger(__name__)

#: Least real seconds between two journaled progress reports within one step.
PROGRESS_INTERVAL = 1.0
#: What an order queued again waits for, as the health report says it.
WAITING_FOR_ROOM, WAITING_FOR_EXECUTOR = "Waiting for Room", "Waiting for Executor"


class Job:
    """One order under way, and how to stop it."""

    def __init__(self, record):
        self.record = record
        self.stop = threading.Event()
        self.cancelled = False
        self.location = None  # where the frames are, once resolved

    def cancel(self):
        """Stop the job for good (a Cancel)."""
        self.cancelled = True
        self.stop.set()


class JobQueue:
    """Runs a preprocessor daemon's orders.

    Parameters
    ----------
    handler : PreprocessorHandler
        Gives the journal, the transitions and the settings.
    """

    def __init__(self, handler):
        self.handler = handler
        self.settings = handler.settings
        self.orders = OrderQueue(handler.journal, Job)
        self._runner = None
        self._executor_line = SaidOnChange(log)  # where tasks run: at each job's start
        # The terms of a job's groups of frames, kept in shared memory for the next jobs:
        # a night's observations are jobs of their own, mostly with the same masters.
        self._terms = (TermsStore(self.settings.kept_terms * 2 ** 20)
                       if shares_terms(self.settings) else None)
        self._thread = threading.Thread(target=self._run, name="preprocessor-jobs")
        self._stopping = threading.Event()
        # (order ID, the health report's key: what it waits for) of the order waiting for
        # room, or for the Dask scheduler; None.
        self._waiting = None
        self._look_again = threading.Event()  # ends such a wait: stopping, or a Cancel
        # Order ID → (record, geometries) of the orders waiting for a master bias of those
        # detector geometries, queued again once a job makes one; read by Status and a Cancel
        # from other threads.
        self._without_masters = {}
        self._without_masters_lock = threading.Lock()
        # Why the last job could not keep its masters in the library (a disk full, read-only,
        # a path that cannot be made), said by Status until a later job keeps some.
        self._library_problem = ""

    # --- called from the front desk and the service -------------------------------------

    def start(self):
        """Start the job thread."""
        self._thread.start()

    def enqueue(self, record):
        """Queue an order: higher priority first, then first come, first served."""
        self.orders.put(record)

    def cancel(self, order_id):
        """Stop *order_id* if it is under way (a queued one is dropped when its turn comes)."""
        job = self.orders.current_if(order_id)
        if job is not None:
            job.cancel()
        if self._waiting is not None and self._waiting[0] == order_id:
            self._look_again.set()  # the next order need not wait for the room it waited for
        with self._without_masters_lock:
            self._without_masters.pop(order_id, None)

    def stop(self):
        """Stop the job under way (it stays journaled as running), then the workers."""
        job = self.orders.stop()
        if job is not None:
            job.stop.set()
        self._stopping.set()
        self._look_again.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self._terms is not None:
            self._terms.close()

    def describe(self):
        """For the health report: the executor, the order under way, how many wait, and the
        order waiting for room."""
        if self._runner is not None:
            executor = self._runner.description
        elif self.settings.executor == LOCAL:
            executor = f"{self.settings.workers} local worker process(es), started for each job"
        else:
            executor = f"Dask scheduler {self.settings.executor} (reached with the first job)"
        described = dict({"Executor": executor, "Workers": self.settings.workers},
                         **self.orders.describe())
        if self._terms is not None:
            described["Kept Terms"] = self._terms.describe()
        if self._library_problem:
            described["Master Library Problem"] = self._library_problem
        if self._waiting is not None:
            order_id, waits_for = self._waiting
            described[waits_for] = order_id
        with self._without_masters_lock:
            if self._without_masters:
                described["Waiting for Masters"] = sorted(self._without_masters)
        return described

    # --- the job thread ------------------------------------------------------------------

    def _run(self):
        while True:
            job = self.orders.take()
            if job is None:
                return
            waits_for = None
            try:
                with self.handler.failing_on_error(job.record.id, "calibrating"):
                    waits_for = self._execute(job)
            finally:
                idle = self.orders.finished()
                if (idle or waits_for) and isinstance(self._runner, LocalRunner):
                    # Local workers hold a group's terms (up to two frames); let them go while
                    # nothing waits. New ones fork from the fork server in a moment.
                    self._drop_runner()
            if waits_for:
                self._waiting = (job.record.id, waits_for)
                self._wait_to_run_again(job, for_room=waits_for == WAITING_FOR_ROOM)
                self._waiting = None
                self.orders.put(job.record)  # taken again only if still queued then

    def _execute(self, job):
        """Run *job*; return what it waits for (:data:`WAITING_FOR_ROOM`,
        :data:`WAITING_FOR_EXECUTOR`) or ``None``."""
        order_id = job.record.id
        reporter = _Reporter(self.handler, job)
        if not reporter.start():
            return None  # cancelled a moment ago
        try:
            location = self.handler.resolve(job.record.work_order["File Location"])
        except WorkOrderError as error:
            self.handler.transition(order_id, FAILED, f"refused when the job started: {error}",
                                    only_from={RUNNING}, progress=reporter.progress)
            return None
        job.location = location
        if job.record.work_order["Request"] == PREPARE_CALIBRATION:
            self._prepare(job, reporter.progress)
            return None
        try:
            runner = self._runner_for_job()
            outcome = calibrate(location, self.settings, runner, progress=reporter,
                                stop=job.stop, clock=self.handler.clock,
                                terms_store=self._terms)
        except Stopped as stopped:
            if job.cancelled:
                self._note_written(order_id, stopped.outcome, reporter.progress)
            else:
                log.info("[WO %s] stopped with the daemon; it will run again from the "
                         "beginning at the next start", order_id)
            return None
        except (NoRoom, PreprocessingError, RunnerError, OSError) as error:
            if isinstance(error, NoRoom):
                return self._queue_again(job, WAITING_FOR_ROOM, f"waiting for room: {error}",
                                         reporter.progress)
            if is_full_disk(error):
                return self._queue_again(job, WAITING_FOR_ROOM, "waiting for room: a disk "
                                         f"filled while the job wrote: {error}",
                                         reporter.progress)
            if isinstance(error, RunnerError):
                self._drop_runner(broken=True)
            if isinstance(error, ExecutorUnreachable):
                return self._queue_again(job, WAITING_FOR_EXECUTOR, f"waiting: {error}",
                                         reporter.progress)
            # A system's error names a file but not what the job was doing with it.
            message = f"{reporter.progress['Step']}: {error}" if isinstance(error, OSError) \
                else str(error)
            self.handler.transition(order_id, FAILED, message, only_from={RUNNING},
                                    progress=dict(reporter.progress, Step="failed"))
            return None
        if outcome.library_problem:
            self._library_problem = f"{outcome.library_problem} (order {order_id})"
        elif outcome.library_kept:
            self._library_problem = ""
        progress = dict(reporter.progress, **{
            "Step": "done", "Frames Done": outcome.done, "Frames Total": outcome.total,
            "Products": outcome.products, "Masters": outcome.masters,
            "Skipped": outcome.skipped, "Notes": outcome.notes})
        if outcome.bias_made:
            self._bias_made(order_id, outcome.bias_made)
        if outcome.without_bias:
            # Even when the other frames were calibrated: done, these would be left for good.
            self._wait_for_masters(job, outcome, progress)
        elif outcome.succeeded:
            self.handler.transition(order_id, DONE, outcome.summary(), only_from={RUNNING},
                                    progress=progress)
        else:
            self.handler.transition(order_id, FAILED, outcome.failure(), only_from={RUNNING},
                                    progress=progress)
        return None

    def _prepare(self, job, progress):
        """Make the terms of *job*'s frames for the job that will calibrate them (in this
        thread: the workers are not needed, and any other job waits)."""
        try:
            said = prepare(job.location, self.settings, self._terms, self.handler.clock)
        except (PreprocessingError, FrameError, OSError) as error:
            self.handler.transition(job.record.id, FAILED, f"nothing prepared: {error}",
                                    only_from={RUNNING}, progress=dict(progress, Step="failed"))
            return
        self.handler.transition(job.record.id, DONE, said, only_from={RUNNING},
                                progress=dict(progress, Step="done"))

    def _note_written(self, order_id, outcome, progress):
        """Add to a cancelled order's Status what its job wrote before it stopped: those
        files stay, for whoever cancelled it to keep or delete."""
        if outcome is None or not (outcome.products or outcome.masters):
            return
        record = self.handler.journal.get(order_id)
        written = f"{len(outcome.products)} product(s)" + (
            f" and {len(outcome.masters)} master(s)" if outcome.masters else "")
        self.handler.transition(
            order_id, CANCELLED, f"{record.message}; it had written {written}, kept (Progress "
            "lists them)",
            only_from={CANCELLED}, progress=dict(progress, Step="cancelled",
                                                 Products=sorted(outcome.products),
                                                 Masters=dict(outcome.masters)))

    def _wait_for_masters(self, job, outcome, progress):
        """Queue *job*'s order again, to run once a job makes a master bias."""
        geometries = ", ".join(outcome.without_bias)
        waiting = (f"waiting for masters: no bias for {geometries} in this night or the master "
                   "library; run again once a job makes one (the night's bias frames), or at "
                   "the next start")
        if outcome.products:
            waiting += (f"; meanwhile {outcome.summary()} (made again, with the others, when "
                        "it runs again)")
        changed = self.handler.transition(job.record.id, QUEUED, waiting, only_from={RUNNING},
                                          progress=dict(progress, Step="waiting for masters"))
        if changed is not None:
            log.warning("[WO %s] its %d light frame(s) wait for a master bias for %s",
                        job.record.id, outcome.lights, geometries)
            with self._without_masters_lock:
                self._without_masters[job.record.id] = (job.record, set(outcome.without_bias))

    def _bias_made(self, order_id, geometries):
        """*order_id*'s job made a master bias of each of *geometries*: queue again the orders
        waiting for one of them. (Only those: an order waiting for another geometry would make
        its own frames' bias again, and queue this one again, for ever.)"""
        made = set(geometries)
        with self._without_masters_lock:
            ready = [waiting_id for waiting_id, (_, wanted) in self._without_masters.items()
                     if wanted & made]
            records = [self._without_masters.pop(waiting_id)[0] for waiting_id in ready]
        if ready:
            log.info("[WO %s] made a master bias for %s: %s queued again for calibration",
                     order_id, ", ".join(sorted(made)), ", ".join(sorted(ready)))
        for record in records:
            self.orders.put(record)  # taken only if still queued then (not cancelled)

    def _queue_again(self, job, waits_for, why, progress):
        """Queue *job*'s order again, saying *why*; return *waits_for* (the health report's
        key), or ``None`` if it was cancelled meanwhile."""
        waiting = (f"{why}; looked at again every {self.settings.room_retry_interval:g} s, "
                   "then run from the beginning (Preprocessor → Room Retry Interval)")
        step = "waiting for room" if waits_for == WAITING_FOR_ROOM else "waiting for executor"
        changed = self.handler.transition(job.record.id, QUEUED, waiting, only_from={RUNNING},
                                          progress=dict(progress, Step=step))
        return None if changed is None else waits_for

    def _wait_to_run_again(self, job, for_room):
        """Wait until *job* may run again, or it is cancelled, or the daemon stops: one
        retry interval (the executor is tried again then), and until the disks have room
        *for_room*."""
        while True:
            self._look_again.wait(self.settings.room_retry_interval)
            self._look_again.clear()
            if self._stopping.is_set():
                return
            record = self.handler.journal.get(job.record.id)
            if record is None or record.state != QUEUED:
                return  # cancelled meanwhile
            if not for_room:
                return
            try:
                check_room(job.location, self.settings)
            except NoRoom:
                continue
            except (PreprocessingError, OSError):
                pass  # the job will say what is wrong
            return

    def _runner_for_job(self):
        if self._runner is not None and getattr(self._runner, "broken", False):
            self._drop_runner(broken=True)
        if self._runner is None:
            self._runner = make_runner(self.settings)
            # Local workers start for each job after a pause: say where tasks run once, and
            # again only if that changes or the last executor broke.
            self._executor_line.log(self._runner.description, "preprocessor tasks run on %s",
                                    self._runner.description)
        return self._runner

    def _drop_runner(self, broken=False):
        runner, self._runner = self._runner, None
        if broken:
            self._executor_line.forget()  # the next executor is said, whatever it is
        if runner is not None:
            try:
                runner.close()
            except (RunnerError, OSError, RuntimeError) as error:
                log.warning("closing the broken executor: %s", error)


class _Reporter:
    """Journals a job's progress as :func:`.pipeline.calibrate` reports it."""

    def __init__(self, handler, job):
        self.handler = handler
        self.job = job
        self.progress = {"Step": "starting", "Frames Done": 0, "Frames Total": 0}
        self._phase = None
        self._written = 0.0
        self._unjournaled = False  # a progress report the journal could not take, said

    def start(self):
        """Mark the order running; ``False`` if it was cancelled meanwhile."""
        return self._write(self.job.record.id, {QUEUED})

    def __call__(self, step, done, total):
        self.progress.update({"Step": step, "Frames Done": done, "Frames Total": total})
        if step == "done":
            return  # the final state follows at once, with the whole report
        phase = step.split(":", 1)[0]
        now = time.monotonic()
        if phase != self._phase or now - self._written >= PROGRESS_INTERVAL:
            self._phase = phase
            try:
                written = self._write(self.job.record.id, {RUNNING})
            except JournalUnwritable as error:
                # Its disk is full: the frames, on theirs, go on; the order's end is journaled
                # once the journal takes changes again (Handler.transition).
                if not self._unjournaled:
                    log.warning("[WO %s] calibrating on, its progress unjournaled: %s",
                                self.job.record.id, error)
                    self._unjournaled = True
                return
            if not written:
                self.job.cancel()  # it was cancelled at the front desk: stop at once

    def _write(self, order_id, only_from):
        self._written = time.monotonic()
        previous = self.handler.transition(order_id, RUNNING, self.progress["Step"],
                                           only_from=only_from, progress=dict(self.progress))
        return previous is not None
