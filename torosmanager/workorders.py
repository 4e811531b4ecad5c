"""The work orders: every WOType's keys, types, units and ranges, in one place.

A work order is a dict. :func:`validate` checks one against its :class:`Schema` and returns it
normalised (angles in decimal degrees, ``Datetime`` as ISO 8601 UTC, ``Calibration Frames`` as a
bool, a generated ``ID`` where none was given), or raises :class:`WorkOrderError`, whose message
names the key, the value received and what is allowed. Keys keep the user's spelling.

Angles come in two forms, each with its own unit: a number is decimal degrees, for RA as for
Dec; a sexagesimal string is hours for RA (``"23:06:00"`` is 23.1 h, 346.5°) and degrees for
Dec. The manual's ``"RA": 23.1`` is therefore 23.1°, which is ``"01:32:24"`` in hours.

Examples
--------
>>> order = validate({"WOType": "Observation", "RA": "23:06:00", "Dec": "+13:12:00",
...                   "Filter": "I", "Exposure Time": 30})
>>> order["RA"], order["Dec"]
(346.5, 13.2)
>>> validate({"WOType": "Observation", "RA": 23.1, "Dec": 13.2, "Filter": "I",
...           "Exposure Time": 30})["RA"]
23.1
"""

import base64
import difflib
import enum
import math
import os
import re
import reprlib
import urllib.parse
import uuid
import xmlrpc.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, TypeAlias, TypeVar

from .units import DEGREES_PER_HOUR, DEGREES_PER_TURN, Degrees, finite_float

#: A work order: key (the user's spelling) to value, as XML-RPC delivers it or as
#: :func:`validate` normalises it.
WorkOrder: TypeAlias = dict[str, Any]
#: A value parser: it returns the normalised value or raises :class:`InvalidValue`.
Parse: TypeAlias = Callable[[Any], Any]
_Parser = TypeVar("_Parser", bound=Parse)

#: Priorities are floats on this scale (the manual: "a float number in the range 0-10").
PRIORITY_RANGE = (0.0, 10.0)
#: The longest exposure any order may ask for, seconds: a whole day. Each telescope has a
#: lower limit of its own (Telescope → Max Exposure Time); this one keeps every duration the
#: scheduler computes finite, whatever the configuration.
MAX_EXPOSURE_TIME = 86400.0
#: The most frames any order may ask for (Telescope → Max Number of Exposures is lower).
MAX_NUMBER_OF_EXPOSURES = 100_000
#: The most plan entries (and unscheduled orders) in one answer to a Plan query.
MAX_PLAN_PAGE = 500
#: The most a Plan query may skip: more orders than any night's queue holds.
MAX_PLAN_OFFSET = 1_000_000_000
#: The longest ID: it is in every log line about the order.
MAX_ID_CHARACTERS = 128
#: The longest text value (a name, a user, a reason).
MAX_TEXT_CHARACTERS = 1024
#: The longest File Location, in bytes of the path: Linux's PATH_MAX. (Resolving a path of
#: hundreds of thousands of parts held the preprocessor's front desk for seconds.)
MAX_PATH_BYTES = 4096
#: How a File Location written as a URL begins.
FILE_URL = "file://"
#: The host of a ``file://`` URL that names this machine.
LOCALHOST = "localhost"
#: Characters of a received value quoted in a Fault or a log line; the rest is summarised.
QUOTED_VALUE_CHARACTERS = 80
#: Nesting quoted of a received array or struct.
QUOTED_VALUE_DEPTH = 3


class FaultCode(enum.IntEnum):
    """The ``faultCode`` of every :class:`xmlrpc.client.Fault` a front desk raises."""

    INVALID = 1
    UNKNOWN_WOTYPE = 2
    WRONG_DAEMON = 3
    CONFLICT = 4
    NOT_FOUND = 5
    NOT_CANCELLABLE = 6
    INTERNAL = 7
    UNSAFE = 8
    UNAVAILABLE = 9


#: When each Fault is raised, for the documentation.
FAULT_MEANINGS = {
    FaultCode.INVALID: "a key is missing or unknown, or its value is not allowed; or the call "
                       "is: a method not served, or the wrong number of parameters",
    FaultCode.UNKNOWN_WOTYPE: "the WOType is not one this project knows (the message lists them)",
    FaultCode.WRONG_DAEMON: "the WOType belongs to another daemon (the message says which, and "
                            "where)",
    FaultCode.CONFLICT: "the ID was used before for a different work order",
    FaultCode.NOT_FOUND: "Status or Cancel of an ID this daemon never accepted",
    FaultCode.NOT_CANCELLABLE: "Cancel of an order that has already ended",
    FaultCode.INTERNAL: "the daemon failed; its log has the details",
    FaultCode.UNSAFE: "refused for safety now: the dome will not open while it is unsafe "
                      "(weather, daylight, an unsynchronized clock, no heartbeat) or before "
                      "conditions have been good for Dome → Reopen Delay",
    FaultCode.UNAVAILABLE: "the daemon cannot take the order now, for a reason that passes "
                           "(its journal's disk is full or read-only; the telescope's data "
                           "disk has no room for a frame, or cannot be written); nothing was "
                           "accepted: send it again later",
}


class WorkOrderError(Exception):
    """A work order the front desk refuses.

    Parameters
    ----------
    message : str
        The whole explanation, shown to the client as the Fault's message.
    code : FaultCode
        What kind of refusal it is.
    """

    def __init__(self, message: str, code: FaultCode = FaultCode.INVALID) -> None:
        super().__init__(message)
        self.code = code


class InvalidValue(ValueError):
    """Raised by a value parser; the front desk adds the key and the value received."""


def refuse(key: str, value: object, allowed: str) -> WorkOrderError:
    """A :class:`WorkOrderError` for *key*, naming the value received and what is allowed."""
    return WorkOrderError(f"{shorten(key)}: received {shorten(value)}; allowed: {allowed}")


def check_not_ended(order: dict[str, Any], now: datetime) -> None:
    """Refuse an order whose ``Not After`` has passed at *now*: accepted, it could only
    expire (the scheduler's front desk and the telescope's say it in the same words)."""
    not_after = order.get("Not After")
    if not_after is not None and parse_utc(not_after) <= now:
        raise refuse("Not After", not_after, f"an instant still to come (it is "
                     f"{format_utc(now)}): its window has ended")


_QUOTE = reprlib.Repr()  # its settings are attributes (keyword arguments only from 3.12)
_QUOTE.maxlevel = QUOTED_VALUE_DEPTH
_QUOTE.maxstring = _QUOTE.maxother = _QUOTE.maxlong = QUOTED_VALUE_CHARACTERS


def clip(text: str) -> str:
    """*text* (a message) cut to :data:`QUOTED_VALUE_CHARACTERS`, at the end of a word if
    one ends in its second half, with its length when it was longer."""
    if len(text) <= QUOTED_VALUE_CHARACTERS:
        return text
    cut = text[:QUOTED_VALUE_CHARACTERS + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space >= QUOTED_VALUE_CHARACTERS // 2 else cut[:-1]
    return f"{cut.rstrip(' ,;:')}… ({len(text):,} characters)"


def shorten(value: object) -> str:
    """*value*'s repr for a message: at most about :data:`QUOTED_VALUE_CHARACTERS`, with the
    size of what was left out. Safe for values nested to any depth or of any size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        # repr() of an int of over 4,300 digits raises; its size is what matters here.
        return f"an integer of {value.bit_length() * math.log10(2):,.0f} digits"
    quoted = _QUOTE.repr(value)
    if len(quoted) > QUOTED_VALUE_CHARACTERS:
        quoted = quoted[:QUOTED_VALUE_CHARACTERS] + "…"
    if isinstance(value, (str, bytes)) and len(value) > QUOTED_VALUE_CHARACTERS:
        quoted += f" ({len(value):,} characters)"
    elif isinstance(value, (list, dict)) and quoted.endswith(("…", "...]", "...}")):
        quoted += f" ({len(value):,} items)"
    return quoted


# --- value parsers: each returns the normalised value or raises InvalidValue ------------------

def allowing(description: str) -> Callable[[_Parser], _Parser]:
    """Decorate a parser with the ``description`` of what it allows.

    The front desk's Faults and the work-order reference (docs/work-orders.md) quote it; a
    parser without one is described by the first line of its docstring.
    """
    def describe(parse: _Parser) -> _Parser:
        setattr(parse, "description", description)  # a function's attribute: not typed
        return parse
    return describe


#: Control characters (C0, DEL, C1) and the invisible ones that act like them: none belongs
#: in a name or an ID, which log lines quote. A line break there (U+2028 and U+2029 for
#: readers that split on them) would start a line of the client's making in the daemon's
#: log; a direction override (U+202A-U+202E, U+2066-U+2069) shows it in another order than
#: it is; a zero-width space or a byte-order mark (U+200B, U+FEFF) makes two IDs that look
#: the same.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u200b\u2028\u2029\u202a-\u202e"
                                "\u2066-\u2069\ufeff]")
_ON_ONE_LINE = "on one line (no control characters or invisible ones)"
_TEXT = f"a non-empty string of at most {MAX_TEXT_CHARACTERS:,} characters, {_ON_ONE_LINE}"


@allowing(_TEXT)
def text(value: object) -> str:
    """A non-empty string of at most :data:`MAX_TEXT_CHARACTERS`, without control characters
    but in the white space around it, which is left out."""
    if not isinstance(value, str):
        raise InvalidValue(_TEXT)
    result = value.strip()
    if not result or len(result) > MAX_TEXT_CHARACTERS or CONTROL_CHARACTERS.search(result):
        raise InvalidValue(_TEXT)
    return result


_IDENTIFIER = (f"a non-empty string of at most {MAX_ID_CHARACTERS} characters, {_ON_ONE_LINE}, "
               "or an integer (kept as a string)")


@allowing(_IDENTIFIER)
def identifier(value: object) -> str:
    """An order ID: a non-empty string of at most :data:`MAX_ID_CHARACTERS` without control
    characters (but in the white space around it, which is left out), or an integer (kept as
    a string)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidValue(_IDENTIFIER)
    if isinstance(value, int) and value.bit_length() > MAX_ID_CHARACTERS:
        raise InvalidValue(_IDENTIFIER)  # str() of it would be longer anyway
    result = str(value).strip()
    if not result or len(result) > MAX_ID_CHARACTERS or CONTROL_CHARACTERS.search(result):
        raise InvalidValue(_IDENTIFIER)
    return result


def number(minimum: float | None = None, maximum: float | None = None, *,
           above: float | None = None, below: float | None = None,
           unit: str = "") -> Callable[[object], float]:
    """A parser for a real number within inclusive (*minimum*, *maximum*) or exclusive
    (*above*, *below*) bounds."""
    bounds = []
    if minimum is not None:
        bounds.append(f"≥ {minimum:g}")
    if above is not None:
        bounds.append(f"> {above:g}")
    if maximum is not None:
        bounds.append(f"≤ {maximum:g}")
    if below is not None:
        bounds.append(f"< {below:g}")
    description = "a number" + (" " + " and ".join(bounds) if bounds else "") + (
        f" ({unit})" if unit else "")

    @allowing(description)
    def parse(value: object) -> float:
        result = _finite(value, description)
        if ((minimum is not None and result < minimum)
                or (maximum is not None and result > maximum)
                or (above is not None and result <= above)
                or (below is not None and result >= below)):
            raise InvalidValue(description)
        return result

    return parse


def _finite(value: object, description: str) -> float:
    """*value* as a finite float, or :class:`InvalidValue` (integers too large included)."""
    result = finite_float(value)
    if result is None:
        raise InvalidValue(description)
    return result


def count(minimum: int = 1, maximum: int | None = None) -> Callable[[object], int]:
    """A parser for a whole number from *minimum* to *maximum* (inclusive)."""
    description = f"a whole number ≥ {minimum}" + (f" and ≤ {maximum:,}" if maximum else "")

    @allowing(description)
    def parse(value: object) -> int:
        number_ = _finite(value, description)
        if (not number_.is_integer() or number_ < minimum
                or (maximum is not None and number_ > maximum)):
            raise InvalidValue(description)
        return int(number_)

    return parse


#: A sign, then degrees or hours, minutes and seconds; the sign may be the Unicode minus
#: (U+2212) that catalogues and web pages print.
_SEXAGESIMAL = re.compile(r"^\s*([+\-\u2212])?\s*(\d{1,3})[:\s](\d{1,2})(?:[:\s](\d{1,2}(?:\.\d*)?))?\s*$")


def _sexagesimal(value: str) -> float | None:
    """``"+13:12:00"`` as a signed number in the unit of its first field (hours or degrees);
    ``None`` when it is not sexagesimal."""
    match = _SEXAGESIMAL.match(value)
    if not match:
        return None
    sign, first, minutes_text, seconds_text = match.groups()
    minutes, seconds = int(minutes_text), float(seconds_text or 0)
    if minutes >= 60 or seconds >= 60:
        return None
    magnitude = int(first) + minutes / 60 + seconds / 3600
    return magnitude if sign in (None, "+") else -magnitude


#: What RA allows: each form names its unit, because the same digits mean different angles
#: (RA 23.1 is 23.1°; "23:06:00" is 23.1 h, 346.5°).
_RIGHT_ASCENSION = ("decimal degrees from 0 to below 360 (a number), or hours as a sexagesimal "
                    "string 'HH:MM:SS' ('01:32:24' is 23.1°)")


@allowing(_RIGHT_ASCENSION)
def right_ascension(value: object) -> Degrees:
    """RA, returned in decimal degrees [0, 360).

    A number is decimal degrees; a sexagesimal string (``"01:32:24"``) is hours, converted
    to degrees.
    """
    if isinstance(value, str):
        hours = _sexagesimal(value)
        if hours is None or not 0 <= hours < 24:
            raise InvalidValue(_RIGHT_ASCENSION)
        # 23:59:59.99999999 rounds to 360°, which is 0°.
        return round(hours * DEGREES_PER_HOUR, 9) % DEGREES_PER_TURN
    degrees = _finite(value, _RIGHT_ASCENSION)
    if not 0 <= degrees < 360:
        raise InvalidValue(_RIGHT_ASCENSION)
    return degrees


#: What Dec allows: degrees in both forms.
_DECLINATION = ("decimal degrees from -90 to +90 (a number), or degrees as a sexagesimal "
                "string '±DD:MM:SS'")


@allowing(_DECLINATION)
def declination(value: object) -> Degrees:
    """Dec, returned in decimal degrees [−90, +90].

    A number is decimal degrees; a sexagesimal string (``"+13:12:00"``) is degrees too.
    """
    if isinstance(value, str):
        degrees = _sexagesimal(value)
        if degrees is None or not -90 <= degrees <= 90:
            raise InvalidValue(_DECLINATION)
        return round(degrees, 9)
    result = _finite(value, _DECLINATION)
    if not -90 <= result <= 90:
        raise InvalidValue(_DECLINATION)
    return result


_YES = {"yes", "true", "y", "1"}
_NO = {"no", "false", "n", "0"}


def yes_no(value: object) -> bool:
    """``True``/``False`` or ``"Yes"``/``"No"`` (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _YES | _NO:
        return value.strip().lower() in _YES
    raise InvalidValue("true or false, or 'Yes' or 'No'")


def utc_datetime(value: object) -> str:
    """An ISO 8601 instant; without an offset it is read as UTC. Returned as ``...Z`` text."""
    allowed = "an ISO 8601 UTC date and time such as '2019-03-05T14:34:54.234'"
    if isinstance(value, datetime):
        instant = value
    elif isinstance(value, str):
        try:
            instant = parse_utc(value.strip())
        except ValueError:
            raise InvalidValue(allowed) from None
    else:
        raise InvalidValue(allowed)
    try:
        return format_utc(instant)
    except (OverflowError, ValueError):  # year 1 or 9999 with an offset: not a UTC instant
        raise InvalidValue(allowed) from None


def parse_utc(text: str) -> datetime:
    """The aware datetime of ISO 8601 *text* (``...Z``, as :func:`format_utc` writes it, or
    with an offset); without an offset it is read as UTC.

    Raises
    ------
    ValueError
        When *text* is no ISO 8601 instant.
    """
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)


def format_utc(instant: datetime) -> str:
    """Format a datetime as ISO 8601 UTC with milliseconds and a ``Z``; a naive one is UTC."""
    if instant.tzinfo is not None:  # (a naive one, every order's Datetime, needs no copy)
        offset = instant.utcoffset()
        instant = (instant - offset if offset else instant).replace(tzinfo=None)
    return instant.isoformat(timespec="milliseconds") + "Z"


def priority(value: object) -> float | None:
    """``None`` (let the scheduler assign one) or a number; it is clipped to 0–10 on arrival."""
    if value is None:
        return None
    return number(unit="0–10, clipped")(value)


def probability(value: object) -> float:
    """A probability, 0–1."""
    return number(0, 1)(value)


_IDENTIFIERS = "a non-empty list of order IDs"


@allowing(_IDENTIFIERS)
def identifiers(value: object) -> list[str]:
    """A non-empty list of order IDs."""
    if not isinstance(value, list) or not value:
        raise InvalidValue(_IDENTIFIERS)
    return [identifier(item) for item in value]


_ALERT_PAYLOAD = ("the alert as a non-empty string: its text, or base64 for a binary format (or "
                  "an XML-RPC base64 value)")


@allowing(_ALERT_PAYLOAD)
def alert_payload(value: object) -> str:
    """An alert as text (JSON, XML), or as base64 text (or an XML-RPC binary) for a binary
    format; the Alert order's ``Format`` says which. Kept as text."""
    if isinstance(value, xmlrpc.client.Binary):
        value = value.data
    if isinstance(value, (bytes, bytearray)):  # an XML-RPC base64 value
        if not value:
            raise InvalidValue(_ALERT_PAYLOAD)
        return base64.b64encode(value).decode("ascii")
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(_ALERT_PAYLOAD)
    return value


def choice(*options: str) -> Callable[[object], str]:
    """A parser accepting one of *options*, whatever its case; returns the canonical spelling."""
    canonical = {option.lower(): option for option in options}
    description = "one of " + ", ".join(repr(option) for option in options)

    @allowing(description)
    def parse(value: object) -> str:
        if not isinstance(value, str) or value.strip().lower() not in canonical:
            raise InvalidValue(description)
        return canonical[value.strip().lower()]

    return parse


def local_path(location: str) -> str:
    """The path *location* names: itself, or a ``file://`` URL's path, percent-decoded as
    URLs are written (``file:///data/my%20night`` is ``/data/my night``, what
    :meth:`pathlib.Path.as_uri` makes of it). ``file://localhost/path`` is this machine's
    ``/path`` (RFC 8089); ``file://host/path`` names another machine: its path is
    ``host/path``, not absolute."""
    text = location.strip()
    if text.startswith(FILE_URL):
        path = text[len(FILE_URL):]
        if path.lower().startswith(LOCALHOST + "/"):
            path = path[len(LOCALHOST):]
        return urllib.parse.unquote(path)
    return text


def inside(path: str, roots: "tuple[str, ...] | list[str]") -> bool:
    """Whether the resolved *path* is one of the resolved directories *roots* or lies in one
    (a File Location and ``Preprocessor → Allowed Directories``)."""
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def file_location(value: object) -> str | list[str]:
    """A path or ``file://`` URL, or a non-empty list of them."""
    allowed = (f"an absolute path or file:// URL (a path of at most {MAX_PATH_BYTES:,} bytes, "
               "without NUL), or a list of them")
    locations = value if isinstance(value, list) else [value]
    if not locations:
        raise InvalidValue(allowed)
    result = []
    for location in locations:
        if not isinstance(location, str):
            raise InvalidValue(allowed)
        path = local_path(location)
        if (not path.startswith("/") or "\0" in path
                or len(os.fsencode(path)) > MAX_PATH_BYTES):
            raise InvalidValue(allowed)
        result.append(path)
    return result if isinstance(value, list) else result[0]


# --- schemas --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One key of a work order.

    Parameters
    ----------
    key : str
        The key as users spell it, or a regular expression when *pattern* is true.
    parse : callable
        Turns the received value into the normalised one, or raises :class:`InvalidValue`.
    required : bool
        Whether the key must be present (and not ``None``).
    default : object
        The value used when an optional key is absent.
    doc : str
        One line for the work-order reference.
    """

    key: str
    parse: Parse
    required: bool = False
    default: object = None
    doc: str = ""
    pattern: bool = False


@dataclass(frozen=True)
class Schema:
    """The keys of one WOType and the daemons that take it."""

    wotype: str
    services: tuple[str, ...]
    fields: tuple[Field, ...]
    doc: str = ""
    at_least_one_of: tuple[str, ...] = field(default_factory=tuple)
    #: What the keys of *at_least_one_of* say, for the message when none is given.
    at_least_one_of_means: str = "at least one action"
    #: False for queries and signals: answered at once, never kept in the journal.
    journaled: bool = True

    def field_for(self, key: str) -> Field | None:
        """The :class:`Field` that *key* belongs to, or ``None``."""
        rule = self._fields_by_key.get(key)
        if rule is not None:
            return rule
        return next((candidate for candidate in self.fields
                     if candidate.pattern and re.fullmatch(candidate.key, key)), None)

    @cached_property
    def _fields_by_key(self) -> dict[str, Field]:
        # Looked up for every key of every order the front desk receives: a dict, not a scan.
        return {rule.key: rule for rule in self.fields if not rule.pattern}

    def field_for_key(self, key: str) -> Field:
        """The :class:`Field` whose key (or pattern) is exactly *key*."""
        return next(f for f in self.fields if f.key == key)

    @staticmethod
    def display_name(rule: Field) -> str:
        """How a key is written in messages and docs (``BlinkNN`` for the pattern)."""
        return rule.doc.split(":")[0] if rule.pattern else rule.key

    def key_names(self) -> list[str]:
        """The keys, for messages."""
        return [self.display_name(f) for f in self.fields]


COMMON = (
    Field("ID", identifier, doc="the order's identifier; assigned (and returned) when missing"),
    Field("WOType", text, required=True, doc="the kind of work order"),
    Field("Priority", priority,
          doc="0–10; assigned by the scheduler on arrival, a requested value is clipped"),
    Field("Datetime", utc_datetime, doc="when the order was issued, ISO 8601 UTC; default now"),
    Field("User", text, default="unknown", doc="who submitted the order"),
)

OBSERVATION = Schema(
    "Observation", ("scheduler", "telescope"), COMMON + (
        Field("Telescope Name", text, doc="the telescope that must take it; default this one"),
        Field("RA", right_ascension, required=True,
              doc="right ascension: a number is decimal degrees, a 'HH:MM:SS' string is "
                  "hours (the manual's 23.1 is 23.1°, '01:32:24')"),
        Field("Dec", declination, required=True,
              doc="declination: a number or a '±DD:MM:SS' string, both degrees"),
        Field("Object Name", text, doc="target name, written to OBJECT in the FITS header"),
        Field("Filter", text, required=True, doc="filter name, e.g. 'I'"),
        Field("Exposure Time", number(above=0, maximum=MAX_EXPOSURE_TIME, unit="seconds"),
              required=True, doc="seconds per exposure; the telescope's own limit is lower "
                                 "(Telescope → Max Exposure Time)"),
        Field("Number of Exposures", count(1, MAX_NUMBER_OF_EXPOSURES), default=1,
              doc="frames to take; the telescope's own limit is lower (Telescope → Max Number "
                  "of Exposures)"),
        Field("Type of job", text, doc="e.g. 'ToO', 'Research', 'Calibration', 'Test'"),
        Field("Type of object", text, doc="e.g. 'Galaxy', 'Kilonova candidate'"),
        Field("Calibration Frames", yes_no, default=False,
              doc="'Yes' to also take bias frames and matching darks"),
        Field("Output", choice("Raw", "Analysis"), default="Raw",
              doc="'Analysis' hands the frames to the preprocessor when done, as a "
                  "Preprocessing order of the observation's priority"),
        Field("Not Before", utc_datetime,
              doc="do not start before this instant, ISO 8601 UTC (the telescope daemon, sent "
                  "the order itself, takes it up Telescope → Not Before Lead ahead of it, "
                  "running the orders ready now meanwhile, then waits for it, pointed if its "
                  "target is up; a later night is refused)"),
        Field("Not After", utc_datetime,
              doc="finish by this instant, ISO 8601 UTC; after it the order expires (at the "
                  "telescope daemon too, refused when sent, failed if still queued then; "
                  "running, it starts no frame that would end after it, and ends done with "
                  "the frames taken)"),
        Field("Group ID", text, doc="the group the order belongs to (the alerts daemon: the "
                                    "event); a Cancel may name the group"),
        Field("Probability", probability,
              doc="the share of the event's localisation probability (or galaxy score) the "
                  "target covers, 0–1"),
        Field("Supersedes", identifiers, doc="IDs of the orders this one replaces (an alert's "
                                             "update)"),
    ),
    doc="Observe a target: slew, filter, exposures (telescope daemon, through the scheduler).",
)

DOME = Schema(
    "Dome", ("scheduler", "dome"), COMMON + (
        Field("Shutter", choice("Open", "Close"), doc="open or close the shutter"),
        Field("Park", yes_no, doc="true to park the dome"),
        Field("Azimuth", number(0, below=360, unit="degrees"),
              doc="rotate to this azimuth (a dome that follows the telescope turns back to it "
                  "while the shutter is open: add Follow Telescope false to keep it here)"),
        Field("Follow Telescope", yes_no,
              doc="true to keep the slit on the telescope while the shutter is open (Dome → "
                  "Follow Telescope, the default, until the daemon restarts), false to stop; "
                  "carried out before Azimuth and Park"),
        Field(r"Blink[0-9][0-9]", yes_no, pattern=True,
              doc="BlinkNN: true to blink auxiliary output NN (01 is the warning light)"),
    ),
    doc="Move the dome or switch its auxiliary outputs (dome daemon, through the scheduler).",
    at_least_one_of=("Shutter", "Park", "Azimuth", "Follow Telescope", r"Blink[0-9][0-9]"),
)

#: A Preprocessing order's Requests: calibrate the frames; only make their calibration terms.
EXPOSURE_CALIBRATION, PREPARE_CALIBRATION = "Exposure Calibration", "Prepare Calibration"

PREPROCESSING = Schema(
    "Preprocessing", ("preprocessor",), COMMON + (
        Field("File Location", file_location, required=True,
              doc="a night directory or file:// URL (percent-encoded, as "
                  "URLs are), or a list of FITS files"),
        Field("Request", choice(EXPOSURE_CALIBRATION, PREPARE_CALIBRATION),
              default=EXPOSURE_CALIBRATION,
              doc="what to do: 'Exposure Calibration' calibrates the frames; 'Prepare "
                  "Calibration' only makes the calibration terms of these light frames from "
                  "the master library, kept for the job that will calibrate them (the "
                  "telescope sends one at an observation's first frame)"),
    ),
    doc="Calibrate raw CCD frames (preprocessor daemon).",
)

PARK = Schema(
    "Park", ("telescope",), COMMON + (
        Field("Reason", text, default="requested", doc="why, for the log and the interrupted "
                                                       "order's history"),
    ),
    doc="Abort the observation under way (it is marked interrupted, to be retried) and park "
        "the telescope. The dome daemon sends it when it closes for safety.",
)

HEARTBEAT = Schema(
    "Heartbeat", ("dome",), (
        Field("WOType", text, required=True, doc="'Heartbeat'"),
        Field("User", text, default="unknown", doc="who is alive (the scheduler)"),
        Field("Datetime", utc_datetime, doc="when it was sent, ISO 8601 UTC"),
    ),
    doc="The scheduler's dead-man signal: a dome that hears none for Dome → Heartbeat Timeout "
        "closes. Answered at once, not journaled.",
    journaled=False,
)

PLAN = Schema(
    "Plan", ("scheduler",), (
        Field("WOType", text, required=True, doc="'Plan'"),
        Field("Offset", count(0, MAX_PLAN_OFFSET), default=0,
              doc="planned entries (in time order) and unscheduled orders to skip"),
        Field("Limit", count(1, MAX_PLAN_PAGE), default=MAX_PLAN_PAGE,
              doc="at most this many entries, and as many unscheduled orders"),
        Field("User", text, doc="who asks"),
    ),
    doc="A page of the scheduler's plan for tonight: its entries and why the other orders are "
        "not in it (`toros plan` reads them all). Answered at once, not journaled.",
    journaled=False,
)

STATUS = Schema(
    "Status", (), (
        Field("ID", identifier, doc="the order to report on; without it, the daemon's health"),
        Field("WOType", text, required=True, doc="'Status'"),
        Field("User", text, doc="who asks"),
    ),
    doc="Report on one order (state and history) or, without ID, on the daemon.",
    journaled=False,
)

CANCEL = Schema(
    "Cancel", (), (
        Field("ID", identifier, doc="the order to cancel"),
        Field("Group ID", text, doc="or: cancel every order of this group that has not ended"),
        Field("Keep Running", yes_no, default=False,
              doc="with Group ID: 'Yes' cancels only the orders not yet started"),
        Field("WOType", text, required=True, doc="'Cancel'"),
        Field("User", text, doc="who cancels"),
    ),
    doc="Cancel an order, or a group of orders, that has not ended.",
    at_least_one_of=("ID", "Group ID"),
    at_least_one_of_means="what to cancel",
    journaled=False,
)

#: The formats an Alert order's Payload may be in; the last two are binary (sent as base64).
ALERT_FORMATS = ("lvk_json", "voevent", "gcn_json", "gcn_socket", "skymap", "retraction")
#: Of :data:`ALERT_FORMATS`, those whose Payload is base64.
BINARY_ALERT_FORMATS = ("gcn_socket", "skymap")

ALERT = Schema(
    "Alert", ("alerts",), COMMON + (
        Field("Format", choice(*ALERT_FORMATS), required=True,
              doc="lvk_json (igwn.gwalert), voevent (VOEvent 2.0), gcn_json (GCN JSON notice), "
                  "gcn_socket (160-byte GCN notice, base64), skymap (HEALPix FITS, base64), or "
                  "retraction: an operator standing down from an event its senders have not "
                  "retracted (a glitch seen by eye), acted on as theirs would be"),
        Field("Payload", alert_payload, required=True,
              doc="the alert: text, or base64 for gcn_socket and skymap; for a retraction, why"),
        Field("Event ID", text, doc="skymap: the event the map belongs to; retraction: the "
                                    "event stood down from (required with either)"),
        Field("Origin", text, doc="where the alert came from, e.g. 'kafka:igwn.gwalert'"),
    ),
    doc="An alert for the alerts daemon to turn into target-of-opportunity orders (or to "
        "cancel them: a retraction).",
)

EVENTS = Schema(
    "Events", ("alerts",), (
        Field("WOType", text, required=True, doc="'Events'"),
        Field("Event ID", text, doc="one event's report; without it, the list of events"),
        Field("Limit", count(1), doc="the list: only this many events, the most recent first "
                                     "(default: every one); `Total Events` counts them all"),
        Field("User", text, doc="who asks"),
    ),
    doc="The alerts daemon's events (`toros alerts` reads them): each one's state, or one "
        "event's report. Answered at once, not journaled.",
    journaled=False,
)

#: Every WOType a daemon may receive.
SCHEMAS = {schema.wotype: schema for schema in (OBSERVATION, DOME, PREPROCESSING, PARK, HEARTBEAT,
                                                PLAN, ALERT, EVENTS, STATUS, CANCEL)}

#: Queries every daemon answers, whatever work it does.
QUERIES = ("Status", "Cancel")

#: The original TOROS Manager's preprocessing request, without a WOType.
LEGACY_REQUEST = EXPOSURE_CALIBRATION


def wotype_of(order: Mapping[str, Any]) -> str:
    """The WOType of *order*, reading the original ``{"Request": "Exposure Calibration"}`` form
    as ``Preprocessing``."""
    if "WOType" not in order and order.get("Request") == LEGACY_REQUEST:
        return PREPROCESSING.wotype
    wotype = order.get("WOType")
    if not isinstance(wotype, str) or wotype not in SCHEMAS:
        raise WorkOrderError(
            f"'WOType': received {shorten(wotype)}; allowed: one of "
            + ", ".join(repr(name) for name in SCHEMAS), FaultCode.UNKNOWN_WOTYPE)
    return wotype


def validate(order: object, now: datetime | None = None) -> WorkOrder:
    """Check a work order against its schema and return it normalised.

    Parameters
    ----------
    order : dict
        The work order as received.
    now : datetime, optional
        The clock's time, used for a missing ``Datetime``; default the real UTC now.

    Returns
    -------
    dict
        A new dict: the same keys with normalised values, defaults for missing optional keys,
        and ``ID`` and ``Datetime`` filled in for a work (non-query) order.

    Raises
    ------
    WorkOrderError
        Naming the key, the value received and what is allowed.
    """
    if not isinstance(order, dict):
        raise WorkOrderError(f"a work order must be a dict (an XML-RPC struct); "
                             f"received {type(order).__name__} {shorten(order)}")
    wotype = wotype_of(order)
    schema = SCHEMAS[wotype]
    order = dict(order, WOType=wotype)
    result: WorkOrder = {}
    given: set[str] = set()  # the keys (or patterns) of the fields given
    for key, value in order.items():
        if not isinstance(key, str):
            raise WorkOrderError(f"work-order keys must be strings; received {shorten(key)}")
        rule = schema.field_for(key)
        if rule is None:
            raise WorkOrderError(_unknown_key_message(schema, key, value))
        if value is None and not rule.required:
            continue
        given.add(rule.key)
        try:
            result[key] = rule.parse(value)
        except InvalidValue as error:
            raise refuse(key, value, str(error)) from None
    for rule in schema.fields:
        if rule.pattern:
            continue
        if rule.required and result.get(rule.key) is None:
            raise WorkOrderError(f"{rule.key!r} is required in {wotype} work orders "
                                 f"({rule.doc})")
        if rule.key not in result and rule.default is not None:
            result[rule.key] = rule.default
    if schema.at_least_one_of and given.isdisjoint(schema.at_least_one_of):
        raise WorkOrderError(f"{wotype} work orders need {schema.at_least_one_of_means}; "
                             "allowed keys: "
                             + ", ".join(repr(schema.display_name(schema.field_for_key(key)))
                                         for key in schema.at_least_one_of))
    _check_time_window(order, result)
    if schema.journaled:  # work, not a query: it gets an identity and a time
        # (made only when missing: a new ID costs the system's random source a read)
        if "ID" not in result:
            result["ID"] = new_id()
        if "Datetime" not in result:
            result["Datetime"] = format_utc(now or datetime.now(timezone.utc))
    return result


def _check_time_window(received: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    """Refuse a ``Not Before`` that is not earlier than ``Not After``.

    No instant would satisfy both, so the order could never run; refused here, it is not
    left to the planner to explain as some other obstacle (the Moon, the night).

    Parameters
    ----------
    received : dict
        The order as received: its values are quoted in the message.
    result : dict
        The normalised order (``...Z`` ISO 8601 UTC instants).

    Raises
    ------
    WorkOrderError
        Naming both keys, the values received and what is allowed.
    """
    not_before, not_after = result.get("Not Before"), result.get("Not After")
    if not_before is None or not_after is None:
        return
    if parse_utc(not_before) < parse_utc(not_after):
        return
    raise WorkOrderError(
        f"'Not Before' and 'Not After': received {shorten(received['Not Before'])} and "
        f"{shorten(received['Not After'])}; allowed: 'Not Before' must be earlier than "
        "'Not After'")


def _unknown_key_message(schema: Schema, key: str, value: object) -> str:
    names = schema.key_names()
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"{shorten(key)}: received {shorten(value)}; this key is not part of "
            f"{schema.wotype} work orders{hint}; allowed keys: "
            + ", ".join(repr(name) for name in names))


def new_id() -> str:
    """A fresh, unique order ID."""
    return uuid.uuid4().hex[:12]


def clip_priority(value: float) -> float:
    """Clip a requested priority into :data:`PRIORITY_RANGE`."""
    low, high = PRIORITY_RANGE
    return min(max(float(value), low), high)
