"""A real third-party ASCOM Alpaca server for the ``alpaca`` driver's tests: ``alpaca-simulators``.

The server runs as its own process, bound to 127.0.0.1 on a free port, with a configuration
written for the tests: a small sensor, a short focal length, two telescopes (J2000 and
topocentric) at the TOROS test site, a second safety monitor without a weather station, focusers
that compensate for temperature, are relative or are on their way, and the camera's star
catalogue (``tap_source``) pointed at a local SQLite file, since there is no network for Gaia.
Tests add stars where they point.

Fixtures (import them into a test module):

``alpaca_server``
    session-scoped: starts the server once, stops it by its PID at the end of the session.
``simulators``
    per test: the same server, reset with ``GET /reload``.

When ``alpaca-simulators`` or ``alpyca`` is not installed the tests are skipped; when the server
is installed but cannot run, they fail with the server's log.
"""

import contextlib
import importlib.resources
import importlib.util
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import astropy.units as u
import numpy as np
import pytest
import requests
import yaml
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time

from torosmanager.earth_rotation import offline_environment
from torosmanager.launcher import LOOPBACK as HOST, free_port

#: Seconds the server may take to answer after it is started (it imports astropy and cabaret).
STARTUP_TIMEOUT = 60.0
#: Seconds between readiness checks while it starts.
STARTUP_POLL_INTERVAL = 0.2
#: Seconds it may take to exit after SIGTERM before it is killed, and after SIGKILL.
STOP_TIMEOUT = 10.0
#: Tries with a new free port, in case another process takes the port first.
START_ATTEMPTS = 3
#: Seconds the test harness waits for one request of its own.
HARNESS_REQUEST_TIMEOUT = 5.0
#: Seconds the harness waits for ``GET /reload``: it rebuilds every device and, on a loaded
#: machine, waits behind requests still in flight from the previous test (5 s was seen to miss).
RELOAD_TIMEOUT = 30.0
#: The ``Timeout`` the drivers get in these tests (seconds per request).
DEVICE_TIMEOUT = 5.0
#: Lines of the server's log quoted when it fails.
LOG_TAIL_LINES = 40

#: The site of the tests (the CTMO defaults), both for the drivers and the simulated telescopes.
SITE = {"Name": "CTMO", "Latitude": 25.9958, "Longitude": -97.5690, "Elevation": 12.0}

#: Telescope device numbers, by the equatorial system they report (ASCOM EquatorialCoordinateType).
J2000_TELESCOPE = 0
TOPOCENTRIC_TELESCOPE = 1
EQUATORIAL_SYSTEMS = {J2000_TELESCOPE: 2, TOPOCENTRIC_TELESCOPE: 1}

#: A safety monitor with no observing conditions device of the same number beside it.
LONE_SAFETY_MONITOR = 1
#: A dome that reports its azimuth but cannot be turned (CanSetAzimuth false), facing south.
FIXED_DOME = 1
#: A camera whose CCD is warm (WARM_CCD °C, the cooler off) and takes COOLING_TIME real
#: seconds to reach a setpoint; one that cannot set its temperature (CanSetCCDTemperature false).
WARM_CAMERA = 1
UNCOOLED_CAMERA = 2
WARM_CCD = 15.0
COOLING_TIME = 3.0

#: The simulated camera: small and non-square, so frames are fast and a transposition shows.
CAMERA_WIDTH = 320
CAMERA_HEIGHT = 240
#: Metres: with 10 µm pixels, 4.1"/pixel, a field of 22' × 16'.
FOCAL_LENGTH = 0.5
#: Degrees per second the simulated telescopes slew (the template's 15 makes a slew last 13 s).
SLEW_RATE = 60.0
#: Seconds the camera may spend querying the catalogue for a light frame.
CATALOGUE_QUERY_TIMEOUT = 10

#: The simulated focuser: its last step, where it starts (the template's: the simulated camera's
#: stars are sharpest there), and what its sensor reads, °C.
FOCUSER_MAXIMUM = 60000
FOCUSER_POSITION = 10000
FOCUSER_TEMPERATURE = 8.5
#: A focuser with its temperature compensation on (TempComp true); a relative one (Absolute
#: false); one that reports IsMoving true until it is told to move (the simulator's moves are
#: instantaneous, so this is how a test sees a focuser on its way).
COMPENSATING_FOCUSER = 1
RELATIVE_FOCUSER = 2
MOVING_FOCUSER = 3

#: The simulated filter wheel's filters and the focus offsets its driver keeps (the
#: template's); a wheel whose offsets are all 0, and one with fewer offsets than filters.
FILTER_NAMES = ["Red", "Green", "Blue", "Clear", "Luminance"]
FOCUS_OFFSETS = [-100, -100, 50, 0, 100]
ZERO_OFFSETS_WHEEL = 1
SHORT_OFFSETS_WHEEL = 2

#: A field of stars added to the catalogue: radius (degrees), count, G magnitudes.
FIELD_RADIUS = 0.3
FIELD_STARS = 300
BRIGHTEST_STAR = 8.0
FAINTEST_STAR = 15.0

#: The table and columns cabaret reads from a SQLite catalogue (cabaret.queries.GaiaSQLiteSource).
CATALOGUE_TABLE = "gaia_sources"
CATALOGUE_COLUMNS = ("ra", "dec", "pmra", "pmdec", "phot_g_mean_mag")


class ServerError(Exception):
    """The server could not be started; the message quotes its log."""


@contextlib.contextmanager
def silent_server():
    """A port that accepts connections and never answers: a hung server. Yields the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, 0))
        # The kernel completes the handshakes into the backlog; nobody ever reads or answers.
        listener.listen(socket.SOMAXCONN)
        yield listener.getsockname()[1]


class Catalogue:
    """The SQLite star catalogue the simulated camera reads (Gaia-like columns, G magnitudes).

    Parameters
    ----------
    path : pathlib.Path
        The file; cabaret recognises a catalogue by its ``.sqlite3`` suffix.
    """

    def __init__(self, path):
        self.path = path
        with contextlib.closing(sqlite3.connect(path)) as database, database:
            database.execute(f"CREATE TABLE {CATALOGUE_TABLE} "
                             f"({', '.join(f'{name} REAL' for name in CATALOGUE_COLUMNS)})")
            database.execute(f"CREATE INDEX {CATALOGUE_TABLE}_dec ON {CATALOGUE_TABLE} (dec)")

    def add_field(self, ra, dec, seed=0):
        """Scatter stars around ICRS *ra*, *dec* (degrees)."""
        rng = np.random.default_rng(seed)
        radius = FIELD_RADIUS * np.sqrt(rng.uniform(0, 1, FIELD_STARS))
        angle = rng.uniform(0, 2 * np.pi, FIELD_STARS)
        star_dec = dec + radius * np.sin(angle)
        star_ra = (ra + radius * np.cos(angle) / np.cos(np.radians(dec))) % 360
        magnitude = rng.uniform(BRIGHTEST_STAR, FAINTEST_STAR, FIELD_STARS)
        rows = [(float(a), float(d), 0.0, 0.0, float(m))
                for a, d, m in zip(star_ra, star_dec, magnitude)]
        with contextlib.closing(sqlite3.connect(self.path)) as database, database:
            database.executemany(f"INSERT INTO {CATALOGUE_TABLE} VALUES (?, ?, ?, ?, ?)", rows)

    @contextlib.contextmanager
    def missing(self):
        """While inside, the catalogue has no star table (light frames fail)."""
        hidden = f"{CATALOGUE_TABLE}_hidden"
        with contextlib.closing(sqlite3.connect(self.path)) as database, database:
            database.execute(f"ALTER TABLE {CATALOGUE_TABLE} RENAME TO {hidden}")
        try:
            yield
        finally:
            with contextlib.closing(sqlite3.connect(self.path)) as database, database:
                database.execute(f"ALTER TABLE {hidden} RENAME TO {CATALOGUE_TABLE}")


def simulator_config(catalogue_path):
    """The server's configuration: its template, changed for the tests."""
    template = importlib.resources.files("alpaca_simulators") / "config" / "template.yaml"
    config = yaml.safe_load(template.read_text(encoding="utf-8"))
    devices = config["devices"]
    devices["camera"][0].update(cameraxsize=CAMERA_WIDTH, cameraysize=CAMERA_HEIGHT,
                                numx=CAMERA_WIDTH, numy=CAMERA_HEIGHT)
    telescope = dict(devices["telescope"][0], focallength=FOCAL_LENGTH, slew_rate=SLEW_RATE,
                     sitelatitude=SITE["Latitude"], sitelongitude=SITE["Longitude"],
                     siteelevation=SITE["Elevation"])
    devices["telescope"] = {number: dict(telescope, equatorialsystem=system)
                            for number, system in EQUATORIAL_SYSTEMS.items()}
    devices["camera"][WARM_CAMERA] = dict(devices["camera"][0], ccdtemperature=WARM_CCD,
                                          cooleron=False, cooling_time=COOLING_TIME)
    devices["camera"][UNCOOLED_CAMERA] = dict(devices["camera"][0], cansetccdtemperature=False)
    devices["filterwheel"][0].update(names=list(FILTER_NAMES), focusoffsets=list(FOCUS_OFFSETS))
    devices["filterwheel"][ZERO_OFFSETS_WHEEL] = dict(devices["filterwheel"][0],
                                                      focusoffsets=[0] * len(FILTER_NAMES))
    devices["filterwheel"][SHORT_OFFSETS_WHEEL] = dict(devices["filterwheel"][0],
                                                       focusoffsets=FOCUS_OFFSETS[:2])
    devices["focuser"][0].update(maxstep=FOCUSER_MAXIMUM, position=FOCUSER_POSITION,
                                 temperature=FOCUSER_TEMPERATURE)
    devices["focuser"][COMPENSATING_FOCUSER] = dict(devices["focuser"][0], tempcomp=True)
    devices["focuser"][RELATIVE_FOCUSER] = dict(devices["focuser"][0], absolute=False)
    devices["focuser"][MOVING_FOCUSER] = dict(devices["focuser"][0], ismoving=True)
    devices["safetymonitor"][LONE_SAFETY_MONITOR] = dict(devices["safetymonitor"][0])
    devices["dome"][FIXED_DOME] = dict(devices["dome"][0], cansetazimuth=False, azimuth=180.0)
    config["tap_source"] = str(catalogue_path)
    config["gaia_query_timeout"] = CATALOGUE_QUERY_TIMEOUT
    return config


class AlpacaServer:
    """``alpaca-simulators`` in its own process on 127.0.0.1.

    Parameters
    ----------
    directory : pathlib.Path
        Holds its configuration, its catalogue and its log.
    """

    def __init__(self, directory):
        self.directory = directory
        self.catalogue = Catalogue(directory / "catalogue.sqlite3")
        self.config_path = directory / "simulators.yaml"
        self.config_path.write_text(yaml.safe_dump(simulator_config(self.catalogue.path)),
                                    encoding="utf-8")
        self.log_path = directory / "server.log"
        self.process = None
        self.port = None
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only: never through a proxy
        # The server uses astropy too: it gets the daemons' offline settings from a file.
        self.environment = dict(os.environ, **offline_environment(directory / "config"))

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def start(self):
        """Start the server and wait until it answers; raise :class:`ServerError` if it cannot."""
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            # `python -m` the module behind the `alpaca-simulators` command, so that the server
            # runs in this interpreter's environment whatever PATH says. An absolute --config
            # path is used as is (the server joins it onto its own config directory).
            command = [sys.executable, "-m", "alpaca_simulators.run_simulator",
                       "--host", HOST, "--port", str(self.port),
                       "--config", str(self.config_path)]
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(command, cwd=self.directory, stdout=log,
                                                stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=self.environment)
            if self._wait_until_ready():
                return self
            status = self.process.poll()
            self.stop()
            if "address already in use" not in self.log_tail().lower():
                break
        why = (f"exited with status {status}" if status is not None
               else f"did not answer within {STARTUP_TIMEOUT:g} s")
        raise ServerError(f"alpaca-simulators on {HOST}:{self.port} {why} "
                          f"({' '.join(command)}); its log ({self.log_path}):\n{self.log_tail()}")

    def _wait_until_ready(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                self.http.get(f"{self.url}/api/v1/telescope/0/connected",
                              timeout=STARTUP_POLL_INTERVAL * 5).raise_for_status()
                return True
            except requests.RequestException:
                time.sleep(STARTUP_POLL_INTERVAL)
        return False

    def stop(self):
        """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    @contextlib.contextmanager
    def paused(self):
        """While inside, the server process is stopped (SIGSTOP): it accepts but never answers."""
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

    def reload(self):
        """Reset every simulated device to its configuration (``GET /reload``)."""
        self.http.get(f"{self.url}/reload", timeout=RELOAD_TIMEOUT).raise_for_status()

    def wait_for_aborted_exposure(self, seconds, device_number=0):
        """Wait, at most *seconds*, until an exposure aborted on camera *device_number* has
        ended in the server.

        alpaca-simulators runs each exposure as a background task that ``AbortExposure``
        does not stop: it ends when its time is up, and then reports ``ImageReady`` true with
        an image made of the devices' state at that moment. Left running, it ended in the
        next test, replacing the frame that test's camera was taking (an autofocus run
        measured its 5 s frame's stars instead of a 0.2 s one's, and found no focus)."""
        deadline = time.monotonic() + seconds
        url = f"{self.url}/api/v1/camera/{device_number}/imageready"
        while not self.http.get(url, timeout=HARNESS_REQUEST_TIMEOUT).json()["Value"]:
            assert time.monotonic() < deadline, \
                f"the exposure aborted on camera {device_number} did not end within {seconds} s"
            time.sleep(STARTUP_POLL_INTERVAL)

    def set_safe(self, safe, device_number=0):
        """Set the safety monitor's verdict (``PUT /api/v1/safetymonitor/N/issafe``)."""
        response = self.http.put(f"{self.url}/api/v1/safetymonitor/{device_number}/issafe",
                                 data={"IsSafe": "true" if safe else "false"},
                                 timeout=HARNESS_REQUEST_TIMEOUT)
        response.raise_for_status()
        assert response.json()["ErrorNumber"] == 0, response.text

    def settings(self, device_number=0, timeout=DEVICE_TIMEOUT):
        """A device's settings as the configuration gives them to the drivers."""
        return {"Driver": "alpaca", "Host": HOST, "Port": self.port,
                "Device Number": device_number, "Timeout": timeout}


def sky_position(altitude, azimuth):
    """ICRS ``(ra, dec)`` degrees of the point at *altitude*, *azimuth* above the test site now."""
    location = EarthLocation.from_geodetic(lon=SITE["Longitude"] * u.deg,
                                           lat=SITE["Latitude"] * u.deg,
                                           height=SITE["Elevation"] * u.m)
    where = SkyCoord(alt=altitude * u.deg, az=azimuth * u.deg,
                     frame=AltAz(obstime=Time.now(), location=location)).icrs
    return float(where.ra.deg), float(where.dec.deg)


def separation(ra1, dec1, ra2, dec2):
    """Degrees between two positions given in degrees."""
    return float(SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(
        SkyCoord(ra2 * u.deg, dec2 * u.deg)).deg)


def dead_settings(port, timeout):
    """Settings of a device on *port* of 127.0.0.1, whatever (or nothing) listens there."""
    return {"Driver": "alpaca", "Host": HOST, "Port": port, "Device Number": 0,
            "Timeout": timeout}


class _Shared:
    """The one server of a test session, shared by every module that imports the fixtures.

    pytest makes a separate fixture (with its own cache) in each module that imports
    ``alpaca_server``, so the server is counted here: the first module starts it, and the last
    fixture torn down at the end of the session stops it.
    """

    server = None
    users = 0


@pytest.fixture(scope="session")
def alpaca_server(tmp_path_factory):
    """alpaca-simulators on 127.0.0.1, shared by the session's alpaca tests."""
    for module, package in (("alpaca_simulators", "alpaca-simulators"), ("alpaca", "alpyca")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{package} is not installed (pip install {package})")
    if _Shared.server is None:
        server = AlpacaServer(tmp_path_factory.mktemp("alpaca-simulators"))
        try:
            server.start()
        except ServerError as error:
            pytest.fail(str(error), pytrace=False)
        _Shared.server = server
    _Shared.users += 1
    yield _Shared.server
    _Shared.users -= 1
    if _Shared.users == 0:
        _Shared.server.stop()
        _Shared.server = None


@pytest.fixture
def simulators(alpaca_server):
    """The server, with its devices reset for this test."""
    alpaca_server.reload()
    return alpaca_server
