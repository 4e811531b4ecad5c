"""The preprocessor daemon, a real process over XML-RPC, as a specification: a Preprocessing
order calibrates a night in the background while Status follows it; bad inputs are refused at
the front desk or reported in Status; Cancel stops a job; a job under way when the daemon stops
runs again from the beginning at the next start."""

import os
import re
import shutil
import signal
import xmlrpc.client
from datetime import datetime, timedelta, timezone

import pytest
from astropy.io import fits

from conftest import EVENING, Site
from observatory import children, ended, status, wait_until
from preprocessing_data import make_night
from torosmanager.workorders import FaultCode

#: Copies of a light frame that make a job last a few seconds here (each is written and
#: flushed to the disk).
MANY_LIGHTS = 400


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    directory = tmp_path_factory.mktemp("preprocessor")
    made = Site(directory, {"Preprocessor": {"Master Library": str(directory / "masters"),
                                             "Workers": 2}})
    made.start("preprocessor")
    yield made
    made.stop()


@pytest.fixture(scope="module")
def data(site):
    return site.directory / "data"


@pytest.fixture(scope="module")
def night(data):
    made = make_night(data)
    (made.raw / "garbage.fits").write_bytes(b"this is not FITS" * 300)
    return made


def big_night(data, name):
    """A night of 256x256 frames with :data:`MANY_LIGHTS` lights."""
    made = make_night(data, name=name, lights=[("R", 30.0, 1)],
                      simulator={"Width": 256, "Height": 256})
    light = made.files["LIGHT"][0]
    for number in range(MANY_LIGHTS):
        shutil.copy(light, made.raw / f"copy{number:03d}.fits")
    return made


def calibrating_a_big_night(site, directory, order_id):
    """Start *site*'s preprocessor and submit a :func:`big_night` as *order_id*; once its
    frames are being calibrated, the daemon's proxy."""
    site.start("preprocessor")
    big = big_night(directory / "data", "20261128")
    proxy = site.proxy("preprocessor")
    submit(site, {"ID": order_id, "WOType": "Preprocessing", "File Location": str(big.directory)})
    wait_until(lambda: status(proxy, order_id)["Progress"].get("Step", "")
               .startswith("calibrating"), "the job to calibrate")
    return proxy


def submit(site, order):
    return site.proxy("preprocessor").front_desk(order)


def fault(call, order):
    with pytest.raises(xmlrpc.client.Fault) as caught:
        call(order)
    return caught.value


@pytest.fixture(scope="module")
def result(site, night):
    """The night, submitted as a Preprocessing order, once it is done."""
    receipt = submit(site, {"ID": "p-1", "WOType": "Preprocessing", "User": "test",
                            "File Location": str(night.directory)})
    assert receipt["Status"] in ("queued", "running")
    return ended(site.proxy("preprocessor"), "p-1", "done")


class TestANight:
    def test_status_reports_the_products(self, night, result):
        progress = result["Progress"]
        assert sorted(progress["Products"]) == sorted(
            str(night.reduced / path.rsplit("/", 1)[1]) for path in night.files["LIGHT"])
        assert all((night.reduced / path.rsplit("/", 1)[1]).exists()
                   for path in progress["Products"])
        assert sorted(progress["Masters"]) == ["bias 128x128 bin 1x1",
                                               "dark 30 s 128x128 bin 1x1",
                                               "flat R 128x128 bin 1x1"]
        assert result["Message"].startswith(f"3 frame(s) calibrated into {night.reduced}")

    def test_status_reports_what_was_skipped_and_why(self, night, result):
        skipped = result["Progress"]["Skipped"]
        assert len(skipped) == 1
        assert skipped[0].startswith(f"{night.raw / 'garbage.fits'}: not a FITS file")

    def test_status_followed_the_steps(self, result):
        progress = result["Progress"]
        assert progress["Frames Done"] == progress["Frames Total"] == 17
        steps = [entry["Reason"] for entry in result["History"] if entry["Status"] == "running"]
        for expected in ("reading headers", "bias 128x128 bin 1x1: combining 5 frame(s)",
                         "flat R 128x128 bin 1x1: measuring 5 flat(s)",
                         "calibrating 128x128 bin 1x1: 0/3"):
            assert expected in steps
        assert steps.index("reading headers") < steps.index("calibrating 128x128 bin 1x1: 0/3")

    def test_the_original_managers_request(self, site, night):
        receipt = submit(site, {"Request": "Exposure Calibration",
                                "File Location": f"file://{night.directory}"})
        assert receipt["WOType"] == "Preprocessing"
        done = ended(site.proxy("preprocessor"), receipt["ID"], "done")
        assert len(done["Progress"]["Products"]) == 3

    def test_where_tasks_run_is_logged_once_for_the_nights_jobs(self, site, night, result):
        # Local workers start for each job (they are let go while nothing waits): the log
        # says where tasks run at the first job, not again at each.
        submit(site, {"ID": "p-again", "WOType": "Preprocessing", "User": "test",
                      "File Location": str(night.directory)})
        ended(site.proxy("preprocessor"), "p-again", "done")
        said = [line for line in site.log("preprocessor").splitlines()
                if "preprocessor tasks run on 2 local worker process(es)" in line]
        assert len(said) == 1, said

    def test_caldate_is_the_sites_clock_time(self, result):
        # The site runs on a simulated clock from EVENING, weeks from the wall clock's date.
        for path in result["Progress"]["Products"]:
            written = datetime.fromisoformat(fits.getheader(path)["CALDATE"])
            assert EVENING <= written.replace(tzinfo=timezone.utc) < EVENING + timedelta(hours=1)

    def test_the_masters_went_to_the_library(self, site, result):
        library = site.directory / "masters"
        assert sorted(path.parent.name for path in library.rglob("*.fits")) == [
            "128x128_1x1", "30s", "R"]


class TestRefusals:
    def test_an_empty_directory_is_refused_at_once(self, site, data):
        empty = data / "20261130"
        (empty / "raw").mkdir(parents=True)
        refusal = fault(site.proxy("preprocessor").front_desk,
                        {"WOType": "Preprocessing", "File Location": str(empty)})
        assert refusal.faultCode == FaultCode.INVALID
        assert f"'File Location': received '{empty}'" in refusal.faultString
        assert "this one has none" in refusal.faultString

    def test_a_list_with_a_file_outside_the_allowed_directories(self, site, night):
        refusal = fault(site.proxy("preprocessor").front_desk,
                        {"WOType": "Preprocessing",
                         "File Location": [night.files["LIGHT"][0], "/etc/passwd"]})
        assert "'File Location': received '/etc/passwd'; allowed: a path inside" in \
            refusal.faultString

    def test_products_that_cannot_be_written_fail_saying_what_the_job_was_doing(self, site,
                                                                             data):
        # (Root writes anywhere: a file where the products' directory should be stops it.)
        night = make_night(data, name="20261130", biases=3, darks={}, flats={},
                           lights=[("R", 10.0, 1)])
        (night.directory / "reduced").write_text("not a directory")
        submit(site, {"ID": "p-unwritable", "WOType": "Preprocessing",
                      "File Location": str(night.directory)})
        failed = ended(site.proxy("preprocessor"), "p-unwritable", "failed")
        reduced = night.directory / "reduced"
        assert failed["Message"] == (f"cannot make {reduced}, where this job's products go: "
                                     f"{reduced} is there, and not a directory")
        assert failed["Progress"]["Step"] == "failed"

    def test_a_night_of_nothing_usable_fails_with_the_reasons(self, site, data):
        raw = data / "20261129" / "raw"
        raw.mkdir(parents=True)
        (raw / "zeros.fits").write_bytes(b"\0" * 5760)
        submit(site, {"ID": "p-bad", "WOType": "Preprocessing", "File Location": str(raw)})
        failed = ended(site.proxy("preprocessor"), "p-bad", "failed")
        assert failed["Message"].startswith("nothing could be calibrated")
        skipped = failed["Progress"]["Skipped"]
        assert len(skipped) == 1 and skipped[0].startswith(f"{raw / 'zeros.fits'}: not a FITS")


class TestFramesStillBeingCopied:
    def test_a_frame_copied_in_while_the_job_reads_the_night_is_waited_for(self, site, data):
        """A night submitted while its last frame is still being copied in (the file there,
        cut short): the job says it waits for it, and calibrates it once it is whole,
        instead of skipping it for good."""
        proxy = site.proxy("preprocessor")
        night = make_night(data, name="20261201")
        light = night.files["LIGHT"][-1]
        content = open(light, "rb").read()
        with open(light, "wb") as stream:
            stream.write(content[:len(content) // 3])
        submit(site, {"ID": "p-copied", "WOType": "Preprocessing",
                      "File Location": str(night.directory)})
        waiting = wait_until(lambda: (step := status(proxy, "p-copied")["Progress"]
                                      .get("Step", "")).startswith("waiting") and step,
                             "the job to wait for the frame")
        assert waiting == f"waiting for 1 file(s) still being written: {light}"
        with open(light, "wb") as stream:
            stream.write(content)
        done = ended(proxy, "p-copied", "done")
        assert done["Progress"]["Skipped"] == []
        assert len(done["Progress"]["Products"]) == len(night.files["LIGHT"])
        assert f"{light} is whole now" in site.log("preprocessor")


class TestWaitingForMasters:
    def test_light_frames_without_a_bias_wait_for_one_and_are_calibrated_once_it_is_made(
            self, site, data):
        """A target of opportunity's frames, taken without calibration frames before the
        camera's first masters: their order waits, then runs again once a job makes a master
        bias of their geometry (and only such a job: a bias of another size leaves it
        waiting)."""
        proxy = site.proxy("preprocessor")
        night = make_night(data, name="20261124", biases=3, darks={}, flats={}, lights=[])
        lights = make_night(data, name="20261124", biases=0, darks={}, flats={},
                            lights=[("R", 10.0, 2)], simulator=SMALL, order_id="small")
        for order_id in ("p-no-bias", "p-cancelled"):
            submit(site, {"ID": order_id, "WOType": "Preprocessing",
                          "File Location": str(night.directory)})
            waiting = wait_until(lambda: waiting_for_masters(proxy, order_id),
                                 f"{order_id} to wait for masters")
        assert waiting["Message"] == (
            "waiting for masters: no bias for 96x64 bin 1x1 in this night or the master "
            "library; run again once a job makes one (the night's bias frames), or at the "
            "next start")
        assert waiting["Progress"]["Step"] == "waiting for masters"
        assert list(waiting["Progress"]["Masters"]) == ["bias 128x128 bin 1x1"]
        for light in lights.files["LIGHT"]:
            assert f"{light}: no bias for 96x64 bin 1x1, in this night or the master library" \
                in waiting["Progress"]["Skipped"]
        assert calibration(proxy)["Waiting for Masters"] == ["p-cancelled", "p-no-bias"]
        assert proxy.front_desk({"WOType": "Cancel", "ID": "p-cancelled"})["Status"] == \
            "cancelled"
        assert calibration(proxy)["Waiting for Masters"] == ["p-no-bias"]
        # The night's bias frames come, in an order of their own.
        biases = make_night(data, name="20261124", biases=3, darks={}, flats={}, lights=[],
                            simulator=SMALL, order_id="biases").files["BIAS"]
        submit(site, {"ID": "p-biases", "WOType": "Preprocessing", "File Location": biases})
        ended(proxy, "p-biases", "done")
        done = ended(proxy, "p-no-bias", "done")
        assert sorted(os.path.basename(path) for path in done["Progress"]["Products"]) == \
            sorted(os.path.basename(path) for path in lights.files["LIGHT"])
        assert "p-no-bias queued again for calibration" in site.log("preprocessor")
        assert "Waiting for Masters" not in calibration(proxy)
        assert status(proxy, "p-cancelled")["Status"] == "cancelled"


    def test_a_night_whose_other_frames_calibrate_still_waits_for_the_missing_bias(
            self, site, data):
        """Frames of another camera mode (a target of opportunity binned 2×2) in a night whose
        other frames have their bias: the order is not done while they wait."""
        proxy = site.proxy("preprocessor")
        night = make_night(data, name="20261126", biases=3, darks={}, flats={},
                           lights=[("R", 10.0, 1)])
        # (A size of its own: the library keeps the masters of the module's other tests.)
        small = make_night(data, name="20261126", biases=0, darks={}, flats={},
                           lights=[("R", 10.0, 1)], simulator=SMALLER, order_id="small")
        submit(site, {"ID": "p-mixed", "WOType": "Preprocessing",
                      "File Location": str(night.directory)})
        waiting = wait_until(lambda: waiting_for_masters(proxy, "p-mixed"),
                             "p-mixed to wait for masters")
        assert waiting["Message"].startswith("waiting for masters: no bias for 80x48 bin 1x1")
        assert "; meanwhile 1 frame(s) calibrated into" in waiting["Message"]
        assert [os.path.basename(path) for path in waiting["Progress"]["Products"]] == \
            [os.path.basename(path) for path in night.files["LIGHT"]]
        biases = make_night(data, name="20261126", biases=3, darks={}, flats={}, lights=[],
                            simulator=SMALLER, order_id="biases").files["BIAS"]
        submit(site, {"ID": "p-small-biases", "WOType": "Preprocessing",
                      "File Location": biases})
        done = ended(proxy, "p-mixed", "done")
        assert sorted(os.path.basename(path) for path in done["Progress"]["Products"]) == \
            sorted(os.path.basename(path)
                   for path in night.files["LIGHT"] + small.files["LIGHT"])


#: Detectors of other sizes than the nights' (for frames no master bias of theirs fits).
SMALL = {"Width": 96, "Height": 64}
SMALLER = {"Width": 80, "Height": 48}


def calibration(proxy):
    """The preprocessor's health report on its jobs."""
    return proxy.front_desk({"WOType": "Status"})["Devices"]["Calibration"]


def waiting_for_masters(proxy, order_id):
    """*order_id*'s Status once it waits for masters, else ``None``."""
    found = status(proxy, order_id)
    if found["Progress"].get("Step") == "waiting for masters" and found["Status"] == "queued":
        return found
    return None


def test_a_master_library_that_cannot_be_written_is_in_the_health_report(tmp_path_factory):
    """A night's masters that cannot be kept in the library were only a note in their order
    and a line in the log: later nights, which would take them from the library, lacked them
    with nothing in the health report to say why. The report says so until a job keeps its
    masters again."""
    directory = tmp_path_factory.mktemp("unwritable-library")
    blocker = directory / "not-a-directory"
    blocker.write_text("")
    made = Site(directory, {"Preprocessor": {"Master Library": str(blocker / "masters")}})
    made.start("preprocessor")
    try:
        proxy = made.proxy("preprocessor")
        first = make_night(directory / "data", name="20261125")
        submit(made, {"ID": "unkept", "WOType": "Preprocessing",
                      "File Location": str(first.directory)})
        assert ended(proxy, "unkept", "done")["Progress"]["Masters"]
        problem = calibration(proxy)["Master Library Problem"]
        assert problem.startswith(f"the masters could not be kept in the master library "
                                  f"{blocker / 'masters'}: ")
        assert problem.endswith(" (order unkept)")
        blocker.unlink()
        blocker.mkdir()  # mended
        second = make_night(directory / "data", name="20261126")
        submit(made, {"ID": "kept", "WOType": "Preprocessing",
                      "File Location": str(second.directory)})
        ended(proxy, "kept", "done")
        assert "Master Library Problem" not in calibration(proxy)
        assert os.listdir(blocker / "masters")
    finally:
        made.stop()


def test_an_order_waiting_for_masters_waits_again_after_a_restart(tmp_path_factory):
    directory = tmp_path_factory.mktemp("waiting-restart")
    site = Site(directory, {"Preprocessor": {"Master Library": str(directory / "masters")}})
    try:
        site.start("preprocessor")
        lights = make_night(directory / "data", name="20261124", biases=0, darks={}, flats={},
                            lights=[("R", 10.0, 2)])
        submit(site, {"ID": "w-1", "WOType": "Preprocessing",
                      "File Location": str(lights.directory)})
        wait_until(lambda: waiting_for_masters(site.proxy("preprocessor"), "w-1"),
                   "w-1 to wait for masters")
        assert site.stop() == {"preprocessor": 0}, site.log("preprocessor")[-3000:]
        site.start("preprocessor")
        proxy = site.proxy("preprocessor")
        wait_until(lambda: calibration(proxy).get("Waiting for Masters") == ["w-1"],
                   "w-1 to wait for masters again")
        biases = make_night(directory / "data", name="20261124", biases=3, darks={}, flats={},
                            lights=[], order_id="biases").files["BIAS"]
        submit(site, {"ID": "w-biases", "WOType": "Preprocessing", "File Location": biases})
        done = ended(proxy, "w-1", "done")
        reasons = [entry["Reason"] for entry in done["History"]]
        assert "queued after a restart" in reasons
        assert len(done["Progress"]["Products"]) == 2
    finally:
        site.stop()


class TestHealth:
    def test_reports_the_executor_and_the_queue(self, site):
        health = site.proxy("preprocessor").front_desk({"WOType": "Status"})
        calibration = health["Devices"]["Calibration"]
        assert calibration["Workers"] == 2 and "Queued" in calibration
        assert "local" in calibration["Executor"]

    @pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="terms are kept in /dev/shm")
    def test_reports_the_terms_kept_for_the_next_job(self, site, result):
        calibration = site.proxy("preprocessor").front_desk({"WOType": "Status"})["Devices"][
            "Calibration"]
        kept = calibration["Kept Terms"]  # at least the night's lights': 128x128, one group
        assert kept["Sets"] >= 1 and kept["Megabytes"] >= 0.1
        assert kept["Budget Megabytes"] == 1024.0


class TestStopping:
    def test_cancel_stops_a_running_job_and_drops_a_queued_one(self, site, data):
        big = big_night(data, "20261125")  # a night of its own: its reduced/ is all its own
        proxy = site.proxy("preprocessor")
        submit(site, {"ID": "long", "WOType": "Preprocessing", "File Location": str(big.directory)})
        small = make_night(data, name="20261127", lights=[("R", 30.0, 1)])
        submit(site, {"ID": "waiting", "WOType": "Preprocessing",
                      "File Location": str(small.directory)})
        assert proxy.front_desk({"WOType": "Cancel", "ID": "waiting"})["Status"] == "cancelled"
        # A few of its products written (more than the workers write at once):
        wait_until(lambda: len(list(big.reduced.glob("*.fits"))) >= 3,
                   "the long job to calibrate a few frames")
        assert proxy.front_desk({"WOType": "Cancel", "ID": "long"})["Status"] == "cancelled"
        # The queue goes on with the next order.
        submit(site, {"ID": "after", "WOType": "Preprocessing",
                      "File Location": str(small.directory)})
        ended(proxy, "after", "done")
        cancelled = status(proxy, "long")
        assert cancelled["Status"] == "cancelled"
        # What it wrote before it stopped is kept, and listed: every product on the disk, the
        # frames under way as it stopped finished first (its masters may come from the
        # library, made by the tests before).
        progress = cancelled["Progress"]
        written, masters = progress["Products"], progress.get("Masters", {})
        assert set(written) == {str(path) for path in big.reduced.glob("*.fits")}
        assert all(os.path.isfile(path) for path in masters.values())
        assert re.search(rf"; it had written {len(written)} product\(s\)"
                         rf"( and {len(masters)} master\(s\))?, kept", cancelled["Message"]), \
            cancelled["Message"]
        assert status(proxy, "waiting")["History"][-1]["Status"] == "cancelled"


def test_a_job_under_way_when_the_daemon_stops_runs_again_at_the_next_start(tmp_path_factory):
    directory = tmp_path_factory.mktemp("restart")
    site = Site(directory, {"Preprocessor": {"Master Library": str(directory / "masters")}})
    try:
        calibrating_a_big_night(site, directory, "r-1")
        assert site.stop() == {"preprocessor": 0}, site.log("preprocessor")[-3000:]
        site.start("preprocessor")
        result = ended(site.proxy("preprocessor"), "r-1", "done")
        reasons = [entry["Reason"] for entry in result["History"]]
        assert any("stopped while this order was running; queued again" in reason
                   for reason in reasons), reasons
        assert len(result["Progress"]["Products"]) == MANY_LIGHTS + 1
    finally:
        site.stop()


def test_a_worker_killed_fails_its_job_and_the_next_job_gets_new_workers(tmp_path_factory):
    directory = tmp_path_factory.mktemp("killed")
    site = Site(directory, {"Preprocessor": {"Master Library": str(directory / "masters"),
                                             "Workers": 2}})
    try:
        proxy = calibrating_a_big_night(site, directory, "k-1")
        # The workers are the fork server's children: the daemon's grandchildren.
        workers = [worker for server in children(site.daemons["preprocessor"].pid)
                   for worker in children(server)]
        assert workers, "no worker process found"
        os.kill(workers[0], signal.SIGKILL)  # as the kernel's out-of-memory killer would
        failed = ended(proxy, "k-1", "failed")
        assert "a worker process died" in failed["Message"], failed["Message"]
        # The daemon goes on: the next job starts new workers, and the log says so.
        small = make_night(directory / "data", name="20261129")
        submit(site, {"ID": "k-2", "WOType": "Preprocessing",
                      "File Location": str(small.directory)})
        assert len(ended(proxy, "k-2", "done")["Progress"]["Products"]) == 3
        said = [line for line in site.log("preprocessor").splitlines()
                if "preprocessor tasks run on 2 local worker process(es)" in line]
        assert len(said) == 2 and all(" INFO " in line for line in said), said
    finally:
        site.stop()


def test_a_cancel_ends_the_wait_for_room_and_the_next_order_waits_in_its_place(make_site):
    # A look for room once an hour: the next order must not wait that long behind one
    # cancelled.
    site = make_site({"Preprocessor": {"Minimum Free Bytes": 10 ** 15,
                                       "Room Retry Interval": 3600}}).start("preprocessor")
    proxy = site.proxy("preprocessor")
    night = make_night(site.directory / "data", biases=3, darks={}, flats={},
                       lights=[("R", 10.0, 1)])
    for order_id in ("first", "second"):
        proxy.front_desk({"ID": order_id, "WOType": "Preprocessing",
                          "File Location": str(night.directory)})
    wait_until(lambda: calibration(proxy).get("Waiting for Room") == "first",
               "the first order to wait for room")
    # A petabyte free on this machine's disks: the job is told it will never run as it is.
    assert ("so it never will have room: lower Minimum Free Bytes (and restart), or cancel "
            "this job and calibrate its frames on a larger disk; looked at again every 3600 s"
            in status(proxy, "first")["Message"])
    assert re.search(r"WARNING .*Preprocessor → Minimum Free Bytes, 1,000,000,000,000,000, is "
                     r"as much as the disk of \S+ holds in all \([\d,]+ bytes\): every job "
                     r"writing there would wait for room for good; lower it",
                     site.log("preprocessor"))
    proxy.front_desk({"WOType": "Cancel", "ID": "first"})
    wait_until(lambda: calibration(proxy).get("Waiting for Room") == "second",
               "the second order to wait for room in its place", patience=10)
    assert status(proxy, "first")["Status"] == "cancelled"
