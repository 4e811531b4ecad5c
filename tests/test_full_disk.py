"""A full disk stops no night: no frame is taken that could not be written, a journal that
cannot be written refuses orders saying so (and why) without losing any, but still closes the
dome and parks the telescope when asked, and everything goes on once there is room. A disk
whose file system fails (remounted read-only) is refused the same way; a data disk that fills
or turns read-only while a frame is written stops the observation, keeping its frames.

Each test fills (or breaks) a small disk of its own: see helpers_small_disk.py.
"""

import os
import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

from helpers_small_disk import failing_disk, fill, remount, small_disk
from observatory import (dome_safety, ended, open_dome, refusal, said, settings, status,
                         step, wait_until)
from preprocessing_data import NIGHT, make_night
from test_alert_gcn_socket import SWIFT_BAT_1227767
from test_alerts_daemon import event_orders, settings as alert_settings
from test_front_desk import observation
from test_preprocessor_daemon import MANY_LIGHTS, big_night
from torosmanager.launcher import free_port
from torosmanager.preprocessor.pipeline import Settings, calibrate
from torosmanager.preprocessor.room import NoRoom
from torosmanager.workorders import FaultCode

#: A simulated frame of 1024 × 1024 16-bit pixels is 2.1 MB as a FITS file.
FRAME_SIDE = 1024
#: The data disk, and what the telescope leaves free on it: room for 7 such frames.
DATA_DISK_MB = 48
MINIMUM_FREE_BYTES = 32_000_000
#: More frames than that room holds.
EXPOSURES = 12
#: A disk for journals: filled by the test, not by the daemons.
JOURNAL_DISK_MB = 8
#: Seconds between a daemon's tries while the other's journal is full, and tries watched.
RETRY_SECONDS = 0.2
RETRIES = 3
#: Real seconds the scheduler's journal stays full: some 30 of its ticks at the tests' 100×.
FULL_SECONDS = 3
#: A night for the preprocessor, of 256 × 256 frames (a product is counted 0.36 MB: float32
#: and 100 kB for its header), on a disk of its own; and what a job leaves free there.
PREPROCESSING_FRAME = {"Width": 256, "Height": 256}
PREPROCESSING_DISK_MB = 16
PREPROCESSING_MINIMUM_FREE_BYTES = 1_000_000
#: A data disk that fills or fails while a frame is written, and what the telescope leaves
#: free there: room for some 20 frames of the tests' 256 × 256 (0.14 MB); their exposures,
#: 0.6 s at the tests' 100×, the time to fill it or make it read-only meanwhile.
FAILING_DATA_DISK_MB = 4
FAILING_MINIMUM_FREE_BYTES = 1_000_000
EXPOSURE_SECONDS = 60.0
#: The frames of the order the disk stops: the first is written, the second is not.
STOPPED_EXPOSURES = 3


def journals_apart(directory):
    """The Database section that gives each daemon's journal a directory of its own under
    *directory*, where a test mounts a small disk for the one it fills."""
    return {"File": str(directory / "{service}" / "journal.sqlite3")}


def test_frames_stop_short_of_the_minimum_free_and_the_order_goes_on_once_there_is_room(
        make_site, tmp_path):
    with small_disk(tmp_path / "disk", DATA_DISK_MB) as disk:
        site = make_site(settings(
            Simulator={"Width": FRAME_SIDE, "Height": FRAME_SIDE},
            Telescope={"Data Directory": str(disk / "data"),
                       "Minimum Free Bytes": MINIMUM_FREE_BYTES}))
        site.start("dome", "telescope", "scheduler")
        scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
        scheduler.front_desk(observation("long", **{"Number of Exposures": EXPOSURES}))

        def waiting():
            answer = status(scheduler, "long")
            return answer if answer["Message"].startswith("waiting: ") else None

        message = wait_until(waiting, "the scheduler to wait for room")["Message"]
        assert re.fullmatch(r"waiting: the telescope cannot take it now: no room for a frame: "
                            rf"the data directory {disk}/data has [\d.]+ MB free; a frame "
                            r"needs 2\.1 MB and Telescope → Minimum Free Bytes keeps 32\.0 MB "
                            r"free", message), message
        stopped = status(telescope, "long")
        taken = stopped["Progress"]["Frames Done"]
        assert 0 < taken < EXPOSURES
        assert stopped["Status"] == "interrupted"
        assert stopped["Message"].startswith(f"stopped at exposing {taken + 1}/{EXPOSURES}: "
                                             "no room for a frame")
        assert shutil.disk_usage(disk).free >= MINIMUM_FREE_BYTES
        assert telescope.front_desk({"WOType": "Status"})["Data Disk"]["Frames Left"] == 0

        shutil.move(disk / "data", tmp_path / "moved")  # the operator makes room
        done = ended(scheduler, "long", "done")
        assert done["Progress"]["Frames Done"] == EXPOSURES
        assert done["Progress"]["Attempts"] == 2
        frames = (list((tmp_path / "moved").rglob("*.fits"))
                  + list((disk / "data").rglob("*.fits")))
        assert len(frames) == EXPOSURES


def exposing_frame(telescope, order_id, number, total):
    """Wait until the camera exposes the order's frame *number* of *total*: it had room for
    it, and the frame before it is written."""
    wait_until(lambda: step(telescope, order_id) == f"exposing {number}/{total}"
               and telescope.front_desk({"WOType": "Status"})["Devices"]["Camera"]["Exposing"],
               f"frame {number} of {order_id} to be exposed")


def failing_data_disk_site(make_site, disk):
    site = make_site(settings(Telescope={"Data Directory": str(disk / "data"),
                                         "Minimum Free Bytes": FAILING_MINIMUM_FREE_BYTES}))
    site.start("dome", "telescope", "scheduler")  # (the scheduler's heartbeat: the dome opens)
    open_dome(site)
    return site


def stopped_observation(order_id):
    return observation(order_id, **{"Number of Exposures": STOPPED_EXPOSURES,
                                    "Exposure Time": EXPOSURE_SECONDS,
                                    "Calibration Frames": "No"})


def test_a_data_disk_remounted_read_only_mid_order_refuses_orders_until_it_can_be_written(
        make_site, tmp_path):
    """Not 'failed: [Errno 30] Read-only file system' with every next order accepted, slewed
    and exposed for nothing: the order is interrupted keeping its frames, and orders are
    refused (Fault 9) as for a full disk until the disk takes writes again."""
    with small_disk(tmp_path / "disk", FAILING_DATA_DISK_MB) as disk:
        site = failing_data_disk_site(make_site, disk)
        telescope = site.proxy("telescope")
        telescope.front_desk(stopped_observation("night"))
        exposing_frame(telescope, "night", 2, STOPPED_EXPOSURES)
        remount(disk, "ro")  # as the kernel does a failing disk's, or an NFS server
        stopped = ended(telescope, "night", "interrupted")
        reason = (f"the data directory {disk / 'data'} (Telescope → Data Directory) cannot be "
                  "written: Read-only file system")
        assert stopped["Message"] == f"stopped at exposing 2/{STOPPED_EXPOSURES}: {reason}"
        (kept,) = stopped["Progress"]["Files"]
        assert os.path.isfile(kept)

        refused = refusal(telescope.front_desk, observation("next"))
        assert (refused.faultCode, refused.faultString) == (FaultCode.UNAVAILABLE, reason)
        data_disk = telescope.front_desk({"WOType": "Status"})["Data Disk"]
        assert (data_disk["Unwritable"], data_disk["Frames Left"]) == (reason, 0)
        assert f"{reason} (writing " in site.log("telescope")

        remount(disk, "rw")
        telescope.front_desk(stopped_observation("night"))  # sent again, as the scheduler does
        done = ended(telescope, "night", "done")
        assert done["Progress"]["Frames Done"] == STOPPED_EXPOSURES
        assert done["Progress"]["Files"][0] == kept
        assert telescope.front_desk(observation("next"))["Status"] == "queued"
        assert "Unwritable" not in telescope.front_desk({"WOType": "Status"})["Data Disk"]
        assert not list(disk.rglob("*.part"))
        log = site.log("telescope")
        assert f"the data directory {disk / 'data'} can be written again" in log
        assert "Traceback" not in log


def test_a_nights_directory_that_refuses_writes_is_looked_at_again_not_the_data_directory(
        make_site, tmp_path):
    """The Data Directory takes a file while the night's raw/ (another disk mounted there,
    read-only) does not: orders are refused until raw/ can be written, not let in again by a
    look at the Data Directory, each to be slewed and exposed for nothing."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    site = failing_data_disk_site(make_site, tmp_path)
    telescope = site.proxy("telescope")
    telescope.front_desk(stopped_observation("night"))
    exposing_frame(telescope, "night", 2, STOPPED_EXPOSURES)
    raw = os.path.dirname(status(telescope, "night")["Progress"]["Files"][0])
    subprocess.run(["mount", "--bind", raw, raw], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", raw], check=True)
        ended(telescope, "night", "interrupted")
        refused = refusal(telescope.front_desk, observation("next"))
        assert (refused.faultCode, refused.faultString) == (
            FaultCode.UNAVAILABLE, f"the data directory {raw} (Telescope → Data Directory) "
                                   "cannot be written: Read-only file system")
    finally:
        subprocess.run(["umount", raw], check=True)
    assert telescope.front_desk(observation("next"))["Status"] == "queued"


def test_a_data_disk_that_fills_while_a_frame_is_written_stops_the_order_for_want_of_room(
        make_site, tmp_path):
    """Not 'failed', astropy's 'Not enough space on disk' said twice, and the frame's
    temporary file left on the full disk: interrupted, no room, as before a frame."""
    with small_disk(tmp_path / "disk", FAILING_DATA_DISK_MB) as disk:
        site = failing_data_disk_site(make_site, disk)
        telescope = site.proxy("telescope")
        telescope.front_desk(stopped_observation("night"))
        exposing_frame(telescope, "night", 2, STOPPED_EXPOSURES)
        filler = fill(disk)  # as another program would, while the frame is exposed
        stopped = ended(telescope, "night", "interrupted")
        assert re.fullmatch(rf"stopped at exposing 2/{STOPPED_EXPOSURES}: no room for a frame: "
                            rf"the disk filled while {disk}/data/\d{{8}}/raw/\S+_002\.fits was "
                            r"written: \[Errno 28\] No space left on device",
                            stopped["Message"]), stopped["Message"]
        assert len(stopped["Progress"]["Files"]) == 1
        assert not list(disk.rglob("*.part"))
        refused = refusal(telescope.front_desk, observation("next"))
        assert refused.faultCode == FaultCode.UNAVAILABLE
        assert refused.faultString.startswith("no room for a frame: the data directory")

        os.remove(filler)
        assert telescope.front_desk(observation("next"))["Status"] == "queued"
        assert "Traceback" not in site.log("telescope")


def test_a_full_journal_refuses_orders_saying_so_and_takes_them_once_there_is_room(
        make_site, tmp_path):
    with small_disk(tmp_path / "disk", JOURNAL_DISK_MB) as disk:
        site = make_site({"Database": {"File": str(disk / "{service}.sqlite3")}})
        site.start("scheduler")
        scheduler = site.proxy("scheduler")
        filler = fill(disk)
        for _ in range(3):
            refused = refusal(scheduler.front_desk, observation("kept"))
        assert refused.faultCode == FaultCode.UNAVAILABLE
        journal = disk / "scheduler.sqlite3"
        assert refused.faultString == (
            f"the scheduler daemon cannot keep work orders now: the journal {journal} cannot "
            "be written (database or disk is full; 0.0 MB free on its disk); the order was "
            "not accepted: send it again later")
        health = scheduler.front_desk({"WOType": "Status"})
        assert health["Journal"] == {"File": str(journal), "Free MB": 0.0}

        os.remove(filler)
        assert scheduler.front_desk(observation("kept"))["Status"] == "queued"
        log = site.log("scheduler")
        assert log.count("refusing work orders: the journal") == 1  # said once, not each time
        assert f"the journal {journal} takes work orders again" in log
        assert "Traceback" not in log


def test_a_daemon_stopped_while_its_journal_is_full_stops_cleanly_and_starts_all_the_same(
        make_site, tmp_path):
    """At the stop, the journal's WAL file cannot be folded in: it is left for the next
    opening, which reads what it holds. The daemon starts again on the full disk with every
    order it had, refusing new ones until there is room. Only a journal that does not exist
    yet cannot be made there: that daemon exits saying why (the service manager starts it
    again: systemd every RestartSec)."""
    with small_disk(tmp_path / "disk", JOURNAL_DISK_MB) as disk:
        site = make_site({"Database": {"File": str(disk / "{service}.sqlite3")}})
        site.start("scheduler")
        assert site.proxy("scheduler").front_desk(observation("kept"))["Status"] == "queued"
        filler = fill(disk)
        assert site.daemons["scheduler"].stop() == 0
        journal = disk / "scheduler.sqlite3"
        log = site.log("scheduler")
        assert (f"{journal}: its WAL file is left for the next opening to fold in: database "
                "or disk is full") in log
        assert "Traceback" not in log

        site.start("scheduler")
        scheduler = site.proxy("scheduler")
        assert status(scheduler, "kept")["Status"] == "queued"
        refused = refusal(scheduler.front_desk, observation("new"))
        assert refused.faultCode == FaultCode.UNAVAILABLE
        with pytest.raises(RuntimeError) as not_started:
            site.start("dome")
        assert (f"cannot open the journal {disk / 'dome.sqlite3'} (Database → File): "
                "database or disk is full (0.0 MB free on its disk)") in str(not_started.value)

        os.remove(filler)
        assert scheduler.front_desk(observation("new"))["Status"] == "queued"
        site.start("dome")


def test_daemons_killed_while_their_journals_are_full_start_and_resume_once_there_is_room(
        make_site, tmp_path):
    """A crash (an out-of-memory kill, a power cut of the computer alone) while the journals'
    disk is full: every daemon starts all the same, opening its journal as it is. The dome's
    guard watches the weather; orders are refused, saying why; the observation the crash cut
    short is resumed once there is room, and goes on from the frames it had."""
    weather = tmp_path / "weather"
    services = ("preprocessor", "dome", "telescope", "scheduler", "alerts")
    with small_disk(tmp_path / "disk", JOURNAL_DISK_MB) as disk:
        site = make_site(settings(Simulator={"Weather File": str(weather)},
                                  Database={"File": str(disk / "{service}.sqlite3")}))
        site.start(*services)
        open_dome(site)
        scheduler = site.proxy("scheduler")
        scheduler.front_desk(observation("long", **{"Number of Exposures": EXPOSURES}))
        wait_until(lambda: step(site.proxy("telescope"), "long").startswith("exposing"),
                   "the observation to expose")
        filler = fill(disk)
        for service in services:
            site.daemons.pop(service).kill()
        site.start(*services)

        telescope_log = site.log("telescope")
        journal = disk / "telescope.sqlite3"
        assert (f"{journal}: opened as it is, since it cannot be written now (database or disk "
                "is full; 0.0 MB free on its disk): orders are refused until it can"
                in telescope_log)
        assert "unfinished orders are resumed once the journal takes changes again" in \
            telescope_log
        refused = refusal(scheduler.front_desk, observation("new"))
        assert refused.faultCode == FaultCode.UNAVAILABLE
        assert "cannot be written (database or disk is full" in refused.faultString
        weather.write_text("unsafe: rain on the weather station")
        wait_until(lambda: "weather unsafe" in dome_safety(site)["Reason"],
                   "the dome's guard to see the rain")
        weather.unlink()
        taken = status(site.proxy("telescope"), "long")["Progress"]["Frames Done"]

        os.remove(filler)
        resumed = wait_until(lambda: (lambda answer: answer if answer["Progress"].get(
            "Frames Done", 0) > taken else None)(status(site.proxy("telescope"), "long")),
            "the observation to go on")
        assert resumed["Status"] == "running", resumed
        assert status(scheduler, "long")["Status"] in ("dispatched", "running"), \
            status(scheduler, "long")
        for service in services:
            assert "Traceback" not in site.log(service), service


def test_the_dome_closing_parks_the_telescope_though_its_journal_is_full(make_site, tmp_path):
    weather = tmp_path / "weather"
    with small_disk(tmp_path / "disk", JOURNAL_DISK_MB) as disk:
        site = make_site(settings(Simulator={"Weather File": str(weather)},
                                  Database={"File": str(disk / "{service}.sqlite3")}))
        site.start("dome", "telescope", "scheduler")
        open_dome(site)
        telescope = site.proxy("telescope")
        telescope.front_desk({"ID": "storm", "WOType": "Observation", "RA": 23.1, "Dec": 13.2,
                              "Filter": "R", "Exposure Time": 120, "Number of Exposures": 30})
        wait_until(lambda: step(telescope, "storm").startswith("exposing"),
                   "the observation to expose")
        filler = fill(disk)  # every daemon's journal: none can record anything now
        weather.write_text("unsafe: rain on the weather station")

        wait_until(lambda: telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"]
                   ["Parked"], "the mount to park")
        assert not dome_safety(site)["May Open"]
        assert "weather unsafe" in site.proxy("dome").front_desk(
            {"WOType": "Status"})["Devices"]["Enclosure"]["Closed By"]
        assert "the telescope is parking all the same" in site.log("dome")
        assert "parking though the journal cannot keep the Park order" in site.log("telescope")

        # Once there is room, the observation's end, which its journal could not take when
        # it happened, is journaled with its own reason.
        os.remove(filler)
        telescope.front_desk({"ID": "park", "WOType": "Park", "Reason": "test"})
        storm = ended(telescope, "storm", "interrupted")
        assert storm["Message"].startswith(
            "dome closing: weather unsafe: rain on the weather station"), storm


def test_an_alert_received_while_the_disks_are_full_reaches_the_scheduler_once_there_is_room(
        make_site, tmp_path):
    """Neither the alerts daemon's full journal nor the scheduler's loses a GCN notice."""
    journals, port = tmp_path / "journals", free_port()
    with small_disk(journals / "alerts", JOURNAL_DISK_MB) as alerts_disk, \
            small_disk(journals / "scheduler", JOURNAL_DISK_MB) as scheduler_disk:
        site = make_site(alert_settings(**{
            "GCN Socket": {"Enabled": True, "IP": "127.0.0.1", "Port": port},
            "Delivery Retry Interval": RETRY_SECONDS, "Scheduler Retry Interval": RETRY_SECONDS,
        }) | {"Database": journals_apart(journals)})
        site.start("scheduler", "alerts")
        alerts = site.proxy("alerts")
        fillers = [fill(alerts_disk), fill(scheduler_disk)]
        with socket.create_connection(("127.0.0.1", port), timeout=30) as gcn:
            gcn.sendall(struct.pack(">40i", *SWIFT_BAT_1227767))
            wait_until(lambda: alerts.front_desk({"WOType": "Status"})["Sources"]["GCN Socket"]
                       ["Messages"] == 1, "the notice to arrive")
            time.sleep(RETRIES * RETRY_SECONDS)  # the source tries again, and again
            assert alerts.front_desk({"WOType": "Events"})["Events"] == []

            os.remove(fillers[0])  # the alert is kept, and its order waits for the scheduler
            wait_until(lambda: alerts.front_desk({"WOType": "Events"})["Events"],
                       "the alert to be kept")
            time.sleep(RETRIES * RETRY_SECONDS)
            (planned,) = alerts.front_desk({"WOType": "Events", "Event ID": "Swift-1227767"})["Orders"]
            assert planned["Here"] == "planned"

            os.remove(fillers[1])
            wait_until(lambda: alerts.front_desk({"WOType": "Events", "Event ID": "Swift-1227767"})
                       ["Orders"][0]["Here"] == "submitted", "the order at the scheduler")
        (answer,) = event_orders(site, "Swift-1227767").values()
        assert answer["Status"] == "queued"
        assert answer["Work Order"]["Type of object"] == "GRB afterglow"
        health = alerts.front_desk({"WOType": "Status"})
        assert health["Sources"]["GCN Socket"]["Delivery Errors"] == 0
        assert "the scheduler cannot take it now (attempt 1): <Fault 9:" in site.log("alerts")


def test_a_dome_order_waits_at_the_scheduler_while_the_domes_journal_is_full(make_site,
                                                                             tmp_path):
    journals = tmp_path / "journals"
    with small_disk(journals / "dome", JOURNAL_DISK_MB) as dome_disk:
        site = make_site({
            "Scheduler": {"Dispatch Attempts": 1000, "Dispatch Retry Interval": RETRY_SECONDS},
            "Database": journals_apart(journals)})
        site.start("dome", "scheduler")
        scheduler = site.proxy("scheduler")
        filler = fill(dome_disk)
        scheduler.front_desk({"ID": "lights", "WOType": "Dome", "Blink01": True})
        wait_until(lambda: "[WO lights] the dome daemon cannot take it now (attempt 2 of 1000)"
                   in site.log("scheduler"), "the scheduler to try again")
        assert status(scheduler, "lights")["Status"] == "queued"
        os.remove(filler)
        assert ended(scheduler, "lights", "done")["Message"].startswith("done at the dome")


def test_the_night_goes_on_after_the_schedulers_own_journal_was_full(make_site, tmp_path):
    journals = tmp_path / "journals"
    with small_disk(journals / "scheduler", JOURNAL_DISK_MB) as scheduler_disk:
        site = make_site(settings(Database=journals_apart(journals)))
        site.start("dome", "telescope", "scheduler")
        scheduler = site.proxy("scheduler")
        for order_id in ("first", "second"):
            scheduler.front_desk(observation(order_id, **{"Number of Exposures": 5}))
        wait_until(lambda: step(scheduler, "first").startswith("exposing"),
                   "the first observation to expose")
        filler = fill(scheduler_disk)
        time.sleep(FULL_SECONDS)
        os.remove(filler)
        for order_id in ("first", "second"):
            assert ended(scheduler, order_id, "done")["Progress"]["Frames Done"] == 5
        log = site.log("scheduler")
        assert log.count("cannot journal") + log.count("stopped while") <= 2  # said once each
        assert "Traceback" not in log


def test_a_close_order_closes_the_dome_though_its_journal_is_full(make_site, tmp_path):
    journals = tmp_path / "journals"
    with small_disk(journals / "dome", JOURNAL_DISK_MB) as dome_disk:
        site = make_site(settings(Database=journals_apart(journals)))
        site.start("telescope", "dome", "scheduler")
        open_dome(site)
        filler = fill(dome_disk)
        dome = site.proxy("dome")
        refused = refusal(dome.front_desk, {"WOType": "Dome", "Shutter": "Close",
                                            "User": "operator"})
        assert refused.faultCode == FaultCode.UNAVAILABLE
        assert "; the dome is closing all the same; the order was not accepted" in \
            refused.faultString
        wait_until(lambda: dome.front_desk({"WOType": "Status"})["Devices"]["Enclosure"]
                   ["Shutter"] == "closed", "the dome to close")
        assert "closing the dome: a Dome order from operator that the journal cannot keep" in \
            site.log("dome")
        os.remove(filler)


def test_a_journal_whose_disk_fails_refuses_orders_saying_so_and_the_daemon_answers(
        make_site, tmp_path):
    with failing_disk(tmp_path / "disk", tmp_path / "disk.img", JOURNAL_DISK_MB) as fail:
        site = make_site({"Database": {"File": str(tmp_path / "disk" / "{service}.sqlite3")}})
        site.start("scheduler")
        scheduler = site.proxy("scheduler")
        assert scheduler.front_desk(observation("before"))["Status"] == "queued"
        fail()  # the kernel remounts the journal's file system read-only
        for _ in range(3):
            refused = refusal(scheduler.front_desk, observation("after"))
        assert refused.faultCode == FaultCode.UNAVAILABLE
        journal = tmp_path / "disk" / "scheduler.sqlite3"
        assert re.fullmatch(rf"the scheduler daemon cannot keep work orders now: the journal "
                            rf"{journal} cannot be written \(disk I/O error; [\d.,]+ MB free "
                            r"on its disk\); the order was not accepted: send it again later",
                            refused.faultString), refused.faultString
        # What it had it still tells.
        assert status(scheduler, "before")["Status"] == "queued"
        assert scheduler.front_desk({"WOType": "Status"})["Journal"]["File"] == str(journal)
        time.sleep(FULL_SECONDS)  # its own ticks and plans meanwhile
        log = site.log("scheduler")
        assert log.count("refusing work orders: the journal") == 1
        assert "Traceback" not in log


def test_a_calibration_without_room_waits_queued_and_runs_once_there_is_room(make_site,
                                                                             tmp_path):
    with small_disk(tmp_path / "disk", PREPROCESSING_DISK_MB) as disk:
        night = make_night(disk / "data", simulator=PREPROCESSING_FRAME)
        site = make_site({"Preprocessor": {
            "Allowed Directories": [str(disk / "data")],
            "Master Library": str(tmp_path / "masters"),
            "Minimum Free Bytes": PREPROCESSING_MINIMUM_FREE_BYTES,
            "Room Retry Interval": RETRY_SECONDS}})
        site.start("preprocessor")
        filler = fill(disk)
        proxy = site.proxy("preprocessor")
        proxy.front_desk({"ID": "night", "WOType": "Preprocessing",
                          "File Location": str(night.directory)})
        waited = said(proxy, "night", "waiting for room", "the job to wait for room")
        assert waited["Status"] == "queued"
        # 3 products and 3 masters (bias, dark, flat), before any is written.
        assert re.fullmatch(
            rf"waiting for room: no room for this job's 6 file\(s\): the disk of "
            rf"{disk}/data/{NIGHT} has 0\.0 MB free; they need [\d.]+ MB and Preprocessor → "
            r"Minimum Free Bytes keeps 1\.0 MB free; looked at again every 0\.2 s, then run "
            r"from the beginning \(Preprocessor → Room Retry Interval\)",
            waited["Message"]), waited["Message"]
        time.sleep(RETRY_SECONDS * RETRIES)
        still = status(proxy, "night")
        assert still["History"] == waited["History"]  # looked again, journaled nothing
        health = proxy.front_desk({"WOType": "Status"})
        assert health["Devices"]["Calibration"]["Waiting for Room"] == "night", health
        assert not night.reduced.exists()

        os.remove(filler)  # the operator makes room
        done = ended(proxy, "night", "done")
        assert len(done["Progress"]["Products"]) == 3
        assert shutil.disk_usage(disk).free >= PREPROCESSING_MINIMUM_FREE_BYTES
        assert "Traceback" not in site.log("preprocessor")


def test_a_disk_that_fills_while_frames_are_calibrated_stops_the_job_saying_so(runner,
                                                                               tmp_path):
    with small_disk(tmp_path / "disk", PREPROCESSING_DISK_MB) as disk:
        night = make_night(disk / "data", simulator=PREPROCESSING_FRAME)
        filler = []

        def fill_at_the_first_frame(step, done, total):
            if step.startswith("calibrating") and not filler:
                filler.append(fill(disk))  # as another program would

        settings = Settings(library=None)
        try:
            calibrate(str(night.directory), settings, runner, progress=fill_at_the_first_frame)
        except NoRoom as error:
            message = str(error)
        else:
            raise AssertionError("the job went on with its disk full")
        assert re.fullmatch(rf"the disk filled while {night.reduced}/\S+\.fits was written: "
                            r"\[Errno 28\] No space left on device", message), message

        os.remove(filler[0])
        outcome = calibrate(str(night.directory), settings, runner)  # run again: it is safe
        assert outcome.succeeded and len(outcome.products) == 3 and not outcome.skipped


def test_a_calibration_that_ends_while_its_journal_is_full_is_journaled_done_afterwards(
        make_site, tmp_path):
    journals = tmp_path / "journals"
    with small_disk(journals / "preprocessor", JOURNAL_DISK_MB) as journal_disk:
        night = big_night(tmp_path / "data", NIGHT)
        site = make_site({"Database": journals_apart(journals), "Preprocessor": {
            "Allowed Directories": [str(tmp_path / "data")],
            "Master Library": str(tmp_path / "masters")}})
        site.start("preprocessor")
        proxy = site.proxy("preprocessor")
        proxy.front_desk({"ID": "long", "WOType": "Preprocessing",
                          "File Location": str(night.directory)})
        wait_until(lambda: status(proxy, "long")["Progress"].get("Step", "")
                   .startswith("calibrating"), "the job to calibrate")
        filler = fill(journal_disk)
        wait_until(lambda: "journaled once the journal takes changes again" in
                   site.log("preprocessor"), "the job to end, its end unjournaled")
        assert status(proxy, "long")["Status"] == "running"  # the journal's last word
        log = site.log("preprocessor")
        assert "[WO long] calibrating on, its progress unjournaled: the journal" in log
        assert re.search(rf"\[WO long\] done \({MANY_LIGHTS + 1} frame\(s\) calibrated into "
                         r"\S+; 3 master\(s\) made.*\), journaled once the journal takes changes "
                         r"again: the journal \S+ cannot be written \(database or disk is "
                         r"full", log), log[-2000:]

        os.remove(filler)
        proxy.front_desk({"ID": "next", "WOType": "Preprocessing",
                          "File Location": night.files["LIGHT"][0]})
        done = status(proxy, "long")
        assert done["Status"] == "done", done
        assert len(done["Progress"]["Products"]) == MANY_LIGHTS + 1
        assert "Traceback" not in site.log("preprocessor")
