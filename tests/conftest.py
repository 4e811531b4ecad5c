"""Shared fixtures: daemons started as real processes on free loopback ports."""

import copy
import xmlrpc.client
from datetime import datetime, timezone

import pytest

from torosmanager.config import SERVICES, address_key, load_config
from torosmanager.earth_rotation import use_astropy_offline
from torosmanager.launcher import DaemonProcess, local_config
from torosmanager.preprocessor.executors import LocalRunner


def pytest_configure(config):
    """astropy in the tests' own process goes through the daemons' offline set-up."""
    use_astropy_offline()


#: The files that keep a worker longest (a minute to three each, measured with
#: ``pytest --durations=0``), longest first. ``make test`` hands whole files to its workers
#: (``--dist loadfile``) in the order collected: started first, these run beside the many
#: short files instead of alone at the end, while the other workers wait.
LONGEST_FILES = ("tests/test_scheduler.py", "tests/test_telescope.py",
                 "tests/test_alerts_daemon.py", "tests/test_deb_package.py",
                 "tests/test_alpaca_observatory.py", "tests/test_demo.py",
                 "tests/test_systemd_container.py", "tests/test_clock_steps.py",
                 "tests/test_units.py", "tests/test_indi_telescope_faults.py",
                 "tests/test_telescope_device_faults.py", "tests/test_full_disk.py",
                 "tests/test_retry_frames.py",
                 "tests/test_lock.py", "tests/test_dome.py", "tests/test_earth_rotation.py")


def pytest_collection_modifyitems(config, items):
    """The :data:`LONGEST_FILES` first; the other files, and each file's tests, in order."""
    rank = {path: number for number, path in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """The per-user cache (the parsed Earth-rotation table) of this test process and of every
    program it starts: in the test run's own directory, not the home directory. The first daemon
    parses the table; the others load it."""
    with pytest.MonkeyPatch.context() as patch:
        directory = tmp_path_factory.mktemp("user-cache")
        patch.setenv("XDG_CACHE_HOME", str(directory))
        yield directory


#: Every test site runs on a simulated clock from an evening at CTMO (astronomical dusk was at
#: 01:05 UTC), so what is visible "tonight" does not depend on the day the tests run. That night
#: the Moon is down and far from the manual's target (RA 23.1°, Dec 13.2°), high in the sky.
EVENING = datetime(2026, 11, 10, 2, 0, tzinfo=timezone.utc)


def simulated_clock(start=EVENING, speed=1.0):
    """Clock settings for a simulated clock at *start*, anchored now."""
    return {"Mode": "simulated", "Start": start.isoformat(),
            "Anchor": datetime.now(timezone.utc).isoformat(), "Speed": speed}


class Site:
    """A set of daemons sharing one configuration in a temporary directory."""

    def __init__(self, directory, overrides=None):
        self.directory = directory
        settings = {"Clock": simulated_clock()}
        for section, values in copy.deepcopy(overrides or {}).items():
            settings.setdefault(section, {}).update(values)
        self.config_path = local_config(str(directory), settings)
        self.config = load_config(self.config_path)
        self.daemons = {}

    def start(self, *services):
        """Start the named daemons (each as its own process, all at once) and wait until each
        is ready."""
        launched = []
        for service in services:
            # Kept as soon as launched: if a later one cannot start, stop() still stops these.
            daemon = DaemonProcess(service, self.config_path).launch()
            self.daemons[service] = daemon
            launched.append(daemon)
        for daemon in launched:
            daemon.wait_ready()
        return self

    def url(self, service):
        return self.config[address_key(service)]["HTTP"]

    def proxy(self, service, **options):
        """An XML-RPC client of *service*, as any program would make one."""
        return xmlrpc.client.ServerProxy(self.url(service), allow_none=True, **options)

    def log(self, service):
        with open(self.directory / f"{service}.log", encoding="utf-8") as stream:
            return stream.read()

    def stop(self):
        return {service: daemon.stop() for service, daemon in self.daemons.items()}


@pytest.fixture
def site(tmp_path):
    """A fresh site; the test starts the daemons it needs. All are stopped by PID at the end."""
    made = Site(tmp_path)
    yield made
    made.stop()


@pytest.fixture
def make_site(tmp_path):
    """A factory for sites with configuration overrides."""
    made = []

    def make(overrides=None, name="site"):
        directory = tmp_path / name
        directory.mkdir()
        made.append(Site(directory, overrides))
        return made[-1]

    yield make
    for each in made:
        each.stop()


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """The five daemons on a fast simulated evening, the dome opened by the scheduler, shared by
    the tests of a module (each test uses its own order IDs)."""
    from observatory import settings  # beside this file; it builds on the names above

    made = Site(tmp_path_factory.mktemp("running"), settings()).start(*SERVICES)
    yield made
    made.stop()


@pytest.fixture(scope="module")
def runner():
    """Two local preprocessor worker processes, shared by a test module."""
    made = LocalRunner(2)
    yield made
    made.close()
