"""``toros cancel ID``: cancel an order, in the name of the user who runs the command."""

import getpass

from ..console import EXIT_FAILED, EXIT_OK, RECEIPT_COLUMNS, table
from .front_desk import ask
from .status import add_daemon_argument


def add_arguments(parser):
    """The arguments of ``toros cancel``."""
    parser.add_argument("id", metavar="ID")
    add_daemon_argument(parser)


def run(config, arguments):
    """``toros cancel ID``."""
    # Named in the order's history ("cancelled by ..."), not "unknown".
    answer = ask(config, arguments.to, {"WOType": "Cancel", "ID": arguments.id,
                                        "User": getpass.getuser()})
    if answer is None:
        return EXIT_FAILED
    print(table([answer], RECEIPT_COLUMNS))
    return EXIT_OK
