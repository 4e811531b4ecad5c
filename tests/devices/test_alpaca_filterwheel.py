"""The alpaca driver's filter wheel against alpaca-simulators' filter wheel."""

import logging
import sys
import xmlrpc.client
from pathlib import Path

import pytest

pytest.importorskip("alpaca", reason="alpyca is not installed (pip install alpyca)")

from torosmanager.devices import DeviceError, wait_for  # noqa: E402
from torosmanager.devices.alpaca import AlpacaFilterWheel  # noqa: E402

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from alpaca_server import (FILTER_NAMES, FOCUS_OFFSETS, HOST, SHORT_OFFSETS_WHEEL,  # noqa: E402
                           ZERO_OFFSETS_WHEEL, alpaca_server, simulators)  # noqa: F401

POLL_INTERVAL = 0.1
MOVE_TIMEOUT = 10.0


@pytest.fixture
def wheel(simulators):
    made = AlpacaFilterWheel(simulators.settings())
    made.connect()
    yield made
    made.disconnect()


def test_names_and_a_move(simulators, wheel):
    state = wheel.state()
    assert state.names == FILTER_NAMES
    assert state.position == 0 and state.current == FILTER_NAMES[0]
    wheel.start_move("Blue")
    wait_for(lambda: wheel.state().current == "Blue", MOVE_TIMEOUT, "the Blue filter",
             POLL_INTERVAL)
    assert wheel.state().position == FILTER_NAMES.index("Blue")
    report = wheel.describe()
    assert report == {"Driver": "alpaca", "Connected": True,
                      "Address": f"{HOST}:{simulators.port}/0", "Filter": "Blue"}
    xmlrpc.client.dumps((report,))


def test_an_unknown_filter_is_refused_with_the_names_it_has(wheel):
    with pytest.raises(DeviceError) as refused:
        wheel.start_move("H-alpha")
    assert "moving to filter 'H-alpha' failed: no such filter; the wheel has 'Red', 'Green'" in \
        str(refused.value)
    assert wheel.state().current == FILTER_NAMES[0]


def test_the_focus_offsets_its_driver_keeps_are_read_by_filter_name(wheel):
    assert wheel.focus_offsets() == dict(zip(FILTER_NAMES, FOCUS_OFFSETS))


def test_offsets_that_are_all_zero_are_none(simulators):
    made = AlpacaFilterWheel(simulators.settings(ZERO_OFFSETS_WHEEL))
    made.connect()
    try:
        assert made.focus_offsets() == {}
    finally:
        made.disconnect()


def test_offsets_that_do_not_match_the_filters_are_said_and_not_used(simulators, caplog):
    made = AlpacaFilterWheel(simulators.settings(SHORT_OFFSETS_WHEEL))
    with caplog.at_level(logging.WARNING, logger="torosmanager.devices.alpaca.filterwheel"):
        made.connect()
    try:
        assert made.focus_offsets() == {}
        assert f"focus offsets {FOCUS_OFFSETS[:2]!r} are not one whole number per filter " \
               f"({', '.join(FILTER_NAMES)}): not used" in caplog.text
    finally:
        made.disconnect()
