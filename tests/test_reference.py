"""The configuration and work-order references in docs/ say what the code does."""

import pathlib

from torosmanager.reference import configuration_reference, work_order_reference

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
REGENERATE = "regenerate with `.venv/bin/python -m torosmanager.reference docs/`"


def test_the_configuration_reference_is_current():
    assert (DOCS / "configuration.md").read_text() == configuration_reference(), REGENERATE


def test_the_work_order_reference_is_current():
    assert (DOCS / "work-orders.md").read_text() == work_order_reference(), REGENERATE


def test_every_fault_code_is_explained():
    text = work_order_reference()
    for code in ("INVALID", "UNKNOWN_WOTYPE", "WRONG_DAEMON", "CONFLICT", "NOT_FOUND",
                 "NOT_CANCELLABLE", "INTERNAL", "UNSAFE"):
        assert f"`{code}`" in text
