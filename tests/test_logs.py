"""The daemons' log file: rotated by size, never when it is not a regular file."""

import logging
import os
import threading
import time
from datetime import datetime, timezone

from torosmanager import launcher
from torosmanager.launcher import DaemonProcess
from torosmanager.logs import (FORMAT, STDERR_LEVEL_VARIABLE, Outage, ReopenableFileHandler,
                               SaidOnChange, SharedFormatter)


def file_handler(path, max_bytes, backups):
    handler = ReopenableFileHandler(str(path), maxBytes=max_bytes, backupCount=backups,
                                    encoding="utf-8")
    handler.setFormatter(SharedFormatter(FORMAT))
    return handler


def record(number):
    return logging.LogRecord("test", logging.INFO, __file__, 1, "[WO %d] accepted", (number,),
                             None)


def test_the_file_rolls_over_before_it_passes_max_bytes(tmp_path):
    path = tmp_path / "scheduler.log"
    handler = file_handler(path, 500, 2)
    for number in range(30):
        handler.handle(record(number))
    handler.close()
    assert path.stat().st_size <= 500
    assert (tmp_path / "scheduler.log.1").stat().st_size <= 500
    assert (tmp_path / "scheduler.log.2").exists() and not (tmp_path / "scheduler.log.3").exists()
    assert "[WO 29] accepted" in path.read_text()


def test_a_log_that_is_not_a_regular_file_is_never_rotated():
    handler = ReopenableFileHandler("/dev/null", maxBytes=10, backupCount=1)
    handler.setFormatter(SharedFormatter(FORMAT))
    for number in range(5):
        handler.handle(record(number))  # would try to rename /dev/null if it rolled over
    assert not handler.shouldRollover(record(5))
    handler.close()


def test_each_record_is_formatted_once_for_every_handler():
    formatter = SharedFormatter(FORMAT)
    one = record(1)
    line = formatter.format(one)
    one.msg = "changed after the first handler"  # a second handler gets the same line
    assert formatter.format(one) == line and "[WO 1] accepted" in line


def test_times_are_utc_as_the_work_orders_whatever_the_machines_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "America/Argentina/Salta")  # UTC−3, as at Cordón Macón
    time.tzset()
    try:
        one = record(1)
        one.created = datetime(2026, 12, 4, 1, 30, tzinfo=timezone.utc).timestamp() + 0.25
        one.msecs = 250.0
        line = SharedFormatter(FORMAT).format(one)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert line.startswith("2026-12-04T01:30:00.250Z test["), line  # not 2026-12-03 22:30


def test_a_file_reopened_counts_what_it_already_holds(tmp_path):
    path = tmp_path / "scheduler.log"
    path.write_text("x" * 450 + "\n")  # left by the daemon's previous run
    handler = file_handler(path, 500, 1)
    handler.handle(record(1))  # would take it past 500 bytes: rotated first
    handler.close()
    assert (tmp_path / "scheduler.log.1").read_text() == "x" * 450 + "\n"
    assert "[WO 1] accepted" in path.read_text()


def test_a_file_truncated_by_logrotate_is_not_rotated_early(tmp_path):
    path = tmp_path / "scheduler.log"
    handler = file_handler(path, 500, 1)
    for number in range(5):
        handler.handle(record(number))
    written = path.stat().st_size
    assert written > 250
    with open(path, "r+b") as stream:  # logrotate's copytruncate, behind the daemon's back
        stream.truncate(0)
    for number in range(5, 10):
        handler.handle(record(number))
    handler.close()
    assert not (tmp_path / "scheduler.log.1").exists()
    assert "[WO 9] accepted" in path.read_text() and "[WO 4]" not in path.read_text()


def test_a_log_written_to_a_pipe_is_written_and_never_rotated(tmp_path):
    path = tmp_path / "scheduler.log"
    os.mkfifo(path)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(open(path, encoding="utf-8")))
    reader.start()
    handler = file_handler(path, 100, 1)
    for number in range(3):
        handler.handle(record(number))
    handler.close()
    reader.join(timeout=10)
    assert [line.split("INFO ")[1] for line in lines] == [f"[WO {n}] accepted\n" for n in range(3)]


def test_an_outage_is_said_when_it_begins_and_when_it_ends(caplog):
    outage = Outage(logging.getLogger("test.outage"))
    with caplog.at_level(logging.DEBUG, logger="test.outage"):
        outage.answered("back")        # nothing was failing: nothing to say
        for attempt in range(3):
            outage.failed("down: attempt %d", attempt)
        outage.answered("back")
        outage.answered("back")
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("WARNING", "down: attempt 0"), ("INFO", "back")]


def test_a_line_that_repeats_is_at_info_only_when_what_it_says_changed(caplog):
    line = SaidOnChange(logging.getLogger("test.repeats"))
    with caplog.at_level(logging.DEBUG, logger="test.repeats"):
        for what in ("a", "a", "b", "a"):
            line.log(what, "it is %s", what)
        line.forget()
        line.log("a", "it is %s", "a")
    assert [record.levelname for record in caplog.records] == [
        "INFO", "DEBUG", "INFO", "INFO", "INFO"]


def test_a_daemon_under_launchd_keeps_stderr_for_warnings_and_its_file_for_everything(
        tmp_path, monkeypatch):
    """launchd's StandardErrorPath is a plain file nobody rotates: the plists set
    $TOROS_STDERR_LEVEL to WARNING (it had every line of the log, and grew for ever)."""
    monkeypatch.setenv(STDERR_LEVEL_VARIABLE, "warning")
    daemon = DaemonProcess("dome", launcher.local_config(str(tmp_path))).start()
    assert daemon.stop() == 0, daemon.stderr_tail()
    logged = (tmp_path / "dome.log").read_text()
    assert " INFO " in logged and "stopped" in logged
    assert " INFO " not in daemon.stderr_tail(lines=1000)
