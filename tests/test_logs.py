"""The daemons' log file: rotated by size, never when it is not a regular file."""

import logging

from torosmanager.logs import FORMAT, ReopenableFileHandler, SharedFormatter


def record(number):
    return logging.LogRecord("test", logging.INFO, __file__, 1, "[WO %d] accepted", (number,),
                             None)


def test_the_file_rolls_over_before_it_passes_max_bytes(tmp_path):
    path = tmp_path / "scheduler.log"
    handler = ReopenableFileHandler(str(path), maxBytes=500, backupCount=2, encoding="utf-8")
    handler.setFormatter(SharedFormatter(FORMAT))
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
