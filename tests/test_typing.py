"""The type hints are checked: mypy, with the project's mypy.ini, refuses wrong calls of the
public interfaces (work orders, the journal, devices, the planner, the clock, the client) and
accepts the right ones.

Two small files make the same calls, one rightly and one wrongly; mypy must report exactly
the lines marked ``# wrong`` and nothing in the right file. (`make test` runs
mypy over the package itself before pytest.)
"""
import re
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: mypy reads the package afresh (its own cache in a temporary folder): tens of seconds on a
#: busy machine, bounded here.
MYPY_TIMEOUT_S = 300

HEADER = """\
import threading

from torosmanager.clock import Clock
from torosmanager.client import connect
from torosmanager.devices import Camera, FrameType, Mount, wait_for
from torosmanager.journal import QUEUED, Journal, OrderState
from torosmanager.scheduler.planner import Planner, Target
from torosmanager.workorders import right_ascension


def use(journal: Journal, mount: Mount, camera: Camera, clock: Clock, config: dict,
        planner: Planner) -> None:
"""

RIGHT = """\
mount.start_slew(right_ascension("01:32:24"), 13.2)
journal.transition("1", QUEUED, "planned", "2026-11-21T23:00:00.000Z")
print(right_ascension("01:32:24") / 15)
connect(config, "dome", timeout=30.0)
Clock(speed=100.0)
record = journal.get("1")
state: OrderState = record.state if record is not None else QUEUED
camera.start_exposure(30.0, FrameType.LIGHT)
parked: bool = wait_for(lambda: mount.state().parked, 60.0, "the mount to park", 0.5)
clock.wait(threading.Event(), 5.0)
planner.plan([Target("1", 23.1, 13.2, 5.0, 60.0)], clock.now())
planner.plan([], clock.now(), budget=600.0)
"""

WRONG = """\
mount.start_slew("01:32:24", 13.2)  # wrong: a sexagesimal string where degrees are expected
journal.transition("1", QUEUED, "planned", clock.now())  # wrong: a datetime, not ISO text
print(right_ascension("01:32:24").upper())  # wrong: the RA comes back as degrees, a float
connect(config, "dome", timeout="30")  # wrong: seconds are a number
Clock(speed="fast")  # wrong: a factor is a number
state: OrderState = journal.get("1").state  # wrong: get() may return None
camera.start_exposure(30.0, "LIGHT")  # wrong: a FrameType, not its name
parked: bool = wait_for(lambda: mount.state().ra, 60.0, "the mount to park", 0.5)  # wrong
clock.wait(5.0, threading.Event())  # wrong: the event first
planner.plan([Target("1", "01:32:24", 13.2, 5.0, 60.0)], clock.now())  # wrong: RA as text
planner.plan([], "2026-11-10T02:00:00Z", budget=600.0)  # wrong: now is a datetime
"""


def source(body):
    return HEADER + textwrap.indent(body, "    ")


def marked_lines(text):
    return {number for number, line in enumerate(text.splitlines(), 1) if "# wrong" in line}


def mypy_errors(paths, cache):
    """Run mypy with the project's configuration; its exit status and {file name: {lines}}."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "mypy.ini"),
         "--cache-dir", str(cache), "--no-error-summary", *map(str, paths)],
        cwd=REPO, capture_output=True, text=True, timeout=MYPY_TIMEOUT_S)
    errors = {}
    for match in re.finditer(r"^(.+?):(\d+): error:", result.stdout, re.MULTILINE):
        errors.setdefault(Path(match.group(1)).name, set()).add(int(match.group(2)))
    return result, errors


def test_mypy_refuses_wrong_calls_of_the_public_interfaces_and_accepts_right_ones(tmp_path):
    right, wrong = tmp_path / "right.py", tmp_path / "wrong.py"
    right.write_text(source(RIGHT))
    wrong.write_text(source(WRONG))
    result, errors = mypy_errors([right, wrong], tmp_path / "cache")
    report = result.stdout + result.stderr
    assert result.returncode == 1, report
    assert "right.py" not in errors, report
    assert errors["wrong.py"] == marked_lines(wrong.read_text()), report
