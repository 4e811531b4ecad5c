"""``toros passwd``: a salted hash of a password, for ``Server → Users``."""

import getpass
import sys

from ..console import EXIT_FAILED, EXIT_OK
from ..passwords import hash_password, padding_refused, password_of_line


def add_arguments(parser):
    """The arguments of ``toros passwd``."""
    parser.add_argument("--stdin", action="store_true",
                        help="read the password from standard input instead of asking twice")


def run(config, arguments):
    """``toros passwd``: print a hash of a password typed twice (or read from stdin)."""
    if arguments.stdin:
        password = password_of_line(sys.stdin.readline())
    else:
        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("The same again: ")
        except EOFError:  # Ctrl-D, or no terminal and stdin at its end
            print("\ntoros: no password typed (--stdin reads one from standard input); "
                  "nothing made", file=sys.stderr)
            return EXIT_FAILED
        if again != password:
            print("toros: the two passwords differ; nothing made", file=sys.stderr)
            return EXIT_FAILED
    if not password:
        print("toros: an empty password; nothing made", file=sys.stderr)
        return EXIT_FAILED
    refusal = padding_refused(password)
    if refusal is not None:
        print(f"toros: the password is not allowed: {refusal}; nothing made", file=sys.stderr)
        return EXIT_FAILED
    print(hash_password(password))
    return EXIT_OK
