"""VOEvent 2.0 XML (IVOA), as LVK, Fermi, Swift and others send them, read into an Alert.

What is read:

- ``ivorn`` and ``role`` (``"test"`` or ``"utility"`` marks a test alert, as does a
  ``Test_Submission`` Param that is true);
- ``Who/Date``: when the alert was issued (UTC when no zone is given; the event time when
  absent);
- ``WhereWhen``: the event time (``ISOTime``) and the position, ``Position2D`` with ``C1`` (RA),
  ``C2`` (Dec) and ``Error2Radius`` in degrees;
- every ``What/Param``, also inside ``Group``, kept by name in ``properties["params"]`` (text);
  ``GraceID`` (LVK) or ``TrigID`` (GCN, after its mission: ``"Swift-1227767"``) is the event
  id, ``Pkt_Ser_Num`` the serial,
  ``Packet_Type`` is kept as an int, ``FAR``, ``ProbHasNS``/``HasNS``, ``ProbHasRemnant``/
  ``HasRemnant``, ``HasMassGap`` and the ``BNS``/``NSBH``/``BBH``/``Terrestrial`` probabilities
  become the same properties as in LVK JSON;
- for an LVK VOEvent the skymap is a URL (``skymap_fits``, or in the O2 VOEvents
  ``skymap_fits_basic``/``_shib``/``_x509``), kept in ``skymap_url`` and not fetched here.

The alert type is the LVK's ``AlertType`` Param (a true ``Retraction`` Param makes it
RETRACTION); otherwise a ``Citations/EventIVORN`` with ``cite="retraction"`` makes it RETRACTION,
``"followup"`` or ``"supersedes"`` UPDATE, and no citation INITIAL.

The XML is parsed by the standard library (expat); a payload with a DOCTYPE is refused, so no
entity, internal or external, is ever expanded: a VOEvent never needs one.
"""

import xml.etree.ElementTree as ElementTree

from torosmanager.alerts.event import ALERT_TYPES, Alert
from torosmanager.alerts.formats import gcn_socket
from torosmanager.alerts.formats import (MAX_SERIAL, MISSION_NAMES, AlertFormatError,
                                         check_size, event_id, number, parse_time, position)

FORMAT = "voevent"
#: The skymap URL Params of LVK VOEvents, the preferred first.
SKYMAP_PARAMS = ("skymap_fits", "skymap_fits_basic", "skymap_fits_shib", "skymap_fits_x509")
#: Param names → property names shared with the JSON formats.
PROPERTY_NAMES = {"ProbHasNS": "HasNS", "ProbHasRemnant": "HasRemnant", "HasNS": "HasNS",
                  "HasRemnant": "HasRemnant", "HasMassGap": "HasMassGap"}
CLASSES = ("BNS", "NSBH", "BBH", "MassGap", "Terrestrial")
TEST_ROLES = {"test", "utility"}


def read(payload):
    """The Alert in a VOEvent 2.0 document (bytes or str); see the module docstring."""
    check_size(FORMAT, payload)
    raw = payload.encode() if isinstance(payload, str) else bytes(payload)
    if b"<!DOCTYPE" in raw.upper():
        raise AlertFormatError(FORMAT, "a DOCTYPE is not allowed in a VOEvent", payload)
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as error:
        raise AlertFormatError(FORMAT, f"not well-formed XML ({error})", payload) from None
    for element in root.iter():                 # with or without a (default) namespace
        element.tag = _local(element.tag)
    if root.tag != "VOEvent":
        raise AlertFormatError(FORMAT, f"root element is <{root.tag}>, not <VOEvent>", payload)
    ivorn = root.get("ivorn")
    if not ivorn:
        raise AlertFormatError(FORMAT, "VOEvent without an ivorn", payload)
    role = root.get("role", "observation")

    params = {}
    for element in root.iterfind("What//Param"):
        if element.get("name"):
            params.setdefault(element.get("name"), (element.get("value") or "").strip())

    properties = {"ivorn": ivorn, "role": role, "params": params}
    coords = root.find("WhereWhen/ObsDataLocation/ObservationLocation/AstroCoords")
    event_time = coords.findtext("Time/TimeInstant/ISOTime") if coords is not None else None
    if event_time:
        properties["event_time"] = parse_time(FORMAT, "WhereWhen ISOTime", event_time)
    date = root.findtext("Who/Date")
    if date:
        issued = parse_time(FORMAT, "Who/Date", date)
    elif event_time:
        issued = properties["event_time"]
    else:
        raise AlertFormatError(FORMAT, "no Who/Date nor WhereWhen ISOTime", ivorn)
    ra = dec = radius = None
    where = coords.find("Position2D") if coords is not None else None
    if where is not None:
        unit = where.get("unit", "deg")
        if unit != "deg":
            raise AlertFormatError(FORMAT, "Position2D unit must be deg", unit)
        values = (where.findtext("Value2/C1"), where.findtext("Value2/C2"))
        if None in values:
            raise AlertFormatError(FORMAT, "Position2D without Value2/C1 and C2", ivorn)
        ra, dec, radius = position(FORMAT, *values, where.findtext("Error2Radius"))
        if ra == 360:
            ra = 0.0

    packet_type = _whole(params.get("Packet_Type", ""))
    if packet_type is not None:
        properties["Packet_Type"] = packet_type
    if "FAR" in params:
        properties["far"] = number(FORMAT, "Param FAR", params["FAR"], 0)
    for name, key in PROPERTY_NAMES.items():
        if name in params and key not in properties:
            properties[key] = number(FORMAT, f"Param {name}", params[name], 0, 1)
    classification = {name: number(FORMAT, f"Param {name}", params[name], 0, 1)
                      for name in CLASSES if name in params}
    if classification:
        properties["classification"] = classification
    if params.get("Instruments"):
        properties["instruments"] = params["Instruments"].split(",")

    skymap_url = next((params[name] for name in SKYMAP_PARAMS if params.get(name)), None)
    is_gw = "GraceID" in params or ivorn.startswith(("ivo://gwnet/", "ivo://nasa.gsfc.gcn/LVC"))
    alert_type = _alert_type(root, params, ivorn)
    if alert_type != "RETRACTION" and ra is None and skymap_url is None:
        raise AlertFormatError(FORMAT, "no position (WhereWhen Position2D) and no skymap URL",
                               ivorn)

    notice = gcn_socket.NOTICE_TYPES.get(properties.get("Packet_Type"))
    if notice is not None:
        # A GCN notice as a VOEvent reads as the same notice from the socket does.
        if "AlertType" not in params and alert_type == "INITIAL":
            alert_type = notice.alert_type
        if radius is not None:
            radius, error_properties = gcn_socket.position_error(properties["Packet_Type"],
                                                                 radius)
            properties.update(error_properties)
    serial = _whole(params.get("Pkt_Ser_Num", "0"))
    if serial is None:
        raise AlertFormatError(FORMAT, f"Param Pkt_Ser_Num must be a whole number from 0 to "
                               f"{MAX_SERIAL}", params["Pkt_Ser_Num"])
    test = (role in TEST_ROLES or params.get("Test_Submission", "").lower() == "true"
            or (notice is not None and notice.test))
    return Alert(event_id=_event_id(params, ivorn), kind="gw" if is_gw else _kind(root, ivorn),
                 alert_type=alert_type, serial=serial, issued=issued,
                 source=_source(root, params, ivorn), test=test, ra=ra, dec=dec,
                 error_radius=radius, skymap_url=skymap_url, properties=properties)


def _whole(text):
    """*text* as a whole number from 0 to :data:`MAX_SERIAL`, or None when it is not one.

    ASCII digits only: ``str.isdigit`` alone takes "²", which ``int`` refuses; and the length
    is looked at first, since ``int`` refuses text of thousands of digits.
    """
    digits = text.lstrip("0") or "0"
    if not (text.isascii() and text.isdigit()) or len(digits) > len(str(MAX_SERIAL)):
        return None
    value = int(digits)
    return value if value <= MAX_SERIAL else None


def _local(tag):
    """An element's name without its namespace."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else tag


def _alert_type(root, params, ivorn):
    if params.get("Retraction", "").lower() in ("true", "1"):
        return "RETRACTION"
    if params.get("AlertType"):
        alert_type = params["AlertType"].upper().replace("_", "").replace(" ", "")
        if alert_type not in ALERT_TYPES:
            raise AlertFormatError(FORMAT, f"Param AlertType must be one of "
                                   f"{', '.join(ALERT_TYPES)}", params["AlertType"])
        return alert_type
    cites = {(element.get("cite") or "").lower() for element in root.iterfind("Citations/"
                                                                              "EventIVORN")}
    if "retraction" in cites:
        return "RETRACTION"
    if cites & {"followup", "supersedes"}:
        return "UPDATE"
    return "INITIAL"


def _event_id(params, ivorn):
    """The event's name or trigger number, the latter after its mission when the ivorn's
    stream is a mission's (``ivo://nasa.gsfc.gcn/SWIFT#...``: ``"Swift-1227767"``, see
    :func:`event_id`; another stream's name, ``ivo://org.example/fsc``, names no mission)."""
    for name in ("GraceID", "TrigID", "AMON_ID", "Event_ID"):
        if params.get(name):
            stream = ivorn.removeprefix("ivo://").partition("#")[0].rpartition("/")[2]
            return event_id(stream if stream.lower() in MISSION_NAMES else "", params[name])
    fragment = ivorn.partition("#")[2]
    if not fragment:
        raise AlertFormatError(FORMAT, "no GraceID or TrigID Param, nor an ivorn #fragment",
                               ivorn)
    return fragment


def _kind(root, ivorn):
    concepts = " ".join(element.text or "" for element in root.iterfind("Why//Concept"))
    stream = ivorn.lower()
    if "amon" in stream or "icecube" in stream or "neutrino" in concepts.lower():
        return "neutrino"
    if "em.gamma" in concepts or any(name in stream for name in ("fermi", "swift", "integral",
                                                                 "agile", "svom", "gecam")):
        return "grb"
    if "em.x-ray" in concepts.lower():
        return "x-ray"
    return "other"


def _source(root, params, ivorn):
    if params.get("Pipeline"):
        return params["Pipeline"]
    how = (root.findtext("How/Description") or "").strip()
    if how:
        return how
    return ivorn.removeprefix("ivo://").partition("#")[0]
