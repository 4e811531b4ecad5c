"""The LX200 simulator checked by an independent client: INDI's ``indi_lx200basic`` driver.

``indiserver`` runs the driver and listens on every interface, so both it and the simulator run
in a private network namespace (:mod:`helpers_netns`). The INDI command-line clients
(``indi_setprop``, ``indi_getprop``) point the driver at the simulator over TCP, connect it, read
the coordinates it reads, and send it a goto; the simulator's own answers (read on a socket of
the test's own) must agree. That shows the simulator speaks an LX200 that INDI understands,
quirks included (low precision at first, :U#, bare 0/1 replies, ``:MS#``'s ``0``).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from lx200_simulator import SimulatorProcess, local_sidereal_degrees

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers_netns import network_namespace  # noqa: E402

DEVICE = "LX200 Basic"
DRIVER = "indi_lx200basic"
INDI_PORT = "7624"
#: Real seconds for one INDI command-line client, and for a state to be reached.
CLIENT_TIMEOUT = 10
PATIENCE = 20
#: Seconds indi_getprop waits for the server's answer.
GETPROP_WAIT = "1"
#: Hours and degrees: INDI's property shows the mount's HH:MM:SS and sDD*MM:SS.
RA_TOLERANCE = 2 / 3600
DEC_TOLERANCE = 2 / 3600
#: Goto target, JNow: an hour east of the meridian at Dec +40°, well up at latitude +26°.
HOUR_ANGLE_OF_TARGET = -1.0
DEC_OF_TARGET = 40.0
#: Degrees per second the simulator slews at.
SLEW_RATE = "60"
#: The simulated site's longitude, degrees east.
LONGITUDE = -97.5690
DEGREES_PER_HOUR = 15.0

pytestmark = pytest.mark.skipif(shutil.which("indiserver") is None
                                or shutil.which(DRIVER) is None,
                                reason="INDI (Debian's indi-bin) is not installed")


def indi(*arguments, check=True):
    """Run an INDI command-line client; its output ("" when it failed and *check* is false)."""
    result = subprocess.run(list(arguments), capture_output=True, text=True,
                            timeout=CLIENT_TIMEOUT)
    if check:
        assert result.returncode == 0, f"{arguments}: {result.stderr}"
    return result.stdout if result.returncode == 0 else ""


def get_properties(pattern, check=True):
    """``{"DEVICE.PROPERTY.ELEMENT": "value"}`` for what indi_getprop lists."""
    listing = indi("indi_getprop", "-p", INDI_PORT, "-t", GETPROP_WAIT, pattern, check=check)
    return dict(line.split("=", 1) for line in listing.splitlines() if "=" in line)


def set_property(assignment):
    indi("indi_setprop", "-p", INDI_PORT, f"{DEVICE}.{assignment}")


def wait_until(predicate, what):
    deadline = time.monotonic() + PATIENCE
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"gave up after {PATIENCE} s waiting for {what}; last: {last!r}")


def sexagesimal(text):
    sign = -1 if text.startswith("-") else 1
    parts = text.lstrip("+-").replace("*", ":").split(":")
    return sign * sum(float(part) / 60 ** index for index, part in enumerate(parts))


def simulator_position(port):
    """The simulator's ``(ra hours, dec degrees)`` from ``:GR#``/``:GD#`` on our own socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as connection:
        answers = []
        for command in (b":GR#", b":GD#"):
            connection.sendall(command)
            received = b""
            while not received.endswith(b"#"):
                received += connection.recv(64)
            answers.append(sexagesimal(received[:-1].decode("latin-1")))
    return tuple(answers)


@pytest.fixture
def indi_and_simulator():
    """The simulator and indiserver running indi_lx200basic, in a private network namespace."""
    with network_namespace():
        simulator = SimulatorProcess("meade", "--slew-rate", SLEW_RATE,
                                     "--longitude", str(LONGITUDE))
        server = subprocess.Popen(["indiserver", "-p", INDI_PORT, DRIVER],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: f"{DEVICE}.CONNECTION_MODE.CONNECTION_TCP" in
                       get_properties(f"{DEVICE}.CONNECTION_MODE.*", check=False),
                       "indiserver and the INDI driver to start")
            yield simulator
        finally:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
            simulator.stop()


def test_indi_reads_the_simulators_coordinates_and_its_goto_moves_the_simulator(
        indi_and_simulator):
    simulator = indi_and_simulator
    # Tracking (Meade: polar mode, no answer), the simulator's coordinates hold still while
    # INDI and the test read them at different moments.
    with socket.create_connection(("127.0.0.1", simulator.port), timeout=CLIENT_TIMEOUT) as raw:
        raw.sendall(b":AP#")
    set_property("CONNECTION_MODE.CONNECTION_TCP=On")
    set_property(f"DEVICE_ADDRESS.ADDRESS;PORT=127.0.0.1;{simulator.port}")
    set_property("CONNECTION.CONNECT=On")
    wait_until(lambda: get_properties(f"{DEVICE}.CONNECTION.CONNECT").get(
        f"{DEVICE}.CONNECTION.CONNECT") == "On", "INDI to connect to the simulator")

    # INDI reads what the simulator says.
    def coordinates_agree():
        found = get_properties(f"{DEVICE}.EQUATORIAL_EOD_COORD.*")
        indi_ra = float(found[f"{DEVICE}.EQUATORIAL_EOD_COORD.RA"])
        indi_dec = float(found[f"{DEVICE}.EQUATORIAL_EOD_COORD.DEC"])
        ra, dec = simulator_position(simulator.port)
        return abs(indi_ra - ra) < RA_TOLERANCE and abs(indi_dec - dec) < DEC_TOLERANCE
    wait_until(coordinates_agree, "INDI's coordinates to be the simulator's")
    # INDI switched the simulator to high precision (it answered HH:MM.T at first).
    with socket.create_connection(("127.0.0.1", simulator.port), timeout=CLIENT_TIMEOUT) as raw:
        raw.sendall(b":GR#")
        assert len(raw.recv(64)) == len(b"HH:MM:SS#")

    sidereal_time = local_sidereal_degrees(LONGITUDE) / DEGREES_PER_HOUR
    target_ra = (sidereal_time + HOUR_ANGLE_OF_TARGET) % 24
    set_property("ON_COORD_SET.TRACK=On")
    set_property(f"EQUATORIAL_EOD_COORD.RA;DEC={target_ra:.6f};{DEC_OF_TARGET:.6f}")

    def arrived():
        ra, dec = simulator_position(simulator.port)
        return abs((ra - target_ra + 12) % 24 - 12) < RA_TOLERANCE and \
            abs(dec - DEC_OF_TARGET) < DEC_TOLERANCE
    wait_until(arrived, "the simulator to reach INDI's goto target")
    # It tracks there, and INDI reports the goto done (its property back to Ok: "Tracking").
    wait_until(lambda: abs(float(get_properties(f"{DEVICE}.EQUATORIAL_EOD_COORD.DEC")[
        f"{DEVICE}.EQUATORIAL_EOD_COORD.DEC"]) - DEC_OF_TARGET) < DEC_TOLERANCE,
        "INDI to read the new position")
    assert arrived()
