"""LVK JSON alerts checked against the LVK's schema (igwn-gwalert-schema 1.3.0): what does not fit
is kept in the alert, for the daemon to log once, and only what the reader needs refuses an alert.

The real alerts are ligo-followup-advocate's examples: none fits the schema (their event times
have no zone, two leave out ``external_coinc.ivorn``), and all are read.
"""

import base64
import copy
import json
from importlib import resources

import pytest
from alert_fixtures import FOLLOWUP_ADVOCATE, alert_file

from torosmanager.alerts.formats import AlertFormatError, lvk_json, lvk_schema, read

#: The schema version these tests were written against (its problems are asserted word for word).
SCHEMA_VERSION = "1.3.0"
NO_ZONE = "is not an RFC 3339 date-time (a date, a time and a zone such as Z)"
SKYMAP_BYTES = b"SIMPLE  =                    T"


def real_alert(name):
    return json.loads(alert_file(name, FOLLOWUP_ADVOCATE).read_bytes())


def schema():
    return json.loads(resources.files(lvk_schema.SCHEMA_PACKAGE)
                      .joinpath(lvk_schema.SCHEMA_FILE).read_text("utf-8"))


def fitting_alert(**changes):
    """A PRELIMINARY alert with every field the schema requires, as gwcelery writes them."""
    alert = {"superevent_id": "S230518h", "alert_type": "PRELIMINARY",
             "time_created": "2023-05-18T13:00:02Z",
             "urls": {"gracedb": "https://gracedb.ligo.org/superevents/S230518h/view/"},
             "event": {"time": "2023-05-18T12:59:08.167Z", "far": 1.1e-10, "significant": True,
                       "instruments": ["H1", "L1"], "group": "CBC", "pipeline": "gstlal",
                       "search": "AllSky",
                       "classification": {"BNS": 0.0, "NSBH": 0.9, "BBH": 0.0,
                                          "Terrestrial": 0.1},
                       "properties": {"HasNS": 1.0, "HasRemnant": 0.0, "HasMassGap": 0.0},
                       "mchirp_source": None, "duration": None, "central_frequency": None,
                       "skymap": base64.b64encode(SKYMAP_BYTES).decode()},
             "external_coinc": None}
    for path, value in changes.items():
        *parents, last = path.split("__")
        holder = alert
        for parent in parents:
            holder = holder[parent]
        holder[last] = value
    return alert


def test_the_installed_schema_is_the_one_these_tests_were_written_against():
    assert lvk_schema.schema_version() == SCHEMA_VERSION


# --- real alerts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, problems", [
    ("S1234/files/S1234-1-earlywarning.json",
     [f"event.time: '2018-06-28T03:08:04.911085' {NO_ZONE}"]),
    ("S1234/files/S1234-2-initial.json",
     [f"event.time: '2018-06-28T03:08:04.911085' {NO_ZONE}", "external_coinc.ivorn: missing"]),
    ("S2469/files/S2469-1-initial.json",
     [f"event.time: '2023-04-30T18:50:35.276956' {NO_ZONE}"]),
    ("S3456/files/S3456-1-initial.json",
     [f"event.time: '2018-06-28T13:35:16.911085' {NO_ZONE}", "external_coinc.ivorn: missing"]),
])
def test_real_alerts_are_read_with_what_does_not_fit_the_schema(name, problems):
    payload = alert_file(name, FOLLOWUP_ADVOCATE).read_bytes()
    alert = read("lvk_json", payload)
    assert alert.properties["schema_problems"] == problems
    assert alert.skymap.startswith(b"SIMPLE") and alert.alert_type in name.upper()
    warning = lvk_json.schema_warning(alert)
    assert warning.startswith(f"LVK alert {alert.event_id} {alert.alert_type} does not fit "
                              f"igwn-gwalert-schema {SCHEMA_VERSION}")
    assert warning.endswith("; ".join(problems))


@pytest.mark.parametrize("name", ["S1234/files/S1234-2-initial.json",
                                  "S3456/files/S3456-1-initial.json"])
def test_real_alerts_with_a_zone_and_an_ivorn_fit_the_schema(name):
    """What the schema finds in the real alerts is all there is: mended, they fit."""
    alert = real_alert(name)
    alert["event"]["time"] += "Z"
    alert["external_coinc"]["ivorn"] = "ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_876016-000"
    mended = read("lvk_json", json.dumps(alert))
    assert "schema_problems" not in mended.properties
    assert lvk_json.schema_warning(mended) is None


def test_the_skymap_is_decoded_once_and_the_alert_left_as_it_came(monkeypatch):
    alert = real_alert("S3456/files/S3456-1-initial.json")
    received = copy.deepcopy(alert)
    decodings = []
    real_decode = base64.b64decode

    def counting_decode(*args, **kwargs):
        decodings.append(args[0][:len("U0lNUExF")])
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(base64, "b64decode", counting_decode)
    result = read("lvk_json", alert)
    assert decodings == ["U0lNUExF"]        # event.skymap, once; combined_skymap not at all
    assert alert == received and result.skymap == real_decode(alert["event"]["skymap"])


# --- alerts made from the schema -----------------------------------------------------------------

def test_a_retraction_built_from_the_schema_fits_it():
    retraction = {"superevent_id": "S230518h", "alert_type": "RETRACTION",
                  "time_created": "2023-05-18T14:00:00Z", "event": None,
                  "external_coinc": None,
                  "urls": {"gracedb": "https://gracedb.ligo.org/superevents/S230518h/view/"}}
    assert sorted(retraction) == sorted(schema()["required"])
    alert = read("lvk_json", json.dumps(retraction))
    assert alert.is_retraction and "schema_problems" not in alert.properties
    assert lvk_json.schema_warning(alert) is None


def test_an_alert_written_as_gwcelery_writes_them_fits_the_schema():
    alert = read("lvk_json", json.dumps(fitting_alert()))
    assert alert.skymap == SKYMAP_BYTES and "schema_problems" not in alert.properties
    assert lvk_json.schema_warning(alert) is None


@pytest.mark.parametrize("changes, problems", [
    ({"event__duration": "2 s"}, ["event.duration: a string, expected null or number"]),
    ({"event__significant": "yes"}, ["event.significant: a string, expected boolean"]),
    ({"event__classification": {"BNS": "high", "BBH": 0.1}},
     ["event.classification.BNS: a string, expected number",
      # what the reader does with it: an unknown probability
      "event.classification.BNS is not a number (received 'high'), left out"]),
    ({"event__instruments": ["H1", 1]}, ["event.instruments[1]: an integer, expected string"]),
    ({"event__mchirp_source": {"bin_edges": [1.0, 2.0], "probabilities": [1.0], "unit": "Msun"}},
     ["event.mchirp_source.unit: not a field the schema allows"]),
    ({"alert_type": "preliminary"},
     ["alert_type: 'preliminary' is not one of EARLYWARNING, PRELIMINARY, INITIAL, UPDATE, "
      "RETRACTION"]),
    ({"urls": {"gracedb": "gracedb S230518h"}},
     ["urls.gracedb: 'gracedb S230518h' is not a URI (with a scheme such as https:)"]),
    ({"external_coinc": {"gcn_notice_id": 1.5, "observatory": "Fermi"}},
     ["external_coinc.gcn_notice_id: a number, expected integer or string"]
     + [f"external_coinc.{name}: missing" for name in (
         "ivorn", "search", "time_difference", "time_coincidence_far",
         "time_sky_position_coincidence_far", "combined_skymap")]),
])
def test_an_alert_with_a_wrong_optional_field_is_read_with_the_problem_kept(changes, problems):
    alert = read("lvk_json", json.dumps(fitting_alert(**changes)))
    assert alert.properties["schema_problems"] == problems
    assert alert.alert_type == "PRELIMINARY" and alert.skymap == SKYMAP_BYTES
    warning = lvk_json.schema_warning(alert)
    assert "S230518h PRELIMINARY" in warning and warning.endswith("; ".join(problems))


def test_a_problem_line_is_short_whatever_the_value():
    alert = fitting_alert(event__time="2023-05-18 " + "x" * 10_000)
    with pytest.raises(AlertFormatError, match="event.time is not an ISO 8601 time"):
        read("lvk_json", alert)         # the reader refuses it; the schema's line stays short
    [problem] = lvk_schema.problems(alert)
    assert problem.startswith("event.time: '2023-05-18 xxx") and len(problem) < 200


@pytest.mark.parametrize("missing, refusal", [
    ("time_created", "missing 'time_created'"),
    ("superevent_id", "missing 'superevent_id'"),
])
def test_an_alert_without_a_needed_field_is_refused_as_before(missing, refusal):
    alert = fitting_alert()
    del alert[missing]
    with pytest.raises(AlertFormatError, match=refusal):
        read("lvk_json", json.dumps(alert))


def test_an_alert_without_a_skymap_or_its_url_is_refused_as_before():
    with pytest.raises(AlertFormatError, match="PRELIMINARY alert without a skymap"):
        read("lvk_json", json.dumps(fitting_alert(event__skymap=None)))
