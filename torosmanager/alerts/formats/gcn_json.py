"""GCN's JSON notices (``gcn.notices.*`` on GCN Kafka), read into an Alert.

The notices follow the ``gcn-schema`` core fields, shared by IceCube, Swift, Einstein Probe,
Fermi, SVOM and others:

- ``$schema`` (``.../gcn/notices/<mission>/<instrument>/...``), ``mission``, ``instrument``,
  ``messenger``: what saw the event (the mission from ``$schema`` when the field is absent);
- ``event_name`` (first entry), else ``id`` or ``trigger_id``: the event id, a bare trigger
  number prefixed with its mission (``"Swift-1227767"``, see
  :func:`torosmanager.alerts.formats.event_id`);
- ``alert_datetime``: when the notice was issued (``trigger_time`` when absent), ``trigger_time``
  kept as ``properties["event_time"]``; ``record_number`` is the serial (0 when absent);
- ``alert_type``: ``initial``/``update``/``retraction`` (an IceCube retraction notice becomes
  RETRACTION), INITIAL when absent; ``test``/``injected``/``commanded``, or ``alert_tense``
  ``mock``/``injection``, flag a test alert;
- ``ra``, ``dec`` and ``ra_dec_error`` (degrees; else ``position_a_error``, the semi-major axis
  of an error ellipse, as a circle) with ``containment_probability`` (0.9 when absent, as the
  schema says) kept in properties; ``healpix_url`` is the skymap URL, ``healpix_file`` (base64)
  the skymap.

Every other field is kept, under its own name, in ``properties``.
"""

import base64
import binascii

from torosmanager.alerts.event import Alert
from torosmanager.alerts.formats import (MAX_SERIAL, AlertFormatError, event_id, load_json,
                                         number, optional_url, parse_time, position)

FORMAT = "gcn_json"
#: Missions (lower case, as in ``$schema`` paths) by the kind of event they report.
KINDS = {"icecube": "neutrino", "kamland": "neutrino", "super-k": "neutrino",
         "superk": "neutrino", "einstein_probe": "x-ray", "maxi": "x-ray",
         "swift": "grb", "fermi": "grb", "svom": "grb", "gecam": "grb", "integral": "grb",
         "glowbug": "grb", "agile": "grb", "konus": "grb"}
ALERT_TYPES = {"initial": "INITIAL", "update": "UPDATE", "retraction": "RETRACTION",
               "preliminary": "PRELIMINARY"}
TEST_TYPES = {"test", "injected", "commanded", "commended"}
TEST_TENSES = {"mock", "injection"}
#: Fields read into the Alert's own fields rather than kept in properties.
CONSUMED = {"ra", "dec", "ra_dec_error", "healpix_url", "healpix_file", "alert_datetime",
            "trigger_time", "record_number", "alert_type", "event_name", "id", "trigger_id"}


def read(payload):
    """The Alert in a GCN JSON notice (bytes, str or parsed dict); see the module docstring."""
    data = load_json(FORMAT, payload)
    schema_mission = _schema_mission(data.get("$schema"))
    mission = str(data.get("mission") or schema_mission.replace("_", " ").title()
                  or "").strip()
    kind = ("neutrino" if str(data.get("messenger", "")).lower() == "neutrino"
            else KINDS.get(mission.lower().replace(" ", "_"), KINDS.get(schema_mission, "other")))

    raw_type = data.get("alert_type")
    test = str(data.get("alert_tense", "")).lower() in TEST_TENSES
    if raw_type is None:
        alert_type = "INITIAL"
    elif str(raw_type).lower() in TEST_TYPES:
        alert_type, test = "INITIAL", True
    elif str(raw_type).lower() in ALERT_TYPES:
        alert_type = ALERT_TYPES[str(raw_type).lower()]
    else:
        raise AlertFormatError(FORMAT, f"alert_type must be one of "
                               f"{', '.join(sorted(ALERT_TYPES) + sorted(TEST_TYPES))}", raw_type)

    if not data.get("alert_datetime") and not data.get("trigger_time"):
        raise AlertFormatError(FORMAT, "missing 'alert_datetime' and 'trigger_time'",
                               sorted(data))
    properties = {key: value for key, value in data.items() if key not in CONSUMED}
    if data.get("trigger_time"):
        properties["event_time"] = parse_time(FORMAT, "trigger_time", data["trigger_time"])
    issued = (parse_time(FORMAT, "alert_datetime", data["alert_datetime"])
              if data.get("alert_datetime") else properties["event_time"])
    if data.get("far") is not None:
        properties["far"] = number(FORMAT, "far", data["far"], 0)

    serial = data.get("record_number", 0)
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 <= serial <= MAX_SERIAL:
        raise AlertFormatError(FORMAT, f"record_number must be a whole number from 0 to "
                               f"{MAX_SERIAL}", serial)

    ra = dec = radius = None
    if (data.get("ra") is None) != (data.get("dec") is None):
        raise AlertFormatError(FORMAT, "ra and dec go together",
                               {"ra": data.get("ra"), "dec": data.get("dec")})
    if data.get("ra") is not None:
        error = data.get("ra_dec_error", data.get("position_a_error"))
        ra, dec, radius = position(FORMAT, data["ra"], data["dec"], error)
        if ra == 360:
            ra = 0.0
        properties["containment_probability"] = number(
            FORMAT, "containment_probability", data.get("containment_probability", 0.9), 0, 1)
    skymap = None
    if data.get("healpix_file"):
        try:
            skymap = base64.b64decode(data["healpix_file"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise AlertFormatError(FORMAT, "healpix_file is not base64",
                                   data["healpix_file"]) from None
    skymap_url = optional_url(FORMAT, "healpix_url", data.get("healpix_url"))
    if alert_type != "RETRACTION" and ra is None and skymap is None and skymap_url is None:
        raise AlertFormatError(FORMAT, f"{alert_type} notice without ra/dec or a HEALPix map",
                               sorted(data))

    source = " ".join(part for part in (mission, str(data.get("instrument") or "")) if part)
    return Alert(event_id=event_id(mission, _identifier(data)), kind=kind,
                 alert_type=alert_type, serial=serial, issued=issued, source=source or "GCN",
                 test=test, ra=ra, dec=dec,
                 error_radius=radius, skymap=skymap, skymap_url=skymap_url,
                 properties=properties)


def _schema_mission(schema):
    """``"icecube"`` from ``https://gcn.nasa.gov/schema/v4.4.1/gcn/notices/icecube/...``."""
    if not isinstance(schema, str):
        return ""
    parts = schema.split("/")
    if "notices" in parts and parts.index("notices") + 2 < len(parts):
        return parts[parts.index("notices") + 1].lower()
    return ""


def _identifier(data):
    for key in ("event_name", "id", "trigger_id"):
        value = data.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    raise AlertFormatError(FORMAT, "missing 'event_name', 'id' or 'trigger_id'",
                           sorted(data))
