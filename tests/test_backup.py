"""`toros backup DIR`: copies of the daemons' journals, taken while they run."""

import os
import re
import sqlite3
import subprocess
import sys
import threading

from helpers_small_disk import fill, remount, small_disk
from observatory import settings, wait_until
from torosmanager.config import service_path
from torosmanager.launcher import local_config

TOROS = os.path.join(os.path.dirname(sys.executable), "toros")
#: Orders acknowledged before the first backup, so that every copy has some to hold.
FIRST_ORDERS = 20
#: Backups taken one after the other while orders keep arriving.
BACKUPS = 3
#: What `toros backup` prints for each copy: its path first.
WROTE = re.compile(r"^wrote (?P<path>\S+) \(\d+ bytes\), a copy of (?P<journal>\S+)$", re.M)
#: A copy's name: the daemon, then the UTC time to the millisecond.
COPY_NAME = re.compile(r"^dome-\d{8}T\d{6}\.\d{3}Z\.sqlite3$")
#: `toros backup` runs started at once into one directory: more than fit in the distinct
#: seconds they span, so that names stamped to the second would collide.
AT_ONCE = 6
#: The small disk's size, MB: a journal of a few orders does not fit once it is filled.
DISK_MB = 1


def toros(config_path, *arguments):
    return subprocess.run([TOROS, "--config", str(config_path), *arguments],
                          capture_output=True, text=True, timeout=60)


def dome_order(number):
    return {"ID": f"backup-{number}", "WOType": "Dome", "Blink01": True}


def journal_ids(path):
    """The order IDs in a journal, and those with no history (there should be none)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as copy:
        ids = {row[0] for row in copy.execute("SELECT id FROM orders")}
        orphans = {row[0] for row in copy.execute(
            "SELECT id FROM orders WHERE key NOT IN (SELECT order_key FROM history)")}
        verdict = [row[0] for row in copy.execute("PRAGMA integrity_check")]
    return ids, orphans, verdict


def test_backups_taken_while_orders_arrive_hold_every_acknowledged_order(make_site, tmp_path):
    site = make_site(settings()).start("dome")
    acknowledged, stop = [], threading.Event()

    def submit():
        dome = site.proxy("dome")  # a proxy of its own: they are not shared between threads
        number = 0
        while not stop.is_set():
            acknowledged.append(dome.front_desk(dome_order(number))["ID"])
            number += 1

    submitter = threading.Thread(target=submit)
    submitter.start()
    backups = []
    try:
        wait_until(lambda: len(acknowledged) >= FIRST_ORDERS, "the first orders")
        for index in range(BACKUPS):
            before = set(acknowledged)
            result = toros(site.config_path, "backup", str(tmp_path / f"backup-{index}"),
                           "--service", "dome")
            assert result.returncode == 0, result.stderr
            backups.append((before, len(acknowledged), WROTE.search(result.stdout)))
    finally:
        stop.set()
        submitter.join()
    journal = service_path(site.config["Database"]["File"], "dome")
    for index, (before, count_after, wrote) in enumerate(backups):
        assert wrote and wrote["journal"] == journal
        path = wrote["path"]
        assert os.listdir(tmp_path / f"backup-{index}") == [os.path.basename(path)]
        assert COPY_NAME.match(os.path.basename(path))
        ids, orphans, verdict = journal_ids(path)
        assert verdict == ["ok"]
        assert before <= ids, "an order acknowledged before the backup began is missing"
        assert not orphans
    # The daemon went on taking orders while each copy was made.
    assert any(count_after > len(before) for before, count_after, _ in backups)


def test_a_stopped_daemons_journal_is_copied_and_left_as_it_was(make_site, tmp_path):
    site = make_site(settings()).start("dome")
    site.proxy("dome").front_desk(dome_order(1))
    site.stop()
    journal = service_path(site.config["Database"]["File"], "dome")
    beside = sorted(os.listdir(os.path.dirname(journal)))
    result = toros(site.config_path, "backup", str(tmp_path / "copies"), "--service", "dome")
    assert result.returncode == 0, result.stderr
    # No -wal or -shm left beside the journal: made by root, they would lock the daemon out.
    assert sorted(os.listdir(os.path.dirname(journal))) == beside
    ids, _, verdict = journal_ids(WROTE.search(result.stdout)["path"])
    assert ids == {"backup-1"} and verdict == ["ok"]


def test_a_journal_that_is_missing_is_named_and_the_exit_status_is_1(tmp_path):
    config_path = local_config(str(tmp_path / "site"))
    result = toros(config_path, "backup", str(tmp_path / "copies"))
    assert result.returncode == 1
    for service in ("scheduler", "telescope", "dome", "preprocessor"):
        assert f"{tmp_path / 'site' / service}.sqlite3 cannot be read: there is no such file" \
            in result.stderr
    assert os.listdir(tmp_path / "copies") == []


def test_a_journal_that_is_not_a_database_leaves_no_partial_copy(tmp_path):
    config_path = local_config(str(tmp_path / "site"))
    (tmp_path / "site" / "dome.sqlite3").write_text("not a database\n" * 100)
    result = toros(config_path, "backup", str(tmp_path / "copies"), "--service", "dome")
    assert result.returncode == 1
    assert "dome.sqlite3 cannot be read: file is not a database" in result.stderr
    assert os.listdir(tmp_path / "copies") == []


def test_a_directory_that_cannot_be_written_is_named_and_the_exit_status_is_1(make_site,
                                                                              tmp_path):
    site = make_site(settings()).start("dome")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "copies"  # a directory below a file cannot be made, even by root
    result = toros(site.config_path, "backup", str(target), "--service", "dome")
    assert result.returncode == 1
    assert f"cannot write to {target}: Not a directory" in result.stderr
    assert result.stdout == ""


def started_dome(make_site, orders=3):
    """A dome daemon that has taken *orders* orders."""
    site = make_site(settings()).start("dome")
    for number in range(orders):
        site.proxy("dome").front_desk(dome_order(number))
    return site


def test_backups_run_at_once_into_one_directory_each_keep_a_whole_copy(make_site, tmp_path):
    """Every run wrote its copy into the same temporary name, `.<target>.partial`, and named
    it to the second: one run removed another's copy under way, or found its name taken, and
    "an existing file is never overwritten" hung on a check and a rename that raced. Each run
    now writes a temporary file of its own and names the copy with a hard link, which fails
    rather than replace a file; names are stamped to the millisecond, the next free one taken."""
    site = started_dome(make_site)
    copies = tmp_path / "copies"
    command = [TOROS, "--config", str(site.config_path), "backup", str(copies), "--service",
               "dome"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(AT_ONCE)]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0] * AT_ONCE, outputs
    written = [WROTE.search(stdout)["path"] for stdout, _ in outputs]
    assert len(set(written)) == AT_ONCE
    # Nothing else is left: no temporary file, no rollback journal.
    assert sorted(os.listdir(copies)) == sorted(os.path.basename(path) for path in written)
    for path in written:
        assert COPY_NAME.match(os.path.basename(path))
        ids, _, verdict = journal_ids(path)
        assert verdict == ["ok"] and {"backup-0", "backup-1", "backup-2"} <= ids


def test_a_read_only_directory_is_named_with_its_cause_without_a_traceback(make_site,
                                                                           tmp_path):
    """The temporary copy could not be made there, and removing it, in the handler of that
    failure, raised again: a traceback ("OSError: [Errno 30] Read-only file system")."""
    site = started_dome(make_site)
    with small_disk(tmp_path / "disk", DISK_MB) as disk:
        remount(disk, "ro")
        try:
            result = toros(site.config_path, "backup", str(disk), "--service", "dome")
        finally:
            remount(disk, "rw")
        assert os.listdir(disk) == []
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr == (f"toros: the dome journal: cannot write to {disk}: Read-only file "
                             "system\n")


def test_a_full_disk_is_said_as_the_directorys_not_the_journals_and_nothing_is_left(
        make_site, tmp_path):
    """A full backup disk was said as "the journal cannot be read: database or disk is
    full", and the copy's rollback journal (`.…partial-journal`) was left in DIR."""
    site = started_dome(make_site)
    with small_disk(tmp_path / "disk", DISK_MB) as disk:
        fill(disk)
        result = toros(site.config_path, "backup", str(disk), "--service", "dome")
        left = os.listdir(disk)
    assert result.returncode == 1 and result.stdout == "", result.stderr
    assert result.stderr.startswith(f"toros: the dome journal: cannot write to {disk}: its "
                                     "disk is full (No space left on device"), result.stderr
    assert "cannot be read" not in result.stderr, result.stderr
    assert left == ["filler"]


def test_a_file_that_is_not_a_daemons_journal_is_not_backed_up(tmp_path):
    """An empty file, or another program's SQLite database, at a journal's place passed the
    integrity check and was "backed up", exit 0: a backup that holds no order."""
    config_path = local_config(str(tmp_path / "site"))
    (tmp_path / "site" / "dome.sqlite3").write_bytes(b"")
    with sqlite3.connect(tmp_path / "site" / "telescope.sqlite3") as other:
        other.execute("CREATE TABLE photos (name TEXT)")
    other.close()
    result = toros(config_path, "backup", str(tmp_path / "copies"), "--service", "dome",
                   "--service", "telescope")
    assert result.returncode == 1 and result.stdout == ""
    assert (f"toros: the dome journal: {tmp_path / 'site' / 'dome.sqlite3'} is not a TOROS "
            "daemon's journal: it is an empty file, without the table(s) orders, history every "
            "journal has; nothing copied") in result.stderr
    assert (f"{tmp_path / 'site' / 'telescope.sqlite3'} is not a TOROS daemon's journal: it is "
            "a database with the tables photos, without the table(s) orders, history"
            ) in result.stderr
    assert os.listdir(tmp_path / "copies") == []


def test_a_directory_that_is_a_file_is_said_to_be_one(tmp_path):
    """DIR naming a file was said as "cannot write to afile: File exists"."""
    config_path = local_config(str(tmp_path / "site"))
    blocker = tmp_path / "afile"
    blocker.write_text("")
    result = toros(config_path, "backup", str(blocker))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"toros: cannot write to {blocker}: it is not a directory (a file "
                             "of that name exists); name a directory, or one to be made\n")


def test_a_service_named_twice_is_copied_once(make_site, tmp_path):
    """`--service dome --service dome` copied the journal, then failed on the name it had
    just taken ("exists already"), exit 1."""
    site = started_dome(make_site)
    result = toros(site.config_path, "backup", str(tmp_path / "copies"), "--service", "dome",
                   "--service", "dome")
    assert result.returncode == 0, result.stderr
    assert len(WROTE.findall(result.stdout)) == 1 and len(os.listdir(tmp_path / "copies")) == 1
