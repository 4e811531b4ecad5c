"""The telescope daemon when its mount misbehaves: an LX200 (OnStep) mount, the simulator of
tests/devices over TCP, stopped by another client, killed and started again on its port.

Each test runs the dome, telescope and scheduler daemons as processes on a simulated clock
(:data:`SPEED` times real time, which the simulator follows too), the simulator slewing slowly
enough (:data:`SLEW_RATE`) for a test to act during a slew. Everything is stopped by its PID.
"""

import os
import re
import socket
import sys
import threading
import time
from datetime import datetime, timezone

import pytest
from astropy.io import fits

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "devices"))

from conftest import EVENING  # noqa: E402
from lx200_simulator import SimulatorProcess  # noqa: E402
from observatory import ended, open_dome, settings, status, step, wait_until  # noqa: E402
from torosmanager.clock import Clock  # noqa: E402

TARGET = {"RA": 30.0, "Dec": 85.0}
#: Simulated seconds per real second.
SPEED = 100
#: Degrees per simulated second the simulator slews at: the slew from the celestial equator to
#: Dec +85° takes 170 simulated seconds, 1.7 real seconds: time to stop it half-way.
SLEW_RATE = 0.5
#: Simulated seconds a slew may take (18 real seconds): ample for a slew on each axis.
SLEW_TIMEOUT = 1800
#: Degrees of declination the mount passes before the test stops it: well short of the target.
STOP_AT_DEC = 20
#: Simulated seconds of the orders' exposure.
EXPOSURE = 1.0
#: Degrees within which a frame is where the order asked (the default Pointing Tolerance).
ON_TARGET = 0.1
#: Real seconds between two polls of the simulator by the test's own client.
CLIENT_POLL = 0.01
#: Real seconds the test's own client waits for one reply.
CLIENT_TIMEOUT = 5.0
SITE_OPTIONS = ("--latitude", "25.9958", "--longitude", "-97.5690")


@pytest.fixture
def clock():
    """The daemons' clock: the simulated evening, anchored now."""
    return Clock(EVENING, datetime.now(timezone.utc), SPEED)


class Simulators:
    """The LX200 simulator, started again on the same port after it was killed."""

    def __init__(self, clock):
        self.clock = clock
        self.current = SimulatorProcess("onstep", "--slew-rate", str(SLEW_RATE), *SITE_OPTIONS,
                                        clock=clock)
        self.port, self.url = self.current.port, self.current.url

    def kill(self):
        """Kill the simulator (by its PID): the mount stops answering, its port is closed."""
        self.current.stop()

    def restart(self):
        """A new simulator on the same port: a mount switched off and on (unparked, at the
        celestial equator, not tracking)."""
        self.current = SimulatorProcess("onstep", "--slew-rate", str(SLEW_RATE), *SITE_OPTIONS,
                                        "--port", str(self.port), clock=self.clock)

    def stop(self):
        self.current.stop()


@pytest.fixture
def simulators(clock):
    started = Simulators(clock)
    yield started
    started.stop()


def make_observatory(clock, simulators, make_site, **telescope):
    mount = {"Driver": "lx200", "URL": simulators.url, "Dialect": "onstep", "Timeout": 2.0}
    clock_settings = {"Mode": "simulated", "Start": clock.start.isoformat(),
                      "Anchor": clock.anchor.isoformat(), "Speed": clock.speed}
    site = make_site(settings(Clock=clock_settings,
                              Telescope={"Mount": mount, "Slew Timeout": SLEW_TIMEOUT,
                                         **telescope}))
    site.start("dome", "telescope", "scheduler")
    open_dome(site)
    return site


@pytest.fixture
def observatory(clock, simulators, make_site):
    return make_observatory(clock, simulators, make_site)


class OtherClient:
    """Another client of the mount (a hand pad, a planetarium program) on its own connection:
    it reads the declination, and stops the slew with ``:Q#``."""

    def __init__(self, port):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)

    def declination(self):
        """Degrees, from ``:GD#`` (``sDD*MM`` or ``sDD*MM:SS``)."""
        self.socket.sendall(b":GD#")
        reply = b""
        while not reply.endswith(b"#"):
            reply += self.socket.recv(64)
        sign, degrees, minutes = re.match(r"([+-])(\d+)\*(\d+)", reply.decode("latin-1")).groups()
        return (int(degrees) + int(minutes) / 60) * (-1 if sign == "-" else 1)

    def stop_the_slew(self):
        self.socket.sendall(b":Q#")

    def close(self):
        self.socket.close()


def observe(site, order_id):
    telescope = site.proxy("telescope")
    telescope.front_desk({"ID": order_id, "WOType": "Observation", "Filter": "V",
                          "Exposure Time": EXPOSURE, "Number of Exposures": 1, "User": "test",
                          **TARGET})
    return telescope


def observe_until_slewing(site, simulators, order_id, stop=False):
    """Send *order_id* and wait until its slew is under way, seen by another client (which
    stops it there, with *stop*)."""
    other = OtherClient(simulators.port)
    try:
        telescope = observe(site, order_id)
        wait_until(lambda: other.declination() > STOP_AT_DEC, "the slew to be under way")
        if stop:
            other.stop_the_slew()
    finally:
        other.close()
    return telescope


def frame_position(path):
    with fits.open(path) as hdus:
        return hdus[0].header["RA"], hdus[0].header["DEC"]


def test_a_slew_stopped_short_by_another_client_is_made_again(observatory, simulators):
    """Another client stops the slew half-way (``:Q#``): the mount stops far from the target,
    not slewing. The daemon took that for arrival, and the order ended done with a frame of
    the wrong field (Dec ~20° for a target at +85°). Now it compares where the mount is with
    the target, slews again, and the frame is of the target."""
    telescope = observe_until_slewing(observatory, simulators, "short-1", stop=True)
    result = ended(telescope, "short-1", "done")
    [path] = result["Progress"]["Files"]
    ra, dec = frame_position(path)
    assert dec == pytest.approx(TARGET["Dec"], abs=ON_TARGET)
    log = observatory.log("telescope")
    assert re.search(r"the slew ended [\d.]+° from the target RA 30\.0000° Dec \+85\.0000°, "
                     r"beyond Telescope → Pointing Tolerance \(0\.1°\)", log)
    assert "the second slew reached the target" in log


def test_a_slew_stopped_short_twice_fails_the_order_saying_where_the_mount_is(observatory,
                                                                            simulators):
    """Another client stops every slew: the slew made again stops short too. The order fails
    (it was done, with frames of the wrong field), its message naming how far the mount is,
    the target and where the mount is; no frame is taken."""
    other = OtherClient(simulators.port)
    stopping = threading.Event()

    def stop_every_slew():
        while not stopping.is_set():
            other.stop_the_slew()
            time.sleep(CLIENT_POLL)

    stopper = threading.Thread(target=stop_every_slew, daemon=True)
    stopper.start()
    try:
        telescope = observe(observatory, "short-2")
        result = ended(telescope, "short-2", "failed")
    finally:
        stopping.set()
        stopper.join()
        other.close()
    assert re.fullmatch(
        r"slewing again to RA 30\.0000° Dec \+85\.0000°: the slew ended [\d.]+° away: mount "
        r"\(LX200 onstep at socket://127\.0\.0\.1:\d+\): the slew ended [\d.]+° from the target "
        r"RA 30\.0000° Dec \+85\.0000° twice \(Telescope → Pointing Tolerance 0\.1°\): the "
        r"mount is at RA [\d.]+° Dec [+-][\d.]+° \(ICRS\)", result["Message"]), result["Message"]
    assert result["Progress"]["Files"] == []


def test_a_mount_gone_during_the_slew_and_back_within_the_grace_is_waited_for(
        clock, simulators, make_site):
    """The mount stops answering during the slew (its server restarting) and answers again
    within ``Telescope → Device Error Grace``: one failed reading failed the whole order at
    once. Now the wait asks again at each poll, and the order goes on: the mount, switched
    off and on, is no longer slewing to the target, so it is sent there again."""
    site = make_observatory(clock, simulators, make_site, **{"Device Error Grace": 3000})
    telescope = observe_until_slewing(site, simulators, "grace-1")
    simulators.kill()
    wait_until(lambda: "waiting for the mount to finish its slew: mount (LX200" in
               site.log("telescope"), "the daemon to find the mount gone")
    simulators.restart()
    result = ended(telescope, "grace-1", "done")
    [path] = result["Progress"]["Files"]
    assert frame_position(path)[1] == pytest.approx(TARGET["Dec"], abs=ON_TARGET)
    assert "the device answers again after" in site.log("telescope")


def test_a_mount_gone_longer_than_the_grace_fails_the_order_and_is_parked_once_back(
        clock, simulators, make_site):
    """The mount stops answering during the slew for longer than the grace: the order fails
    naming the last error and how long the errors lasted. The mount could not be parked then,
    and was never tried again: it stayed pointed at the sky. Now the park stays pending (said
    in the health Status, Executor → Park Pending), tried every Park Retry Interval, and the
    mount parks once it answers again."""
    site = make_observatory(clock, simulators, make_site,
                            **{"Device Error Grace": 100, "Park Retry Interval": 100})
    telescope = observe_until_slewing(site, simulators, "gone-1")
    simulators.kill()
    result = ended(telescope, "gone-1", "failed")
    assert re.fullmatch(r"slewing to RA 30\.0000° Dec \+85\.0000°: mount \(LX200 onstep at "
                        r"socket://127\.0\.0\.1:\d+\): .+ \(failing for [\d.]+ s while waiting "
                        r"for the mount to finish its slew\)", result["Message"]), \
        result["Message"]

    def executor():
        return telescope.front_desk({"WOType": "Status"})["Devices"]["Executor"]

    pending = wait_until(lambda: executor().get("Park Pending"), "the park to be pending")
    assert pending.startswith("the observation failed (last try: mount (LX200 onstep")
    simulators.restart()
    wait_until(lambda: telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"].get(
        "Parked"), "the mount to be parked once it answers")
    assert "Park Pending" not in executor()
    assert "the pending park (the observation failed) is over: the mount parks" in \
        site.log("telescope")


def test_an_order_failing_on_an_unreachable_mount_names_the_step_that_read_it(
        observatory, simulators):
    """The mount does not answer when an order starts: the order failed as "checking the
    dome: mount (...) reading the right ascension failed", the step named being the one
    before. Now each device step is journaled before it, and the message names it."""
    simulators.kill()
    telescope = observe(observatory, "unreachable-1")
    result = ended(telescope, "unreachable-1", "failed")
    assert result["Message"].startswith("reading the mount: mount (LX200 onstep at "), \
        result["Message"]
    assert step(telescope, "unreachable-1") == "reading the mount"
    assert status(telescope, "unreachable-1")["Progress"]["Files"] == []
