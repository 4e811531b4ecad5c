"""GCN Classic's 160-byte socket notices, read into an Alert.

Why this format: it is the oldest and fastest way GCN sends a GRB position (a site is a TCP
server GCN connects to, see :mod:`torosmanager.alerts.sources.gcn_socket`), and GCN Kafka still
carries the same packets on its ``gcn.classic.binary.*`` topics.

A notice is 40 big-endian signed 32-bit integers (GCN's "socket packet definition document",
``sock_pkt_def_doc``; the field names below are its names, and GCN's own ``socket_demo.c``
shows how each is unpacked). The fields read are the same in every position notice:

==== ============= =================================================================
  0  pkt_type      the notice type: 61 Swift BAT GRB position, 111/112/115 Fermi GBM
                   flight / ground / final position, 3 the once-a-minute imalive, ...
  1  pkt_sernum    the packet's serial number (VOEvent ``Pkt_Ser_Num``): the serial
  3  pkt_sod       when GCN made the packet, seconds of day x 100 (0: not given)
  4  trig_obs_num  the trigger number (Swift: low 24 bits; the observation segment above)
  5  burst_tjd     the burst's Truncated Julian Day (TJD = JD - 2440000.5)
  6  burst_sod     the burst's seconds of day x 100
  7  burst_ra      right ascension (J2000), degrees x 10 000
  8  burst_dec     declination (J2000), degrees x 10 000
 11  burst_error   error-circle radius, degrees x 10 000 (Swift and Fermi alike: GBM
                   notices carry only centi-degree precision, e.g. 141200 for 14.12 deg,
                   but in the same 0.0001-degree unit)
 18  trigger_id    flag bits (Swift calls it soln_status): bit 5 "definitely not a GRB"
                   (a retraction), bit 30 a test submission
 19  misc          flag bits (kept in properties)
 39  pkt_term      a newline in Swift packets; GCN's own Fermi specimens carry 0, so it is
                   not checked
==== ============= =================================================================

What the Alert says:

- *event_id*: the trigger number after its mission, ``"Swift-1227767"`` or
  ``"Fermi-524666471"`` (as the other formats name it); *kind* ``"grb"``; *source*
  ``"Swift BAT"`` or ``"Fermi GBM"``; *serial*: ``pkt_sernum``; ``properties["event_time"]``
  from TJD and SOD;
- *alert_type*: 61 and 111 (the automated first positions) are PRELIMINARY, as the LVK calls
  an automated first alert; 112 (ground-refined) and 115 (final) refine them: UPDATE. A packet
  whose bit 5 says "definitely not a GRB" withdraws the event: RETRACTION. (The VOEvent reader
  calls the same notices INITIAL: a VOEvent cites nothing it updates.)
- *issued*: ``pkt_sod`` on the burst's day, or the next day when that is before the burst (a
  notice comes within a day of its burst); the burst time itself when ``pkt_sod`` is 0;
- *test*: the test notice types (82 Swift BAT, 119 Fermi GBM) or bit 30 of ``trigger_id``;
- *error_radius*, degrees: Swift BAT's as sent (0.9 containment: gcn-schema's default, which
  GCN's own conversion of this packet relies on). Fermi GBM's is 1-sigma (0.68): a flight
  position (111) already includes the systematic; ground (112) and final (115) positions are
  statistical only, so the documented systematic is added in quadrature (see
  :data:`GBM_SYSTEMATIC`). ``properties["statistical_error"]`` and ``["systematic_error"]``
  keep both parts (the latter None when nothing was added), ``["systematic_included"]`` says
  whether *error_radius* includes a systematic (Swift BAT's, "statistical only" in GCN's
  text notices, does not).

:func:`packet_type` tells an imalive (:data:`IMALIVE`) from an alert without reading it all;
:func:`read` refuses imalives and every other notice type with :class:`AlertFormatError`.
"""

import math
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from torosmanager.alerts.event import Alert
from torosmanager.alerts.formats import AlertFormatError, event_id

FORMAT = "gcn_socket"
#: The notice: 40 big-endian ("network order") signed 32-bit integers.
PACKET = struct.Struct(">40i")
#: Its size in bytes, 160.
PACKET_BYTES = PACKET.size

# Field indices, named as in GCN's sock_pkt_def_doc.
PKT_TYPE = 0
PKT_SERNUM = 1
PKT_SOD = 3
TRIG_OBS_NUM = 4
BURST_TJD = 5
BURST_SOD = 6
BURST_RA = 7
BURST_DEC = 8
BURST_ERROR = 11
TRIGGER_ID = 18
MISC = 19

# Notice types (sock_pkt_def_doc's table of types).
#: GCN's heartbeat, sent about once a minute: not an alert.
IMALIVE = 3
#: GCN asks the site to close the connection (GCN's socket_demo.c does not echo it).
KILL_SOCKET = 4
SWIFT_BAT_GRB_POS_ACK = 61
SWIFT_BAT_GRB_POS_TEST = 82
FERMI_GBM_FLT_POS = 111
FERMI_GBM_GND_POS = 112
FERMI_GBM_FIN_POS = 115
FERMI_GBM_POS_TEST = 119
#: Names of the types an error message may meet (the others are named by number only).
TYPE_NAMES = {IMALIVE: "IMALIVE", KILL_SOCKET: "KILL_SOCKET", 2: "TEST_COORDS",
              60: "SWIFT_BAT_GRB_ALERT", 61: "SWIFT_BAT_GRB_POS_ACK",
              62: "SWIFT_BAT_GRB_POS_NACK", 67: "SWIFT_XRT_POSITION",
              82: "SWIFT_BAT_GRB_POS_TEST", 83: "SWIFT_POINTDIR", 110: "FERMI_GBM_ALERT",
              111: "FERMI_GBM_FLT_POS", 112: "FERMI_GBM_GND_POS", 115: "FERMI_GBM_FIN_POS",
              119: "FERMI_GBM_POS_TEST", 129: "FERMI_POINTDIR"}

#: Scale of the time fields (pkt_sod, burst_sod): centiseconds.
CENTISECONDS_PER_SECOND = 100
#: Scale of the angle fields (burst_ra, burst_dec, burst_error): 0.0001 degree.
UNITS_PER_DEGREE = 10_000
SECONDS_PER_DAY = 86_400
#: burst_sod and pkt_sod may reach 86 400.99 s on a day with a leap second.
MAX_CENTISECONDS_OF_DAY = (SECONDS_PER_DAY + 1) * CENTISECONDS_PER_SECOND
#: The Julian Date at which the Truncated Julian Day is 0: TJD = JD - 2440000.5 (NASA's
#: truncation of the JD to four digits, which GCN kept past TJD 9999).
JD_OF_TJD_ZERO = 2440000.5
#: The same moment as a UTC datetime: 1968-05-24 00:00 UTC (MJD 40000).
TJD_ZERO = datetime(1968, 5, 24, tzinfo=timezone.utc)
#: The last Truncated Julian Day a date can hold with its whole time of day and the day after
#: it (a packet made the day after its burst), in 9999: a larger burst_tjd is a corrupt packet.
MAX_TJD = (datetime.max.replace(tzinfo=timezone.utc) - TJD_ZERO).days - 2
#: A packet made less than this "before" its burst is clock skew between spacecraft and GCN,
#: not a packet of the next day.
CLOCK_SKEW = timedelta(minutes=1)

#: Swift's trig_obs_num: the trigger number in the low 24 bits, the observation segment in the
#: high 8 (socket_demo.c: S_TRIGNUM_MASK, S_SEGNUM_SHIFT).
SWIFT_TRIGGER_MASK = 0x00FF_FFFF
SWIFT_SEGMENT_SHIFT = 24
SWIFT_SEGMENT_MASK = 0xFF
#: trigger_id bit 5, "definitely not a GRB": socket_demo.c prints "This is a RETRACTION of a
#: previous notice that identified this as a GRB" for it, in Swift BAT and Fermi GBM packets.
NOT_A_GRB_BIT = 1 << 5
#: trigger_id bit 30, a test submission. sock_pkt_def_doc puts the spatial and temporal
#: proximity matches and the test submission together at the top of the word (bits 28, 29,
#: 30), as the VOEvents list them last: gwcelery's swift_grb_gcn.xml has Soln_Status
#: 0x20000003 with Temporal_Prox_Match true (bit 29). Test notice *types* are tests too.
TEST_SUBMISSION_BIT = 1 << 30
#: To read a flag word as the unsigned 32 bits it is.
UNSIGNED_32 = 0xFFFF_FFFF

#: Containment of a Swift BAT error circle: gcn-schema's default (0.9), which GCN's own
#: conversion of this packet to JSON (gcn-classic-to-json) leaves in force.
BAT_CONTAINMENT = 0.9
#: Containment of a Fermi GBM error circle: 1 sigma (GCN's Fermi page; gcn-schema's GBM
#: notices say 0.68).
GBM_CONTAINMENT = 0.68
#: The GBM systematic error, degrees (1 sigma), of the positions that do not include it:
#: ground positions (112), Connaughton et al. 2015, ApJS 216, 32: a 3.7 deg Gaussian (plus a
#: 10 % tail to ~14 deg); final positions (115, the RoboBA since 2016), Goldstein et al. 2020,
#: ApJ 895, 40 and GCN Circular 25726: 1.8 deg (52 %) and 4.1 deg (48 %), of which the wider
#: is taken so that the circle is never too small. A flight position (111, and its test form
#: 119) already includes one (gcn-schema's GBM flight notices: systematic_included true).
GBM_SYSTEMATIC = {FERMI_GBM_GND_POS: 3.7, FERMI_GBM_FIN_POS: 4.1}


@dataclass(frozen=True)
class NoticeType:
    """What a position notice type means: who sent it and how far to trust it.

    Attributes
    ----------
    name : str
        GCN's name of the type.
    source : str
        The Alert's *source*.
    alert_type : str
        The Alert's *alert_type*, unless the packet retracts its event.
    test : bool
        Every notice of the type is a test.
    containment : float
        Containment probability of the error circle.
    systematic_included : bool
        The packet's burst_error already includes the systematic error.
    """

    name: str
    source: str
    alert_type: str
    test: bool
    containment: float
    systematic_included: bool = False

    @property
    def mission(self):
        """``"Swift"`` or ``"Fermi"``: the first word of *source*."""
        return self.source.split()[0]

    @property
    def is_swift(self):
        """Swift packs an observation segment above the trigger number."""
        return self.mission == "Swift"


#: The notice types read into Alerts.
NOTICE_TYPES = {
    SWIFT_BAT_GRB_POS_ACK: NoticeType("SWIFT_BAT_GRB_POS_ACK", "Swift BAT", "PRELIMINARY",
                                      False, BAT_CONTAINMENT),
    SWIFT_BAT_GRB_POS_TEST: NoticeType("SWIFT_BAT_GRB_POS_TEST", "Swift BAT", "PRELIMINARY",
                                       True, BAT_CONTAINMENT),
    FERMI_GBM_FLT_POS: NoticeType("FERMI_GBM_FLT_POS", "Fermi GBM", "PRELIMINARY", False,
                                  GBM_CONTAINMENT, systematic_included=True),
    FERMI_GBM_GND_POS: NoticeType("FERMI_GBM_GND_POS", "Fermi GBM", "UPDATE", False,
                                  GBM_CONTAINMENT),
    FERMI_GBM_FIN_POS: NoticeType("FERMI_GBM_FIN_POS", "Fermi GBM", "UPDATE", False,
                                  GBM_CONTAINMENT),
    FERMI_GBM_POS_TEST: NoticeType("FERMI_GBM_POS_TEST", "Fermi GBM", "PRELIMINARY", True,
                                   GBM_CONTAINMENT, systematic_included=True),
}


def packet_type(payload):
    """The notice type of a 160-byte packet (:data:`IMALIVE` for GCN's heartbeat).

    Raises
    ------
    AlertFormatError
        The payload is not 160 bytes.
    """
    return _fields(payload)[PKT_TYPE]


def type_name(number):
    """GCN's name of notice type *number*, e.g. ``"61 (SWIFT_BAT_GRB_POS_ACK)"``."""
    name = TYPE_NAMES.get(number)
    return f"{number} ({name})" if name else str(number)


def read(payload):
    """The Alert in a Swift BAT or Fermi GBM position notice; see the module docstring.

    Raises
    ------
    AlertFormatError
        Not 160 bytes, not a position notice read here (an imalive included), or a field out
        of its range.
    """
    fields = _fields(payload)
    notice = _notice_type(fields[PKT_TYPE])
    trigger_flags = fields[TRIGGER_ID] & UNSIGNED_32
    event_time = tjd_to_datetime(_tjd(fields), _centiseconds(fields, BURST_SOD, "burst_sod"))
    ra, dec = _position(fields)
    error_radius, error_properties = position_error(
        fields[PKT_TYPE], _angle(fields, BURST_ERROR, "burst_error", 0, 180))
    properties = {"Packet_Type": fields[PKT_TYPE], "packet_name": notice.name,
                  "event_time": event_time, **error_properties,
                  "trigger_flags": trigger_flags, "misc_flags": fields[MISC] & UNSIGNED_32}
    event_id = _event_id(fields, notice, properties)
    return Alert(event_id=event_id, kind="grb",
                 alert_type="RETRACTION" if trigger_flags & NOT_A_GRB_BIT else notice.alert_type,
                 serial=_serial(fields), issued=_issued(fields, event_time),
                 source=notice.source,
                 test=notice.test or bool(trigger_flags & TEST_SUBMISSION_BIT),
                 ra=ra, dec=dec, error_radius=error_radius, properties=properties)


def position_error(number, statistical):
    """The error radius of a position notice of type *number* whose statistical error is
    *statistical* degrees, and the properties that say what it is made of.

    The GBM systematic is added in quadrature where the notice leaves it out. Shared with the
    VOEvent reader, so that a notice reads the same whichever way it came.

    Returns
    -------
    (float, dict)
        Degrees; ``containment_probability``, ``statistical_error``, ``systematic_error`` (None
        when nothing was added) and ``systematic_included``.
    """
    notice = NOTICE_TYPES[number]
    systematic = GBM_SYSTEMATIC.get(number)
    return _total_error(statistical, systematic), {
        "containment_probability": notice.containment, "statistical_error": statistical,
        "systematic_error": systematic,
        "systematic_included": notice.systematic_included or systematic is not None}


def tjd_to_datetime(tjd, centiseconds_of_day):
    """The UTC moment of Truncated Julian Day *tjd* plus *centiseconds_of_day*.

    Examples
    --------
    >>> tjd_to_datetime(19829, 5072576).isoformat()
    '2022-09-07T14:05:25.760000+00:00'
    """
    return TJD_ZERO + timedelta(days=tjd, milliseconds=centiseconds_of_day * 10)


def _fields(payload):
    """The 40 integers of *payload*, or :class:`AlertFormatError`."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise AlertFormatError(FORMAT, f"a socket notice must be bytes, not "
                               f"{type(payload).__name__}", payload)
    if len(payload) != PACKET_BYTES:
        raise AlertFormatError(FORMAT, f"a socket notice is {PACKET_BYTES} bytes, not "
                               f"{len(payload)}", bytes(payload))
    return PACKET.unpack(bytes(payload))


def _notice_type(number):
    """The :class:`NoticeType` of type *number*, or why it is not read here."""
    if number == IMALIVE:
        raise AlertFormatError(FORMAT, f"packet type {type_name(number)} is GCN's heartbeat, "
                               f"not an alert", number)
    if number not in NOTICE_TYPES:
        read_types = ", ".join(type_name(known) for known in NOTICE_TYPES)
        raise AlertFormatError(FORMAT, f"packet type {type_name(number)} is not a position "
                               f"notice read here (read: {read_types})", number)
    return NOTICE_TYPES[number]


def _tjd(fields):
    """burst_tjd, checked to be a day number."""
    if not 0 < fields[BURST_TJD] <= MAX_TJD:
        raise AlertFormatError(FORMAT, f"burst_tjd [5] must be a day number from 1 to "
                               f"{MAX_TJD}", fields[BURST_TJD])
    return fields[BURST_TJD]


def _centiseconds(fields, index, name):
    """Field *index* (a time of day in centiseconds), checked to be within a day."""
    value = fields[index]
    if not 0 <= value < MAX_CENTISECONDS_OF_DAY:
        raise AlertFormatError(FORMAT, f"{name} [{index}] must be within [0, "
                               f"{MAX_CENTISECONDS_OF_DAY}) centiseconds of the day", value)
    return value


def _angle(fields, index, name, low, high):
    """Field *index* in degrees (it is in 0.0001 degree), checked to be in [low, high]."""
    degrees = fields[index] / UNITS_PER_DEGREE
    if not low <= degrees <= high:
        raise AlertFormatError(FORMAT, f"{name} [{index}] must be within [{low}, {high}] "
                               f"degrees (0.0001-degree units)", fields[index])
    return degrees


def _position(fields):
    """(ra, dec) in degrees, RA 360 written as 0."""
    ra = _angle(fields, BURST_RA, "burst_ra", 0, 360)
    dec = _angle(fields, BURST_DEC, "burst_dec", -90, 90)
    return (0.0 if ra == 360 else ra), dec


def _serial(fields):
    """pkt_sernum, checked to be >= 0."""
    if fields[PKT_SERNUM] < 0:
        raise AlertFormatError(FORMAT, "pkt_sernum [1] must be >= 0", fields[PKT_SERNUM])
    return fields[PKT_SERNUM]


def _event_id(fields, notice, properties):
    """The trigger number after its mission (see :func:`event_id`); a Swift packet's
    observation segment goes to properties."""
    trigger = fields[TRIG_OBS_NUM]
    if notice.is_swift:
        properties["segment"] = (trigger >> SWIFT_SEGMENT_SHIFT) & SWIFT_SEGMENT_MASK
        trigger &= SWIFT_TRIGGER_MASK
    if trigger <= 0:
        raise AlertFormatError(FORMAT, "the trigger number [4] must be positive",
                               fields[TRIG_OBS_NUM])
    return event_id(notice.mission, trigger)


def _issued(fields, event_time):
    """When GCN made the packet: pkt_sod on the burst's day, or on the next day."""
    packet_sod = _centiseconds(fields, PKT_SOD, "pkt_sod")
    if packet_sod == 0:                  # not filled in (GCN's own Fermi GBM specimens)
        return event_time
    issued = tjd_to_datetime(fields[BURST_TJD], packet_sod)
    if issued < event_time - CLOCK_SKEW:
        issued += timedelta(days=1)
    return issued


def _total_error(statistical, systematic):
    """The error radius, statistical and systematic in quadrature (capped at 180 degrees)."""
    if systematic is None:
        return statistical
    return min(math.hypot(statistical, systematic), 180.0)
