"""An alert's answer when its event is already being observed: :func:`plan_orders` with the
orders observed tonight leaves their fields out of tonight's pick, and only of tonight's.

The alert is LVK S2498 (a 2-D map, ligo-followup-advocate 2.2.0), planned on the night of
2026-12-01 at CTMO, as ``toros alert --dry-run`` would; no daemon runs here.
"""

import dataclasses
from datetime import datetime, timezone

import pytest

from alert_fixtures import FOLLOWUP_ADVOCATE, alert_file
from torosmanager.alerts.coverage import to_the_second
from torosmanager.alerts.formats import read
from torosmanager.alerts.response import assess, plan_orders, respond, type_of_object
from torosmanager.alerts.tiles import in_field
from torosmanager.config import default_config
from torosmanager.scheduler.planner import duration_of

#: Evening of 2026-12-01 at CTMO (dusk at about 01:10 UTC).
EVENING = datetime(2026, 12, 1, 20, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def config():
    config = default_config()
    config["Alerts"].update({"Accept Test Alerts": True, "Nights": 2, "Max Targets": 4})
    return config


@pytest.fixture(scope="module")
def alert():
    return read("lvk_json", alert_file("S2469/files/S2469-1-initial.json",
                                       FOLLOWUP_ADVOCATE).read_text())


def positions(orders):
    return [(order["RA"], order["Dec"]) for order in orders]


def test_tonight_goes_on_beyond_the_fields_observed_and_later_nights_are_the_whole_map(
        config, alert):
    fov = config["Alerts"]["Field of View"]
    first = respond(alert, config, EVENING)
    tonight = [order for order in first.orders if "Not Before" not in order]
    next_night = [order for order in first.orders if "Not Before" in order]
    assert len(tonight) == 4 and next_night
    observed = tonight[:2]
    assert [order["Object Name"] for order in observed] == ["S2498 field 1", "S2498 field 2"]
    update = plan_orders(assess(alert, config), config, EVENING, id_prefix="S2498-2",
                         observed=observed)
    assert update.observed == ["dry-run-01", "dry-run-02"]
    new_tonight = [order for order in update.orders if "Not Before" not in order]
    # Max Targets is the event's for the night: two observed, two more.
    assert len(new_tonight) == 2
    # No new field of tonight is centred in one observed, and what they cover is new.
    for ra, dec in positions(new_tonight):
        assert not any(in_field(order["RA"], order["Dec"], ra, dec, fov) for order in observed)
    assert update.pick.total < first.pick.total
    hours = 2 * duration_of(observed[0], config["Observing"]) / 3600
    assert update.observed_hours == pytest.approx(hours)
    # What they cover of the map: the second tile's probability is what it adds to the first.
    covered = update.coverage()["Observed Tonight"]
    assert covered == pytest.approx(sum(order["Probability"] for order in observed), abs=2e-6)
    assert (f"the fields of 2 order(s) observed tonight, {covered:.1%} of this localisation, "
            f"left out with their {hours:.2f} h of the event's budget") in update.summary()
    assert update.outcome()["Observed Orders"] == ["dry-run-01", "dry-run-02"]
    # The next night observes the map again, the observed fields included (the light curve).
    assert positions(order for order in update.orders if "Not Before" in order) == \
        positions(next_night)
    assert update.coverage()["Later Nights"] == first.coverage()["Later Nights"]
    # Its plan ends with the dawn of its last night: the Not After of that night's orders.
    assert update.outcome()["Plan Ends"] == next_night[-1]["Not After"] > tonight[0]["Not After"]
    assert update.outcome()["Skymap SHA-256"] == update.skymap.digest


def test_an_update_has_what_the_observed_orders_left_of_the_events_budget(config, alert):
    """Budget Hours is the event's for the night: updates do not let it take the whole night."""
    first = respond(alert, config, EVENING)
    observed = first.orders[:2]
    two = 2 * duration_of(observed[0], config["Observing"]) / 3600
    tight = dict(config, Alerts=dict(config["Alerts"], **{"Budget Hours": two + 0.01}))
    spent = plan_orders(assess(alert, tight), tight, EVENING, observed=observed)
    assert spent.pick.chosen == [] and spent.pick.visible_tonight > 0
    # The next night has its whole budget.
    assert [order for order in spent.orders if "Not Before" in order]


def test_a_single_pointing_is_observed_again(config):
    """An afterglow's later frames are worth the time: an update of a small error circle
    points at it again, whatever was observed of it tonight."""
    alert = read("gcn_json", alert_file("kafka_alert_einteinprobe.json").read_text())
    night = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)
    first = respond(alert, config, night)
    (order,) = [order for order in first.orders if "Not Before" not in order]
    again = plan_orders(assess(alert, config), config, night, observed=[order])
    assert positions(again.orders) == positions(first.orders) and again.observed == []


def test_times_on_an_events_page_are_to_the_second_in_utc():
    assert to_the_second("2026-12-03T01:00:05.250000+00:00") == "2026-12-03 01:00:05"
    assert to_the_second("2026-12-03T01:00:05.250Z") == "2026-12-03 01:00:05"
    assert to_the_second("2026-12-02T23:00:05-02:00") == "2026-12-03 01:00:05"


@pytest.mark.parametrize("properties, expected", [
    ({"HasNS": 0.0, "classification": {"BBH": 0.995, "Terrestrial": 0.005}},
     "Gravitational-wave counterpart"),
    ({"classification": {"BBH": 0.995, "BNS": 0.0, "NSBH": 0.0, "Terrestrial": 0.005}},
     "Gravitational-wave counterpart"),
    ({"HasNS": 0.3}, "Kilonova candidate"),
    ({"classification": {"NSBH": 0.9, "BBH": 0.1}}, "Kilonova candidate"),
    ({}, "Kilonova candidate"),  # unknown: a neutron star may be in it
])
def test_a_binary_black_hole_is_no_kilonova_candidate(alert, properties, expected):
    """A kilonova needs a neutron star: a binary black hole's orders do not get the
    scheduler's kilonova adjustment (+1 by default)."""
    gw = dataclasses.replace(alert, properties=properties)
    assert type_of_object(gw) == expected



def test_no_order_chosen_says_why_not_the_heaviest_candidate(alert):
    """'0 order(s)' alone left the operator guessing: a budget too small for one target."""
    config = default_config()
    config["Alerts"].update({"Accept Test Alerts": True, "Budget Hours": 0.01})
    summary = respond(alert, config, EVENING).summary()
    assert summary.startswith("0 order(s) on fields covering 0.0% tonight")
    assert summary.endswith("; the heaviest candidate, S2498 field 1: over the budget of 1 min "
                            "of telescope time")
