"""The LX200 driver against the LX200 simulator over TCP (socket://), in each dialect.

Targets are chosen at the real time (the mount follows the real sky): an altitude and azimuth
now, turned into ICRS.
"""

import socket
import threading
import time

import astropy.units as u
import pytest
from astropy.coordinates import AltAz, SkyCoord
from astropy.time import Time

from lx200_simulator import SimulatorProcess
from torosmanager.devices import DeviceError
from torosmanager.devices.lx200 import Lx200Mount
from torosmanager.devices.coordinates import site_location

SITE = {"Name": "CTMO", "Latitude": 25.9958, "Longitude": -97.5690, "Elevation": 12.0}
SITE_OPTIONS = ("--latitude", str(SITE["Latitude"]), "--longitude", str(SITE["Longitude"]))
DIALECTS = ("meade", "onstep", "10micron")
#: Degrees per second the simulated mount slews at: a slew here takes about a second.
SLEW_RATE = "90"
TIMEOUT = 2.0
#: Real seconds a test waits for a slew or park to end.
PATIENCE = 15.0
#: Degrees: high precision is 1 s of RA (15") and 1" of Dec; the JNow round trip adds little.
POINTING_TOLERANCE = 0.01
#: Dec +85° stays between 21° and 31° above the horizon at the test site, whatever the time.
LOW_CIRCUMPOLAR = (30.0, 85.0)
#: Dec -80° never rises at latitude +26°.
NEVER_UP = (30.0, -80.0)


def settings(url, dialect, timeout=TIMEOUT):
    return {"Driver": "lx200", "URL": url, "Baud Rate": 9600, "Dialect": dialect,
            "Timeout": timeout}


def target_at(altitude, azimuth):
    """ICRS ``(ra, dec)`` of the point at *altitude*, *azimuth* at the site now."""
    where = SkyCoord(AltAz(alt=altitude * u.deg, az=azimuth * u.deg, obstime=Time.now(),
                           location=site_location(SITE))).icrs
    return float(where.ra.deg), float(where.dec.deg)


def separation(state, ra, dec):
    return SkyCoord(state.ra * u.deg, state.dec * u.deg).separation(
        SkyCoord(ra * u.deg, dec * u.deg)).deg


def wait_until(predicate, what, patience=PATIENCE):
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"gave up after {patience} s waiting for {what}")


class Rig:
    """A simulator process and a connected driver, shared by the tests of one dialect."""

    def __init__(self, dialect):
        self.simulator = SimulatorProcess(dialect, "--slew-rate", SLEW_RATE, *SITE_OPTIONS)
        self.mount = Lx200Mount(settings(self.simulator.url, dialect), SITE)
        try:
            self.mount.connect()
        except DeviceError:
            self.simulator.stop()
            raise

    def reset(self):
        """Stopped, unparked (where the dialect can), connected: how each test starts."""
        mount = self.mount
        if not mount.connection.connected:
            mount.connect()
        mount.abort()
        if mount.state().parked:
            mount.unpark()
        # The mount's own altitude limits back to the whole sky (tests change them).
        assert raw_request(self.simulator.port, b":Sh00#:So90#", 2) == b"11"

    def close(self):
        self.mount.disconnect()
        self.simulator.stop()


@pytest.fixture(scope="module")
def rigs():
    """One rig per dialect, made when first needed (pyserial pauses 0.3 s at each close)."""
    made = {}
    yield made
    for rig in made.values():
        rig.close()


@pytest.fixture
def rig(request, rigs):
    """The rig of the dialect the test is parametrized with (``rig``; default meade), reset."""
    dialect = getattr(request, "param", "meade")
    if dialect not in rigs:
        rigs[dialect] = Rig(dialect)
    rigs[dialect].reset()
    return rigs[dialect]


@pytest.fixture
def simulator(rig):
    return rig.simulator


@pytest.fixture
def mount(rig):
    return rig.mount


@pytest.fixture
def own_simulator(request):
    """A simulator of the test's own, started with the options the test is parametrized with
    (the dialect first)."""
    dialect, *options = request.param
    started = SimulatorProcess(dialect, "--slew-rate", SLEW_RATE, *SITE_OPTIONS, *options)
    yield started
    started.stop()


def in_each_dialect(*dialects):
    return pytest.mark.parametrize("rig", dialects or DIALECTS, indirect=True)


def raw_request(port, command, reply_length):
    """Send *command* to the simulator on a socket of our own; read *reply_length* bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as connection:
        connection.sendall(command)
        received = b""
        while len(received) < reply_length:
            chunk = connection.recv(reply_length - len(received))
            assert chunk, f"the simulator closed the connection after {received!r}"
            received += chunk
        return received


# --- Connecting ---------------------------------------------------------------------------

@in_each_dialect()
def test_connect_switches_a_low_precision_mount_to_high_precision(simulator, mount):
    report = mount.describe()
    assert report["Driver"] == "lx200" and report["Connected"] is True
    assert report["URL"] == simulator.url and report["Dialect"] == simulator.dialect
    assert report["Precision"] == "high"
    # The mount itself now answers in high precision (HH:MM:SS#, not HH:MM.T#).
    assert raw_request(simulator.port, b":GR#", 9)[5:6] == b":"


@pytest.mark.parametrize("own_simulator", [("onstep", "--precision", "high")], indirect=True)
def test_connect_leaves_a_high_precision_mount_in_high_precision(own_simulator):
    # :U# toggles: sending it to a mount already in high precision would switch it to low.
    made = Lx200Mount(settings(own_simulator.url, "onstep"), SITE)
    made.connect()
    try:
        assert made.describe()["Precision"] == "high"
    finally:
        made.disconnect()


def test_a_disconnected_mount_reports_not_connected_and_refuses_requests(simulator):
    made = Lx200Mount(settings(simulator.url, "meade"), SITE)
    assert made.describe() == {"Driver": "lx200", "Connected": False, "URL": simulator.url,
                               "Dialect": "meade"}
    with pytest.raises(DeviceError, match=r"mount \(LX200 meade at socket://.*not connected"):
        made.state()


# --- Slewing ------------------------------------------------------------------------------

@in_each_dialect()
def test_a_mount_back_in_low_precision_is_switched_to_high_again_before_a_slew(simulator,
                                                                             mount):
    """A mount switched off and on answers in low precision again (here :U# sent behind the
    driver's back does the same): its targets went out rounded to 0.1 minute of RA and 1' of
    Dec, and no warning said so, until the daemon was restarted. Each slew checks first."""
    if raw_request(simulator.port, b":GR#", 8)[5:6] == b":":  # HH:MM:SS#: high precision
        # :GR# on the same connection: the simulator answers it after :U#, whereas a new
        # connection's thread may be served first (CI saw high precision still).
        low = raw_request(simulator.port, b":U#:GR#", 8)
    else:
        low = raw_request(simulator.port, b":GR#", 8)
    assert low[5:6] == b"."  # HH:MM.T#: low precision
    ra, dec = target_at(45, 200)  # not where the other tests slew: this slew moves the mount
    mount.start_slew(ra, dec)
    assert mount.describe()["Precision"] == "high"
    assert raw_request(simulator.port, b":GR#", 9)[5:6] == b":"  # HH:MM:SS#
    wait_until(lambda: not mount.state().slewing, "the slew to end")
    assert separation(mount.state(), ra, dec) < POINTING_TOLERANCE


@in_each_dialect()
def test_a_slew_is_reported_while_under_way_and_ends_tracking_on_the_target(mount):
    ra, dec = target_at(60, 120)
    mount.start_slew(ra, dec)
    during = mount.state()
    assert during.slewing and not during.parked
    assert separation(during, ra, dec) > 1.0
    wait_until(lambda: not mount.state().slewing, "the slew to end")
    after = mount.state()
    assert separation(after, ra, dec) < POINTING_TOLERANCE
    assert after.tracking and not after.parked
    assert after.altitude == pytest.approx(60, abs=0.5)
    time.sleep(0.5)  # tracking: still on the target a moment later
    assert separation(mount.state(), ra, dec) < POINTING_TOLERANCE


@pytest.mark.parametrize("own_simulator", [("onstep", "--german"), ("10micron",)],
                         indirect=True, ids=["onstep", "10micron"])
def test_a_german_mount_says_its_side_of_the_pier(own_simulator):
    """OnStep's ``:Gm#`` and 10micron's ``:pS#``: the west side (looking east) after a goto
    east of the meridian, the east side after one west of it."""
    mount = Lx200Mount(settings(own_simulator.url, own_simulator.dialect), SITE)
    mount.connect()
    try:
        for azimuth, side in ((90, "west"), (270, "east")):
            mount.start_slew(*target_at(60, azimuth))
            wait_until(lambda: not mount.state().slewing, "the slew to end")
            assert mount.state().pier_side == side
    finally:
        mount.disconnect()


@in_each_dialect("meade", "onstep")
def test_a_mount_that_does_not_say_its_side_of_the_pier_has_none(mount):
    """A Meade mount is not asked; OnStep on a fork mount answers ``N``."""
    mount.start_slew(*target_at(60, 90))
    wait_until(lambda: not mount.state().slewing, "the slew to end")
    assert mount.state().pier_side is None


@in_each_dialect()
def test_abort_stops_a_slew_short_of_the_target(mount):
    ra, dec = target_at(30, 200)
    mount.start_slew(ra, dec)
    mount.abort()
    stopped = mount.state()
    assert not stopped.slewing
    time.sleep(0.3)
    assert separation(mount.state(), ra, dec) > 1.0


def jnow_ra_seconds(mount):
    """The mount's own right ascension, seconds of time, as it reports it (1 s resolution)."""
    hour, minute, second = map(int, mount.describe()["RA (JNow)"].split(":"))
    return (hour * 60 + minute) * 60 + second


@in_each_dialect()
def test_tracking_can_be_switched_off_and_on(mount):
    mount.set_tracking(True)
    assert mount.state().tracking
    mount.set_tracking(False)
    assert not mount.state().tracking
    mount.set_tracking(True)
    assert mount.state().tracking


@in_each_dialect("meade")
def test_a_mount_not_tracking_stays_put_on_the_ground_while_the_sky_turns(mount):
    mount.set_tracking(False)
    before = jnow_ra_seconds(mount)
    time.sleep(1.5)
    # Its RA grows by 1.5 s of time (seen as 1 or 2 s at 1 s resolution).
    assert 1 <= (jnow_ra_seconds(mount) - before) % 86400 <= 2


@in_each_dialect("onstep")
def test_onstep_refuses_a_goto_in_standby_so_the_driver_starts_tracking_first(simulator,
                                                                              mount):
    mount.set_tracking(False)
    ra, dec = target_at(50, 90)
    mount.start_slew(ra, dec)
    assert mount.state().slewing
    # The simulator, like OnStep, answers 3 (standby) to a goto without tracking.
    assert raw_request(simulator.port, b":Td#:Sr01:00:00#:Sd+10*00:00#:MS#", 4) == b"1113"


def parked_state(mount):
    """The mount's state if it is parked, else ``None``."""
    state = mount.state()
    return state if state.parked else None


# --- Park ---------------------------------------------------------------------------------

@in_each_dialect("onstep", "10micron")
def test_park_then_unpark(mount):
    ra, dec = target_at(45, 100)
    mount.start_park()
    assert mount.state().slewing
    parked = wait_until(lambda: parked_state(mount), "the mount to park")
    assert not parked.tracking and not parked.slewing
    assert parked.dec == pytest.approx(90, abs=1)  # the park position: the pole
    with pytest.raises(DeviceError, match="the mount is parked"):
        mount.start_slew(ra, dec)
    mount.unpark()
    assert not mount.state().parked
    mount.start_slew(ra, dec)
    assert mount.state().slewing


@pytest.mark.parametrize("own_simulator", [("meade",)], indirect=True)
def test_a_classic_meade_park_is_remembered_and_unpark_refused_clearly(own_simulator):
    mount = Lx200Mount(settings(own_simulator.url, "meade"), SITE)
    mount.connect()
    mount.start_park()
    parked = wait_until(lambda: parked_state(mount), "the mount to park")
    assert not parked.tracking
    with pytest.raises(DeviceError, match="no unpark: switch the mount off and on"):
        mount.unpark()
    with pytest.raises(DeviceError, match="parked"):
        mount.start_slew(*target_at(45, 100))
    mount.disconnect()


# --- Refusals -----------------------------------------------------------------------------

@in_each_dialect()
def test_a_target_below_the_horizon_is_refused_before_the_mount_is_asked(simulator, mount):
    target_before = raw_request(simulator.port, b":Gr#:Gd#", 19)
    with pytest.raises(DeviceError, match=r"mount \(LX200 .*\): slewing to ICRS RA 30.00000° "
                                          r"Dec -80.00000° failed: the target is below the "
                                          r"horizon at CTMO \(altitude -"):
        mount.start_slew(*NEVER_UP)
    assert not mount.state().slewing
    # The mount's target (:Gr#, :Gd#) is unchanged: no :Sr/:Sd was sent.
    assert raw_request(simulator.port, b":Gr#:Gd#", 19) == target_before


@pytest.mark.parametrize("rig, said", [
    ("meade", "mount says 'Object Below Horizon', code 1"),
    ("10micron", "mount says 'Object Below Horizon', code 1"),
    ("onstep", "code 1"),
], indirect=["rig"])
def test_the_mounts_own_horizon_limit_refusal_is_a_device_error(simulator, mount, said):
    # The mount's own limit (:Sh40#) is above the target, which is above the true horizon.
    assert raw_request(simulator.port, b":Sh40#", 1) == b"1"
    with pytest.raises(DeviceError, match="failed: the mount refused: the target is below "
                                          "the mount's horizon limit") as refusal:
        mount.start_slew(*LOW_CIRCUMPOLAR)
    assert said in str(refusal.value)
    assert not mount.state().slewing
    # The exchange stayed in step: the next request gets its own answer.
    assert mount.describe()["Connected"] is True


@in_each_dialect("meade")
def test_the_mounts_overhead_limit_refusal_is_a_device_error(simulator, mount):
    assert raw_request(simulator.port, b":So80#", 1) == b"1"
    with pytest.raises(DeviceError, match="higher than the mount's overhead limit "
                                          r"\(mount says 'Object Above Higher', code 2\)"):
        mount.start_slew(*target_at(85, 180))


# --- Failures -----------------------------------------------------------------------------

@pytest.fixture
def silent_server():
    """A TCP port that accepts connections (the kernel completes them) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_silent_mount_is_a_device_error_within_the_timeout(silent_server):
    url = f"socket://127.0.0.1:{silent_server}"
    made = Lx200Mount(settings(url, "onstep", timeout=0.5), SITE)
    started = time.monotonic()
    with pytest.raises(DeviceError, match=rf"mount \(LX200 onstep at {url}\): reading the right "
                                          r"ascension failed: no complete answer within 0.5 s "
                                          r"\(command ':GR#'\)"):
        made.connect()
    assert time.monotonic() - started < 1.5
    assert made.describe()["Connected"] is False


def test_a_mount_that_is_not_there_is_a_device_error():
    with socket.socket() as placeholder:  # a port nobody listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    made = Lx200Mount(settings(f"socket://127.0.0.1:{port}", "meade", timeout=1.0), SITE)
    with pytest.raises(DeviceError, match=r"mount \(LX200 meade at .*\): connecting failed: "
                                          r"cannot open socket://.*refused"):
        made.connect()


def test_a_serial_port_that_does_not_exist_is_a_device_error(tmp_path):
    port = tmp_path / "ttyUSB-none"
    made = Lx200Mount(settings(str(port), "10micron", timeout=1.0), SITE)
    with pytest.raises(DeviceError, match=rf"mount \(LX200 10micron at {port}\): connecting "
                                          rf"failed: cannot open {port} \(.*No such file"):
        made.connect()


@pytest.mark.parametrize("own_simulator", [("onstep",)], indirect=True)
def test_a_mount_that_dies_is_a_device_error(own_simulator):
    mount = Lx200Mount(settings(own_simulator.url, "onstep"), SITE)
    mount.connect()
    own_simulator.stop()
    with pytest.raises(DeviceError, match=r"mount \(LX200 onstep at .*\): reading the right "
                                          r"ascension failed"):
        mount.state()
    # Asked again within the Timeout, it fails at once with the failure it had...
    with pytest.raises(DeviceError, match=r"reading the right ascension failed: not answering "
                                          r"\([0-9.]+ s ago, reading the right ascension "
                                          r"failed: the connection failed .*\); asked again at "
                                          rf"most every {TIMEOUT:g} s"):
        mount.state()
    assert mount.describe()["Connected"] is False
    # ...and is asked again once the Timeout has passed.
    time.sleep(TIMEOUT)
    with pytest.raises(DeviceError, match="cannot open"):
        mount.state()
    mount.disconnect()


@pytest.fixture
def garbage_server():
    """A TCP server whose every answer is ``hello#``, in a thread stopped at the end."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(0.1)
                while not stop.is_set():
                    try:
                        data = connection.recv(100)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    connection.sendall(b"hello#" * data.count(b"#"))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


def test_garbage_from_the_mount_is_a_device_error_naming_the_command(garbage_server):
    made = Lx200Mount(settings(f"socket://127.0.0.1:{garbage_server}", "meade"), SITE)
    with pytest.raises(DeviceError, match=r"reading the right ascension failed: unexpected "
                                          r"answer to ':GR#': not a right ascension: 'hello'"):
        made.connect()


@in_each_dialect("10micron")
def test_requests_from_several_threads_do_not_mix_their_replies(mount):
    errors = []

    def read_many():
        try:
            for _ in range(15):
                mount.state()
        except DeviceError as error:
            errors.append(error)

    threads = [threading.Thread(target=read_many) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
