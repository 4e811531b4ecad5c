"""A daemon imports its own handler only: the dome does not load ccdproc or the skymap code,
and none loads matplotlib at start-up."""

import subprocess
import sys

import pytest

from torosmanager.config import SERVICES
from torosmanager.service import HANDLERS

#: What each daemon must not load: the other daemons' heavy libraries, and matplotlib (only
#: the pages' pictures need it, drawn when asked for).
NOT_LOADED = {
    "dome": ("ccdproc", "astropy_healpix", "torosmanager.scheduler.planner", "matplotlib"),
    "telescope": ("ccdproc", "astropy_healpix", "matplotlib"),
    "scheduler": ("ccdproc", "astropy_healpix", "matplotlib"),
    "preprocessor": ("astropy_healpix", "torosmanager.scheduler.planner", "matplotlib"),
    "alerts": ("ccdproc", "matplotlib"),
}


def test_every_daemon_has_a_handler():
    assert set(HANDLERS) == set(SERVICES)


@pytest.mark.parametrize("service", sorted(NOT_LOADED))
def test_a_daemon_loads_its_own_handler_and_not_the_others(service):
    # A fresh interpreter: this one has imported everything already.
    script = (f"import sys; from torosmanager.service import handler_class; "
              f"cls = handler_class({service!r}); print(cls.service); "
              f"print(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=60)
    name, modules = result.stdout.splitlines()
    assert name == service
    loaded = set(modules.split())
    assert HANDLERS[service][0] in loaded
    assert not loaded & set(NOT_LOADED[service]), sorted(loaded & set(NOT_LOADED[service]))
