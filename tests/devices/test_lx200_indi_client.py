"""The LX200 simulator checked by independent clients: INDI's ``indi_lx200basic`` (Meade) and
``indi_lx200_OnStep`` (OnStep) drivers.

``indiserver`` runs the driver and listens on every interface, so both it and the simulator run
in a private network namespace (:mod:`helpers_netns`). The INDI command-line clients
(``indi_setprop``, ``indi_getprop``) point the driver at the simulator over TCP, connect it, read
the coordinates it reads, and send it a goto; the simulator's own answers (read on a socket of
the test's own) must agree. That shows the simulator speaks an LX200 that INDI understands,
quirks included (low precision at first, :U#, bare 0/1 replies, ``:MS#``'s ``0``). The OnStep
driver asks much more than the Meade one (firmware, site, date and time, status letters,
alignment, ambient conditions...): it must connect without a timeout, and read the date and
time of the simulator's clock, here a simulated one.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from lx200_simulator import SimulatorProcess, local_sidereal_degrees

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers_netns import network_namespace  # noqa: E402
from torosmanager.clock import Clock  # noqa: E402


@dataclass(frozen=True)
class IndiClient:
    """An INDI LX200 driver, and how the test drives the simulator for it."""

    driver: str
    device: str
    dialect: str
    #: The command that makes the simulator track, and the length of its reply.
    track: bytes
    track_reply_length: int
    #: Where the simulator's clock starts (``None``: real time).
    clock_start: datetime = None


MEADE = IndiClient("indi_lx200basic", "LX200 Basic", "meade", b":AP#", 0)
#: OnStep refuses a goto in standby (``3``), and INDI's driver does not start tracking first.
ONSTEP = IndiClient("indi_lx200_OnStep", "LX200 OnStep", "onstep", b":Te#", 1,
                    datetime(2031, 6, 15, 3, 0, tzinfo=timezone.utc))
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
#: Real seconds the mount's time read by INDI at connect may lag the test's reading of it.
TIME_TOLERANCE = 60


def installed(client):
    return shutil.which("indiserver") is not None and shutil.which(client.driver) is not None


def each_client(*clients):
    """Parametrize over *clients*, skipping (with the reason) those INDI does not have here."""
    return pytest.mark.parametrize("indi_and_simulator", [
        pytest.param(client, id=client.driver, marks=pytest.mark.skipif(
            not installed(client), reason=f"INDI (Debian's indi-bin, {client.driver}) is not "
                                          "installed"))
        for client in clients], indirect=True)


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


def listed(pattern, element):
    """What indi_getprop lists for *pattern* if it holds *element* (with a value), else ``{}``:
    a driver busy with its mount may not answer within indi_getprop's wait."""
    found = get_properties(pattern, check=False)
    return found if found.get(element) else {}


def set_property(device, assignment):
    indi("indi_setprop", "-p", INDI_PORT, f"{device}.{assignment}")


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


def raw_request(port, command, reply_length):
    """Send *command* to the simulator on a socket of our own; read *reply_length* bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as connection:
        connection.sendall(command)
        received = b""
        while len(received) < reply_length:
            received += connection.recv(reply_length - len(received))
        return received


class Rig:
    """The simulator, on its clock, and indiserver running an INDI LX200 driver."""

    def __init__(self, client, home):
        self.client = client
        self.clock = Clock() if client.clock_start is None else \
            Clock(client.clock_start, datetime.now(timezone.utc))
        self.simulator = SimulatorProcess(client.dialect, "--slew-rate", SLEW_RATE,
                                          "--longitude", str(LONGITUDE), clock=self.clock)
        # INDI drivers keep their configuration (and park data) under $HOME/.indi.
        self.server = subprocess.Popen(["indiserver", "-p", INDI_PORT, client.driver],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       env={**os.environ, "HOME": str(home)})

    def stop(self):
        os.kill(self.server.pid, signal.SIGKILL)
        self.server.wait()
        self.simulator.stop()


@pytest.fixture
def indi_and_simulator(request, tmp_path):
    """A :class:`Rig` for the INDI client the test is parametrized with, in a private network
    namespace, its driver loaded."""
    client = request.param
    with network_namespace():
        rig = Rig(client, tmp_path)
        try:
            mode = f"{client.device}.CONNECTION_MODE.CONNECTION_TCP"
            wait_until(lambda: mode in get_properties(f"{client.device}.CONNECTION_MODE.*",
                                                      check=False),
                       "indiserver and the INDI driver to start")
            yield rig
        finally:
            rig.stop()


@each_client(MEADE, ONSTEP)
def test_indi_reads_the_simulators_coordinates_and_its_goto_moves_the_simulator(
        indi_and_simulator):
    rig = indi_and_simulator
    client, port, device = rig.client, rig.simulator.port, rig.client.device
    # Tracking, the simulator's coordinates hold still while INDI and the test read them at
    # different moments.
    assert raw_request(port, client.track, client.track_reply_length) == \
        b"1"[:client.track_reply_length]
    set_property(device, "CONNECTION_MODE.CONNECTION_TCP=On")
    set_property(device, f"DEVICE_ADDRESS.ADDRESS;PORT=127.0.0.1;{port}")
    set_property(device, "CONNECTION.CONNECT=On")
    # While it connects, a driver may be too busy to answer indi_getprop within its wait.
    wait_until(lambda: get_properties(f"{device}.CONNECTION.CONNECT", check=False).get(
        f"{device}.CONNECTION.CONNECT") == "On", "INDI to connect to the simulator")

    # INDI reads what the simulator says.
    def coordinates_agree():
        found = get_properties(f"{device}.EQUATORIAL_EOD_COORD.*", check=False)
        if f"{device}.EQUATORIAL_EOD_COORD.DEC" not in found:
            return False
        indi_ra = float(found[f"{device}.EQUATORIAL_EOD_COORD.RA"])
        indi_dec = float(found[f"{device}.EQUATORIAL_EOD_COORD.DEC"])
        ra, dec = simulator_position(port)
        return abs(indi_ra - ra) < RA_TOLERANCE and abs(indi_dec - dec) < DEC_TOLERANCE
    wait_until(coordinates_agree, "INDI's coordinates to be the simulator's")
    # INDI switched the simulator to high precision (it answered HH:MM.T at first).
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as raw:
        raw.sendall(b":GR#")
        assert len(raw.recv(64)) == len(b"HH:MM:SS#")

    sidereal_time = local_sidereal_degrees(LONGITUDE, rig.clock.now().timestamp()) \
        / DEGREES_PER_HOUR
    target_ra = (sidereal_time + HOUR_ANGLE_OF_TARGET) % 24
    set_property(device, "ON_COORD_SET.TRACK=On")
    set_property(device, f"EQUATORIAL_EOD_COORD.RA;DEC={target_ra:.6f};{DEC_OF_TARGET:.6f}")

    def arrived():
        ra, dec = simulator_position(port)
        return abs((ra - target_ra + 12) % 24 - 12) < RA_TOLERANCE and \
            abs(dec - DEC_OF_TARGET) < DEC_TOLERANCE
    wait_until(arrived, "the simulator to reach INDI's goto target")
    # It tracks there, and INDI reads the new position.
    indi_dec = f"{device}.EQUATORIAL_EOD_COORD.DEC"
    wait_until(lambda: abs(float(listed(indi_dec, indi_dec).get(indi_dec, "nan")) - DEC_OF_TARGET)
               < DEC_TOLERANCE, "INDI to read the new position")
    assert arrived()


@each_client(ONSTEP)
def test_indi_onstep_reads_the_simulators_site_and_the_date_of_its_clock(indi_and_simulator):
    rig = indi_and_simulator
    device = rig.client.device
    set_property(device, "CONNECTION_MODE.CONNECTION_TCP=On")
    set_property(device, f"DEVICE_ADDRESS.ADDRESS;PORT=127.0.0.1;{rig.simulator.port}")
    set_property(device, "CONNECTION.CONNECT=On")
    utc = f"{device}.TIME_UTC.UTC"
    # INDI's driver reads the mount's date and time (:GC#, :GL#, :GG#) at connect.
    found = wait_until(lambda: listed(f"{device}.TIME_UTC.*", utc), "INDI to read the time")
    read = datetime.fromisoformat(found[utc]).replace(tzinfo=timezone.utc)
    assert abs((rig.clock.now() - read).total_seconds()) < TIME_TOLERANCE
    # ... and the site (:GtH#, :GgH#, LX200 longitudes positive west).
    latitude, longitude = f"{device}.GEOGRAPHIC_COORD.LAT", f"{device}.GEOGRAPHIC_COORD.LONG"
    site = wait_until(lambda: listed(f"{device}.GEOGRAPHIC_COORD.*", latitude), "the site")
    assert float(site[latitude]) == pytest.approx(25.9958, abs=1e-3)
    assert float(site[longitude]) % 360 == pytest.approx(LONGITUDE % 360, abs=1e-3)
    # No command went unanswered (each would have cost INDI a timeout).
    assert "unknown command" not in rig.simulator.stop()
