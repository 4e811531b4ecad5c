"""`make demo`: what the README says of it holds, and it leaves nothing behind but its report."""

import inspect
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from observatory import command_line
from torosmanager.config import SERVICES, default_config
from torosmanager.demo import run_demo, scenario, workspace
from torosmanager.demo.watch import SUMMARY_COLUMNS
from torosmanager.night import Night

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
#: Noon at CTMO on the solstices: the shortest and the longest night of the year follow.
SOLSTICES = ((6, 21), (12, 21))
#: UTC hour of noon at CTMO.
NOON_UTC = 18
#: A speed at which the demo's night passes in seconds: the same code path, in a test's time.
FAST = 2000
#: Real seconds the fast demo may take (it takes about 40).
FAST_TIMEOUT = 300
#: Variables that would send files somewhere other than HOME and TMPDIR, unset for the demo.
ELSEWHERE = ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "ASTROPY_CONFIG_DIR",
             "ASTROPY_CACHE_DIR")
#: Set on some machines, not in a user's shell: unset, so that the demo prints as for a user.
NOT_A_USERS = ("PYTHONUNBUFFERED",)
#: Real seconds at least between the demo's first line and the night's heading: the daemons
#: start in between (several seconds: astropy's first import).
DAEMONS_START_SECONDS = 1.0


def two_commands():
    """The README's "Two commands" section, its lines joined."""
    text = README.read_text(encoding="utf-8")
    start = text.index("## Two commands")
    return " ".join(text[start:text.index("\n## ", start)].split())


def solstice_nights():
    """The demo's timetables for the shortest and the longest night of this year."""
    config = default_config()
    nights = Night(config["Site"])
    year = datetime.now(timezone.utc).year
    return [scenario.timetable(nights.window(
        datetime(year, month, day, NOON_UTC, tzinfo=timezone.utc),
        config["Observing"]["Sun Altitude"])) for month, day in SOLSTICES]


def test_the_readme_gives_the_speed_and_the_duration_of_the_demo():
    section = two_commands()
    speed = re.search(r"runs (\d+) times faster than real time", section)
    assert speed, "the README says how fast the demo's clock runs"
    assert inspect.signature(run_demo).parameters["speed"].default == int(speed[1])
    nights = solstice_nights()
    assert all(night.speed == int(speed[1]) for night in nights)

    dark = re.search(r"the dark hours \((\d+) to (\d+) hours at CTMO", section)
    hours = [(night.dawn - night.dusk).total_seconds() / 3600 for night in nights]
    assert dark and int(dark[1]) <= min(hours) and max(hours) <= int(dark[2])

    takes = re.search(r"the whole demo takes (\d+) to (\d+) minutes", section)
    minutes = [scenario.real_seconds(night) / 60 for night in nights]
    assert takes and int(takes[1]) <= min(minutes) and max(minutes) <= int(takes[2])


def test_the_readme_says_where_the_report_is_kept():
    assert f"`{workspace.REPORT_DIRECTORY}/index.html`" in two_commands()


def test_the_workspace_is_removed_and_the_environment_restored_even_after_an_error(tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mine"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    with pytest.raises(RuntimeError):
        with workspace.workspace() as directory:
            assert os.environ["MPLCONFIGDIR"].startswith(directory)
            assert os.environ["XDG_CACHE_HOME"].startswith(directory)
            raise RuntimeError("the demo failed")
    assert not os.path.exists(directory)
    assert os.environ["MPLCONFIGDIR"] == str(tmp_path / "mine")
    assert "XDG_CACHE_HOME" not in os.environ


def files_below(directory):
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


def run_reading_lines(command, timeout, **popen_arguments):
    """Run *command*, reading its stdout as it comes; return its exit status, its stdout, and
    when (seconds after the start) each line was read."""
    started = time.monotonic()
    lines, read_at = [], []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, **popen_arguments) as process:
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            for line in process.stdout:
                lines.append(line)
                read_at.append(time.monotonic() - started)
        finally:
            timer.cancel()
        status = process.wait()
    return status, "".join(lines), read_at


def test_the_demo_leaves_nothing_in_home_or_tmp_and_keeps_its_report(tmp_path):
    home, temporary, checkout = (tmp_path / name for name in ("home", "tmp", "checkout"))
    for directory in (home, temporary, checkout):
        directory.mkdir()
    environment = {name: value for name, value in os.environ.items()
                   if name not in ELSEWHERE + NOT_A_USERS}
    environment.update(HOME=str(home), TMPDIR=str(temporary))
    # As `toros demo` runs it (the command's module first), only faster.
    program = (f"import sys, torosmanager.cli; from torosmanager.demo import run_demo; "
               f"sys.exit(run_demo(speed={FAST}))")
    with open(tmp_path / "stderr", "w+") as stderr:
        status, stdout, read_at = run_reading_lines(
            [sys.executable, "-c", program], FAST_TIMEOUT, cwd=checkout, env=environment,
            stderr=stderr)
        stderr.seek(0)
        assert status == 0, stdout[-2000:] + stderr.read()[-2000:]
    # Each line comes as it is printed, into a pipe too: the first, long before the night.
    heading = stdout.splitlines().index("The night (simulated UTC):")
    assert read_at[heading] - read_at[0] > DAEMONS_START_SECONDS, stdout[:2000]
    # Every line of the night says when: the dome's and the weather's too.
    the_night = stdout.split("The night (simulated UTC):\n", 1)[1].split("\nThe night's", 1)[0]
    untimed = [line for line in the_night.splitlines()
               if line and not re.match(r"\d\d:\d\d  \S", line)]
    assert not untimed and "  dome       open" in the_night, untimed or the_night[-2000:]
    assert files_below(home) == []
    assert files_below(temporary) == []
    kept = checkout / workspace.REPORT_DIRECTORY
    assert f"Night report: {kept / 'index.html'}" in stdout
    assert {"index.html", "plan.png", "event.png", "scheduler.log"} <= set(files_below(kept))
    # The alert's fields, once observed, cover what was planned of its localisation.
    observed = re.search(r"S3456 +observed +([\d.]+)% of its localisation observed \(planned "
                         r"([\d.]+)%\); its report: http://127\.0\.0\.1:\d+/events/S3456"
                         r"\.html", stdout)
    assert observed and float(observed[1]) == float(observed[2]) > 0, stdout[-3000:]
    assert "<img src='event.png'" in (kept / "index.html").read_text()
    # Started after the daemons it calls and stopped before them, the scheduler never finds
    # the dome daemon gone.
    scheduler_log = (kept / "scheduler.log").read_text()
    assert "cannot ask the dome daemon" not in scheduler_log
    assert "cannot send the heartbeat" not in scheduler_log
    # Every order done has all its exposures taken and calibrated (with the demo's TMPDIR,
    # inside this test's, the fork server's socket path was once too long: every job failed).
    table = stdout.split("The night's orders:\n", 1)[1].splitlines()
    assert re.split(r"\s{2,}", table[0]) == list(SUMMARY_COLUMNS), table[0]
    rows = [re.split(r"\s{2,}", line, maxsplit=6) for line in table[2:] if "  done  " in line]
    assert rows, "\n".join(table)
    for row in rows:
        taken, asked = row[3].split(" of ")
        assert taken == asked and row[5] == f"{taken} of {taken}", "\n".join(table)
    # The report names the night as its frames' directory does: by the evening's local date.
    night = re.search(r"/data/(\d{4})(\d{2})(\d{2})/raw", stdout)
    assert night, stdout[-2000:]
    assert f"The night of {'-'.join(night.groups())} at " in (kept / "index.html").read_text()


def demo_daemon(pid, temporary):
    """Whether *pid* is a daemon of a demo whose workspace is in *temporary*, still running."""
    return any(str(temporary) in argument for argument in command_line(pid))


@pytest.mark.parametrize("stop, to_its_group", [(signal.SIGINT, True), (signal.SIGTERM, False),
                                                (signal.SIGHUP, False)],
                         ids=["Ctrl-C", "SIGTERM", "SIGHUP"])
def test_a_demo_ended_by_a_signal_stops_its_daemons_and_removes_its_workspace(
        tmp_path, stop, to_its_group):
    """Ctrl-C (SIGINT to the demo and its daemons, the terminal's foreground group), ``kill``,
    ``timeout``, a service manager (SIGTERM) or a terminal closed (SIGHUP) end the demo with
    its daemons stopped (each exiting 0) and its workspace removed. Before, SIGTERM and SIGHUP
    ended the demo alone: its five daemons ran on, and its workspace stayed in /tmp; Ctrl-C
    ended it with a traceback, and a daemon could be killed by the demo's SIGTERM as it
    ended on its own."""
    temporary, checkout = tmp_path / "tmp", tmp_path / "checkout"
    for directory in (temporary, checkout):
        directory.mkdir()
    environment = dict(os.environ, TMPDIR=str(temporary))
    program = (f"import sys, torosmanager.cli; from torosmanager.demo import run_demo; "
               f"sys.exit(run_demo(speed={FAST}))")
    with subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=checkout, env=environment,
                          start_new_session=True) as demo:
        timer = threading.Timer(FAST_TIMEOUT, demo.kill)
        timer.start()
        try:
            lines = []
            for line in demo.stdout:
                lines.append(line)
                if line.startswith("The night (simulated UTC):"):
                    if to_its_group:
                        os.killpg(demo.pid, stop)
                    else:
                        demo.send_signal(stop)
                    break
            output = "".join(lines) + demo.stdout.read()
            status = demo.wait()
        finally:
            timer.cancel()
    pids = [int(pid) for pid in re.findall(r"^started \w+ +pid (\d+)", output, re.M)]
    try:
        assert status == 128 + stop and "Traceback" not in output, output[-2000:]
        assert len(pids) == len(SERVICES), output[:2000]
        assert output.count(" exit status 0") == len(SERVICES), output[-2000:]
        assert not [pid for pid in pids if demo_daemon(pid, temporary)], output[-2000:]
        assert files_below(temporary) == []
    finally:  # left running (the code before): stopped by their own PIDs
        for pid in pids:
            if demo_daemon(pid, temporary):
                os.kill(pid, signal.SIGKILL)
    kept = checkout / workspace.REPORT_DIRECTORY
    assert f"The daemons' logs are in {kept}." in output
    assert "scheduler.log" in files_below(kept)


def test_the_demo_starts_every_daemon():
    started = [service for wave in scenario.START_WAVES for service in wave]
    assert sorted(started) == sorted(SERVICES)
