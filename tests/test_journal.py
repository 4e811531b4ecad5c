"""The journal: orders and their history on disk, shared safely between threads."""

import json
import os
import sqlite3
import threading
import time
import xmlrpc.client

import pytest

from helpers_small_disk import fill, small_disk
from torosmanager.journal import (ACCEPTED, CANCELLED, DONE, FAILED, MESSAGES_PER_COMMIT,
                                  QUEUED, RUNNING, SCHEMA_VERSION, STATES, TEXT_COLUMNS,
                                  DamagedRow, Journal, JournalUnwritable, OrderState)

TIME = "2026-11-21T23:00:00.000Z"


@pytest.fixture
def journal(tmp_path):
    opened = Journal(str(tmp_path / "state" / "journal.sqlite3"))
    yield opened
    opened.close()


def add(journal, order_id="1", submitted="{}"):
    return journal.add({"ID": order_id, "WOType": "Dome", "Blink01": True}, submitted, 2.0,
                       "requested: 2", TIME, "received from test")


def test_an_order_and_its_history_are_kept(journal):
    record, created = add(journal)
    assert created and record.state == ACCEPTED and record.work_order["Blink01"] is True
    journal.transition("1", QUEUED, "queued", TIME)
    assert [entry["Status"] for entry in journal.history("1")] == [ACCEPTED, QUEUED]
    assert journal.get("1").message == "queued"


def test_an_order_can_arrive_queued_in_one_commit(journal):
    commits = []
    journal._db.set_trace_callback(lambda statement: commits.append(statement)
                                   if statement == "COMMIT" else None)
    record, created = journal.add({"ID": "2", "WOType": "Dome", "Blink01": True}, "{}", 2.0,
                                  "requested: 2", TIME, "received from test",
                                  queued="queued for the dome")
    assert created and record.state == QUEUED and record.message == "queued for the dome"
    assert record == journal.get("2")  # the record returned is the one written
    assert [(entry["Status"], entry["Reason"], entry["Time"]) for entry in journal.history("2")] \
        == [(ACCEPTED, "received from test", TIME), (QUEUED, "queued for the dome", TIME)]
    assert commits == ["COMMIT"]


def test_a_known_id_returns_the_earlier_order(journal):
    add(journal, submitted='{"a": 1}')
    record, created = add(journal, submitted='{"a": 2}')
    assert not created and record.submitted == '{"a": 1}'


def test_it_is_on_disk_in_wal_mode_with_synchronous_writes(tmp_path):
    path = str(tmp_path / "j.sqlite3")
    journal = Journal(path)
    add(journal)
    assert journal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # ... to the disk itself on macOS too (F_FULLFSYNC; fsync there leaves the drive's cache).
    assert journal._db.execute("PRAGMA fullfsync").fetchone()[0] == 1
    assert journal._db.execute("PRAGMA checkpoint_fullfsync").fetchone()[0] == 1
    # Another connection (another process would do the same) sees the committed order at once.
    other = sqlite3.connect(path)
    assert other.execute("SELECT state FROM orders WHERE id = '1'").fetchone() == (ACCEPTED,)
    other.close()
    journal.close()
    reopened = Journal(path)
    assert reopened.get("1").state == ACCEPTED
    reopened.close()


def test_conditional_transitions_do_not_overwrite_each_other(journal):
    add(journal)
    journal.transition("1", QUEUED, "queued", TIME)
    assert journal.transition("1", CANCELLED, "by a user", TIME, only_from={QUEUED}) == QUEUED
    assert journal.transition("1", RUNNING, "worker", TIME, only_from={QUEUED}) is None
    assert journal.get("1").state == CANCELLED


def test_unfinished_and_counts(journal):
    for order_id in "123":
        add(journal, order_id)
    journal.transition("2", DONE, "done", TIME)
    assert [record.id for record in journal.unfinished()] == ["1", "3"]
    assert journal.counts() == {ACCEPTED: 2, DONE: 1}


def test_the_counts_follow_every_commit_and_only_commits(journal):
    for order_id in "1234":
        add(journal, order_id)
    add(journal, "1")  # known already: not counted again
    journal.transition("1", QUEUED, "queued", TIME)
    journal.transition("2", QUEUED, "queued", TIME)
    journal.transition("2", RUNNING, "running", TIME)
    journal.transition("3", QUEUED, "queued again", TIME, only_from={DONE})  # not applied
    journal.transition("4", ACCEPTED, "the same state again", TIME)
    with pytest.raises(sqlite3.IntegrityError):  # a commit that fails changes no count
        with journal._lock, journal._transaction():
            journal.transition("3", DONE, "done", TIME)
            journal._db.execute("INSERT INTO history (order_key, time, state, reason) "
                                "VALUES (-1, '', '', '')")  # no such order
    assert journal.counts() == {ACCEPTED: 2, QUEUED: 1, RUNNING: 1}


def test_the_counts_of_a_journal_from_before_them_are_made_at_its_opening(tmp_path):
    path = str(tmp_path / "journal.sqlite3")
    older = Journal(path)
    for order_id in "123":
        add(older, order_id)
    older.transition("3", DONE, "done", TIME)
    older._db.executescript("DROP TRIGGER count_new_order; DROP TRIGGER count_new_state; "
                            "DROP TABLE state_counts")
    add(older, "4")  # written by software that kept no counts
    older.close()
    reopened = Journal(path)
    assert reopened.counts() == {ACCEPTED: 3, DONE: 1}
    reopened.close()


def test_the_orders_changed_last_are_found_without_sorting_the_journal(tmp_path):
    path = str(tmp_path / "journal.sqlite3")
    older = Journal(path)
    for order_id in "123":
        add(older, order_id)
    older.transition("1", DONE, "done", "2026-11-21T23:05:00.000Z")
    older._db.execute("DROP INDEX orders_by_updated")  # a journal from before the index
    older.close()
    reopened = Journal(path)
    # The status page's recent orders: a million in the journal took 2 s a page, sorted.
    assert [record.id for record in reopened.recent(2)] == ["1", "3"]
    assert query_plans(reopened._reader, lambda: reopened.recent(2)) == [
        "SCAN orders USING INDEX orders_by_updated / "
        "SEARCH order_texts USING INTEGER PRIMARY KEY (rowid=?) LEFT-JOIN"]
    reopened.close()


def query_plans(connection, call):
    """SQLite's plan of each query *call* makes on *connection* (no sorting step reads every row:
    a plan that needs one says ``USE TEMP B-TREE``)."""
    queries = []
    connection.set_trace_callback(queries.append)
    try:
        call()
    finally:
        connection.set_trace_callback(None)
    return [" / ".join(row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + query))
            for query in queries]

#: The tables of a journal of schema 1 (releases until December 2026), as they made them.
SCHEMA_1 = """
CREATE TABLE orders (id TEXT PRIMARY KEY, wotype TEXT NOT NULL, submitted TEXT NOT NULL,
    work_order TEXT NOT NULL, priority REAL NOT NULL, priority_reason TEXT NOT NULL,
    state TEXT NOT NULL, message TEXT NOT NULL, progress TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE INDEX orders_by_state ON orders (state);
CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL REFERENCES orders (id), time TEXT NOT NULL, state TEXT NOT NULL,
    reason TEXT NOT NULL);
CREATE INDEX history_by_order ON history (order_id);
PRAGMA user_version=1;
"""
COUNTS_1 = """
CREATE TABLE state_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TRIGGER count_new_order AFTER INSERT ON orders BEGIN
    INSERT INTO state_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
"""


#: The tables of a journal of schema 2 (releases until December 2026), as they made them.
SCHEMA_2 = """
CREATE TABLE orders (key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, wotype TEXT NOT NULL,
    submitted TEXT NOT NULL, work_order TEXT NOT NULL, priority REAL NOT NULL,
    priority_reason TEXT NOT NULL, state TEXT NOT NULL, message TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}', created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE INDEX orders_by_state ON orders (state);
CREATE INDEX orders_by_updated ON orders (updated);
CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    order_key INTEGER NOT NULL REFERENCES orders (key), time TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT NOT NULL);
CREATE INDEX history_by_order ON history (order_key);
CREATE TABLE damaged_orders (seq INTEGER PRIMARY KEY AUTOINCREMENT, found TEXT NOT NULL,
    damage TEXT NOT NULL, key INTEGER, id, wotype, submitted, work_order, priority,
    priority_reason, state, message, progress, created, updated);
CREATE TABLE state_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TRIGGER count_new_order AFTER INSERT ON orders BEGIN
    INSERT INTO state_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER count_new_state AFTER UPDATE OF state ON orders
WHEN OLD.state IS NOT NEW.state BEGIN
    UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO state_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
PRAGMA user_version=2;
"""


@pytest.mark.parametrize("schema", [SCHEMA_1 + COUNTS_1, SCHEMA_1, SCHEMA_2],
                         ids=["1 with counts", "1 before the counts", "2"])
def test_a_journal_of_an_older_schema_is_made_today_s_keeping_every_order_and_its_history(
        tmp_path, schema):
    path = str(tmp_path / "journal.sqlite3")
    older = sqlite3.connect(path)
    older.executescript(schema)
    # Inserted out of their IDs' order, with histories interleaved, as orders arrive.
    orders = [("b", QUEUED, '{"Frames Done": 1}'), ("a", DONE, "{}"), ("c", ACCEPTED, "{}")]
    keys = {}
    for order_id, state, progress in orders:
        keys[order_id] = older.execute(
            f"INSERT INTO orders ({'key, ' if schema is SCHEMA_2 else ''}id, wotype, submitted, "
            "work_order, priority, priority_reason, state, message, progress, created, updated) "
            f"VALUES ({'NULL, ' if schema is SCHEMA_2 else ''}?, 'Dome', '{{}}', ?, 2.0, "
            "'requested: 2', ?, ?, ?, ?, ?)",
            (order_id, f'{{"ID": "{order_id}", "WOType": "Dome"}}', state,
             f"{order_id} is {state}", progress, TIME, TIME)).lastrowid
    history = [("b", ACCEPTED), ("a", ACCEPTED), ("b", QUEUED), ("c", ACCEPTED), ("a", DONE)]
    for number, (order_id, state) in enumerate(history):
        older.execute(f"INSERT INTO history ({'order_key' if schema is SCHEMA_2 else 'order_id'}"
                      ", time, state, reason) VALUES (?, ?, ?, ?)",
                      (keys[order_id] if schema is SCHEMA_2 else order_id, TIME, state,
                       f"step {number}"))
    older.commit()
    older.close()

    journal = Journal(path)
    for order_id, state, progress in orders:
        record = journal.get(order_id)
        assert (record.state, record.message, record.progress, record.work_order) == (
            state, f"{order_id} is {state}", json.loads(progress),
            {"ID": order_id, "WOType": "Dome"})
        assert [(entry["Status"], entry["Reason"]) for entry in journal.history(order_id)] == [
            (state, f"step {number}") for number, (each, state) in enumerate(history)
            if each == order_id]
    assert [record.id for record in journal.unfinished()] == ["b", "c"]  # oldest first
    assert journal.counts() == {ACCEPTED: 1, QUEUED: 1, DONE: 1}
    # It goes on as a journal of today: new orders, new states, counted.
    add(journal, "d")
    journal.transition("c", QUEUED, "queued", TIME)
    assert [entry["Status"] for entry in journal.history("c")] == [ACCEPTED, QUEUED]
    assert [entry["Status"] for entry in journal.history("d")] == [ACCEPTED]
    assert journal.counts() == {ACCEPTED: 1, QUEUED: 2, DONE: 1}
    journal.close()

    check = sqlite3.connect(path)
    tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master "
                                              "WHERE type = 'table'")}
    assert tables == {"orders", "order_texts", "history", "state_counts", "damaged_orders",
                      "sqlite_sequence"}
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert check.execute("PRAGMA foreign_key_check").fetchall() == []
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
    reopened = Journal(path)  # opened again: nothing made twice
    assert [entry["Reason"] for entry in reopened.history("a")] == ["step 1", "step 4"]
    reopened.close()


def test_a_journal_of_a_newer_schema_is_refused_untouched(tmp_path):
    path = str(tmp_path / "journal.sqlite3")
    newer = sqlite3.connect(path)
    newer.executescript("CREATE TABLE orders (anything); "
                        f"PRAGMA user_version={SCHEMA_VERSION + 1};")
    newer.close()
    with pytest.raises(RuntimeError, match=f"journal schema version {SCHEMA_VERSION + 1} is "
                                           "newer than this software's"):
        Journal(path)
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA table_info(orders)").fetchall()[0][1] == "anything"
    check.close()


def test_orders_in_given_states_and_of_a_kind(journal):
    for order_id in "123":
        add(journal, order_id)
    journal.add({"ID": "obs", "WOType": "Observation"}, "{}", 5.0, "r", TIME, "received")
    journal.transition("1", QUEUED, "queued", TIME)
    journal.transition("obs", QUEUED, "queued", TIME)
    journal.transition("2", RUNNING, "exposing", TIME)
    assert [record.id for record in journal.in_states([QUEUED, RUNNING])] == ["1", "2", "obs"]
    assert [record.id for record in journal.in_states([QUEUED], "Observation")] == ["obs"]
    # Priority 2.0 for "1" and "2", 5.0 for "obs": the urgent ones only.
    assert [record.id for record in journal.in_states([QUEUED, RUNNING], None, 5.0)] == ["obs"]
    assert [record.id for record in journal.in_states([QUEUED, RUNNING], None, 2.0)] \
        == ["1", "2", "obs"]
    assert journal.in_states([DONE]) == []
    assert journal.ids_in_state(QUEUED) == {"1", "obs"}


def test_done_orders_with_something_left_to_do_are_found_by_their_progress(journal):
    """A telescope's hand-offs still pending at start: done orders whose progress says so,
    and not one whose progress cannot be read (which would fail SQLite's JSON reading)."""
    for order_id, progress in (("pending", {"Hand-off": "pending", "Files": ["a.fits"]}),
                               ("handed", {"Preprocessing ID": "p1", "Files": ["b.fits"]}),
                               ("damaged", {"Hand-off": "pending"})):
        add(journal, order_id)
        journal.transition(order_id, DONE, "done", TIME, progress=progress)
    edit_by_hand(journal, "damaged", progress="{")
    found = journal.in_states([DONE], progress=("Hand-off", "pending"))
    assert [record.id for record in found] == ["pending"]
    assert found[0].progress["Files"] == ["a.fits"]


def test_the_newest_orders_of_a_kind_holding_a_key_come_first(journal):
    """The dome's last Shutter orders, newest received first, without the others."""
    for order_id, order in (("close", {"Shutter": "Close"}), ("blink", {"Blink01": True}),
                            ("open", {"Shutter": "Open"}), ("close-2", {"Shutter": "Close"})):
        journal.add(dict(order, ID=order_id, WOType="Dome"), "{}", 2.0, "r", TIME, "received")
    journal.add({"ID": "obs", "WOType": "Observation", "Shutter": 1}, "{}", 5.0, "r", TIME,
                "received")
    assert [record.id for record in journal.newest_with("Dome", "Shutter", 10)] \
        == ["close-2", "open", "close"]
    assert [record.id for record in journal.newest_with("Dome", "Shutter", 2)] \
        == ["close-2", "open"]


def test_a_plans_messages_change_only_orders_still_queued_in_one_commit(journal):
    for order_id in "123":
        add(journal, order_id)
        journal.transition(order_id, QUEUED, "queued; waiting for the next plan", TIME)
    journal.transition("3", CANCELLED, "cancelled by test", TIME)  # since the plan read it
    commits = []
    journal._db.set_trace_callback(lambda statement: commits.append(statement)
                                   if statement == "COMMIT" else None)
    later = "2026-11-21T23:05:00.000Z"
    journal.set_messages([("1", "planned for 23:10 UTC", True),
                          ("2", "planned for 23:20 UTC", False),
                          ("3", "planned for 23:30 UTC", True)], QUEUED, later)
    assert commits == ["COMMIT"]
    assert [(journal.get(n).message, journal.get(n).updated) for n in "123"] == [
        ("planned for 23:10 UTC", later), ("planned for 23:20 UTC", later),
        ("cancelled by test", TIME)]
    assert journal.history("1")[-1] == {"Time": later, "Status": QUEUED,
                                        "Reason": "planned for 23:10 UTC"}
    assert journal.history("2")[-1]["Reason"] == "queued; waiting for the next plan"
    assert journal.history("3")[-1]["Status"] == CANCELLED


def test_many_messages_are_set_a_few_hundred_to_a_commit(journal):
    """A flood's plan tells thousands of orders why they wait: in commits of
    MESSAGES_PER_COMMIT orders, so that the front desk's commits go in between."""
    count = 2 * MESSAGES_PER_COMMIT + 1
    for n in range(count):
        add(journal, str(n))
        journal.transition(str(n), QUEUED, "queued; waiting for the next plan", TIME)
    commits = []
    journal._db.set_trace_callback(lambda statement: commits.append(statement)
                                   if statement == "COMMIT" else None)
    later = "2026-11-21T23:05:00.000Z"
    journal.set_messages([(str(n), f"not observable tonight: reason {n}", True)
                          for n in range(count)], QUEUED, later)
    assert commits == ["COMMIT"] * 3
    assert all(journal.get(str(n)).message == f"not observable tonight: reason {n}"
               and journal.history(str(n))[-1]["Reason"] == f"not observable tonight: reason {n}"
               for n in range(count))


def test_reads_of_many_orders_do_not_wait_for_a_commit(journal):
    """The dispatcher reads the whole queue at each plan; it reads on a connection of its own,
    so that it neither waits for the front desk's commits nor makes them wait. It sees what
    was committed before it read."""
    add(journal, "1")
    journal.transition("1", QUEUED, "queued", TIME)
    answers = {}

    def read():
        answers["in_states"] = [record.id for record in journal.in_states([QUEUED])]
        answers["ids_in_state"] = journal.ids_in_state(QUEUED)
        answers["unfinished"] = [record.id for record in journal.unfinished()]
        answers["recent"] = [record.id for record in journal.recent(5)]

    with journal._lock, journal._transaction():  # a commit under way, not yet committed
        journal._db.execute("UPDATE orders SET state = 'done' WHERE id = '1'")
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=10)
        assert not reader.is_alive()
    assert answers == {"in_states": ["1"], "ids_in_state": {"1"}, "unfinished": ["1"],
                       "recent": ["1"]}
    assert journal.in_states([QUEUED]) == [] and journal.ids_in_state(DONE) == {"1"}


def test_a_record_read_again_has_its_own_work_order(journal):
    """Work orders are decoded once while their orders are unfinished (the dispatcher reads the
    whole queue at every tick); a caller changing one record's copy changes no other."""
    add(journal, "1")
    journal.transition("1", QUEUED, "queued", TIME)
    first = journal.in_states([QUEUED])[0]
    first.work_order["Blink01"] = False
    assert journal.in_states([QUEUED])[0].work_order["Blink01"] is True
    assert journal.unfinished()[0].work_order == {"ID": "1", "WOType": "Dome", "Blink01": True}


def test_only_unfinished_orders_keep_a_decoded_work_order(journal):
    for order_id in "123":
        add(journal, order_id)
        journal.transition(order_id, QUEUED, "queued", TIME)
    journal.in_states([QUEUED])
    assert set(journal._work_orders) == {"1", "2", "3"}
    journal.transition("2", DONE, "done", TIME)
    assert set(journal._work_orders) == {"1", "3"}
    done = [record for record in journal.recent(5) if record.id == "2"]
    assert done[0].work_order["ID"] == "2"  # still read, decoded afresh
    assert set(journal._work_orders) == {"1", "3"}


def test_progress_is_kept(journal):
    add(journal)
    journal.transition("1", RUNNING, "exposing", TIME, progress={"Frames Done": 2})
    assert journal.get("1").progress == {"Frames Done": 2}


def test_unknown_states_and_ids_are_errors(journal):
    add(journal)
    with pytest.raises(ValueError):
        journal.transition("1", "finished", "typo", TIME)
    with pytest.raises(KeyError):
        journal.transition("nope", DONE, "x", TIME)


def test_a_change_of_state_does_not_write_the_order_again(journal):
    """An alert of 60 MB took 0.7 s a change of state, its row written again each time, the
    journal's lock held meanwhile: a retraction behind it missed its 2 s."""
    payload = "x" * 8_000_000
    journal.add({"ID": "big", "WOType": "Alert", "Payload": payload},
                json.dumps({"Payload": payload}), 10.0, "alerts first", TIME, "received")
    wal = journal.path + "-wal"
    journal._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # (so the WAL holds what follows)
    journal.transition("big", RUNNING, "reading the alert", TIME, progress={"Step": "read"})
    journal.transition("big", DONE, "read", TIME)
    assert os.path.getsize(wal) < 100_000  # a few pages: 16 MB each time before
    assert journal.get("big").work_order["Payload"] == payload


def edit_by_hand(journal, order_id, **columns):
    """Change a row of *journal* from outside the program, as the sqlite3 shell or a damaged
    disk would."""
    with sqlite3.connect(journal.path) as db:
        for column, value in columns.items():
            if column in TEXT_COLUMNS:
                db.execute(f"UPDATE order_texts SET {column} = ? "
                           "WHERE order_key = (SELECT key FROM orders WHERE id = ?)",
                           (value, order_id))
            else:
                db.execute(f"UPDATE orders SET {column} = ? WHERE id = ?", (value, order_id))
    db.close()


class TestARowThatCannotBeRead:
    """A row edited by hand or damaged on the disk stops neither a start nor a plan."""

    DAMAGE = {"bad-json": {"work_order": "{'ID': 'bad-json'"},
              "a-list": {"work_order": "[1, 2]"},
              "new-state": {"state": "paused"},
              "text-priority": {"priority": "high"},
              "bad-progress": {"progress": "[", "submitted": "nope"}}

    def damaged(self, journal):
        for order_id in [*self.DAMAGE, "intact"]:
            add(journal, order_id)
            journal.transition(order_id, QUEUED, "queued", TIME)
        for order_id, columns in self.DAMAGE.items():
            edit_by_hand(journal, order_id, **columns)
        return journal

    def test_a_start_fails_an_unreadable_order_saying_why_and_keeps_its_row_as_found(
            self, tmp_path, caplog):
        path = str(tmp_path / "journal.sqlite3")
        self.damaged(Journal(path)).close()
        journal = Journal(path)
        assert journal.set_aside_damaged("2026-11-22T01:00:00.000Z") == list(self.DAMAGE)

        expected = {"bad-json": "work_order \"{'ID': 'bad-json'\" is not a JSON object (",
                    "a-list": "work_order '[1, 2]' is not a JSON object (JSON list, not an object)",
                    "new-state": "state 'paused' is none of accepted, queued, dispatched,",
                    "text-priority": "priority 'high' is not a finite number"}
        for order_id, phrase in expected.items():
            record = journal.get(order_id)
            assert record.state == FAILED and record.updated == "2026-11-22T01:00:00.000Z"
            assert record.message.startswith(f"order '{order_id}': its journal row cannot be read: "
                                             + phrase)
            assert record.message.endswith("kept as found in the journal's table damaged_orders")
            assert journal.history(order_id)[-1]["Status"] == FAILED
        # A work order that cannot be read is replaced by its ID and kind; one that can, kept.
        assert journal.get("bad-json").work_order == {"ID": "bad-json", "WOType": "Dome"}
        assert journal.get("new-state").work_order["Blink01"] is True
        # A progress report or a copy as submitted is only a report: emptied, the order goes on.
        goes_on = journal.get("bad-progress")
        assert goes_on.state == QUEUED and goes_on.progress == {} and goes_on.submitted == "{}"
        assert goes_on.work_order["Blink01"] is True
        assert [record.id for record in journal.unfinished()] == ["bad-progress", "intact"]
        assert journal.counts() == {QUEUED: 2, FAILED: 4}

        with sqlite3.connect(path) as db:
            kept = dict(db.execute("SELECT id, work_order FROM damaged_orders").fetchall())
            found = db.execute("SELECT state, priority, damage FROM damaged_orders "
                               "WHERE id = 'text-priority'").fetchone()
        db.close()
        assert kept["bad-json"] == "{'ID': 'bad-json'" and len(kept) == len(self.DAMAGE)
        assert found[:2] == ("queued", "high") and "priority 'high'" in found[2]
        assert sum("its journal row cannot be read" in r.message for r in caplog.records) == 5

        # Repaired once: the next start finds nothing more.
        assert journal.set_aside_damaged("2026-11-22T02:00:00.000Z") == []
        journal.close()

    def test_an_order_whose_texts_are_lost_is_failed_at_the_start_not_lost(self, tmp_path):
        """Its texts' row deleted (a hand, a disk): the order was in no list, counted all the
        same, and its resubmission raised a bare AssertionError."""
        path = str(tmp_path / "journal.sqlite3")
        journal = Journal(path)
        add(journal, "lost")
        journal.close()
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM order_texts")
        db.close()
        journal = Journal(path)
        assert [record.id for record in journal.unfinished()] == []  # (damaged: left out)
        assert journal.set_aside_damaged("2026-11-22T01:00:00.000Z") == ["lost"]
        record = journal.get("lost")
        assert record.state == FAILED and record.message.startswith(
            "order 'lost': its journal row cannot be read: work_order None is not a JSON object")
        assert record.work_order == {"ID": "lost", "WOType": "Dome"} and record.submitted == "{}"
        assert journal.counts() == {FAILED: 1}
        assert add(journal, "lost")[1] is False  # a resubmission: the order there, failed
        journal.close()

    def test_one_changed_while_the_daemon_runs_is_left_out_and_named_once(self, journal, caplog):
        self.damaged(journal)
        for _ in range(2):
            assert [record.id for record in journal.unfinished()] == ["intact"]
            assert [record.id for record in journal.in_states([QUEUED])] == ["intact"]
        logged = [r.message for r in caplog.records if "left out until" in r.message]
        assert len(logged) == 5 and "order 'new-state'" in " ".join(logged)
        with pytest.raises(DamagedRow, match="order 'text-priority': its journal row cannot be "
                                             "read: priority 'high' is not a finite number"):
            journal.get("text-priority")
        assert journal.counts() == {QUEUED: 5}  # ("paused" is no state: left out)

    def test_a_finished_one_is_named_when_read_and_left_as_it_is(self, journal):
        add(journal, "old")
        journal.transition("old", DONE, "done", TIME)
        edit_by_hand(journal, "old", work_order="")
        assert journal.set_aside_damaged(TIME) == []  # only unfinished orders are repaired
        with pytest.raises(DamagedRow, match="work_order '' is not a JSON object"):
            journal.get("old")
        assert journal.recent(10) == []
        edit_by_hand(journal, "old", state="archived")
        assert journal.history("old")[-1]["Status"] == DONE  # (the history is kept apart)


def test_states_are_an_enum_stored_and_shown_as_their_values(journal):
    add(journal)
    assert journal.transition("1", "queued", "a state's value is taken too", TIME) == ACCEPTED
    record = journal.get("1")
    assert record.state is OrderState.QUEUED is QUEUED and record.state == "queued"
    # Logs and messages read as before: "queued", not "OrderState.QUEUED".
    assert str(record.state) == f"{record.state}" == "%s" % record.state == "queued"
    assert f"{record.state:>8}" == "  queued"
    assert [type(entry["Status"]) for entry in journal.history("1")] == [OrderState] * 2
    assert [type(state) for state in journal.counts()] == [OrderState]
    # Stored as the plain value, so the journal file reads as it always did.
    other = sqlite3.connect(journal.path)
    assert other.execute("SELECT state FROM orders WHERE id = '1'").fetchone() == ("queued",)
    other.close()
    # Plain strings and members are interchangeable in sets, as only_from gets them.
    assert journal.transition("1", DONE, "done", TIME, only_from={"queued"}) is QUEUED
    assert STATES == tuple(OrderState) and len(STATES) == 8


def test_xmlrpc_marshals_a_state_only_as_its_value():
    """Why the front desk answers with ``state.value``: xmlrpc.client refuses str subclasses."""
    with pytest.raises(TypeError, match="cannot marshal"):
        xmlrpc.client.dumps(({"Status": QUEUED},), methodresponse=True)
    answer = xmlrpc.client.dumps(({"Status": QUEUED.value},), methodresponse=True)
    assert xmlrpc.client.loads(answer)[0][0] == {"Status": "queued"}


def test_threads_can_share_it(journal):
    def work(start):
        for n in range(start, start + 50):
            add(journal, str(n))
            journal.transition(str(n), QUEUED, "queued", TIME)

    threads = [threading.Thread(target=work, args=(k * 100,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert journal.counts() == {QUEUED: 200}


def test_orders_added_together_share_a_commit_and_fail_alone(journal):
    """Group commit: orders arriving while the journal is busy go to the disk together, in one
    commit; one that cannot be written fails alone, and the others are kept."""
    journal._db.execute("CREATE TRIGGER refuse BEFORE INSERT ON orders WHEN NEW.id = 'bad' "
                        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    commits = []
    journal._db.set_trace_callback(lambda statement: commits.append(statement)
                                   if statement == "COMMIT" else None)
    ids = [str(n) for n in range(8)] + ["bad", "3"]  # "3" twice: the second is not created
    outcomes = {}

    def submit(index, order_id):
        try:
            outcomes[index] = add(journal, order_id)[1]
        except sqlite3.IntegrityError as error:
            outcomes[index] = error

    threads = [threading.Thread(target=submit, args=pair) for pair in enumerate(ids)]
    with journal._lock:  # the journal is busy: every order waits for the next commit
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(journal._additions) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=10)
    assert commits == ["COMMIT"]  # all the orders in one
    assert "refused by the test" in str(outcomes.pop(ids.index("bad")))
    assert sorted(outcomes.values()) == [False] + [True] * 8
    other = sqlite3.connect(journal.path)
    assert sorted(row[0] for row in other.execute("SELECT id FROM orders")) == sorted(ids[:8])
    assert other.execute("SELECT COUNT(*) FROM history").fetchone()[0] == 8
    other.close()


def test_an_order_is_committed_when_add_returns_whatever_the_threads(journal):
    """The receipt promise: once add returns, another connection (another process, or the
    journal after a power cut) finds the order, however many threads add at once."""
    missing = []

    def work(thread):
        other = sqlite3.connect(journal.path)
        for n in range(100):
            order_id = f"{thread}-{n}"
            add(journal, order_id)
            if other.execute("SELECT 1 FROM orders WHERE id = ?", (order_id,)).fetchone() is None:
                missing.append(order_id)
        other.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert missing == []
    assert journal.counts() == {ACCEPTED: 1600}


def test_a_full_disk_refuses_a_write_by_name_and_the_journal_goes_on_when_there_is_room(
        tmp_path):
    with small_disk(tmp_path / "disk", 4) as disk:
        journal = Journal(str(disk / "journal.sqlite3"))
        try:
            add(journal, "before")
            filler = fill(disk)
            with pytest.raises(JournalUnwritable) as refused:
                add(journal, "while-full")
            assert str(refused.value).startswith(
                f"the journal {disk / 'journal.sqlite3'} cannot be written (database or disk "
                "is full; 0.0 MB free on its disk)")
            with pytest.raises(JournalUnwritable):
                journal.transition("before", RUNNING, "started", TIME)
            os.remove(filler)
            # The failed commits left no transaction open: these are on the disk, as any
            # other connection sees.
            add(journal, "after")
            journal.transition("before", RUNNING, "started", TIME)
        finally:
            journal.close()
        with sqlite3.connect(disk / "journal.sqlite3") as other:
            assert dict(other.execute("SELECT id, state FROM orders")) == {
                "before": "running", "after": "accepted"}
