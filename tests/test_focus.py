"""The focus model, as a specification: Best Position, plus the filter's offset, plus the
Temperature Coefficient times how much warmer the tube is than at the Reference Temperature."""

import pytest

from torosmanager.config import default_config
from torosmanager.telescope.focus import FocusModel

#: A model as an observatory keeps one: focus moves 20 steps inward per °C the tube cools.
MODEL = FocusModel(best_position=50_000, reference_temperature=10.0, coefficient=-20.0,
                   filter_offsets={"B": 35, "I": -25}, tolerance=10)


@pytest.mark.parametrize("filter_name, temperature, position", [
    ("V", 10.0, 50_000),       # the reference itself
    ("B", 10.0, 50_035),       # a filter's offset
    ("I", 10.0, 49_975),
    ("V", 7.5, 50_050),        # 2.5 °C colder: 20 steps per °C
    ("B", 12.0, 49_995),       # warmer, and a filter: both terms
    ("V", 10.02, 50_000),      # rounded to whole steps
])
def test_the_position_sums_the_best_the_filter_and_the_temperature(filter_name, temperature,
                                                                    position):
    assert MODEL.position(filter_name, temperature)[0] == position


def test_the_reason_names_each_term_that_moved_it():
    assert MODEL.position("B", 7.5) == (50_085, "best 50000, filter B +35, 7.5 °C: +50")
    assert MODEL.position("V", 10.0) == (50_000, "best 50000")


def test_without_a_temperature_the_term_is_left_out():
    assert MODEL.position("B", None) == (50_035, "best 50000, filter B +35")
    uncalibrated = FocusModel(best_position=50_000, coefficient=-20.0)
    assert uncalibrated.position("V", 0.0) == (50_000, "best 50000")


def test_without_a_best_position_the_focuser_is_not_moved():
    assert FocusModel(best_position=None).position("V", 5.0) == (None, "")


def test_the_default_configuration_moves_no_focuser():
    focuser = default_config()["Telescope"]["Focuser"]
    assert focuser["Driver"] == "none"
    assert FocusModel.from_settings(focuser).position("V", 5.0) == (None, "")
