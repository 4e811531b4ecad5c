"""Where the preprocessor's tasks run: local worker processes, or a Dask cluster.

``Preprocessor → Executor`` is ``local`` (the default): ``Preprocessor → Workers`` processes on
this machine. They are started with ``forkserver`` (``spawn`` where that is missing), never a
plain ``fork``: the daemon is multi-threaded, and a forked child of a threaded process can
inherit a lock held by another thread and hang. Any other value is the address of a
``dask.distributed`` scheduler (``tcp://10.0.0.5:8786``): a whole archive can then be handed to
a cluster. Its workers must see the frames under the same paths (a shared file system) and
have TOROS Manager installed; ``dask[distributed]`` is imported only in that case.

Both run the same task functions (``task_*`` in :mod:`.masters` and :mod:`.calibrate`), through
:meth:`TaskRunner.run`, which keeps a few tasks per worker in flight, yields results as they
come, and stops early when told to.
"""

import concurrent.futures
import multiprocessing
import multiprocessing.util
import os
import select
import signal
import tempfile
import threading
import time
from concurrent.futures.process import BrokenProcessPool

from ..unix_sockets import socket_temporary_directory

#: Tasks in flight per worker: one running, one ready to start the moment it ends.
IN_FLIGHT_PER_WORKER = 2
#: Seconds between checks of the stop flag while waiting for tasks.
POLL_SECONDS = 0.2
#: Seconds between two looks at Dask tasks under way.
DASK_POLL_SECONDS = 0.01
#: Seconds to wait for a Dask scheduler to answer when connecting.
DASK_CONNECT_TIMEOUT = 10.0
#: A Dask client's status while its scheduler answers (else "connecting", "closed"...).
DASK_RUNNING = "running"
#: How the reasons distributed gives for the tasks a lost or restarted scheduler cancelled
#: begin ("scheduler-connection-lost", "scheduler-restart").
SCHEDULER_LOST = "scheduler"
#: The modules holding the task functions, imported once by the fork server.
TASK_MODULES = ("torosmanager.preprocessor.masters", "torosmanager.preprocessor.calibrate",
                "torosmanager.preprocessor.layout")
#: The ``Executor`` value meaning local worker processes.
LOCAL = "local"
#: What multiprocessing adds to the temporary directory for the fork server's socket:
#: ``/pymp-XXXXXXXX/listener-XXXXXXXX``.
FORKSERVER_SOCKET_SUFFIX = 32
#: Why a job failed when one of its local workers ended abruptly (the pool is then unusable),
#: whether its tasks' results or the next task's submission found it.
WORKER_DIED = "a worker process died (killed, or out of memory?) while calibrating"
#: A worker's exit status once the process that started it has ended without stopping it.
WORKER_ORPHANED = 3


class Stopped(Exception):
    """The job was told to stop (cancelled, or the daemon is stopping).

    Attributes
    ----------
    finished : list of (int, object, Exception or None)
        The tasks under way when it stopped, finished since, as :meth:`TaskRunner.run`
        yields them (their products are whole).
    outcome : Outcome or None
        What the job had written when it stopped, once the pipeline has said.
    """

    def __init__(self, finished=()):
        super().__init__()
        self.finished = list(finished)
        self.outcome = None


class RunnerError(Exception):
    """The executor cannot run tasks (a worker died, the cluster is unreachable...)."""


class ExecutorUnreachable(RunnerError):
    """The Dask scheduler does not answer: a job may run once it is back (restarted, its
    computer up again)."""


class TaskRunner:
    """Runs task functions on workers; see :class:`LocalRunner` and :class:`DaskRunner`."""

    #: How many tasks run at once.
    workers = 1
    #: For Status and logs.
    description = ""

    def run(self, function, arguments, stop=None):
        """Run ``function(*args)`` for each ``args`` of *arguments*.

        Parameters
        ----------
        function : callable
            A module-level function (it is sent to the workers by name).
        arguments : iterable of tuple
        stop : threading.Event, optional
            When set, pending tasks are dropped and :class:`Stopped` is raised.

        Yields
        ------
        (int, object, Exception or None)
            The index of the arguments, the result (``None`` on error), and the exception the
            task raised, as tasks finish, in any order.

        Raises
        ------
        Stopped
            When *stop* was set.
        RunnerError
            When the executor itself failed.
        """
        window = max(1, self.workers * IN_FLIGHT_PER_WORKER)
        waiting = enumerate(arguments)
        pending = {}
        exhausted = False
        try:
            while True:
                if stop is not None and stop.is_set():
                    raise Stopped(self._finish_under_way(pending))
                while not exhausted and len(pending) < window:
                    try:
                        index, args = next(waiting)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[self._submit(function, args)] = index
                if not pending:
                    return
                for future in self._wait(list(pending), POLL_SECONDS):
                    index = pending.pop(future)
                    error = self._exception(future)
                    yield index, None if error else self._result(future, stop), error
        finally:
            for future in pending:
                future.cancel()

    def _finish_under_way(self, pending):
        """On a stop: drop the tasks of *pending* (future → index) not started yet, wait for
        those under way (a frame half written would not be said) and return them as
        :meth:`run` yields tasks."""
        under_way = {future: index for future, index in pending.items() if not future.cancel()}
        pending.clear()
        finished = []
        while under_way:
            for future in self._wait(list(under_way), POLL_SECONDS):
                index = under_way.pop(future)
                try:
                    error = self._exception(future)
                except RunnerError as lost:
                    error = lost
                finished.append((index, None if error else self._result(future, None),
                                 error))
        return finished

    def close(self):
        """Stop the workers (tasks under way are finished first)."""

    def _submit(self, function, args):
        raise NotImplementedError

    def _wait(self, futures, timeout):
        raise NotImplementedError

    def _exception(self, future):
        raise NotImplementedError

    def _result(self, future, stop):
        """The result of *future*, done."""
        return future.result()


class LocalRunner(TaskRunner):
    """*workers* processes on this machine.

    The processes start when the first task is submitted and stay for the next jobs.
    """

    def __init__(self, workers):
        self.workers = int(workers)
        self.description = f"{self.workers} local worker process(es)"
        methods = multiprocessing.get_all_start_methods()
        if "forkserver" in methods:
            _socket_directory_short_enough()
            context = multiprocessing.get_context("forkserver")
            # The server imports the task modules (astropy: seconds) once; each
            # worker forked from it starts at once, for this pool and the next.
            context.set_forkserver_preload(list(TASK_MODULES))
        else:
            context = multiprocessing.get_context("spawn")
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=context, initializer=_start_worker,
            initargs=(os.getpid(),))
        self.broken = False

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, function, args):
        try:
            return self._pool.submit(function, *args)
        except BrokenProcessPool:
            # A worker died since the last task ended: the same news as from a task's result.
            self.broken = True
            raise RunnerError(WORKER_DIED) from None
        except RuntimeError as error:  # the pool was shut down
            self.broken = True
            raise RunnerError(f"the worker processes are gone: {error}") from None

    def _wait(self, futures, timeout):
        done, _ = concurrent.futures.wait(futures, timeout=timeout,
                                          return_when=concurrent.futures.FIRST_COMPLETED)
        return done

    def _exception(self, future):
        error = future.exception()
        if isinstance(error, BrokenProcessPool):
            self.broken = True
            raise RunnerError(WORKER_DIED) from None
        return error


class DaskRunner(TaskRunner):
    """The workers of the ``dask.distributed`` scheduler at *address*.

    Raises
    ------
    RunnerError
        When ``dask.distributed`` is not installed or the scheduler does not answer.
    """

    def __init__(self, address, timeout=DASK_CONNECT_TIMEOUT):
        try:
            import distributed
        except ImportError:
            raise RunnerError(f"Preprocessor → Executor is {address!r}, a Dask scheduler, but "
                              "dask.distributed is not installed here (pip install "
                              "'dask[distributed]')") from None
        self.address = address
        self._client = _bounded_client(distributed, address, timeout)
        threads = sum(self._client.nthreads().values())
        self.workers = max(1, threads)
        self.description = f"Dask scheduler {address} ({threads} worker thread(s))"
        self.broken = False

    def close(self):
        self._client.close()

    def _lost(self, doing):
        """The scheduler is gone (the client closed, or connecting again): an
        :class:`ExecutorUnreachable`, the runner marked broken (the next job makes a new
        client, which waits for the scheduler as at the start)."""
        self.broken = True
        return ExecutorUnreachable(f"lost the Dask scheduler at {self.address} (Preprocessor "
                                   f"→ Executor) {doing}: its client is {self._client.status}")

    def _submit(self, function, args):
        if self._client.status != DASK_RUNNING:
            raise self._lost("before a task was sent")
        try:
            return self._client.submit(function, *args, pure=False)
        except Exception:   # noqa: BLE001 - the client's (ClosedClientError...): said if lost
            if self._client.status != DASK_RUNNING:
                raise self._lost("as a task was sent") from None
            raise

    def _result(self, future, stop):
        """The result of *future*, fetched from its worker: a hung worker (SIGSTOP) holds
        it, and a stop must not wait for it for ever."""
        while True:
            try:
                return future.result(timeout=POLL_SECONDS)
            except TimeoutError:
                if stop is not None and stop.is_set():
                    raise Stopped() from None
                if self._client.status != DASK_RUNNING:
                    raise self._lost("while a result was fetched") from None

    def _wait(self, futures, timeout):
        # distributed.wait() needs a default client, which this one is not (the daemon must
        # not change global state): poll, finely enough for tasks that take seconds.
        deadline = time.monotonic() + timeout
        while True:
            done = {future for future in futures if future.done()}
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(DASK_POLL_SECONDS)

    def _exception(self, future):
        if future.status == "cancelled":
            # Why, as distributed keeps it (FutureCancelledError.reason): a scheduler lost or
            # restarted cancels every task, whether or not the client is back already.
            why = getattr(getattr(getattr(future, "_state", None), "exception", None), "reason",
                          None)
            if str(why).startswith(SCHEDULER_LOST) or self._client.status != DASK_RUNNING:
                raise self._lost("while calibrating")
            raise RunnerError(f"the Dask cluster at {self.address} dropped a task (a worker "
                              "was lost)")
        return future.exception()


def _bounded_client(distributed, address, timeout):
    """A ``distributed.Client`` of the scheduler at *address*, made within twice *timeout*.

    ``Client(address, timeout=...)`` bounds the connection, not the handshake after it: at an
    address where something else listens (the dashboard's port, 8787, for the scheduler's,
    8786) it waited for ever, and the daemon with it. Made in a thread, waited for at most
    twice *timeout* seconds (the connection's own, and as long for the handshake).

    Raises
    ------
    ExecutorUnreachable
        Nothing answers, or not as a Dask scheduler within the time.
    RunnerError
        The address cannot be a scheduler's.
    """
    outcome = {}

    def make():
        try:
            outcome["client"] = distributed.Client(address, timeout=timeout,
                                                   set_as_default=False)
        except Exception as error:  # noqa: BLE001 - told apart below, in the caller's thread
            outcome["error"] = error

    maker = threading.Thread(target=make, name="dask-connect", daemon=True)
    maker.start()
    maker.join(2 * timeout)
    if maker.is_alive():    # left to end by itself: a client made too late is never used
        raise ExecutorUnreachable(f"cannot reach the Dask scheduler at {address} (Preprocessor "
                                  f"→ Executor): no answer as a Dask scheduler within "
                                  f"{2 * timeout:g} s (another server at that port?)")
    error = outcome.get("error")
    if isinstance(error, (OSError, TimeoutError)):
        raise ExecutorUnreachable(f"cannot reach the Dask scheduler at {address} "
                                  f"(Preprocessor → Executor): {error}") from None
    if isinstance(error, ValueError):
        raise RunnerError(f"cannot reach the Dask scheduler at {address} "
                          f"(Preprocessor → Executor): {error}") from None
    if error is not None:
        raise error
    return outcome["client"]


def make_runner(settings):
    """The :class:`TaskRunner` the ``Preprocessor`` settings ask for."""
    if settings.executor == LOCAL:
        return LocalRunner(settings.workers)
    return DaskRunner(settings.executor)


def _socket_directory_short_enough():
    """Make the fork server's socket bindable whatever ``TMPDIR`` is.

    multiprocessing puts it in ``<TMPDIR>/pymp-XXXXXXXX/``; a long ``TMPDIR`` (the demo's own,
    inside macOS's ``/var/folders/…``, or a deep one of a user's) makes the path too long for
    a Unix socket, and every job would fail with "AF_UNIX path too long". multiprocessing's
    directory is then made once, for this process, in a shorter one
    (:func:`~torosmanager.unix_sockets.socket_temporary_directory`), as Python 3.13 does by itself.
    """
    directory = socket_temporary_directory(FORKSERVER_SOCKET_SUFFIX)
    if directory == tempfile.gettempdir():
        return
    saved, tempfile.tempdir = tempfile.tempdir, directory
    try:
        multiprocessing.util.get_temp_dir()  # made now, and kept by the process
    finally:
        tempfile.tempdir = saved


def _start_worker(owner):
    """Set up a worker process of the process *owner* (its PID)."""
    # Ctrl-C in a terminal reaches the whole process group: the command that started the
    # workers decides what to do, not each worker with a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_end_with, args=(owner,), name="owner-watch", daemon=True).start()


def _end_with(owner):
    """(In a worker's thread.) End the worker, and the fork server it came from, once the
    process *owner* that started them has ended: killed (kill -9, out of memory), it did not
    shut its pool down, and its workers would wait for tasks for ever (each holds both ends of
    the pool's queue), the fork server for them."""
    if not _wait_for_the_end_of(owner):
        return
    parent = os.getppid()
    if parent not in (owner, 1):  # the fork server, idle once its workers are gone
        try:
            os.kill(parent, signal.SIGTERM)
        except OSError:
            pass  # ended already
    os._exit(WORKER_ORPHANED)


def _wait_for_the_end_of(pid):
    """Block until the process *pid* ends (a zombie not yet reaped counts as ended); return
    ``False`` where the system cannot tell (neither pidfd nor kqueue)."""
    if hasattr(os, "pidfd_open"):  # Linux 5.3 and later
        try:
            descriptor = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        select.select([descriptor], [], [])
        return True
    if hasattr(select, "kqueue"):  # macOS, the BSDs
        queue = select.kqueue()
        try:
            queue.control([select.kevent(pid, select.KQ_FILTER_PROC, select.KQ_EV_ADD,
                                         select.KQ_NOTE_EXIT)], 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        queue.control(None, 1)
        return True
    return False
