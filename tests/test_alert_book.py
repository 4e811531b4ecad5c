"""The alerts daemon's book of events, on a SQLite file: a row whose JSON cannot be read (edited
by hand, or damaged on its disk) is left out of what the book answers, named once in the log."""

import logging
import sqlite3
from datetime import datetime, timezone
from types import SimpleNamespace

from test_journal import query_plans
from torosmanager.alerts import report
from torosmanager.alerts.events import SUBMITTED, EventBook

RECEIVED = "2026-11-10T18:00:00+00:00"


def test_a_row_that_cannot_be_read_is_left_out_and_named_once(tmp_path, caplog):
    path = str(tmp_path / "alerts.sqlite3")
    book = EventBook(path)
    alert = SimpleNamespace(event_id="S1", alert_type="INITIAL", serial=1, kind="GW", test=True,
                            issued=datetime(2026, 11, 10, 17, 59, tzinfo=timezone.utc))
    for order_id in ("alert-1", "alert-2"):
        book.record_alert(order_id, alert, RECEIVED)
        book.set_outcome(order_id, {"Targets": 1})
    book.plan("alert-1", "S1", [{"ID": "S1-01", "RA": 1.0}, {"ID": "S1-02", "RA": 2.0}])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alerts SET outcome = '[1]' WHERE order_id = 'alert-1'")
        db.execute("UPDATE event_orders SET work_order = 'RA=1' WHERE id = 'S1-01'")
    db.close()

    with caplog.at_level(logging.ERROR, logger="torosmanager.alerts.events"):
        for _ in range(2):
            assert [row.order_id for row in book.alerts()] == ["alert-2"]
            assert book.alerts("S1")[0].outcome == {"Targets": 1}
            assert [order.work_order for order in book.orders(event_id="S1")] == [
                {"ID": "S1-02", "RA": 2.0}]
    assert caplog.messages == [
        f"{path}: the alerts book's row of alert-1 cannot be read (JSON list, not an object); "
        "it is left out",
        f"{path}: the alerts book's row of S1-01 cannot be read (Expecting value: line 1 "
        "column 1 (char 0)); it is left out"]
    book.close()


def test_the_latest_events_come_first_found_without_sorting_every_alert(tmp_path):
    book = EventBook(str(tmp_path / "alerts.sqlite3"))
    for order_id, event_id, received in (("a1", "S1", "2026-11-10T18:00:00+00:00"),
                                         ("a2", "S2", "2026-11-10T18:10:00+00:00"),
                                         ("a3", "S1", "2026-11-10T18:20:00+00:00"),
                                         ("a4", "S3", "2026-11-10T18:20:00+00:00")):
        alert = SimpleNamespace(event_id=event_id, alert_type="INITIAL", serial=1, kind="GW",
                                test=False, issued=datetime(2026, 11, 10, tzinfo=timezone.utc))
        book.record_alert(order_id, alert, received)
    # S1's update came after S2; S3 came at the same instant as it, but was read after it.
    assert book.recent_events() == ["S3", "S1", "S2"]
    assert book.recent_events(2) == ["S3", "S1"]
    # Years of alerts are not read for the latest few: an index gives them in order.
    assert query_plans(book._db, lambda: book.recent_events(1)) == [
        "SCAN alerts USING INDEX alerts_by_received"]
    book.close()



def test_an_alert_issued_later_is_found_whatever_its_offset_or_arrival(tmp_path):
    book = EventBook(str(tmp_path / "alerts.sqlite3"))

    def alert(alert_type, serial, issued):
        return SimpleNamespace(event_id="GRB1", alert_type=alert_type, serial=serial,
                               kind="grb", test=False, issued=datetime.fromisoformat(issued))

    read = {"a1": alert("FLT_POS", 1, "2026-11-10T18:00:00+00:00"),
            "a2": alert("GND_POS", 2, "2026-11-10T20:30:00+02:00"),  # 18:30 UTC
            "a3": alert("RETRACTION", 0, "2026-11-10T19:00:00+00:00")}
    for order_id, each in read.items():
        book.record_alert(order_id, each, RECEIVED)
        book.set_outcome(order_id, {"Targets": "pointing"})
    assert book.issued_later("a1", read["a1"]).order_id == "a2"  # the retraction not counted
    assert book.issued_later("a2", read["a2"]) is None
    # Issued at the same instant as the newest, a higher serial is the later alert.
    tie = alert("GND_POS", 3, "2026-11-10T18:30:00+00:00")
    book.record_alert("a4", tie, RECEIVED)
    book.set_outcome("a4", {"Ignored": "FAR"})  # ignored by the policy: the newer word
    assert book.issued_later("a2", read["a2"]).order_id == "a4"
    assert book.issued_later("a4", tie) is None
    book.close()


def test_an_alert_is_never_passed_over_for_one_that_has_no_plan(tmp_path):
    """The same LVK alert as a VOEvent, issued two seconds after its JSON, read first: its
    skymap cannot be fetched (or is still being fetched), and the JSON, which carries it, must
    still be acted on."""
    book = EventBook(str(tmp_path / "alerts.sqlite3"))

    def alert(serial, second):
        return SimpleNamespace(event_id="S1", alert_type="INITIAL", serial=serial, kind="gw",
                               test=False, issued=datetime(2026, 11, 10, 18, 0, second,
                                                           tzinfo=timezone.utc))

    voevent, kafka = alert(1, 2), alert(0, 0)
    book.record_alert("voevent", voevent, RECEIVED)
    book.record_alert("kafka", kafka, RECEIVED)
    assert book.issued_later("kafka", kafka) is None  # still being localised
    for outcome in ({"Problem": "the skymap at ... cannot be reached"},
                    {"Summary": "passed over", "Issued Later": "other"},
                    {"Summary": "repeats", "Same As": "other"}):
        book.set_outcome("voevent", outcome)
        assert book.issued_later("kafka", kafka) is None, outcome
    book.set_outcome("voevent", {"Targets": "fields"})
    assert book.issued_later("kafka", kafka).order_id == "voevent"
    book.close()


def test_an_event_is_observing_until_the_last_of_its_orders_nights_has_ended(tmp_path):
    """`toros alerts` a week later does not call every past event "observing"."""
    book = EventBook(str(tmp_path / "alerts.sqlite3"))
    alert = SimpleNamespace(event_id="S1", alert_type="INITIAL", serial=1, kind="GW",
                            test=False, issued=datetime(2026, 11, 10, tzinfo=timezone.utc))
    book.record_alert("a1", alert, RECEIVED)
    book.plan("a1", "S1", [{"ID": "S1-1-01", "Not After": "2026-11-10T11:25:00.000Z"},
                           {"ID": "S1-1-02", "Not After": "2026-11-11T11:25:00.000Z"}])
    book.mark(["S1-1-01", "S1-1-02"], SUBMITTED, "queued")

    def state(now):
        handler = SimpleNamespace(book=book, clock=SimpleNamespace(now=lambda: now))
        (event,) = report.events(handler)
        return event["State"]

    assert state(datetime(2026, 11, 11, 11, 24, tzinfo=timezone.utc)) == "observing"
    assert state(datetime(2026, 11, 11, 11, 26, tzinfo=timezone.utc)) == "nights over"
    book.close()


def test_an_alert_that_says_what_another_acted_on_said_is_found_while_its_plan_stands(
        tmp_path):
    """The LVK alert from ``igwn.gwalert`` (no serial) and the same one as a VOEvent (serial 2):
    the same event, type and skymap are the same alert, whatever their issue times."""
    book = EventBook(str(tmp_path / "alerts.sqlite3"))

    def read(order_id, alert_type, serial, outcome, minute=0):
        alert = SimpleNamespace(event_id="S1", alert_type=alert_type, serial=serial, kind="gw",
                                test=False, issued=datetime(2026, 11, 10, 18, minute,
                                                            tzinfo=timezone.utc))
        book.record_alert(order_id, alert, RECEIVED)
        book.set_outcome(order_id, outcome)
        return alert

    acted = {"Targets": "fields", "Skymap SHA-256": "aa",
             "Plan Ends": "2026-11-11T11:25:00.000Z"}
    read("json", "INITIAL", 0, acted)
    voevent = read("voevent", "INITIAL", 2, {}, minute=1)
    tonight = datetime(2026, 11, 11, 3, 0, tzinfo=timezone.utc)
    assert book.same_alert_acted_on("voevent", voevent, "aa", tonight).order_id == "json"
    # Another map, another type, or another serial where both have one: another alert.
    assert book.same_alert_acted_on("voevent", voevent, "bb", tonight) is None
    update = read("update", "UPDATE", 0, {}, minute=2)
    assert book.same_alert_acted_on("update", update, "aa", tonight) is None
    read("voevent-1", "INITIAL", 1, acted)
    serial_3 = read("serial-3", "INITIAL", 3, {}, minute=3)
    assert book.same_alert_acted_on("serial-3", serial_3, "aa", tonight).order_id == "json"
    # Its plan no longer stands once the last night it planned is over.
    dawn_after = datetime(2026, 11, 11, 11, 26, tzinfo=timezone.utc)
    assert book.same_alert_acted_on("voevent", voevent, "aa", dawn_after) is None
    book.set_outcome("json", dict(acted, **{"Plan Ends": "2026-11-10T11:25:00.000Z"}))
    assert book.same_alert_acted_on("voevent", voevent, "aa", tonight) is None
    assert book.same_alert_acted_on("serial-3", serial_3, "aa", tonight) is None
    # An alert read after it counts once acted on (the other planned first); one ignored not.
    book.set_outcome("json", {})
    book.set_outcome("voevent", acted)
    assert book.same_alert_acted_on("json", read("json", "INITIAL", 0, {}), "aa",
                                tonight).order_id == "voevent"
    book.set_outcome("voevent", {})
    book.set_outcome("json", {"Ignored": "FAR", "Skymap SHA-256": "aa"})
    assert book.same_alert_acted_on("voevent", voevent, "aa", tonight) is None
    book.close()


def test_the_book_commits_to_the_disk_itself(tmp_path):
    """As the journal: synchronous commits, and on macOS past the drive's cache (F_FULLFSYNC)."""
    book = EventBook(str(tmp_path / "alerts.sqlite3"))
    try:
        assert [book._db.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("synchronous", "fullfsync", "checkpoint_fullfsync")] == [2, 1, 1]
    finally:
        book.close()
