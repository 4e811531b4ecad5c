"""When a focus run is due, where its frames go, and what it changes in the focus model."""

import numpy as np
import pytest

from torosmanager.config import default_config
from torosmanager.telescope.autofocus import Autofocus, AutofocusFailed, FocusRun, model_after
from torosmanager.telescope.focus import FocusModel

SETTINGS = dict(default_config()["Telescope"]["Focuser"], **{
    "Autofocus": True, "Autofocus Points": 5, "Autofocus Step": 100,
    "Autofocus Temperature Change": 2.0})


def test_a_run_is_due_once_a_night_and_when_the_temperature_moves():
    autofocus = Autofocus(SETTINGS)
    assert autofocus.due("20261109", 10.0)
    autofocus.last_night, autofocus.last_temperature = "20261109", 10.0
    assert not autofocus.due("20261109", 8.5)
    assert autofocus.due("20261109", 8.0)       # 2 °C colder
    assert autofocus.due("20261109", 12.0)      # or warmer
    assert not autofocus.due("20261109", None)  # no sensor: once a night
    assert autofocus.due("20261110", 10.0)      # the next night


def test_no_run_is_due_unless_asked_for():
    assert not Autofocus(dict(SETTINGS, Autofocus=False)).due("20261109", 10.0)


@pytest.mark.parametrize("centre, maximum, positions", [
    (5_000, 100_000, [4_800, 4_900, 5_000, 5_100, 5_200]),
    (100, 100_000, [0, 100, 200, 300, 400]),                   # shifted in from 0
    (99_950, 100_000, [99_600, 99_700, 99_800, 99_900, 100_000]),  # and from the end
])
def test_a_run_is_centred_on_the_model_and_kept_inside_the_range(centre, maximum, positions):
    assert Autofocus(SETTINGS).positions(centre, maximum) == positions


def test_the_run_s_focus_becomes_the_model_s_best_position_less_the_filter_s_offset():
    model = FocusModel(best_position=48_800, reference_temperature=12.0, coefficient=-15.0,
                       filter_offsets={"B": 40}, tolerance=10)
    run = FocusRun(positions=[], hfds=[], position=50_040, temperature=9.0)
    after = model_after(model, run, "B")
    assert (after.best_position, after.reference_temperature) == (50_000, 9.0)
    assert after.position("B", 9.0)[0] == 50_040
    assert after.position("V", 8.0)[0] == 50_015
    unknown = FocusRun(positions=[], hfds=[], position=50_000, temperature=None)
    assert model_after(model, unknown, "V").reference_temperature == 12.0


class Interrupted(Exception):
    """What stops a run half-way in the telescope daemon (a target of opportunity)."""


def test_a_run_interrupted_half_way_is_made_again_and_one_that_failed_is_not():
    autofocus = Autofocus(SETTINGS)

    def interrupted(number, position):
        raise Interrupted

    with pytest.raises(Interrupted):
        autofocus.run([4_900, 5_000, 5_100, 5_200, 5_300], interrupted, "20261109", 10.0)
    assert autofocus.due("20261109", 10.0)
    blank = np.zeros((64, 64))  # no star anywhere: no focus to find
    with pytest.raises(AutofocusFailed, match="no best focus from the run"):
        autofocus.run([4_900, 5_000, 5_100, 5_200, 5_300], lambda number, position: blank,
                      "20261109", 10.0)
    assert not autofocus.due("20261109", 10.0)
