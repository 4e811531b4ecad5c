"""A simulated mount computer speaking the plain-text TCP protocol (docs/devices/text-tcp.md).

Run it as a process::

    python tests/devices/text_tcp_simulator.py --port 0 --min-interval 1.0

It listens on 127.0.0.1 (port 0: a free port), prints ``PORT <number>`` on its first line of
output once it accepts connections, and serves until it is killed. It is deliberately strict,
like the real mount computer's rules:

* one client at a time: a second concurrent connection gets ``ERR`` to its first command and is
  closed (counted as ``refused``);
* a command arriving sooner than ``--min-interval`` seconds after the previous one from the same
  client gets ``ERR`` (counted as a ``violation``, and logged);
* it moves in real time at ``--slew-rate`` degrees per second on each axis (hour angle and
  declination), tracks at the sidereal rate, parks at hour angle 0, declination 0.

Its coordinates are apparent (of date); the sidereal time is the mean one from the standard
formula, which is within about a second of time of the apparent one: enough for a simulator,
which reads back exactly what it was sent.

Test-only extras: the query ``get counters`` (``connections``, ``refused``, ``violations``,
``commands``), and SIGUSR1, which drops the current client's connection.

It uses only the standard library, so that it starts in a fraction of a second.
"""

import argparse
import logging
import math
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil

logger = logging.getLogger("text_tcp_simulator")

HOST = "127.0.0.1"
#: Seconds since the Unix epoch → Julian date, and the Julian date of J2000.0.
SECONDS_PER_DAY = 86400.0
UNIX_EPOCH_JD = 2440587.5
J2000_JD = 2451545.0
#: Mean sidereal time (degrees) at J2000.0 and its rate (degrees per day): IAU 1982, to first
#: order, which is enough here.
GMST_AT_J2000 = 280.46061837
GMST_DEGREES_PER_DAY = 360.98564736629
DEGREES_PER_HOUR = 15.0
DEGREES_PER_TURN = 360.0
HALF_TURN = 180.0
RIGHT_ANGLE = 90.0
#: The park position: on the meridian, at the celestial equator.
PARK_HOUR_ANGLE, PARK_DEC = 0.0, 0.0
#: The test site (CTMO), unless the command line says otherwise.
DEFAULT_LATITUDE, DEFAULT_LONGITUDE = 25.9958, -97.5690
DEFAULT_SLEW_RATE = 30.0  # degrees per second on each axis
DEFAULT_MIN_INTERVAL = 1.0  # seconds, the real mount computer's rule
#: ``struct tcp_info`` begins with the connection's state, one byte; 1 is ESTABLISHED
#: (<netinet/tcp.h>), which a connection leaves when its peer closes or resets it.
TCP_INFO_STATE_BYTES = 1
TCP_ESTABLISHED = 1
#: Seconds between looks at whether the process has stopped.
PAUSE_POLL_INTERVAL = 0.01
#: A longer command line is refused (and the connection closed).
MAX_LINE_BYTES = 1024


def wrap180(degrees):
    return (degrees + HALF_TURN) % DEGREES_PER_TURN - HALF_TURN


def sexagesimal(text):
    """``[s]DD:MM:SS.S`` or ``[s]DD:MM`` or a decimal number → float (ValueError otherwise)."""
    negative = text.startswith("-")
    parts = text.lstrip("+-").split(":")
    if len(parts) > 3 or any(not part for part in parts):
        raise ValueError(text)
    numbers = [float(part) for part in parts]
    if any(number < 0 for number in numbers) or any(number >= 60 for number in numbers[1:]):
        raise ValueError(text)
    value = sum(number / 60 ** place for place, number in enumerate(numbers))
    return -value if negative else value


def ra_text(degrees):
    centiseconds = round((degrees % DEGREES_PER_TURN) / DEGREES_PER_HOUR * 360000) % 8640000
    hours, rest = divmod(centiseconds, 360000)
    minutes, rest = divmod(rest, 6000)
    return f"{hours:02d}:{minutes:02d}:{rest / 100:05.2f}"


def dec_text(degrees):
    tenths = round(abs(degrees) * 36000)
    whole, rest = divmod(tenths, 36000)
    minutes, rest = divmod(rest, 600)
    return f"{'-' if degrees < 0 else '+'}{whole:02d}:{minutes:02d}:{rest / 10:04.1f}"


class MountComputer:
    """The simulated mount: an equatorial mount moving in real time."""

    def __init__(self, latitude, longitude, slew_rate, clock=time.time):
        self.latitude, self.longitude = latitude, longitude
        self.slew_rate = slew_rate
        self.clock = clock
        self.lock = threading.Lock()
        self.hour_angle, self.dec = PARK_HOUR_ANGLE, PARK_DEC
        self.parked, self.tracking = True, False
        self.goal = None  # None, "target" or "park"
        self.target_ra = self.target_dec = None
        self.updated = clock()

    def local_sidereal_time(self, instant):
        days = instant / SECONDS_PER_DAY + UNIX_EPOCH_JD - J2000_JD
        return (GMST_AT_J2000 + GMST_DEGREES_PER_DAY * days + self.longitude) % DEGREES_PER_TURN

    def horizontal(self, hour_angle, dec):
        lat, ha, dec = (math.radians(each) for each in (self.latitude, hour_angle, dec))
        altitude = math.asin(math.sin(dec) * math.sin(lat)
                             + math.cos(dec) * math.cos(lat) * math.cos(ha))
        azimuth = math.atan2(-math.sin(ha) * math.cos(dec),
                             math.cos(lat) * math.sin(dec) - math.sin(lat) * math.cos(dec)
                             * math.cos(ha))
        return math.degrees(altitude), math.degrees(azimuth) % DEGREES_PER_TURN

    def advance(self):
        """Move from the last update to now."""
        now = self.clock()
        elapsed = now - self.updated
        if self.goal is not None:
            if self.goal == "target":
                goal_ha = wrap180(self.local_sidereal_time(now) - self.target_ra)
                goal_dec = self.target_dec
            else:
                goal_ha, goal_dec = PARK_HOUR_ANGLE, PARK_DEC
            step = self.slew_rate * elapsed
            ha_left, dec_left = wrap180(goal_ha - self.hour_angle), goal_dec - self.dec
            self.hour_angle = goal_ha if abs(ha_left) <= step else wrap180(
                self.hour_angle + math.copysign(step, ha_left))
            self.dec = goal_dec if abs(dec_left) <= step else self.dec + math.copysign(step,
                                                                                         dec_left)
            if (self.hour_angle, self.dec) == (goal_ha, goal_dec):
                if self.goal == "target":
                    self.tracking = True
                else:
                    self.parked, self.tracking = True, False
                logger.info("%s reached", self.goal)
                self.goal = None
        elif self.tracking:
            self.hour_angle = wrap180(self.hour_angle + self.local_sidereal_time(now)
                                      - self.local_sidereal_time(self.updated))
        self.updated = now

    def handle(self, words):
        """The answer lines to the command *words* (lower case)."""
        with self.lock:
            self.advance()
            return self._dispatch(words)

    def _dispatch(self, words):
        match words:
            case ["get", "position"]:
                return self._position() + [".EOF"]
            case ["get", "status"]:
                return self._status() + [".EOF"]
            case ["get", "all"]:
                return self._position() + self._status() + [".EOF"]
            case ["set", "ra", value]:
                return self._set_target("ra", value, lambda hours: 0 <= hours < 24)
            case ["set", "dec", value]:
                return self._set_target("dec", value, lambda degrees: abs(degrees) <= 90)
            case ["slew"]:
                return self._slew()
            case ["stop"]:
                self.goal = None
                return ["OK"]
            case ["track", ("on" | "off") as switch]:
                if self.parked:
                    return ["ERR parked"]
                self.tracking = switch == "on"
                return ["OK"]
            case ["park"]:
                if not self.parked:
                    self.goal, self.tracking = "park", False
                return ["OK"]
            case ["unpark"]:
                self.parked = False
                return ["OK"]
        return ["ERR"]

    def _position(self):
        now = self.updated
        altitude, azimuth = self.horizontal(self.hour_angle, self.dec)
        return [f"ra {ra_text(self.local_sidereal_time(now) - self.hour_angle)}",
                f"dec {dec_text(self.dec)}", f"alt {altitude:.4f}", f"az {azimuth:.4f}"]

    def _status(self):
        return [f"slewing {int(self.goal is not None)}", f"parked {int(self.parked)}",
                f"tracking {int(self.tracking)}"]

    def _set_target(self, which, value, valid):
        try:
            number = sexagesimal(value)
        except ValueError:
            return ["ERR"]
        if not valid(number):
            return ["ERR"]
        if which == "ra":
            self.target_ra = number * DEGREES_PER_HOUR
        else:
            self.target_dec = number
        return ["OK"]

    def _slew(self):
        if self.parked:
            return ["ERR parked"]
        if self.target_ra is None or self.target_dec is None:
            return ["ERR no target"]
        hour_angle = wrap180(self.local_sidereal_time(self.updated) - self.target_ra)
        if self.horizontal(hour_angle, self.target_dec)[0] < 0:
            return ["ERR below horizon"]
        self.goal = "target"
        return ["OK"]


class Server:
    """The TCP server: one client at a time, at most one command per *min_interval*."""

    def __init__(self, mount, port, min_interval):
        self.mount = mount
        self.min_interval = min_interval
        self.listener = socket.create_server((HOST, port))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.active = None
        self.counters = {"connections": 0, "refused": 0, "violations": 0, "commands": 0}

    def serve_forever(self):
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def drop_client(self, *_signal):
        """Close the current client's connection (SIGUSR1)."""
        with self.lock:
            client, self.active = self.active, None
        if client is not None:
            logger.info("dropping the client's connection")
            client.shutdown(socket.SHUT_RDWR)

    def _serve(self, client):
        with self.lock:
            refused = self.active is not None and _open(self.active)
            if refused:
                self.counters["refused"] += 1
            else:
                self.active = client
                self.counters["connections"] += 1
        logger.info("%s connection", "refused a second" if refused else "accepted a")
        reader = client.makefile("rb")
        previous = None
        try:
            while True:
                raw = reader.readline(MAX_LINE_BYTES)
                arrived = time.monotonic()
                if not raw.endswith(b"\n"):
                    break  # closed, or a line too long
                if refused:
                    client.sendall(b"ERR\n")
                    break
                lines = self._answer(raw.decode("ascii", "replace").strip(), arrived, previous)
                previous = arrived
                client.sendall("".join(line + "\n" for line in lines).encode("ascii"))
        except OSError as error:
            logger.info("connection ended: %s", error)
        finally:
            with self.lock:
                if self.active is client:
                    self.active = None
            reader.close()
            client.close()

    def _answer(self, command, arrived, previous):
        with self.lock:
            self.counters["commands"] += 1
            if previous is not None and arrived - previous < self.min_interval:
                self.counters["violations"] += 1
                logger.warning("rate violation: %r %.3f s after the previous command", command,
                               arrived - previous)
                return ["ERR"]
            if command.lower() == "get counters":
                return [f"{name} {value}" for name, value in self.counters.items()] + [".EOF"]
        return self.mount.handle(command.lower().split())


def _open(client):
    """Whether *client*'s peer still has the connection open (its thread may not have seen
    the end yet, e.g. right after the process was stopped and continued). Linux's TCP state
    tells, even when unread data (a command sent before the peer closed) precedes the end."""
    try:
        state = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_STATE_BYTES)[0]
    except OSError:
        return False  # already closed
    return state == TCP_ESTABLISHED


class SimulatorProcess:
    """This simulator as a child process, for tests: started on a free port, stopped by PID.

    Parameters
    ----------
    log_path : str
        Where its log (stderr) goes.
    min_interval, slew_rate : float
        Its ``--min-interval`` and ``--slew-rate``.
    """

    #: Real seconds it may take to start and to stop.
    START_TIMEOUT = 10.0
    STOP_TIMEOUT = 5.0

    def __init__(self, log_path, min_interval=DEFAULT_MIN_INTERVAL, slew_rate=DEFAULT_SLEW_RATE):
        self.log_path = log_path
        self.arguments = ["--port", "0", "--min-interval", str(min_interval),
                          "--slew-rate", str(slew_rate)]
        self.process = None
        self.port = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, __file__, *self.arguments],
                                            stdout=subprocess.PIPE, stderr=log)
        ready, _, _ = select.select([self.process.stdout], [], [], self.START_TIMEOUT)
        line = self.process.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def signal(self, number):
        os.kill(self.process.pid, number)

    def pause(self):
        """Stop it with SIGSTOP (it falls silent), and wait until it is stopped."""
        self.signal(signal.SIGSTOP)
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if psutil.Process(self.process.pid).status() == psutil.STATUS_STOPPED:
                return
            time.sleep(PAUSE_POLL_INTERVAL)
        raise RuntimeError("the simulator did not stop on SIGSTOP")

    def resume(self):
        self.signal(signal.SIGCONT)

    def stop(self):
        """Stop it (also when it is stopped by SIGSTOP); idempotent."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(self.STOP_TIMEOUT)
        self.process.stdout.close()


def main(arguments=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--min-interval", type=float, default=DEFAULT_MIN_INTERVAL)
    parser.add_argument("--slew-rate", type=float, default=DEFAULT_SLEW_RATE)
    parser.add_argument("--latitude", type=float, default=DEFAULT_LATITUDE)
    parser.add_argument("--longitude", type=float, default=DEFAULT_LONGITUDE)
    options = parser.parse_args(arguments)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    server = Server(MountComputer(options.latitude, options.longitude, options.slew_rate),
                    options.port, options.min_interval)
    signal.signal(signal.SIGUSR1, server.drop_client)
    print(f"PORT {server.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
