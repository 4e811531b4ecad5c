"""A night handed to a Dask cluster (``Preprocessor → Executor``: a scheduler's address) gives
the products local workers give. The cluster here is a local one on the loopback interface,
started and closed by the test."""

import numpy as np
import pytest
from astropy.io import fits

from observatory import said, status, wait_until
from preprocessing_data import make_night
from torosmanager.launcher import free_port
from torosmanager.preprocessor.executors import (DaskRunner, ExecutorUnreachable, LocalRunner,
                                                 RunnerError, make_runner)
from torosmanager.preprocessor.pipeline import Settings, calibrate

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed: pip install 'dask[distributed]' "
                          "(in the test extra) to test the Dask executor")
dask = pytest.importorskip("dask")  # installed with distributed

#: Seconds the test waits for the local cluster's scheduler to answer.
CONNECT_TIMEOUT = 20.0
#: Seconds a Dask client tries to reconnect to a lost scheduler before it closes (its 10 s, and
#: room for a loaded machine).
CLIENT_GIVES_UP = 60
#: Seconds within which a runner gives a scheduler up that does not answer (its timeout 1 s).
GIVEN_UP_WITHIN = 30
#: Seconds each task of the lost-scheduler test takes: under way when the scheduler goes.
TASK_SECONDS = 5.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # Threads in this process, but a real TCP scheduler, reached as a remote one would be; its
    # scratch space in this test's directory, not left in TMPDIR.
    scratch = str(tmp_path_factory.mktemp("dask"))
    with dask.config.set({"temporary-directory": scratch}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                     protocol="tcp://", host="127.0.0.1",
                                     dashboard_address=None) as made:
        yield made


def test_a_night_on_a_dask_cluster_gives_the_same_products(tmp_path, cluster):
    night = make_night(tmp_path / "dask")
    settings = Settings(executor=cluster.scheduler_address)
    runner = make_runner(settings)
    try:
        assert isinstance(runner, DaskRunner) and runner.workers == 2
        on_dask = calibrate(str(night.directory), settings, runner)
    finally:
        runner.close()
    on_dask_pixels = {path.rsplit("/", 1)[1]: fits.getdata(path) for path in on_dask.products}
    local = LocalRunner(2)
    try:
        here = calibrate(str(night.directory), Settings(), local)
    finally:
        local.close()
    assert len(here.products) == len(on_dask.products) == 3 and not on_dask.skipped
    for path in here.products:
        np.testing.assert_array_equal(fits.getdata(path), on_dask_pixels[path.rsplit("/", 1)[1]])


def test_an_unreachable_scheduler_is_a_clear_error():
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(RunnerError, match=f"cannot reach the Dask scheduler at {address}"):
        DaskRunner(address, timeout=1.0)


def test_a_job_waits_for_its_dask_scheduler_and_runs_once_it_answers(make_site, tmp_path):
    """The scheduler restarted, or its computer down: each job failed for good, its night
    left uncalibrated until someone sent it again (found by a helper's audit)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    site = make_site({"Preprocessor": {"Executor": address, "Room Retry Interval": 0.5}})
    site.start("preprocessor")
    proxy = site.proxy("preprocessor")
    night = make_night(site.directory / "data", biases=3, darks={}, flats={},
                       lights=[("R", 10.0, 1)])
    proxy.front_desk({"ID": "night", "WOType": "Preprocessing",
                      "File Location": str(night.directory)})
    answer = said(proxy, "night", "waiting: cannot reach", "the order to wait for its Dask "
                                                           "scheduler")
    assert answer["Status"] == "queued"
    assert answer["Message"].startswith(f"waiting: cannot reach the Dask scheduler at {address} "
                                        "(Preprocessor → Executor): ")
    health = proxy.front_desk({"WOType": "Status"})["Devices"]["Calibration"]
    assert health["Waiting for Executor"] == "night"
    scratch = str(tmp_path / "dask")
    with dask.config.set({"temporary-directory": scratch}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                     protocol="tcp://", host="127.0.0.1", scheduler_port=port,
                                     dashboard_address=None):
        done = wait_until(lambda: status(proxy, "night")["Status"] == "done" and
                          status(proxy, "night"), "the order to run on the cluster")
    assert done["Progress"]["Frames Done"] == 4 and not done["Progress"]["Skipped"]


def local_cluster(scratch, port=0):
    """A Dask cluster of threads in this process, its scheduler on 127.0.0.1:*port* (TCP, as a
    remote one is reached), its scratch space in *scratch*."""
    with dask.config.set({"temporary-directory": str(scratch)}):
        return distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                        protocol="tcp://", host="127.0.0.1",
                                        scheduler_port=port, dashboard_address=None)


def test_a_scheduler_restarted_between_jobs_is_connected_again(make_site, tmp_path):
    """The Dask scheduler restarted between two jobs (down longer than the client's own
    reconnection, 10 s): every later order failed at once ("ClosedClientError: Client is
    closed") until the daemon itself was restarted, its Status still showing the cluster."""
    port = free_port()
    site = make_site({"Preprocessor": {"Executor": f"tcp://127.0.0.1:{port}",
                                       "Room Retry Interval": 0.5}})
    night = make_night(site.directory / "data", biases=3, darks={}, flats={},
                       lights=[("R", 10.0, 1)])
    proxy = site.proxy("preprocessor")
    cluster = local_cluster(tmp_path / "first", port)
    try:
        site.start("preprocessor")
        proxy.front_desk({"ID": "before", "WOType": "Preprocessing",
                          "File Location": str(night.directory)})
        wait_until(lambda: status(proxy, "before")["Status"] == "done", "the first order")
    finally:
        cluster.close()
    # The daemon's client gives up reconnecting after 10 s, and closes.
    wait_until(lambda: "closing client" in site.log("preprocessor").lower()
               or "failed to reconnect" in site.log("preprocessor").lower(),
               "the daemon's client to give the scheduler up", patience=CLIENT_GIVES_UP)
    later = make_night(site.directory / "data", name="20261123", biases=3, darks={}, flats={},
                       lights=[("R", 10.0, 1)])
    with local_cluster(tmp_path / "second", port):
        proxy.front_desk({"ID": "after", "WOType": "Preprocessing",
                          "File Location": str(later.directory)})
        done = wait_until(lambda: status(proxy, "after")["Status"] in ("done", "failed")
                          and status(proxy, "after"), "the order after the restart")
    assert done["Status"] == "done", done["Message"]


def test_an_address_where_no_dask_scheduler_answers_is_given_up_not_waited_on(tmp_path):
    """Something else listening at the address (the dashboard's port, 8787, for the
    scheduler's, 8786): the client's handshake waited for ever, and the daemon with it."""
    import http.server
    import threading

    # Its handler waits for a request line the Dask client never sends: a thread each, so
    # that the server can be shut down meanwhile.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             http.server.BaseHTTPRequestHandler)
    server.daemon_threads = True
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    outcome = []

    def connect():
        try:
            DaskRunner(f"tcp://127.0.0.1:{server.server_address[1]}", timeout=1.0)
        except ExecutorUnreachable as error:
            outcome.append(error)

    trying = threading.Thread(target=connect, daemon=True)
    trying.start()
    trying.join(GIVEN_UP_WITHIN)
    server.shutdown()
    server.server_close()
    assert not trying.is_alive(), "DaskRunner still connecting"
    assert outcome and f"127.0.0.1:{server.server_address[1]}" in str(outcome[0])


def test_a_scheduler_lost_during_a_job_makes_it_wait_not_fail(tmp_path):
    """The Dask scheduler killed mid-job: the order failed for good ("the Dask cluster
    dropped a task"), though a scheduler down when a job starts makes the order wait."""
    import threading
    import time

    cluster = local_cluster(tmp_path / "lost")
    runner = DaskRunner(cluster.scheduler_address)
    raised = []

    def run():
        try:
            list(runner.run(time.sleep, [(TASK_SECONDS,)] * 4))
        except RunnerError as error:
            raised.append(error)

    job = threading.Thread(target=run, daemon=True)
    job.start()
    wait_until(lambda: runner._client.processing() and any(runner._client.processing().values()),
               "the tasks to start")
    cluster.close()
    job.join(GIVEN_UP_WITHIN)
    runner.close()
    assert not job.is_alive()
    assert raised and isinstance(raised[0], ExecutorUnreachable), raised
    assert str(raised[0]).startswith("lost the Dask scheduler at ")
    assert runner.broken


def test_a_task_whose_dask_workers_died_is_said_so_in_words_not_dasks():
    """"KilledWorker: Attempted to run task 'task_calibrate-…' on 4 different workers, but
    all those workers died while running it. …https://distributed.dask.org/…", once per
    frame, and not a word of memory."""
    from torosmanager.preprocessor.pipeline import _reason

    killed = distributed.KilledWorker("task_calibrate-1", None, allowed_failures=3)
    assert _reason(killed) == ("the Dask workers that ran it died each time (out of memory? "
                               "their own logs say)")
