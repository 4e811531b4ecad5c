"""A daemon imports its own handler only: the dome does not load ccdproc or the skymap code,
and none loads matplotlib at start-up."""

import os
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


#: What a daemon does not load up to its first health report, beyond :data:`NOT_LOADED`: the
#: dome and the scheduler only report the Earth-rotation table's age (astropy's IERS module
#: loads astropy.table and its readers); the preprocessor loads ccdproc's package and astropy's
#: NDData only where it needs them (a section to parse, a master to write).
NOT_LOADED_RUNNING = {
    "dome": ("astropy.utils.iers", "astropy.table"),
    "scheduler": ("astropy.utils.iers", "astropy.table"),
    "preprocessor": ("ccdproc", "astropy.nddata"),
}

#: A daemon run in this process until its health report says the table's age; then the modules
#: it has loaded are printed, and it is stopped as systemd stops it.
RUN_UNTIL_READY = """
import os, signal, sys, threading, time, xmlrpc.client
from torosmanager.config import address_key, load_config
from torosmanager.service import run

service, path = sys.argv[1:]
url = load_config(path)[address_key(service)]["HTTP"]

def report_when_ready():
    desk = xmlrpc.client.ServerProxy(url, allow_none=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if "Age" in desk.front_desk({"WOType": "Status"})["Earth Rotation"]:
                print(" ".join(sorted(sys.modules)), flush=True)
                break
        except OSError:
            pass
        time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=report_when_ready, daemon=True).start()
sys.exit(run(service, ["--config", path]))
"""


@pytest.mark.parametrize("service", sorted(NOT_LOADED_RUNNING))
def test_a_running_daemon_loads_only_what_it_uses(service, make_site):
    """Each module costs every start CPU and memory: up to its first full health report
    (the Earth-rotation table's age in it), a daemon has not loaded what it does not use."""
    site = make_site()
    # A program before it left the table and its facts in the cache, as at every later start.
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "toros"), "--config",
                    site.config_path, "iers"], check=True, capture_output=True, timeout=120)
    result = subprocess.run([sys.executable, "-c", RUN_UNTIL_READY, service, site.config_path],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert HANDLERS[service][0] in loaded
    unwanted = set(NOT_LOADED[service] + NOT_LOADED_RUNNING[service])
    assert not loaded & unwanted, sorted(loaded & unwanted)


def test_the_toros_command_loads_astropy_only_for_the_commands_that_use_it():
    """`toros` imports every command to list them: one importing astropy at its top made
    `toros status` and `toros --version` wait most of a second (0.9 s, 0.23 s without)."""
    script = ("import sys; import torosmanager.cli; "
              "print(' '.join(sorted(name for name in sys.modules "
              "if name.split('.')[0] in ('astropy', 'numpy', 'ccdproc'))))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.split() == []
