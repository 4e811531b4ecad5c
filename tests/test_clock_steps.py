"""A system clock set while the night runs (NTP stepping a clock that ran fast, or a person).

The daemons run under libfaketime, their wall clock read from a file the test rewrites, their
monotonic clock left alone, as the kernel leaves it when the clock is set; the devices are
real Alpaca ones (alpaca-simulators), whose clock no one sets, or the built-in simulators inside
the daemons. Set back an hour, the scheduler stopped following the order under way for that
hour: the night stood still; and a built-in simulated exposure lasted that hour longer.
"""

import os
import sys
from datetime import timedelta

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "devices"))

from alpaca_server import alpaca_server, simulators  # noqa: E402
from conftest import EVENING  # noqa: E402
from observatory import ended, settings, step, wait_until  # noqa: E402
from test_scheduler import instant  # noqa: E402

libfaketime = pytest.importorskip("libfaketime")

__all__ = ["alpaca_server", "simulators"]  # fixtures, imported for pytest

#: Always 21-31° up from the test site, whatever the real time (the Alpaca mount's sky).
TARGET = {"RA": 30.0, "Dec": 85.0}
#: A filter of the Alpaca wheel and of the built-in simulator's.
BOTH_WHEELS_HAVE = "Clear"
#: The built-in simulators' motions at a few seconds each: the test runs at speed 1.
BRISK = {"Shutter Travel Time": 2.0, "Dome Rotation Rate": 60.0, "Slew Rate": 30.0,
         "Settle Time": 0.5, "Readout Time": 0.5, "Filter Change Time": 0.5}
#: Seconds of the observation under way when the clock is set back.
EXPOSURE = 10.0


def observation(order_id, exposure):
    return {"ID": order_id, "WOType": "Observation", "Filter": BOTH_WHEELS_HAVE,
            "Exposure Time": exposure, "Number of Exposures": 1, "User": "test", **TARGET}


def test_a_clock_set_back_an_hour_mid_observation_does_not_stop_the_night(simulators,
                                                                           make_site, tmp_path,
                                                                           monkeypatch):
    def device():
        return simulators.settings(0)

    # An hour after EVENING at 1×: set back an hour, the daemons' night is still dark.
    site = make_site(settings(
        speed=1, start=EVENING + timedelta(hours=1), Clock={"Simulated With Devices": True},
        Telescope={"Mount": device(), "Camera": device(), "Filter Wheel": device(),
                   "Poll Interval": 0.2},
        Observing={"Max Airmass": 3.0},  # (the target's airmass is 1.9-2.8)
        Dome={"Enclosure": device(), "Safety Monitor": device(), "Check Interval": 0.5}))
    simulators.catalogue.add_field(TARGET["RA"], TARGET["Dec"])
    set_back_an_hour_mid_observation(site, tmp_path, monkeypatch)


def test_the_built_in_simulators_take_their_time_when_the_clock_is_set_back(make_site,
                                                                             tmp_path,
                                                                             monkeypatch):
    """The same with the simulated devices inside the daemons, under the same libfaketime:
    they time an exposure or a slew on the monotonic clock, as hardware keeps its own time.
    Before, the exposure under way lasted an hour longer."""
    site = make_site(settings(speed=1, start=EVENING + timedelta(hours=1),
                              Telescope={"Poll Interval": 0.2}, Observing={"Max Airmass": 3.0},
                              Dome={"Check Interval": 0.5}, Simulator=BRISK))
    set_back_an_hour_mid_observation(site, tmp_path, monkeypatch)


def set_back_an_hour_mid_observation(site, tmp_path, monkeypatch):
    """Start the dome, telescope and scheduler of *site* under libfaketime; set their clock
    back an hour while an observation exposes: it, and one submitted after, end done."""
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
