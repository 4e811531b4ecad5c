"""A real INDI server for the ``indi`` driver's tests: Debian's ``indiserver`` and simulators.

``indiserver`` listens on every interface and cannot be told otherwise, so each server runs in a
private network namespace holding only ``lo`` (tests/helpers_netns.py): the fixture moves the
test's thread into it, starts the server there, and everything the test starts afterwards (the
driver's client thread, the daemons) is born inside it too.

The simulators are set up for fast tests: a 640 × 512 CCD binned 4 × 4, the weather refreshed
every second, the telescope at the TOROS test site with its park position where the tests point.
They are set with ``indi_setprop`` and read with ``indi_getprop``, INDI's own command-line
clients. The server gets a home directory of its own (the drivers keep their configuration in
``$HOME/.indi``).

Fixtures (import them into a test module):

``indi_server``
    module-scoped: a network namespace and a server with the six simulators, connected and set
    up; stopped by its PID at the end of the module.
``make_device``
    per test: builds drivers of the server's devices, connects them, and disconnects them at the
    end.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import astropy.units as u
import pytest
from astropy.coordinates import TETE, AltAz, EarthLocation, SkyCoord
from astropy.time import Time

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

from helpers_netns import network_namespace  # noqa: E402

#: Where the server listens inside the namespace (INDI's standard port: nothing else is there).
HOST = "127.0.0.1"
PORT = 7624
#: Seconds the server may take to accept connections, and its drivers to define their devices.
STARTUP_TIMEOUT = 15.0
#: Seconds between readiness checks while it starts.
STARTUP_POLL_INTERVAL = 0.05
#: Seconds it may take to exit after SIGTERM before it is killed, and after SIGKILL.
STOP_TIMEOUT = 5.0
#: Seconds INDI's command-line clients may take for one call (their own -t, then ours).
TOOL_TIMEOUT = 3
TOOL_DEADLINE = 10.0
#: The ``Timeout`` the drivers get in these tests (seconds per request).
DEVICE_TIMEOUT = 5.0
#: Lines of the server's log quoted when it fails.
LOG_TAIL_LINES = 30

#: The simulators, by the TOROS device kind each plays, and their INDI device names.
DRIVERS = {
    "mount": ("indi_simulator_telescope", "Telescope Simulator"),
    "camera": ("indi_simulator_ccd", "CCD Simulator"),
    "filter wheel": ("indi_simulator_wheel", "Filter Simulator"),
    "dome": ("indi_simulator_dome", "Dome Simulator"),
    "safety monitor": ("indi_simulator_weather", "Weather Simulator"),
    "focuser": ("indi_simulator_focus", "Focuser Simulator"),
}
DEVICES = {kind: device for kind, (_, device) in DRIVERS.items()}

#: The site of the tests (the CTMO defaults), both for the drivers and the simulated telescope.
SITE = {"Name": "CTMO", "Latitude": 25.9958, "Longitude": -97.5690, "Elevation": 12.0}

#: The simulated CCD: a small sensor (the simulator refuses fewer than 512 pixels a side),
#: non-square so that a transposition shows, binned 4 × 4 so that frames are small and fast.
SENSOR_WIDTH = 640
SENSOR_HEIGHT = 512
CAMERA_BINNING = 4
CAMERA_WIDTH = SENSOR_WIDTH // CAMERA_BINNING
CAMERA_HEIGHT = SENSOR_HEIGHT // CAMERA_BINNING
#: Where the tests point: always between 21° and 31° above the test site, whatever the time.
TARGET = (30.0, 85.0)

#: The simulated filter wheel's filters (the simulator's own).
FILTER_NAMES = ["Red", "Green", "Blue", "H_Alpha", "SII", "OIII", "LPR", "Luminance"]
#: The simulated focuser's range and where it starts (the simulator's own: half-way).
FOCUSER_MAXIMUM = 100000
FOCUSER_START = FOCUSER_MAXIMUM // 2
#: Seconds between the weather simulator's updates (its default is a minute).
WEATHER_PERIOD = 1


class ServerError(Exception):
    """The server could not be started; the message quotes its log."""


class IndiServer:
    """``indiserver`` with the simulators, in its own process group, in the current namespace.

    Parameters
    ----------
    directory : pathlib.Path
        Holds its log.
    kinds : iterable of str
        Which simulators to run (keys of :data:`DRIVERS`).
    port : int
        Where it listens.
    drivers : iterable of str
        Other drivers to run (executables), whose devices the test waits for itself.
    """

    def __init__(self, directory, kinds=tuple(DRIVERS), port=PORT, drivers=()):
        self.directory = directory
        self.kinds = tuple(kinds)
        self.port = port
        self.drivers = tuple(drivers)
        self.log_path = directory / f"indiserver-{port}.log"
        self.process = None

    def start(self):
        """Start the server and wait until it accepts connections and every device is defined."""
        if shutil.which("indiserver") is None:
            pytest.skip("indiserver is not installed (apt-get install indi-bin)")
        # Its local socket is abstract, so per namespace: one per port lets two servers coexist.
        command = ["indiserver", "-v", "-p", str(self.port), "-u", f"/tmp/indiserver-{self.port}"]
        command += [DRIVERS[kind][0] for kind in self.kinds] + list(self.drivers)
        # The drivers keep their configuration in $HOME/.indi and load it when connected: a home
        # of the test's own makes every run start from the drivers' defaults, and leaves no trace.
        environment = dict(os.environ, HOME=str(self.directory))
        with open(self.log_path, "ab") as log:
            # A session of its own: the drivers it spawns share its process group, stopped with it.
            self.process = subprocess.Popen(command, cwd=self.directory, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, env=environment)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._accepts_connections():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"{' '.join(command)} did not start; its log:\n"
                                  f"{self.log_tail()}")
            time.sleep(STARTUP_POLL_INTERVAL)
        for kind in self.kinds:
            while not self.get(kind, "CONNECTION", "CONNECT"):
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerError(f"{DEVICES[kind]} was not defined within "
                                      f"{STARTUP_TIMEOUT:g} s; the log:\n{self.log_tail()}")
                time.sleep(STARTUP_POLL_INTERVAL)
        return self

    def _accepts_connections(self):
        try:
            with socket.create_connection((HOST, self.port), timeout=STARTUP_POLL_INTERVAL * 10):
                return True
        except OSError:
            return False

    def stop(self):
        """Stop the server and its drivers by its PID (its process group): SIGTERM, then SIGKILL."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # drivers that outlived the server

    @contextlib.contextmanager
    def paused(self):
        """While inside, the server is stopped (SIGSTOP): it accepts but never answers."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def log_tail(self):
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    # --- INDI's own command-line clients ----------------------------------------------------

    def _tool(self, *arguments):
        return subprocess.run([arguments[0], "-h", HOST, "-p", str(self.port),
                               "-t", str(TOOL_TIMEOUT), *arguments[1:]],
                              capture_output=True, text=True, timeout=TOOL_DEADLINE, check=False)

    def get(self, kind, prop, member):
        """A value as ``indi_getprop`` reads it ("" when the server does not have it)."""
        done = self._tool("indi_getprop", "-1", f"{DEVICES[kind]}.{prop}.{member}")
        return done.stdout.strip() if done.returncode == 0 else ""

    def set(self, kind, prop, **members):
        """Set members of a property with ``indi_setprop`` (all at once, as INDI wants)."""
        names = ";".join(members)
        values = ";".join(str(value) for value in members.values())
        done = self._tool("indi_setprop", f"{DEVICES[kind]}.{prop}.{names}={values}")
        assert done.returncode == 0, f"indi_setprop {prop} {members}: {done.stderr}"

    def wait_for(self, kind, prop, member, value=None, timeout=STARTUP_TIMEOUT):
        """Wait until ``indi_getprop`` reads *value* (any value when ``None``)."""
        deadline = time.monotonic() + timeout
        while (last := self.get(kind, prop, member)) != value and not (value is None and last):
            assert time.monotonic() < deadline, (f"{DEVICES[kind]}.{prop}.{member} is {last!r}, "
                                                 f"not {value!r}, after {timeout:g} s")
            time.sleep(STARTUP_POLL_INTERVAL)

    def prepare(self):
        """Connect the simulators and set them up for fast tests at the test site."""
        if "camera" in self.kinds:
            # Read by the CCD simulator when it connects.
            self.set("camera", "SIMULATOR_SETTINGS", SIM_XRES=SENSOR_WIDTH, SIM_YRES=SENSOR_HEIGHT)
        for kind in self.kinds:
            self.set(kind, "CONNECTION", CONNECT="On")
        for kind in self.kinds:
            self.wait_for(kind, "CONNECTION", "CONNECT", "On")
        if "camera" in self.kinds:
            self.wait_for("camera", "CCD_BINNING", "HOR_BIN")
            self.set("camera", "CCD_BINNING", HOR_BIN=CAMERA_BINNING, VER_BIN=CAMERA_BINNING)
        if "mount" in self.kinds:
            self.wait_for("mount", "GEOGRAPHIC_COORD", "LAT")
            self.set("mount", "GEOGRAPHIC_COORD", LAT=SITE["Latitude"],
                     LONG=SITE["Longitude"] % 360, ELEV=SITE["Elevation"])
            # Park where the tests point, so that parking takes a moment, not a long slew.
            self.set("mount", "TELESCOPE_PARK_POSITION", PARK_HA=hour_angle(*TARGET),
                     PARK_DEC=TARGET[1])
        if "safety monitor" in self.kinds:
            self.wait_for("safety monitor", "WEATHER_UPDATE", "PERIOD")
            self.set("safety monitor", "WEATHER_UPDATE", PERIOD=WEATHER_PERIOD)
        return self

    def settings(self, kind, timeout=DEVICE_TIMEOUT, **changes):
        """A device's settings as the configuration gives them to the drivers."""
        return {"Driver": "indi", "Host": HOST, "Port": self.port, "Device": DEVICES[kind],
                "Properties": {}, "Timeout": timeout, **changes}


@pytest.fixture(scope="module")
def indi_server(tmp_path_factory):
    """A private network namespace with the simulators' server in it, for a test module."""
    with network_namespace():
        server = IndiServer(tmp_path_factory.mktemp("indi"))
        try:
            server.start().prepare()
        except ServerError as error:
            server.stop()
            pytest.fail(str(error), pytrace=False)
        try:
            yield server
        finally:
            server.stop()


def unused_port():
    """A port of 127.0.0.1 (in the current namespace) that nothing listens on."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@pytest.fixture
def make_device(indi_server):
    """A factory of connected drivers of the server's devices, disconnected at the end.

    ``make(factory, kind, connect=True, **setting_changes)``, *factory* taking the settings.
    """
    made = []

    def make(factory, kind, connect=True, **changes):
        device = factory(indi_server.settings(kind, **changes))
        made.append(device)
        if connect:
            device.connect()
        return device

    yield make
    for device in made:
        device.disconnect()


def _location():
    return EarthLocation.from_geodetic(lon=SITE["Longitude"] * u.deg,
                                       lat=SITE["Latitude"] * u.deg,
                                       height=SITE["Elevation"] * u.m)


def sky_position(altitude, azimuth):
    """ICRS ``(ra, dec)`` degrees of the point at *altitude*, *azimuth* above the test site now."""
    where = SkyCoord(alt=altitude * u.deg, az=azimuth * u.deg,
                     frame=AltAz(obstime=Time.now(), location=_location())).icrs
    return float(where.ra.deg), float(where.dec.deg)


def hour_angle(ra, dec):
    """Hours: the hour angle of ICRS *ra*, *dec* (degrees) at the test site now, of date."""
    now = Time.now()
    of_date = SkyCoord(ra * u.deg, dec * u.deg).transform_to(TETE(obstime=now,
                                                                  location=_location()))
    sidereal = now.sidereal_time("apparent", longitude=SITE["Longitude"] * u.deg)
    return float((sidereal - of_date.ra).wrap_at(12 * u.hourangle).hour)
