"""What in an LVK JSON alert does not fit the LVK's own schema, as short lines for the log.

Why
---
The LVK publishes the schema of its alerts as a package, ``igwn-gwalert-schema``. Real alerts do
not always pass it: ligo-followup-advocate's example alerts leave out ``external_coinc.ivorn``
and give ``event.time`` without a time zone, yet carry all that :mod:`.lvk_json` needs to follow
the event up. Refusing them would lose events, and ignoring the schema would hide the day the
LVK changes its alerts. So the reader refuses only what it cannot read, and :func:`problems`
lists the rest, for the log and for the alert's ``properties["schema_problems"]``.

Which schema, which validator
-----------------------------
The package ships the same alert twice: ``igwn.alerts.Alert.schema.json`` (JSON Schema, draft
2020-12) for the JSON alerts read here, and ``igwn.alerts.Alert.avsc`` for the Avro encoding,
whose unions and ``bytes`` the JSON form does not follow (a skymap is base64 text there). The JSON
Schema is checked with ``jsonschema``, the reference Python implementation: every draft the
schema may declare, every problem with its path, where a checker written here would have to
follow each change of the schema by hand. Only the package's data file is read, none of its code.

JSON Schema only annotates ``format`` unless asked; ``date-time`` and ``uri`` are asserted here
because the reader relies on them: a time without a zone is read as UTC (a guess worth a
warning), a URL without a scheme cannot be fetched.

Speed
-----
The base64 skymaps (a few MB) are only checked to be strings, so a short stand-in takes their
place before validation: jsonschema writes the ``repr`` of every value it rejects into its
message, and the ``null`` branch of ``"oneOf": [null, string]`` rejects every skymap, which
costs milliseconds per MB. The alert is not copied beyond the two dicts that hold the skymaps.
"""

import functools
import json
import re
from importlib import metadata, resources
from urllib.parse import urlsplit

from torosmanager.alerts.formats import shorten

#: The PyPI distribution holding the schema, and the file of it read here.
SCHEMA_DISTRIBUTION = "igwn-gwalert-schema"
SCHEMA_PACKAGE = "igwn_gwalert_schema"
SCHEMA_FILE = "igwn.alerts.Alert.schema.json"
#: The draft used when the schema names none: jsonschema's validator class of that name.
DEFAULT_DRAFT = "Draft202012Validator"
#: The base64 skymaps, as (section, field): checked as strings only (see the module docstring).
BASE64_FIELDS = (("event", "skymap"), ("external_coinc", "combined_skymap"))
#: What stands in for a skymap during validation: a string, and valid base64 at that.
SKYMAP_STAND_IN = "AAAA"
#: JSON's name for each Python type json.loads makes.
JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
              (list, "array"), (dict, "object"), (type(None), "null"))
#: An RFC 3339 date-time: a date, a time and a zone (``Z`` or an offset).
RFC3339_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d+)?"
                               r"(?:[Zz]|[+-]\d\d:\d\d)")
#: What each asserted format needs, said in the problem.
FORMAT_NEEDS = {"date-time": "an RFC 3339 date-time (a date, a time and a zone such as Z)",
                "uri": "a URI (with a scheme such as https:)"}


def problems(alert):
    """Where *alert* does not fit the schema, one short line each; empty if it fits.

    Parameters
    ----------
    alert : dict
        An LVK JSON alert as parsed by ``json.loads``; not changed.

    Returns
    -------
    list of str
        Each ``"path: what is wrong"``, e.g. ``"external_coinc.ivorn: missing"`` or
        ``"event.far: a string, expected number"``, in the order found, without repeats.
    """
    found = []
    for error in _validator().iter_errors(_with_skymaps_stood_in(alert)):
        found += _describe(error)
    return list(dict.fromkeys(found))


@functools.cache
def schema_version():
    """The version of ``igwn-gwalert-schema`` installed, e.g. ``"1.3.0"``."""
    return metadata.version(SCHEMA_DISTRIBUTION)


@functools.cache
def _validator():
    """A validator of the schema, built once: loading and checking it takes tens of ms."""
    # Imported here: 45 ms that every `toros` command would pay otherwise.
    import jsonschema

    schema = json.loads(resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_FILE).read_text("utf-8"))
    validator_class = jsonschema.validators.validator_for(
        schema, default=getattr(jsonschema, DEFAULT_DRAFT))
    validator_class.check_schema(schema)
    format_checker = jsonschema.FormatChecker(formats=())
    format_checker.checks("date-time")(_is_rfc3339_date_time)
    format_checker.checks("uri")(_is_uri)
    return validator_class(schema, format_checker=format_checker)


def _is_rfc3339_date_time(value):
    return not isinstance(value, str) or RFC3339_DATE_TIME.fullmatch(value) is not None


def _is_uri(value):
    return not isinstance(value, str) or (bool(urlsplit(value).scheme)
                                          and not any(char.isspace() for char in value))


def _with_skymaps_stood_in(alert):
    """*alert* with :data:`SKYMAP_STAND_IN` for each base64 skymap string, copied shallowly."""
    if not isinstance(alert, dict):
        return alert
    light = dict(alert)
    for section, field in BASE64_FIELDS:
        holder = alert.get(section)
        if isinstance(holder, dict) and isinstance(holder.get(field), str):
            light[section] = {**holder, field: SKYMAP_STAND_IN}
    return light


def _describe(error):
    """*error* (a jsonschema ValidationError) as short lines, never its own message.

    Its message holds the ``repr`` of the value rejected, which may be a whole section of the
    alert; the lines made here show at most :func:`~torosmanager.alerts.formats.shorten` of it.
    """
    where = _path(error.absolute_path)
    keyword, wanted, value = error.validator, error.validator_value, error.instance
    if keyword in ("oneOf", "anyOf") and error.context:
        return _describe_alternatives(error)
    if keyword == "required":
        return [f"{_path([*error.absolute_path, name])}: missing"
                for name in wanted if isinstance(value, dict) and name not in value]
    if keyword == "type":
        return [f"{where}: {_a(_json_type(value))}, expected {_either(wanted)}"]
    if keyword == "enum":
        return [f"{where}: {shorten(value)} is not one of {', '.join(map(str, wanted))}"]
    if keyword == "format":
        need = FORMAT_NEEDS.get(wanted, f"a {wanted}")
        return [f"{where}: {shorten(value)} is not {need}"]
    if keyword == "additionalProperties" and wanted is False and isinstance(value, dict):
        known = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        return [f"{_path([*error.absolute_path, name])}: not a field the schema allows"
                for name in value if name not in known
                and not any(re.search(pattern, name) for pattern in patterns)]
    return [f"{where}: does not meet {keyword} {shorten(wanted)}"]


def _describe_alternatives(error):
    """A failed ``oneOf``/``anyOf``: the problems of the alternative of the value's type.

    ``"event": {"oneOf": [{"type": "null"}, {"type": "object", ...}]}`` fails an event object
    that lacks a field twice: as not null, and as an object without the field. Only the second
    says what is wrong. When no alternative has the value's type, that is the problem.
    """
    by_alternative = {}
    for inner in error.context:
        by_alternative.setdefault(inner.relative_schema_path[0], []).append(inner)
    wrong_type = {index: inner.validator_value
                  for index, errors in by_alternative.items() for inner in errors
                  if inner.validator == "type" and not inner.relative_path}
    right_type = [errors for index, errors in by_alternative.items() if index not in wrong_type]
    if not right_type:
        expected = [kind for kinds in wrong_type.values()
                    for kind in ([kinds] if isinstance(kinds, str) else kinds)]
        return [f"{_path(error.absolute_path)}: {_a(_json_type(error.instance))}, "
                f"expected {_either(expected)}"]
    return [line for errors in right_type for inner in errors for line in _describe(inner)]


def _path(parts):
    """``["event", "instruments", 0]`` as ``"event.instruments[0]"``; the root as ``"alert"``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "alert"


def _json_type(value):
    """JSON's name for the type of *value* (``bool`` is checked before ``int``)."""
    return next((name for kind, name in JSON_TYPES if isinstance(value, kind)),
                type(value).__name__)


def _a(noun):
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _either(kinds):
    return " or ".join([kinds] if isinstance(kinds, str) else kinds)
