"""The LX200 command language, without any I/O: formatting, parsing and reply shapes.

Everything here is pure, so it can be tested without a mount.

Coordinates travel as sexagesimal text in one of two precisions, chosen on the mount by
``:U#`` (a toggle):

==========  ===============  ==================
precision   right ascension  declination
==========  ===============  ==================
low         ``HH:MM.T``      ``sDD*MM``
high        ``HH:MM:SS``     ``sDD*MM:SS``
==========  ===============  ==================

Mounts also answer with a few variants that the parsers accept: 10micron's extra decimals
(``HH:MM:SS.S``, ``sDD*MM:SS.S``), and Autostar's degree sign (byte 0xDF, read as ``ß``) or an
apostrophe instead of ``*`` and ``:`` in declinations.

Replies come in three shapes (:class:`Reply`): nothing at all, text ending in ``#``, or a fixed
number of bytes with no terminator (``:Sr``/``:Sd`` answer a bare ``0`` or ``1``). ``:MS#``
is its own shape: ``0`` alone, or an error digit followed by a message ending in ``#`` (Meade,
10micron), or the digit alone (OnStep).
"""

import enum
import math
import re

#: The byte that ends a command and most replies.
TERMINATOR = "#"

#: The ACK byte: the mount answers with one letter, its alignment mode.
ACK = "\x06"

SECONDS_PER_MINUTE = 60
MINUTES_PER_HOUR = 60
HOURS_PER_DAY = 24
#: Tenths of a minute of time in a day, the resolution of a low-precision right ascension.
TENTHS_OF_MINUTE_PER_DAY = HOURS_PER_DAY * MINUTES_PER_HOUR * 10
SECONDS_PER_DAY = HOURS_PER_DAY * MINUTES_PER_HOUR * SECONDS_PER_MINUTE
ARCSECONDS_PER_DEGREE = 3600
ARCMINUTES_PER_DEGREE = 60
#: The declination's bounds, degrees.
MAX_DECLINATION = 90.0


class Precision(enum.Enum):
    """How the mount writes coordinates (switched with ``:U#``)."""

    LOW = "low"
    HIGH = "high"


class ReplyKind(enum.Enum):
    """The shape of a command's reply."""

    #: The mount answers nothing (``:Q#``, ``:U#``, Meade ``:hP#``...).
    NONE = "none"
    #: Text ending in ``#``.
    TERMINATED = "terminated"
    #: A fixed number of bytes, no terminator (``:Sr``/``:Sd``: ``0`` or ``1``).
    FIXED = "fixed"
    #: ``:MS#``: ``0``, or an error digit then (for some dialects) a message ending in ``#``.
    SLEW = "slew"


class Reply:
    """What to read after a command.

    Parameters
    ----------
    kind : ReplyKind
    length : int
        For :attr:`ReplyKind.FIXED`, how many bytes.
    message_after_error : bool
        For :attr:`ReplyKind.SLEW`: whether an error digit is followed by ``<message>#``.
    """

    def __init__(self, kind, length=0, message_after_error=False):
        self.kind = kind
        self.length = length
        self.message_after_error = message_after_error

    def __repr__(self):
        return f"Reply({self.kind.value}, {self.length}, {self.message_after_error})"


NO_REPLY = Reply(ReplyKind.NONE)
TERMINATED = Reply(ReplyKind.TERMINATED)
#: One byte, no terminator (e.g. the alignment letter that answers ACK).
ONE_BYTE = Reply(ReplyKind.FIXED, length=1)
#: A bare ``0`` (refused) or ``1`` (accepted).
BOOLEAN = ONE_BYTE

#: The bare digit that accepts a command answered by :data:`BOOLEAN`.
ACCEPTED = "1"

#: ``:MS#``'s success digit.
SLEW_STARTED = "0"

#: What the ``:MS#`` error digits mean. Meade defines 1 and 2; OnStep defines them all.
SLEW_ERRORS = {
    "1": "the target is below the mount's horizon limit",
    "2": "the target is higher than the mount's overhead limit",
    "3": "the controller is in standby (tracking off)",
    "4": "the mount is parked",
    "5": "a goto is already in progress",
    "6": "the target is outside the mount's limits",
    "7": "hardware fault",
    "8": "the mount is already moving",
    "9": "unspecified error",
}


class ProtocolError(ValueError):
    """A reply that is not what the LX200 protocol allows here."""


# --- Formatting ---------------------------------------------------------------------------


def format_ra(hours, precision):
    """Right ascension (hours, any value: it is wrapped into [0, 24)) as the mount writes it.

    Rounds to the precision's resolution (1 s, or 0.1 min) and wraps 24:00:00 to 00:00:00.

    Examples
    --------
    >>> format_ra(2.75, Precision.HIGH)
    '02:45:00'
    >>> format_ra(23.99999, Precision.LOW)
    '00:00.0'
    """
    if precision is Precision.HIGH:
        total = _round_half_up((hours % HOURS_PER_DAY) * SECONDS_PER_DAY / HOURS_PER_DAY)
        total %= SECONDS_PER_DAY
        hour, rest = divmod(total, MINUTES_PER_HOUR * SECONDS_PER_MINUTE)
        minute, second = divmod(rest, SECONDS_PER_MINUTE)
        return f"{hour:02d}:{minute:02d}:{second:02d}"
    tenths = _round_half_up((hours % HOURS_PER_DAY) * TENTHS_OF_MINUTE_PER_DAY / HOURS_PER_DAY)
    tenths %= TENTHS_OF_MINUTE_PER_DAY
    hour, rest = divmod(tenths, MINUTES_PER_HOUR * 10)
    minute, tenth = divmod(rest, 10)
    return f"{hour:02d}:{minute:02d}.{tenth:d}"


def format_dec(degrees, precision):
    """Declination (degrees, clipped to ±90) as the mount writes it: ``sDD*MM[:SS]``.

    The sign is always written, also for declinations between -1° and 0° (``-00*30``).

    Examples
    --------
    >>> format_dec(22.5, Precision.HIGH)
    '+22*30:00'
    >>> format_dec(-0.5, Precision.LOW)
    '-00*30'
    """
    degrees = max(-MAX_DECLINATION, min(MAX_DECLINATION, degrees))
    unit = 1 if precision is Precision.HIGH else SECONDS_PER_MINUTE
    total = _round_half_up(abs(degrees) * ARCSECONDS_PER_DEGREE / unit) * unit
    sign = "-" if degrees < 0 and total else "+"
    degree, rest = divmod(total, ARCSECONDS_PER_DEGREE)
    minute, second = divmod(rest, SECONDS_PER_MINUTE)
    if precision is Precision.HIGH:
        return f"{sign}{degree:02d}*{minute:02d}:{second:02d}"
    return f"{sign}{degree:02d}*{minute:02d}"


def _round_half_up(value):
    """The nearest integer, halves up (Python's :func:`round` rounds halves to even)."""
    return math.floor(value + 0.5)


def set_ra_command(hours, precision):
    """``:SrHH:MM:SS#`` (or ``:SrHH:MM.T#``): set the target's right ascension."""
    return f":Sr{format_ra(hours, precision)}#"


def set_dec_command(degrees, precision):
    """``:SdsDD*MM:SS#`` (or ``:SdsDD*MM#``): set the target's declination."""
    return f":Sd{format_dec(degrees, precision)}#"


# --- Parsing ------------------------------------------------------------------------------

#: ``HH:MM:SS``, ``HH:MM:SS.S[S]`` (10micron) or ``HH:MM.T``.
_RA_PATTERN = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?)|\.(\d))$")
#: ``sDD*MM``, ``sDD*MM:SS``, ``sDD*MM:SS.S``; ``*`` may be the degree sign or ``'``.
_DEC_PATTERN = re.compile(r"^([+-]?)(\d{1,2})[*\xdf'](\d{2})(?:[:'](\d{2}(?:\.\d+)?))?$")


def parse_ra(text):
    """``(hours, precision)`` from a right ascension the mount wrote.

    Raises
    ------
    ProtocolError
        When *text* is not a right ascension (wrong shape, minutes or seconds ≥ 60, hours ≥ 24).
    """
    match = _RA_PATTERN.match(text.strip())
    if not match:
        raise ProtocolError(f"not a right ascension: {text!r}")
    hour, minute = int(match.group(1)), int(match.group(2))
    if match.group(3) is not None:
        second, precision = float(match.group(3)), Precision.HIGH
    else:
        second, precision = int(match.group(4)) * SECONDS_PER_MINUTE / 10, Precision.LOW
    if hour >= HOURS_PER_DAY or minute >= MINUTES_PER_HOUR or second >= SECONDS_PER_MINUTE:
        raise ProtocolError(f"not a right ascension (out of range): {text!r}")
    return hour + minute / MINUTES_PER_HOUR + second / (MINUTES_PER_HOUR * SECONDS_PER_MINUTE), \
        precision


def parse_dec(text):
    """``(degrees, precision)`` from a declination the mount wrote.

    Raises
    ------
    ProtocolError
        When *text* is not a declination (wrong shape, minutes or seconds ≥ 60, beyond ±90°).
    """
    match = _DEC_PATTERN.match(text.strip())
    if not match:
        raise ProtocolError(f"not a declination: {text!r}")
    degree, minute = int(match.group(2)), int(match.group(3))
    second = float(match.group(4)) if match.group(4) is not None else 0.0
    precision = Precision.HIGH if match.group(4) is not None else Precision.LOW
    if minute >= ARCMINUTES_PER_DEGREE or second >= SECONDS_PER_MINUTE:
        raise ProtocolError(f"not a declination (out of range): {text!r}")
    value = degree + minute / ARCMINUTES_PER_DEGREE + second / ARCSECONDS_PER_DEGREE
    if value > MAX_DECLINATION:
        raise ProtocolError(f"not a declination (beyond ±90°): {text!r}")
    return (-value if match.group(1) == "-" else value), precision


def parse_boolean(text):
    """``True`` for ``1``, ``False`` for ``0``; :class:`ProtocolError` for anything else."""
    if text == ACCEPTED:
        return True
    if text == "0":
        return False
    raise ProtocolError(f"neither 0 nor 1: {text!r}")


def slew_refusal(code, message):
    """Why ``:MS#`` refused, from its error digit and the mount's message (may be empty)."""
    meaning = SLEW_ERRORS.get(code)
    if meaning is None:
        raise ProtocolError(f"not an answer to :MS#: {code!r}")
    message = message.strip()
    return f"{meaning} (mount says {message!r}, code {code})" if message else \
        f"{meaning} (code {code})"


def meade_distance_bars_slewing(text):
    """Whether a Meade ``:D#`` reply (the text before ``#``) says a slew is under way.

    The classic LX200 answers a string of bar characters, padded with spaces, whose length
    shows the distance left; Autostar and 10micron one bar (0x7F) until the slew is over, then
    nothing. Any character other than a space is a bar.
    """
    return bool(text.strip(" "))


class OnStepStatus:
    """OnStep's ``:GU#`` status string, the letters INDI's driver reads.

    ``n`` not tracking, ``N`` no goto under way, ``p`` not parked, ``I`` park in progress,
    ``P`` parked, ``F`` park failed (and more letters and digits this driver ignores).
    """

    #: Letters that every valid status holds at least one of (INDI checks the same).
    PARK_LETTERS = "pIPF"

    def __init__(self, text):
        if not any(letter in text for letter in self.PARK_LETTERS):
            raise ProtocolError(f"not an OnStep status (no park letter p/I/P/F): {text!r}")
        self.text = text
        self.parked = "P" in text
        self.slewing = "N" not in text or "I" in text
        self.tracking = "n" not in text and not self.parked


class TenMicronStatus:
    """10micron's ``:Gstat#`` number."""

    TRACKING = 0
    STOPPED = 1
    PARKING = 2
    UNPARKING = 3
    SLEWING_TO_HOME = 4
    PARKED = 5
    SLEWING_OR_STOPPING = 6
    NOT_TRACKING = 7
    MOTORS_TOO_COLD = 8
    TRACKING_OUTSIDE_LIMITS = 9
    FOLLOWING_SATELLITE = 10
    NEED_USER_OK = 11
    UNKNOWN = 98
    ERROR = 99

    MOVING = frozenset({PARKING, UNPARKING, SLEWING_TO_HOME, SLEWING_OR_STOPPING})
    TRACKING_CODES = frozenset({TRACKING, TRACKING_OUTSIDE_LIMITS, FOLLOWING_SATELLITE})
    KNOWN = MOVING | TRACKING_CODES | {STOPPED, PARKED, NOT_TRACKING, MOTORS_TOO_COLD,
                                       NEED_USER_OK, UNKNOWN, ERROR}

    def __init__(self, text):
        try:
            code = int(text)
        except ValueError:
            raise ProtocolError(f"not a 10micron status number: {text!r}") from None
        if code not in self.KNOWN:
            raise ProtocolError(f"not a 10micron status number: {text!r}")
        self.code = code
        self.parked = code == self.PARKED
        self.slewing = code in self.MOVING
        self.tracking = code in self.TRACKING_CODES
