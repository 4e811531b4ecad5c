"""From what arrives to an :class:`~torosmanager.alerts.event.Alert`: an Alert work order's
``Format`` and ``Payload``, or a file whose format is recognised from its first bytes.

Examples
--------
>>> alert = alert_of({"Format": "voevent", "Payload": xml_text}, now)   # doctest: +SKIP
>>> guess_format(open("S1234-2-initial.json", "rb").read())            # doctest: +SKIP
'lvk_json'
"""

import base64
import binascii
import json
import logging
import re
import string

from ..workorders import BINARY_ALERT_FORMATS
from . import formats
from .event import Alert
from .formats import AlertFormatError

log = logging.getLogger(__name__)

#: The first bytes of a FITS file (a bare skymap), and of a gzipped one.
FITS_MAGIC = b"SIMPLE"
GZIP_MAGIC = b"\x1f\x8b"
#: A UTF-8 byte-order mark, which some editors put first in a file.
UTF8_BOM = b"\xef\xbb\xbf"
#: The encoding an XML declaration names (``<?xml version="1.0" encoding="ISO-8859-1"?>``),
#: in ASCII bytes at the start of the document.
XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\sencoding\s*=\s*(["'])([A-Za-z][\w.-]*)\1""")
#: What a base64 Payload may have between its characters and is dropped: ASCII whitespace
#: (line breaks, as the base64 command and MIME write it), as a str.translate table; other
#: whitespace (U+00A0, U+2028) is no base64.
ASCII_WHITESPACE = dict.fromkeys(map(ord, string.whitespace))
#: The size of a GCN Classic socket notice: 40 four-byte integers.
GCN_SOCKET_PACKET_BYTES = 160
#: A bare skymap is taken as this alert type: it locates an event, as an INITIAL alert does.
SKYMAP_ALERT_TYPE = "INITIAL"
#: A bare skymap is a gravitational-wave localisation (the formats of other kinds carry
#: positions of their own).
SKYMAP_KIND = "gw"
#: An operator's retraction names no kind: the event's alerts read before tell it.
OPERATOR_RETRACTION_KIND = "other"


def alert_of(order, now):
    """The Alert in a validated Alert work order.

    Parameters
    ----------
    order : dict
        With ``Format``, ``Payload`` and, for a skymap, ``Event ID``.
    now : datetime
        The issue time of a bare skymap (it carries none).

    Raises
    ------
    AlertFormatError
    """
    format_name = order["Format"]
    payload = order["Payload"]
    # Not decoded for a retraction: its reason is text ("test" is base64 too).
    decoded = (_from_base64(payload)
               if format_name in BINARY_ALERT_FORMATS or format_name in formats.FORMATS
               else None)
    if format_name in BINARY_ALERT_FORMATS:
        if decoded is None:
            raise AlertFormatError(format_name, "the Payload of a binary format must be base64",
                                   payload)
        payload = decoded
    elif decoded is not None:
        # A JSON or XML alert sent as an XML-RPC binary (its bytes, base64): JSON and XML
        # begin with characters no base64 has, so the two cannot be mistaken.
        try:
            payload = decoded.decode("utf-8")
        except UnicodeDecodeError:
            raise AlertFormatError(format_name, "a binary Payload for a text format must be "
                                   "its UTF-8 text", payload) from None
    if format_name == "skymap":
        return skymap_alert(payload, order.get("Event ID"), now)
    if format_name == "retraction":
        return operator_retraction(order.get("Event ID"), payload, order.get("User"), now)
    return formats.read(format_name, payload)


def operator_retraction(event_id, why, user, now):
    """An operator's retraction of event *event_id*, issued *now*: it cancels the event's
    orders, and its later alerts plan nothing, as a retraction from its senders would. Its
    kind is the event's, which the alerts daemon fills in from what it has read
    (:data:`OPERATOR_RETRACTION_KIND` until then)."""
    if not event_id:
        raise AlertFormatError("retraction", "a retraction needs the ID of the event it stands "
                               "down from ('Event ID')", event_id)
    return Alert(event_id=event_id, kind=OPERATOR_RETRACTION_KIND, alert_type="RETRACTION",
                 serial=0, issued=now, source="an operator",
                 properties={"stood_down_by": user or "an operator", "reason": why.strip()})


def _from_base64(text):
    """The bytes *text* encodes in base64, as the front desk keeps a binary Payload (line
    breaks are base64 too, as the base64 command and MIME write it); ``None`` when it is no
    base64."""
    try:
        return base64.b64decode(text.translate(ASCII_WHITESPACE), validate=True)
    except (binascii.Error, ValueError):
        return None


def skymap_alert(data, event_id, now):
    """An alert made of a bare skymap file's bytes: event *event_id*, issued *now*."""
    if not event_id:
        raise AlertFormatError("skymap", "a bare skymap needs its event's ID ('Event ID', "
                               "or --event-id)", event_id)
    return Alert(event_id=event_id, kind=SKYMAP_KIND, alert_type=SKYMAP_ALERT_TYPE, serial=0,
                 issued=now, source="skymap file", skymap=bytes(data))


def guess_format(data):
    """The format of a file's bytes: ``skymap``, ``voevent``, ``lvk_json``, ``gcn_json`` or
    ``gcn_socket``.

    Raises
    ------
    AlertFormatError
        None of them.
    """
    if data.startswith(FITS_MAGIC) or data.startswith(GZIP_MAGIC):
        return "skymap"
    text = data.removeprefix(UTF8_BOM).lstrip()
    if text.startswith(b"<"):
        return "voevent"
    if text.startswith(b"{"):
        try:
            parsed = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            raise AlertFormatError("alert file", "it begins like JSON but is not valid JSON",
                                   data[:80]) from None
        return "lvk_json" if isinstance(parsed, dict) and "superevent_id" in parsed else "gcn_json"
    if len(data) == GCN_SOCKET_PACKET_BYTES:
        return "gcn_socket"
    raise AlertFormatError("alert file", "not a skymap (FITS), VOEvent (XML), JSON alert or "
                           "160-byte GCN notice", data[:80])


def payload_of(data, format_name):
    """*data* (a file's or a message's bytes) as an Alert order's Payload: base64 for a binary
    format, else text (:func:`alert_text`)."""
    if format_name in BINARY_ALERT_FORMATS:
        return base64.b64encode(data).decode("ascii")
    return alert_text(data)


def alert_text(data):
    """The text of an alert's bytes: UTF-8 (a byte-order mark left out); an XML document in
    the encoding its declaration names (a VOEvent in ISO-8859-1), its declaration then saying
    UTF-8, as the text is read again; else UTF-8 with each byte that is none replaced by
    U+FFFD, which loses a character of a description rather than the alert."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        pass
    declared = XML_ENCODING.search(data)
    if declared is not None:
        try:
            text = data.decode(declared.group(2).decode("ascii"))
        except (LookupError, UnicodeDecodeError):
            pass
        else:
            # The declaration is ASCII, one character a byte: its name is where the bytes say.
            start, end = declared.span(2)
            return text[:start] + "UTF-8" + text[end:]
    log.warning("an alert of %d bytes is no UTF-8 text: each byte that is none is read as "
                "U+FFFD", len(data))
    return data.decode("utf-8", errors="replace")
