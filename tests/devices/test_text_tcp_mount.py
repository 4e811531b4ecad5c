"""The text-tcp driver's mount against a simulated mount computer run as a real process.

The simulator (text_tcp_simulator.py) is as strict as the real mount computer's rules: it
answers ERR to a command sent sooner than its minimum interval after the previous one, and to a
second concurrent connection. Most tests run it and the driver at a 0.1 s interval to stay fast;
one runs both at the default 1 s.
"""

import signal
import socket
import sys
import threading
import time
import xmlrpc.client
from pathlib import Path

import astropy.units as u
import pytest
from astropy.coordinates import TETE, AltAz, EarthLocation, SkyCoord
from astropy.time import Time

from torosmanager.devices import DeviceError, wait_for
from torosmanager.devices.text_tcp import TextTcpMount
from torosmanager.sexagesimal import (
    format_dec,
    format_ra,
    parse_sexagesimal,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text_tcp_simulator import SimulatorProcess

HOST = "127.0.0.1"
SITE = {"Name": "CTMO", "Latitude": 25.9958, "Longitude": -97.5690, "Elevation": 12.0}
LOCATION = EarthLocation.from_geodetic(lon=SITE["Longitude"] * u.deg,
                                       lat=SITE["Latitude"] * u.deg,
                                       height=SITE["Elevation"] * u.m)
#: The fast interval most tests use (seconds), for both the simulator and the driver.
FAST_INTERVAL = 0.1
#: The driver's Timeout in these tests (seconds).
TIMEOUT = 1.0
#: Degrees per second on each axis: a slew to the nearby target takes half a second.
SLEW_RATE = 60.0
#: Seconds a slew may take (a few at the simulator's slew rate).
SLEW_TIMEOUT = 15.0
#: The position read back after a slew agrees with the target to this (degrees): the protocol
#: carries 0.01 s of RA and 0.1" of Dec.
READBACK_TOLERANCE = 0.5 / 3600
#: The simulator's altitude uses the mean sidereal time and no refraction (degrees).
ALTITUDE_TOLERANCE = 0.05
#: The apparent place differs from ICRS by a quarter-century of precession: far more than this.
PRECESSION_AT_LEAST = 0.1
#: Where slews go: high in the south-east, about 30° from the park position (hour angle 0,
#: Dec 0); and far from it, for aborts.
TARGET_ALTITUDE, TARGET_AZIMUTH = 60.0, 120.0
FAR_RA_DEC = (30.0, 85.0)
#: Seconds of a slew before it is aborted, and after, to see that it stays stopped.
ABORT_AFTER = 0.3
#: Degrees: an aborted slew stops at least this far from its target.
FAR_FROM_TARGET = 20.0
#: The sky turns 15"/s; with tracking off the RA read back moves by this share of it at least.
SIDEREAL_DEGREES_PER_SECOND = 15.0 / 3600
DRIFT_SHARE = 0.8
#: Seconds to watch for a drift: 4.5" of sky, nine times the read-back tolerance.
DRIFT_SECONDS = 0.3
#: Threads and seconds of the burst of state() calls.
BURST_THREADS, BURST_SECONDS = 6, 1.0
#: Seconds of state() calls at the default interval.
DEFAULT_INTERVAL_BURST_SECONDS = 2.0
#: Extra seconds allowed past the Timeout for a silent server (scheduling, the interval).
TIMEOUT_SLACK = 0.5


@pytest.fixture
def make_simulator(tmp_path):
    made = []

    def make(min_interval=FAST_INTERVAL, slew_rate=SLEW_RATE):
        made.append(SimulatorProcess(str(tmp_path / f"simulator-{len(made)}.log"),
                                     min_interval=min_interval, slew_rate=slew_rate).start())
        return made[-1]

    yield make
    for each in made:
        each.stop()


@pytest.fixture
def simulator(make_simulator):
    return make_simulator()


def settings(port, interval=FAST_INTERVAL, timeout=TIMEOUT):
    return {"Driver": "text-tcp", "Host": HOST, "Port": port, "Timeout": timeout,
            "Command Interval": interval}


@pytest.fixture
def make_mount():
    made = []

    def make(simulator, interval=FAST_INTERVAL, connect=True):
        made.append(TextTcpMount(settings(simulator.port, interval), SITE))
        if connect:
            made[-1].connect()
        return made[-1]

    yield make
    for each in made:
        each.disconnect()


@pytest.fixture
def mount(simulator, make_mount):
    return make_mount(simulator)


def counters(mount):
    """The simulator's counters, asked through the driver's own (single) connection."""
    return {name: int(value) for name, value in mount.connection.query("get counters").items()}


def sky_position(altitude, azimuth):
    where = SkyCoord(alt=altitude * u.deg, az=azimuth * u.deg,
                     frame=AltAz(obstime=Time.now(), location=LOCATION)).icrs
    return float(where.ra.deg), float(where.dec.deg)


def separation(ra1, dec1, ra2, dec2):
    return SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra2 * u.deg,
                                                                   dec2 * u.deg)).deg


def slew_done(mount):
    wait_for(lambda: not mount.state().slewing, SLEW_TIMEOUT, "the slew to end", FAST_INTERVAL)
    return mount.state()


def test_sexagesimal_text_round_trips_and_never_shows_sixty():
    assert format_ra(23.999999999) == "00:00:00.00"
    assert format_dec(-0.5) == "-00:30:00.0"
    assert format_dec(45.999999999) == "+46:00:00.0"
    assert parse_sexagesimal("-00:30:00.0") == -0.5
    assert parse_sexagesimal(format_ra(12.3456)) == pytest.approx(12.3456, abs=0.01 / 3600)
    for bad in ("12:60:00", "ab", "1:2:3:4", ""):
        with pytest.raises(ValueError):
            parse_sexagesimal(bad)


def test_describe_before_and_after_connecting(simulator, make_mount):
    mount = make_mount(simulator, connect=False)
    address = f"{HOST}:{simulator.port}"
    report = mount.describe()
    assert report["Driver"] == "text-tcp" and report["Connected"] is False
    assert report["Address"] == address
    mount.connect()
    report = mount.describe()
    assert report["Connected"] is True and report["Address"] == address
    assert (report["Parked"], report["Slewing"], report["Tracking"]) == (True, False, False)
    assert report["Command Interval"] == FAST_INTERVAL
    assert report["Coordinates"].startswith("apparent")
    xmlrpc.client.dumps((report,))  # XML-RPC-safe
    mount.disconnect()
    assert mount.describe()["Connected"] is False


def test_a_slew_reaches_the_target_follows_it_and_tracks(mount):
    assert mount.state().parked
    mount.unpark()
    assert not mount.state().parked
    ra, dec = sky_position(TARGET_ALTITUDE, TARGET_AZIMUTH)
    mount.start_slew(ra, dec)
    assert mount.state().slewing
    state = slew_done(mount)
    assert separation(state.ra, state.dec, ra, dec) < READBACK_TOLERANCE
    assert 0 <= state.ra < 360
    assert state.tracking and not state.parked
    assert state.altitude == pytest.approx(TARGET_ALTITUDE, abs=ALTITUDE_TOLERANCE)

    # What the mount computer holds is the apparent place (JNow), not ICRS.
    raw = mount.connection.query("get all")
    raw_ra, raw_dec = parse_sexagesimal(raw["ra"]) * 15, parse_sexagesimal(raw["dec"])
    apparent = SkyCoord(ra * u.deg, dec * u.deg).transform_to(TETE(obstime=Time.now(),
                                                                   location=LOCATION))
    assert separation(raw_ra, raw_dec, apparent.ra.deg, apparent.dec.deg) < READBACK_TOLERANCE
    assert separation(raw_ra, raw_dec, ra, dec) > PRECESSION_AT_LEAST
    assert counters(mount)["violations"] == 0


def test_a_target_below_the_horizon_is_refused_before_the_mount_is_asked(mount):
    mount.unpark()
    sent = mount.connection.commands_sent
    ra, dec = sky_position(-10.0, 0.0)
    with pytest.raises(DeviceError, match="below the horizon at CTMO"):
        mount.start_slew(ra, dec)
    # At most the state query (when the answer unpark() read is too old): no set, no slew.
    assert mount.connection.commands_sent - sent <= 1
    assert not mount.state().slewing


def test_a_slew_while_parked_is_refused(mount):
    with pytest.raises(DeviceError, match="parked"):
        mount.start_slew(*sky_position(TARGET_ALTITUDE, TARGET_AZIMUTH))


def test_abort_stops_a_slew_short_of_its_target(mount):
    mount.unpark()
    mount.start_slew(*FAR_RA_DEC)
    time.sleep(ABORT_AFTER)
    mount.abort()
    stopped = mount.state()
    assert not stopped.slewing
    assert separation(stopped.ra, stopped.dec, *FAR_RA_DEC) > FAR_FROM_TARGET
    time.sleep(ABORT_AFTER)
    still = mount.state()
    assert not still.slewing
    assert still.dec == pytest.approx(stopped.dec, abs=READBACK_TOLERANCE)


def test_tracking_holds_the_sky_and_without_it_the_sky_drifts(mount):
    mount.unpark()
    mount.set_tracking(True)
    first = mount.state()
    assert first.tracking
    time.sleep(DRIFT_SECONDS)
    assert separation(mount.state().ra, mount.state().dec, first.ra, first.dec) \
        < READBACK_TOLERANCE
    mount.set_tracking(False)
    first = mount.state()
    assert not first.tracking
    started = time.monotonic()
    time.sleep(DRIFT_SECONDS)
    later = mount.state()
    drift = (later.ra - first.ra) % 360
    assert drift > DRIFT_SHARE * SIDEREAL_DEGREES_PER_SECOND * (time.monotonic() - started)


def test_park_then_unpark(mount):
    mount.unpark()
    mount.start_slew(*sky_position(TARGET_ALTITUDE, TARGET_AZIMUTH))
    slew_done(mount)
    mount.start_park()
    wait_for(lambda: mount.state().parked, SLEW_TIMEOUT, "the mount to park", FAST_INTERVAL)
    parked = mount.state()
    assert not parked.tracking and not parked.slewing
    assert parked.azimuth == pytest.approx(180.0, abs=ALTITUDE_TOLERANCE)  # on the meridian
    mount.start_park()  # parking a parked mount does nothing
    mount.abort()  # nor does aborting it
    mount.unpark()
    assert not mount.state().parked


def test_an_err_answer_is_a_device_error_naming_the_device_and_the_command(mount, simulator):
    label = f"mount (text-tcp at {HOST}:{simulator.port})"
    with pytest.raises(DeviceError) as refused:
        mount.set_tracking(True)  # the simulator refuses tracking while parked
    assert str(refused.value) == f"{label}: 'track on' failed: the mount computer answered " \
                                 f"'ERR parked'"
    with pytest.raises(DeviceError, match=r"'set dec \+95:00:00' failed: .* answered 'ERR'"):
        mount.connection.command("set dec +95:00:00")
    with pytest.raises(DeviceError, match=r"'get nothing' failed: .* answered 'ERR'"):
        mount.connection.query("get nothing")
    assert mount.state().parked  # the connection is still in step
    assert counters(mount)["violations"] == 0


def test_the_simulator_answers_err_to_commands_sent_too_fast(simulator):
    """Without this, the driver's clean record below would prove nothing."""
    with socket.create_connection((HOST, simulator.port), timeout=TIMEOUT) as raw:
        reader = raw.makefile("rb")
        raw.sendall(b"get status\n")
        lines = [reader.readline() for _ in range(4)]
        assert lines[-1] == b".EOF\n"
        raw.sendall(b"get status\n")
        assert reader.readline() == b"ERR\n"
        time.sleep(FAST_INTERVAL * 2)
        raw.sendall(b"get counters\n")
        answer = dict(reader.readline().decode().split() for _ in range(4))
        assert answer["violations"] == "1"


def test_a_burst_of_state_calls_from_several_threads_keeps_to_the_rate(mount):
    failures, calls = [], []
    started = time.monotonic()
    sent_before = mount.connection.commands_sent

    def poll():
        while time.monotonic() - started < BURST_SECONDS:
            try:
                state = mount.state()
            except DeviceError as error:
                failures.append(error)
                return
            calls.append(state)

    threads = [threading.Thread(target=poll) for _ in range(BURST_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BURST_SECONDS + TIMEOUT * 2)
    elapsed = time.monotonic() - started
    assert not failures
    sent = mount.connection.commands_sent - sent_before
    # Some calls were answered from the cache (without it, each call sends a query); how many
    # more depends on how fast this machine converts each new answer.
    assert len(calls) > sent
    assert sent <= elapsed / FAST_INTERVAL + 1
    assert counters(mount)["violations"] == 0


def test_a_query_within_the_interval_is_answered_from_the_last_answer(simulator, make_mount):
    interval = 0.3
    mount = make_mount(simulator, interval=interval)
    time.sleep(interval)  # let the answer connect() read grow old
    sent = mount.connection.commands_sent
    first = mount.state()
    second = mount.state()
    assert mount.connection.commands_sent == sent + 1
    assert second == first
    time.sleep(interval)
    mount.state()
    assert mount.connection.commands_sent == sent + 2
    # A command forgets the answers: the state read after it is fresh.
    mount.unpark()
    assert not mount.state().parked


def test_the_driver_keeps_one_connection_and_a_second_client_is_refused(simulator, mount,
                                                                        make_mount):
    mount.unpark()
    for _ in range(3):
        mount.state()
        time.sleep(FAST_INTERVAL)
    with pytest.raises(DeviceError, match="answered 'ERR'"):
        make_mount(simulator)
    found = counters(mount)
    assert (found["connections"], found["refused"], found["violations"]) == (1, 1, 0)


def test_a_silent_server_is_a_device_error_within_the_timeout(simulator, mount):
    time.sleep(FAST_INTERVAL * 2)  # connect()'s answer is too old to be used again
    simulator.pause()
    started = time.monotonic()
    with pytest.raises(DeviceError, match=r"'get all' failed: no answer within 1 s"):
        mount.state()
    assert time.monotonic() - started < TIMEOUT + FAST_INTERVAL + TIMEOUT_SLACK
    simulator.resume()
    # The next request opens a new connection (the old one was closed, so that a late answer
    # cannot be taken for a later command's).
    assert mount.state().parked
    assert counters(mount)["connections"] == 2


def test_requests_queued_behind_an_unanswered_one_fail_at_once(simulator, mount):
    time.sleep(FAST_INTERVAL * 2)
    simulator.pause()
    errors = []

    def read():
        try:
            mount.state()
        except DeviceError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=read) for _ in range(BURST_THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * BURST_THREADS)
    # Not one Timeout each in turn: one for the first, then the others learn from it.
    assert time.monotonic() - started < TIMEOUT + FAST_INTERVAL + TIMEOUT_SLACK
    assert len(errors) == BURST_THREADS
    assert sum("failed: no answer within 1 s" in error for error in errors) == 1
    assert sum("left an earlier request unanswered" in error for error in errors) \
        == BURST_THREADS - 1
    simulator.resume()
    assert mount.state().parked  # requests made afterwards are sent again


def test_the_driver_reconnects_once_after_the_server_drops_the_connection(simulator, mount):
    simulator.signal(signal.SIGUSR1)  # the simulator drops its client
    time.sleep(FAST_INTERVAL)
    mount.unpark()
    assert not mount.state().parked
    found = counters(mount)
    assert (found["connections"], found["violations"]) == (2, 0)


def test_a_lost_connection_that_cannot_be_reopened_is_a_device_error(simulator, mount):
    simulator.stop()
    with pytest.raises(DeviceError, match="connection was lost .* reconnecting failed: "
                                          "cannot reach the mount computer"):
        mount.unpark()


def test_connecting_to_nothing_is_a_device_error(make_mount):
    with socket.socket() as placeholder:
        placeholder.bind((HOST, 0))
        port = placeholder.getsockname()[1]  # a free port: nothing listens on it
    mount = TextTcpMount(settings(port), SITE)
    with pytest.raises(DeviceError, match=f"mount \\(text-tcp at {HOST}:{port}\\): connecting "
                                          "failed: cannot reach"):
        mount.connect()
    assert mount.describe()["Connected"] is False
    with pytest.raises(DeviceError, match="not connected"):
        mount.state()


def test_at_the_default_interval_of_one_second_the_rate_holds(make_simulator, make_mount):
    simulator = make_simulator(min_interval=1.0)
    connected = time.monotonic()
    mount = make_mount(simulator, interval=1.0)
    results, failures, started = [], [], time.monotonic()

    def poll():
        while time.monotonic() - started < DEFAULT_INTERVAL_BURST_SECONDS:
            try:
                results.append(mount.state())
            except DeviceError as error:
                failures.append(error)
                return

    threads = [threading.Thread(target=poll) for _ in range(BURST_THREADS)]
    for thread in threads:
        thread.start()
    mount.unpark()  # a command and its confirmation, among the threads' queries
    for thread in threads:
        thread.join(DEFAULT_INTERVAL_BURST_SECONDS + SLEW_TIMEOUT)
    assert not failures  # no thread starved waiting for its turn
    assert results[-1].parked is False
    found = counters(mount)
    assert found["violations"] == 0
    # One command a second at most: connect's query, unpark, its confirmation, the threads'
    # queries, and this last one.
    assert found["commands"] <= time.monotonic() - connected + 1


@pytest.fixture
def wrong_server():
    """A TCP server on 127.0.0.1 that answers every line with a tag the driver does not want,
    then ``.EOF``: not a mount computer. Serves one client; closed at the end."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(TIMEOUT * 5)

    def serve():
        try:
            client, _ = listener.accept()
        except OSError:
            return  # closed before a client came
        with client, client.makefile("rb") as reader:
            for _ in reader:
                client.sendall(b"hello world\n.EOF\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(TIMEOUT * 5)


def test_a_server_that_is_not_a_mount_computer_is_a_device_error(wrong_server):
    mount = TextTcpMount(settings(wrong_server), SITE)
    with pytest.raises(DeviceError, match=r"'get all' failed: the answer has no 'ra' "
                                          r"\(tags: \['hello'\]\)"):
        mount.connect()
    assert mount.describe()["Connected"] is False
