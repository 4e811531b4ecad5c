"""Alerts in three formats read into one Alert: real alerts from LVK, Fermi, Swift, IceCube and
Einstein Probe, and broken ones refused with a message that says what is wrong."""

import base64
import json
import math
import struct
from datetime import datetime, timezone

import pytest
from alert_fixtures import FOLLOWUP_ADVOCATE, alert_file

from torosmanager.alerts.event import Alert
from test_alert_gcn_socket import SWIFT_BAT_1227767
from torosmanager.alerts.formats import AlertFormatError, read
from torosmanager.alerts.intake import alert_of, alert_text


def utc(*parts):
    return datetime(*parts, tzinfo=timezone.utc)


def fixture(name, package=None):
    return alert_file(name, *(package,) if package else ()).read_bytes()


# --- VOEvent 2.0 ---------------------------------------------------------------------------------

def test_the_gw170817_initial_voevent_names_its_superevent_and_points_to_its_skymap():
    alert = read("voevent", fixture("G298048-1-Initial.xml"))
    assert (alert.event_id, alert.kind, alert.alert_type, alert.serial) == (
        "G298048", "gw", "INITIAL", 1)
    assert alert.issued == utc(2017, 8, 17, 13, 8, 15)
    assert alert.properties["event_time"] == utc(2017, 8, 17, 12, 41, 4, 445710)
    assert (alert.source, alert.test) == ("gstlal", False)     # role="observation"
    # Not fetched: only the URL (the basic-auth one of the O2 VOEvent's three).
    assert alert.skymap_url == ("https://gracedb.ligo.org/apibasic/events/G298048/files/"
                                "bayestar.fits.gz")
    assert alert.skymap is None and alert.ra is None and alert.has_location
    assert alert.properties["far"] == pytest.approx(3.47773444765e-12)
    assert (alert.properties["HasNS"], alert.properties["HasRemnant"]) == (1.0, 1.0)
    assert alert.properties["instruments"] == ["H1"]
    assert alert.properties["ivorn"] == "ivo://gwnet/gcn_sender#G298048-1-Initial"
    assert alert.properties["params"]["Packet_Type"] == "151"


def test_the_fermi_gbm_position_of_grb_170817a_is_a_circle_and_an_update():
    alert = read("voevent", fixture("externaltrigger_original_data.xml"))
    assert (alert.event_id, alert.kind, alert.serial) == ("Fermi-524666471", "grb", 1)
    # A ground position (Packet_Type 112): its 17.45° is statistical, GBM's 3.7° systematic is
    # added as for the same notice from GCN's socket.
    assert (alert.ra, alert.dec) == (186.62, -48.84)
    assert alert.properties["statistical_error"] == 17.45
    assert alert.error_radius == pytest.approx(math.hypot(17.45, 3.7))
    assert alert.alert_type == "UPDATE"        # it cites the GBM_Alert as its "followup"
    assert alert.issued == utc(2017, 8, 17, 12, 41, 43)
    assert alert.properties["event_time"] == utc(2017, 8, 17, 12, 41, 6, 470000)
    assert alert.source == "Fermi Satellite, GBM Instrument"
    assert alert.skymap_url is None and not alert.test


def test_a_swift_bat_grb_position():
    alert = read("voevent", fixture("swift_grb_gcn.xml"))
    # Packet_Type 61, read as GCN's socket notice of that type is.
    assert (alert.event_id, alert.kind, alert.alert_type, alert.serial) == (
        "Swift-1123129", "grb", "PRELIMINARY", 1)
    assert (alert.ra, alert.dec, alert.error_radius) == (268.87, -20.3153, 0.05)
    assert alert.issued == utc(2022, 9, 7, 14, 5, 40)
    assert alert.properties["event_time"] == utc(2022, 9, 7, 14, 5, 25, 760000)
    assert alert.source == "Swift Satellite, BAT Instrument"
    assert alert.properties["Packet_Type"] == 61 and not alert.test


def test_a_fermi_gbm_flight_position():
    alert = read("voevent", fixture("fermi_grb_gcn.xml"))
    assert (alert.event_id, alert.kind, alert.alert_type, alert.serial) == (
        "Fermi-548848711", "grb", "PRELIMINARY", 15)    # Packet_Type 111, as from the socket
    assert (alert.ra, alert.dec, alert.error_radius) == (140.05, -39.0499, 5.6)
    assert alert.issued == utc(2018, 5, 24, 18, 35, 45)
    assert alert.properties["params"]["Most_Likely_Prob"] == "98"


def test_a_voevent_with_role_test_is_a_test_alert_and_str_payloads_are_read_too():
    xml = fixture("swift_grb_gcn.xml").decode().replace('role="observation"', 'role="test"')
    assert read("voevent", xml).test


def test_a_voevent_in_the_default_namespace_reads_the_same():
    xml = fixture("fermi_grb_gcn.xml").decode()
    plain = xml.replace("voe:VOEvent", "VOEvent").replace("xmlns:voe=", "xmlns=")
    assert "<VOEvent" in plain and read("voevent", plain) == read("voevent", xml)


def test_an_lvk_retraction_voevent_needs_no_position():
    xml = (fixture("G298048-1-Initial.xml").decode()
           .replace('name="Retraction" dataType="string" value="false"',
                    'name="Retraction" dataType="string" value="true"'))
    assert read("voevent", xml).alert_type == "RETRACTION"


# --- GCN JSON notices ----------------------------------------------------------------------------

def test_an_icecube_gold_track_is_a_neutrino_with_a_90_percent_circle_and_a_map_url():
    alert = read("gcn_json", fixture("kafka_alert_icecube_gold.json"))
    assert (alert.event_id, alert.kind, alert.alert_type, alert.serial) == (
        "IceCube-230416A", "neutrino", "INITIAL", 0)
    assert (alert.ra, alert.dec, alert.error_radius) == (345.82, 9.01, 0.5)
    assert alert.properties["containment_probability"] == 0.9
    assert alert.issued == utc(2023, 4, 16, 5, 42)
    assert alert.properties["event_time"] == utc(2023, 4, 16, 5, 22, 26, 150574)
    assert alert.source == "IceCube IC86"
    assert alert.skymap_url.endswith("skymap_nside_1024_probability.fits.gz")
    assert alert.properties["far"] == 8.029e-8 and alert.properties["p_astro"] == 0.94064
    assert alert.properties["pipeline"] == "Gold Track Alert" and not alert.test


def test_an_icecube_retraction_retracts_the_same_event():
    gold = read("gcn_json", fixture("kafka_alert_icecube_gold.json"))
    alert = read("gcn_json", fixture("kafka_alert_icecube_retraction.json"))
    assert (alert.event_id, alert.alert_type, alert.serial) == (gold.event_id, "RETRACTION", 1)
    assert alert.is_retraction and not alert.has_location


def test_an_einstein_probe_wxt_alert_is_an_x_ray_position_issued_at_its_trigger():
    alert = read("gcn_json", fixture("kafka_alert_einteinprobe.json"))
    assert (alert.event_id, alert.kind, alert.alert_type, alert.serial) == (
        "EP-01709015181", "x-ray", "INITIAL", 0)
    assert (alert.ra, alert.dec) == pytest.approx((345.134, 32.608))
    assert alert.error_radius == pytest.approx(0.05071889)
    assert alert.issued == alert.properties["event_time"] == utc(2024, 8, 1, 9, 7, 13, 799000)
    assert alert.source == "Einstein Probe WXT"     # the mission from $schema


def test_a_swift_guano_style_notice_with_a_test_alert_type_and_a_dict_payload():
    notice = {"$schema": "https://gcn.nasa.gov/schema/v4.0.0/gcn/notices/swift/bat/"
                         "guano.schema.json", "mission": "Swift", "instrument": "BAT",
              "id": [1234567], "alert_type": "test", "alert_datetime": "2024-01-02T03:04:05Z",
              "trigger_time": "2024-01-02T03:00:00.5+00:00", "ra": 10.5, "dec": -20.25,
              "ra_dec_error": 0.1, "containment_probability": 0.68}
    alert = read("gcn_json", notice)
    assert (alert.event_id, alert.kind, alert.test) == ("Swift-1234567", "grb", True)
    assert alert.properties["containment_probability"] == 0.68
    assert alert.properties["event_time"] == utc(2024, 1, 2, 3, 0, 0, 500000)


# --- LVK JSON ------------------------------------------------------------------------------------

def test_an_lvk_early_warning_carries_its_skymap_bytes_and_classification():
    alert = read("lvk_json", fixture("S1234/files/S1234-1-earlywarning.json", FOLLOWUP_ADVOCATE))
    assert (alert.event_id, alert.kind, alert.alert_type, alert.serial) == (
        "S1234", "gw", "EARLYWARNING", 0)
    assert alert.issued == utc(2018, 6, 28, 3, 7, 2)
    assert alert.properties["event_time"] == utc(2018, 6, 28, 3, 8, 4, 911085)
    assert alert.skymap.startswith(b"SIMPLE  =") and len(alert.skymap) == 777600    # FITS
    assert alert.properties["classification"] == {"BNS": 0.95, "NSBH": 0.01, "BBH": 0.0,
                                                  "Terrestrial": 0.04}
    assert (alert.properties["HasNS"], alert.properties["HasRemnant"],
            alert.properties["HasMassGap"]) == (1.0, 1.0, 0.2)
    assert alert.properties["far"] == 9.11069936486e-14
    assert alert.properties["instruments"] == ["H1", "L1"] and alert.source == "SGNL"
    assert alert.test          # search "MDC": a mock data challenge event


def test_an_lvk_initial_alert_keeps_its_external_coincidence():
    alert = read("lvk_json", fixture("S1234/files/S1234-2-initial.json", FOLLOWUP_ADVOCATE))
    assert (alert.event_id, alert.alert_type) == ("S1234", "INITIAL")
    assert alert.issued == utc(2018, 6, 28, 3, 20, 2)
    assert alert.properties["external_coinc"]["observatory"] == "Swift"
    assert alert.skymap.startswith(b"SIMPLE")


def lvk_alert(event_changes=(), **changes):
    """A minimal real-event LVK alert, as in the igwn-gwalert schema, with *changes* and
    *event_changes* (to its ``event``)."""
    alert = {"superevent_id": "S230518h", "time_created": "2023-05-18T12:59:08Z",
             "alert_type": "PRELIMINARY", "urls": {"gracedb": "https://example.org/S230518h"},
             "event": {"time": "2023-05-18T12:59:08.167Z", "far": 1.1e-10,
                       "significant": True, "instruments": ["H1", "L1"], "group": "CBC",
                       "pipeline": "gstlal", "search": "AllSky",
                       "skymap": base64.b64encode(b"SIMPLE  =  T").decode()},
             "external_coinc": None}
    alert["event"].update(dict(event_changes))
    alert.update(changes)
    return json.dumps(alert)


def test_an_lvk_retraction_has_a_null_event():
    alert = read("lvk_json", lvk_alert(alert_type="RETRACTION", event=None))
    assert (alert.event_id, alert.alert_type, alert.kind) == ("S230518h", "RETRACTION", "gw")
    assert alert.is_retraction and not alert.has_location and alert.source == "LVK"
    assert alert.issued == utc(2023, 5, 18, 12, 59, 8) and not alert.test


def test_an_lvk_alert_without_optional_fields_is_read():
    alert = read("lvk_json", lvk_alert())     # no classification, properties, skymap URL
    assert alert.skymap == b"SIMPLE  =  T" and alert.properties["far"] == 1.1e-10
    assert "classification" not in alert.properties and alert.skymap_url is None
    assert not alert.test


@pytest.mark.parametrize("superevent", ["MS230518h", "TS230518h"])
def test_mock_and_test_superevents_are_test_alerts(superevent):
    assert read("lvk_json", lvk_alert(superevent_id=superevent)).test


# --- broken inputs -------------------------------------------------------------------------------

def refusal(format_name, payload):
    with pytest.raises(AlertFormatError) as caught:
        read(format_name, payload)
    message = str(caught.value)
    assert message.startswith(f"{format_name}: ") and len(caught.value.received) <= 80
    return message


def test_invalid_json_is_refused_with_the_value_shortened():
    message = refusal("lvk_json", b'{"superevent_id": "S1", ' + b"x" * 500)
    assert "not valid JSON" in message and "received '{\"superevent_id\"" in message


def test_a_missing_superevent_id_is_named():
    payload = json.loads(lvk_alert())
    del payload["superevent_id"]
    message = refusal("lvk_json", json.dumps(payload))
    assert "missing 'superevent_id'" in message
    assert "['alert_type', 'event', 'external_coinc'," in message      # the keys received


def test_a_voevent_without_a_position_or_skymap_is_refused():
    xml = fixture("swift_grb_gcn.xml").decode()
    start, end = xml.index("<Position2D"), xml.index("</Position2D>") + len("</Position2D>")
    message = refusal("voevent", xml[:start] + xml[end:])
    assert "no position" in message and "BAT_GRB_Pos_1123129" in message


@pytest.mark.parametrize("format_name, payload, problem", [
    ("voevent", b"<VOEvent ivorn='x'", "not well-formed XML"),
    ("voevent", b"<html/>", "not <VOEvent>"),
    ("voevent", b'<!DOCTYPE v [<!ENTITY a "b">]><VOEvent/>', "DOCTYPE"),
    ("gcn_json", b"[1, 2]", "JSON must be an object"),
    ("gcn_json", json.dumps({"trigger_time": "2024-01-01T00:00:00Z", "ra": 400, "dec": 0,
                             "id": ["1"]}), "ra must be within"),
    ("gcn_json", json.dumps({"trigger_time": "yesterday", "id": ["1"]}), "not an ISO 8601"),
    ("gcn_json", json.dumps({"trigger_time": "2024-01-01T00:00:00Z", "id": ["1"]}),
     "without ra/dec"),
    ("lvk_json", lvk_alert(alert_type="MAYBE"), "alert_type must be one of"),
    ("lvk_json", lvk_alert(event={"skymap": "not base64!"}), "event.skymap is not base64"),
    ("lvk_json", lvk_alert(event=None), "PRELIMINARY alert without 'event'"),
    ("lvk_json", 42, "payload must be bytes or str"),
])
def test_broken_inputs_are_refused_saying_what_is_wrong(format_name, payload, problem):
    assert problem in refusal(format_name, payload)


def test_an_unknown_format_is_refused():
    with pytest.raises(AlertFormatError, match="unknown format.*lvk_json"):
        read("avro", b"")


def test_alert_format_error_is_a_value_error():
    assert issubclass(AlertFormatError, ValueError)


def test_an_alert_refuses_a_position_out_of_range_or_half_given():
    fields = dict(event_id="E1", kind="grb", alert_type="INITIAL", serial=0,
                  issued=utc(2024, 1, 1), source="test")
    with pytest.raises(ValueError, match="dec"):
        Alert(**fields, ra=10.0, dec=95.0)
    with pytest.raises(ValueError, match="together"):
        Alert(**fields, ra=10.0)
    with pytest.raises(ValueError, match="timezone"):
        Alert(**{**fields, "issued": datetime(2024, 1, 1)})
    assert hash(Alert(**fields, ra=10.0, dec=5.0, properties={"far": 1.0}))


# --- what arrives, as bytes or base64 ------------------------------------------------------------

def test_a_line_wrapped_base64_payload_is_base64_too():
    # As the base64 command, Python's encodebytes and MIME write it.
    notice = struct.pack(">40i", *SWIFT_BAT_1227767)
    wrapped = base64.encodebytes(notice).decode("ascii")
    assert "\n" in wrapped.strip()
    alert = alert_of({"Format": "gcn_socket", "Payload": wrapped}, utc(2024, 5, 12))
    assert alert.event_id == "Swift-1227767"
    with pytest.raises(AlertFormatError, match="must be base64"):
        alert_of({"Format": "gcn_socket", "Payload": wrapped.replace("A", "*")}, utc(2024, 5, 12))


def test_text_that_is_no_utf_8_loses_a_character_not_the_alert(caplog):
    # A source (GCN Kafka, VOEvent transport) hands over bytes: they are journaled all the same.
    assert alert_text(b"<a>caf\xe9</a>") == "<a>caf\ufffd</a>"
    assert "no UTF-8 text" in caplog.text
