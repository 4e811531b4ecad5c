"""The alpaca driver's failures: every one a prompt DeviceError that names device and cause."""

import http.server
import json
import logging
import math
import sys
import threading
import time
import xmlrpc.client
from pathlib import Path

import pytest

pytest.importorskip("alpaca", reason="alpyca is not installed (pip install alpyca)")

from torosmanager.clock import Clock  # noqa: E402
from torosmanager.config import default_config  # noqa: E402
from torosmanager.devices import DeviceError  # noqa: E402
from torosmanager.devices.alpaca import (  # noqa: E402
    AlpacaCamera, AlpacaDome, AlpacaFilterWheel, AlpacaFocuser, AlpacaMount, AlpacaSafetyMonitor,
)
from torosmanager.devices.factory import dome_devices, telescope_devices  # noqa: E402

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from alpaca_server import (  # noqa: E402,F401
    HOST, SITE, alpaca_server, dead_settings, free_port, silent_server, simulators,
)

#: The ``Timeout`` of the devices in these tests, seconds.
TIMEOUT = 1.0
#: Seconds a failure may take beyond the timeout (a loaded test machine).
MARGIN = 1.5
#: A timeout may fire this much early, as clocks count (fraction of it).
EARLY = 0.05
#: A device number the simulators do not have.
UNKNOWN_DEVICE = 7

#: Every driver, built as the factory builds it, and the Alpaca device type it names.
DRIVERS = {
    "mount": (lambda settings: AlpacaMount(settings, SITE), "telescope"),
    "camera": (AlpacaCamera, "camera"),
    "filter wheel": (AlpacaFilterWheel, "filterwheel"),
    "focuser": (AlpacaFocuser, "focuser"),
    "dome": (AlpacaDome, "dome"),
    "safety monitor": (lambda settings: AlpacaSafetyMonitor(settings, Clock()), "safetymonitor"),
}
EVERY_DRIVER = pytest.mark.parametrize("kind", list(DRIVERS))


def failure(action):
    """Run *action*, which must raise DeviceError; return its message and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(DeviceError) as failed:
        action()
    return str(failed.value), time.monotonic() - started


@EVERY_DRIVER
def test_nothing_listening_fails_at_once(kind, caplog):
    port = free_port()
    make, device_type = DRIVERS[kind]
    device = make(dead_settings(port, TIMEOUT))
    message, seconds = failure(device.connect)
    assert message == (f"{kind} (Alpaca {device_type} 0 at {HOST}:{port}): setting Connected to "
                       "True failed: cannot reach the server (Connection refused)")
    assert seconds < TIMEOUT + MARGIN
    with caplog.at_level(logging.WARNING):
        device.disconnect()  # a device already gone: logged, not raised
    assert f"{HOST}:{port}): setting Connected to False failed: cannot reach the server " \
           "(Connection refused) (ignored: disconnecting)" in caplog.text
    report = device.describe()
    assert report == {"Driver": "alpaca", "Connected": False, "Address": f"{HOST}:{port}/0"}


@EVERY_DRIVER
def test_a_server_that_never_answers_fails_within_the_timeout(kind):
    make, device_type = DRIVERS[kind]
    with silent_server() as port:
        device = make(dead_settings(port, TIMEOUT))
        message, seconds = failure(device.connect)
    assert message == (f"{kind} (Alpaca {device_type} 0 at {HOST}:{port}): setting Connected to "
                       f"True failed: no answer within {TIMEOUT:g} s")
    assert TIMEOUT * (1 - EARLY) <= seconds < TIMEOUT + MARGIN


def test_a_server_that_stops_answering_mid_night(simulators):
    mount = AlpacaMount(simulators.settings(timeout=TIMEOUT), SITE)
    mount.connect()
    with simulators.paused():
        message, seconds = failure(mount.state)
        assert f"no answer within {TIMEOUT:g} s" in message
        assert seconds < TIMEOUT + MARGIN
        report = mount.describe()
        assert report["Connected"] is False and "no answer" in report["Error"]
        xmlrpc.client.dumps((report,))
    assert mount.state().parked  # the server answers again
    mount.disconnect()


#: The hung camera's ``Timeout`` in the test below: long beside one request to a healthy device.
HUNG_TIMEOUT = 3.0


def test_a_device_that_never_answers_delays_no_other_device(simulators):
    """alpyca holds one lock for the whole process across each request: a camera that no
    longer answered held every other device's requests back by its whole timeout (the mount's
    park by 26 s in a telescope daemon). Each device waits only for its own requests now."""
    mount = AlpacaMount(simulators.settings(timeout=TIMEOUT), SITE)
    mount.connect()
    with silent_server() as port:
        camera = AlpacaCamera(dead_settings(port, HUNG_TIMEOUT))
        failed = []
        waiting = threading.Thread(target=lambda: failed.append(failure(camera.connect)))
        waiting.start()
        try:
            time.sleep(TIMEOUT / 2)  # the camera's request is sent, and waits for its answer
            started = time.monotonic()
            assert mount.state().parked
            assert time.monotonic() - started < TIMEOUT
        finally:
            waiting.join()
    message, seconds = failed[0]
    assert f"no answer within {HUNG_TIMEOUT:g} s" in message
    assert seconds >= HUNG_TIMEOUT * (1 - EARLY)
    mount.disconnect()


@EVERY_DRIVER
def test_an_unknown_device_number(simulators, kind):
    make, device_type = DRIVERS[kind]
    device = make(simulators.settings(UNKNOWN_DEVICE))
    message, _ = failure(device.connect)
    assert message.startswith(f"{kind} (Alpaca {device_type} {UNKNOWN_DEVICE} at "
                              f"{HOST}:{simulators.port}): setting Connected to True failed: ")
    assert f"Device {device_type}:{UNKNOWN_DEVICE} not found" in message


class _NotAlpaca(http.server.BaseHTTPRequestHandler):
    """A web server that is not an Alpaca server: a page for every request."""

    def answer(self):
        body = b"<html>Hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = answer

    def log_message(self, *args):
        """Quiet."""


def test_a_server_that_is_not_alpaca():
    server = http.server.ThreadingHTTPServer((HOST, 0), _NotAlpaca)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dome = AlpacaDome(dead_settings(server.server_address[1], TIMEOUT))
        message, _ = failure(dome.connect)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)
    assert "setting Connected to True failed: not a valid Alpaca answer" in message


class _OddAnswers(http.server.BaseHTTPRequestHandler):
    """An Alpaca server whose answers are well-formed but whose values are not what the
    standard says: ``Value`` of each property as :attr:`values` holds it (lower case)."""

    values = {}

    def answer(self):
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        body = json.dumps({"Value": self.values.get(name, True), "ErrorNumber": 0,
                           "ErrorMessage": "", "ClientTransactionID": 0,
                           "ServerTransactionID": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer()

    do_GET = answer

    def log_message(self, *args):
        """Quiet."""


@pytest.fixture
def odd_server():
    """``(port, values)`` of an :class:`_OddAnswers` server on loopback, for one test."""
    handler = type("Answers", (_OddAnswers,), {"values": {}})
    server = http.server.ThreadingHTTPServer((HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler.values
    server.shutdown()
    server.server_close()
    thread.join(TIMEOUT)


@pytest.mark.parametrize("value", ["false", "true", 0, None])
def test_a_safety_verdict_that_is_not_true_or_false_is_an_error_never_safe(odd_server, value):
    """bool("false") is True to Python: a monitor answering text would have opened the dome."""
    port, values = odd_server
    values.update(issafe=value, timesincelastupdate=5.0)
    monitor = AlpacaSafetyMonitor(dead_settings(port, TIMEOUT), Clock())
    monitor.connect()
    message, _ = failure(monitor.state)
    assert message == (f"safety monitor (Alpaca safetymonitor 0 at {HOST}:{port}): reading "
                       f"IsSafe failed: it answered {value!r}, not true or false")


#: A device whose answers are as the standard says but for one property, which is text
#: (``bool("false")`` is true), and what reading its state must refuse.
ODD_FLAGS = {
    "dome's Slewing": (AlpacaDome, {"shutterstatus": 1, "slewing": "false"}, "Slewing"),
    "dome's AtPark": (AlpacaDome, {"shutterstatus": 1, "slewing": False, "atpark": "no"},
                      "AtPark"),
    "camera's ImageReady": (AlpacaCamera, {"cameraxsize": 8, "cameraysize": 8, "binx": 1,
                                           "biny": 1, "pixelsizex": 9.0, "maxadu": 65535,
                                           "camerastate": 0, "imageready": "false",
                                           "percentcompleted": 0, "ccdtemperature": -20.0},
                            "ImageReady"),
}


@pytest.mark.parametrize("case", list(ODD_FLAGS))
def test_a_yes_or_no_that_is_not_true_or_false_is_an_error_not_its_opposite(odd_server, case):
    """A dome slewing for ever, an image ready before it is, read from a server's "false"."""
    device_class, answers, name = ODD_FLAGS[case]
    port, values = odd_server
    values.update(answers)
    device = device_class(dead_settings(port, TIMEOUT))
    device.connect()
    message, _ = failure(device.state)
    assert message.endswith(f"reading {name} failed: it answered {answers[name.lower()]!r}, "
                            "not true or false")


def test_connected_answered_as_text_fails_the_connection(odd_server):
    port, values = odd_server
    values["connected"] = "true"
    message, _ = failure(AlpacaDome(dead_settings(port, TIMEOUT)).connect)
    assert message.endswith("reading Connected failed: it answered 'true', not true or false")


@pytest.mark.parametrize("age", [float("nan"), "5", None])
def test_weather_data_of_no_age_are_an_error(odd_server, age):
    """The station's age dates the verdict; NaN dated it nowhere (and raised ValueError, which
    no driver error is: the dome's guard then kept no verdict at all)."""
    port, values = odd_server
    values.update(issafe=True, timesincelastupdate=5.0)
    monitor = AlpacaSafetyMonitor(dead_settings(port, TIMEOUT), Clock())
    monitor.connect()
    assert monitor.dated_by_weather and monitor.state().safe
    values["timesincelastupdate"] = age
    message, _ = failure(monitor.state)
    assert message == (f"weather station (Alpaca observingconditions 0 at {HOST}:{port}): "
                       f"reading TimeSinceLastUpdate failed: it answered {age!r}, not a number "
                       "of seconds")


def test_weather_data_of_a_negative_age_are_an_error_not_fresh(odd_server):
    """A negative age (some drivers' answer for a sensor never read) was taken as 0 s: data
    of no known time dated now, the dome kept open on them."""
    port, values = odd_server
    values.update(issafe=True, timesincelastupdate=5.0)
    monitor = AlpacaSafetyMonitor(dead_settings(port, TIMEOUT), Clock())
    monitor.connect()
    assert monitor.state().safe
    values["timesincelastupdate"] = -1.0
    message, _ = failure(monitor.state)
    assert message.endswith("reading TimeSinceLastUpdate failed: it answered -1.0: a negative "
                            "age, data of no known time")


@pytest.mark.parametrize("answer", ["n/a", [], True])
def test_a_camera_temperature_that_is_no_number_is_unknown_not_an_exception(odd_server,
                                                                            answer):
    """float('n/a') raised ValueError at every frame's start: every frame was lost for a
    reading the header can do without (it leaves NaN out: test_fits_header)."""
    port, values = odd_server
    values.update(cameraxsize=8, cameraysize=8, binx=1, biny=1, pixelsizex=9.0, maxadu=65535,
                  camerastate=0, imageready=False, percentcompleted=0, ccdtemperature=answer)
    camera = AlpacaCamera(dead_settings(port, TIMEOUT))
    camera.connect()
    assert math.isnan(camera.state().temperature)
    values["ccdtemperature"] = -20.5
    assert camera.state().temperature == -20.5


def test_the_factory_builds_alpaca_devices(simulators):
    config = default_config()
    config["Site"] = dict(SITE)
    for section, device in (("Telescope", "Mount"), ("Telescope", "Camera"),
                            ("Telescope", "Filter Wheel"), ("Telescope", "Focuser"),
                            ("Dome", "Enclosure"), ("Dome", "Safety Monitor")):
        config[section][device] = dict(config[section][device], **simulators.settings())
    mount, camera, wheel, focuser = telescope_devices(config, Clock())
    dome, monitor = dome_devices(config, Clock())
    expected = (AlpacaMount, AlpacaCamera, AlpacaFilterWheel, AlpacaFocuser, AlpacaDome,
                AlpacaSafetyMonitor)
    for device, kind in zip((mount, camera, wheel, focuser, dome, monitor), expected):
        assert isinstance(device, kind)
        device.connect()
        assert device.describe()["Connected"] is True
        device.disconnect()


def test_a_weather_station_that_did_not_answer_at_the_start_dates_the_verdicts_once_it_does(
        odd_server, caplog):
    """Down while the daemon started (the server restarting), the station used to be left
    out for good: its data could stop updating for a day and the verdicts, dated by the
    clock, still read as fresh."""
    port, values = odd_server
    values.update(issafe=True, timesincelastupdate="restarting")
    clock = Clock()
    monitor = AlpacaSafetyMonitor(dead_settings(port, TIMEOUT), clock)
    with caplog.at_level(logging.INFO, logger="torosmanager.devices.alpaca.safety"):
        monitor.connect()
    assert not monitor.dated_by_weather
    assert "; asked again at each verdict" in caplog.text
    updated = monitor.state().updated
    assert abs((clock.now() - updated).total_seconds()) < MARGIN
    values["timesincelastupdate"] = 86400.0  # back, with data a day old
    deadline = time.monotonic() + MARGIN
    while not monitor.dated_by_weather and time.monotonic() < deadline:
        monitor.state()  # each verdict looks for the station, in a thread of its own
        time.sleep(TIMEOUT / 10)
    assert monitor.dated_by_weather
    updated = monitor.state().updated
    assert abs((clock.now() - updated).total_seconds() - 86400) < MARGIN


class _HangingStation(_OddAnswers):
    """The answers of :class:`_OddAnswers`, but its weather station never answers in time."""

    def answer(self):
        if "/observingconditions/" in self.path:
            time.sleep(3 * TIMEOUT)
        super().answer()

    do_GET = answer

    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer()


def test_a_weather_station_that_hangs_does_not_hold_the_verdicts_back():
    """Looked for again at each verdict, it took the device's Timeout out of every one (10 s
    by default: every check of the dome's guard, every Status): it is looked for aside."""
    handler = type("Answers", (_HangingStation,), {"values": {"issafe": True}})
    server = http.server.ThreadingHTTPServer((HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monitor = AlpacaSafetyMonitor(dead_settings(server.server_address[1], TIMEOUT), Clock())
        monitor.connect()  # (the station's Timeout, once, at the start)
        assert not monitor.dated_by_weather
        for _ in range(3):
            _, took = timed(monitor.state)
            assert took < TIMEOUT
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def timed(action):
    started = time.monotonic()
    return action(), time.monotonic() - started
