"""The telescope and dome daemons on real INDI devices (Debian's INDI simulators).

Every device is ``Driver: indi``. The daemons run as processes inside the private network
namespace of the INDI server (tests/devices/indi_server.py), where they reach it on 127.0.0.1.

The target, Dec +85°, is always between 21° and 31° above the horizon from the test site, so
these tests hold whatever the real time of day (the INDI telescope simulator follows the real sky
at the test site) and on the simulated evening the daemons' clock shows.
"""

import os
import sys

import pytest
from astropy.io import fits

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "devices"))

from conftest import Site  # noqa: E402
from indi_server import CAMERA_HEIGHT, CAMERA_WIDTH, TARGET, indi_server  # noqa: E402
from observatory import ended, open_dome, settings, status, wait_until  # noqa: E402

__all__ = ["indi_server"]  # a fixture, imported for pytest

#: Where the simulated telescope parks too, so parking is quick.
RA, DEC = TARGET
#: Not the wheel's first filter, so that the observation turns the wheel.
FILTER = "Blue"
#: Seconds of the light frames of the first test, and of the flats.
EXPOSURE = 0.5
FLAT_EXPOSURE = 0.1
#: Millimetres of rain an hour: any is beyond the weather simulator's limit.
RAIN = 10


@pytest.fixture(scope="module")
def observatory(indi_server, tmp_path_factory):
    """The daemons, every device on the INDI simulators, the dome opened; shared by the module."""
    def device(kind):
        return indi_server.settings(kind)

    site = Site(tmp_path_factory.mktemp("indi-site"), settings(
        speed=1, Clock={"Simulated With Devices": True},
        Telescope={"Mount": device("mount"), "Camera": device("camera"),
                   "Filter Wheel": device("filter wheel"), "Poll Interval": 0.2},
        Observing={"Bias Frames": 1, "Dark Frames": 1, "Flat Frames": 1,
                   "Flat Exposure Time": FLAT_EXPOSURE},
        Dome={"Enclosure": device("dome"), "Safety Monitor": device("safety monitor"),
              "Check Interval": 0.5}))
    try:
        site.start("preprocessor", "dome", "telescope", "scheduler")
        open_dome(site)
        yield site
    finally:
        site.stop()


def observe(site, order_id, **changes):
    order = {"ID": order_id, "WOType": "Observation", "Filter": FILTER,
             "Exposure Time": EXPOSURE, "User": "test", "RA": RA, "Dec": DEC, **changes}
    site.proxy("telescope").front_desk(order)


def test_an_observation_slews_turns_the_wheel_exposes_and_writes_fits(observatory):
    observe(observatory, "indi-1", **{"Number of Exposures": 2, "Calibration Frames": "Yes"})
    result = ended(observatory.proxy("telescope"), "indi-1", "done")
    files = result["Progress"]["Files"]
    assert len(files) == 5  # 2 lights, 1 bias, 1 dark, 1 flat
    kinds = []
    for path in files:
        with fits.open(path) as hdus:
            header, data = hdus[0].header, hdus[0].data
        # The simulated CCD's own pixels, under TOROS's headers.
        assert data.shape == (CAMERA_HEIGHT, CAMERA_WIDTH)
        assert header["FILTER"] == FILTER and header["ORDERID"] == "indi-1"
        assert header["INSTRUME"] == "CCD Simulator"
        kinds.append(header["IMAGETYP"])
        if header["IMAGETYP"] == "LIGHT":
            # Sky glow and noise (the simulator's flats are uniform, saturated when binned).
            assert data.std() > 0
    assert sorted(kinds) == ["BIAS", "DARK", "FLAT", "LIGHT", "LIGHT"]
    devices = observatory.proxy("telescope").front_desk({"WOType": "Status"})["Devices"]
    assert devices["Pointing"]["Dec"] == pytest.approx(DEC, abs=0.05)
    assert devices["Mount"]["Driver"] == "indi" and devices["Mount"]["Connected"]
    assert devices["Filter Wheel"]["Filter"] == FILTER


@pytest.fixture
def rain(indi_server):
    """Rain on the simulated weather station from when the test calls it; dry at the end."""
    def start():
        indi_server.set("safety monitor", "WEATHER_CONTROL", Precip=RAIN)

    yield start
    indi_server.set("safety monitor", "WEATHER_CONTROL", Precip=0)
    indi_server.wait_for("safety monitor", "WEATHER_STATUS", "WEATHER_RAIN_HOUR", "Ok")


def test_rain_closes_the_dome_and_interrupts_the_observation(observatory, rain):
    observe(observatory, "indi-2", **{"Exposure Time": 5.0, "Number of Exposures": 20})
    telescope = observatory.proxy("telescope")
    wait_until(lambda: status(telescope, "indi-2")["Progress"].get("Step", "").startswith(
        "exposing"), "the first exposure")
    rain()

    def interrupted():
        answer = status(telescope, "indi-2")
        return answer if answer["Status"] == "interrupted" else None

    result = wait_until(interrupted, "the rain to interrupt the observation")
    assert "weather unsafe: WEATHER_RAIN_HOUR alert" in result["Message"]
    dome = observatory.proxy("dome").front_desk({"WOType": "Status"})["Devices"]
    assert dome["Enclosure"]["Shutter"] in ("closing", "closed")
    assert "weather unsafe" in dome["Enclosure"]["Closed By"]
    wait_until(lambda: telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"]["Parked"],
               "the mount to park")
