"""The last focus run is kept in the telescope's journal file across a restart, for the
focus model configured when it was made."""

import logging
import sqlite3

import pytest

from torosmanager.telescope.focus import FocusModel
from torosmanager.telescope.focus_memory import FocusMemory, LastRun

CONFIGURED = FocusModel(48_500, 12.0, -20.0, {"B": 40})
RUN = LastRun("20261109", 11.5, "20261109: 50012 at 11.5 °C", 50_012, 11.5)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "telescope.sqlite3")


def test_a_new_daemon_recalls_the_last_run_written_down(path):
    memory = FocusMemory(path, CONFIGURED)
    assert memory.recall() is None  # nothing yet
    memory.remember(RUN)
    memory.close()
    assert FocusMemory(path, CONFIGURED).recall() == RUN


def test_a_run_that_found_nothing_is_recalled_as_made_without_a_focus(path):
    failed = LastRun("20261109", None, "20261109: no focus found", None, None)
    FocusMemory(path, CONFIGURED).remember(failed)
    assert FocusMemory(path, CONFIGURED).recall() == failed


@pytest.mark.parametrize("changed", [
    FocusModel(49_000, 12.0, -20.0, {"B": 40}),
    FocusModel(48_500, 10.0, -20.0, {"B": 40}),
    FocusModel(48_500, 12.0, -15.0, {"B": 40}),
    FocusModel(48_500, 12.0, -20.0, {"B": 45}),
])
def test_a_run_made_for_another_configured_model_is_forgotten(path, changed, caplog):
    FocusMemory(path, CONFIGURED).remember(RUN)
    with caplog.at_level(logging.INFO, logger="torosmanager.telescope.focus_memory"):
        assert FocusMemory(path, changed).recall() is None
    assert caplog.messages == [
        "the focus model in the configuration changed since the last focus run "
        "(20261109: 50012 at 11.5 °C): the configured one is used until the next run"]
    # Only the focus model counts: its tolerance is no part of the focus.
    tolerant = FocusModel(48_500, 12.0, -20.0, {"B": 40}, tolerance=50)
    assert FocusMemory(path, tolerant).recall() == RUN


def test_a_row_edited_into_nonsense_is_said_and_forgotten(path, caplog):
    FocusMemory(path, CONFIGURED).remember(RUN)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE focus_memory SET best_position = 'far'")
    with caplog.at_level(logging.WARNING, logger="torosmanager.telescope.focus_memory"):
        assert FocusMemory(path, CONFIGURED).recall() is None
    assert "the last focus run cannot be read" in caplog.text


def test_a_file_that_cannot_take_the_run_is_said_and_the_run_goes_on(path, caplog):
    memory = FocusMemory(path, CONFIGURED)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE focus_memory")  # as good as a full disk for the write
    with caplog.at_level(logging.WARNING, logger="torosmanager.telescope.focus_memory"):
        memory.remember(RUN)
    assert f"cannot write the focus run down in {path} (no such table: focus_memory)" in \
        caplog.text
