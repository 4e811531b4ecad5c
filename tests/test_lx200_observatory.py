"""The telescope daemon driving an LX200 (OnStep) mount: the simulator over TCP, and the built-in
simulated camera and filter wheel.

The target, Dec +85°, is always between 21° and 31° above the horizon from the test site, so the
test holds whatever the real time of day (the LX200 mount follows the real sky) and on the
simulated evening the daemons' clock shows.
"""

import os
import sys
import urllib.request

import pytest
from astropy.io import fits

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "devices"))

from lx200_simulator import SimulatorProcess  # noqa: E402
from observatory import ended, open_dome, settings  # noqa: E402

TARGET = {"RA": 30.0, "Dec": 85.0}
#: Simulated seconds per real second: exposures are quick, the mount slews in real time.
SPEED = 100
#: Simulated seconds a slew may take: 30 real seconds at :data:`SPEED`, ample for a real-time
#: slew at the simulator's 90°/s.
SLEW_TIMEOUT = 3000
SITE_OPTIONS = ("--latitude", "25.9958", "--longitude", "-97.5690")


@pytest.fixture
def simulator():
    started = SimulatorProcess("onstep", "--slew-rate", "90", *SITE_OPTIONS)
    yield started
    started.stop()


@pytest.fixture
def observatory(simulator, make_site):
    mount = {"Driver": "lx200", "URL": simulator.url, "Dialect": "onstep", "Timeout": 5.0}
    site = make_site(settings(speed=SPEED,
                              Telescope={"Mount": mount, "Slew Timeout": SLEW_TIMEOUT}))
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
