"""The ``toros`` command: submit work orders, follow them, see which daemons answer.

::

    toros submit orders.yaml          # one order or a list, YAML or JSON
    toros status 42                   # an order's state and history
    toros status                      # the scheduler's health (--to another daemon)
    toros cancel 42
    toros services                    # which daemons answer, where, their health
    toros plan                        # tonight's plan from the scheduler (--plot FILE.png)
    toros calibrate NIGHT_DIR         # calibrate a night offline, with a progress bar
    toros iers                        # the Earth-rotation table's age (--update: a newer one)
    toros orientation SOLVED.fits     # the camera's Pixel Scale and Position Angle, for the
                                      # frames' WCS
    toros passwd                      # a password hash for Server → Users
    toros backup DIR                  # a copy of each daemon's journal, safe while they run
    toros alert FILE                  # hand an alert to the alerts daemon (--dry-run: see what
                                      # it would submit, here)
    toros alerts [EVENT]              # the latest events the alerts daemon has read (--limit N,
                                      # --all), or one event's report
    toros demo                        # the five daemons on this machine, with the manual's orders

Exit status: 0 when everything asked for succeeded, 1 when a daemon refused or did not answer
(its message is printed), 2 for a wrong command line, 78 for an unusable configuration file.

This module only parses the command line and dispatches: each command is a module of
:mod:`torosmanager.commands`, and what they print with, :mod:`torosmanager.console`.
"""

import argparse
import io
import os
import sys

from . import __version__
from .commands import (alerts, backup, calibrate, cancel, demo, iers, orientation, passwd,
                       plan, services, status, submit)
from .config import (DEFAULT_PATH, ENVIRONMENT_VARIABLE, ConfigError, default_config,
                     load_config)
from .console import EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from .earth_rotation import use_astropy_offline

#: What a subcommand may need before it runs: astropy set up offline; no configuration (its
#: ``run`` gets ``None``).
USES_ASTROPY = "uses astropy"
WITHOUT_CONFIG = "without configuration"
#: ``--config`` of a command that reads no configuration (the demo makes its own).
UNREAD_CONFIG_HELP = "not read: this command reads no configuration file"
#: The subcommands, in the order of ``toros --help``: name, help, the functions of its module
#: in :mod:`torosmanager.commands` that add its arguments and run it, and what it needs.
COMMANDS = (
    ("submit", "submit work orders from a YAML or JSON file", submit.add_arguments, submit.run,
     ()),
    ("status", "an order's state and history, or a daemon's health", status.add_arguments,
     status.run, ()),
    ("cancel", "cancel an order", cancel.add_arguments, cancel.run, ()),
    ("services", "which daemons answer, and their health", services.add_arguments,
     services.run, ()),
    ("plan", "tonight's plan from the scheduler (--plot: an altitude chart)",
     plan.add_arguments, plan.run, (USES_ASTROPY,)),
    ("calibrate", "calibrate a night of raw frames here, offline, with a progress bar",
     calibrate.add_arguments, calibrate.run, (USES_ASTROPY,)),
    ("iers", "how old the Earth-rotation table is, and the pointing error that implies "
             "(--update: a newer one)", iers.add_arguments, iers.run, (USES_ASTROPY,)),
    ("orientation", "the camera's Pixel Scale, Position Angle and Mirrored, from a frame a "
                    "tool has solved (astrometry.net's solve-field)", orientation.add_arguments,
     orientation.run, (WITHOUT_CONFIG, USES_ASTROPY)),
    ("passwd", "make a salted hash of a password, for Server → Users", passwd.add_arguments,
     passwd.run, (WITHOUT_CONFIG,)),
    ("backup", "copy each daemon's journal into DIR with a time-stamped name, safely while "
               "they run", backup.add_arguments, backup.run, ()),
    ("alert", "hand an alert file to the alerts daemon (--dry-run: the orders it would make)",
     alerts.add_alert_arguments, alerts.run_alert, (USES_ASTROPY,)),
    ("alerts", "the events the alerts daemon has read, or one event's report",
     alerts.add_events_arguments, alerts.run_events, ()),
    # The demo makes its own configuration: --config is not read.
    ("demo", "a whole simulated night with the five daemons, here, in a few minutes",
     demo.add_arguments, demo.run, (WITHOUT_CONFIG,)),
)


def main(argv=None):
    """Run the ``toros`` command; return its exit status."""
    try:
        return _run(argv)
    except KeyboardInterrupt:  # Ctrl-C, whenever it comes: no traceback
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # What it printed to was closed (`toros alerts | head`). As the signal module's
        # documentation advises, stdout goes to /dev/null, lest Python's flush at exit fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


def _run(argv):
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A file name that is no UTF-8 (a frame copied from a Latin-1 computer) is printed as
        # the bytes it is, as Python does under the C locale, not raised on after the work.
        sys.stdout.reconfigure(errors="surrogateescape")
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if arguments.uses_astropy:
        # Imported only by the commands that need it (it takes a third of a second).
        use_astropy_offline()
    config = None
    if arguments.needs_config:
        try:
            config = _load(arguments.config)
        except ConfigError as error:
            print(f"toros: {error}", file=sys.stderr)
            return EXIT_CONFIG
        if arguments.config is not None:
            # The file this command read, as messages name it (resolve_path): as the daemons do.
            os.environ[ENVIRONMENT_VARIABLE] = arguments.config
    return arguments.action(config, arguments)


def _parser():
    parser = argparse.ArgumentParser(prog="toros", description="Talk to the TOROS Manager daemons.")
    config_help = (f"configuration file (default: ${ENVIRONMENT_VARIABLE}, else {DEFAULT_PATH}, "
                   "else built-in defaults)")
    parser.add_argument("--config", metavar="PATH", help=config_help)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text, add_arguments, run, needs in COMMANDS:
        command = commands.add_parser(name, help=help_text)
        # After the command too (toros backup DIR --config FILE); not given, the one before it
        # stands (SUPPRESS: no default of its own). Taken by the commands that read none too,
        # so that a script that names it everywhere still works, but said to be unread.
        command.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                             help=config_help if WITHOUT_CONFIG not in needs
                             else UNREAD_CONFIG_HELP)
        add_arguments(command)
        command.set_defaults(action=run, uses_astropy=USES_ASTROPY in needs,
                             needs_config=WITHOUT_CONFIG not in needs)
    return parser


def _load(path):
    """The configuration; built-in defaults when none was named and the default file is absent."""
    if path is None and ENVIRONMENT_VARIABLE not in os.environ and not os.path.exists(
            DEFAULT_PATH):
        return default_config()
    try:
        return load_config(path)
    except ConfigError as error:
        if "Permission denied" in str(error):
            raise ConfigError(f"{error} (it may hold passwords: run as root or as a member of the "
                              "toros group, or name another file with --config)") from None
        raise


if __name__ == "__main__":
    sys.exit(main())
