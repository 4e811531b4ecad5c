"""An LX200 mount on a TCP port, for the tests: Meade, OnStep or 10micron dialect.

Run it as a process::

    python tests/devices/lx200_simulator.py --port 0 --dialect onstep

It listens on 127.0.0.1 (``--host`` to change), prints ``PORT <n>`` on its standard output once
it listens (port 0 picks a free port), and serves any number of clients until it is killed.

It keeps the real protocol's quirks, so that a driver that passes against it has met them:

* some replies have no terminator: ``:Sr``/``:Sd`` answer a bare ``1`` or ``0``; ``:MS#``
  answers ``0``, or ``1``/``2`` followed by a message ending in ``#`` (Meade, 10micron), or the
  digit alone (OnStep, which has codes up to 9); OnStep's ``:hP#``, ``:hR#``, ``:Te#``,
  ``:Td#`` answer a bare ``1``/``0``; the ACK byte 0x06 is answered by one letter, the
  alignment mode;
* coordinates come in low precision (``HH:MM.T``, ``sDD*MM``) until ``:U#`` toggles to high
  (``HH:MM:SS``, ``sDD*MM:SS``); ``--precision high`` starts in high;
* commands without a reply (``:Q#``, ``:U#``, ``:AP#``...) get none, and unknown commands are
  ignored, as real mounts do.

The mount moves in the time of a clock, real by default, or the daemons' simulated one
(``--clock-start``, ``--clock-anchor``, ``--clock-speed``: the configuration's ``Clock``
settings, so that ``simulated now = Start + Speed × (real now − Anchor)``, as in
:mod:`torosmanager.clock`). Its sidereal time and its motion follow that clock: a goto moves both
axes at ``--slew-rate`` degrees per clock second (at speed 100 a 30 s slew takes 0.3 real
seconds), then tracks; without tracking the pointing stays fixed on the ground (its right ascension
grows with sidereal time). Coordinates are apparent (JNow). Targets below ``--horizon-limit``
degrees (or above ``--overhead-limit``) at ``--latitude``/``--longitude`` are refused with
``1`` (``2``); ``:ShDD#`` and ``:SoDD#`` change the limits, as on Meade mounts. It starts on
the meridian at the equator, not tracking. Parking moves to the celestial pole (hour angle 0)
and stops tracking. ``:Gr#``/``:Gd#`` answer the target last set.

A 10micron mount (always a German equatorial one) says its side of the pier (``:pS#``), and so
does OnStep with ``--german`` (``:Gm#``; ``E`` in ``:GU#``): at each goto the west side
(looking east) for a target east of the meridian, the east side otherwise; kept while it
tracks. It starts on the east side.

In the OnStep dialect it also answers what INDI's ``indi_lx200_OnStep`` asks when it connects
and polls (firmware, site, date and time on its clock, tracking rate, status, alignment, ambient
conditions; see :data:`ONSTEP_FIXED_REPLIES`), as OnStep 4.24 on a fork mount (``K`` in
``:GU#``; a German equatorial one with ``--german``) without rotator, focusers or sensors.

It uses only the standard library and shares no code with the driver it tests.
"""

import argparse
import datetime
import logging
import math
import os
import re
import selectors
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

logger = logging.getLogger("lx200_simulator")

DIALECTS = ("meade", "onstep", "10micron")
ACK = b"\x06"
#: Degrees per second of sidereal time (360° in a sidereal day of 86164.0905 s).
SIDEREAL_DEGREES_PER_SECOND = 360.0 / 86164.0905
#: Julian date of the Unix epoch, and of J2000.0.
UNIX_EPOCH_JD = 2440587.5
J2000_JD = 2451545.0
SECONDS_PER_DAY = 86400.0
#: Greenwich mean sidereal time at J2000.0 and its rate, degrees and degrees per day.
GMST_AT_J2000 = 280.46061837
GMST_RATE = 360.98564736629
#: The classic LX200's ``:D#``: one bar per this many degrees left, at most 32 bars.
DEGREES_PER_BAR = 5.0
MAX_BARS = 32
BAR = "\x7f"
#: 10micron ``:Gstat#`` numbers.
GSTAT_TRACKING, GSTAT_PARKING, GSTAT_PARKED, GSTAT_SLEWING, GSTAT_NOT_TRACKING = 0, 2, 5, 6, 7
#: Seconds between two updates of the mount's motion when no client asks.
TICK = 0.05
#: What OnStep (firmware 4.24) says of itself and of what it does not have, with the replies
#: of its command reference: product, version, firmware date and time, the clock's format
#: (24 h), no rotator (``N``), no focusers (a bare ``0``), backlash (arc seconds), the pulse
#: guide rate (× sidereal), the ambient
#: conditions it assumes without sensors (°C, mbar, %, and the dew point they give, °C), the
#: alignment status (at most 6 stars, none under way) and polar alignment error (none, arc
#: seconds), and ``0``, OnStep's answer to a command it does not know, to OnStepX's queries
#: (auxiliary features, stepper drivers, CPU temperature).
ONSTEP_FIXED_REPLIES = {
    "GVP": "On-Step#", "GVN": "4.24s#", "GVD": "Nov 30 2022#", "GVT": "12:00:00#",
    "Gc": "24#", "GX98": "N#", "FA": "0", "fA": "0", "%BD": "0#", "%BR": "0#",
    "GX90": "0.50#", "GX9A": "10.0#", "GX9B": "1010.0#", "GX9C": "70.0#",
    "GX9E": "4.8#", "A?": "600#", "GX02": "0.0#",
    "GXY0": "0", "GXU1": "0", "GXU2": "0", "GX9F": "0",
}
#: OnStep's site names (``:GM#`` … ``:GP#``: sites 1 to 4).
ONSTEP_SITE_NAMES = {"GM": "Site 1#", "GN": "Site 2#", "GO": "Site 3#", "GP": "Site 4#"}
#: The sidereal tracking rate, as OnStep's ``:GT#`` gives it: Hz of a 60 Hz clock.
SIDEREAL_TRACKING_HZ = 60.16427


class SimulatedTime:
    """The clock the mount moves by: Unix seconds, real or simulated.

    The same rule as the daemons' clock (written again here: the simulator shares no code with
    what it tests): ``Start + Speed × (real now − Anchor)``.

    Parameters
    ----------
    start, anchor : datetime.datetime, optional
        The simulated instant at the real instant *anchor*; ``None`` (both) for real time.
    speed : float
        Clock seconds per real second.
    """

    def __init__(self, start=None, anchor=None, speed=1.0):
        if (start is None) != (anchor is None) or speed <= 0:
            raise ValueError("a simulated clock needs a start, an anchor and a positive speed")
        self.start = None if start is None else start.timestamp()
        self.anchor = None if anchor is None else anchor.timestamp()
        self.speed = float(speed) if start is not None else 1.0

    def __call__(self):
        """Now, Unix seconds on this clock."""
        real = time.time()
        if self.start is None:
            return real
        return self.start + self.speed * (real - self.anchor)


REAL_TIME = SimulatedTime()


def utc_instant(text):
    """A datetime from ISO 8601 *text*; UTC when it names no zone."""
    instant = datetime.datetime.fromisoformat(text)
    return instant if instant.tzinfo else instant.replace(tzinfo=datetime.timezone.utc)


def local_sidereal_degrees(longitude, unix_time=None):
    """Local mean sidereal time, degrees, at *longitude* (east) and *unix_time* (default: the
    real time now)."""
    jd = UNIX_EPOCH_JD + (time.time() if unix_time is None else unix_time) / SECONDS_PER_DAY
    return (GMST_AT_J2000 + GMST_RATE * (jd - J2000_JD) + longitude) % 360.0


def altitude_of(ra, dec, latitude, longitude, unix_time):
    """Altitude, degrees, of apparent *ra*, *dec* (degrees) at *unix_time*."""
    hour_angle = math.radians(local_sidereal_degrees(longitude, unix_time) - ra)
    lat, dec = math.radians(latitude), math.radians(dec)
    sine = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sine))))


def wrap180(angle):
    return (angle + 180.0) % 360.0 - 180.0


# --- Sexagesimal, the mount's way (independent of the driver's code) ----------------------

def write_ra(degrees, high):
    hours = (degrees % 360.0) / 15.0
    if high:
        seconds = round(hours * 3600) % 86400
        return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    tenths = round(hours * 600) % 14400
    return f"{tenths // 600:02d}:{tenths // 10 % 60:02d}.{tenths % 10:d}"


def write_dec(degrees, high):
    step = 1 if high else 60
    seconds = round(abs(degrees) * 3600 / step) * step
    sign = "-" if degrees < 0 and seconds else "+"
    text = f"{sign}{seconds // 3600:02d}*{seconds // 60 % 60:02d}"
    return text + (f":{seconds % 60:02d}" if high else "")


def write_angle(degrees, digits, high):
    """``sDD*MM`` (or ``sDDD*MM`` with *digits* 3), and ``:SS.S`` when *high*: OnStep's site
    latitude and longitude."""
    tenths = round(abs(degrees) * 36000) if high else round(abs(degrees) * 60) * 600
    sign = "-" if degrees < 0 and tenths else "+"
    text = f"{sign}{tenths // 36000:0{digits}d}*{tenths // 600 % 60:02d}"
    return text + (f":{tenths % 600 / 10:04.1f}" if high else "")


def read_sexagesimal(text):
    """Degrees (or hours) from ``[s]A<sep>B[<sep>C]``, any separators; ``None`` if not that."""
    number = r"(\d{1,2}(?:\.\d+)?)"
    match = re.fullmatch(rf"\s*([+-]?)(\d{{1,3}})[^\d]{number}(?:[^\d]{number})?", text)
    if not match:
        return None
    value = int(match.group(2)) + float(match.group(3)) / 60 + float(match.group(4) or 0) / 3600
    return -value if match.group(1) == "-" else value


class Mount:
    """The simulated mount: where it points and what it does, moving in *clock*'s time
    (a :class:`SimulatedTime`)."""

    def __init__(self, dialect, latitude, longitude, slew_rate, horizon_limit, overhead_limit,
                 high_precision, parked, clock=REAL_TIME, german=False):
        self.clock = clock
        self.dialect = dialect
        self.german = german or dialect == "10micron"
        self.pier_side = "East"  # looking west, at the meridian where it starts
        self.latitude, self.longitude = latitude, longitude
        self.slew_rate = slew_rate
        self.horizon_limit, self.overhead_limit = horizon_limit, overhead_limit
        self.high_precision = high_precision
        self.lock = threading.Lock()
        self.pole = 90.0 if latitude >= 0 else -90.0
        self.updated = clock()
        # Starts on the meridian at the celestial equator, not tracking.
        self.ra = self.sidereal_degrees()
        self.dec = 0.0
        self.tracking = False
        self.parked = parked
        self.parking = False
        self.goto = None  # (ra, dec) of a goto under way
        self.target_ra, self.target_dec = 0.0, 0.0

    def sidereal_degrees(self):
        """The local sidereal time, degrees, at the last update."""
        return local_sidereal_degrees(self.longitude, self.updated)

    # Motion -----------------------------------------------------------------------------

    def update(self):
        now = self.clock()
        # max(): a wall clock stepped back must not run the mount backwards.
        elapsed, self.updated = max(0.0, now - self.updated), now
        if self.parking:
            self.goto = (self.sidereal_degrees(), self.pole)
        if self.goto is None:
            if not self.tracking:
                self.ra = (self.ra + SIDEREAL_DEGREES_PER_SECOND * elapsed) % 360.0
            return
        step = self.slew_rate * elapsed
        goal_ra, goal_dec = self.goto
        ra_left, dec_left = wrap180(goal_ra - self.ra), goal_dec - self.dec
        self.ra = (self.ra + max(-step, min(step, ra_left))) % 360.0
        self.dec += max(-step, min(step, dec_left))
        if abs(ra_left) <= step and abs(dec_left) <= step:
            self.ra, self.dec, self.goto = goal_ra % 360.0, goal_dec, None
            if self.parking:
                self.parking, self.parked, self.tracking = False, True, False
                logger.info("parked")
            else:
                self.tracking = True
                logger.info("goto done")

    def distance_left(self):
        if self.goto is None:
            return 0.0
        return max(abs(wrap180(self.goto[0] - self.ra)), abs(self.goto[1] - self.dec))

    # Commands ---------------------------------------------------------------------------

    def answer(self, command):
        """The reply to one command (without ``:`` and ``#``), or ``None`` for no reply."""
        with self.lock:
            self.update()
            return self._answer(command)

    def _answer(self, command):
        dialect = self.dialect
        if command == "GR":
            return write_ra(self.ra, self.high_precision) + "#"
        if command == "GD":
            return write_dec(self.dec, self.high_precision) + "#"
        if command == "Gr":
            return write_ra(self.target_ra, self.high_precision) + "#"
        if command == "Gd":
            return write_dec(self.target_dec, self.high_precision) + "#"
        if command == "U":
            self.high_precision = not self.high_precision
            return None
        if command in ("U0", "U1") and dialect == "10micron":
            self.high_precision = command == "U1"
            return None
        if command.startswith("Sr"):
            return self._set_target(command[2:], is_ra=True)
        if command.startswith("Sd"):
            return self._set_target(command[2:], is_ra=False)
        if command == "MS":
            return self._slew()
        if command.startswith(("Sh", "So")):  # lowest / highest altitude a goto may reach
            limit = re.fullmatch(r"\s*([+-]?\d{1,2})\*?", command[2:])
            if limit is None:
                return "0"
            if command.startswith("Sh"):
                self.horizon_limit = float(limit.group(1))
            else:
                self.overhead_limit = float(limit.group(1))
            return "1"
        if command == "Q":
            self.goto, self.parking = None, False
            return None
        if command == "D":
            bars = math.ceil(self.distance_left() / DEGREES_PER_BAR)
            return BAR * min(MAX_BARS, max(1, bars) if self.goto else 0) + "#"
        if command == "hP" or (command == "KA" and dialect == "10micron"):
            if not self.parked:
                self.parking, self.tracking = True, False
            return "1" if dialect == "onstep" else None
        if dialect == "onstep":
            return self._onstep(command)
        if dialect == "10micron":
            return self._ten_micron(command)
        return self._meade(command)

    def _set_target(self, text, is_ra):
        value = read_sexagesimal(text)
        if value is None or (is_ra and not 0 <= value < 24) or (not is_ra and abs(value) > 90):
            return "0"
        if is_ra:
            self.target_ra = value * 15.0
        else:
            self.target_dec = value
        return "1"

    def _slew(self):
        with_message = self.dialect != "onstep"
        if self.parked or self.parking:
            return "4" if not with_message else "1Parked#"
        if self.dialect == "onstep" and not self.tracking:
            return "3"
        altitude = altitude_of(self.target_ra, self.target_dec, self.latitude, self.longitude,
                               self.updated)
        if altitude < self.horizon_limit:
            logger.info("goto refused: altitude %.1f below %.1f", altitude, self.horizon_limit)
            return "1Object Below Horizon#" if with_message else "1"
        if altitude > self.overhead_limit:
            return "2Object Above Higher#" if with_message else "2"
        self.goto = (self.target_ra, self.target_dec)
        hour_angle = wrap180(self.sidereal_degrees() - self.target_ra)
        self.pier_side = "West" if hour_angle < 0 else "East"
        logger.info("goto %s %s", write_ra(self.target_ra, True), write_dec(self.target_dec, True))
        return "0"

    def _onstep(self, command):
        fixed = ONSTEP_FIXED_REPLIES.get(command) or ONSTEP_SITE_NAMES.get(command)
        if fixed is not None:
            return fixed
        if command in ("GC", "GL", "GG"):
            # The mount's clock is the one it moves by, kept in UTC (offset 0).
            now = datetime.datetime.fromtimestamp(self.updated, datetime.timezone.utc)
            return {"GC": f"{now:%m/%d/%y}#", "GL": f"{now:%H:%M:%S}#", "GG": "+00#"}[command]
        if command in ("Gt", "GtH"):
            return write_angle(self.latitude, 2, command == "GtH") + "#"
        if command in ("Gg", "GgH"):  # LX200 longitudes are positive west
            return write_angle(-wrap180(self.longitude), 3, command == "GgH") + "#"
        if command == "GT":
            return f"{SIDEREAL_TRACKING_HZ if self.tracking else 0.0:.5f}#"
        if command == "GU":
            letters = ("n" if not self.tracking else "") + ("N" if self.goto is None else "")
            letters += "P" if self.parked else "I" if self.parking else "p"
            # E: a German equatorial mount; K: a fork mount (no meridian flip, no pier side).
            return letters + ("E#" if self.german else "K#")
        if command == "Gm":
            return f"{self.pier_side[0]}#" if self.german else "N#"
        if command == "hR":
            self.parked = False
            return "1"
        if command == "Te":
            if self.parked or self.parking:
                return "0"
            self.tracking = True
            return "1"
        if command == "Td":
            self.tracking = False
            return "1"
        return self._unknown(command)

    def _ten_micron(self, command):
        if command == "pS":
            return f"{self.pier_side}#"
        if command == "Gstat":
            if self.parked:
                code = GSTAT_PARKED
            elif self.parking:
                code = GSTAT_PARKING
            elif self.goto is not None:
                code = GSTAT_SLEWING
            else:
                code = GSTAT_TRACKING if self.tracking else GSTAT_NOT_TRACKING
            return f"{code}#"
        if command == "PO":
            self.parked = False
            return None
        if command == "AP":
            if not (self.parked or self.parking):
                self.tracking = True
            return None
        if command in ("AL", "RT9"):
            self.tracking = False
            return None
        return self._unknown(command)

    def _meade(self, command):
        if command in ("AP", "AA"):
            if not (self.parked or self.parking):
                self.tracking = True
            return None
        if command == "AL":
            self.tracking = False
            return None
        return self._unknown(command)

    def _unknown(self, command):
        logger.info("ignoring unknown command %r", command)

    def alignment(self):
        """ACK's answer: polar, or land when a Meade mount does not track."""
        with self.lock:
            self.update()
            return "L" if self.dialect == "meade" and not self.tracking else "P"


class Handler(socketserver.BaseRequestHandler):
    """One client: bytes in, replies out, command by command."""

    def handle(self):
        mount = self.server.mount
        pending = b""
        while True:
            try:
                data = self.request.recv(4096)
            except OSError:
                return
            if not data:
                return
            pending += data
            while pending:
                if pending[:1] == ACK:
                    if not self._send(mount.alignment()):
                        return
                    pending = pending[1:]
                    continue
                if pending[:1] != b":":
                    pending = pending[1:]  # a stray byte (e.g. a lone '#') between commands
                    continue
                end = pending.find(b"#")
                if end < 0:
                    break  # the rest of the command is still on its way
                command = pending[1:end].decode("latin-1")
                pending = pending[end + 1:]
                reply = mount.answer(command)
                logger.debug("%r -> %r", command, reply)
                if reply is not None and not self._send(reply):
                    return

    def _send(self, text):
        """Send *text*; ``False`` when the client has gone."""
        try:
            self.request.sendall(text.encode("latin-1"))
        except OSError:
            return False
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SimulatorProcess:
    """The simulator as a child process, for test fixtures: started, then stopped by its PID.

    Parameters
    ----------
    dialect : str
    options : str
        More command-line options, e.g. ``"--horizon-limit", "40"``.
    clock : torosmanager.clock.Clock, optional
        The clock to move in (its settings go on the command line); real time by default.
    """

    #: Real seconds the process has to print its port.
    START_TIMEOUT = 10.0

    def __init__(self, dialect, *options, clock=None):
        self.dialect = dialect
        if clock is not None and clock.simulated:
            options += ("--clock-start", clock.start.isoformat(),
                        "--clock-anchor", clock.anchor.isoformat(),
                        "--clock-speed", repr(clock.speed))
        # A file, not a pipe: a pipe nobody reads would block a talkative simulator.
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self._errors = None
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--port", "0", "--dialect", dialect, *options],
            stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.port = self._read_port()
        #: The pyserial URL of the simulator.
        self.url = f"socket://127.0.0.1:{self.port}"

    def _read_port(self):
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(self.START_TIMEOUT):
                self.stop()
                raise RuntimeError("the LX200 simulator did not start in time")
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the LX200 simulator did not start: {line!r}")
        return int(line.split()[1])

    def stop(self):
        """Kill the process (by its PID) and return what it logged (idempotent)."""
        if self._errors is None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process.stdout.close()
            self._log.seek(0)
            self._errors = self._log.read()
            self._log.close()
        return self._errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dialect", choices=DIALECTS, default="meade")
    parser.add_argument("--latitude", type=float, default=25.9958)
    parser.add_argument("--longitude", type=float, default=-97.5690)
    parser.add_argument("--slew-rate", type=float, default=30.0, help="degrees per second")
    parser.add_argument("--horizon-limit", type=float, default=0.0, help="degrees")
    parser.add_argument("--overhead-limit", type=float, default=90.0, help="degrees")
    parser.add_argument("--precision", choices=("low", "high"), default="low")
    parser.add_argument("--parked", action="store_true", help="start parked")
    parser.add_argument("--german", action="store_true",
                        help="onstep: a German equatorial mount, saying its side of the pier")
    parser.add_argument("--clock-start", type=utc_instant,
                        help="the simulated UTC instant at --clock-anchor (ISO 8601)")
    parser.add_argument("--clock-anchor", type=utc_instant,
                        help="the real UTC instant --clock-start corresponds to (ISO 8601)")
    parser.add_argument("--clock-speed", type=float, default=1.0,
                        help="simulated seconds per real second")
    options = parser.parse_args(argv)
    if (options.clock_start is None) != (options.clock_anchor is None):
        parser.error("--clock-start and --clock-anchor go together")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="lx200-simulator %(levelname)s %(message)s")
    mount = Mount(options.dialect, options.latitude, options.longitude, options.slew_rate,
                  options.horizon_limit, options.overhead_limit, options.precision == "high",
                  options.parked,
                  SimulatedTime(options.clock_start, options.clock_anchor, options.clock_speed),
                  options.german)
    with Server((options.host, options.port), Handler) as server:
        server.mount = mount
        print(f"PORT {server.server_address[1]}", flush=True)
        server.serve_forever(poll_interval=TICK)


if __name__ == "__main__":
    main()
