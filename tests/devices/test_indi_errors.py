"""The indi driver's failures: every one a prompt DeviceError that names device and cause."""

import re
import sys
import time
from pathlib import Path

import pytest

from torosmanager.clock import Clock
from torosmanager.devices import DeviceError, FrameType, wait_for
from torosmanager.devices.indi import (
    IndiCamera,
    IndiDome,
    IndiFilterWheel,
    IndiFocuser,
    IndiMount,
    IndiSafetyMonitor,
)

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from indi_server import (  # noqa: E402,F401
    CAMERA_BINNING,
    DEVICES,
    PORT,
    SITE,
    IndiServer,
    indi_server,
    make_device,
    unused_port,
)

#: The ``Timeout`` of the devices in these tests, seconds.
TIMEOUT = 1.0
#: Seconds a failure may take beyond the timeout (a loaded test machine).
MARGIN = 1.5
#: A device name the server does not have.
UNKNOWN_DEVICE = "No Such Device"
#: Seconds for the client to find a restarted server (indipyclient retries every 5 s).
RECONNECT_TIMEOUT = 15.0
POLL_INTERVAL = 0.2
#: Longer than the CCD simulator allows (its maximum is an hour).
TOO_LONG_EXPOSURE = 5000.0

#: Every driver, built as the factory builds it.
DRIVERS = {
    "mount": lambda settings: IndiMount(settings, SITE),
    "camera": IndiCamera,
    "filter wheel": IndiFilterWheel,
    "focuser": IndiFocuser,
    "dome": IndiDome,
    "safety monitor": lambda settings: IndiSafetyMonitor(settings, Clock()),
}
EVERY_KIND = pytest.mark.parametrize("kind", list(DRIVERS))


def label(kind, device, port):
    """How the messages name a device, as a regular expression."""
    return rf"^{kind} \(INDI device '{device}' at 127\.0\.0\.1:{port}\)"


def timed_failure(call):
    """Call *call*, which must raise DeviceError; return ``(error message, seconds taken)``."""
    started = time.monotonic()
    with pytest.raises(DeviceError) as raised:
        call()
    return str(raised.value), time.monotonic() - started


@EVERY_KIND
def test_a_server_that_is_gone_fails_the_connection_at_once(kind, indi_server):
    port = unused_port()
    device = DRIVERS[kind](dict(indi_server.settings(kind, Timeout=TIMEOUT), Port=port))
    message, seconds = timed_failure(device.connect)
    # Refused at once: no need to wait for the timeout.
    assert seconds < TIMEOUT
    assert re.match(label(kind, DEVICES[kind], port) + r": connecting failed: cannot reach the "
                    r"INDI server \(Connection refused", message), message
    device.disconnect()


@EVERY_KIND
def test_a_device_the_server_does_not_have_fails_the_connection_after_the_timeout(
        kind, make_device, indi_server):
    message, seconds = timed_failure(
        lambda: make_device(DRIVERS[kind], kind, Device=UNKNOWN_DEVICE, Timeout=TIMEOUT))
    assert TIMEOUT * 0.9 < seconds < TIMEOUT + MARGIN
    assert message.startswith(f"{kind} (INDI device '{UNKNOWN_DEVICE}' at 127.0.0.1:"
                              f"{indi_server.port}): connecting failed: the server sent no "
                              f"CONNECTION of a device named '{UNKNOWN_DEVICE}'"), message


def test_a_request_to_a_hung_server_fails_after_the_timeout(make_device, indi_server):
    wheel = make_device(DRIVERS["filter wheel"], "filter wheel", Timeout=TIMEOUT)
    target = "Green" if wheel.state().current != "Green" else "Red"
    with indi_server.paused():
        message, seconds = timed_failure(lambda: wheel.start_move(target))
    assert TIMEOUT * 0.9 < seconds < TIMEOUT + MARGIN
    assert message == (f"filter wheel (INDI device 'Filter Simulator' at 127.0.0.1:"
                       f"{indi_server.port}): moving to filter '{target}' failed: no answer to "
                       f"FILTER_SLOT within 1 s")


def test_a_refusal_by_the_driver_is_an_error_with_its_message(make_device):
    camera = make_device(DRIVERS["camera"], "camera", Timeout=TIMEOUT)
    with pytest.raises(DeviceError, match=r"^camera \(INDI device 'CCD Simulator'.*starting a "
                                          r"5000 s LIGHT exposure failed: the driver refused "
                                          r"CCD_EXPOSURE: .*5000"):
        camera.start_exposure(TOO_LONG_EXPOSURE, FrameType.LIGHT)


def test_requests_before_connecting_fail_saying_so(indi_server):
    wheel = DRIVERS["filter wheel"](indi_server.settings("filter wheel"))
    with pytest.raises(DeviceError, match="moving to filter 'Red' failed: not connected"):
        wheel.start_move("Red")
    assert wheel.describe() == {"Driver": "indi", "Connected": False,
                                "Address": f"127.0.0.1:{indi_server.port}",
                                "Device": "Filter Simulator"}


def test_a_lost_connection_fails_the_next_read_until_the_server_is_back(indi_server, tmp_path):
    # A server of its own (the module's stays up), on the next port of the same namespace.
    server = IndiServer(tmp_path, kinds=("filter wheel",), port=PORT + 1).start().prepare()
    wheel = DRIVERS["filter wheel"](server.settings("filter wheel", Timeout=TIMEOUT))
    try:
        wheel.connect()
        assert wheel.state().current
        server.stop()
        message, seconds = timed_failure(
            lambda: [wheel.state() for _ in iter(int, 1)])  # until it notices
        assert seconds < TIMEOUT + MARGIN
        assert message.startswith(f"filter wheel (INDI device 'Filter Simulator' at 127.0.0.1:"
                                  f"{PORT + 1}): reading the position failed: lost the "
                                  f"connection to the INDI server"), message
        report = wheel.describe()
        assert report["Connected"] is False and "lost the connection" in report["Error"]
        # A new server, its wheel not connected: the client finds it and connects the device.
        server.start()
        assert server.get("filter wheel", "CONNECTION", "CONNECT") == "Off"
        wait_for(lambda: _answers(wheel), RECONNECT_TIMEOUT, "the wheel to answer again",
                 POLL_INTERVAL)
        assert server.get("filter wheel", "CONNECTION", "CONNECT") == "On"
    finally:
        wheel.disconnect()
        server.stop()


#: The short exposure, and the seconds its frame may take to come, of the test below.
EXPOSURE, READOUT_TIMEOUT = 0.2, 10.0


def test_a_camera_connected_again_by_a_restarted_server_is_set_up_again(indi_server, tmp_path):
    """A restarted INDI server forgets the camera's binning (4×4 here; its default is 1×1):
    the driver connected the device again, and its frames came full size while the driver,
    and so the FITS headers, still said 4×4. The camera is set up again before its first
    exposure after the device was connected again."""
    server = IndiServer(tmp_path, kinds=("camera",), port=PORT + 2).start().prepare()
    camera = IndiCamera(server.settings("camera", Timeout=TIMEOUT))
    try:
        camera.connect()
        assert camera.info().binning == CAMERA_BINNING
        server.stop()
        server.start()
        server.wait_for("camera", "CONNECTION", "CONNECT", "On", timeout=RECONNECT_TIMEOUT)
        # Asked at once, while the camera is defining its properties again: the driver waits
        # for those it knew (it failed here "the device does not define CCD_INFO").
        camera.start_exposure(EXPOSURE, FrameType.LIGHT)
        info = camera.info()
        assert info.binning == int(server.get("camera", "CCD_BINNING", "HOR_BIN")) == 1
        assert info.width == int(server.get("camera", "CCD_INFO", "CCD_MAX_X"))
        wait_for(lambda: camera.state().image_ready, EXPOSURE + READOUT_TIMEOUT, "the frame",
                 POLL_INTERVAL)
        assert camera.image().shape == (info.height, info.width)
    finally:
        camera.disconnect()
        server.stop()


def test_a_device_another_client_disconnects_is_connected_again_at_once(indi_server, tmp_path,
                                                                       caplog):
    """KStars or indi_setprop disconnects the mount on the server: its properties are deleted,
    and the next reading failed "the device does not define EQUATORIAL_EOD_COORD" until the
    driver happened to see the CONNECTION property defined again (8 s later). It is connected
    again as soon as the server says it was disconnected."""
    server = IndiServer(tmp_path, kinds=("mount",), port=PORT + 3).start().prepare()
    mount = DRIVERS["mount"](server.settings("mount", Timeout=RECONNECT_TIMEOUT))
    try:
        mount.connect()
        assert mount.state() is not None
        server.set("mount", "CONNECTION", CONNECT="Off", DISCONNECT="On")
        wait_for(lambda: "by another client?" in caplog.text, TIMEOUT + MARGIN,
                 "the driver to see the device disconnected", POLL_INTERVAL)
        assert mount.state() is not None        # read once connected again, not failed
        assert server.get("mount", "CONNECTION", "CONNECT") == "On"
        assert re.search(r"WARNING .*mount \(INDI device 'Telescope Simulator' at 127\.0\.0\.1:"
                         r"\d+\): the device is disconnected on the server \(by another "
                         r"client\?\); connecting it again", caplog.text)
    finally:
        mount.disconnect()
        server.stop()


def _answers(device):
    try:
        return device.state() is not None
    except DeviceError:
        return False
