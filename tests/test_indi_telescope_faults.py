"""The telescope daemon when an INDI device misbehaves: Debian's INDI simulators under a real
``indiserver`` (tests/devices/indi_server.py), the daemons as processes in its network namespace.

The frame that never comes: the CCD driver stopped (SIGSTOP) during an exposure, as a hung
driver or a camera that stops sending its image would be; the server and the other devices
answer on. The slew stopped short: another client (KStars' Abort) sets TELESCOPE_ABORT_MOTION
during the slew.
"""

import contextlib
import os
import signal
import sys

import pytest
from astropy.io import fits

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "devices"))

from conftest import Site  # noqa: E402
from indi_server import DRIVERS, TARGET, indi_server, sky_position  # noqa: E402
from observatory import ended, open_dome, settings, wait_until  # noqa: E402
from torosmanager.devices.mount import separation  # noqa: E402

__all__ = ["indi_server"]  # a fixture, imported for pytest

RA, DEC = TARGET
#: Seconds of the light frame, and the readout's timeout after it (both real: speed 1): the
#: test sees the camera exposing, and stops its driver before the image is sent.
EXPOSURE = 2.0
READOUT_TIMEOUT = 3.0
#: Where the aborted slew goes: on the meridian north of the zenith at the real time (the INDI
#: telescope simulator's sky), Dec +75°, some 10-20° from the park position (:data:`TARGET`).
#: It is above :data:`MINIMUM_ALTITUDE` whatever the time, the simulated clock's too.
ABORTED_SLEW_ALTITUDE, ABORTED_SLEW_AZIMUTH = 41.0, 0.0
MINIMUM_ALTITUDE = 10.0
#: Degrees within which a frame is where the order asked (the default Pointing Tolerance).
ON_TARGET = 0.1


@pytest.fixture(scope="module")
def observatory(indi_server, tmp_path_factory):
    """The dome and telescope daemons on the INDI simulators, the dome opened."""
    def device(kind):
        return indi_server.settings(kind)

    site = Site(tmp_path_factory.mktemp("indi-faults"), settings(
        speed=1, Clock={"Simulated With Devices": True},
        Telescope={"Mount": device("mount"), "Camera": device("camera"),
                   "Filter Wheel": device("filter wheel"), "Poll Interval": 0.2,
                   "Readout Timeout": READOUT_TIMEOUT},
        Observing={"Minimum Altitude": MINIMUM_ALTITUDE},
        # The slit is not waited for: the tests' frames come at once after the slew.
        Dome={"Enclosure": device("dome"), "Safety Monitor": device("safety monitor"),
              "Check Interval": 0.5, "Follow Telescope": False}))
    try:
        site.start("dome", "telescope", "scheduler")
        open_dome(site)
        yield site
    finally:
        site.stop()


def driver_pid(server, kind):
    """The PID of the simulator playing *kind*, a child of the server."""
    program = DRIVERS[kind][0]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().split(b"\0")[0].decode()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if parent == server.process.pid and os.path.basename(command) == program:
            return int(entry)
    raise AssertionError(f"no {program} under the INDI server")


@contextlib.contextmanager
def stopped(pid):
    """While inside, process *pid* is stopped (SIGSTOP); continued at the end."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_frame_that_never_comes_fails_naming_the_camera_and_the_wait(observatory,
                                                                        indi_server):
    """The CCD driver stops during the exposure: no image ever comes. The order failed with
    "timed out after 3.5 s waiting for the LIGHT frame", naming neither the camera nor how
    long after the exposure's end; now the message names the camera as its errors do, and
    the Readout Timeout waited past the end of the exposure."""
    telescope = observatory.proxy("telescope")
    ccd = driver_pid(indi_server, "camera")
    telescope.front_desk({"ID": "no-frame-1", "WOType": "Observation", "Filter": "Blue",
                          "Exposure Time": EXPOSURE, "Number of Exposures": 1,
                          "User": "test", "RA": RA, "Dec": DEC})
    wait_until(lambda: telescope.front_desk({"WOType": "Status"})["Devices"]["Camera"].get(
        "Exposing"), "the exposure")
    with stopped(ccd):
        result = ended(telescope, "no-frame-1", "failed")
    assert result["Message"] == (
        "exposing 1/1: camera (INDI device 'CCD Simulator' at 127.0.0.1:7624): no image came "
        f"in the {READOUT_TIMEOUT:g} s after the end of the {EXPOSURE:g} s LIGHT exposure "
        "(Telescope → Readout Timeout)")


def test_a_slew_aborted_by_another_client_is_made_again(observatory, indi_server):
    """Another client aborts the slew (TELESCOPE_ABORT_MOTION): the mount stops short, its
    coordinates no longer Busy. The order ended done with a frame of wherever the mount
    stopped; now the mount is sent to the target again, and the frame is of the target."""
    telescope = observatory.proxy("telescope")
    ra, dec = sky_position(ABORTED_SLEW_ALTITUDE, ABORTED_SLEW_AZIMUTH)
    telescope.front_desk({"ID": "aborted-1", "WOType": "Observation", "Filter": "Blue",
                          "Exposure Time": 0.1, "Number of Exposures": 1, "User": "test",
                          "RA": ra, "Dec": dec})
    wait_until(lambda: telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"].get(
        "Slewing"), "the slew")
    indi_server.set("mount", "TELESCOPE_ABORT_MOTION", ABORT="On")
    result = ended(telescope, "aborted-1", "done")
    [path] = result["Progress"]["Files"]
    with fits.open(path) as hdus:
        header = hdus[0].header
    assert separation(header["RA"], header["DEC"], ra, dec) <= ON_TARGET
    assert "the second slew reached the target" in observatory.log("telescope")
