"""The queue a daemon's job thread takes its orders from (telescope, preprocessor)."""

import threading

import pytest

from torosmanager.journal import CANCELLED, QUEUED, Journal
from torosmanager.order_queue import OrderQueue

TIME = "2026-11-21T23:00:00.000Z"


class Job:
    def __init__(self, record):
        self.record = record
        self.stop = threading.Event()


@pytest.fixture
def journal(tmp_path):
    opened = Journal(str(tmp_path / "journal.sqlite3"))
    yield opened
    opened.close()


def queued(journal, order_id, priority):
    record, _ = journal.add({"ID": order_id, "WOType": "Preprocessing"}, "{}", priority,
                            f"requested: {priority}", TIME, "received")
    journal.transition(order_id, QUEUED, "queued", TIME)
    return journal.get(order_id)


def test_higher_priority_first_then_first_come_first_served(journal):
    orders = OrderQueue(journal, Job)
    for order_id, priority in [("a", 2.0), ("b", 7.5), ("c", 2.0), ("d", 7.5), ("e", 0.0)]:
        orders.put(queued(journal, order_id, priority))
    taken = []
    for _ in range(5):
        job = orders.take()
        taken.append(job.record.id)
        assert orders.current is job
        orders.finished()
    assert taken == ["b", "d", "a", "c", "e"]
    assert orders.current is None


def test_an_order_cancelled_while_it_waited_is_skipped(journal):
    orders = OrderQueue(journal, Job)
    orders.put(queued(journal, "a", 5.0))
    orders.put(queued(journal, "b", 1.0))
    journal.transition("a", CANCELLED, "cancelled", TIME)
    assert orders.take().record.id == "b"
    assert orders.finished() is True


def test_the_job_under_way_is_found_by_its_order_id(journal):
    orders = OrderQueue(journal, Job)
    orders.put(queued(journal, "a", 5.0))
    orders.put(queued(journal, "b", 1.0))
    job = orders.take()
    assert orders.current_if("a") is job and orders.current_if("b") is None
    assert orders.describe() == {"Current": "a", "Queued": 1}
    assert orders.finished() is False


def test_other_work_goes_before_any_order(journal):
    orders = OrderQueue(journal, Job)
    orders.put(queued(journal, "a", 9.0))
    parks = ["park"]

    def first():
        return parks.pop() if parks else None

    assert orders.take(first) == "park"
    assert orders.current is None
    assert orders.take(first).record.id == "a"


def test_take_waits_for_an_order_and_stop_releases_it(journal):
    orders = OrderQueue(journal, Job)
    taken = []
    thread = threading.Thread(target=lambda: taken.append(orders.take()))
    thread.start()
    thread.join(0.2)
    assert thread.is_alive()  # nothing to take yet
    orders.put(queued(journal, "a", 1.0))
    thread.join(10)
    assert [job.record.id for job in taken] == ["a"]

    thread = threading.Thread(target=lambda: taken.append(orders.take()))
    thread.start()
    assert orders.stop() is taken[0]  # the job under way, for the caller to stop
    thread.join(10)
    assert not thread.is_alive() and taken[-1] is None
    orders.put(queued(journal, "b", 1.0))
    assert orders.take() is None  # stopped for good


def test_an_order_not_ready_is_set_aside_and_the_ready_ones_taken_meanwhile(journal):
    """The telescope's order with a later Not Before does not hold up those ready now; it is
    taken once its time comes, and counts as waiting, though not as ready."""
    orders = OrderQueue(journal, Job)
    orders.put(queued(journal, "later", 9.0))
    orders.put(queued(journal, "now", 1.0))
    due = {"later": 1.0, "now": 0.0}

    def not_yet(record):
        return due[record.id]

    assert orders.take(not_yet=not_yet).record.id == "now"
    assert orders.describe() == {"Current": "now", "Queued": 1}
    assert orders.waiting() == 1 and orders.waiting(ready=True) == 0
    assert orders.finished() is False  # one waits, though not ready
    due["later"] = 0.0
    started = threading.Event()
    thread = threading.Thread(target=lambda: started.set() or orders.take(not_yet=not_yet))
    thread.start()
    started.wait(10)
    thread.join(0.1)
    assert thread.is_alive()  # set aside 1 s
    thread.join(10)
    assert orders.current.record.id == "later"
