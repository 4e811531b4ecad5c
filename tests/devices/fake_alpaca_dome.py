"""An Alpaca server with a dome and a safety monitor that fail as a test tells them to, run as
its own process on 127.0.0.1 (``python fake_alpaca_dome.py PORT [SHUTTER]``).

alpaca-simulators' dome always works and does not hold a device to being connected; real
drivers do (every call but ``Connected`` answers NotConnected, 0x407, until it is set). This
server does too, and a test can jam the shutter while it closes, make ``ShutterStatus`` a value
outside ASCOM's, or have the server forget its connections, as a restarted server does.

Controls (JSON over HTTP, beside the Alpaca API):

``PUT /control`` with a JSON object
    ``is_safe`` (bool), ``jammed`` (the shutter stays closing once told to close),
    ``shutter_status`` (the number ``ShutterStatus`` answers), ``unreadable`` (a number
    ``ShutterStatus`` answers whatever the shutter does), ``forget`` (true: every device is
    no longer connected).
``GET /control``
    The state, and ``calls``: every method the devices were asked to run, in order.

:class:`FakeAlpacaDome` starts and stops it from a test, by its PID.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

#: Alpaca's error number for a call to a device that is not connected.
NOT_CONNECTED = 0x407
#: ASCOM ShutterStatus values.
OPEN, CLOSED, OPENING, CLOSING = 0, 1, 2, 3
#: Seconds the server may take to answer after it is started, and to stop.
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
#: The devices it serves: Alpaca device type, number 0.
DEVICES = ("dome", "safetymonitor")


class _State:
    def __init__(self, shutter):
        self.lock = threading.Lock()
        self.connected = {device: False for device in DEVICES}
        self.shutter_status = shutter
        self.jammed = False
        self.unreadable = None
        self.is_safe = True
        self.calls = []

    def value(self, device, name):
        """The value of property *name* of *device*."""
        if device == "safetymonitor":
            return {"issafe": self.is_safe}[name]
        shutter = self.shutter_status if self.unreadable is None else self.unreadable
        return {"shutterstatus": shutter, "slewing": False, "atpark": False,
                "azimuth": 0.0, "cansetshutter": True, "canpark": False,
                "cansetazimuth": False}[name]

    def run(self, device, method):
        self.calls.append(f"{device}.{method}")
        if method == "closeshutter":
            self.shutter_status = CLOSING if self.jammed else CLOSED
        elif method == "openshutter":
            self.shutter_status = OPEN


class _Handler(BaseHTTPRequestHandler):
    state = None  # the server's _State

    def _reply(self, body, status=200, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _alpaca(self, value=None, error=0, message=""):
        self._reply(json.dumps({"Value": value, "ErrorNumber": error, "ErrorMessage": message,
                                "ClientTransactionID": 0, "ServerTransactionID": 0}))

    def _target(self):
        """``(device, member)`` of an Alpaca request; ``None`` once answered: no such device."""
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) != 5 or parts[:2] != ["api", "v1"] or parts[3] != "0" \
                or parts[2] not in DEVICES:
            self._reply("no such device", 400, "text/plain")
            return None
        return parts[2], parts[4].lower()

    def _refused(self, device):
        """Whether the request was answered NotConnected, as real drivers answer a call to a
        device not connected (with the state's lock held)."""
        if self.state.connected[device]:
            return False
        self._alpaca(error=NOT_CONNECTED, message=f"the {device} is not connected")
        return True

    def do_GET(self):
        if self.path.startswith("/control"):
            with self.state.lock:
                return self._reply(json.dumps({
                    "calls": self.state.calls, "connected": self.state.connected,
                    "shutter_status": self.state.shutter_status}))
        target = self._target()
        if target is None:
            return None
        device, name = target
        with self.state.lock:
            if name == "connected":
                return self._alpaca(self.state.connected[device])
            if self._refused(device):
                return None
            try:
                return self._alpaca(self.state.value(device, name))
            except KeyError:
                return self._reply(f"no property {name}", 400, "text/plain")

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        if self.path.startswith("/control"):
            changes = json.loads(body)
            with self.state.lock:
                if changes.pop("forget", False):
                    self.state.connected = {device: False for device in DEVICES}
                for key, value in changes.items():
                    setattr(self.state, key, value)
            return self._reply("{}")
        target = self._target()
        if target is None:
            return None
        device, name = target
        with self.state.lock:
            if name == "connected":
                form = {key.lower(): value for key, value in parse_qs(body).items()}
                self.state.connected[device] = form["connected"][0].lower() == "true"
                return self._alpaca()
            if self._refused(device):
                return None
            self.state.run(device, name)
            return self._alpaca()

    def log_message(self, *args):
        """Quiet."""


def serve(port, shutter):
    handler = type("Handler", (_Handler,), {"state": _State(shutter)})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    server.server_close()


class FakeAlpacaDome:
    """The server as a process of its own on *port* of 127.0.0.1."""

    def __init__(self, port):
        self.port = port
        self.process = None

    def settings(self, timeout):
        return {"Driver": "alpaca", "Host": "127.0.0.1", "Port": self.port, "Device Number": 0,
                "Timeout": timeout}

    def start(self, shutter=CLOSED):
        self.process = subprocess.Popen([sys.executable, __file__, str(self.port), str(shutter)])
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                self.state()
                return self
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"the fake Alpaca dome did not start on {self.port}")
                time.sleep(0.05)

    def stop(self):
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def state(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/control", timeout=5) as answer:
            return json.load(answer)

    def control(self, **changes):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/control", method="PUT",
                                         data=json.dumps(changes).encode())
        urllib.request.urlopen(request, timeout=5).close()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else CLOSED)
