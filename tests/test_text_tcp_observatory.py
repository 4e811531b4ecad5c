"""The telescope daemon driving a plain-text TCP mount computer (simulated, as its own process).

The mount follows the real sky; the target, Dec +85°, is always between 21° and 31° above the
horizon at the test site, so the test holds whatever the real time of day and on the simulated
evening the daemons' clock shows. The camera, filter wheel, dome and weather are the built-in
simulators. The mount computer is as strict as the real one: it answers ERR to commands closer
together than its minimum interval, and the test checks that it never had to.
"""

import os
import sys

import pytest
from astropy.io import fits

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "devices"))

from observatory import ended, open_dome, settings
from text_tcp_simulator import HOST, SimulatorProcess

TARGET = {"RA": 30.0, "Dec": 85.0}
#: Seconds between two commands, for the simulated mount computer and the driver alike.
COMMAND_INTERVAL = 0.1
#: Clock seconds a slew may take: the simulated mount moves in real time while the daemons' clock
#: runs SPEED times faster.
SLEW_TIMEOUT = 3000
#: Degrees per second on each axis of the simulated mount: the slew from the park position (Dec
#: 0°) and back takes about a second.
SLEW_RATE = 90.0
#: The pointing read back agrees with the target to this (degrees).
POINTING_TOLERANCE = 0.01


@pytest.fixture
def mount_computer(tmp_path):
    made = SimulatorProcess(str(tmp_path / "mount-computer.log"),
                            min_interval=COMMAND_INTERVAL, slew_rate=SLEW_RATE).start()
    yield made
    made.stop()


@pytest.fixture
def observatory(mount_computer, make_site):
    site = make_site(settings(
        Telescope={"Mount": {"Driver": "text-tcp", "Host": HOST, "Port": mount_computer.port,
                             "Command Interval": COMMAND_INTERVAL, "Timeout": 2.0},
                   "Slew Timeout": SLEW_TIMEOUT}))
    # The frames stay raw (no preprocessor), and no scheduler plans the night around the order:
    # the test sends the heartbeat the dome wants from it (valid for the Heartbeat Timeout).
    site.start("dome", "telescope")
    site.proxy("dome").front_desk({"WOType": "Heartbeat", "User": "scheduler"})
    open_dome(site)
    return site


def test_an_observation_on_a_text_tcp_mount_slews_exposes_and_writes_fits(observatory,
                                                                           mount_computer):
    telescope = observatory.proxy("telescope")
    telescope.front_desk({"ID": "tcp-1", "WOType": "Observation", "Filter": "V",
                          "Exposure Time": 1.0, "Number of Exposures": 2, "User": "test",
                          **TARGET})
    result = ended(telescope, "tcp-1", "done")
    files = result["Progress"]["Files"]
    assert len(files) == 2
    for path in files:
        header = fits.getheader(path)
        assert header["IMAGETYP"] == "LIGHT" and header["ORDERID"] == "tcp-1"
        assert header["DEC"] == pytest.approx(TARGET["Dec"], abs=POINTING_TOLERANCE)
    devices = telescope.front_desk({"WOType": "Status"})["Devices"]
    assert devices["Mount"]["Driver"] == "text-tcp" and devices["Mount"]["Connected"]
    assert devices["Pointing"]["Dec"] == pytest.approx(TARGET["Dec"], abs=POINTING_TOLERANCE)
    assert devices["Pointing"]["Tracking"]
    with open(mount_computer.log_path, encoding="utf-8") as log:
        text = log.read()
    assert "target reached" in text
    assert "rate violation" not in text
    assert "refused a second connection" not in text
