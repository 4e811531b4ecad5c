"""``toros backup DIR``: a consistent copy of each daemon's journal, safe while the daemons run.

::

    toros backup /backup                       # every daemon's journal
    toros backup /backup --service scheduler   # only some (a machine that runs only those)

Each journal is copied (:func:`torosmanager.backup.copy_journal`) into
``DIR/<service>-<UTC time to the millisecond>.sqlite3``.
"""

import os
import sys
from datetime import datetime, timedelta, timezone

from ..backup import BackupError, copy_journal
from ..config import SERVICES, service_path
from ..console import EXIT_FAILED, EXIT_OK

#: The UTC time in the copies' names, to the millisecond (:func:`stamp`): sortable, and free
#: of characters that file systems or shells mind.
STAMP_FORMAT = "%Y%m%dT%H%M%S"
#: The smallest step between two names: a name is a millisecond later than the one taken.
NAME_STEP = timedelta(milliseconds=1)
#: Names tried for one copy, each a millisecond on from the last, when others are taken by
#: backups running at the same moment.
NAMES_TRIED = 1000


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
    directory = arguments.directory
    try:
        os.makedirs(directory, exist_ok=True)
    except FileExistsError:  # a file (or a link to one) by that name
        print(f"toros: cannot write to {directory}: it is not a directory (a file of that name "
              "exists); name a directory, or one to be made", file=sys.stderr)
        return EXIT_FAILED
    except OSError as error:
        print(f"toros: cannot write to {directory}: {error.strerror}", file=sys.stderr)
        return EXIT_FAILED
    started = datetime.now(timezone.utc)
    failed = False
    # A service named twice is copied once.
    for service in dict.fromkeys(arguments.service or SERVICES):
        journal = service_path(config["Database"]["File"], service)
        try:
            target, size = copy_journal(journal, names(directory, service, started))
        except BackupError as error:
            print(f"toros: the {service} journal: {error}", file=sys.stderr)
            failed = True
            continue
        print(f"wrote {target} ({size} bytes), a copy of {journal}")
    return EXIT_FAILED if failed else EXIT_OK


def stamp(moment):
    """*moment* (UTC) as in the copies' names: ``20261121T031204.250Z``."""
    return f"{moment.strftime(STAMP_FORMAT)}.{moment.microsecond // 1000:03d}Z"


def names(directory, service, started):
    """The names a copy of *service*'s journal may take, in turn: stamped with *started*
    (the copy holds every order acknowledged before it), then, if another backup running at
    the same moment took it, with the time now, each a millisecond later than the last."""
    moment = started
    for _ in range(NAMES_TRIED):
        yield os.path.join(directory, f"{service}-{stamp(moment)}.sqlite3")
        moment = max(datetime.now(timezone.utc), moment + NAME_STEP)
