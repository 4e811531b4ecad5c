"""The daemon programs' command line: `--daemon --pidfile` (a classic Unix daemon, through
python-daemon), and `--check-config`."""

import fcntl
import os
import signal
import subprocess
import time
import xmlrpc.client
from pathlib import Path

import pytest
import yaml

from torosmanager.launcher import daemon_command

STOP_SECONDS = 30


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_it_detaches_writes_its_pid_and_stops_on_sigterm(site):
    pidfile = site.directory / "dome.pid"
    result = subprocess.run([*daemon_command("dome"), "--config", site.config_path, "--daemon",
                             "--pidfile", str(pidfile)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + STOP_SECONDS
    # The lock file appears first, empty, and the PID is written into it a moment later.
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    try:
        assert os.getsid(pid) != os.getsid(0)  # its own session: detached from our terminal
        # The port was bound before detaching: a request waits in its backlog until served.
        health = xmlrpc.client.ServerProxy(site.url("dome")).front_desk({"WOType": "Status"})
        assert health["Service"] == "dome"
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        stopped = not alive(pid)
        if not stopped:
            os.kill(pid, signal.SIGKILL)  # whatever failed, the test leaves nothing running
    assert stopped, "the daemon did not stop on SIGTERM"
    assert not pidfile.exists()
    assert "dome daemon stopped" in site.log("dome")


@pytest.mark.parametrize("arguments", [["--daemon"], ["--pidfile", "/tmp/x.pid"]])
def test_daemon_and_pidfile_go_together(arguments):
    result = subprocess.run([*daemon_command("dome"), *arguments], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "--daemon and --pidfile PATH go together" in result.stderr


def test_a_pidfile_it_cannot_take_is_said_and_the_command_fails(site):
    """The daemon takes its pidfile after it detaches: the command used to exit 0 with
    nothing running, and nothing said."""
    pidfile = site.directory / "no-such-directory" / "dome.pid"
    result = subprocess.run([*daemon_command("dome"), "--config", site.config_path, "--daemon",
                             "--pidfile", str(pidfile)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert f"toros-dome: cannot detach with pidfile {pidfile}: " in result.stderr


def test_a_journal_in_use_is_said_and_the_command_exits_78(site):
    journal = site.config["Database"]["File"].replace("{service}", "dome")
    lock = os.open(f"{journal}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run([*daemon_command("dome"), "--config", site.config_path,
                                 "--daemon", "--pidfile", str(site.directory / "dome.pid")],
                                capture_output=True, text=True, timeout=60)
    finally:
        os.close(lock)
        pidfile = site.directory / "dome.pid"
        if pidfile.exists() and pidfile.read_text().strip():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)  # it started: leave none
    assert result.returncode == 78
    assert f"CRITICAL the journal {journal} is in use by another daemon" in result.stderr
    assert not pidfile.exists()


def test_check_config_says_whether_the_daemon_would_accept_the_file_and_starts_nothing(site):
    """What an operator runs before a restart, and the package's postinst before it restarts
    the daemons after an upgrade."""
    command = [*daemon_command("dome"), "--check-config", "--config", site.config_path]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"toros-dome: {site.config_path} is accepted\n"
    # Nothing started: no log file (made by root, the daemon could not write it), no journal.
    log_file = site.config["Logging"]["File"].replace("{service}", "dome")
    journal = site.config["Database"]["File"].replace("{service}", "dome")
    assert not os.path.exists(log_file) and not os.path.exists(journal)

    config = yaml.safe_load(Path(site.config_path).read_text())
    config["Logging"]["Log Level"] = "LOUD"
    Path(site.config_path).write_text(yaml.safe_dump(config))
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 78 and result.stdout == ""
    assert f"toros-dome: {site.config_path}: Logging → Log Level: 'LOUD' is not allowed" \
        in result.stderr


def test_check_config_does_not_go_with_daemon():
    result = subprocess.run([*daemon_command("dome"), "--check-config", "--daemon", "--pidfile",
                             "/tmp/x.pid"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--check-config starts nothing" in result.stderr
