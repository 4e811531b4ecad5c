"""``toros alert FILE --dry-run --json``: the contract the issue states, on every real fixture.

One JSON object: ``Event`` (ID, kind, alert type, serial), ``Orders`` (the Observation orders it
would submit, with RA and Dec in decimal degrees, Priority, Group ID, Probability and the
target's name) and ``Coverage`` (Planned, Visible Tonight, Total). Nothing is submitted: no
daemon runs in these tests.
"""

import json
import os
import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
from astropy_healpix import healpix_to_lonlat, level_to_nside

from alert_fixtures import FOLLOWUP_ADVOCATE, alert_file
from torosmanager.alerts.formats import read
from torosmanager.alerts.skymap import Skymap
from torosmanager.workorders import validate

TOROS = os.path.join(os.path.dirname(sys.executable), "toros")
#: Evening of 2026-12-01 at CTMO (dusk at about 01:10 UTC): the night after it is planned.
NIGHT_AFTER = "2026-12-01T20:00:00"

#: Fixture → (file, package, event ID, kind, alert type, targets or None when ignored).
FIXTURES = {
    "lvk 2-D": ("S2469/files/S2469-1-initial.json", FOLLOWUP_ADVOCATE, "S2498", "gw", "INITIAL",
                "fields"),
    "lvk 3-D": ("S3456/files/S3456-1-initial.json", FOLLOWUP_ADVOCATE, "S3456", "gw", "INITIAL",
                "fields"),
    "bare skymap": ("MS220722v_bayestar.multiorder.fits", None, "MS220722v", "gw", "INITIAL",
                    "fields"),
    "einstein probe": ("kafka_alert_einteinprobe.json", None, "EP-01709015181", "x-ray",
                       "INITIAL", "pointing"),
    "icecube": ("kafka_alert_icecube_gold.json", None, "IceCube-230416A", "neutrino",
                "INITIAL", "pointing"),
    "fermi gbm": ("fermi_grb_gcn.xml", None, "Fermi-548848711", "grb", "PRELIMINARY", "fields"),
}


def dry_run(tmp_path, path, *extra, config=None):
    config_file = tmp_path / "toros.conf.yaml"
    config_file.write_text(config or "Alerts:\n  Accept Test Alerts: true\n")
    return subprocess.run([TOROS, "--config", str(config_file), "alert", str(path), "--dry-run",
                           "--json", "--night-after", NIGHT_AFTER, *extra],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", FIXTURES)
def test_the_dry_run_prints_the_event_its_orders_and_their_coverage(tmp_path, name):
    file, package, event_id, kind, alert_type, targets = FIXTURES[name]
    path = alert_file(file, package) if package else alert_file(file)
    extra = ("--event-id", event_id) if file.endswith(".fits") else ()
    result = dry_run(tmp_path, path, *extra)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    event = answer["Event"]
    assert (event["ID"], event["Kind"], event["Alert Type"]) == (event_id, kind, alert_type)
    assert isinstance(event["Serial"], int)
    assert answer["Targets"] == targets
    coverage = answer["Coverage"]
    assert 0 <= coverage["Planned"] <= coverage["Visible Tonight"] <= coverage["Total"] <= 1
    orders = answer["Orders"]
    assert coverage["Planned"] == pytest.approx(sum(order["Probability"] for order in orders),
                                                abs=1e-5)
    for order in orders:
        assert validate(order)["WOType"] == "Observation"  # valid: validate raises otherwise
        assert 0 <= order["RA"] < 360 and -90 <= order["Dec"] <= 90
        assert order["Group ID"] == event_id and order["Object Name"]
        assert order["Type of job"] == "ToO" and 0 <= order["Priority"] <= 10
    assert len({order["ID"] for order in orders}) == len(orders)
    # What of an LVK alert does not fit the LVK's schema is said, once, beside the answer.
    said = [line for line in result.stderr.splitlines() if "does not fit" in line]
    if name.startswith("lvk"):      # their event times have no zone
        [line] = said
        assert line.startswith(f"toros: {path}: LVK alert {event_id} INITIAL does not fit "
                               "igwn-gwalert-schema 1.3.0, read all the same: event.time: ")
    else:
        assert said == []


def test_orders_lie_in_their_localisation(tmp_path):
    """The Einstein Probe's one pointing is its error circle's centre."""
    result = dry_run(tmp_path, alert_file("kafka_alert_einteinprobe.json"))
    data = json.loads(alert_file("kafka_alert_einteinprobe.json").read_text())
    (order,) = json.loads(result.stdout)["Orders"]
    assert (order["RA"], order["Dec"]) == pytest.approx((data["ra"], data["dec"]), abs=1e-5)


def test_a_test_alert_is_ignored_unless_configured(tmp_path):
    result = dry_run(tmp_path, alert_file("S2469/files/S2469-1-initial.json",
                                          FOLLOWUP_ADVOCATE), config="{}\n")
    answer = json.loads(result.stdout)
    assert answer["Orders"] == [] and answer["Coverage"]["Planned"] == 0
    assert answer["Ignored"] == "a test alert (Alerts → Accept Test Alerts is false)"


def test_a_retraction_says_what_it_would_cancel_not_that_it_is_ignored(tmp_path):
    retraction = alert_file("kafka_alert_icecube_retraction.json")
    result = dry_run(tmp_path, retraction)
    answer = json.loads(result.stdout)
    assert answer["Event"]["Alert Type"] == "RETRACTION" and answer["Orders"] == []
    assert "Ignored" not in answer
    assert answer["Summary"] == (
        f"a retraction: the alerts daemon would cancel every order of {answer['Event']['ID']} "
        "not ended yet, and act on none of its later alerts")


def test_policy_thresholds_are_applied(tmp_path):
    s1234 = alert_file("S1234/files/S1234-2-initial.json", FOLLOWUP_ADVOCATE)
    answer = json.loads(dry_run(tmp_path, s1234).stdout)
    assert answer["Ignored"].startswith("its 90% area is 24,219 deg², over Alerts → Max Area")
    strict = "Alerts:\n  Accept Test Alerts: true\n  Min Probability of Neutron Star: 0.5\n"
    s2498 = alert_file("S2469/files/S2469-1-initial.json", FOLLOWUP_ADVOCATE)
    answer = json.loads(dry_run(tmp_path, s2498, config=strict).stdout)
    assert answer["Ignored"] == ("probability of a neutron star 0.00 is under Alerts → Min "
                                 "Probability of Neutron Star (0.5)")


def test_a_bare_skymap_needs_its_event_and_garbage_is_refused(tmp_path):
    skymap = alert_file("MS220722v_bayestar.multiorder.fits")
    result = dry_run(tmp_path, skymap)
    assert result.returncode == 1
    assert "a bare skymap needs its event's ID ('Event ID', or --event-id)" in result.stderr
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("hello")
    result = dry_run(tmp_path, garbage)
    assert result.returncode == 1 and "not a skymap (FITS), VOEvent (XML)" in result.stderr


def test_a_3d_map_and_a_catalogue_give_galaxies_in_the_volume(tmp_path):
    """Galaxies placed on S3456's most probable pixels at their most probable distance are the
    targets; the same directions five standard deviations farther are not."""
    path = alert_file("S3456/files/S3456-1-initial.json", FOLLOWUP_ADVOCATE)
    skymap = Skymap.read(read("lvk_json", path.read_bytes()).skymap)
    mu, sigma, _ = skymap.distance_layers
    usable = np.flatnonzero(np.isfinite(mu) & (sigma > 0))
    best = usable[np.argsort(skymap.probdensity[usable])[::-1][:5]]
    centres = [healpix_to_lonlat(skymap.ipix[pixel], level_to_nside(skymap.level[pixel]),
                                 order="nested") for pixel in best]
    ra = [lon.to_value(u.deg) for lon, _ in centres]
    dec = [lat.to_value(u.deg) for _, lat in centres]
    rows = ["Galaxy,RAJ2000,DEJ2000,dL"]
    rows += [f"near{i},{ra[i]},{dec[i]},{mu[best][i]}" for i in range(5)]
    rows += [f"far{i},{ra[i]},{dec[i]},{mu[best][i] + 5 * sigma[best][i]}" for i in range(5)]
    catalogue = tmp_path / "galaxies.csv"
    catalogue.write_text("\n".join(rows) + "\n")
    config = ("Alerts:\n  Accept Test Alerts: true\n  Budget Hours: 24\n"
              "  Galaxy Catalog:\n    File: " + str(catalogue) + "\n    Columns: {Name: Galaxy, "
              "RA: RAJ2000, Dec: DEJ2000, Distance: dL}\n"
              "Observing:\n  Max Airmass: 10\n  Moon Separation: 0\n  Sun Altitude: -0.5\n"
              "  Sun Altitude Limit: 0\n")
    answer = json.loads(dry_run(tmp_path, path, config=config).stdout)
    assert answer["Targets"] == "galaxies"
    names = {order["Object Name"] for order in answer["Orders"]}
    assert names and names <= {f"near{i}" for i in range(5)}


def followed(nights, **alerts):
    """A configuration following each event for *nights* nights."""
    extra = "".join(f"  {key.replace('_', ' ')}: {value}\n" for key, value in alerts.items())
    return f"Alerts:\n  Accept Test Alerts: true\n  Nights: {nights}\n{extra}"


def test_an_event_followed_for_nights_gets_a_pick_a_night_each_waiting_for_its_dusk(tmp_path):
    """Alerts → Nights: 3 plans tonight and the two nights after it. A later night's orders
    may not start before its dusk (else the scheduler would observe them tonight) and expire
    at its dawn; their IDs go on from tonight's; each night's coverage is its orders'."""
    path = alert_file("S3456/files/S3456-1-initial.json", FOLLOWUP_ADVOCATE)
    tonight_only = json.loads(dry_run(tmp_path, path, config=followed(1)).stdout)
    answer = json.loads(dry_run(tmp_path, path, config=followed(3)).stdout)
    orders = answer["Orders"]
    assert [order["ID"] for order in orders] == [f"dry-run-{n:02d}"
                                                  for n in range(1, len(orders) + 1)]
    tonight = [order for order in orders if "Not Before" not in order]
    assert tonight == tonight_only["Orders"] and tonight  # the default is tonight alone
    later = answer["Coverage"]["Later Nights"]
    assert len(later) == 2
    dawn = tonight[0]["Not After"]
    for night in later:
        theirs = [order for order in orders if order.get("Not Before") == night["Night"]]
        assert theirs, night
        assert night["Night"] > dawn  # after the night before has ended
        assert {order["Not After"] for order in theirs} == {theirs[0]["Not After"]}
        assert night["Planned"] == pytest.approx(sum(order["Probability"] for order in theirs),
                                                 abs=1e-5)
        for order in theirs:
            assert validate(order)["Not Before"] < order["Not After"]
        dawn = theirs[0]["Not After"]
    assert len(tonight) + sum(len([o for o in orders if o.get("Not Before") == night["Night"]])
                              for night in later) == len(orders)
    assert "the night from 2026-12-03 " in answer["Summary"]


def test_an_alert_after_its_target_has_set_is_observed_the_next_night(tmp_path):
    """The Einstein Probe's source (RA 345°, Dec +33°) has set at CTMO by 07:00 UTC: tonight
    plans nothing, and with Nights: 2 the next night observes it."""
    path = alert_file("kafka_alert_einteinprobe.json")
    late = ("--night-after", "2026-12-02T07:00:00")
    answer = json.loads(dry_run(tmp_path, path, *late, config=followed(1)).stdout)
    assert answer["Orders"] == [] and answer["Coverage"]["Planned"] == 0
    answer = json.loads(dry_run(tmp_path, path, *late, config=followed(2)).stdout)
    (order,) = answer["Orders"]
    assert order["Not Before"] == answer["Coverage"]["Later Nights"][0]["Night"]
    assert "2026-12-03T00:00" < order["Not Before"] < order["Not After"] < "2026-12-03T12:00"
    assert answer["Coverage"]["Planned"] == 0
    assert answer["Coverage"]["Later Nights"][0]["Planned"] == pytest.approx(0.9)


def test_a_voevent_in_latin_1_or_a_json_alert_after_a_byte_order_mark_is_read(tmp_path):
    # Valid XML in the encoding its declaration names, and JSON as some editors save it.
    xml = alert_file("swift_grb_gcn.xml").read_bytes().decode("utf-8")
    declared = xml.replace("encoding = 'UTF-8'", "encoding = 'ISO-8859-1'", 1)
    assert "ISO-8859-1" in declared
    latin = tmp_path / "swift_latin1.xml"
    latin.write_bytes(declared.replace("</Description>", " Étoile</Description>", 1)
                      .encode("latin-1"))
    with_bom = tmp_path / "icecube_bom.json"
    with_bom.write_bytes(b"\xef\xbb\xbf" + alert_file("kafka_alert_icecube_gold.json")
                         .read_bytes())
    for path, event_id in ((latin, "Swift-1123129"), (with_bom, "IceCube-230416A")):
        result = dry_run(tmp_path, path)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["Event"]["ID"] == event_id


def test_an_alert_issued_after_the_night_asked_for_is_not_acted_on(tmp_path):
    data = json.loads(alert_file(*FIXTURES["lvk 2-D"][:2]).read_text())
    data["time_created"] = "2030-01-01T00:00:00Z"
    path = tmp_path / "ahead.json"
    path.write_text(json.dumps(data))
    result = dry_run(tmp_path, path)
    assert result.returncode == 1 and result.stdout == ""
    assert "more than Alerts → Max Issued Ahead (3600 s)" in result.stderr


def test_an_empty_event_id_is_said_to_be_empty(tmp_path):
    result = dry_run(tmp_path, alert_file("MS220722v_bayestar.multiorder.fits"), "--event-id", "")
    assert result.returncode == 1
    assert "a bare skymap needs its event's ID ('Event ID', or --event-id); received ''" in \
        result.stderr
