"""``toros backup DIR``: a consistent copy of each daemon's journal, safe while the daemons run.

::

    toros backup /backup                       # every daemon's journal
    toros backup /backup --service scheduler   # only some (a machine that runs only those)

Each journal is copied (:func:`torosmanager.backup.copy_journal`) into
``DIR/<service>-<UTC time>.sqlite3``.
"""

import os
import sys
from datetime import datetime, timezone

from ..backup import BackupError, copy_journal
from ..config import SERVICES, service_path
from ..console import EXIT_FAILED, EXIT_OK

#: The UTC time in the copies' names: sortable, and free of characters that file systems or
#: shells mind.
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def add_arguments(parser):
    """The arguments of ``toros backup``."""
    parser.add_argument("directory", metavar="DIR",
                        help="where the copies go (made if missing)")
    parser.add_argument("--service", choices=SERVICES, action="append",
                        help="back up only this daemon's journal (repeatable; default: "
                             "every daemon's)")


def run(config, arguments):
    """Copy the journals; print each copy written, or why one was not.

    Returns
    -------
    int
        0 when every journal asked for was copied; 1 otherwise.
    """
    try:
        os.makedirs(arguments.directory, exist_ok=True)
    except OSError as error:
        print(f"toros: cannot write to {arguments.directory}: {error.strerror}", file=sys.stderr)
        return EXIT_FAILED
    stamp = datetime.now(timezone.utc).strftime(STAMP_FORMAT)
    failed = False
    for service in arguments.service or SERVICES:
        journal = service_path(config["Database"]["File"], service)
        target = os.path.join(arguments.directory, f"{service}-{stamp}.sqlite3")
        try:
            size = copy_journal(journal, target)
        except BackupError as error:
            print(f"toros: the {service} journal: {error}", file=sys.stderr)
            failed = True
            continue
        print(f"wrote {target} ({size} bytes), a copy of {journal}")
    return EXIT_FAILED if failed else EXIT_OK
