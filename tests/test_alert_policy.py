"""Which alerts are acted on: the ``Alerts`` section of the configuration, one rule at a time.

Each rule says why an alert is ignored, in words an operator can act on (the setting's name
and the value that decided)."""

import copy
from datetime import datetime, timezone

import pytest

from torosmanager.alerts.event import Alert
from torosmanager.alerts.policy import neutron_star_probability, reason_to_ignore
from torosmanager.config import default_config

ISSUED = datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc)
SETTINGS = default_config()["Alerts"]


def gw(alert_type="INITIAL", **properties):
    return Alert("S261130a", "gw", alert_type, 0, ISSUED, "gstlal", skymap=b"SIMPLE",
                 properties=properties)


def grb(**changes):
    fields = dict(event_id="1234567", kind="grb", alert_type="PRELIMINARY", serial=1,
                  issued=ISSUED, source="Swift BAT", ra=10.0, dec=20.0, error_radius=0.05)
    fields.update(changes)
    return Alert(**fields)


def settings(**changes):
    changed = copy.deepcopy(SETTINGS)
    for key, value in changes.items():
        changed[key] = value
    return changed


def test_a_significant_gravitational_wave_is_acted_on():
    assert reason_to_ignore(gw(far=1e-10, HasNS=0.9, HasRemnant=0.5), SETTINGS) is None


def test_a_retraction_is_never_ignored_even_a_test_one():
    retraction = Alert("MS261130a", "gw", "RETRACTION", 0, ISSUED, "LVK", test=True)
    assert reason_to_ignore(retraction, SETTINGS) is None


def test_test_alerts_are_ignored_unless_accepted():
    alert = grb(test=True)
    assert reason_to_ignore(alert, SETTINGS) == ("a test alert (Alerts → Accept Test Alerts "
                                                 "is false)")
    assert reason_to_ignore(alert, settings(**{"Accept Test Alerts": True})) is None


@pytest.mark.parametrize("far, period", [(1e-5, "1.2 days"), (1e-4, "2.8 hours"),
                                         (0.01, "1.7 minutes"), (0.1, "10 s"),
                                         (1e-6, "11.6 days")])
def test_a_frequent_false_alarm_is_ignored_and_the_message_gives_its_rate(far, period):
    reason = reason_to_ignore(gw(far=far), SETTINGS)
    assert reason == (f"false-alarm rate {far:.3g} Hz (one per {period}) is over Alerts → Max "
                      "False Alarm Rate (3.9e-07 Hz)")


@pytest.mark.parametrize("properties, expected", [
    ({"HasNS": 0.2}, 0.2),
    ({"classification": {"BNS": 0.3, "NSBH": 0.1, "BBH": 0.6}}, 0.4),
    ({"HasNS": 0.9, "classification": {"BBH": 1.0}}, 0.9),   # HasNS first
    ({}, None),
    # A class left out (a value that was no probability): what the others leave of 1 is its.
    ({"classification": {"NSBH": 0.1, "BBH": 0.05, "Terrestrial": 0.05}}, 0.9),
    ({"classification": {"NSBH": 0.1, "BBH": 0.9}}, 0.1),      # nothing left for BNS
    ({"classification": {"NSBH": 0.1, "BBH": 0.1}}, None),     # BNS or Terrestrial: unknown
])
def test_the_probability_of_a_neutron_star_is_has_ns_or_else_bns_plus_nsbh(properties, expected):
    assert neutron_star_probability(properties) == (pytest.approx(expected) if expected
                                                    else expected)


def test_neutron_star_and_remnant_thresholds():
    strict = settings(**{"Min Probability of Neutron Star": 0.5,
                         "Min Probability of Remnant": 0.1})
    assert reason_to_ignore(gw(HasNS=0.2, HasRemnant=0.9), strict) == (
        "probability of a neutron star 0.20 is under Alerts → Min Probability of Neutron Star "
        "(0.5)")
    assert reason_to_ignore(gw(classification={"BBH": 1.0}, HasRemnant=0.9), strict) == (
        "probability of a neutron star 0.00 is under Alerts → Min Probability of Neutron Star "
        "(0.5)")
    assert reason_to_ignore(gw(HasNS=0.9, HasRemnant=0.05), strict) == (
        "HasRemnant 0.05 is under Alerts → Min Probability of Remnant (0.1)")
    assert reason_to_ignore(gw(HasNS=0.9), strict) == (
        "HasRemnant unknown is under Alerts → Min Probability of Remnant (0.1)")


def test_distance_and_area_are_weighed_once_the_map_is_read():
    assert reason_to_ignore(gw(), SETTINGS, area=500.0, distance=1500.0) == (
        "mean distance 1,500 Mpc is over Alerts → Max Distance (1,000 Mpc)")
    assert reason_to_ignore(gw(), SETTINGS, area=12_000.0, distance=100.0) == (
        "its 90% area is 12,000 deg², over Alerts → Max Area (10,000 deg²)")
    assert reason_to_ignore(gw(), SETTINGS, area=500.0, distance=100.0) is None


def test_alert_types_and_kinds_can_be_turned_off():
    assert reason_to_ignore(gw("EARLYWARNING"), settings(**{"Alert Types": ["INITIAL"]})) == (
        "alert type EARLYWARNING is not in Alerts → Alert Types (INITIAL)")
    off = copy.deepcopy(SETTINGS)
    off["Gamma-Ray Bursts"]["Act"] = False
    assert reason_to_ignore(grb(), off) == "Gamma-Ray Bursts → Act is false"
    other = grb(kind="other")
    assert reason_to_ignore(other, SETTINGS) == "kind 'other': no section of Alerts covers it"
