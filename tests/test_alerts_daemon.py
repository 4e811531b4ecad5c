"""The alerts daemon as a real process: alerts in, target-of-opportunity orders at a real
scheduler, updates that supersede, retractions that cancel, duplicates that do nothing, and a
restart in the middle of an event that loses nothing.

The alerts are real ones (see ``alert_fixtures``): LVK S2498 (a 2-D map, ligo-followup-advocate
2.2.0), Einstein Probe and IceCube (gwcelery 3.0.0). The clock is noon at CTMO, so the orders
wait for tonight at the scheduler and nothing is dispatched while the tests look at them.
"""

import base64
import io
import json
import os
import re
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xmlrpc.client
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from astropy.io import fits
from astropy_healpix import healpix_to_lonlat, nside_to_pixel_area, uniq_to_level_ipix

from alert_fixtures import FOLLOWUP_ADVOCATE, alert_file
from helpers_gracedb import gracedb
from conftest import simulated_clock
from observatory import PATIENCE, ended, refusal, status, step, wait_until
from observatory import settings as observatory_settings
from test_alert_gcn_socket import GBM_FLT_737238260, SWIFT_BAT_1227767, voevent_packet
from torosmanager.alerts.events import EventBook
from torosmanager.alerts.formats.gcn_socket import (BURST_DEC, BURST_RA, BURST_SOD, BURST_TJD,
                                                    NOT_A_GRB_BIT, PKT_SERNUM, PKT_SOD,
                                                    TRIG_OBS_NUM, TRIGGER_ID)
from torosmanager.alerts.handler import LOCALISING, READING, REREAD, TO_PLAN
from torosmanager.alerts.intake import alert_of
from torosmanager.journal import CANCELLED, DONE, QUEUED, RUNNING, Journal
from torosmanager.launcher import free_port
from torosmanager.workorders import FaultCode

#: Noon at CTMO (18:00 UTC): tonight is ahead, nothing is dispatched during the tests.
NOON = datetime(2026, 11, 10, 18, 0, tzinfo=timezone.utc)
#: The LVK alert used throughout: a 2-D map (cWB), superevent S2498 (a mock: "search": "MDC").
S2498 = "S2469/files/S2469-1-initial.json"
TOROS = os.path.join(os.path.dirname(sys.executable), "toros")
#: Late in the night at CTMO (11:25 UTC dawn): S2498's region is up.
LATE_NIGHT = datetime(2026, 11, 10, 9, 0, tzinfo=timezone.utc)
#: When the orders a test writes in a journal itself were received.
TIME = "2026-11-10T17:59:00.000Z"


def settings(**alerts):
    return {"Clock": simulated_clock(NOON, 1.0),
            "Alerts": dict({"Accept Test Alerts": True, "Max Targets": 5}, **alerts)}


@pytest.fixture
def observatory(make_site):
    return make_site(settings()).start("scheduler", "alerts")


def lvk(**changes):
    """The S2498 INITIAL alert as text, with *changes* to its top-level keys."""
    data = json.loads(alert_file(S2498, FOLLOWUP_ADVOCATE).read_text())
    data.update(changes)
    return json.dumps(data)


def later(minutes):
    return (datetime(2023, 4, 30, 18, 55, 35, tzinfo=timezone.utc)
            + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def send(site, payload, format_name="lvk_json", order_id=None, **keys):
    order = dict({"WOType": "Alert", "Format": format_name, "Payload": payload,
                  "User": "test"}, **keys)
    if order_id:
        order["ID"] = order_id
    return site.proxy("alerts").front_desk(order)


def finished(site, order_id):
    """Wait for an alert order to end; its Status."""
    def check():
        answer = site.proxy("alerts").front_desk({"WOType": "Status", "ID": order_id})
        return answer if answer["Status"] in ("done", "failed", "cancelled") else None
    return wait_until(check, f"alert order {order_id} to end")


def event_orders(site, event_id):
    """The event's orders at the scheduler: ID → Status answer."""
    report = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": event_id})
    return {order["ID"]: site.proxy("scheduler").front_desk({"WOType": "Status",
                                                             "ID": order["ID"]})
            for order in report["Orders"] if order["Here"] != "refused"}


def test_an_lvk_alert_becomes_target_of_opportunity_orders_at_the_scheduler(observatory):
    receipt = send(observatory, lvk(), order_id="first")
    assert receipt["Status"] in ("accepted", "queued", "running", "done")
    done = finished(observatory, "first")
    assert done["Status"] == "done", done["Message"]
    assert "S2498 INITIAL (test)" in done["Message"] and "accepted by the scheduler" in \
        done["Message"]
    # Its history tells each step once, in order.
    steps = [entry["Reason"] for entry in done["History"] if entry["Status"] == "running"]
    assert steps == [READING, f"read; {TO_PLAN}", LOCALISING,
                     "read; submitting its orders to the scheduler"], steps
    orders = event_orders(observatory, "S2498")
    assert 1 <= len(orders) <= 5
    for answer in orders.values():
        order = answer["Work Order"]
        assert answer["Status"] == "queued"
        assert order["Group ID"] == "S2498" and order["Type of job"] == "ToO"
        # A binary black hole (HasNS 0): no kilonova, so no +1 on the 9.5 requested.
        assert order["Type of object"] == "Gravitational-wave counterpart"
        assert order["User"] == "alerts"
        assert 0 < order["Probability"] <= 1
        assert answer["Priority"] == 9.5
    # The event's report, as `toros alerts` shows it.
    listed = subprocess.run([TOROS, "--config", observatory.config_path, "alerts"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "S2498" in listed.stdout and "observing" in listed.stdout
    report = json.loads(subprocess.run(
        [TOROS, "--config", observatory.config_path, "alerts", "S2498", "--json"],
        capture_output=True, text=True, timeout=60, check=True).stdout)
    assert {order["Scheduler"] for order in report["Orders"]} == {"queued"}
    planned = sum(order["Probability"] for order in report["Orders"])
    assert report["Coverage"]["Planned"] == pytest.approx(planned, abs=1e-5)
    assert report["Coverage"]["Observed"] == 0
    # The order's message names what its percentages are of.
    coverage = report["Coverage"]
    assert (f"covering {coverage['Planned']:.1%} tonight (visible tonight "
            f"{coverage['Visible Tonight']:.1%} of the candidates' {coverage['Total']:.1%})"
            in done["Message"]), (done["Message"], coverage)


def test_toros_alert_hands_a_file_over_and_says_how_to_follow_it(observatory, tmp_path):
    path = tmp_path / "S2498-1-initial.json"
    path.write_text(lvk())
    command = [TOROS, "--config", observatory.config_path, "alert", str(path)]
    handed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert handed.returncode == 0, handed.stderr
    order_id = handed.stdout.splitlines()[2].split()[0]
    assert handed.stdout.splitlines()[-1] == (f"Follow it: toros status {order_id} --to alerts; "
                                              "its event: toros alerts")
    assert finished(observatory, order_id)["Status"] == "done"
    # The night to plan goes with --dry-run only: the daemon plans by its clock.
    wrong = subprocess.run(command + ["--night-after", "2026-11-10T20:00:00"],
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "--night-after goes with --dry-run" in wrong.stderr


def test_a_row_of_its_book_that_cannot_be_read_is_left_out_not_the_events_report(observatory):
    send(observatory, lvk(), order_id="read")
    assert finished(observatory, "read")["Status"] == "done"
    alerts = observatory.proxy("alerts")
    planned = alerts.front_desk({"WOType": "Events", "Event ID": "S2498"})["Orders"]
    with sqlite3.connect(observatory.directory / "alerts.sqlite3") as db:  # by hand, or a disk
        db.execute("UPDATE event_orders SET work_order = '{\"RA\": 3' WHERE id = ?",
                   (planned[0]["ID"],))
    db.close()
    report = alerts.front_desk({"WOType": "Events", "Event ID": "S2498"})
    assert [order["ID"] for order in report["Orders"]] == [order["ID"] for order in planned[1:]]
    assert alerts.front_desk({"WOType": "Events"})["Events"][0]["ID"] == "S2498"
    assert (f"the alerts book's row of {planned[0]['ID']} cannot be read (Expecting"
            in observatory.log("alerts"))


def test_an_alert_order_that_cannot_be_read_again_leaves_its_events_report(make_site):
    """After a restart, the report reads the latest alert again for its map: a journal row
    that cannot be read (edited by hand, or a disk) leaves the report, Observed counted as
    the fields were planned, and the picture out."""
    site = make_site(settings()).start("scheduler", "alerts")
    assert finished(site, send(site, lvk(), order_id="read")["ID"])["Status"] == "done"
    planned = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
    observed_at_the_scheduler(site, planned["Orders"][:2])
    site.daemons.pop("alerts").stop()
    with sqlite3.connect(site.directory / "alerts.sqlite3") as db:
        db.execute("UPDATE order_texts SET work_order = '{\"Format\": 3' "
                   "WHERE order_key = (SELECT key FROM orders WHERE id = 'read')")
    db.close()
    site.start("alerts")
    report = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
    assert report["Coverage"]["Observed"] == pytest.approx(
        sum(order["Probability"] for order in planned["Orders"][:2]), abs=1e-6)
    assert "alert order read cannot be read again for its event's report: " in \
        site.log("alerts")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(site.url("alerts") + "events/S2498.png", timeout=PATIENCE)
    assert missing.value.code == 404


def test_an_alert_that_does_not_fit_the_lvk_schema_is_logged_so_once(make_site):
    """The reader logged it each time it read the alert: again for the event's report, as if
    a second alert had come."""
    site = make_site(settings()).start("scheduler", "alerts")
    assert finished(site, send(site, lvk(), order_id="misfit")["ID"])["Status"] == "done"
    planned = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
    observed_at_the_scheduler(site, planned["Orders"][:1])
    site.daemons.pop("alerts").stop()
    site.start("alerts")        # its maps forgotten: the report reads the alert again
    report = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
    assert report["Coverage"]["Observed"] > 0
    lines = [line for line in site.log("alerts").splitlines() if "does not fit" in line]
    assert len(lines) == 1, lines
    assert "WARNING [WO misfit] LVK alert S2498 INITIAL does not fit igwn-gwalert-schema" \
        in lines[0] and lines[0].endswith("(a date, a time and a zone such as Z)")


def test_the_same_alert_again_creates_nothing(observatory):
    finished(observatory, send(observatory, lvk(), order_id="once")["ID"])
    finished(observatory, send(observatory, lvk(alert_type="UPDATE", time_created=later(5)),
                               order_id="update")["ID"])
    before = event_orders(observatory, "S2498")
    # The INITIAL delivered again (a Kafka redelivery), after the UPDATE.
    again = finished(observatory, send(observatory, lvk(), order_id="twice")["ID"])
    assert again["Status"] == "done"
    assert "was read before (alert order once)" in again["Message"]
    assert event_orders(observatory, "S2498").keys() == before.keys()
    # The event's latest alert is still the UPDATE, whose plan stands.
    (event,) = observatory.proxy("alerts").front_desk({"WOType": "Events"})["Events"]
    assert event["Latest Alert"] == "UPDATE"


def test_an_update_replaces_the_orders_not_started(observatory):
    finished(observatory, send(observatory, lvk(), order_id="initial")["ID"])
    first = event_orders(observatory, "S2498")
    update = finished(observatory, send(observatory, lvk(alert_type="UPDATE",
                                                         time_created=later(10)),
                                        order_id="update")["ID"])
    assert update["Status"] == "done", update["Message"]
    now = event_orders(observatory, "S2498")
    old = {order_id: now[order_id] for order_id in first}
    new = {order_id: answer for order_id, answer in now.items() if order_id not in first}
    assert {answer["Status"] for answer in old.values()} == {"cancelled"}
    assert new and {answer["Status"] for answer in new.values()} == {"queued"}
    for answer in new.values():
        assert sorted(answer["Work Order"]["Supersedes"]) == sorted(first)


def a_field_of_s2498_observed(make_site):
    """Every daemon late in the night, S2498's INITIAL acted on (at most 3 fields), and one
    of its fields observed: the site, and the IDs of the event's orders."""
    site = make_site(observatory_settings(start=LATE_NIGHT, Alerts={
        "Accept Test Alerts": True, "Max Targets": 3}))
    site.start("preprocessor", "dome", "telescope", "scheduler", "alerts")
    scheduler = site.proxy("scheduler")
    assert finished(site, send(site, lvk(), order_id="initial")["ID"])["Status"] == "done"
    first = sorted(event_orders(site, "S2498"))
    wait_until(lambda: any(status(scheduler, order_id)["Status"] == "done"
                           for order_id in first), "a field observed")
    return site, first


def test_an_update_in_the_night_leaves_out_the_fields_observed_and_goes_on(make_site):
    """An update comes in the middle of the night with the same map (as an Initial alert
    often confirms a Preliminary's): the fields the telescope has observed, or is observing,
    are not observed again; tonight's new pick goes on to the next most probable."""
    site, first = a_field_of_s2498_observed(make_site)
    assert len(first) == 3
    update = finished(site, send(site, lvk(alert_type="UPDATE", time_created=later(10)),
                                 order_id="update")["ID"])
    assert update["Status"] == "done", update["Message"]
    now = event_orders(site, "S2498")
    started = {order_id for order_id in first if now[order_id]["Status"] != "cancelled"}
    assert started and {now[order_id]["Status"] for order_id in started} <= {
        "dispatched", "running", "done"}
    report = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
    (row,) = [alert for alert in report["Alerts"] if alert["Alert Order"] == "update"]
    assert set(row["Observed Orders"]) == started
    assert 0 < report["Coverage"]["Observed Tonight"] < 1
    assert (f"the fields of {len(started)} order(s) observed tonight, "
            f"{report['Coverage']['Observed Tonight']:.1%} of this localisation, left out"
            in update["Message"])
    observed = {(now[order_id]["Work Order"]["RA"], now[order_id]["Work Order"]["Dec"])
                for order_id in started}
    new = [answer["Work Order"] for order_id, answer in now.items() if order_id not in first]
    assert new and not {(order["RA"], order["Dec"]) for order in new} & observed
    assert len(new) <= 3 - len(started)  # Max Targets: the event's, for the night
    # They replace those cancelled, not those observed.
    for order in new:
        assert sorted(order.get("Supersedes", [])) == sorted(set(first) - started)
    # Without them the same map's pick would be the fields already chosen.
    dry = json.loads(subprocess.run(
        [TOROS, "--config", site.config_path, "alert", "--night-after", LATE_NIGHT.isoformat(),
         "--dry-run", "--json", str(alert_file(S2498, FOLLOWUP_ADVOCATE))],
        capture_output=True, text=True, timeout=60, check=True).stdout)
    assert observed <= {(order["RA"], order["Dec"]) for order in dry["Orders"]}


def test_an_alert_issued_ahead_of_the_clock_is_not_acted_on_and_blocks_nothing(observatory):
    # Kept, it would pass over its event's real alerts as issued before it.
    ahead = finished(observatory, send(observatory, lvk(time_created="2030-01-01T00:00:00Z"),
                                       order_id="ahead")["ID"])
    assert ahead["Status"] == "failed"
    assert re.fullmatch(
        r"S2498 INITIAL \(test\): issued at 2030-01-01 00:00:00 UTC, [\d,]+ s after this "
        r"daemon's clock \(2026-11-10 18:0\d:\d\d UTC\), more than Alerts → Max Issued Ahead "
        r"\(3600 s\): a sender's clock off, or a date made up; not acted on", ahead["Message"])
    update = finished(observatory, send(observatory, lvk(alert_type="UPDATE",
                                                         time_created=later(10)))["ID"])
    assert update["Status"] == "done" and "accepted by the scheduler" in update["Message"]
    assert event_orders(observatory, "S2498")


def test_a_retraction_leaves_the_fields_observed_observed(make_site):
    """A retraction cancels what has not ended; the frames taken stay taken, and the event's
    report still counts them (it once marked every order cancelled: Observed 0 %)."""
    site, first = a_field_of_s2498_observed(make_site)
    retraction = json.dumps({"superevent_id": "S2498", "alert_type": "RETRACTION",
                             "time_created": later(10), "event": None, "urls": {}})
    finished(site, send(site, retraction)["ID"])
    at_scheduler = {order_id: answer["Status"]
                    for order_id, answer in event_orders(site, "S2498").items()}
    done = {order_id for order_id, state in at_scheduler.items() if state == "done"}
    assert done and set(at_scheduler.values()) <= {"done", "cancelled"}
    report = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
    here = {order["ID"]: order["Here"] for order in report["Orders"]}
    assert {here[order_id] for order_id in done} == {"submitted"}
    assert {here[order_id] for order_id in set(first) - done} == {"cancelled"}
    observed = sum(order["Probability"] for order in report["Orders"] if order["ID"] in done)
    assert report["Coverage"]["Observed"] == pytest.approx(observed, abs=1e-5) and observed > 0
    assert report["State"] == "retracted"
    # Nothing is planned any more, here nor in the list of events.
    assert report["Coverage"]["Planned"] == 0.0 and report["Coverage"]["Total"] > 0
    listed = site.proxy("alerts").front_desk({"WOType": "Events"})["Events"]
    assert [event["Planned"] for event in listed if event["ID"] == "S2498"] == [0.0]


def test_an_alert_issued_before_one_already_read_leaves_the_newer_plan(observatory,
                                                                        skymap_server):
    """A late delivery (a Kafka message read again, the same alert from a second source, an
    older notice held up) must not replace the newer plan with an older one. Its skymap, if
    it links one, is not fetched."""
    update = finished(observatory, send(observatory, lvk(alert_type="UPDATE",
                                                         time_created=later(10)),
                                        order_id="update")["ID"])
    assert update["Status"] == "done", update["Message"]
    planned = event_orders(observatory, "S2498")
    late = finished(observatory, send(observatory, lvk(), order_id="late")["ID"])
    assert late["Status"] == "done"
    assert late["Message"] == (
        "S2498 INITIAL (test) was issued at 2023-04-30 18:55:35 UTC, before UPDATE (alert "
        "order update, issued at 2023-04-30 19:05:35 UTC), read already: the newer plan "
        "stands; nothing submitted")
    url, asked, _ = skymap_server
    voevent = finished(observatory, send(observatory, lvk_voevent(lvk(), 1, url, 60),
                                         "voevent")["ID"])
    assert "read already: the newer plan stands" in voevent["Message"] and asked == []
    now = event_orders(observatory, "S2498")
    assert set(now) == set(planned)
    assert {answer["Status"] for answer in now.values()} == {"queued"}
    (event,) = observatory.proxy("alerts").front_desk({"WOType": "Events"})["Events"]
    assert event["Latest Alert"] == "UPDATE" and event["State"] == "observing"
    # A retraction acts whenever it comes, whatever it was issued before.
    retraction = json.dumps({"superevent_id": "S2498", "alert_type": "RETRACTION",
                             "time_created": later(5), "event": None, "urls": {}})
    finished(observatory, send(observatory, retraction)["ID"])
    assert {answer["Status"] for answer in event_orders(observatory, "S2498").values()} == {
        "cancelled"}

def test_a_retraction_cancels_every_pending_order_within_two_seconds(observatory):
    finished(observatory, send(observatory, lvk(), order_id="seen")["ID"])
    orders = event_orders(observatory, "S2498")
    assert orders
    retraction = json.dumps({"superevent_id": "S2498", "alert_type": "RETRACTION",
                             "time_created": later(30), "event": None, "urls": {}})
    sent = time.monotonic()
    send(observatory, retraction, order_id="withdrawn")
    scheduler = observatory.proxy("scheduler")

    def all_cancelled():
        return all(scheduler.front_desk({"WOType": "Status", "ID": order_id})["Status"]
                   == "cancelled" for order_id in orders)
    wait_until(all_cancelled, "every order of S2498 to be cancelled")
    assert time.monotonic() - sent < 2.0
    done = finished(observatory, "withdrawn")
    assert f"{len(orders)} order(s) of the event cancelled" in done["Message"]
    # A later alert of a retracted event submits nothing.
    late = finished(observatory, send(observatory, lvk(alert_type="UPDATE",
                                                       time_created=later(40)))["ID"])
    assert "retracted; nothing submitted" in late["Message"]
    assert event_orders(observatory, "S2498").keys() == orders.keys()


def test_a_retraction_while_an_alert_s_orders_are_submitted_leaves_none_standing(make_site):
    """The retraction is read while the scheduler is away and the first of the alert's orders
    waits to be submitted: that one reaches the scheduler once it is back and is cancelled
    there, the others are never sent, and the alert says why."""
    site = make_site(settings(**{"Scheduler Retry Interval": 0.2})).start("alerts")
    send(site, lvk(), order_id="submitting")
    wait_until(lambda: "the scheduler does not answer (attempt 2" in site.log("alerts"),
               "the alert to wait for the scheduler")
    retraction = json.dumps({"superevent_id": "S2498", "alert_type": "RETRACTION",
                             "time_created": later(30), "event": None, "urls": {}})
    send(site, retraction, order_id="withdrawn")
    wait_until(lambda: "[WO withdrawn] running → running: read; cancelling its event's orders"
               in site.log("alerts"), "the retraction to be read")
    site.start("scheduler")
    assert finished(site, "withdrawn")["Status"] == "done"
    done = finished(site, "submitting")
    assert done["Status"] == "done"
    assert done["Message"].endswith("; its event was retracted meanwhile: its orders are "
                                    "cancelled"), done["Message"]
    report = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
    assert len(report["Orders"]) > 1
    assert {order["Here"] for order in report["Orders"]} == {"cancelled"}
    first, *others = [order["ID"] for order in report["Orders"]]
    assert status(site.proxy("scheduler"), first)["Status"] == "cancelled"
    for order_id in others:
        with pytest.raises(xmlrpc.client.Fault) as unknown:
            status(site.proxy("scheduler"), order_id)
        assert unknown.value.faultCode == FaultCode.NOT_FOUND


def test_a_restart_in_the_middle_of_an_event_loses_nothing(make_site):
    site = make_site(settings(), name="restart")
    site.start("alerts")  # no scheduler yet: the planned orders cannot be handed over
    send(site, lvk(), order_id="interrupted")
    wait_until(lambda: "does not answer" in site.log("alerts"), "the alerts daemon to retry")
    site.daemons.pop("alerts").kill()  # as a power cut would stop it
    site.start("scheduler", "alerts")
    done = finished(site, "interrupted")
    assert done["Status"] == "done", done["Message"]
    report = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
    assert report["Orders"] and {order["Here"] for order in report["Orders"]} == {"submitted"}
    assert {order["Scheduler"] for order in report["Orders"]} == {"queued"}
    assert done["Message"].endswith(f"; {len(report['Orders'])} accepted by the scheduler")
    history = [entry["Reason"] for entry in done["History"]]
    assert "to be read again after a restart" in history


def with_neutron_star(probability, **changes):
    """:func:`lvk` with the event's HasNS set to *probability*."""
    data = json.loads(lvk(**changes))
    data["event"]["properties"]["HasNS"] = probability
    return json.dumps(data)


def test_an_update_that_rules_its_event_out_stands_it_down(make_site):
    """An INITIAL alert with a neutron star likely, then an UPDATE that makes it unlikely,
    under Min Probability of Neutron Star: the update was ignored and the INITIAL's plan
    went on being observed. An update ignored for what it is, not for what it says of its
    event (here a type not acted on), leaves the plan as it was."""
    site = make_site(settings(**{"Min Probability of Neutron Star": 0.5,
                                 "Alert Types": ["PRELIMINARY", "INITIAL", "UPDATE"]}))
    site.start("scheduler", "alerts")
    assert finished(site, send(site, with_neutron_star(0.9), order_id="likely")["ID"])[
        "Status"] == "done"
    planned = event_orders(site, "S2498")
    assert planned and {order["Status"] for order in planned.values()} == {"queued"}
    update = finished(site, send(site, with_neutron_star(0.0, alert_type="UPDATE",
                                                         time_created=later(10)),
                                 order_id="unlikely")["ID"])
    assert update["Status"] == "done"
    assert update["Message"] == (
        f"S2498 UPDATE (test) ignored: probability of a neutron star 0.00 is under Alerts → "
        f"Min Probability of Neutron Star (0.5); its event's {len(planned)} earlier order(s) "
        "not yet started are cancelled")
    assert {order["Status"] for order in event_orders(site, "S2498").values()} == {"cancelled"}

    other = "S2499"
    assert finished(site, send(site, with_neutron_star(0.9, superevent_id=other))["ID"])[
        "Status"] == "done"
    early = finished(site, send(site, with_neutron_star(0.0, superevent_id=other,
                                                        alert_type="EARLYWARNING",
                                                        time_created=later(10)))["ID"])
    assert "ignored: alert type EARLYWARNING is not in Alerts → Alert Types" in early["Message"]
    assert "cancelled" not in early["Message"]
    assert {order["Status"] for order in event_orders(site, other).values()} == {"queued"}


def test_what_a_cancelled_alert_left_at_the_scheduler_is_withdrawn_at_the_next_start(
        make_site):
    """Cancelling an alert order withdraws its orders at the scheduler. A daemon stopped
    before it was done (the scheduler not answering meanwhile), or killed, left them there,
    to be observed; when stopped, it also wrote them down as cancelled. What is left is
    withdrawn at the next start, once the scheduler answers."""
    site = make_site(settings(**{"Scheduler Retry Interval": 0.2}))
    site.start("scheduler", "alerts")
    assert finished(site, send(site, lvk(), order_id="withdrawn")["ID"])["Status"] == "done"
    submitted = event_orders(site, "S2498")
    assert submitted and {order["Status"] for order in submitted.values()} == {"queued"}
    site.daemons.pop("alerts").kill()
    journal = Journal(str(site.directory / "alerts.sqlite3"))  # as a Cancel just before
    journal.transition("withdrawn", CANCELLED, "cancelled by the operator", TIME)
    journal.close()

    site.daemons.pop("scheduler").stop()
    site.start("alerts")  # the scheduler away: it tries, and is stopped before it can
    wait_until(lambda: "[WO withdrawn] withdrawing what the cancelled alert order still has "
               "standing at the scheduler" in site.log("alerts")
               and "the scheduler does not answer" in site.log("alerts"),
               "the alerts daemon to try to withdraw the orders")
    site.daemons.pop("alerts").stop()
    book = EventBook(str(site.directory / "alerts.sqlite3"))
    assert {order.state for order in book.orders(event_id="S2498")} == {"submitted"}
    book.close()

    # One of them ended at the scheduler meanwhile (observed, say): it is left as it is.
    ended_there = sorted(submitted)[0]
    site.start("scheduler")
    site.proxy("scheduler").front_desk({"WOType": "Cancel", "ID": ended_there, "User": "x"})
    site.start("alerts")
    wait_until(lambda: {order["Status"] for order in event_orders(site, "S2498").values()}
               == {"cancelled"}, "the orders to be cancelled at the scheduler")
    assert event_orders(site, "S2498").keys() == submitted.keys()
    book = EventBook(str(site.directory / "alerts.sqlite3"))
    wait_until(lambda: {(order.id == ended_there, order.state,
                         order.message if order.state == "cancelled" else "")
                        for order in book.orders(event_id="S2498")} == {
        (False, "cancelled", "cancelled with its alert order"), (True, "submitted", "")},
        "the book to say so")
    wait_until(lambda: "withdrawn" not in book.not_withdrawn(), "the withdrawal to be noted")
    book.close()
    # Withdrawn once: not again at each start (the order that ended stands in the book).
    tried = site.log("alerts").count("withdrawing what the cancelled alert order")
    site.daemons["alerts"].stop()
    site.start("alerts")
    assert site.log("alerts").count("withdrawing what the cancelled alert order") == tried


def test_an_alert_the_daemon_keeps_stopping_on_while_reading_it_is_given_up(make_site):
    """An alert read or localised when the daemon died (an out-of-memory kill, a power cut) is
    read again, but one it died on Max Stops While Reading times is not: no crash loop."""
    site = make_site(settings(**{"Max Stops While Reading": 2}), name="stops")
    journal = Journal(str(site.directory / "alerts.sqlite3"))
    stopped_twice = lvk(superevent_id="S2499")
    for order_id, earlier_stops, payload in (("stopped-once", 0, lvk()),
                                             ("stopped-twice", 1, stopped_twice)):
        order = {"ID": order_id, "WOType": "Alert", "Format": "lvk_json", "Payload": payload,
                 "User": "test"}
        journal.add(order, json.dumps(order), 10.0, "requested: 10", TIME, "received",
                    "queued to be read")
        for _ in range(earlier_stops):  # while its skymap was read, say
            journal.transition(order_id, RUNNING, LOCALISING, TIME)
            journal.transition(order_id, QUEUED, REREAD, TIME)
        journal.transition(order_id, RUNNING, READING, TIME)  # when the daemon died
    journal.close()
    book = EventBook(str(site.directory / "alerts.sqlite3"))
    book.record_alert("stopped-twice", alert_of({"Format": "lvk_json", "Payload": stopped_twice},
                                                NOON), TIME)   # read once, as before it died
    book.close()
    site.start("scheduler", "alerts")
    assert finished(site, "stopped-once")["Status"] == "done"
    given_up = finished(site, "stopped-twice")
    assert given_up["Status"] == "failed"
    assert given_up["Message"].startswith(
        "the alerts daemon stopped 2 times while reading this alert (Alerts → Max Stops While "
        "Reading: 2); not read again")
    # Its event says so (it said "received", as if it were still to be read).
    (event,) = [event for event in site.proxy("alerts").front_desk({"WOType": "Events"})[
        "Events"] if event["ID"] == "S2499"]
    assert event["State"] == "failed"


#: An LVK alert as a VOEvent (the O4 Params, as gwcelery writes them), made of the JSON alert
#: of the same event: GCN sends both, on ``igwn.gwalert`` and on ``gcn.classic.voevent.LVC_*``.
LVK_VOEVENT = """<?xml version='1.0' encoding='UTF-8'?>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" version="2.0" role="{role}"
 ivorn="ivo://gwnet/LVC#{event}-{serial}-{type}">
  <Who><Date>{issued}</Date></Who>
  <What>
    <Param name="Packet_Type" dataType="int" value="151"/>
    <Param name="Pkt_Ser_Num" dataType="int" value="{serial}"/>
    <Param name="GraceID" dataType="string" value="{event}"/>
    <Param name="AlertType" dataType="string" value="{type}"/>
    <Param name="Instruments" dataType="string" value="{instruments}"/>
    <Param name="FAR" dataType="float" value="{far!r}" unit="Hz"/>
    <Param name="Search" dataType="string" value="{search}"/>
    <Group type="GW_SKYMAP" name="cwb">
      <Param name="skymap_fits" dataType="string" value="{skymap_url}"/>
    </Group>
    <Group type="Classification">{classification}</Group>
    <Group type="Properties">{properties}</Group>
  </What>
  <WhereWhen><ObsDataLocation><ObservationLocation><AstroCoords coord_system_id="UTC-FK5-GEO">
    <Time><TimeInstant><ISOTime>{time}</ISOTime></TimeInstant></Time>
  </AstroCoords></ObservationLocation></ObsDataLocation></WhereWhen>
</voe:VOEvent>
"""


def lvk_voevent(alert, serial, skymap_url, seconds_later):
    """The VOEvent of LVK JSON *alert* (text), issued *seconds_later* than it."""
    data = json.loads(alert)
    event = data["event"]

    def params(values):
        return "".join(f'<Param name="{name}" dataType="float" value="{value!r}"/>'
                       for name, value in values.items())

    issued = datetime.fromisoformat(data["time_created"]) + timedelta(seconds=seconds_later)
    return LVK_VOEVENT.format(
        role="test" if event["search"] == "MDC" else "observation", event=data["superevent_id"],
        serial=serial, type=data["alert_type"].capitalize(),
        issued=issued.strftime("%Y-%m-%dT%H:%M:%S"), instruments=",".join(event["instruments"]),
        far=event["far"], search=event["search"], skymap_url=skymap_url, time=event["time"],
        classification=params(event["classification"]), properties=params(event["properties"]))


@pytest.fixture
def skymap_server():
    """S2498's skymap file served on 127.0.0.1 as GraceDB serves the file an LVK VOEvent links
    to (:class:`helpers_gracedb.GraceDB`): its URL, the paths asked for, and an Event that,
    cleared, holds every answer until it is set (GraceDB slow)."""
    with gracedb(base64.b64decode(json.loads(lvk())["event"]["skymap"])) as server:
        yield server.url("cwb.multiorder"), server.asked, server.answering


def test_an_lvk_alert_from_kafka_and_as_a_voevent_is_acted_on_once(observatory, skymap_server):
    """The JSON alert carries its skymap, the VOEvent links it; they share no serial nor issue
    time. Whichever comes first is planned; the other, its map fetched and found the same,
    changes nothing. A VOEvent first is planned from the map it links."""
    url, asked, _ = skymap_server
    json_first = lvk()
    done = finished(observatory, send(observatory, json_first, order_id="kafka")["ID"])
    assert done["Status"] == "done", done["Message"]
    planned = event_orders(observatory, "S2498")
    assert planned
    again = finished(observatory, send(observatory, lvk_voevent(json_first, 2, url, 2),
                                       "voevent", order_id="vtp")["ID"])
    assert asked == ["/cwb.multiorder.fits"]
    assert again["Status"] == "done"
    assert again["Message"] == ("S2498 INITIAL #2 (test) repeats INITIAL (alert order kafka): "
                                "the same type and skymap, whose plan stands; nothing submitted")
    now = event_orders(observatory, "S2498")
    assert now.keys() == planned.keys()
    assert {answer["Status"] for answer in now.values()} == {"queued"}
    (event,) = observatory.proxy("alerts").front_desk({"WOType": "Events"})["Events"]
    assert event["Latest Alert"] == "INITIAL" and event["State"] == "observing"
    alerts = observatory.proxy("alerts").front_desk({"WOType": "Events",
                                                     "Event ID": "S2498"})["Alerts"]
    assert [(alert["Alert Order"], alert["Same As"]) for alert in alerts] == [
        ("kafka", None), ("vtp", "kafka")]
    assert alerts[0]["Skymap SHA-256"] == alerts[1]["Skymap SHA-256"]
    dawn = {answer["Work Order"]["Not After"] for answer in now.values()}
    assert [alert["Plan Ends"] for alert in alerts] == [dawn.pop(), None] and not dawn

    # The other way round, for another event: the VOEvent is planned from the map it links.
    json_second = lvk(superevent_id="S2499")
    first = finished(observatory, send(observatory, lvk_voevent(json_second, 1, url, -3),
                                       "voevent", order_id="vtp-2")["ID"])
    assert first["Status"] == "done", first["Message"]
    assert "S2499 INITIAL #1 (test): " in first["Message"]
    planned = event_orders(observatory, "S2499")
    assert [order["Work Order"]["RA"] for order in planned.values()] == [
        order["Work Order"]["RA"] for order in now.values()]
    second = finished(observatory, send(observatory, json_second, order_id="kafka-2")["ID"])
    assert "repeats INITIAL #1 (alert order vtp-2)" in second["Message"]
    unchanged = event_orders(observatory, "S2499")
    assert unchanged.keys() == planned.keys()
    assert {answer["Status"] for answer in unchanged.values()} == {"queued"}
    # A VOEvent of the same alert that says another thing is another alert: an UPDATE with
    # the same map replaces the orders.
    update = finished(observatory, send(observatory, lvk_voevent(
        lvk(superevent_id="S2499", alert_type="UPDATE"), 3, url, 60), "voevent")["ID"])
    assert "repeats" not in update["Message"] and update["Status"] == "done"
    assert {event_orders(observatory, "S2499")[order_id]["Status"] for order_id in planned} == {
        "cancelled"}
    # The report's picture is drawn from the map fetched for the update, not fetched again.
    assert len(asked) == 3
    picture = urllib.request.urlopen(observatory.url("alerts") + "events/S2499.png",
                                     timeout=PATIENCE).read()
    assert picture.startswith(b"\x89PNG\r\n\x1a\n") and len(asked) == 3


def test_an_lvk_alert_is_acted_on_while_its_voevent_waits_for_its_map_or_fails(
        make_site, skymap_server):
    """The VOEvent comes first, issued two seconds after the JSON. While GraceDB holds its
    skymap, the JSON, which carries it, is acted on at once; the VOEvent, its map had,
    repeats it. A VOEvent whose map cannot be reached at all does not keep its JSON from
    being acted on either; one whose map cannot be had once its JSON was acted on is the JSON's
    twin, not a failure."""
    # The unreachable map is given up after 1 + 2 + 4 s of tries, not the default's 23 s.
    observatory = make_site(settings(**{"Skymap Download Timeout": 8.0})).start(
        "scheduler", "alerts")
    url, asked, answering = skymap_server
    answering.clear()
    send(observatory, lvk_voevent(lvk(), 1, url, 2), "voevent", order_id="vtp")
    wait_until(lambda: asked, "the VOEvent to ask for its skymap")
    kafka = finished(observatory, send(observatory, lvk(), order_id="kafka")["ID"])
    assert kafka["Status"] == "done" and "accepted by the scheduler" in kafka["Message"], kafka
    planned = event_orders(observatory, "S2498")
    assert planned and not answering.is_set()
    answering.set()
    vtp = finished(observatory, "vtp")
    assert "repeats INITIAL (alert order kafka)" in vtp["Message"], vtp
    assert event_orders(observatory, "S2498").keys() == planned.keys()

    unreachable = f"http://127.0.0.1:{free_port()}/cwb.multiorder.fits"  # nothing listens
    second = lvk(superevent_id="S2499")
    failed = finished(observatory, send(observatory, lvk_voevent(second, 1, unreachable, 2),
                                        "voevent", order_id="vtp-2")["ID"])
    assert failed["Status"] == "failed" and "cannot be reached" in failed["Message"]
    acted = finished(observatory, send(observatory, second, order_id="kafka-2")["ID"])
    assert "accepted by the scheduler" in acted["Message"], acted
    planned = event_orders(observatory, "S2499")
    assert planned
    # A VOEvent whose map is not there yet (GraceDB's 404) after its JSON was acted on: the
    # map is tried once, and the VOEvent is done as the JSON's twin.
    not_there = url.rsplit("/", 1)[0] + "/not-there-yet.fits"
    twin = finished(observatory, send(observatory, lvk_voevent(second, 1, not_there, 3),
                                      "voevent", order_id="vtp-3")["ID"])
    assert twin["Status"] == "done", twin
    assert twin["Message"].startswith(f"S2499 INITIAL #1 (test): the skymap at {not_there} "
                                      "cannot be reached: HTTP Error 404"), twin
    assert twin["Message"].endswith("; INITIAL (alert order kafka-2), of the same event and "
                                    "type, its serial the same or none, was acted on and its "
                                    "plan stands; nothing submitted"), twin
    assert asked.count("/not-there-yet.fits") == 1
    assert event_orders(observatory, "S2499") == planned
    report = observatory.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2499"})
    assert report["State"] == "observing"
    assert [(alert["Alert Order"], alert["Same As"]) for alert in report["Alerts"]] == [
        ("vtp-2", None), ("kafka-2", None), ("vtp-3", "kafka-2")]
    # Once the event is retracted no plan of it stands: such a VOEvent fails, saying why.
    finished(observatory, send(observatory, json.dumps(
        {"superevent_id": "S2499", "alert_type": "RETRACTION", "time_created": later(5),
         "event": None, "urls": {}}))["ID"])
    forbidden = url.rsplit("/", 1)[0] + "/forbidden.fits"  # a refusal: not tried again
    late = finished(observatory, send(observatory, lvk_voevent(second, 1, forbidden, 4),
                                      "voevent")["ID"])
    assert late["Status"] == "failed" and "HTTP Error 403" in late["Message"], late


def test_an_alert_that_failed_is_acted_on_when_it_comes_again(make_site, skymap_server):
    """GraceDB slow once: the VOEvent fails, its map not fetched in time. The same VOEvent
    sent again once GraceDB answers (redelivered, or an operator's `toros alert FILE`) was
    taken for a duplicate of the failed one, and the event was never observed."""
    url, _, answering = skymap_server
    site = make_site(settings(**{"Skymap Download Timeout": 2.0})).start("scheduler", "alerts")
    voevent = lvk_voevent(lvk(), 1, url, 2)
    answering.clear()
    first = finished(site, send(site, voevent, "voevent", order_id="first")["ID"])
    assert first["Status"] == "failed" and "was not fetched within 2 s" in first["Message"]
    assert not event_orders(site, "S2498")
    answering.set()
    again = finished(site, send(site, voevent, "voevent", order_id="again")["ID"])
    assert again["Status"] == "done", again["Message"]
    assert "read before" not in again["Message"]
    assert event_orders(site, "S2498")
    third = finished(site, send(site, voevent, "voevent", order_id="third")["ID"])
    assert third["Message"] == ("S2498 INITIAL #1 (test) was read before (alert order again): "
                                "nothing more to do")


def test_a_copy_that_comes_while_the_first_is_handled_waits_for_it_and_acts_if_it_fails(
        make_site, skymap_server):
    """Two brokers deliver one VOEvent milliseconds apart while GraceDB is slow: the second
    was a duplicate of the first, and when the first failed, its map not fetched in time,
    the event was never observed. The second waits for the first to end, then acts."""
    url, _, answering = skymap_server
    site = make_site(settings(**{"Skymap Download Timeout": 2.0})).start("scheduler", "alerts")
    voevent = lvk_voevent(lvk(), 1, url, 2)
    answering.clear()
    send(site, voevent, "voevent", order_id="first")
    send(site, voevent, "voevent", order_id="second")
    waiting = wait_until(lambda: (found := status(site.proxy("alerts"), "second"))[
        "Message"] == "waiting for alert order first, the same alert, to end" and found,
        "the second copy to wait")
    assert waiting["Status"] == "queued"
    first = finished(site, "first")
    answering.set()
    assert first["Status"] == "failed" and "was not fetched within 2 s" in first["Message"]
    second = finished(site, "second")
    assert second["Status"] == "done", second["Message"]
    assert "read before" not in second["Message"]
    assert event_orders(site, "S2498")


def test_an_alert_cancelled_while_it_is_handled_leaves_nothing_at_the_scheduler(
        make_site, skymap_server):
    """Cancelling an Alert order withdraws what it asked for, also when the Cancel comes while
    its skymap is fetched (nothing is planned) or while the scheduler is away and its orders
    wait to be submitted (those submitted once it is back are cancelled there)."""
    url, asked, answering = skymap_server
    site = make_site(settings(**{"Scheduler Retry Interval": 0.2})).start("alerts")
    alerts = site.proxy("alerts")
    answering.clear()
    send(site, lvk_voevent(lvk(), 1, url, 2), "voevent", order_id="fetching")
    wait_until(lambda: asked, "the VOEvent to ask for its skymap")
    assert alerts.front_desk({"WOType": "Cancel", "ID": "fetching"})["Status"] == "cancelled"
    answering.set()
    send(site, lvk(superevent_id="S2499"), order_id="submitting")
    wait_until(lambda: "the scheduler does not answer (attempt 2" in site.log("alerts"),
               "the alert to wait for the scheduler")
    assert alerts.front_desk({"WOType": "Cancel", "ID": "submitting"})["Status"] == "cancelled"
    site.start("scheduler")
    scheduler = site.proxy("scheduler")

    def withdrawn():
        """S2499's orders once the one being submitted when the Cancel came has reached the
        scheduler, and every one there is cancelled; ``None`` before."""
        orders = alerts.front_desk({"WOType": "Events", "Event ID": "S2499"})["Orders"]
        at_scheduler = {}
        for order in orders:
            try:
                at_scheduler[order["ID"]] = status(scheduler, order["ID"])["Status"]
            except xmlrpc.client.Fault as fault:
                assert fault.faultCode == FaultCode.NOT_FOUND  # never submitted
        if at_scheduler and set(at_scheduler.values()) == {"cancelled"} and all(
                order["Here"] == "cancelled" for order in orders):
            return orders, at_scheduler
        return None

    orders, at_scheduler = wait_until(withdrawn, "S2499's orders withdrawn")
    assert len(at_scheduler) < len(orders)  # those after the Cancel never submitted
    # The alert cancelled while its map was fetched (had seconds ago) planned nothing.
    assert alerts.front_desk({"WOType": "Events", "Event ID": "S2498"})["Orders"] == []
    for order_id in ("fetching", "submitting"):
        assert alerts.front_desk({"WOType": "Status", "ID": order_id})["Status"] == "cancelled"


def test_a_retraction_waits_for_no_skymap_being_fetched(make_site, skymap_server):
    """GraceDB slow: four VOEvents of the event wait for their skymap, every worker taken. The
    retraction is done while they all wait, and none of them submits anything afterwards."""
    url, asked, answering = skymap_server
    site = make_site(settings(**{"Skymap Download Timeout": PATIENCE})).start("scheduler",
                                                                              "alerts")
    assert finished(site, send(site, lvk(), order_id="initial")["ID"])["Status"] == "done"
    answering.clear()
    for number in range(4):
        send(site, lvk_voevent(lvk(alert_type="UPDATE", time_created=later(number + 1)),
                               number + 2, url, 0), "voevent", order_id=f"update-{number}")
    wait_until(lambda: len(asked) == 4, "the four updates to ask for their skymap")
    retraction = json.dumps({"superevent_id": "S2498", "alert_type": "RETRACTION",
                             "time_created": later(30), "event": None, "urls": {}})
    done = finished(site, send(site, retraction, order_id="retraction")["ID"])
    assert done["Status"] == "done" and not answering.is_set()
    orders = event_orders(site, "S2498")
    assert {answer["Status"] for answer in orders.values()} == {"cancelled"}
    answering.set()
    # Each is then found retracted, or passed over for one issued later that was.
    messages = [finished(site, f"update-{number}")["Message"] for number in range(4)]
    assert all(message.endswith("nothing submitted") for message in messages), messages
    assert any("its event was retracted" in message for message in messages), messages
    assert event_orders(site, "S2498").keys() == orders.keys()


def test_alerts_that_carry_their_localisation_wait_for_no_linked_skymap(make_site,
                                                                        skymap_server):
    """GraceDB slow: four VOEvents of four events wait for the maps they link. They held the
    four alert workers, and a neutrino alert behind them waited until their downloads were
    given up on (Skymap Download Timeout, 30 s by default); it is acted on while they wait."""
    url, asked, answering = skymap_server
    site = make_site(settings(**{"Skymap Download Timeout": PATIENCE})).start("scheduler",
                                                                              "alerts")
    answering.clear()
    try:
        for number in range(4):
            send(site, lvk_voevent(lvk(superevent_id=f"S25{number:02d}"), 1, url, 0),
                 "voevent", order_id=f"waiting-{number}")
        wait_until(lambda: len(asked) == 4, "the four VOEvents to ask for their skymap")
        gold = alert_file("kafka_alert_icecube_gold.json").read_text()
        done = finished(site, send(site, gold, "gcn_json", order_id="neutrino")["ID"])
        assert done["Status"] == "done", done["Message"]
        assert len(event_orders(site, "IceCube-230416A")) == 1
        assert not answering.is_set() and all(
            status(site.proxy("alerts"), f"waiting-{number}")["Status"] == "running"
            for number in range(4))
    finally:
        answering.set()
    for number in range(4):
        assert finished(site, f"waiting-{number}")["Status"] == "done"


def test_a_stop_waits_for_no_skymap_being_fetched(make_site, skymap_server):
    """GraceDB holds the skymap a VOEvent links to: the daemon stops at once all the same
    (systemd and launchd kill a daemon slow to stop), and after the restart the alert is read
    again and acted on, the stop not counted against it (Max Stops While Reading)."""
    url, asked, answering = skymap_server
    site = make_site(settings(**{"Skymap Download Timeout": PATIENCE})).start("scheduler",
                                                                              "alerts")
    answering.clear()  # for PATIENCE seconds, or until set
    send(site, lvk_voevent(lvk(), 1, url, 0), "voevent", order_id="fetching")
    wait_until(lambda: asked, "the VOEvent to ask for its skymap")
    # Given half the time the map is held: waiting for it, the daemon would be killed.
    assert site.daemons.pop("alerts").stop(timeout=PATIENCE / 2) == 0
    answering.set()
    site.start("alerts")
    done = finished(site, "fetching")
    assert done["Status"] == "done" and "accepted by the scheduler" in done["Message"], done
    assert len(asked) == 2 and event_orders(site, "S2498")
    history = [entry["Reason"] for entry in done["History"]]
    stopped = history.index(REREAD)
    assert history[stopped - 1] == f"read; {TO_PLAN}", history


def test_bad_and_unreachable_alerts_are_recorded_with_the_reason(make_site):
    # GraceDB is tried again while the timeout lasts: here a try, and one a second later.
    observatory = make_site(settings(**{"Skymap Download Timeout": 2.5})).start("scheduler",
                                                                                "alerts")
    bad = finished(observatory, send(observatory, '{"alert_type": "INITIAL"}')["ID"])
    assert bad["Status"] == "failed"
    assert "not a valid alert: lvk_json: missing 'superevent_id'" in bad["Message"]
    # GW170817's Initial VOEvent only links its skymap; this machine cannot reach GraceDB.
    voevent = alert_file("G298048-1-Initial.xml").read_text()
    unreachable = finished(observatory, send(observatory, voevent, "voevent")["ID"])
    assert unreachable["Status"] == "failed"
    assert unreachable["Message"].startswith(
        "G298048 INITIAL #1: the skymap at https://gracedb.ligo.org/apibasic/events/G298048/"
        "files/bayestar.fits.gz cannot be reached: ")
    assert re.search(r" \(2 tries in 1\.\d s; Alerts → Skymap Download Timeout: 2\.5 s\)$",
                     unreachable["Message"]), unreachable["Message"]
    # The event's report says so too (it said None: the alert left no summary in the book).
    report = observatory.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "G298048"})
    assert [alert["Summary"] for alert in report["Alerts"]] == [unreachable["Message"]]
    # A skymap without its event is refused at the front desk, naming the key.
    message = refusal(observatory.proxy("alerts").front_desk,
                      {"WOType": "Alert", "Format": "skymap", "Payload": "AAAA"}).faultString
    assert "'Event ID' is required with Format 'skymap'" in message
    health = observatory.proxy("alerts").front_desk({"WOType": "Status"})
    assert health["Status"] == "running" and health["Events"] == 1


def test_a_bare_skymap_with_its_event_id(observatory):
    data = alert_file("MS220722v_bayestar.multiorder.fits").read_bytes()
    done = finished(observatory, send(observatory, base64.b64encode(data).decode(), "skymap",
                                      **{"Event ID": "MS220722v"})["ID"])
    assert done["Status"] == "done", done["Message"]
    assert event_orders(observatory, "MS220722v")


def test_a_neutrino_and_its_retraction(observatory):
    gold = alert_file("kafka_alert_icecube_gold.json").read_text()
    done = finished(observatory, send(observatory, gold, "gcn_json")["ID"])
    assert done["Status"] == "done", done["Message"]
    orders = event_orders(observatory, "IceCube-230416A")
    assert len(orders) == 1
    (answer,) = orders.values()
    assert answer["Work Order"]["Type of object"] == "Neutrino counterpart"
    retraction = alert_file("kafka_alert_icecube_retraction.json").read_text()
    withdrawn = finished(observatory, send(observatory, retraction, "gcn_json")["ID"])
    assert "1 order(s) of the event cancelled" in withdrawn["Message"]
    assert event_orders(observatory, "IceCube-230416A")[answer["ID"]]["Status"] == "cancelled"


def test_an_operator_stands_down_from_an_event_its_senders_have_not_retracted(observatory):
    """A glitch seen by eye: a retraction by hand cancels the event's orders, and its later
    alerts submit nothing (cancelling its orders at the scheduler, an update put them back)."""
    finished(observatory, send(observatory, lvk(superevent_id="S7777"))["ID"])
    orders = event_orders(observatory, "S7777")
    assert orders
    refused = refusal(observatory.proxy("alerts").front_desk, {
        "WOType": "Alert", "Format": "retraction", "Payload": "a glitch in L1"})
    assert "'Event ID' is required with Format 'retraction'" in refused.faultString
    # A typo stood down an event of its own and said done, the real one observed all along.
    for typed, meant in (("s7777", "'S7777'"), ("S7778", "'S7777'")):
        refused = refusal(observatory.proxy("alerts").front_desk, {
            "WOType": "Alert", "Format": "retraction", "Event ID": typed, "Payload": "glitch"})
        assert refused.faultString == (
            f"'Event ID': received {typed!r}; the alerts daemon has read no alert of this "
            f"event, to stand down from; did you mean {meant}?")
    done = finished(observatory, send(observatory, "a glitch in L1, by eye", "retraction",
                                      **{"Event ID": "S7777"})["ID"])
    assert done["Status"] == "done", done["Message"]
    assert done["Message"].startswith(f"S7777 RETRACTION by test (a glitch in L1, by eye): "
                                      f"{len(orders)} order(s) of the event cancelled at the "
                                      "scheduler")
    assert {answer["Status"] for answer in event_orders(observatory, "S7777").values()} == \
        {"cancelled"}
    late = finished(observatory, send(observatory, lvk(superevent_id="S7777",
                                                       alert_type="UPDATE",
                                                       time_created=later(40)))["ID"])
    assert "retracted; nothing submitted" in late["Message"]
    report = observatory.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S7777"})
    assert report["Kind"] == "gw" and report["State"] == "retracted"


def test_an_event_whose_orders_the_scheduler_refuses_says_so(make_site):
    """A filter the telescope lacks: not 'nothing observable', which sends the operator
    looking at the sky instead of at the configuration."""
    site = make_site(settings(Neutrinos={"Act": True, "Filter": "Q", "Exposure Time": 120.0,
                                         "Number of Exposures": 3, "Priority": 9.0}))
    site.start("telescope", "scheduler", "alerts")
    wait_until(lambda: site.proxy("scheduler").front_desk({"WOType": "Status"}).get(
        "Telescope Limits"), "the scheduler to learn the telescope's filters")
    gold = alert_file("kafka_alert_icecube_gold.json").read_text()
    failed = finished(site, send(site, gold, "gcn_json")["ID"])
    report = site.proxy("alerts").front_desk({"WOType": "Events",
                                              "Event ID": "IceCube-230416A"})
    assert report["State"] == "refused by the scheduler"
    assert "'Filter': received 'Q'" in report["Orders"][0]["Message"]
    # A failure, which the health report counts, not an alert 'done'.
    assert failed["Status"] == "failed"
    assert f"; the scheduler refused all 1: {report['Orders'][0]['Message']}" in \
        failed["Message"]


def test_the_events_are_listed_the_most_recent_first_as_many_as_asked(observatory):
    # Retractions of events never announced: events all the same, and quick to read.
    for number in range(3):
        retraction = json.dumps({"superevent_id": f"S900{number}", "alert_type": "RETRACTION",
                                 "time_created": later(number), "event": None, "urls": {}})
        assert finished(observatory, send(observatory, retraction)["ID"])["Status"] == "done"
    alerts = observatory.proxy("alerts")
    answer = alerts.front_desk({"WOType": "Events", "Limit": 2})
    assert [event["ID"] for event in answer["Events"]] == ["S9002", "S9001"]
    assert answer["Total Events"] == 3
    assert len(alerts.front_desk({"WOType": "Events"})["Events"]) == 3
    message = refusal(alerts.front_desk, {"WOType": "Events", "Limit": 0}).faultString
    assert "'Limit': received 0" in message and "a whole number ≥ 1" in message
    listed = subprocess.run([TOROS, "--config", observatory.config_path, "alerts", "--limit",
                             "1"], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "S9002" in listed and "S9001" not in listed
    assert "The 1 most recent of 3 events (--limit N or --all for more)." in listed
    listed = subprocess.run([TOROS, "--config", observatory.config_path, "alerts", "--all"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert all(event in listed for event in ("S9000", "S9001", "S9002"))
    assert "most recent" not in listed
    page = urllib.request.urlopen(observatory.url("alerts"), timeout=30).read().decode()
    assert page.index("S9002") < page.index("S9001") < page.index("S9000")

def test_the_scheduler_cancels_a_group(site):
    site.start("scheduler")
    scheduler = site.proxy("scheduler")
    for number in range(3):
        scheduler.front_desk({"ID": f"g{number}", "WOType": "Observation", "RA": 10.0 * number,
                              "Dec": 5.0, "Filter": "R", "Exposure Time": 10,
                              "Group ID": "S1"})
    scheduler.front_desk({"ID": "other", "WOType": "Observation", "RA": 1.0, "Dec": 5.0,
                          "Filter": "R", "Exposure Time": 10, "Group ID": "S2"})
    answer = scheduler.front_desk({"WOType": "Cancel", "Group ID": "S1", "User": "test"})
    assert sorted(answer["Cancelled"]) == ["g0", "g1", "g2"] and answer["Kept"] == []
    assert scheduler.front_desk({"WOType": "Status", "ID": "other"})["Status"] != "cancelled"
    message = refusal(scheduler.front_desk, {"WOType": "Cancel"}).faultString
    assert "need what to cancel" in message and "'Group ID'" in message
    # A group matching nothing (mistyped: compared exactly) says so, rather than "0 cancelled".
    nothing = scheduler.front_desk({"WOType": "Cancel", "Group ID": "s2", "User": "test"})
    assert nothing["Cancelled"] == [] and nothing["Message"] == (
        "nothing to cancel: no order of this daemon that has not ended has Group ID 's2' "
        "(compared exactly, case included)")
    # One or the other: an ID and a group together were read as the ID alone.
    both = refusal(scheduler.front_desk, {"WOType": "Cancel", "ID": "other", "Group ID": "S2"})
    assert both.faultString == ("'ID' and 'Group ID': received both, 'other' and 'S2'; allowed: "
                                "one of them ('ID' cancels one order, 'Group ID' every order "
                                "of a group)")
    kept = refusal(scheduler.front_desk, {"WOType": "Cancel", "ID": "other",
                                          "Keep Running": True})
    assert kept.faultString.startswith("'Keep Running': received True; allowed: only with "
                                       "'Group ID'")
    assert scheduler.front_desk({"WOType": "Status", "ID": "other"})["Status"] != "cancelled"


def test_the_status_page_shows_each_event_with_its_report_and_map(observatory):
    finished(observatory, send(observatory, lvk(), order_id="seen")["ID"])
    page = urllib.request.urlopen(observatory.url("alerts"), timeout=30).read().decode()
    assert "<table id='events'>" in page and "S2498" in page and "observing" in page
    report = json.loads(urllib.request.urlopen(observatory.url("alerts") + "events/S2498.json",
                                                timeout=30).read())
    assert report["Event"] == "S2498" and report["Orders"]
    html = urllib.request.urlopen(observatory.url("alerts") + "events/S2498.html",
                                  timeout=30).read().decode()
    assert all(order["ID"] in html for order in report["Orders"])
    assert "<img src='/events/S2498.png'" in html
    # Styled and refreshed as the status page is, a way back to it, times for people.
    assert "<style>" in html and "http-equiv='refresh'" in html and "<a href='/'>" in html
    alert = report["Alerts"][0]
    assert alert["Issued"].endswith("Z") and alert["Received"].endswith("Z")  # as every time
    issued, received = (datetime.fromisoformat(alert[key].replace("Z", "+00:00"))
                        for key in ("Issued", "Received"))
    assert (f"<td>{issued:%Y-%m-%d %H:%M:%S}</td><td>{received:%Y-%m-%d %H:%M:%S}</td>"
            in html), html
    picture = urllib.request.urlopen(observatory.url("alerts") + "events/S2498.png",
                                     timeout=60).read()
    assert picture.startswith(b"\x89PNG\r\n\x1a\n")
    for unknown in ("S0000.json", "S0000.png", "S2498.txt", ".json", ".html", ".png"):
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(observatory.url("alerts") + "events/" + unknown, timeout=30)


def test_a_gcn_socket_notice_becomes_an_order_at_the_scheduler(make_site):
    port = free_port()
    site = make_site(settings(**{"GCN Socket": {"Enabled": True, "IP": "127.0.0.1",
                                                "Port": port}}), name="socket")
    site.start("scheduler", "alerts")
    notice = struct.pack(">40i", *SWIFT_BAT_1227767)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as gcn:
        gcn.sendall(notice)
        echo = b""
        while len(echo) < len(notice):
            echo += gcn.recv(len(notice) - len(echo))
    assert echo == notice  # GCN's socket protocol: every notice is echoed back

    def orders():
        # The event's orders are journaled as planned before they are sent: wait for the
        # scheduler's acceptance, not for the plan.
        report = site.proxy("alerts").front_desk({"WOType": "Events"})
        if not any(event["ID"] == "Swift-1227767" for event in report["Events"]):
            return None
        planned = site.proxy("alerts").front_desk({"WOType": "Events",
                                                   "Event ID": "Swift-1227767"})["Orders"]
        return planned and all(order["Here"] == "submitted" for order in planned) and \
            event_orders(site, "Swift-1227767")
    (answer,) = wait_until(orders, "the Swift notice's order at the scheduler").values()
    order = answer["Work Order"]
    assert (order["RA"], order["Dec"]) == pytest.approx((336.6645, 8.5135))
    assert order["Type of object"] == "GRB afterglow" and order["Group ID"] == "Swift-1227767"
    health = site.proxy("alerts").front_desk({"WOType": "Status"})
    assert health["Sources"]["GCN Socket"]["Messages"] == 1
    # The trigger number alone names the Swift event to an operator, not another event.
    hint = "a trigger number is named after its mission: Swift-1227767"
    for order in ({"WOType": "Events", "Event ID": "1227767"},
                  {"WOType": "Alert", "Format": "retraction", "Event ID": "1227767",
                   "Payload": "a satellite glint"}):
        assert hint in refusal(site.proxy("alerts").front_desk, order).faultString
    # A retraction of a number no alert carries would stand for an event no alert is named.
    refused = refusal(site.proxy("alerts").front_desk,
                      {"WOType": "Alert", "Format": "retraction", "Event ID": "7654321",
                       "Payload": "a satellite glint"}).faultString
    assert "named after its mission, as toros alerts lists events (Swift-1227767)" in refused


def test_a_swift_notice_from_the_socket_and_as_a_voevent_is_acted_on_once(observatory):
    """The same Swift BAT notice, as a VOEvent (its Date in whole seconds) and on the GCN
    socket (its time in centiseconds): the second was taken as issued later, and planned
    again, cancelling the first's order for one of its own."""
    text = alert_file("swift_grb_gcn.xml").read_text()
    text = text.replace("<C1>268.8700</C1>", "<C1>45.0000</C1>").replace(  # up tonight
        "<C2>-20.3153</C2>", "<C2>-25.0000</C2>")
    binary, voevent = voevent_packet("swift_grb_gcn.xml", text.encode())
    notice = list(struct.unpack(">40i", binary))
    notice[PKT_SOD] += 37  # 14:05:40.37 on the socket, 14:05:40 in the VOEvent
    first = finished(observatory, send(observatory, text, "voevent", order_id="vtp")["ID"])
    assert first["Status"] == "done", first["Message"]
    planned = event_orders(observatory, voevent.event_id)
    assert planned
    again = finished(observatory, send(observatory, base64.b64encode(
        struct.pack(">40i", *notice)).decode(), "gcn_socket", order_id="socket")["ID"])
    assert again["Message"] == (f"{voevent.event_id} PRELIMINARY #{voevent.serial} was read "
                                "before (alert order vtp): nothing more to do")
    now = event_orders(observatory, voevent.event_id)
    assert now.keys() == planned.keys()
    assert {order["Status"] for order in now.values()} == {"queued"}


def test_grbs_followed_across_the_upgrade_that_named_them_after_their_missions_are_apart(
        make_site):
    """Versions before b25f9dd kept a Swift trigger and a Fermi trigger of one number as one
    event, "1227767", their orders in Group ID "1227767". After the upgrade a retraction, read
    as "Swift-1227767", found no such event's orders, cancelled nothing, and the telescope went
    on observing a burst declared not real. At the daemon's start each alert goes to its own
    event; the Swift retraction cancels the Swift order by its ID, and leaves Fermi's."""
    site = make_site(settings(), name="upgrade").start("scheduler", "alerts")
    swift = list(SWIFT_BAT_1227767)
    fermi = list(GBM_FLT_737238260)  # the same trigger number, time and place
    for field in (PKT_SOD, TRIG_OBS_NUM, BURST_TJD, BURST_SOD, BURST_RA, BURST_DEC):
        fermi[field] = swift[field]
    for name, packet in (("swift", swift), ("fermi", fermi)):
        done = finished(site, send(site, base64.b64encode(struct.pack(">40i", *packet)).decode(),
                                   "gcn_socket", order_id=name)["ID"])
        assert done["Status"] == "done", done["Message"]
    (swift_order,) = event_orders(site, "Swift-1227767")
    fermi_orders = list(event_orders(site, "Fermi-1227767"))
    assert fermi_orders
    site.stop()
    # The state the earlier version left: one name for both, and the orders' group.
    with sqlite3.connect(site.directory / "alerts.sqlite3") as book:
        book.execute("UPDATE alerts SET event_id = '1227767'")
        book.execute("UPDATE event_orders SET event_id = '1227767', "
                     "work_order = json_set(work_order, '$.\"Group ID\"', '1227767')")
    with sqlite3.connect(site.directory / "scheduler.sqlite3") as journal:
        journal.execute("UPDATE order_texts SET work_order = json_set(work_order, "
                        "'$.\"Group ID\"', '1227767') WHERE order_key IN "
                        "(SELECT key FROM orders WHERE wotype = 'Observation')")
    site.start("scheduler", "alerts")
    assert "event 1227767 is now named Fermi-1227767 and Swift-1227767" in site.log("alerts")
    swift[PKT_SERNUM] += 1  # the next packet of the Swift trigger: "definitely not a GRB"
    swift[TRIGGER_ID] |= NOT_A_GRB_BIT
    done = finished(site, send(site, base64.b64encode(struct.pack(">40i", *swift)).decode(),
                               "gcn_socket", order_id="swift-retraction")["ID"])
    assert "1 order(s) of the event cancelled at the scheduler" in done["Message"], \
        done["Message"]
    scheduler = site.proxy("scheduler")
    assert scheduler.front_desk({"WOType": "Status", "ID": swift_order})["Status"] == "cancelled"
    assert all(scheduler.front_desk({"WOType": "Status", "ID": order_id})["Status"]
               != "cancelled" for order_id in fermi_orders)
    events = site.proxy("alerts").front_desk({"WOType": "Events"})["Events"]
    assert sorted(event["ID"] for event in events) == ["Fermi-1227767", "Swift-1227767"]


def test_an_alert_interrupts_the_night_and_its_target_is_observed(make_site):
    """Alert to photons: an Einstein Probe alert, its position moved high in the sky of the
    simulated evening, interrupts a long exposure and ends in FITS frames of its own."""
    site = make_site(observatory_settings(Alerts={"Accept Test Alerts": True}))
    site.start("preprocessor", "dome", "telescope", "scheduler", "alerts")
    scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
    scheduler.front_desk({"ID": "long", "WOType": "Observation", "RA": 330.0, "Dec": 35.0,
                          "Filter": "V", "Exposure Time": 300.0, "Number of Exposures": 6,
                          "Type of job": "Research", "User": "test"})
    wait_until(lambda: step(telescope, "long").startswith("exposing"), "the long exposure")
    alert = json.loads(alert_file("kafka_alert_einteinprobe.json").read_text())
    alert.update(ra=20.0, dec=60.0)  # high in the sky of the simulated evening
    done = finished(site, send(site, json.dumps(alert), "gcn_json")["ID"])
    assert done["Status"] == "done", done["Message"]
    (order_id,) = event_orders(site, "EP-01709015181")
    result = ended(scheduler, order_id, "done")
    assert len(result["Progress"]["Files"]) == 3  # X-Rays → Number of Exposures
    with fits.open(result["Progress"]["Files"][0]) as frames:
        header = frames[0].header
    # The frames name the event they were taken for, and the kind of work.
    assert (header["OBJECT"], header["GROUPID"], header["JOBTYPE"]) == (
        "EP-01709015181", "EP-01709015181", "ToO")
    history = [entry["Reason"] for entry in status(scheduler, "long")["History"]]
    assert any(f"interrupted by target of opportunity {order_id}" in reason
               for reason in history)


def test_an_event_followed_two_nights_is_observed_tonight_and_waits_for_the_next(make_site):
    """Alerts → Nights: 2. Tonight's order is observed; the next night's, the same target,
    stays queued at the scheduler, saying when its window opens, and never reaches the
    telescope tonight, though a target of opportunity observable now."""
    site = make_site(observatory_settings(Alerts={"Accept Test Alerts": True, "Nights": 2}))
    site.start("preprocessor", "dome", "telescope", "scheduler", "alerts")
    scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
    alert = json.loads(alert_file("kafka_alert_einteinprobe.json").read_text())
    alert.update(ra=20.0, dec=60.0)  # high in the sky of the simulated evening
    done = finished(site, send(site, json.dumps(alert), "gcn_json")["ID"])
    assert done["Status"] == "done", done["Message"]
    assert "the night from " in done["Message"]
    tonight, tomorrow = sorted(event_orders(site, "EP-01709015181"))
    ended(scheduler, tonight, "done")
    waiting = status(scheduler, tomorrow)
    opens = waiting["Work Order"]["Not Before"]
    assert waiting["Status"] == "queued"
    assert f"its window opens at {opens[:10]} {opens[11:16]} UTC, after tonight" in \
        waiting["Message"]
    assert opens > status(scheduler, tonight)["Work Order"]["Not After"]
    never_sent = refusal(telescope.front_desk, {"WOType": "Status", "ID": tomorrow})
    assert never_sent.faultCode == FaultCode.NOT_FOUND
    report = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "EP-01709015181"})
    assert [order["Not Before"] for order in report["Orders"]] == [None, opens]
    html = urllib.request.urlopen(site.url("alerts") + "events/EP-01709015181.html",
                                  timeout=30).read().decode()
    assert f"the night from {opens[:10]} {opens[11:16]} UTC: planned 90.0%" in html
    assert f"<td>{opens[:10]} {opens[11:16]} – " in html  # the order's window
    shown = subprocess.run([TOROS, "--config", site.config_path, "alerts", "EP-01709015181"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert f"the night from {opens[:10]} {opens[11:16]} UTC: planned 90.0%" in shown.stdout
    assert "Not Before" in shown.stdout and opens in shown.stdout


def observed_at_the_scheduler(site, orders):
    """Journal *orders* (rows of an event's report) done at the scheduler, as after their
    night: the scheduler is stopped, its journal written, and the scheduler started again."""
    site.daemons.pop("scheduler").stop()
    journal = Journal(str(site.directory / "scheduler.sqlite3"))
    for order in orders:
        journal.transition(order["ID"], DONE, "observed", TIME)
    journal.close()
    site.start("scheduler")


def test_what_an_event_has_observed_counts_each_field_and_its_pointing_once(make_site):
    """A field taken again on the next night, or an afterglow's pointing taken again, covers no
    more of its localisation: the report's Observed counts each once. (The scheduler is
    stopped, and its journal says which orders are done, as after the two nights.)"""
    site = make_site(settings(Nights=2)).start("scheduler", "alerts")
    pointing = alert_file("kafka_alert_einteinprobe.json").read_text()
    for payload, format_name in ((lvk(), "lvk_json"), (pointing, "gcn_json")):
        done = finished(site, send(site, payload, format_name)["ID"])
        assert done["Status"] == "done", done["Message"]
    fields = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
    places = {}
    for order in fields["Orders"]:  # in the order planned: tonight's, then the next night's
        places.setdefault((order["RA"], order["Dec"]), []).append(order)
    first, second = [orders for orders in places.values() if len(orders) == 2][:2]
    taken = first + second[:1]  # the first field on both nights, the second tonight
    afterglow = site.proxy("alerts").front_desk({"WOType": "Events",
                                                 "Event ID": "EP-01709015181"})["Orders"]
    assert len(afterglow) == 2 and afterglow[0]["Probability"] == 0.9
    observed_at_the_scheduler(site, taken + afterglow)
    report = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
    assert {order["ID"] for order in report["Orders"] if order["Scheduler"] == "done"} == {
        order["ID"] for order in taken}
    # The field taken twice, at the probability the later night's pick gave it.
    assert report["Coverage"]["Observed"] == pytest.approx(
        first[1]["Probability"] + second[0]["Probability"], abs=1e-6)
    report = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "EP-01709015181"})
    assert report["Coverage"]["Observed"] == 0.9


def southward(skymap, north_of=32.0, kept=0.2):
    """A multi-order skymap (base64, as an LVK alert carries it) with the probability north
    of Dec *north_of* cut to *kept* of what it was, the map normalised again: an update that
    moves the localisation."""
    table = fits.open(io.BytesIO(base64.b64decode(skymap)))[1].data
    level, ipix = uniq_to_level_ipix(table["UNIQ"].astype(np.int64))
    dec = np.array([healpix_to_lonlat(pixel, 2 ** int(order), order="nested")[1].deg
                    for order, pixel in zip(level, ipix)])
    density = np.where(dec > north_of, kept, 1.0) * table["PROBDENSITY"]
    area = np.array([nside_to_pixel_area(2 ** int(order)).value for order in level])
    moved = fits.BinTableHDU.from_columns([
        fits.Column("UNIQ", "K", array=table["UNIQ"]),
        fits.Column("PROBDENSITY", "D", array=density / np.sum(density * area))])
    moved.header.update(PIXTYPE="HEALPIX", ORDERING="NUNIQ", INDXSCHM="EXPLICIT", MOC=True)
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), moved]).writeto(buffer)
    return base64.b64encode(buffer.getvalue()).decode()


def test_what_an_event_has_observed_is_measured_on_its_latest_map(make_site):
    """An update moves the localisation: the fields observed for the earlier alert count at
    what they cover of the update's map (as the update's pick counted them: its Observed
    Tonight), not at the probability the earlier map gave them."""
    site = make_site(settings()).start("scheduler", "alerts")
    first = finished(site, send(site, lvk())["ID"])
    assert first["Status"] == "done", first["Message"]
    planned = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
    taken = planned["Orders"][:2]
    observed_at_the_scheduler(site, taken)
    event = json.loads(lvk())["event"]
    update = finished(site, send(site, lvk(
        alert_type="UPDATE", time_created=later(10),
        event=dict(event, skymap=southward(event["skymap"]))))["ID"])
    assert update["Status"] == "done", update["Message"]
    report = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
    coverage = report["Coverage"]
    assert coverage["Observed"] == pytest.approx(coverage["Observed Tonight"], abs=1e-6)
    under_the_first_map = sum(order["Probability"] for order in taken)
    assert coverage["Observed"] < under_the_first_map / 2, (coverage, under_the_first_map)


def test_what_an_event_planned_from_a_linked_map_has_observed_needs_the_map_once(make_site):
    """A VOEvent links its map. A report measures what was observed on the map its planning
    fetched; after a restart it fetches the map once, for the report and its picture; with
    GraceDB out of reach, the report still answers, each field counted at the probability it
    was planned with."""
    map_bytes = base64.b64decode(json.loads(lvk())["event"]["skymap"])
    with gracedb(map_bytes) as server:
        site = make_site(settings()).start("scheduler", "alerts")
        voevent = lvk_voevent(lvk(), 1, server.url("cwb.multiorder"), 0)
        done = finished(site, send(site, voevent, "voevent")["ID"])
        assert done["Status"] == "done", done["Message"]
        planned = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S2498"})
        taken = planned["Orders"][:2]
        observed_at_the_scheduler(site, taken)
        # The same map: the fields' union holds what each was planned with.
        planned_with = sum(order["Probability"] for order in taken)

        def observed():
            return site.proxy("alerts").front_desk(
                {"WOType": "Events", "Event ID": "S2498"})["Coverage"]["Observed"]

        assert observed() == pytest.approx(planned_with, abs=1e-6)
        assert server.asked == ["/cwb.multiorder.fits"]
        site.daemons.pop("alerts").stop()
        site.start("alerts")
        assert observed() == pytest.approx(planned_with, abs=1e-6)
        picture = urllib.request.urlopen(site.url("alerts") + "events/S2498.png",
                                         timeout=PATIENCE).read()
        assert picture.startswith(b"\x89PNG\r\n\x1a\n")
        assert server.asked == ["/cwb.multiorder.fits"] * 2
        site.daemons.pop("alerts").stop()
    site.start("alerts")
    assert observed() == pytest.approx(planned_with, abs=1e-6)
    assert "S2498: no map for the report: " in site.log("alerts")


def test_the_status_of_an_alert_order_does_not_repeat_its_payload(observatory):
    payload = lvk()
    done = finished(observatory, send(observatory, payload, order_id="big")["ID"])
    shown = done["Work Order"]["Payload"]
    assert shown == f"({len(payload):,} characters: the alert as received, kept in the journal)"


def test_a_retraction_counts_the_orders_its_cancel_before_a_restart_cancelled(observatory):
    """The alerts daemon stopped after the scheduler cancelled the event's orders but before
    its answer came back: sent again, the Cancel finds nothing left to cancel, and the
    retraction said 0 orders cancelled and left them submitted in its book."""
    finished(observatory, send(observatory, lvk(superevent_id="S8181"))["ID"])
    orders = event_orders(observatory, "S8181")
    assert orders
    observatory.proxy("scheduler").front_desk({"WOType": "Cancel", "Group ID": "S8181",
                                               "User": "alerts"})  # the answer it did not get
    retraction = json.dumps({"superevent_id": "S8181", "alert_type": "RETRACTION",
                             "time_created": later(30), "event": None, "urls": {}})
    withdrawn = finished(observatory, send(observatory, retraction)["ID"])
    assert f"{len(orders)} order(s) of the event cancelled" in withdrawn["Message"]
    report = observatory.proxy("alerts").front_desk({"WOType": "Events", "Event ID": "S8181"})
    assert {order["Here"] for order in report["Orders"]} == {"cancelled"}


def test_a_kind_whose_filter_the_telescope_lacks_is_warned_of_before_any_alert(make_site):
    """Gravitational waves observed in "Luminance", a filter the telescope's wheel lacks: the
    daemon says so in its log and its health Status as soon as the scheduler has heard the
    telescope's filters, not at the first alert, whose every order would be refused; put
    right (the configuration changed, the daemon restarted), it says the telescope takes
    every kind's orders."""
    alerts = {"Telescope Check Interval": 0.2,
              "Gravitational Waves": {"Filter": "Luminance"}}
    site = make_site(settings(**alerts)).start("scheduler", "telescope", "alerts")

    def check():
        found = site.proxy("alerts").front_desk({"WOType": "Status"})["Telescope Check"]
        return found if "Refused" in found else None
    found = wait_until(check, "the telescope check to find the filter missing")
    assert found["Result"] == "the telescope would refuse some kinds' orders"
    assert found["Refused"] == [
        "Alerts → Gravitational Waves → 'Filter': received 'Luminance'; allowed: one of 'U', "
        "'B', 'V', 'R', 'I', 'Clear' (the filter wheel's filters): the telescope would refuse "
        "the orders of every such alert"]
    assert re.search(r"WARNING .*Alerts → Gravitational Waves → 'Filter': received "
                     r"'Luminance'", site.log("alerts"))
    assert site.log("alerts").count("received 'Luminance'") == 1  # said once, not every look
    assert site.daemons["alerts"].stop() == 0
    with open(site.config_path, encoding="utf-8") as stream:
        written = stream.read()
    with open(site.config_path, "w", encoding="utf-8") as stream:
        stream.write(written.replace("Luminance", "Clear"))
    site.start("alerts")
    wait_until(lambda: site.proxy("alerts").front_desk({"WOType": "Status"})[
        "Telescope Check"]["Result"] == "the telescope takes every kind's orders",
        "the telescope check to find every kind's orders taken")
