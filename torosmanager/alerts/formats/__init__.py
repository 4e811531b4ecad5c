"""Alerts as they arrive, read into one :class:`~torosmanager.alerts.event.Alert`.

``read(format_name, payload)`` picks the reader; one module per format:

- :mod:`.lvk_json`: the LVK's ``igwn.gwalert`` JSON (GCN Kafka, SCiMMA), skymap included;
- :mod:`.voevent`: VOEvent 2.0 XML (LVK, Fermi, Swift, ... over VTP or GCN Classic);
- :mod:`.gcn_json`: GCN's JSON notices (IceCube, Swift, Einstein Probe, Fermi, ...);
- :mod:`.gcn_socket`: GCN Classic's 160-byte binary notices (Swift BAT and Fermi GBM
  positions; the GCN socket and GCN Kafka's ``gcn.classic.binary.*``).

Whatever is wrong with a payload, a reader raises :class:`AlertFormatError` naming the format,
what was missing or wrong, and the value received (shortened).
"""

import importlib
import json
import re
from datetime import datetime, timedelta, timezone

#: The formats :func:`read` knows, each a module of this package with ``read(payload)``.
FORMATS = ("lvk_json", "voevent", "gcn_json", "gcn_socket")
#: The largest payload read, in bytes: an LVK JSON alert with its skymap is a few MB.
MAX_PAYLOAD = 64 * 1024 * 1024
#: How long the received value may be in an error message.
SHOWN = 80
#: The largest serial of an alert: the events book keeps it in an SQLite INTEGER, a signed
#: 64-bit number.
MAX_SERIAL = 2 ** 63 - 1


#: Missions' names in event ids, by the lower-case name the feeds give them (VOEvent ivorn
#: paths, gcn-schema ``$schema`` paths and ``mission`` fields, socket notice types).
MISSION_NAMES = {"swift": "Swift", "fermi": "Fermi", "integral": "INTEGRAL", "agile": "AGILE",
                 "maxi": "MAXI", "svom": "SVOM", "gecam": "GECAM", "konus": "Konus",
                 "glowbug": "Glowbug", "einstein_probe": "EP", "einstein probe": "EP",
                 "icecube": "IceCube", "amon": "AMON", "kamland": "KamLAND", "super-k": "Super-K",
                 "superk": "Super-K"}


def is_trigger_number(identifier):
    """Whether *identifier* is a bare trigger number: ASCII digits only (``str.isdigit`` alone
    would take superscripts and other scripts' digits, which SQLite's ``GLOB '[0-9]'`` does
    not)."""
    identifier = str(identifier)
    return identifier.isascii() and identifier.isdigit()


def event_id(mission, identifier):
    """The event id of *identifier*, a trigger number or an event's name, from *mission*.

    A bare number is prefixed with its mission (``"Fermi-524666471"``): every mission numbers
    its triggers on its own, so a Swift and an INTEGRAL trigger may share a number, and a
    retraction of one must not cancel the other. A name (``"S230518h"``, ``"IceCube-230416A"``)
    is kept as it is, and so is a number whose mission is unknown (*mission* empty). The same
    trigger gets the same id whichever format brings it.

    Parameters
    ----------
    mission : str
        The mission as the feed names it (``"SWIFT"``, ``"einstein_probe"``), or ``""``.
    identifier : str or int
        The event's name or trigger number as the alert gives it.

    Returns
    -------
    str
        The event id: ``"Swift-1227767"``, ``"S230518h"``.
    """
    identifier = str(identifier).strip()
    mission = str(mission or "").strip()
    if not is_trigger_number(identifier) or not mission:
        return identifier
    return f"{MISSION_NAMES.get(mission.lower(), mission)}-{identifier}"


class AlertFormatError(ValueError):
    """A payload that cannot be read as an alert of its format.

    Attributes
    ----------
    format_name : str
        The format being read, e.g. ``"voevent"``.
    problem : str
        What was missing or wrong, e.g. ``"missing 'superevent_id'"``.
    received : str
        The value received, shortened to at most :data:`SHOWN` characters.
    """

    def __init__(self, format_name, problem, received):
        self.format_name, self.problem = format_name, problem
        self.received = shorten(received)
        super().__init__(f"{format_name}: {problem}; received {self.received}")


def read(format_name, payload):
    """The :class:`~torosmanager.alerts.event.Alert` in *payload*, read as *format_name*.

    Parameters
    ----------
    format_name : str
        One of :data:`FORMATS`.
    payload : bytes or str or dict
        The alert as received; JSON formats also take the already-parsed dict.

    Raises
    ------
    AlertFormatError
        The format is unknown, or the payload is not a valid alert of that format.
    """
    if format_name not in FORMATS:
        raise AlertFormatError("alerts", f"unknown format (known: {', '.join(FORMATS)})",
                               format_name)
    module = importlib.import_module(f"{__name__}.{format_name}")
    return module.read(payload)


def shorten(value, width=SHOWN):
    """*value* as text of at most *width* characters: its repr, cut with an ellipsis."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value[:width * 4]).decode("utf-8", "replace")
    if isinstance(value, str):
        text = repr(" ".join(value[:width * 4].split()))
    else:
        text = " ".join(repr(value).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def check_size(format_name, payload):
    """Refuse a payload larger than :data:`MAX_PAYLOAD` or of the wrong type."""
    if not isinstance(payload, str | bytes | bytearray):
        raise AlertFormatError(format_name, f"payload must be bytes or str, not "
                               f"{type(payload).__name__}", payload)
    if len(payload) > MAX_PAYLOAD:
        raise AlertFormatError(format_name, f"payload of {len(payload)} bytes is larger than "
                               f"{MAX_PAYLOAD}", payload)


def load_json(format_name, payload):
    """*payload* (bytes, str or an already-parsed dict) as a dict, or :class:`AlertFormatError`."""
    if isinstance(payload, dict):
        return payload
    check_size(format_name, payload)
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as error:
        raise AlertFormatError(format_name, f"not valid JSON ({error})", payload) from None
    if not isinstance(data, dict):
        raise AlertFormatError(format_name, "JSON must be an object", payload)
    return data


_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
                  r"\s*(Z|[+-]\d\d:?\d\d)?")
#: The largest time-zone offset's hours and minutes (ISO 8601 and RFC 3339: -23:59 to +23:59).
MAX_ZONE_HOURS, MAX_ZONE_MINUTES = 23, 59


def parse_time(format_name, what, value):
    """ISO 8601 *value* as a UTC datetime (no zone means UTC), or :class:`AlertFormatError`."""
    match = _ISO.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise AlertFormatError(format_name, f"{what} is not an ISO 8601 time", value)
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    micro = int((match[7] or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, timezone.utc)
    except ValueError as error:
        raise AlertFormatError(format_name, f"{what} is not a valid time ({error})",
                               value) from None
    zone = match[8]
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > MAX_ZONE_HOURS or minutes > MAX_ZONE_MINUTES:
            raise AlertFormatError(format_name, f"{what} has a time-zone offset out of range "
                                   f"(-23:59 to +23:59)", value)
        try:
            moment -= sign * timedelta(hours=hours, minutes=minutes)
        except OverflowError:
            # A valid local time whose UTC moment is before year 1 or after 9999.
            raise AlertFormatError(format_name, f"{what} is out of range in UTC (years 1 to "
                                   f"9999)", value) from None
    return moment


def number(format_name, what, value, low=None, high=None):
    """*value* (a number or numeric text) as a finite float within [low, high]."""
    try:
        if isinstance(value, bool):
            raise TypeError
        result = float(value)
    except (TypeError, ValueError):
        raise AlertFormatError(format_name, f"{what} is not a number", value) from None
    if result != result or result in (float("inf"), float("-inf")):
        raise AlertFormatError(format_name, f"{what} is not finite", value)
    if (low is not None and result < low) or (high is not None and result > high):
        raise AlertFormatError(format_name, f"{what} must be within [{low}, {high}]", value)
    return result


def optional_url(format_name, what, value):
    """*value*, a URL as a non-empty string, or ``None`` when it is null or empty."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise AlertFormatError(format_name, f"{what} must be a URL (a string) or null", value)
    return value


def position(format_name, ra, dec, radius):
    """(ra, dec, error_radius) checked, in degrees; *radius* may be None."""
    ra = number(format_name, "ra", ra, 0, 360)
    dec = number(format_name, "dec", dec, -90, 90)
    if radius is not None:
        radius = number(format_name, "error radius", radius, 0, 180)
    return ra, dec, radius
