"""Nothing accepted is lost: kill -9 and restart, SIGTERM, SIGHUP."""

import os
import signal
import sqlite3
import subprocess
import threading
import time

import yaml

from test_front_desk import observation, wait_for_state
from torosmanager.journal import Journal, RUNNING
from torosmanager.launcher import daemon_command, free_port

ORDERS = 60
CLIENT_THREADS = 6


def test_kill_9_loses_no_accepted_order(site):
    """Receipts returned before a kill -9 all survive it, with their history."""
    site.start("scheduler")  # the telescope daemon is down: orders wait, queued, in the journal
    receipts, lock = [], threading.Lock()

    def submit(offset):
        proxy = site.proxy("scheduler")
        for n in range(offset, ORDERS, CLIENT_THREADS):
            receipt = proxy.front_desk(observation(f"durable-{n}"))
            with lock:
                receipts.append(receipt)

    threads = [threading.Thread(target=submit, args=(k,)) for k in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    site.daemons["scheduler"].kill()  # SIGKILL: no chance to tidy up

    assert len(receipts) == ORDERS
    site.start("scheduler")
    scheduler = site.proxy("scheduler")
    for receipt in receipts:
        status = scheduler.front_desk({"WOType": "Status", "ID": receipt["ID"]})
        assert status["Status"] == "queued"  # waiting for the telescope, as before the kill
        assert status["History"][0]["Status"] == "accepted"
        assert status["Work Order"]["RA"] == 346.5


def test_an_observation_running_when_the_daemon_died_is_interrupted_with_the_reason(site):
    # The telescope executor had started the order when the power went.
    journal = Journal(str(site.directory / "telescope.sqlite3"))
    journal.add({"ID": "midway", "WOType": "Observation", "RA": 10.0, "Dec": 0.0},
                "{}", 5.0, "default priority: 5", "2026-11-22T02:00:00.000Z", "received")
    journal.transition("midway", RUNNING, "exposing 1/1", "2026-11-22T02:01:00.000Z")
    journal.close()
    site.start("telescope")
    status = site.proxy("telescope").front_desk({"WOType": "Status", "ID": "midway"})
    assert status["Status"] == "interrupted"  # the scheduler may try it again
    assert status["Message"] == "the telescope daemon stopped during the observation"


def test_a_journal_row_that_cannot_be_read_fails_its_order_not_the_daemons_start(site):
    site.start("scheduler")
    for order_id in ("before", "edited", "after"):
        site.proxy("scheduler").front_desk(observation(order_id))
    site.stop()
    with sqlite3.connect(site.directory / "scheduler.sqlite3") as db:  # by hand, or a bad disk
        db.execute("UPDATE order_texts SET work_order = '{\"RA\": 346' "
                   "WHERE order_key = (SELECT key FROM orders WHERE id = 'edited')")
    db.close()

    site.start("scheduler")
    scheduler = site.proxy("scheduler")
    edited = scheduler.front_desk({"WOType": "Status", "ID": "edited"})
    assert edited["Status"] == "failed"
    assert edited["Message"].startswith("order 'edited': its journal row cannot be read: "
                                        "work_order '{\"RA\": 346' is not a JSON object (")
    for order_id in ("before", "after"):
        assert scheduler.front_desk({"WOType": "Status", "ID": order_id})["Status"] == "queued"
    assert ("kept as found in the journal's table damaged_orders: the order is failed"
            in site.log("scheduler"))


def test_sigterm_stops_cleanly_with_status_0(site):
    site.start("telescope")
    site.proxy("telescope").front_desk(observation("kept"))
    assert site.daemons["telescope"].stop() == 0
    log = site.log("telescope")
    assert "received SIGTERM; stopping" in log and "telescope daemon stopped" in log
    wal = site.directory / "telescope.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed on close
    site.start("telescope")
    status = site.proxy("telescope").front_desk({"WOType": "Status", "ID": "kept"})
    assert status["History"][0]["Status"] == "accepted"


def test_sigterm_during_dispatch_retries_leaves_the_order_queued(make_site):
    site = make_site({"Scheduler": {"Dispatch Attempts": 1000, "Dispatch Retry Interval": 60}})
    site.start("scheduler")  # the dome daemon is down: the Dome order waits between tries
    site.proxy("scheduler").front_desk({"ID": "waiting", "WOType": "Dome", "Blink02": True})
    started = time.monotonic()
    assert site.daemons["scheduler"].stop() == 0
    assert time.monotonic() - started < 10  # a waiting retry does not hold up the stop
    site.start("dome")  # listening before the scheduler's first try after its restart
    site.start("scheduler")
    wait_for_state(site.proxy("scheduler"), "waiting", "done")


def test_sighup_reopens_the_log_file(site):
    site.start("dome")
    log_path = site.directory / "dome.log"
    rotated = site.directory / "dome.log.old"
    os.rename(log_path, rotated)  # what logrotate does
    os.kill(site.daemons["dome"].pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not log_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    site.proxy("dome").front_desk({"ID": "after-hup", "WOType": "Dome", "Blink02": True})
    assert "[WO after-hup]" in site.log("dome")
    assert "[WO after-hup]" not in rotated.read_text()


def test_a_second_daemon_on_the_same_journal_does_not_start(site, tmp_path):
    """Two daemons on one journal would each run the other's running orders again (the
    scheduler dispatching twice): the second refuses to start, naming the first."""
    site.start("scheduler")
    first = site.daemons["scheduler"]
    config = yaml.safe_load(open(site.config_path))
    config["Scheduler Address"]["Port"] = free_port()
    twin = tmp_path / "twin.conf.yaml"
    twin.write_text(yaml.safe_dump(config))
    started = subprocess.run([*daemon_command("scheduler"), "--config", str(twin)],
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 78
    journal = site.directory / "scheduler.sqlite3"
    assert (f"the journal {journal} is in use by another daemon (pid {first.pid}): one daemon "
            f"per journal ({journal}.lock is locked); not starting") in site.log("scheduler")
    # The first goes on; stopped, it lets go: another may start on the journal.
    assert site.proxy("scheduler").front_desk({"WOType": "Status"})["Service"] == "scheduler"
    assert first.stop() == 0
    site.start("scheduler")

