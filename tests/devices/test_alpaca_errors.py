"""The alpaca driver's failures: every one a prompt DeviceError that names device and cause."""

import http.server
import logging
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
    AlpacaCamera, AlpacaDome, AlpacaFilterWheel, AlpacaMount, AlpacaSafetyMonitor,
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


def test_the_factory_builds_alpaca_devices(simulators):
    config = default_config()
    config["Site"] = dict(SITE)
    for section, device in (("Telescope", "Mount"), ("Telescope", "Camera"),
                            ("Telescope", "Filter Wheel"), ("Dome", "Enclosure"),
                            ("Dome", "Safety Monitor")):
        config[section][device] = simulators.settings()
    mount, camera, wheel = telescope_devices(config, Clock())
    dome, monitor = dome_devices(config, Clock())
    expected = (AlpacaMount, AlpacaCamera, AlpacaFilterWheel, AlpacaDome, AlpacaSafetyMonitor)
    for device, kind in zip((mount, camera, wheel, dome, monitor), expected):
        assert isinstance(device, kind)
        device.connect()
        assert device.describe()["Connected"] is True
        device.disconnect()
