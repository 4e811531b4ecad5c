"""Priorities: the documented rules, deterministic, with a one-line reason."""

import pytest

from torosmanager.config import default_config
from torosmanager.scheduler.priority import assign

SETTINGS = default_config()["Priorities"]


@pytest.mark.parametrize("order, expected", [
    ({"Type of job": "ToO"}, (9.0, "Type of job 'ToO': 9")),
    ({"Type of job": "Research"}, (5.0, "Type of job 'Research': 5")),
    ({"Type of job": "Calibration"}, (3.0, "Type of job 'Calibration': 3")),
    ({"Type of job": "Test"}, (1.0, "Type of job 'Test': 1")),
    ({"Type of job": "Outreach"}, (5.0, "default priority: 5")),
    ({}, (5.0, "default priority: 5")),
    ({"Priority": 1.3, "Type of job": "Research"}, (1.3, "requested: 1.3")),
    ({"Priority": 12, "Type of job": "Test"}, (10.0, "requested: 12; clipped to 10")),
    ({"Priority": -1}, (0.0, "requested: -1; clipped to 0")),
    ({"Type of job": "ToO", "Type of object": "Kilonova candidate"},
     (10.0, "Type of job 'ToO': 9; Type of object 'Kilonova candidate': +1")),
    ({"Type of job": "Research", "Type of object": "Galaxy"}, (5.0, "Type of job 'Research': 5")),
])
def test_the_default_rules(order, expected):
    assert assign(order, SETTINGS) == expected


def test_a_user_adjustment_and_the_order_of_the_rules():
    settings = dict(SETTINGS, **{"User Adjustments": {"Main Module": -0.5}})
    order = {"Type of job": "ToO", "Type of object": "GRB afterglow", "User": "Main Module"}
    assert assign(order, settings) == (
        9.5, "Type of job 'ToO': 9; Type of object 'GRB afterglow': +1; User 'Main Module': -0.5")


def test_the_same_order_always_gets_the_same_priority():
    order = {"Type of job": "Research", "Type of object": "Kilonova candidate", "User": "x"}
    assert len({assign(order, SETTINGS) for _ in range(5)}) == 1
