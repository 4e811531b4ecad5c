"""The ``toros`` program, and ``python -m torosmanager``: :func:`torosmanager.cli.main`.

The command's modules are imported inside :func:`main`, so that a Ctrl-C while they load (a
tenth of a second) ends the command as quietly as a Ctrl-C during its work: no traceback.
"""

import signal
import sys


def main():
    """Run the ``toros`` command line; return its exit status."""
    try:
        from .cli import main as run_command
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 128 + signal.SIGINT  # the shell's status for a command that Ctrl-C stopped
    return run_command()


if __name__ == "__main__":
    sys.exit(main())
