"""A system clock set while the night runs (NTP stepping a clock that ran fast, or a person).

The daemons run under libfaketime, their wall clock read from a file the test rewrites, their
monotonic clock left alone, as the kernel leaves it when the clock is set; the devices are
real Alpaca ones (alpaca-simulators), whose clock no one sets. Set back an hour, the scheduler
stopped following the order under way for that hour: the night stood still.
"""

import os
import sys
from datetime import timedelta

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "devices"))

from alpaca_server import FILTER_NAMES, alpaca_server, simulators  # noqa: E402
from conftest import EVENING  # noqa: E402
from observatory import ended, settings, step, wait_until  # noqa: E402
from test_scheduler import instant  # noqa: E402

libfaketime = pytest.importorskip("libfaketime")

__all__ = ["alpaca_server", "simulators"]  # fixtures, imported for pytest

#: Always 21-31° up from the test site, whatever the real time (the Alpaca mount's sky).
TARGET = {"RA": 30.0, "Dec": 85.0}
#: Seconds of the observation under way when the clock is set back.
EXPOSURE = 10.0


def observation(order_id, exposure):
    return {"ID": order_id, "WOType": "Observation", "Filter": FILTER_NAMES[0],
            "Exposure Time": exposure, "Number of Exposures": 1, "User": "test", **TARGET}


def test_a_clock_set_back_an_hour_mid_observation_does_not_stop_the_night(simulators,
                                                                           make_site, tmp_path,
                                                                           monkeypatch):
    def device():
        return simulators.settings(0)

    # An hour after EVENING at 1×: set back an hour, the daemons' night is still dark.
    site = make_site(settings(
        speed=1, start=EVENING + timedelta(hours=1),
        Telescope={"Mount": device(), "Camera": device(), "Filter Wheel": device(),
                   "Poll Interval": 0.2},
        Observing={"Max Airmass": 3.0},  # (the target's airmass is 1.9-2.8)
        Dome={"Enclosure": device(), "Safety Monitor": device(), "Check Interval": 0.5}))
    simulators.catalogue.add_field(TARGET["RA"], TARGET["Dec"])
    wall_clock = tmp_path / "faketime"
    wall_clock.write_text("+0\n")
    _, preload = libfaketime.get_reload_information()
    for variable, value in dict(preload, DONT_FAKE_MONOTONIC="1",
                                FAKETIME_TIMESTAMP_FILE=str(wall_clock)).items():
        monkeypatch.setenv(variable, value)  # for the daemons started next
    site.start("dome", "telescope", "scheduler")
    scheduler = site.proxy("scheduler")
    scheduler.front_desk(observation("under-way", EXPOSURE))
    wait_until(lambda: step(site.proxy("telescope"), "under-way").startswith("exposing"),
               "the observation to expose")

    before = instant(scheduler.front_desk({"WOType": "Status"})["Now"])
    wall_clock.write_text("-1h\n")
    after = instant(scheduler.front_desk({"WOType": "Status"})["Now"])
    assert timedelta(minutes=59) < before - after < timedelta(minutes=61)
    scheduler.front_desk(observation("after", 1.0))
    assert "frame(s) written" in ended(scheduler, "under-way", "done")["Message"]
    assert "frame(s) written" in ended(scheduler, "after", "done")["Message"]
