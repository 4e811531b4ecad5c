"""Helpers for the install tests: run the Makefile, and stage one install per test run.

A staged install (`make install DESTDIR=<tmp>`) runs pip for most of a minute, so it is made
once and shared by tests/test_units.py, tests/test_systemd_container.py and tests/test_lock.py,
across the workers of `make test` too: the first worker that needs it makes it, the others wait
for it and read what it left. The tests only read it; one that installs again works on a copy.
"""
import fcntl
import json
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SERVICES = ("scheduler", "telescope", "dome", "preprocessor", "alerts")
PROGRAMS = tuple(f"toros-{service}" for service in SERVICES) + ("toros",)

# The final (not staged) paths the staged install is made for: the Makefile's defaults.
PREFIX = "/usr/local"
INSTALL_VENV = f"{PREFIX}/lib/toros-manager/venv"
CONFIG_FILE = "/etc/toros/toros.conf.yaml"
SYSTEMD_UNIT_DIR = "/etc/systemd/system"
STATE_DIR = "/var/lib/toros"
DATA_DIR = f"{STATE_DIR}/data"
LOG_DIR = "/var/log/toros"

# What the host must look like after a staged install, exactly as before it.
HOST_PATHS = (
    f"{PREFIX}/lib/toros-manager", f"{PREFIX}/bin/toros", "/etc/toros",
    f"{SYSTEMD_UNIT_DIR}/scheduler.service", STATE_DIR, LOG_DIR,
)

# The lock file of exact versions that the install, the package and the dev venv use.
LOCK = REPO / "requirements" / "install.txt"

# A cold install downloads astropy, numpy, scipy...; a warm one takes well under a minute.
INSTALL_TIMEOUT_S = 900

# The umask the staged install, the package and the container's install steps are made with:
# a hardened root's, under which files are readable by their owner only. What the install
# writes must not depend on it (the Makefile runs its steps with umask 022).
STRICT_UMASK = 0o077
# What the install keeps from everyone but root and the group toros, on purpose.
PRIVATE_PATHS = {CONFIG_FILE: 0o640, STATE_DIR: 0o750, DATA_DIR: 0o750, LOG_DIR: 0o750}

# Rendering or copying files.
QUICK_MAKE_TIMEOUT_S = 60


def make(*args, cwd=REPO, timeout=QUICK_MAKE_TIMEOUT_S, umask=-1):
    """Run `make -C cwd args...` and return the CompletedProcess (text output captured).

    *umask*, if given, is make's (-1: this process's).

    The variables of an outer `make test` (MAKEFLAGS carries its command-line variables)
    must not leak into these runs, so the make-related environment is dropped; and so is
    PYTHONDONTWRITEBYTECODE, which some machines set and a user's shell does not, so that the
    install's own Python runs write bytecode on import as they would for the user.
    """
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {key: value for key, value in os.environ.items()
           if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
                          "PYTHONDONTWRITEBYTECODE")}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(cwd), *args],
        capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
        umask=umask,
    )


def not_as_umask_022_makes_it(mode, is_dir):
    """Whether a file's or directory's *mode* differs from what umask 022 gives: others cannot
    read it (or enter the directory), or the group or others can write to it."""
    return bool(mode & 0o022) or ((mode & 0o005 != 0o005) if is_dir else not mode & 0o004)


def describe(result):
    """The command, exit status and output of a CompletedProcess, for assertion messages."""
    return (f"$ {' '.join(map(str, result.args))}\nexit {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")


def host_snapshot():
    """Which of the install's paths exist on this host, and whether a toros user exists."""
    try:
        pwd.getpwnam("toros")
        has_user = True
    except KeyError:
        has_user = False
    return {"toros user": has_user, **{path: os.path.lexists(path) for path in HOST_PATHS}}


@dataclass(frozen=True)
class StagedInstall:
    root: Path          # DESTDIR: the staged tree
    build: Path         # BUILD: where make rendered the units and plists
    install_log: str    # output of the first `make install`
    host_before: dict   # host_snapshot() taken just before it

    def path(self, final_path):
        """The staged location of a final absolute path such as /usr/local/bin/toros."""
        return self.root / str(final_path).lstrip("/")

    def install_args(self):
        """The make arguments that redo this staged install."""
        return ("install", f"DESTDIR={self.root}", f"PREFIX={PREFIX}", f"BUILD={self.build}")


_staged = {}


def staged_install(tmp_path_factory):
    """Stage `make install DESTDIR=<tmp> PREFIX=/usr/local` once per test run, with
    :data:`STRICT_UMASK`; fail with its output."""
    if "install" not in _staged:
        _staged["install"] = _shared_staged_install(tmp_path_factory)
    staged, failure = _staged["install"]
    if failure:
        pytest.fail("the staged install failed:\n" + failure)
    return staged


def _shared_staged_install(tmp_path_factory):
    """The run's staged install and, if it failed, its description: made by the first worker
    that asks (under a lock), read by the others from the outcome it wrote."""
    directory = _run_directory(tmp_path_factory) / "staged-install"
    directory.mkdir(exist_ok=True)
    staged = StagedInstall(directory / "root", directory / "build", "", {})
    outcome = directory / "outcome.json"
    with open(directory / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed, or when the worker dies
        if not outcome.exists():
            before = host_snapshot()
            result = make(*staged.install_args(), timeout=INSTALL_TIMEOUT_S,
                          umask=STRICT_UMASK)
            outcome.write_text(json.dumps({
                "install log": result.stdout + result.stderr, "host before": before,
                "failure": describe(result) if result.returncode != 0 else ""}))
        made = json.loads(outcome.read_text())
    return (StagedInstall(staged.root, staged.build, made["install log"], made["host before"]),
            made["failure"])


def _run_directory(tmp_path_factory):
    """The temporary directory of this test run, which every worker of pytest-xdist shares
    (each has a directory of its own inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def normalized(name):
    """A distribution's name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_pins():
    """{normalized name: (version, [sha256, ...])} of the lock file."""
    found = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        head = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        if head:
            found[normalized(head.group(1))] = (head.group(2),
                                                re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return found
