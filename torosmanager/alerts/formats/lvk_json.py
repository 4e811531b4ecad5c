"""The LVK's JSON alerts (``igwn.gwalert`` on GCN Kafka and SCiMMA), read into an Alert.

An alert is ``{"superevent_id", "alert_type", "time_created", "event", "external_coinc",
"urls"}``; ``event`` holds ``time``, ``far``, ``significant``, ``instruments``, ``group``,
``pipeline``, ``search``, ``properties`` (HasNS, HasRemnant, HasMassGap), ``classification``
(BNS, NSBH, BBH, Terrestrial) and ``skymap``, a base64 multi-order HEALPix FITS file. A
RETRACTION has ``"event": null``. Only ``superevent_id``, ``alert_type`` and ``time_created`` are
required here (and, but in a RETRACTION, ``event`` with a skymap or its URL); a missing optional
field is simply absent from the Alert's properties.

Mock and test superevents are flagged ``test``: an id starting with ``M`` (``MS230101a``) or
``T`` (``TS230101a``), group ``Test`` or search ``MDC`` (the mock data challenge).

The alert is also checked against the LVK's schema, ``igwn-gwalert-schema``
(:mod:`.lvk_schema`), which real alerts do not always pass: what does not fit but does not stop
the reading is kept as ``properties["schema_problems"]`` (short lines, ``"path: what is
wrong"``), for the alerts daemon to log once, when it reads the alert (:func:`schema_warning`);
only what the reader needs refuses the alert.

What the alerts daemon decides with is checked all the same, whatever the schema says:
``event.far`` and the skymap URL (a string) refuse the alert, naming the field, when they are
not what they should be. A probability of ``event.classification`` or ``event.properties``
(a number, or numeric text, from 0 to 1) that is none is left out, as unknown (as a null one
is), and said with the schema's problems: the policy then takes the alert as it takes one
without it.
"""

import base64
import binascii

from torosmanager.alerts.event import ALERT_TYPES, Alert
from torosmanager.alerts.formats import (AlertFormatError, load_json, lvk_schema, number,
                                         optional_url, parse_time)

FORMAT = "lvk_json"
#: Search names that mark a mock event.
TEST_SEARCHES = {"MDC"}
#: Group names that mark a test event.
TEST_GROUPS = {"TEST"}
#: What a superevent ID is, as a refusal says it.
SUPEREVENT_ID = "the GraceDB superevent ID, a non-empty string (e.g. 'S230518h')"


def read(payload):
    """The Alert in an LVK JSON alert (bytes, str or parsed dict); see the module docstring."""
    data = load_json(FORMAT, payload)
    event_id = _text(data, "superevent_id", SUPEREVENT_ID)
    alert_type = _text(data, "alert_type").upper()
    if alert_type not in ALERT_TYPES:
        raise AlertFormatError(FORMAT, f"alert_type must be one of {', '.join(ALERT_TYPES)}",
                               data["alert_type"])
    issued = parse_time(FORMAT, "time_created", _text(data, "time_created"))
    event = data.get("event")
    if event is None:
        event = {}
        if alert_type != "RETRACTION":
            raise AlertFormatError(FORMAT, f"{alert_type} alert without 'event'",
                                   sorted(data))
    elif not isinstance(event, dict):
        raise AlertFormatError(FORMAT, "'event' must be an object or null", event)

    properties, left_out = {}, []
    if isinstance(event.get("properties"), dict):
        properties.update(_probabilities(event["properties"], "event.properties", left_out))
    if isinstance(event.get("classification"), dict):
        properties["classification"] = _probabilities(event["classification"],
                                                      "event.classification", left_out)
    if event.get("far") is not None:
        properties["far"] = number(FORMAT, "event.far", event["far"], 0)
    if event.get("time"):
        properties["event_time"] = parse_time(FORMAT, "event.time", event["time"])
    for key in ("significant", "instruments", "group", "pipeline", "search", "duration",
                "central_frequency", "mchirp_source"):
        if event.get(key) is not None:
            properties[key] = event[key]
    if data.get("external_coinc") is not None:
        properties["external_coinc"] = data["external_coinc"]
    urls = data.get("urls") if isinstance(data.get("urls"), dict) else {}
    if urls.get("gracedb"):
        properties["gracedb_url"] = urls["gracedb"]

    skymap = None
    if event.get("skymap") is not None:
        try:
            skymap = base64.b64decode(event["skymap"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise AlertFormatError(FORMAT, "event.skymap is not base64", event["skymap"]) from None
    skymap_url = optional_url(FORMAT, "urls.skymap", urls.get("skymap"))
    if alert_type != "RETRACTION" and skymap is None and skymap_url is None:
        raise AlertFormatError(FORMAT, f"{alert_type} alert without a skymap (event.skymap)",
                               sorted(event))

    schema_problems = lvk_schema.problems(data) + left_out
    if schema_problems:
        properties["schema_problems"] = schema_problems

    test = (event_id[:1] in ("M", "T")
            or str(event.get("group", "")).upper() in TEST_GROUPS
            or str(event.get("search", "")).upper() in TEST_SEARCHES)
    return Alert(event_id=event_id, kind="gw", alert_type=alert_type, serial=0, issued=issued,
                 source=str(event.get("pipeline") or "LVK"), test=test, skymap=skymap,
                 skymap_url=skymap_url, properties=properties)


def schema_warning(alert):
    """What to say of *alert* not fitting the LVK's schema, or ``None`` when it fits (or is no
    LVK JSON alert). Not logged by :func:`read`: an alert is read again (for its event's
    report, or after a restart), and one warning is enough."""
    problems = alert.properties.get("schema_problems")
    if not problems:
        return None
    return (f"LVK alert {alert.event_id} {alert.alert_type} does not fit "
            f"{lvk_schema.SCHEMA_DISTRIBUTION} {lvk_schema.schema_version()}, read all the same: "
            + "; ".join(problems))


def _text(data, key, allowed="a non-empty string"):
    """The non-empty string *data[key]*, or AlertFormatError naming what is missing or wrong
    and what is *allowed*."""
    if key not in data:
        raise AlertFormatError(FORMAT, f"missing {key!r}", sorted(data))
    value = data[key]
    if value is None:
        # The keys received would show the key itself: say what its value is instead.
        raise AlertFormatError(FORMAT, f"{key!r} is null; it must be {allowed}", value)
    if not isinstance(value, str) or not value.strip():
        raise AlertFormatError(FORMAT, f"{key!r} must be {allowed}", value)
    return value.strip()


def _probabilities(values, where, left_out):
    """The dict *values* (``event.classification`` or ``event.properties``) with each value a
    probability (a float from 0 to 1); one that is null, or none, is left out (unknown), the
    latter said in *left_out*."""
    probabilities = {}
    for name, value in values.items():
        if value is None:
            continue
        try:
            probabilities[name] = number(FORMAT, f"{where}.{name}", value, 0, 1)
        except AlertFormatError as error:
            left_out.append(f"{error.problem} (received {error.received}), left out")
    return probabilities
