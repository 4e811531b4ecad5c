"""The real alerts that other projects publish on PyPI: fetched pinned, read as data only.

The tests' fixtures and ``make demo`` take them from :mod:`torosmanager.alerts.published`.
"""

import json

import pytest

from torosmanager.alerts.published import GWCELERY, data_file


def test_a_wheel_is_fetched_whatever_python_it_says_it_runs_on(tmp_path, monkeypatch):
    """gwcelery 3.0.0 declares ``Requires-Python <3.13``: on Debian 13's or Homebrew's Python
    pip refused it, and every test of a real alert failed. Its code never runs, so the fetch
    ignores that. ``PIP_PYTHON_VERSION`` makes pip choose as it would for Python 3.13."""
    monkeypatch.setenv("PIP_PYTHON_VERSION", "3.13")
    path = data_file("kafka_alert_icecube_gold.json", GWCELERY, tmp_path)
    assert json.loads(path.read_text())["event_name"] == ["IceCube-230416A"]
    assert GWCELERY.wheel(tmp_path).exists()


def test_a_wheel_that_is_not_the_pinned_one_is_refused_and_removed(tmp_path):
    wheel = GWCELERY.wheel(tmp_path)
    wheel.write_bytes(b"not the wheel that was pinned")
    with pytest.raises(RuntimeError, match=f"{wheel.name}: sha256 .*, expected {GWCELERY.sha256}"):
        data_file("kafka_alert_icecube_gold.json", GWCELERY, tmp_path)
    assert not wheel.exists()  # the next call fetches it again
