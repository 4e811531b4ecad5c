"""Load and validate ``toros.conf.yaml``.

Every setting, its type, its allowed values and its default live in :data:`SCHEMA`, in one place.
:func:`load_config` reads a file, rejects unknown keys, wrong types and out-of-range values with one
message that names the file, the key and what is allowed, and returns the configuration with every
default filled in.

The file is found, in this order, from the ``--config`` option, the ``TOROS_CONFIG`` environment
variable, or :data:`DEFAULT_PATH`.
"""

import copy
import ipaddress
import logging
import math
import os
import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import yaml

from . import plain_yaml
from .passwords import damaged_hash, has_plain_passwords
from .workorders import (MAX_EXPOSURE_TIME, MAX_NUMBER_OF_EXPOSURES, inside, parse_utc,
                         shorten)

log = logging.getLogger(__name__)

DEFAULT_PATH = "/etc/toros/toros.conf.yaml"
ENVIRONMENT_VARIABLE = "TOROS_CONFIG"

#: The daemons, in the order a night needs them.
SERVICES = ("scheduler", "telescope", "dome", "preprocessor", "alerts")

#: The alert types the alerts daemon may be told to act on (a RETRACTION always is).
ALERT_TYPES_ACTED_ON = ("EARLYWARNING", "PRELIMINARY", "INITIAL", "UPDATE")
#: The kinds of alert, as :class:`torosmanager.alerts.event.Alert` names them, each with a
#: section of its own under ``Alerts`` (what to observe, at which priority).
ALERT_KINDS = {"gw": "Gravitational Waves", "grb": "Gamma-Ray Bursts", "neutrino": "Neutrinos",
               "x-ray": "X-Rays"}


class ConfigError(Exception):
    """A configuration file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Setting:
    """One leaf of the configuration: its type, default and what is allowed.

    Parameters
    ----------
    kind : str
        One of ``"str"``, ``"int"``, ``"float"``, ``"bool"``, ``"ip"``, ``"datetime"``,
        ``"path"``, ``"paths"`` (a list of absolute paths), ``"names"`` (a list of strings),
        ``"intervals"`` (a list of ``"START/END"`` ISO 8601 strings, read as pairs of datetimes),
        ``"mapping"`` (names to numbers within *minimum*–*maximum*), ``"labels"`` (names to
        strings) or ``"credentials"`` (a mapping of user name to password).
    default : object
        The value used when the key is absent; ``None`` means "not set".
    doc : str
        One line for the configuration reference.
    minimum, maximum : float, optional
        Inclusive bounds for numbers.
    choices : tuple of str, optional
        The accepted values for a string.
    """

    kind: str
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    #: A value never shown, not even in an error message (a password, a client secret).
    secret: bool = False

    def allowed(self):
        """Describe the accepted values, for error messages."""
        if self.choices:
            return "one of " + ", ".join(repr(choice) for choice in self.choices)
        if self.kind in ("int", "float"):
            noun = "an integer" if self.kind == "int" else "a number"
            if self.minimum is not None and self.maximum is not None:
                return f"{noun} from {_bound(self.minimum)} to {_bound(self.maximum)}"
            if self.minimum is not None:
                return f"{noun} of at least {self.minimum:g}"
            return noun
        return {
            "str": "a string",
            "bool": "true or false",
            "ip": "an IPv4 or IPv6 address such as 127.0.0.1",
            "datetime": "an ISO 8601 UTC date and time such as 2026-11-21T00:30:00",
            "path": "an absolute path ({service} is replaced by the daemon's name)",
            "paths": "a list of absolute paths",
            "names": "a list of names",
            "intervals": "a list of 'START/END' ISO 8601 UTC intervals",
            "mapping": "a mapping of names to numbers" + (
                f" from {self.minimum:g} to {self.maximum:g}"
                if self.minimum is not None and self.maximum is not None else ""),
            "labels": "a mapping of names to strings",
            "credentials": "a mapping of user name to password",
        }[self.kind]


def _bound(number):
    """*number* as the limit of a range: in full when a whole number (2147483647, not
    2.14748e+09), else as short as it reads."""
    return f"{number:,}" if float(number).is_integer() and abs(number) >= 1e6 else f"{number:g}"


#: The drivers of each device kind (the first is its default).
DEVICE_DRIVERS = {
    "mount": ("simulator", "alpaca", "indi", "lx200", "text-tcp"),
    "camera": ("simulator", "alpaca", "indi"),
    "filter wheel": ("simulator", "alpaca", "indi"),
    "dome": ("simulator", "alpaca", "indi"),
    "safety monitor": ("simulator", "alpaca", "indi"),
    "focuser": ("none", "simulator", "alpaca", "indi"),
}
#: The sections that configure a device.
DEVICE_SECTIONS = (("Telescope", "Mount"), ("Telescope", "Camera"),
                   ("Telescope", "Filter Wheel"), ("Telescope", "Focuser"),
                   ("Dome", "Enclosure"), ("Dome", "Safety Monitor"))
#: The server port each networked driver uses when ``Port`` is not set: Alpaca's and INDI's
#: registered ports, and the mount computer's (the user's mount-tcp-protocol document).
DEFAULT_DEVICE_PORTS = {"alpaca": 11111, "indi": 7624, "text-tcp": 5240}
#: What each driver needs set, beyond ``Driver``.
REQUIRED_DEVICE_SETTINGS = {"indi": ("Device",), "lx200": ("URL",)}


#: What each driver is, for the configuration reference.
DRIVER_NAMES = {"none": "none (no such device: nothing is moved)",
                "simulator": "the built-in simulator", "alpaca": "an ASCOM Alpaca device",
                "indi": "an INDI device", "lx200": "an LX200 mount",
                "text-tcp": "a plain-text TCP mount"}


def _device(kind):
    """The settings of a device of *kind*: its driver (the simulator by default; no device,
    when a kind may be absent) and how to reach it."""
    drivers = DEVICE_DRIVERS[kind]
    return {
        "Driver": Setting("str", drivers[0], ", ".join(DRIVER_NAMES[driver]
                                                       for driver in drivers),
                          choices=drivers),
        "Host": Setting("str", "127.0.0.1", "alpaca, indi, text-tcp: the server's host name or "
                        "address"),
        "Port": Setting("int", None, "alpaca, indi, text-tcp: the server's port; default 11111 "
                        "(alpaca), 7624 (indi), 5240 (text-tcp)", 1, 65535),
        "Device Number": Setting("int", 0, "alpaca: the device number on that server", 0, 1000),
        "Device": Setting("str", None, "indi: the INDI device name, e.g. 'Telescope Simulator' "
                          "(required)"),
        "Properties": Setting("labels", {}, "indi: INDI property names where the device's "
                              "driver departs from the standard ones (standard name: its name)"),
        "URL": Setting("str", None, "lx200: the serial port (/dev/ttyUSB0) or "
                       "socket://HOST:PORT of a mount reached over TCP (required)"),
        "Baud Rate": Setting("int", 9600, "lx200: the serial port's speed, bits per second",
                             300, 1_000_000),
        "Dialect": Setting("str", "meade", "lx200: which LX200 the mount speaks",
                           choices=("meade", "onstep", "10micron")),
        "Command Interval": Setting("float", 1.0, "text-tcp: least seconds between two "
                                    "commands to the mount computer", 0.01, 60),
        "Timeout": Setting("float", 10.0, "seconds to wait for one request", 0.1, 600),
    }


def _alert_kind(act, filter_name, exposure_time, exposures, priority):
    return {
        "Act": Setting("bool", act, "turn these alerts into observations"),
        "Filter": Setting("str", filter_name, "filter of their observations"),
        "Exposure Time": Setting("float", exposure_time, "seconds per exposure", 0.001,
                                 MAX_EXPOSURE_TIME),
        "Number of Exposures": Setting("int", exposures, "frames per target", 1,
                                       MAX_NUMBER_OF_EXPOSURES),
        "Priority": Setting("float", priority, "priority of their orders (at or above "
                            "Priorities → ToO Threshold they interrupt the observation under "
                            "way)", 0, 10),
    }


def _address(port):
    return {
        "HTTP": Setting("str", None, "URL clients use to reach the daemon; default http://IP:Port/"),
        "IP": Setting("ip", "127.0.0.1", "address the daemon listens on"),
        "Port": Setting("int", port, "TCP port the daemon listens on", 1, 65535),
    }


#: The whole configuration: nested mappings of keys to :class:`Setting`.
SCHEMA = {
    "Scheduler Address": _address(8010),
    "Telescope Address": _address(8011),
    "Dome Address": _address(8012),
    "Preprocessor Address": _address(8013),
    "Alerts Address": _address(8014),
    "Logging": {
        "File": Setting("path", "/var/log/toros/{service}.log",
                        "log file of each daemon; rotated by size"),
        "Log Level": Setting("str", "INFO", "least severe level logged",
                             choices=("DEBUG", "INFO", "WARNING", "ERROR")),
        "Max Bytes": Setting("int", 10_000_000, "size at which the log file is rotated",
                             1_000, None),
        "Backup Count": Setting("int", 5, "rotated log files kept", 0, 1000),
    },
    "Database": {
        "File": Setting("path", "/var/lib/toros/{service}.sqlite3",
                        "SQLite journal of each daemon's work orders"),
        "Retry Interval": Setting("float", 10.0, "seconds between tries to resume, after a "
                                  "start, the unfinished orders whose change the journal could "
                                  "not take then (its disk full)", 0.01, 3600),
    },
    "Site": {
        "Name": Setting("str", "CTMO", "observatory name, written to FITS headers"),
        "Latitude": Setting("float", 25.9958, "geodetic latitude, degrees north", -90, 90),
        "Longitude": Setting("float", -97.5690, "longitude, degrees east", -180, 180),
        "Elevation": Setting("float", 12.0, "height above sea level, metres", -500, 9000),
    },
    "Clock": {
        "Mode": Setting("str", "real", "real UTC, or a simulated clock shared by all daemons",
                        choices=("real", "simulated")),
        "Start": Setting("datetime", None, "simulated: the simulated instant at the anchor"),
        "Anchor": Setting("datetime", None,
                          "simulated: the real UTC instant the simulated start corresponds to"),
        "Speed": Setting("float", 1.0, "simulated: simulated seconds per real second",
                         0.001, 100_000),
        "Simulated With Devices": Setting("bool", False, "true: a simulated clock is allowed "
                                          "with a dome driver other than the simulator (a "
                                          "rehearsal against device simulators, such as "
                                          "alpaca-simulators): the dome then opens by the "
                                          "simulated time, whatever the Sun; never with a real "
                                          "dome"),
    },
    "Server": {
        "Max Request Bytes": Setting("int", 1_000_000, "larger request bodies are refused",
                                     1_000, 1_000_000_000),
        "Request Timeout": Setting("float", 10.0,
                                   "seconds a client may take to send its whole request "
                                   "(408 after it), and to take its answer; a connection kept "
                                   "alive (HTTP/1.1) and idle this long is closed", 0.1, 3600),
        "Max Connections": Setting("int", 64, "connections open at once; beyond it an idle "
                                   "kept-alive one, or else the one silent longest since it "
                                   "was opened, is closed to make room, else the new one is "
                                   "answered 503 with Retry-After", 1, 100_000),
        "Concurrent Requests": Setting("int", 4, "worker threads: queries (Status, Cancel, "
                                       "the status page, system.* calls) answered at once, in "
                                       "the order they came; new work orders are served by "
                                       "the server's own thread, those that came together in "
                                       "one journal commit", 1, 1000),
        "Peer Timeout": Setting("float", 10.0,
                                "seconds a daemon waits for another daemon's answer", 0.1, 3600),
        "Users": Setting("credentials", None,
                         "HTTP Basic credentials, user name: password or a hash from `toros "
                         "passwd`; required off loopback", secret=True),
        "Credentials File": Setting("path", None,
                                    "file with one line 'user:password' that the daemons and "
                                    "toros send to each other; needed when Users holds hashes"),
        "Allow Unauthenticated": Setting("bool", False,
                                         "serve a non-loopback address without credentials"),
    },
    "Priorities": {
        "Default Priority": Setting("float", 5.0, "priority of an order whose Type of job has no "
                                    "rule and that requests none", 0, 10),
        "Job Priorities": Setting("mapping", {"ToO": 9.0, "Research": 5.0, "Calibration": 3.0,
                                              "Test": 1.0},
                                  "priority by Type of job", 0, 10),
        "Object Adjustments": Setting("mapping", {"Kilonova candidate": 1.0,
                                                  "GRB afterglow": 1.0},
                                      "added to the priority by Type of object", -10, 10),
        "User Adjustments": Setting("mapping", {}, "added to the priority by User", -10, 10),
        "ToO Threshold": Setting("float", 9.0, "orders at or above this priority interrupt the "
                                 "observation under way when observable now, and are planned "
                                 "at their earliest, not later at a lower airmass; of equal "
                                 "priority, they go in the plan's order", 0, 10),
    },
    "Observing": {
        "Sun Altitude": Setting("float", -18.0, "observe while the Sun is below this, degrees "
                                "(astronomical twilight); at most Sun Altitude Limit", -30, 0),
        "Sun Altitude Limit": Setting("float", -6.0,
                                      "the dome closes when the Sun is above this, degrees; "
                                      "the telescope takes only targets that rise above "
                                      "Minimum Altitude while the Sun is below it", -30, 10),
        "Max Airmass": Setting("float", 2.0, "observe only below this airmass (sec z)", 1.01, 10),
        "Minimum Altitude": Setting("float", 20.0, "lowest altitude observed, degrees, whatever "
                                    "the airmass: the telescope's limit (the scheduler plans "
                                    "above it, the telescope refuses a target that never "
                                    "rises above it tonight)", 0, 89),
        "Moon Separation": Setting("float", 30.0, "least distance from the Moon while it is "
                                   "above the horizon, degrees", 0, 180),
        "Slew Rate": Setting("float", 2.0, "mount slew speed the plan assumes, degrees per "
                             "second (a dome that turns slower than the mount: its speed)",
                             0.01, 100),
        "Settle Time": Setting("float", 10.0, "seconds the plan adds after each slew (for the "
                               "mount to settle and the dome's slit to reach it)", 0, 3600),
        "Readout Time": Setting("float", 10.0, "seconds the plan adds per frame", 0, 3600),
        "Bias Frames": Setting("int", 5, "bias frames the telescope takes (and the plan "
                               "counts) when an order's Calibration Frames is Yes",
                               0, 1000),
        "Dark Frames": Setting("int", 3, "darks (of the exposure time) taken with them",
                               0, 1000),
        "Flat Frames": Setting("int", 0, "flats (in the order's filter) taken with them",
                               0, 1000),
        "Flat Exposure Time": Setting("float", 2.0, "seconds per flat", 0.001, 3600),
    },
    "Scheduler": {
        "Replan Interval": Setting("float", 300.0, "seconds between plans when nothing else "
                                   "prompts one", 1, 86400),
        "Replan Delay": Setting("float", 0.25, "real seconds the scheduler waits after an "
                                "order arrives for others, to plan those arriving together "
                                "once: it plans when none has come for this long (a target "
                                "of opportunity does not wait)", 0, 10),
        "Max Replan Delay": Setting("float", 2.0, "real seconds a plan waits at most for "
                                    "orders that keep arriving", 0, 60),
        "Max Planning Share": Setting("float", 0.1, "the largest share of the time the "
                                      "scheduler spends planning orders that keep arriving: "
                                      "after a plan that took t seconds, the next waits up to "
                                      "t / share for them, if longer than Max Replan Delay "
                                      "(a flood's plan of thousands takes a large part of a "
                                      "second, and is replaced by the next within seconds)",
                                      0.001, 1),
        "Planning Process From": Setting("int", 200, "queued observations from which the "
                                         "plan is made in a process of its own, started "
                                         "with the daemon, so that orders arriving "
                                         "meanwhile do not wait for it (0: never, and no "
                                         "such process)", 0, 1_000_000),
        "Planning Process Niceness": Setting("int", 10, "how much less of the processors the "
                                             "planning process takes while the front desk "
                                             "needs them (nice(1); 0: the same share as the "
                                             "daemon)", 0, 19),
        "Dispatched Follow Interval": Setting("float", 0.2, "real seconds between Status "
                                              "queries of an order dispatched and not yet "
                                              "running (it starts within moments), of one a "
                                              "target of opportunity interrupts until it "
                                              "shows so, and of the dome while it opens or "
                                              "closes", 0.01, 60),
        "Follow Interval": Setting("float", 10.0, "seconds between Status queries of a "
                                   "dispatched order", 0.01, 3600),
        "Max Retries": Setting("int", 3, "times an interrupted or failed order is tried again",
                               0, 100),
        "Max Clock Difference": Setting("float", 60.0, "seconds the telescope's or the dome's "
                                        "clock (their Status's Now) may differ from the "
                                        "scheduler's before the scheduler says so in its log",
                                        0.001, 86400),
        "Retry Delay": Setting("float", 60.0, "seconds an order that failed or was interrupted "
                               "at the telescope waits before it is tried again, doubled at "
                               "each further try (a device or a link coming back); none after "
                               "an interruption not of its doing (a target of opportunity, "
                               "the dome closing)", 0, 86400),
        "Max Retry Delay": Setting("float", 3600.0, "the longest wait before an order is tried "
                                   "again: Retry Delay doubles up to this, seconds", 0, 86400),
        "Stall Timeout": Setting("float", 900.0, "seconds a running order may go without "
                                 "progress, beyond one of its exposures, before it is given "
                                 "up", 1, 86400),
        "Manage Dome": Setting("bool", True, "open the dome at dusk when safe, close it at dawn"),
        "Dispatch Attempts": Setting("int", 5,
                                     "tries to hand an order to the telescope or dome daemon",
                                     1, 1000),
        "Dispatch Retry Interval": Setting("float", 5.0,
                                           "seconds between those tries", 0.01, 3600),
        "Heartbeat Interval": Setting("float", 60.0,
                                      "seconds between heartbeats sent to the dome daemon",
                                      0.01, 86400),
    },
    "Telescope": {
        "Name": Setting("str", "CTMO", "this telescope's name; orders for others are refused"),
        "Data Directory": Setting("path", "/var/lib/toros/data", "where FITS files are written"),
        "Minimum Free Bytes": Setting("int", 1_000_000_000,
                                      "bytes left free on the data directory's disk: a frame "
                                      "that would leave less is not taken (room for the "
                                      "journals, logs and calibrated frames)", 0),
        "Max Exposure Time": Setting("float", 3600.0, "longest exposure accepted, seconds",
                                     0.001, MAX_EXPOSURE_TIME),
        "Max Number of Exposures": Setting("int", 500, "most frames one order may ask for",
                                           1, MAX_NUMBER_OF_EXPOSURES),
        "Slew Timeout": Setting("float", 300.0, "seconds a slew, park or filter change may take",
                                1, 3600),
        "Readout Timeout": Setting("float", 120.0,
                                   "seconds past the exposure time before a frame is late",
                                   1, 3600),
        "Poll Interval": Setting("float", 0.5, "seconds between polls of a device", 0.01, 60),
        "Device Error Grace": Setting("float", 30.0, "seconds a device may keep failing to "
                                      "answer during a wait (a slew, a park, a frame's "
                                      "readout), asked again every Poll Interval, before the "
                                      "order fails naming the last error: a server restarting "
                                      "or a connection made again does not end the order. "
                                      "Keep it below Slew Timeout and Readout Timeout", 0, 3600),
        "Pointing Tolerance": Setting("float", 0.1, "degrees on the sky the mount may be from "
                                      "the target once its slew has ended, both as ICRS (the "
                                      "mount's JNow converted); farther (a slew stopped short: "
                                      "another client aborted it, a limit) it slews again once, "
                                      "then the order fails", 0.0001, 180),
        "Park Retry Interval": Setting("float", 30.0, "seconds between tries to park a mount "
                                       "that could not be parked after an order stopped (it "
                                       "did not answer): tried again until it parks or an "
                                       "order takes the mount; the health Status's Executor "
                                       "says Park Pending meanwhile", 1, 3600),
        "Not Before Lead": Setting("float", 300.0, "seconds before an order's Not Before that "
                                   "the telescope takes it up (slews, then waits for it "
                                   "pointed); until then it waits in the queue, and orders "
                                   "ready now run meanwhile", 0, 86400),
        "Slit Timeout": Setting("float", 300.0, "seconds to wait, before a light frame, for a "
                                "dome that follows the telescope to bring its slit within Dome "
                                "→ Follow Tolerance; after it the order is interrupted, to be "
                                "tried again", 1, 3600),
        "Meridian Flip": Setting("bool", True, "German equatorial mount that says its side of "
                                 "the pier: between two light frames, slew to the target again "
                                 "once it is Meridian Flip After minutes past the meridian with "
                                 "the tube still on the west side, for the mount to flip before "
                                 "its limit stops it"),
        "Meridian Flip After": Setting("float", 5.0, "minutes past the meridian the target "
                                       "must be for a meridian flip (no sooner than the mount "
                                       "itself would choose the other side)", 0, 720),
        "Hand-off Retry Interval": Setting("float", 10.0, "seconds between tries to hand an "
                                           "order's frames to the preprocessor while it does "
                                           "not answer (the order has ended meanwhile); the "
                                           "scheduler's too, for an order that failed",
                                           0.1, 3600),
        "Mount": _device("mount"),
        "Camera": dict(_device("camera"), **{
            "Read Noise": Setting("float", 0.0, "alpaca, indi: electrons RMS, for RDNOISE (neither "
                                  "reports it); 0 means unknown", 0, 1000),
            "Pixel Scale": Setting("float", None, "arcseconds per unbinned pixel on the sky: "
                                   "each light frame then gets a WCS centred where the mount "
                                   "points; not set: no WCS", 0.001, 1000),
            "Position Angle": Setting("float", 0.0, "degrees from north through east of the "
                                      "frame's +y axis with the tube looking east (or on a mount "
                                      "that does not say its side of the pier); 180° more "
                                      "looking west", -360, 360),
            "Mirrored": Setting("bool", False, "east is right of north on the frame (an odd "
                                "number of reflections, such as a diagonal) rather than left"),
            "Cooling Setpoint": Setting("float", None, "°C the CCD is cooled to and kept at from "
                                        "the telescope daemon's start (and again at each "
                                        "order); not set: the camera's cooler is left as it "
                                        "is", -150, 50),
            "Cooling Tolerance": Setting("float", 1.0, "°C the CCD may be from the setpoint "
                                         "when a frame starts", 0.1, 50),
            "Cooling Timeout": Setting("float", 600.0, "seconds a frame waits for the CCD to "
                                       "come within the tolerance; after it the order's "
                                       "frames are taken anyway, with a warning (CCD-TEMP says "
                                       "how warm). Below Scheduler → Stall Timeout, which "
                                       "stops an order whose CCD stays at one degree", 0,
                                       86400)}),
        "Filter Wheel": _device("filter wheel"),
        "Focuser": dict(_device("focuser"), **{
            "Best Position": Setting("int", None, "steps at which focus is best, at the "
                                     "Reference Temperature through a filter without an "
                                     "offset; not set: the focuser is not moved (its position "
                                     "and temperature still go into each frame's header)", 0),
            "Reference Temperature": Setting("float", None, "°C at the focuser's sensor when "
                                             "Best Position was found; not set: no temperature "
                                             "compensation", -100, 100),
            "Temperature Coefficient": Setting("float", 0.0, "steps the best focus moves per "
                                               "°C the tube warms (negative: outward as it "
                                               "cools); from focus positions measured at two "
                                               "temperatures", -100_000, 100_000),
            "Filter Offsets": Setting("mapping", {}, "steps added to Best Position through "
                                      "each filter (by name; a filter not named: 0); none "
                                      "given: those the filter wheel's driver keeps (ASCOM "
                                      "FocusOffsets), if any", -1_000_000, 1_000_000),
            "Tolerance": Setting("int", 10, "steps the focuser may be from where the model "
                                 "wants it before it is moved (smaller moves only wear it)", 0),
            "Move Timeout": Setting("float", 120.0, "seconds a focus move may take", 1, 3600),
            "Autofocus": Setting("bool", False, "make a focus run (a V-curve on the target's "
                                 "field) before an order's first light frame when none was made "
                                 "this night, or the temperature moved Autofocus Temperature "
                                 "Change since the last; its best position becomes Best "
                                 "Position (and its temperature Reference Temperature), kept "
                                 "over a restart until the configured focus model changes"),
            "Autofocus Temperature Change": Setting("float", 2.0, "°C the focuser's temperature "
                                                    "may move before another focus run",
                                                    0.1, 100),
            "Autofocus Points": Setting("int", 9, "frames in a focus run", 3, 99),
            "Autofocus Minimum Points": Setting("int", 5, "frames with stars a run needs to "
                                                "find focus", 3, 99),
            "Autofocus Step": Setting("int", 500, "steps between two frames of a focus run", 1),
            "Autofocus Exposure": Setting("float", 10.0, "seconds per frame of a focus run",
                                          0.001, 600),
            "Star Threshold": Setting("float", 5.0, "sky standard deviations above the sky a "
                                      "star's pixels must be, in a focus run's frames", 1, 1000),
            "Star Minimum Pixels": Setting("int", 5, "connected pixels a star needs (fewer: a "
                                           "cosmic ray or a hot pixel)", 1, 10_000),
            "Star Count": Setting("int", 100, "brightest stars measured in each frame of a "
                                  "focus run", 1, 100_000)}),
    },
    "Dome": {
        "Auxiliary Outputs": Setting("int", 8, "auxiliary outputs (BlinkNN keys) the dome has",
                                     0, 99),
        "Shutter Timeout": Setting("float", 180.0, "seconds the shutter may take to move",
                                   1, 3600),
        "Weather Max Age": Setting("float", 300.0,
                                   "seconds after which weather data count as missing", 1,
                                   86400),
        "Heartbeat Timeout": Setting("float", 900.0,
                                     "seconds without word from the scheduler before closing "
                                     "(more than Scheduler → Heartbeat Interval + Check "
                                     "Interval)", 1, 86400),
        "Reopen Delay": Setting("float", 1200.0,
                                "seconds conditions must stay good before reopening", 0, 86400),
        "Check Interval": Setting("float", 10.0, "seconds between safety checks", 0.01, 3600),
        "Require Synchronized Clock": Setting(
            "bool", True, "on a real clock, keep the dome closed while the kernel says no time "
            "service (systemd-timesyncd, chrony) keeps the system clock: the Sun's altitude "
            "comes from it. Off only where the clock is kept some other way"),
        "Poll Interval": Setting("float", 0.5, "seconds between polls of the enclosure "
                                 "while it moves", 0.01, 60),
        "Follow Telescope": Setting(
            "bool", True, "keep the slit on the telescope while the shutter is open (a Dome "
            "order's Follow Telescope changes it until the daemon restarts); a dome that reports "
            "no azimuth, such as a roll-off roof, is never turned, and one that says it cannot "
            "be turned stops being followed"),
        "Follow Interval": Setting("float", 2.0, "seconds between looks at where the telescope "
                                   "points, while following", 0.01, 600),
        "Follow Tolerance": Setting("float", 3.0, "degrees the slit may lag the telescope "
                                    "when following; a light frame waits for a slit farther "
                                    "away", 0.1, 180),
        "Turn Lag": Setting("float", None, "degrees the slit may lag the telescope before the "
                            "follower turns it, at most the Follow Tolerance; not set: half "
                            "of it, so that a tracking telescope's slit is turned before a "
                            "frame has to wait for it", 0.1, 180),
        "Radius": Setting("float", 2.5, "the dome's radius, metres (matters only when the "
                          "telescope is off its centre: the offsets below)", 0.1, 100),
        "Mount Offset North": Setting("float", 0.0, "metres north of the dome's centre where "
                                      "the mount's axes cross", -100, 100),
        "Mount Offset East": Setting("float", 0.0, "metres east of the dome's centre where the "
                                     "mount's axes cross", -100, 100),
        "Mount Offset Up": Setting("float", 0.0, "metres above the dome's centre (the "
                                   "sphere's centre) where the mount's axes cross", -100, 100),
        "Axis Offset": Setting("float", 0.0, "German equatorial mount: metres from the mount's "
                               "axes to the tube's optical axis, along the declination axis; 0 "
                               "for a fork or alt-az mount", 0, 100),
        "Pier Side": Setting("str", "mount", "German equatorial mount: which side of the pier "
                             "the tube is on, as the mount reports it (by the hour angle when "
                             "it does not say), or always by the hour angle (counterweight "
                             "down), for a mount that reports it wrongly",
                             choices=("mount", "hour angle")),
        "Enclosure": _device("dome"),
        "Safety Monitor": _device("safety monitor"),
    },
    "Simulator": {
        # (at most what XML-RPC carries: a Status shows it)
        "Seed": Setting("int", 1, "random seed: the same seed gives the same frames", 0,
                        2**31 - 1),
        "Slew Rate": Setting("float", 3.0, "mount slew speed, degrees per second", 0.01, 100),
        "German Equatorial": Setting("bool", False, "the mount says its side of the pier, as a "
                                     "German equatorial mount: looking east at a target east "
                                     "of the meridian when it slewed there, west otherwise"),
        "Settle Time": Setting("float", 2.0, "seconds the mount settles after a slew", 0, 600),
        "Filters": Setting("names", ["U", "B", "V", "R", "I", "Clear"],
                           "the simulated filter wheel's filters, by slot"),
        "Filter Change Time": Setting("float", 1.0, "seconds to change filter", 0, 600),
        "Focuser Maximum": Setting("int", 100_000, "the focuser's last step (it starts "
                                   "half-way)", 1, 10_000_000),
        "Focuser Speed": Setting("float", 1000.0, "focuser steps per second", 1, 1_000_000),
        "Tube Temperature": Setting("float", 12.0, "°C the focuser's sensor reads when the "
                                    "telescope daemon starts", -50, 50),
        "Tube Cooling Rate": Setting("float", 0.5, "°C per hour the tube cools after that",
                                     -10, 10),
        "Best Focus": Setting("int", 50_000, "the focuser's position of best focus at the "
                              "Tube Temperature", 0, 10_000_000),
        "Focus Temperature Coefficient": Setting("float", -15.0, "steps best focus moves per "
                                                 "°C the tube warms", -100_000, 100_000),
        "Defocus Blur": Setting("float", 2.0, "arcseconds of FWHM added (in quadrature) to "
                                "the stars per 1000 steps from best focus", 0, 1000),
        "Width": Setting("int", 1024, "simulated CCD columns", 8, 20_000),
        "Height": Setting("int", 1024, "simulated CCD rows", 8, 20_000),
        "Pixel Scale": Setting("float", 1.0, "arcseconds per pixel", 0.01, 100),
        "Position Angle": Setting("float", 0.0, "degrees from north through east of the "
                                  "simulated frames' +y axis looking east (German Equatorial: "
                                  "180° more looking west)", -360, 360),
        "Readout Time": Setting("float", 2.0, "seconds to read a frame out", 0, 600),
        "Cooling Rate": Setting("float", 5.0, "degrees Celsius per minute the CCD cools or "
                                "warms towards a setpoint (it starts at -20 °C)", 0.01, 1000),
        "Gain": Setting("float", 1.5, "electrons per ADU", 0.01, 100),
        "Read Noise": Setting("float", 8.0, "electrons RMS", 0, 1000),
        "Bias Level": Setting("float", 1000.0, "ADU", 0, 60000),
        "Dark Current": Setting("float", 0.05, "electrons per second per pixel", 0, 1000),
        "Sky Background": Setting("float", 20.0,
                                  "electrons per second per pixel through a clear filter",
                                  0, 100_000),
        "Flat Level": Setting("float", 20000.0, "electrons per pixel in a flat at the centre",
                              1, 1_000_000),
        "Vignetting": Setting("float", 0.2, "fractional light loss at the corners", 0, 0.99),
        "Star Density": Setting("float", 2000.0, "stars per square degree", 0, 1_000_000),
        "Seeing": Setting("float", 2.0, "star FWHM, arcseconds", 0.1, 30),
        "Shutter Travel Time": Setting("float", 30.0, "seconds for the dome shutter to move",
                                       0, 3600),
        "Dome Rotation Rate": Setting("float", 5.0, "dome rotation, degrees per second",
                                      0.01, 100),
        "Unsafe Periods": Setting("intervals", [],
                                  "simulated bad weather, as 'START/END' UTC intervals"),
        "Weather File": Setting("path", None, "simulated bad weather while this file exists "
                                "and begins with 'unsafe' (the text after it is the reason): "
                                "to rehearse a storm at a moment of your choosing"),
    },
    "Alerts": {
        "Alert Types": Setting("names", list(ALERT_TYPES_ACTED_ON),
                               "alert types acted on (a RETRACTION is always acted on: it "
                               "cancels its event's orders)"),
        "Accept Test Alerts": Setting("bool", False, "act on test, mock and injected alerts "
                                      "(the demo and rehearsals do)"),
        "Max False Alarm Rate": Setting("float", 3.9e-7, "gravitational waves whose false "
                                        "alarms are more frequent are ignored, Hz (default: "
                                        "about one per month)", 0, None),
        "Min Probability of Neutron Star": Setting(
            "float", 0.0, "gravitational waves: least HasNS, or else least non-BBH astrophysical "
            "probability (BNS + NSBH) from the classification (a class not given: what the "
            "given ones leave of 1, if BBH and Terrestrial are given; else unknown, ignored)",
            0, 1),
        "Min Probability of Remnant": Setting("float", 0.0, "gravitational waves: least "
                                              "HasRemnant", 0, 1),
        "Max Distance": Setting("float", 1000.0, "gravitational waves farther than this "
                                "(mean distance), Mpc, are ignored", 0, None),
        "Max Area": Setting("float", 10_000.0, "localisations whose area at Credible Level is "
                            "larger, square degrees, are ignored", 0, 41_253),
        "Credible Level": Setting("float", 0.9, "the credible region whose area is compared "
                                  "with Max Area, and the volume galaxies are chosen in (camera "
                                  "fields are centred in the map's 99 % region, whatever this "
                                  "is)", 0.01, 0.999),
        "Field of View": Setting("float", 1.0, "side of the camera's square field, degrees",
                                 0.01, 90),
        "Max Targets": Setting("int", 20, "most targets observed per event and night (an "
                               "update's pick has what the event's targets observed tonight "
                               "have left)", 1, 10_000),
        "Budget Hours": Setting("float", 4.0, "telescope time an event may take tonight, "
                                "hours (an update's pick has what the event's orders observed "
                                "tonight have left; as much each later night it is "
                                "followed)", 0.01, 24),
        "Nights": Setting("int", 1, "nights an event's targets are planned on: tonight (the "
                          "rest of the night in progress, or the next) and the ones after "
                          "it, each with its own pick; a later night's orders wait for its "
                          "dusk", 1, 14),
        "Skymap Download Timeout": Setting("float", 30.0, "seconds to fetch a skymap an "
                                           "alert only links to", 0.1, 3600),
        "Max Skymap Bytes": Setting("int", 2_000_000_000, "largest skymap read, once "
                                    "decompressed (a flat NSIDE-2048 map with distance layers "
                                    "is 1.6 GB); a larger one, a gzip bomb among them, is "
                                    "refused before it fills the memory", 1_000_000,
                                    1_000_000_000_000),
        "Max Request Bytes": Setting("int", 64_000_000, "the alerts daemon takes requests up "
                                     "to this size (an LVK alert's skymap, base64, is a few "
                                     "MB) or Server → Max Request Bytes if larger", 1_000,
                                     1_000_000_000),
        "Scheduler Retry Interval": Setting("float", 5.0, "seconds between tries to hand an "
                                            "order to the scheduler while it does not answer "
                                            "(orders are kept until it does)", 0.01, 3600),
        "Telescope Check Interval": Setting("float", 300.0, "seconds between two looks at "
                                            "what the telescope takes (its filters, longest "
                                            "exposure, most frames, as the scheduler last heard "
                                            "them), to warn when a kind's orders would be "
                                            "refused", 0.1, 86400),
        "Delivery Retry Interval": Setting("float", 5.0, "seconds between tries to keep an "
                                           "alert a source received while this daemon's "
                                           "journal cannot (its disk full): the source waits, "
                                           "and the alert is not lost", 0.01, 3600),
        "Max Stops While Reading": Setting("int", 3, "times the daemon may stop (killed: out "
                                           "of memory, a power cut) while reading or "
                                           "localising one alert before that alert is given "
                                           "up, so that one alert cannot keep the daemon "
                                           "restarting", 1, 100),
        "Max Issued Ahead": Setting("float", 3600.0, "seconds an alert's issue time may be "
                                    "ahead of this daemon's clock; an alert issued later is "
                                    "not acted on (a sender's clock off, or a date made up: "
                                    "it would pass over its event's real alerts as issued "
                                    "before it)", 0, None),
        "Retraction Deadline": Setting("float", 2.0, "seconds within which a retraction "
                                       "must have cancelled its event's orders (logged as an "
                                       "error when missed)", 0.1, 3600),
        **{title: _alert_kind(*defaults) for title, defaults in (
            ("Gravitational Waves", (True, "Clear", 60.0, 3, 9.5)),
            ("Gamma-Ray Bursts", (True, "R", 60.0, 5, 9.5)),
            ("Neutrinos", (True, "R", 120.0, 3, 9.0)),
            ("X-Rays", (True, "R", 60.0, 3, 9.0)))},
        "Galaxy Catalog": {
            "File": Setting("path", None, "a galaxy table astropy reads (CSV, ECSV, FITS, VOTable),"
                            " e.g. an extract of GLADE+; not set: gravitational-wave maps are "
                            "tiled"),
            "Luminosity Weight": Setting("str", "none", "weigh galaxies by their B- or K-band "
                                         "luminosity, or not at all",
                                         choices=("none", "B", "K")),
            "Columns": {
                "Name": Setting("str", "Name", "the file's column of galaxy names"),
                "RA": Setting("str", "RA", "the file's column of right ascension, degrees"),
                "Dec": Setting("str", "Dec", "the file's column of declination, degrees"),
                "Distance": Setting("str", "Distance", "the file's column of luminosity "
                                    "distance, Mpc"),
                "B Magnitude": Setting("str", None, "the file's column of apparent B magnitude "
                                       "(for Luminosity Weight: B; GLADE+'s)"),
                "K Magnitude": Setting("str", None, "the file's column of apparent K magnitude "
                                       "(for Luminosity Weight: K)"),
            },
        },
        "Kafka": {
            "Enabled": Setting("bool", False, "listen to GCN Kafka (gcn-kafka, which sudo make "
                               "install includes)"),
            "Client ID": Setting("str", None, "GCN client id; else $GCN_KAFKA_CLIENT_ID"),
            "Client Secret": Setting("str", None, "GCN client secret; else "
                                     "$GCN_KAFKA_CLIENT_SECRET (never logged)", secret=True),
            "Domain": Setting("str", "gcn.nasa.gov", "the GCN Kafka domain"),
            "Consumer Group": Setting("str", None, "Kafka consumer group: a restarted daemon "
                                      "resumes where it stopped reading; default "
                                      "toros-manager-<host name>"),
            "Topics": Setting("names", ["igwn.gwalert",
                                        "gcn.notices.icecube.lvk_nu_track_search",
                                        "gcn.notices.einstein_probe.wxt.alert",
                                        "gcn.notices.swift.bat.guano",
                                        "gcn.classic.voevent.FERMI_GBM_GND_POS",
                                        "gcn.classic.voevent.SWIFT_BAT_GRB_POS_ACK"],
                              "topics subscribed to"),
            "Reconnect Delay": Setting("float", 1.0, "seconds before the first reconnection; "
                                       "doubled after each failure", 0.01, 3600),
            "Max Reconnect Delay": Setting("float", 300.0, "longest wait between reconnections, "
                                           "seconds", 0.01, 86400),
            "Connection Check Interval": Setting("float", 15.0, "seconds between two readings "
                                                 "of the brokers' states, for Connected in the "
                                                 "health Status", 1, 3600),
        },
        "VOEvent Transport": {
            "Enabled": Setting("bool", False, "receive VOEvents over the VOEvent Transport "
                               "Protocol (pygcn, which sudo make install "
                               "includes)"),
            "Host": Setting("str", "45.58.43.186", "the VTP broker (GCN Classic's)"),
            "Port": Setting("int", 8099, "the broker's port", 1, 65535),
            "Reconnect Delay": Setting("float", 1.0, "seconds between a connection that ended "
                                       "and the next; doubled after each connection that "
                                       "carried no message, back to this after one that did",
                                       0.01, 3600),
            "Max Reconnect Delay": Setting("float", 300.0, "longest wait between connections "
                                           "while they fail, seconds", 0.01, 86400),
            "Max Frame Bytes": Setting("int", 10_000_000, "longest message taken from the "
                                       "broker (a VOEvent is a few kB; an LVK one links its "
                                       "skymap): a longer one announced closes the connection, "
                                       "before anything is read into memory", 1_000,
                                       1_000_000_000),
        },
        "GCN Socket": {
            "Enabled": Setting("bool", False, "listen for GCN Classic 160-byte socket notices"),
            "IP": Setting("ip", "127.0.0.1", "address the socket listens on (GCN connects to "
                          "it; register it with GCN)"),
            "Port": Setting("int", 5134, "the port registered with GCN", 1, 65535),
            "Max Connections": Setting("int", 4, "connections served at once (GCN opens one); "
                                       "a new one beyond them closes the oldest, which a "
                                       "network fault may have left half open", 1, 100),
            "Idle Timeout": Setting("float", 180.0, "seconds without a packet (GCN sends an "
                                    "imalive about every 60) after which a connection is "
                                    "closed: GCN connects again", 1, 86400),
        },
    },
    "Preprocessor": {
        "Allowed Directories": Setting("paths", ["/var/lib/toros/data"],
                                       "directories a File Location may point into, and a "
                                       "job reads frames and writes products in, links "
                                       "followed"),
        "Workers": Setting("int", 2, "processes calibrating frames in parallel", 1, 256),
        "Executor": Setting("str", "local", "'local' worker processes, or the address of a "
                            "dask.distributed scheduler such as tcp://10.0.0.5:8786 (while it "
                            "does not answer, or once it is lost during a job, a job waits for "
                            "it, queued)"),
        "Master Library": Setting("path", "/var/lib/toros/masters",
                                  "where masters are kept for nights that lack their own"),
        "Gain": Setting("float", 1.0, "electrons per ADU when a frame's header has no GAIN",
                        0.001, 1000),
        "Overscan": Setting("str", None, "FITS section subtracted as overscan, e.g. "
                            "'[1025:1056,1:1024]'; not set: none"),
        "Trim": Setting("str", None, "FITS section kept after calibration, e.g. "
                        "'[1:1024,1:1024]'; not set: the whole frame"),
        "Cosmic Rays": Setting("bool", False, "clean cosmic rays (astroscrappy) in science "
                               "frames"),
        "Max Saturated Flat Pixels": Setting("float", 0.001, "fraction of a flat's pixels "
                                             "(sampled) at or above its SATURATE, else the "
                                             "largest value its file holds, beyond which it is "
                                             "not used (a twilight flat taken too early)",
                                             0.0, 1.0),
        "Block Rows": Setting("int", 512, "rows combined at a time when making masters (bounds "
                              "memory)", 1, 100_000),
        "Kept Terms": Setting("int", 1024, "megabytes of shared memory keeping the "
                              "calibration terms of one job for the next with the same masters, "
                              "exposure time and gain (a 2048x2048 camera's take 32, a "
                              "10560x10560 one's 892); 0: none kept", 0, 100_000),
        "Direct Writes From": Setting("int", 256, "megabytes (MiB) from which a calibrated "
                                      "frame is written around the page cache (O_DIRECT) where "
                                      "the file system allows it, rather than through it (a "
                                      "4096x4096 frame is 64, a 10560x10560 one 425); 0: none",
                                      0, 1_000_000),
        "Minimum Free Bytes": Setting("int", 1_000_000_000,
                                      "bytes left free on each disk a job writes to: a job whose "
                                      "products would leave less waits, queued, until there is "
                                      "room (room for the journals, logs and the telescope's "
                                      "frames)", 0),
        "Room Retry Interval": Setting("float", 60.0, "seconds between two looks for room by a "
                                       "job waiting for it", 0.01, 86400),
        "Incomplete File Wait": Setting("float", 60.0, "seconds a job waits for a frame still "
                                        "being written (empty, cut short, or not readable for "
                                        "now, as over NFS) to be whole, after its file last "
                                        "changed; then it is skipped. 0: skipped at once",
                                        0, 86400),
        "Incomplete File Check": Setting("float", 1.0, "seconds between two readings of a "
                                         "frame still being written", 0.01, 3600),
    },
}


#: Settings that moved to a shared section (old section, key) → new section. Every daemon now
#: reads only its own section and the shared ones; a file that still has a key in its old
#: place is read as before, with a warning that says where the key now lives.
MOVED_SETTINGS = {
    **{("Scheduler", key): "Priorities" for key in (
        "Default Priority", "Job Priorities", "Object Adjustments", "User Adjustments",
        "ToO Threshold")},
    **{("Scheduler", key): "Observing" for key in (
        "Sun Altitude", "Max Airmass", "Moon Separation", "Slew Rate", "Settle Time",
        "Readout Time")},
    **{("Telescope", key): "Observing" for key in (
        "Bias Frames", "Dark Frames", "Flat Frames", "Flat Exposure Time", "Minimum Altitude")},
    ("Dome", "Sun Altitude Limit"): "Observing",
}


#: A FITS section: ``[a:b,c:d]``, either axis ``*``.
_FITS_SECTION = re.compile(r"\[\s*(?:\*|(\d+)\s*:\s*(\d+))\s*,\s*(?:\*|(\d+)\s*:\s*(\d+))\s*\]")


def _defaults(schema):
    return {
        key: _defaults(value) if isinstance(value, dict) else copy.deepcopy(value.default)
        for key, value in schema.items()
    }


def default_config():
    """The configuration with every default, as :func:`load_config` would return for ``{}``."""
    return _finish(_defaults(SCHEMA), "<defaults>")


def resolve_path(path=None):
    """Which file to read: *path*, else ``$TOROS_CONFIG``, else :data:`DEFAULT_PATH`."""
    return path or os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_PATH


def load_config(path=None):
    """Read, validate and complete a configuration file.

    Parameters
    ----------
    path : str, optional
        The file; see :func:`resolve_path` for what happens when it is not given.

    Returns
    -------
    dict
        The nested configuration with every key of :data:`SCHEMA` present.

    Raises
    ------
    ConfigError
        For a missing or unreadable file, bad YAML, an unknown key, a wrong type or an
        out-of-range value. The message names the file and the key.
    """
    path = resolve_path(path)
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration file: {error.strerror}") from None
    except UnicodeDecodeError as error:
        line = _line_of(error.object, error.start)
        raise ConfigError(f"{path}: line {line}: byte {error.object[error.start]:#04x} is not "
                          "UTF-8; allowed: a file in UTF-8 (save it so from the editor, or "
                          "iconv -f latin1 -t utf-8)") from None
    try:
        data = plain_yaml.load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        # Every default; said, in case the file was emptied by mistake (the daemon would
        # listen on other ports and write in other directories than meant).
        log.warning("%s holds no settings: every setting is its default", path)
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, "
                          f"got {type(data).__name__}")
    return _finish(_merge(SCHEMA, _move_settings(data, path), path, ()), path)


#: YAML 1.1's words for true and false, which PyYAML read and the configuration is now read
#: without (see :mod:`.plain_yaml`), still taken in a boolean setting, with a warning.
YAML_1_1_BOOLEANS = {"yes": True, "on": True, "no": False, "off": False}


def _move_settings(data, path):
    """*data* with the keys of :data:`MOVED_SETTINGS` taken from their old place to their
    shared section, each with a warning; a key set in both places is refused."""
    for (old_section, key), new_section in MOVED_SETTINGS.items():
        section = data.get(old_section)
        if not isinstance(section, dict) or key not in section:
            continue
        target = data.get(new_section)
        if target is None:
            target = data[new_section] = {}
        if not isinstance(target, dict):
            continue  # _merge says what is wrong with it
        if key in target:
            raise ConfigError(f"{path}: {old_section} → {key} and {new_section} → {key} are "
                              f"both set; keep only {new_section} → {key} (the setting moved "
                              "there)")
        target[key] = section.pop(key)
        log.warning("%s: %s → %s has moved to %s → %s; it is read from its old place for now: "
                    "move it in the file", path, old_section, key, new_section, key)
    return data


def _merge(schema, data, path, where):
    result = {}
    for key in data:
        if key not in schema:
            place = f" in {' → '.join(where)}" if where else ""
            raise ConfigError(f"{path}: unknown key {key!r}{place}; allowed: "
                              + ", ".join(repr(name) for name in schema))
    for key, rule in schema.items():
        here = where + (key,)
        if isinstance(rule, dict):
            section = data.get(key)
            if section is None:
                section = {}
            if not isinstance(section, dict):
                raise ConfigError(f"{path}: {' → '.join(here)} must be a mapping of settings, "
                                  f"got {section!r}")
            result[key] = _merge(rule, section, path, here)
        elif key in data and data[key] is not None:
            result[key] = _check(rule, data[key], path, here)
        else:
            # A copy: a caller changing its configuration must not change the defaults.
            result[key] = copy.deepcopy(rule.default)
    return result


def _check(rule, value, path, where):
    received = value

    def fail():
        # (shortened: a few lines of aliases make a value of gigabytes when written out)
        shown = (f"a {type(received).__name__} (not shown: it holds a secret)"
                 if rule.secret else shorten(received))
        return ConfigError(f"{path}: {' → '.join(where)}: {shown} is not allowed; "
                           f"allowed: {rule.allowed()}")

    kind = rule.kind
    if kind == "bool":
        if isinstance(value, str) and value.lower() in YAML_1_1_BOOLEANS:
            # Booleans of YAML 1.1, which PyYAML read, and configurations before 5a44226 used.
            meant = YAML_1_1_BOOLEANS[value.lower()]
            log.warning("%s: %s: %r is read as %s for now; write %s (YAML 1.2's booleans: "
                        "yes, no, on and off are text)", path, " → ".join(where), value,
                        str(meant).lower(), str(meant).lower())
            return meant
        if not isinstance(value, bool):
            raise fail()
        return value
    if kind in ("int", "float"):
        # NaN would pass any range check (it compares false), and .inf means nothing here;
        # an integer of 400 digits is no float.
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or isinstance(value, float) and not math.isfinite(value):
            raise fail()
        if kind == "int" and isinstance(value, float) and not value.is_integer():
            raise fail()
        try:
            value = int(value) if kind == "int" else float(value)
        except OverflowError:
            raise fail() from None
        if (rule.minimum is not None and value < rule.minimum) or (
                rule.maximum is not None and value > rule.maximum):
            raise fail()
        return value
    if kind == "datetime":
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                parsed = parse_utc(str(value))
            except ValueError:
                raise fail() from None
        return _utc(parsed)
    if kind == "credentials":
        if not isinstance(value, dict) or not value or not all(
                isinstance(user, str) and isinstance(password, (str, int))
                for user, password in value.items()):
            raise fail()
        damaged = sorted(user for user, password in value.items()
                         if damaged_hash(str(password)))
        if damaged:
            raise ConfigError(f"{path}: {' → '.join(where)}: the entry of {', '.join(damaged)} "
                              "begins as a password hash but is not one (cut short, or "
                              "edited?); allowed: a hash as `toros passwd` prints it, whole, "
                              "or a password")
        return {user: str(password) for user, password in value.items()}
    if kind == "mapping":
        if not isinstance(value, dict) or not all(
                isinstance(name, str) and not isinstance(number, bool)
                and isinstance(number, (int, float))
                and (rule.minimum is None or number >= rule.minimum)
                and (rule.maximum is None or number <= rule.maximum)
                for name, number in value.items()):
            raise fail()
        return {name: float(number) for name, number in value.items()}
    if kind == "labels":
        if not isinstance(value, dict) or not all(
                isinstance(name, str) and name and isinstance(label, str) and label
                for name, label in value.items()):
            raise fail()
        return dict(value)
    if kind == "names":
        if not isinstance(value, list) or not value or not all(
                isinstance(name, str) and name for name in value) or len(set(value)) != len(value):
            raise fail()
        return list(value)
    if kind == "intervals":
        if not isinstance(value, list):
            raise fail()
        intervals = []
        for interval in value:
            start, _, end = str(interval).partition("/")
            try:
                pair = tuple(_utc(parse_utc(text.strip())) for text in (start, end))
            except ValueError:
                raise fail() from None
            if pair[0] >= pair[1]:
                raise fail()
            intervals.append(pair)
        return intervals
    if kind == "paths":
        paths = [value] if isinstance(value, str) else value
        if not isinstance(paths, list) or not paths or not all(
                isinstance(path, str) and path.startswith("/") for path in paths):
            raise fail()
        return paths
    if not isinstance(value, str) or not value:
        raise fail()
    if rule.choices and value not in rule.choices:
        raise fail()
    if kind == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise fail() from None
    if kind == "path" and not value.startswith("/"):
        raise fail()  # relative to what? (a service's working directory is /)
    return value


def _url_parts(text):
    """The scheme, host and port (``None`` if none) of the URL *text*; ``None`` when it has
    no host (or one with a space in it) or a port that is no number from 1 to 65535."""
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port  # (raises ValueError for one out of range or not a number)
    except ValueError:
        return None
    host = parts.hostname or ""
    if not host or port == 0 or any(character.isspace() for character in host):
        return None
    return parts.scheme, host, port


def _is_http_url(text):
    """Whether *text* is an http(s) URL with a host, and a port (if any) from 1 to 65535."""
    parts = _url_parts(text)
    return parts is not None and parts[0] in ("http", "https")


#: What ``Preprocessor → Executor`` allows, in words.
EXECUTOR_ALLOWED = "'local', or a Dask scheduler's address such as tcp://10.0.0.5:8786"


def is_executor(text):
    """Whether *text* is a value ``Preprocessor → Executor`` allows (:data:`EXECUTOR_ALLOWED`)."""
    return text == "local" or _is_dask_address(text)


def _is_dask_address(text):
    """Whether *text* is a Dask scheduler's address: ``[PROTOCOL://]HOST:PORT``."""
    parts = _url_parts(text if "://" in text else f"tcp://{text}")
    return parts is not None and parts[2] is not None


def _line_of(data, offset):
    """The line number (from 1) of byte *offset* in *data*."""
    return data.count(b"\n", 0, offset) + 1


def _utc(instant):
    """A datetime in UTC; one without a time zone is taken to be UTC."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=timezone.utc)
    return instant.astimezone(timezone.utc)


def _finish(config, path):
    """Derive what depends on several keys, and check the rules that span sections."""
    for service in SERVICES:
        address = config[address_key(service)]
        if address["HTTP"] is None:
            host = address["IP"]
            if host in ("0.0.0.0", "::"):
                host = "127.0.0.1"  # a wildcard bind is reached locally through loopback
            elif ":" in host:
                host = f"[{host}]"
            address["HTTP"] = f"http://{host}:{address['Port']}/"
        elif not _is_http_url(address["HTTP"]):
            raise ConfigError(f"{path}: {address_key(service)} → HTTP: {address['HTTP']!r} is "
                              "not allowed; allowed: a URL starting with http:// or https://, "
                              "then a host and, if any, a port from 1 to 65535")
        server = config["Server"]
        if (not is_loopback(address["IP"]) and not server["Users"]
                and not server["Allow Unauthenticated"]):
            raise ConfigError(
                f"{path}: {address_key(service)} → IP: {address['IP']} is not a loopback address, "
                "so the daemon needs credentials: set Server → Users (user name: password), "
                "or Server → Allow Unauthenticated: true to serve it without them")
    server = config["Server"]
    if server["Users"] and not server["Credentials File"] and not has_plain_passwords(server):
        raise ConfigError(f"{path}: Server → Users holds only password hashes, so the daemons "
                          "cannot reach each other: set Server → Credentials File (a file with "
                          "one line 'user:password', readable only by the toros group)")
    unknown = [name for name in config["Alerts"]["Alert Types"]
               if name not in ALERT_TYPES_ACTED_ON]
    if unknown:
        raise ConfigError(f"{path}: Alerts → Alert Types: {unknown!r} is not allowed; allowed: "
                          "a list of " + ", ".join(ALERT_TYPES_ACTED_ON) + " (a RETRACTION is "
                          "always acted on)")
    _finish_devices(config, path)
    executor = config["Preprocessor"]["Executor"]
    if not is_executor(executor):
        raise ConfigError(f"{path}: Preprocessor → Executor: {executor!r} is not allowed; "
                          f"allowed: {EXECUTOR_ALLOWED}")
    focuser = config["Telescope"]["Focuser"]
    for key in ("Best Position", "Autofocus"):
        if focuser[key] and focuser["Driver"] == "none":
            raise ConfigError(f"{path}: Telescope → Focuser → {key} is set, but Driver is "
                              f"'none': name the focuser's driver, or unset {key}")
    if focuser["Autofocus Minimum Points"] > focuser["Autofocus Points"]:
        raise ConfigError(f"{path}: Telescope → Focuser → Autofocus Minimum Points: "
                          f"{focuser['Autofocus Minimum Points']} is not allowed; allowed: at "
                          f"most Autofocus Points ({focuser['Autofocus Points']})")
    observing = config["Observing"]
    if observing["Sun Altitude"] > observing["Sun Altitude Limit"]:
        # The scheduler would send orders while the dome keeps itself closed against the Sun.
        raise ConfigError(f"{path}: Observing → Sun Altitude: {observing['Sun Altitude']:g} is "
                          "not allowed; allowed: at most Observing → Sun Altitude Limit "
                          f"({observing['Sun Altitude Limit']:g}°), above which the dome closes")
    dome = config["Dome"]
    farthest = math.hypot(dome["Mount Offset North"], dome["Mount Offset East"],
                          dome["Mount Offset Up"]) + dome["Axis Offset"]
    if farthest >= dome["Radius"]:
        raise ConfigError(f"{path}: Dome → Radius: {dome['Radius']!r} m is not allowed with "
                          f"these offsets; allowed: more than {farthest:g} m, how far from the "
                          "dome's centre the tube can be (Mount Offset North, East, Up and "
                          "Axis Offset)")
    if dome["Turn Lag"] is None:
        dome["Turn Lag"] = dome["Follow Tolerance"] / 2
    elif dome["Turn Lag"] > dome["Follow Tolerance"]:
        tolerance = dome["Follow Tolerance"]
        raise ConfigError(f"{path}: Dome → Turn Lag: {dome['Turn Lag']!r} is not allowed; "
                          f"allowed: at most Dome → Follow Tolerance ({tolerance:g}), or the "
                          "telescope would wait for the slit at every frame")
    heartbeats, checks = config["Scheduler"]["Heartbeat Interval"], dome["Check Interval"]
    if dome["Heartbeat Timeout"] <= heartbeats + checks:
        raise ConfigError(f"{path}: Dome → Heartbeat Timeout: {dome['Heartbeat Timeout']:g} s "
                          f"is not allowed; allowed: more than Scheduler → Heartbeat Interval "
                          f"+ Dome → Check Interval ({heartbeats + checks:g} s), or the dome "
                          "would close between two heartbeats and never stay open (twice the "
                          "interval or more rides out a heartbeat lost)")
    for key in ("Overscan", "Trim"):
        section = config["Preprocessor"][key]
        if section is not None and not _is_fits_section(section):
            raise ConfigError(f"{path}: Preprocessor → {key}: {section!r} is not allowed; "
                              "allowed: a FITS section, [first column:last column,first "
                              "row:last row] counted from 1, such as '[1025:1056,1:1024]' "
                              "('*' for a whole axis)")
    clock = config["Clock"]
    if clock["Mode"] == "simulated" and (clock["Start"] is None or clock["Anchor"] is None):
        raise ConfigError(f"{path}: Clock → Mode is 'simulated', so Clock → Start and "
                          "Clock → Anchor are required (ISO 8601 UTC instants) so that every "
                          "daemon agrees on the simulated time")
    enclosure = config["Dome"]["Enclosure"]["Driver"]
    if (clock["Mode"] == "simulated" and enclosure != "simulator"
            and not clock["Simulated With Devices"]):
        # The dome's daylight check follows the clock: a real dome would open in the Sun.
        raise ConfigError(f"{path}: Clock → Mode: 'simulated' is not allowed with Dome → "
                          f"Enclosure → Driver: {enclosure}; allowed: 'real', or, for a "
                          "rehearsal against a device simulator, Clock → Simulated With "
                          "Devices: true (the dome would open by the simulated time, "
                          "whatever the Sun)")
    _check_ports_apart(config, path)
    _check_files_apart(config, path)
    _check_alert_orders_fit(config, path)
    _warn_if_frames_cannot_be_calibrated(config, path)
    return config


def _check_ports_apart(config, path):
    """Refuse two servers given one port on one computer: the second daemon cannot start (its
    unit restarted every few seconds), and the first answers what was meant for it (a
    scheduler dispatched Observations to itself). Daemons whose addresses name different
    hosts (``HTTP``) are on different computers."""
    listeners = [(f"{address_key(service)} → Port", config[address_key(service)],
                  _http_host(config[address_key(service)])) for service in SERVICES]
    socket = config["Alerts"]["GCN Socket"]
    if socket["Enabled"]:
        listeners.append(("Alerts → GCN Socket → Port", socket,
                          _http_host(config[address_key("alerts")])))
    for number, (key, address, host) in enumerate(listeners):
        for earlier_key, earlier, earlier_host in listeners[:number]:
            if (address["Port"] == earlier["Port"] and host == earlier_host
                    and _binds_overlap(address["IP"], earlier["IP"])):
                raise ConfigError(f"{path}: {key}: {address['Port']} is not allowed; allowed: "
                                  f"a port none of the others on {host} has ({earlier_key} "
                                  f"has it, on {earlier['IP']})")


def _http_host(address):
    """The host a daemon's address names (its ``HTTP``, derived from its IP when not set)."""
    return (urllib.parse.urlsplit(address["HTTP"]).hostname or "").lower()


def _binds_overlap(first, second):
    """Whether servers bound to IP addresses *first* and *second* on one computer share their
    ports: the same address, or a wildcard that covers the other (``::`` takes IPv4 too, a
    socket's default on Linux and macOS)."""
    first, second = (_unmapped(ipaddress.ip_address(ip)) for ip in (first, second))

    def covers(wildcard, other):
        return wildcard.is_unspecified and wildcard.version in (other.version, 6)
    return first == second or covers(first, second) or covers(second, first)


def _unmapped(address):
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) as the IPv4 address it maps."""
    return getattr(address, "ipv4_mapped", None) or address


def _check_files_apart(config, path):
    """Refuse a daemon's log file that is its journal: log lines written into the SQLite file,
    then the log's rotation renaming the journal away."""
    for service in SERVICES:
        log_file = service_path(config["Logging"]["File"], service)
        if os.path.abspath(log_file) == os.path.abspath(
                service_path(config["Database"]["File"], service)):
            raise ConfigError(f"{path}: Logging → File: {config['Logging']['File']!r} is not "
                              "allowed; allowed: a file other than Database → File (the "
                              f"{service} daemon's journal would be written over)")


def _check_alert_orders_fit(config, path):
    """Refuse an alert kind whose orders the telescope's limits refuse: every order of the
    first such alert would be refused by the scheduler, the event never observed."""
    telescope = config["Telescope"]
    for kind in ALERT_KINDS.values():
        settings = config["Alerts"][kind]
        if not settings["Act"]:
            continue
        for key, limit_key in (("Exposure Time", "Max Exposure Time"),
                               ("Number of Exposures", "Max Number of Exposures")):
            if settings[key] > telescope[limit_key]:
                raise ConfigError(f"{path}: Alerts → {kind} → {key}: {settings[key]:g} is not "
                                  f"allowed; allowed: at most Telescope → {limit_key} "
                                  f"({telescope[limit_key]:g}), or the telescope refuses "
                                  "every order of such an alert")


def _warn_if_frames_cannot_be_calibrated(config, path):
    """Warn of a Data Directory the preprocessor may not read (frames moved to a bigger disk,
    the preprocessor not told): every frame handed to it would be refused, a night left
    uncalibrated. A warning: a site that never hands frames over needs neither."""
    data = os.path.realpath(config["Telescope"]["Data Directory"])
    allowed = config["Preprocessor"]["Allowed Directories"]
    if not inside(data, [os.path.realpath(directory) for directory in allowed]):
        log.warning("%s: Telescope → Data Directory (%s) is outside Preprocessor → Allowed "
                    "Directories (%s): the frames of Observations with Output: Analysis "
                    "would be refused by the preprocessor; add it there", path, data,
                    ", ".join(allowed))


def _is_fits_section(text):
    """Whether *text* is a FITS section of a 2-D image (what ccdproc reads, at job time,
    in a forward order: its parser is too heavy to load with the configuration)."""
    match = _FITS_SECTION.fullmatch(text.strip())
    if match is None:
        return False
    for first, last in (match.group(1, 2), match.group(3, 4)):
        if first is not None and not 1 <= int(first) <= int(last):
            return False
    return True


def _finish_devices(config, path):
    """Check each device's driver has what it needs; fill in its port."""
    for section, name in DEVICE_SECTIONS:
        device = config[section][name]
        driver = device["Driver"]
        where = f"{path}: {section} → {name}"
        for key in REQUIRED_DEVICE_SETTINGS.get(driver, ()):
            if device[key] is None:
                raise ConfigError(f"{where} → {key} is required with Driver: {driver} "
                                  f"({SCHEMA[section][name][key].doc})")
        if device["Port"] is None:
            device["Port"] = DEFAULT_DEVICE_PORTS.get(driver)


def address_key(service):
    """The configuration section holding *service*'s address, e.g. ``"Dome Address"``."""
    return f"{service.capitalize()} Address"


def service_path(template, service):
    """Fill the ``{service}`` placeholder of a path setting."""
    return template.replace("{service}", service)


def is_loopback(ip):
    """Whether *ip* is reachable only from this machine."""
    return ipaddress.ip_address(ip).is_loopback
