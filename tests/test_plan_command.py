"""`toros plan`: the plan as a table, and its altitude chart, from a real planner's plan.

The scheduler here is a small stand-in XML-RPC server answering the health query with the
``Plan`` contract; the real daemon is tested against the same contract elsewhere.
"""

import argparse
import copy
import struct
import threading
import xmlrpc.client
from datetime import datetime, timezone
from xmlrpc.server import SimpleXMLRPCServer

import pytest

from torosmanager.commands import plan as toros_plan
from torosmanager.config import default_config
from torosmanager.launcher import free_port
from torosmanager.scheduler import chart, plan_command
from torosmanager.scheduler.planner import Constraints, Planner, Target

CONFIG = default_config()
SITE = CONFIG["Site"]  # CTMO
AFTERNOON = datetime(2026, 11, 21, 20, 0, tzinfo=timezone.utc)  # before that night's dusk
#: Targets up at CTMO on that night: (ID, RA, Dec, priority, seconds).
TARGETS = [("ngc-253", 11.888, -25.288, 7.0, 600.0), ("m31", 10.685, 41.269, 5.0, 300.0),
           ("m33", 23.462, 30.660, 6.0, 420.0), ("m42", 83.822, -5.391, 9.0, 120.0),
           ("m1", 83.633, 22.015, 4.0, 900.0), ("m44", 130.100, 19.667, 3.0, 240.0),
           ("m81", 148.888, 69.065, 8.0, 600.0), ("m51", 202.470, 47.195, 2.0, 300.0),
           ("m15", 322.493, 12.167, 6.5, 180.0), ("never-up", 10.0, -80.0, 9.5, 60.0)]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: A chart smaller than this cannot hold the curves, shading and legend.
MIN_PNG_BYTES = 20_000
MIN_WIDTH, MIN_HEIGHT = 800, 400


@pytest.fixture(scope="module")
def plan():
    """The Plan dict of a real plan of :data:`TARGETS`, made in the afternoon."""
    settings = CONFIG["Observing"]
    made = Planner(SITE, Constraints.from_settings(settings)).plan(
        [Target(*target) for target in TARGETS], AFTERNOON)
    assert len(made.entries) >= 5 and "never-up" in made.unscheduled
    names = {"m15": "Pegasus globular", "m42": "Orion Nebula"}
    return plan_command.as_dict(made, names, AFTERNOON, settings["Sun Altitude"])


def png_size(path):
    """(width, height) from a PNG's header, after checking its signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_chart_is_a_png_of_a_reasonable_size(plan, tmp_path):
    path = tmp_path / "night.png"
    chart.draw(plan, SITE, str(path))
    width, height = png_size(path)
    assert width >= MIN_WIDTH and height >= MIN_HEIGHT
    assert path.stat().st_size > MIN_PNG_BYTES


def test_a_plan_without_a_night_cannot_be_drawn(tmp_path):
    empty = plan_command.as_dict(None, {}, None, -18.0)
    with pytest.raises(ValueError, match="no night"):
        chart.draw(empty, SITE, str(tmp_path / "none.png"))


def test_curves_are_the_targets_altitudes(plan):
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    start = chart.parse_utc(plan["Entries"][0]["Start"])
    sun, altitudes = chart.curves(plan, SITE, [start])
    assert sun[0] < plan["Sun Altitude"]
    location = EarthLocation(lat=SITE["Latitude"] * u.deg, lon=SITE["Longitude"] * u.deg,
                             height=SITE["Elevation"] * u.m)
    for entry, curve in zip(plan["Entries"], altitudes):
        truth = SkyCoord(entry["RA"] * u.deg, entry["Dec"] * u.deg).transform_to(
            AltAz(obstime=Time(start), location=location)).alt.deg
        assert curve[0] == pytest.approx(truth, abs=0.1)


def test_the_table_lists_the_entries_in_time_order(plan):
    shuffled = dict(plan, Entries=list(reversed(plan["Entries"])))
    text = toros_plan.text(shuffled)
    listed = [line.split()[2] for line in text.splitlines()
              if line[:2].isdigit() and line[2] == ":"]
    by_time = [entry["ID"] for entry in sorted(plan["Entries"], key=lambda e: e["Start"])]
    assert listed == by_time
    assert "Pegasus globular" in text and "Orion Nebula" in text
    assert "Sun below -18°" in text
    unscheduled = text.split("Not planned")[1]
    assert "never-up" in unscheduled and "never below airmass 2" in unscheduled


def test_the_status_pages_section_says_how_much_of_the_plan_it_shows(plan):
    first = plan_command.html(dict(plan, Entries=plan["Entries"][:2],
                                   Unscheduled=plan["Unscheduled"][:1]))
    assert f"Planned: the first 2 of {plan['Planned']} (<code>toros plan</code>" in first
    assert f"Not planned: the first 1 of {plan['Not Planned']} (" in first
    whole = plan_command.html(plan)
    assert f"Planned: {plan['Planned']}.</p>" in whole
    assert f"Not planned: {plan['Not Planned']}.</p>" in whole
    assert whole.count("<tr>") == plan["Planned"] + plan["Not Planned"] + 2  # and headers
    assert "<td>Orion Nebula</td>" in whole and "<td>never-up</td>" in whole


def test_while_nothing_is_sent_the_heading_says_why_in_the_table_and_on_the_page(plan):
    waiting = "the dome is closed and may not open: unsafe since 2026-11-22T01:00:00Z: rain."
    said = plan_command.as_dict(None, {}, None, -18.0, waiting=waiting)
    assert said["Waiting"] == waiting
    expected = ("Nothing is sent to the telescope: the dome is closed and may not open: unsafe "
                "since 2026-11-22T01:00:00Z: rain.")
    assert plan_command.heading(said).endswith("not planned yet. " + expected)
    assert toros_plan.text(dict(plan, Waiting=waiting)).splitlines()[0].endswith(
        "Times are UTC. " + expected)
    assert expected in plan_command.html(dict(plan, Waiting=waiting))
    assert "Nothing is sent" not in plan_command.heading(plan)


def test_before_the_first_plan():
    text = toros_plan.text(plan_command.as_dict(None, {}, None, -18.0))
    assert "not planned yet" in text and "Nothing planned" in text


class StandIn:
    """A scheduler answering Plan queries with pages of *plan* (or, without one, refusing
    them as an older release would), on a free loopback port."""

    def __init__(self, plan):
        self.server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
        self.server.register_function(lambda order: self.page(plan, order), "front_desk")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.queries = []

    def page(self, plan, order):
        self.queries.append(order)
        if plan is None:
            raise xmlrpc.client.Fault(2, "'WOType': received 'Plan'; allowed: one of ...")
        start, end = order["Offset"], order["Offset"] + order["Limit"]
        return dict(plan, Entries=plan["Entries"][start:end],
                    Unscheduled=plan["Unscheduled"][start:end])

    def __enter__(self):
        self.thread.start()
        config = copy.deepcopy(CONFIG)
        config["Scheduler Address"]["HTTP"] = f"http://127.0.0.1:{self.server.server_address[1]}/"
        return config

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def arguments(*argv):
    parser = argparse.ArgumentParser()
    toros_plan.add_arguments(parser)
    return parser.parse_args(argv)


def test_run_prints_the_plan_and_draws_it(plan, tmp_path, capsys):
    path = tmp_path / "plan.png"
    with StandIn(plan) as config:
        status = toros_plan.run(config, arguments("--plot", str(path)))
    out = capsys.readouterr().out
    assert status == 0
    assert all(entry["ID"] in out for entry in plan["Entries"])
    assert str(path) in out
    png_size(path)


def test_the_whole_plan_is_read_page_by_page(plan, monkeypatch):
    monkeypatch.setattr(plan_command, "MAX_PLAN_PAGE", 2)
    stand_in = StandIn(plan)
    with stand_in as config:
        fetched = plan_command.fetch(xmlrpc.client.ServerProxy(
            config["Scheduler Address"]["HTTP"], allow_none=True))
    assert fetched["Entries"] == plan["Entries"] and fetched["Unscheduled"] == plan["Unscheduled"]
    pages = max(len(plan["Entries"]), len(plan["Unscheduled"]))
    assert len(stand_in.queries) == -(-pages // 2)  # ceil: one query per page, no more


def test_a_scheduler_without_a_plan(capsys):
    with StandIn(None) as config:
        assert toros_plan.run(config, arguments()) == 1
    assert "the scheduler daemon refused" in capsys.readouterr().err


def test_an_unreachable_scheduler_is_a_clear_failure(capsys):
    port = free_port()  # nothing listens on it
    config = copy.deepcopy(CONFIG)
    config["Scheduler Address"]["HTTP"] = f"http://127.0.0.1:{port}/"
    assert toros_plan.run(config, arguments()) == 1
    assert "the scheduler daemon does not answer" in capsys.readouterr().err
