"""The Earth-rotation table: nothing fails because of its age, and its age is reported.

astropy's bundled IERS-A table ages by a day every day, and an observatory computer may have no
network for months. The last test here runs the paths that broke when the table passed 30 days
(the CLI's chart, a whole observation, a third-party Alpaca server) years in the future, with
the network cut and an empty astropy cache.
"""

import html
import json
import logging
import os
import shutil
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta, timezone

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table
from astropy.time import Time
from astropy.utils import iers

from observatory import wait_until
from torosmanager import earth_rotation_cache
from torosmanager.earth_rotation import (EarthRotationTable, astropy_config_text,
                                         offline_environment, prediction_errors, table_facts)

TOROS = os.path.join(os.path.dirname(sys.executable), "toros")
HERE = os.path.dirname(os.path.abspath(__file__))

#: How far the stale world's clock is set ahead: the bundled table is then years old.
YEARS_AHEAD = 3
#: The tests that failed on 2026-11-30 when the table was 38 days old, and a whole night's
#: path through all four daemons; run again in the stale world.
STALE_WORLD_TESTS = [
    "tests/test_scheduler.py::test_plan_and_reasons_are_shown",
    "tests/test_scheduler.py::test_a_target_of_opportunity_interrupts_and_the_other_order_comes_back",
    "tests/devices/test_alpaca_camera.py::test_a_light_frame_of_the_field_the_mount_points_at",
    "tests/test_dome.py::test_daylight_is_unsafe",
    "tests/test_earth_rotation.py::test_every_daemon_reports_the_tables_age",
]
#: Seconds the stale world's tests may take together.
STALE_WORLD_TIMEOUT = 600


@pytest.fixture(scope="module")
def table():
    loaded = EarthRotationTable()
    loaded.load()
    return loaded


def test_errors_follow_bulletin_a():
    """σ(UT1−UTC) = 0.00025 s·d^0.75 and σ(x, y) = 0.00068″·d^0.80, d days after the last
    measurement; none on a measured day."""
    assert prediction_errors(0.0) == (0.0, 0.0)
    assert prediction_errors(-5.0) == (0.0, 0.0)
    ut1, pole = prediction_errors(365.0)
    assert ut1 == pytest.approx(0.02088, rel=1e-3)
    assert pole == pytest.approx(0.07627, rel=1e-3)


def test_status_says_the_age_and_the_error_it_implies(table):
    measured = table.status(datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert measured.age_days == 0 and measured.pointing_error == 0
    later = measured.last_measured + timedelta(days=100)
    status = table.status(later)
    assert status.age_days == pytest.approx(100.0)
    ut1, pole = prediction_errors(100.0)
    assert status.pointing_error == pytest.approx(((15 * ut1) ** 2 + pole ** 2) ** 0.5)
    assert not status.beyond_table
    assert "100 d before" in status.summary() and "pointing ±" in status.summary()
    ended = table.status(status.table_end + timedelta(days=1))
    assert ended.beyond_table and "past the table's end" in ended.summary()
    assert ended.as_dict()["Age"] == pytest.approx(ended.age_days, abs=0.1)


def test_other_processes_get_the_same_settings(tmp_path):
    """A third-party program started with :func:`offline_environment` reads the settings from
    the file it names; without it, astropy's defaults (download, 30 days) apply."""
    script = ("from astropy.utils import iers; from astropy.utils.data import conf; "
              "print(iers.conf.auto_download, iers.conf.auto_max_age, "
              "iers.conf.iers_degraded_accuracy, conf.allow_internet)")
    clean = {key: value for key, value in os.environ.items()
             if key not in ("ASTROPY_CONFIG_DIR", "XDG_CONFIG_HOME")}
    empty = tmp_path / "empty"
    empty.mkdir()
    default = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env=dict(clean, ASTROPY_CONFIG_DIR=str(empty)), check=True)
    assert default.stdout.split() == ["True", "30.0", "error", "True"]
    offline = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env=dict(clean, **offline_environment(tmp_path / "config")),
                             check=True)
    assert offline.stdout.split() == ["False", "inf", "warn", "False"]
    assert "auto_max_age = inf" in astropy_config_text()
    # In a TOROS program, use_astropy_offline() sets astropy up before the modules the settings
    # belong to are imported (a daemon may never import them): they find the settings there.
    own = subprocess.run([sys.executable, "-c",
                          "import sys; from torosmanager.earth_rotation import "
                          "use_astropy_offline; use_astropy_offline(); "
                          "print('astropy.utils.iers' in sys.modules); " + script],
                         capture_output=True, text=True,
                         env=dict(clean, ASTROPY_CONFIG_DIR=str(empty)), check=True)
    assert own.stdout.split() == ["False", "False", "inf", "warn", "False"]


#: The start of a script that counts how many times its process parses astropy's IERS-A file
#: (in ``reads``), run with a cache directory of the test's own.
COUNTING_READS = """
from astropy.utils import iers
from torosmanager.earth_rotation import use_astropy_offline

use_astropy_offline()
reads = []
read = iers.IERS_A.read.__func__
iers.IERS_A.read = classmethod(lambda cls, *a, **k: reads.append(1) or read(cls, *a, **k))
"""


def run_counting_reads(script, cache_home):
    """The printed words of *script*, run after :data:`COUNTING_READS` in a new process."""
    result = subprocess.run([sys.executable, "-c", COUNTING_READS + script],
                            capture_output=True, text=True, timeout=300, check=True,
                            env=dict(os.environ, XDG_CACHE_HOME=str(cache_home)))
    return result.stdout.split()


#: Threads that need the IERS table at once, as in a daemon's first seconds: the start-up read,
#: the simulated mount (a health report), an Alpaca mount's apparent place, its altitude.
READ_TOGETHER = """
import threading
from datetime import datetime, timezone
from torosmanager.devices import coordinates
from torosmanager.devices.simulator.coords import earth_orientation
from torosmanager.earth_rotation import EarthRotationTable

now = datetime.now(timezone.utc)
site = {"Latitude": 26.0, "Longitude": -97.5, "Elevation": 10.0}
location = coordinates.site_location(site)
readers = [EarthRotationTable().load, lambda: earth_orientation(now),
           lambda: coordinates.icrs_to_apparent(10.0, 20.0, location, now),
           lambda: coordinates.horizontal(10.0, 20.0, location, now)]
threads = [threading.Thread(target=reader) for reader in readers]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(reads))
"""


def test_threads_needing_the_table_together_read_it_once(tmp_path):
    """Reading the table takes seconds of CPU: a daemon's first health report waits for the
    start-up read under way rather than reading the table a second time beside it."""
    assert run_counting_reads(READ_TOGETHER, tmp_path) == ["1"]


#: How many times a process parsed astropy's table, and its first UT1−UTC inside the table and
#: beyond its end.
FIRST_UT1 = """
from astropy.time import Time
from torosmanager.earth_rotation import iers_table

iers_table()
print(len(reads), repr(Time("2026-11-10T02:00:00").delta_ut1_utc),
      repr(Time("2031-01-01").delta_ut1_utc))
"""


def test_the_next_process_takes_the_table_from_the_cache_with_the_same_numbers(tmp_path):
    """The first process parses astropy's files and caches the table; the next one parses
    nothing, and gets the same UT1−UTC inside the table and beyond its end."""
    first = run_counting_reads(FIRST_UT1, tmp_path)
    assert (tmp_path / "toros" / earth_rotation_cache.CACHE_FILE_NAME).is_file()
    second = run_counting_reads(FIRST_UT1, tmp_path)
    assert first[0] == "1" and second[0] == "0"
    assert first[1:] == second[1:]


@pytest.fixture(scope="module")
def astropy_reading():
    """The table as astropy's own reader makes it from the files (seconds)."""
    return iers.IERS_Auto.read()


def test_the_cached_table_is_the_one_astropy_reads(tmp_path, astropy_reading):
    """Every column (kind, dtype, unit, values, mask), the table's metadata and astropy's
    interpolations come back from the cache as astropy's own reading made them."""
    read = astropy_reading
    earth_rotation_cache.save(read, table_facts(read), tmp_path / "table.npz", "the key")
    cached = earth_rotation_cache.load(tmp_path / "table.npz", "the key")
    assert type(cached) is iers.IERS_Auto and cached.colnames == read.colnames
    for name in read.colnames:
        expected, got = read[name], cached[name]
        assert type(got) is type(expected) and got.dtype == expected.dtype, name
        assert getattr(got, "unit", None) == getattr(expected, "unit", None), name
        assert np.array_equal(np.asarray(got), np.asarray(expected),
                              equal_nan=expected.dtype.kind == "f"), name
        assert np.array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(expected)), name
    assert cached.meta == read.meta
    times = Time("2020-01-01") + np.linspace(0, 2500, 50) * u.day
    assert np.array_equal(cached.ut1_utc(times), read.ut1_utc(times))
    assert np.array_equal(cached.pm_xy(times), read.pm_xy(times))


def test_a_cache_made_from_other_files_is_not_used(tmp_path, caplog, astropy_reading):
    """A new table (``toros iers --update``) or another astropy changes the key."""
    earth_rotation_cache.save(astropy_reading, table_facts(astropy_reading),
                              tmp_path / "table.npz", "the old files")
    with caplog.at_level(logging.INFO):
        assert earth_rotation_cache.load(tmp_path / "table.npz", "the new files") is None
        assert earth_rotation_cache.load_facts(tmp_path / "table.npz", "the new files") is None
    assert "made from other files" in caplog.text
    key = json.loads(earth_rotation_cache.source_key())
    assert key["astropy"] and key["astropy-iers-data"] and key["pyerfa"]
    assert [path for path, _, _ in key["Files"]] == [
        os.path.abspath(path) for path in (iers.IERS_A_FILE, iers.IERS_A_README,
                                           iers.IERS_B_FILE, iers.IERS_B_README,
                                           iers.IERS_LEAP_SECOND_FILE)]


#: A program that only reports the table's age: whether it imported astropy's tables (which
#: reading the table does), and what it says.
REPORT_AGE = """
import json, sys
from datetime import datetime, timezone
from torosmanager.earth_rotation import EarthRotationTable

table = EarthRotationTable(with_table=False)
table.load()
print("astropy.table" in sys.modules, json.dumps(
    table.status(datetime(2026, 11, 10, 2, tzinfo=timezone.utc)).as_dict()))
"""


def test_the_tables_age_comes_from_the_cache_without_reading_the_table(tmp_path, table):
    """The first program reads the table and caches it with its facts; the next one that only
    reports the age (the dome, the scheduler, ``toros iers``) takes them from the cache without
    reading the table or even importing astropy's tables, and says what a reading says."""
    def report():
        result = subprocess.run([sys.executable, "-c", REPORT_AGE], capture_output=True,
                                text=True, timeout=300, check=True,
                                env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path)))
        imported, said = result.stdout.split(maxsplit=1)
        return imported, json.loads(said)

    expected = table.status(datetime(2026, 11, 10, 2, tzinfo=timezone.utc)).as_dict()
    first = report()
    assert (tmp_path / "toros" / earth_rotation_cache.CACHE_FILE_NAME).is_file()
    second = report()
    assert first[0] == "True" and second[0] == "False"
    assert first[1] == second[1] == json.loads(json.dumps(expected))


def test_a_damaged_or_unwritable_cache_costs_only_the_parse(tmp_path, caplog):
    damaged, empty = tmp_path / "table.npz", tmp_path / "empty.npz"
    damaged.write_bytes(b"PK\x03\x04 cut short")
    empty.write_bytes(b"")
    with caplog.at_level(logging.INFO):
        assert earth_rotation_cache.load(damaged, "a key") is None
        assert earth_rotation_cache.load(empty, "a key") is None
        assert earth_rotation_cache.load(tmp_path / "absent.npz", "a key") is None
        blocked = tmp_path / "a file, not a directory"
        blocked.write_text("")
        earth_rotation_cache.save(Table({"MJD": [61000.0]}), {}, blocked / "table.npz",
                                  "a key")
    assert "Could not load the Earth-rotation table's cache" in caplog.text
    assert "Could not cache the Earth-rotation table" in caplog.text
    assert sorted(tmp_path.iterdir()) == sorted([damaged, empty, blocked])


def test_every_daemon_reports_the_tables_age(make_site):
    """Health Status and the status page say the table's age and the pointing error."""
    site = make_site()
    site.start("dome", "preprocessor")
    for service in ("dome", "preprocessor"):
        proxy = site.proxy(service)
        health = wait_until(lambda: _health_once_read(proxy), "the table to be read")
        report = health["Earth Rotation"]
        now = datetime.fromisoformat(health["Now"])
        measured = datetime.fromisoformat(report["Last Measured"]).replace(tzinfo=timezone.utc)
        assert report["Age"] == pytest.approx(max((now - measured).total_seconds() / 86400, 0),
                                              abs=0.2)
        assert report["Pointing Error"] >= 0 and "pointing ±" in report["Message"]
        with urllib.request.urlopen(site.url(service).rstrip("/") + "/", timeout=30) as answer:
            page = html.unescape(answer.read().decode())
        assert f"measured until {report['Last Measured']}" in page
        assert "Earth rotation: IERS-A table" in site.log(service)


def _health_once_read(proxy):
    health = proxy.front_desk({"WOType": "Status"})
    return health if "Age" in health["Earth Rotation"] else None


def test_toros_iers_says_the_age():
    shown = subprocess.run([TOROS, "iers"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "IERS-A table" in shown.stdout and "pointing ±" in shown.stdout


def test_toros_iers_dry_run_without_update_is_a_wrong_command_line():
    shown = subprocess.run([TOROS, "iers", "--dry-run"], capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 2 and shown.stderr == "toros: --dry-run goes with --update\n"


def test_an_update_without_a_network_leaves_the_table_and_says_why(tmp_path):
    if not _can_cut_network():
        pytest.skip("needs root and unshare(1) to cut the network")
    # No pip configuration file (this machine's names local mirrors), the real index, no retries.
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS="", PIP_RETRIES="0",
               PIP_TIMEOUT="5")
    result = subprocess.run(["unshare", "--net", TOROS, "iers", "--update"], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 1
    assert "pip could not reach the package index (exit 1; no network" in result.stderr
    assert "the table is unchanged" in result.stderr


def _can_cut_network():
    return os.geteuid() == 0 and shutil.which("unshare") is not None


def test_nothing_fails_years_later_offline_with_an_empty_cache(tmp_path):
    """The clock set years ahead (libfaketime), the network cut (unshare --net, loopback up)
    and an empty astropy cache: the paths that broke on 2026-11-30 work, and ``toros iers``
    says how old the table is."""
    if not _can_cut_network() or shutil.which("ip") is None:
        pytest.skip("needs root, unshare(1) and ip(8) to cut the network")
    libfaketime = pytest.importorskip("libfaketime")
    cache = tmp_path / "astropy-cache"
    cache.mkdir()
    _, preload = libfaketime.get_reload_information()
    env = dict(os.environ, **preload, FAKETIME=f"+{365 * YEARS_AHEAD}d",
               ASTROPY_CACHE_DIR=str(cache), XDG_CACHE_HOME=str(cache))
    for variable in ("ASTROPY_CONFIG_DIR", "XDG_CONFIG_HOME"):
        env.pop(variable, None)  # the programs must set astropy up themselves

    def in_stale_world(*command):
        return subprocess.run(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"',
                               "sh", *command], capture_output=True, text=True, env=env,
                              cwd=os.path.dirname(HERE), timeout=STALE_WORLD_TIMEOUT)

    shown = in_stale_world(TOROS, "iers")
    assert shown.returncode == 0, shown.stderr
    assert "past the table's end" in shown.stdout
    age = int(shown.stdout.split(" d before ")[0].rsplit(" ", 1)[1])
    assert age > 365 * (YEARS_AHEAD - 1)
    run = in_stale_world(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         f"--basetemp={tmp_path / 'inner'}", *STALE_WORLD_TESTS)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert f"{len(STALE_WORLD_TESTS)} passed" in run.stdout
    assert not list(cache.rglob("*finals*")), "astropy downloaded a table"
