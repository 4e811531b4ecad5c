"""A night handed to a Dask cluster (``Preprocessor → Executor``: a scheduler's address) gives
the products local workers give. The cluster here is a local one on the loopback interface,
started and closed by the test."""

import numpy as np
import pytest
from astropy.io import fits

from observatory import said, status, wait_until
from preprocessing_data import make_night
from torosmanager.launcher import free_port
from torosmanager.preprocessor.executors import (DaskRunner, LocalRunner, RunnerError,
                                                 make_runner)
from torosmanager.preprocessor.pipeline import Settings, calibrate

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed: pip install 'dask[distributed]' "
                          "(in the test extra) to test the Dask executor")
dask = pytest.importorskip("dask")  # installed with distributed

#: Seconds the test waits for the local cluster's scheduler to answer.
CONNECT_TIMEOUT = 20.0


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
