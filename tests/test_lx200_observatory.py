"""The telescope daemon driving an LX200 (OnStep) mount: the simulator over TCP, and the built-in
simulated camera and filter wheel.

The simulator runs on the daemons' clock (the simulated evening, :data:`SPEED` times faster than
real time), as the driver does: both see the same sky, and a slew takes simulated seconds.
"""

import os
import re
import signal
import sys
import time
import urllib.request
from datetime import datetime, timezone

import pytest
from astropy.io import fits

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "devices"))

from conftest import EVENING  # noqa: E402
from lx200_simulator import SimulatorProcess  # noqa: E402
from observatory import ended, open_dome, settings  # noqa: E402
from torosmanager.clock import Clock  # noqa: E402

TARGET = {"RA": 30.0, "Dec": 85.0}
#: Simulated seconds per real second: exposures and slews are quick.
SPEED = 100
#: Degrees per simulated second the simulator slews at, a real mount's pace: the slew from the
#: celestial equator to Dec +85° takes about 30 simulated seconds, 0.3 real seconds.
SLEW_RATE = 3.0
#: Simulated seconds a slew may take: 6 real seconds at :data:`SPEED`, ample for the slew in
#: simulated time, and too short for it in real time (about 30 real seconds).
SLEW_TIMEOUT = 600
SITE_OPTIONS = ("--latitude", "25.9958", "--longitude", "-97.5690")


@pytest.fixture
def clock():
    """The daemons' clock: the simulated evening, anchored now."""
    return Clock(EVENING, datetime.now(timezone.utc), SPEED)


@pytest.fixture
def simulator(clock):
    started = SimulatorProcess("onstep", "--slew-rate", str(SLEW_RATE), *SITE_OPTIONS,
                               clock=clock)
    yield started
    started.stop()


@pytest.fixture
def observatory(clock, simulator, make_site):
    mount = {"Driver": "lx200", "URL": simulator.url, "Dialect": "onstep", "Timeout": 5.0}
    clock_settings = {"Mode": "simulated", "Start": clock.start.isoformat(),
                      "Anchor": clock.anchor.isoformat(), "Speed": clock.speed}
    site = make_site(settings(Clock=clock_settings,
                              Telescope={"Mount": mount, "Slew Timeout": SLEW_TIMEOUT}))
    daemons_clock = Clock.from_config(site.config)
    assert (daemons_clock.start, daemons_clock.anchor, daemons_clock.speed) == \
        (clock.start, clock.anchor, clock.speed)
    # The dome opens only after a heartbeat from the scheduler, and the telescope exposes only
    # with the dome open.
    site.start("dome", "telescope", "scheduler")
    open_dome(site)
    return site


def test_an_observation_through_an_lx200_mount_slews_exposes_and_writes_fits(observatory,
                                                                           simulator):
    telescope = observatory.proxy("telescope")
    telescope.front_desk({"ID": "lx200-1", "WOType": "Observation", "Filter": "V",
                          "Exposure Time": 1.0, "Number of Exposures": 1, "User": "test",
                          **TARGET})
    result = ended(telescope, "lx200-1", "done")
    [path] = result["Progress"]["Files"]
    with fits.open(path) as hdus:
        header = hdus[0].header
    assert header["IMAGETYP"] == "LIGHT" and header["ORDERID"] == "lx200-1"
    status = telescope.front_desk({"WOType": "Status"})["Devices"]
    assert status["Pointing"]["Dec"] == pytest.approx(TARGET["Dec"], abs=0.05)
    assert status["Pointing"]["RA"] == pytest.approx(TARGET["RA"], abs=0.5)
    mount = status["Mount"]
    assert mount["Driver"] == "lx200" and mount["Connected"] is True
    assert mount["Dialect"] == "onstep" and mount["URL"] == simulator.url
    assert mount["Tracking"] is True and mount["Parked"] is False
    # The status page says which driver each device uses.
    with urllib.request.urlopen(observatory.url("telescope"), timeout=30) as answer:
        page = answer.read().decode()
    assert "lx200" in page and "onstep" in page and "simulator" in page
    assert "goto" in simulator.stop()  # the simulator itself was sent the goto


def test_a_mount_gone_silent_is_said_once_and_not_asked_again_at_every_status(clock, simulator,
                                                                              make_site):
    """The mount stops answering, its connection still open (a hung controller). The health
    Status, which the scheduler and the dome read every few seconds, asked it each time, for a
    Timeout per request (36 s for one Status): now the first Status after the failure says it,
    and the next ones within Timeout answer from it without asking; the log says it once."""
    timeout = 2.0
    mount = {"Driver": "lx200", "URL": simulator.url, "Dialect": "onstep", "Timeout": timeout}
    site = make_site(settings(Telescope={"Mount": mount}, Clock={
        "Mode": "simulated", "Start": clock.start.isoformat(),
        "Anchor": clock.anchor.isoformat(), "Speed": clock.speed})).start("telescope")
    telescope = site.proxy("telescope")
    assert "Error" not in telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"]
    os.kill(simulator.process.pid, signal.SIGSTOP)
    try:
        first = telescope.front_desk({"WOType": "Status"})["Devices"]
        again = telescope.front_desk({"WOType": "Status"})["Devices"]
    finally:
        os.kill(simulator.process.pid, signal.SIGCONT)
    assert "no complete answer within 2 s" in first["Mount"]["Error"]
    assert first["Pointing"] == {"Error": first["Mount"]["Error"]}
    assert re.search(r"not answering \([0-9.]+ s ago, .*no complete answer within 2 s.*\); "
                     r"asked again at most every 2 s", again["Mount"]["Error"])
    assert site.log("telescope").count("no complete answer within 2 s") == 1
    # The mount answers again: so does the Status, once Timeout has passed, and the log says so.
    time.sleep(timeout)
    assert "Error" not in telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"]
    assert "answers again" in site.log("telescope")
