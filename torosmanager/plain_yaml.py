"""Reading YAML as an astronomer means it: ``RA: 5:00`` is text, not the number 300.

PyYAML follows YAML 1.1, which reads plain scalars that look like base-60 numbers (``5:00``,
``-23:30:00``) as integers or floats, ones with a leading zero (``007``) as octal, and dates as
``datetime`` objects (raising Python's own error, which names no key, for ``2026-13-01``). In a
work order or a configuration these are coordinates, IDs and instants: the fields' own checks
read them, and say what is wrong with the key's name. So here a plain scalar is a number only in
plain decimal notation (``42``, ``-7``, ``0.5``, ``1e-3``, ``.inf``), a boolean only when it is
``true`` or ``false`` (YAML 1.2's; YAML 1.1 made ``Object Name: NO`` false), null as PyYAML
reads it, and everything else is text.
"""

import re

import yaml

INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
MERGE_TAG = "tag:yaml.org,2002:merge"
BOOL_TAG = "tag:yaml.org,2002:bool"
#: YAML 1.2's booleans: yes, no, on and off are text (``Object Name: NO``, Norway).
BOOLEAN = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
#: Decimal integers without leading zeros (JSON's integers).
DECIMAL_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
#: Decimal fractions, with or without an exponent, and YAML's infinities and NaN.
DECIMAL_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?
                               |[-+]?[0-9]+[eE][-+]?[0-9]+
                               |[-+]?\.(?:inf|Inf|INF)
                               |\.(?:nan|NaN|NAN))$""", re.VERBOSE)


class PlainLoader(yaml.SafeLoader):
    """PyYAML's safe loader with numbers only in decimal notation and no implicit dates, that
    refuses a key given twice in one mapping (PyYAML keeps the last: a second ``Site:`` in a
    configuration would put back the default latitude without a word)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            lines = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:
                    continue  # (keys merged in may be overridden: that is what merging is)
                key, line = self.construct_object(key_node, deep=True), \
                    key_node.start_mark.line + 1
                try:
                    first = lines.get(key)
                except TypeError:
                    continue  # an unhashable key: the constructor says so itself
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"the key {key!r} is given twice, on lines {first} and {line}; "
                        "allowed: each key once", key_node.start_mark)
                lines[key] = line
        return super().construct_mapping(node, deep=deep)


PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers
            if tag not in (INT_TAG, FLOAT_TAG, TIMESTAMP_TAG, BOOL_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
PlainLoader.add_implicit_resolver(INT_TAG, DECIMAL_INT, list("-+0123456789"))
PlainLoader.add_implicit_resolver(FLOAT_TAG, DECIMAL_FLOAT, list("-+.0123456789"))
PlainLoader.add_implicit_resolver(BOOL_TAG, BOOLEAN, list("tTfF"))


def load(text):
    """The data of the YAML document *text*, read with :class:`PlainLoader`.

    Raises
    ------
    yaml.YAMLError
        When *text* is not YAML.
    """
    return yaml.load(text, Loader=PlainLoader)  # noqa: S506 -- a SafeLoader
