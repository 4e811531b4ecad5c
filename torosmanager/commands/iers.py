"""``toros iers``: how old the Earth-rotation table is, and a way to refresh it.

::

    toros iers                      # the table's age and the pointing error it implies tonight
    toros iers --update             # the newest astropy-iers-data, with pip (needs a network)
    toros iers --update --dry-run   # only say what pip would install

The daemons read the table once, at start-up: restart them after an update.
"""

import subprocess
import sys

from packaging.version import InvalidVersion, Version

from ..clock import Clock
from ..console import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ..earth_rotation import IERS_DATA_PACKAGE, EarthRotationTable
from .service_manager import restart_command

#: Lines of pip's output quoted when it fails.
PIP_OUTPUT_LINES = 5
#: Seconds pip may take to upgrade the package.
PIP_TIMEOUT = 600


def add_arguments(parser):
    """The options of ``toros iers``."""
    parser.add_argument("--update", action="store_true",
                        help=f"upgrade {IERS_DATA_PACKAGE} (the table astropy uses) with pip; "
                             "needs a network, and write access to this installation")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --update: only say what pip would install")


def run(config, arguments):
    """Show the table's status at the configured clock's now, after an update if asked.

    Returns
    -------
    int
        0 when the status was shown (and the update, if asked, succeeded); 1 otherwise.
    """
    if arguments.dry_run and not arguments.update:
        print("toros: --dry-run goes with --update", file=sys.stderr)
        return EXIT_USAGE
    if arguments.update:
        if not _update(arguments.dry_run):
            return EXIT_FAILED
        if arguments.dry_run:
            return EXIT_OK
        # This process has the old table's module loaded: read the new one in a fresh process.
        return subprocess.call([sys.executable, "-m", "torosmanager.cli", "iers"]
                               + (["--config", arguments.config] if arguments.config else []))
    table = EarthRotationTable(with_table=False)
    table.load()
    try:
        status = table.status(Clock.from_config(config).now())
    except RuntimeError as error:
        print(f"toros: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(status.summary())
    print(f"Table: {status.source}")
    return EXIT_OK


def _update(dry_run):
    """Upgrade the table's package in this interpreter's environment; say what happened."""
    before = _installed_version()
    # pip install --upgrade keeps what is installed, and succeeds, when the index cannot be
    # reached: ask the index first, so that "no network" is said as such.
    newest = _pip(["index", "versions", IERS_DATA_PACKAGE], "reach the package index")
    if newest is None:
        return False
    newest = newest.split("(", 1)[-1].split(")", 1)[0] if "(" in newest else ""
    if not newest:
        print(f"toros: the package index did not say which {IERS_DATA_PACKAGE} is the newest",
              file=sys.stderr)
        return False
    order = _compare(newest, before)
    if order == 0:
        print(f"{IERS_DATA_PACKAGE} {before} is already the newest on the package index.")
        return True
    if order is not None and order < 0:
        # pip answers with what the index it reached holds: a stale mirror, or an extra index,
        # when the main one cannot be reached. Installing it would put an older table in.
        print(f"toros: the newest {IERS_DATA_PACKAGE} on the package index is {newest}, older "
              f"than the {before} installed (a stale mirror or extra index: `pip config list` "
              "shows which pip asks); nothing installed, the table is unchanged",
              file=sys.stderr)
        return False
    installed = _pip(["install", f"{IERS_DATA_PACKAGE}=={newest}"]
                     + (["--dry-run"] if dry_run else []), f"install {IERS_DATA_PACKAGE} {newest}")
    if installed is None:
        return False
    if dry_run:
        print(f"{IERS_DATA_PACKAGE} {before or '(not installed)'} → {newest} would be "
              f"installed:\n{installed}")
    else:
        print(f"{IERS_DATA_PACKAGE} {before or '(not installed)'} → {_installed_version()}. "
              f"Restart the daemons to use it ({restart_command()}).")
    return True


def _compare(offered, installed):
    """-1, 0 or 1 as the version *offered* is older than, the same as or newer than the one
    *installed* (:mod:`packaging`'s ordering, where '0.2024.10.7' comes after '0.2024.9.30');
    1 when none is installed; ``None`` when either cannot be read as a version (then pip
    decides)."""
    if not installed:
        return 1
    try:
        offered_version, installed_version = Version(offered), Version(installed)
    except InvalidVersion:
        return None
    return (offered_version > installed_version) - (offered_version < installed_version)


def _pip(arguments, what):
    """Run pip in this interpreter's environment; its output, or ``None`` (said why) on failure."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        print(f"toros: pip did not {what} within {PIP_TIMEOUT} s; the table is unchanged",
              file=sys.stderr)
        return None
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-PIP_OUTPUT_LINES:])
        print(f"toros: pip could not {what} (exit {result.returncode}; no network, or no write "
              f"access to {sys.prefix}?); the table is unchanged:\n{tail}", file=sys.stderr)
        return None
    return result.stdout.strip()


def _installed_version():
    # Asked of a fresh interpreter: this one has cached the metadata of before the upgrade.
    result = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; "
                             f"print(m.version({IERS_DATA_PACKAGE!r}))"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return result.stdout.strip() if result.returncode == 0 else ""
