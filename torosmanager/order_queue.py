"""Orders waiting for a daemon's one job thread, best first, and the job under way.

The telescope and the preprocessor each run their long orders one at a time in a thread of
their own. The front desk only journals an order and puts it here (:meth:`OrderQueue.put`);
the job thread takes them (:meth:`OrderQueue.take`) by priority, then first come, first
served, skipping any that left the ``queued`` state while it waited (a Cancel), and setting
aside until their time those that may not start yet (the telescope's orders with a later
``Not Before``), so that the orders ready now do not wait behind them. The job under way is
:attr:`OrderQueue.current`, so that a Cancel, a target of opportunity or the daemon stopping
can stop it.
"""

import heapq
import itertools
import threading
import time

from .journal import QUEUED


class OrderQueue:
    """Journaled orders waiting their turn, and the job under way.

    Parameters
    ----------
    journal : Journal
        Where an order's current state is read when its turn comes.
    make_job : callable
        ``make_job(record)``: the job object for an order whose turn has come (it has at least
        ``record`` and ``stop``, a :class:`threading.Event`).
    """

    def __init__(self, journal, make_job):
        self.journal = journal
        self.make_job = make_job
        #: The lock :meth:`take` waits on and calls its *first* callback under: hold it to
        #: change what that callback looks at.
        self.condition = threading.Condition()
        self._heap = []
        #: Orders set aside until they may start: (monotonic seconds, their place in _heap).
        self._later = []
        self._arrivals = itertools.count()
        self._current = None
        self._stopping = False

    def put(self, record):
        """Queue an order: higher priority first, then first come, first served."""
        with self.condition:
            heapq.heappush(self._heap, (-record.priority, next(self._arrivals), record.id))
            self.condition.notify()

    def take(self, first=None, not_yet=None):
        """Wait for the next thing to do.

        Parameters
        ----------
        first : callable, optional
            Called with the lock held before any order is taken: whatever it returns other
            than ``None`` is done first (the telescope's parking).
        not_yet : callable, optional
            ``not_yet(record)``: real seconds before the order may start (0 or less: now).
            An order not ready is set aside for that long, and the next best taken.

        Returns
        -------
        object or None
            ``None`` once :meth:`stop` was called; else what *first* returned; else the job of
            the best order still queued in the journal and ready, which becomes
            :attr:`current` until :meth:`finished`.
        """
        with self.condition:
            while True:
                if self._stopping:
                    return None
                work = first() if first is not None else None
                if work is not None:
                    return work
                now = time.monotonic()
                while self._later and self._later[0][0] <= now:
                    heapq.heappush(self._heap, heapq.heappop(self._later)[1])
                if not self._heap:
                    self.condition.wait(self._later[0][0] - now if self._later else None)
                    continue
                place = heapq.heappop(self._heap)
                record = self.journal.get(place[2])
                if record is None or record.state != QUEUED:
                    continue  # cancelled while it waited
                wait = not_yet(record) if not_yet is not None else 0
                if wait > 0:
                    heapq.heappush(self._later, (now + wait, place))
                    continue
                self._current = self.make_job(record)
                return self._current

    def finished(self):
        """The job thread is done with :attr:`current`; return whether no order waits (ready
        or not)."""
        with self.condition:
            self._current = None
            return not self._heap and not self._later

    @property
    def current(self):
        """The job under way, or ``None``."""
        with self.condition:
            return self._current

    def current_if(self, order_id):
        """The job under way if it is *order_id*'s, else ``None``."""
        with self.condition:
            job = self._current
        return job if job is not None and job.record.id == order_id else None

    def waiting(self, ready=False):
        """How many orders wait (some may have been cancelled meanwhile); with *ready*, only
        those not set aside until a later time."""
        with self.condition:
            return len(self._heap) + (0 if ready else len(self._later))

    def describe(self):
        """For the health report: the order under way and how many wait."""
        with self.condition:
            current = self._current.record.id if self._current is not None else ""
            return {"Current": current, "Queued": len(self._heap) + len(self._later)}

    def stop(self):
        """Make :meth:`take` return ``None`` from now on; return the job under way (the caller
        stops it, its own way)."""
        with self.condition:
            self._stopping = True
            self.condition.notify_all()
            return self._current
