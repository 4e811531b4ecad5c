"""What every ``toros`` command shares for talking to a terminal: exit statuses, plain-text
tables, the wording of a daemon's failure to answer, and a whole-number argument.

A leaf: it imports nothing else of TOROS Manager, so the command modules, the demo and the
``toros`` parser can all use it without importing each other.
"""

import argparse
import xmlrpc.client

#: Exit statuses of ``toros``: everything asked for succeeded; a daemon refused or did not
#: answer (its message printed); a command that was interrupted (``toros calibrate``); an
#: unusable configuration file (sysexits' EX_CONFIG); a wrong command line (argparse's).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_CONFIG = 78
#: The columns of a receipt (``toros submit``, ``cancel``, ``status ID``, ``alert``).
RECEIPT_COLUMNS = ("ID", "WOType", "Status", "Priority", "Message")


def positive_whole_number(text):
    """An argument's value as a whole number of at least 1 (an :mod:`argparse` type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def table(rows, columns):
    """Format dicts as a plain-text table with the given columns."""
    cells = [[_cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(line[i]) for line in cells])
              for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths)).rstrip(),
             "  ".join("-" * width for width in widths)]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
              for line in cells]
    return "\n".join(lines)


def _cell(value):
    if value is None:
        return ""  # not set (an order without a Not Before), not the word None
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def reason(error):
    """Why a daemon did not answer, in a few words (*error*: an OSError or ProtocolError)."""
    if isinstance(error, xmlrpc.client.ProtocolError):
        return f"HTTP {error.errcode} {error.errmsg}"
    return getattr(error, "strerror", None) or str(error)


def queue_text(counts):
    """A daemon's queue (state → count) as ``2 queued, 1 running``, or ``empty``."""
    return ", ".join(f"{count} {state}" for state, count in sorted(counts.items())) or "empty"
