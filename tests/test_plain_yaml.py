"""YAML read as an astronomer means it: coordinates, IDs and dates stay text for the fields'
own checks; only plain decimal numbers are numbers."""

import math

import pytest
import yaml

from torosmanager import plain_yaml


@pytest.mark.parametrize("text, meant", [
    ("5:00", "5:00"),                # YAML 1.1: 300 (base 60)
    ("-23:30:00", "-23:30:00"),      # YAML 1.1: -84600
    ("+13:12:00", "+13:12:00"),
    ("1:30.5", "1:30.5"),            # YAML 1.1: 90.5
    ("007", "007"),                  # YAML 1.1: 7 (octal)
    ("0x1f", "0x1f"),
    ("1_000", "1_000"),
    ("2026-11-21T00:30:00", "2026-11-21T00:30:00"),   # YAML 1.1: a datetime
    ("2026-13-01", "2026-13-01"),    # YAML 1.1: Python's ValueError, naming no key
])
def test_what_yaml_1_1_reads_as_a_number_or_a_date_is_text(text, meant):
    assert plain_yaml.load(f"RA: {text}") == {"RA": meant}


@pytest.mark.parametrize("text, number", [
    ("42", 42), ("-7", -7), ("+3", 3), ("0", 0), ("0.5", 0.5), ("-.5", -0.5), ("3.", 3.0),
    ("1e-3", 0.001), ("2.5E+2", 250.0), ("-.inf", -math.inf),
])
def test_decimal_numbers_are_numbers(text, number):
    value = plain_yaml.load(f"x: {text}")["x"]
    assert value == number and type(value) is type(number)


def test_null_quoted_text_and_explicit_tags_read_as_pyyaml_reads_them():
    data = plain_yaml.load("a: true\nb: False\nc: null\nd: '5:00'\ne: !!int '10'\nf: .nan")
    assert data["a"] is True and data["b"] is False and data["c"] is None
    assert data["d"] == "5:00" and data["e"] == 10 and math.isnan(data["f"])


def test_only_true_and_false_are_booleans_as_in_yaml_1_2():
    # YAML 1.1 made a target named NO (Norway) false, and refused it as no Object Name.
    data = plain_yaml.load("Object Name: NO\nb: yes\nc: On\nd: off\ne: TRUE\nf: !!bool yes")
    assert data == {"Object Name": "NO", "b": "yes", "c": "On", "d": "off", "e": True,
                    "f": True}


def test_pyyamls_own_safe_loader_is_left_as_it_was():
    plain_yaml.load("RA: 5:00")
    assert yaml.safe_load("RA: 5:00") == {"RA": 300}
