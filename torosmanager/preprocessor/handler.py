"""The preprocessor daemon: checks Preprocessing orders, and calibrates their frames.

A ``File Location`` must exist and lie inside one of the configured
``Preprocessor → Allowed Directories``: the daemon writes its products next to the frames it
reads, so a client must not be able to point it anywhere on the disk. The check is made on the
resolved path (symbolic links and ``..`` followed), and the order keeps that resolved path, the
one checked: a link re-pointed after the check cannot move the job elsewhere. The job checks
it once more when it starts (:meth:`PreprocessorHandler.resolve`), for a directory replaced by
a link while the order waited. A directory must hold
FITS frames (in its ``raw/``, or in itself when it has none): an empty one is refused at
once, with the reason.

Accepted orders are queued and run by :class:`~.jobs.JobQueue`, one at a time, in a worker
thread; the front desk answers at once. An order that was running when the daemon stopped is
run again from the beginning at the next start (re-running a night is safe and gives the same
products), rather than marked failed.
"""

import dataclasses
import logging
import os

from ..disk_space import total_bytes
from ..handler import Handler
from ..journal import ACCEPTED, INTERRUPTED, QUEUED, RUNNING
from ..workorders import inside, refuse
from .jobs import JobQueue
from .pipeline import RAW_DIRECTORY, Settings
from .reading import is_fits_name

log = logging.getLogger(__name__)


class PreprocessorHandler(Handler):
    """Accept Preprocessing orders for files this daemon may read, and calibrate them."""

    service = "preprocessor"
    wotypes = ("Preprocessing",)

    def __init__(self, config, journal, clock):
        super().__init__(config, journal, clock)
        # Resolved once: the front desk compares every File Location with them, and each job
        # every frame and output directory (a link in a night may lead anywhere).
        self.settings = dataclasses.replace(Settings.from_config(config), confined_to=tuple(
            os.path.realpath(root) for root in config["Preprocessor"]["Allowed Directories"]))
        self.jobs = JobQueue(self)

    # --- the front desk's checks -------------------------------------------------------

    def check(self, order):
        location = order["File Location"]
        resolved = self.resolve(location)
        for path, real in zip(_as_list(location), _as_list(resolved)):
            if not os.path.exists(real):
                raise refuse("File Location", path, "an existing directory or FITS file; "
                                                    "nothing is there")
            if os.path.isdir(real) and not _holds_frames(real):
                raise refuse("File Location", path, "a directory with FITS frames (.fits, "
                                                    ".fit, .fts) in its raw/ or, without one, "
                                                    "in itself; this one has none")
        # Journaled as checked: the job uses this path, not one a link may re-point.
        order["File Location"] = resolved

    def resolve(self, location):
        """*location* with each path resolved (symbolic links and ``..`` followed), every one
        inside an allowed directory.

        Parameters
        ----------
        location : str or list of str
            A validated ``File Location``.

        Returns
        -------
        str or list of str
            The resolved path(s), in the same form: what was checked, to be used as is.

        Raises
        ------
        WorkOrderError
            Naming the path that resolves outside ``Preprocessor → Allowed Directories``.
        """
        resolved = []
        for path in _as_list(location):
            real = os.path.realpath(path)
            if not inside(real, self.settings.confined_to):
                raise refuse("File Location", path, "a path inside "
                             + " or ".join(self.settings.confined_to)
                             + " (Preprocessor → Allowed Directories)")
            resolved.append(real)
        return resolved if isinstance(location, list) else resolved[0]

    # --- work ---------------------------------------------------------------------------

    def queued_reason(self, order):
        return "queued for calibration"

    def accepted(self, record):
        self.jobs.enqueue(record)

    def cancelled(self, record, previous_state):
        self.jobs.cancel(record.id)

    def devices(self):
        return {"Calibration": self.jobs.describe()}

    # --- life cycle ---------------------------------------------------------------------

    def start(self):
        super().start()
        self._warn_if_no_disk_is_large_enough()
        self.jobs.start()

    def _warn_if_no_disk_is_large_enough(self):
        """Say so when Minimum Free Bytes is more than a data disk holds: every job there
        would wait for room for good."""
        minimum = self.settings.minimum_free_bytes
        for directory in self.settings.confined_to:
            try:
                total = total_bytes(directory)
            except OSError:  # each job says what is wrong with its own directories
                continue
            if minimum >= total:
                log.warning("Preprocessor → Minimum Free Bytes, %s, is as much as the disk of "
                            "%s holds in all (%s bytes): every job writing there would wait "
                            "for room for good; lower it", f"{minimum:,}", directory,
                            f"{total:,}")

    def resume(self, record):
        if record.state == RUNNING:
            self.transition(record.id, QUEUED, "the preprocessor daemon stopped while this "
                                               "order was running; queued again, to run from "
                                               "the beginning")
        elif record.state in (ACCEPTED, QUEUED, INTERRUPTED):
            self.transition(record.id, QUEUED, "queued after a restart")
        else:
            return
        self.jobs.enqueue(self.journal.get(record.id))

    def stop(self):
        super().stop()
        self.jobs.stop()


def _as_list(location):
    """A ``File Location``'s paths, as a list."""
    return location if isinstance(location, list) else [location]


def _holds_frames(directory):
    """Whether *directory*'s ``raw/``, or without one *directory* itself, has a FITS file
    (stops at the first one)."""
    raw = os.path.join(directory, RAW_DIRECTORY)
    with os.scandir(raw if os.path.isdir(raw) else directory) as entries:
        return any(is_fits_name(entry.name) and not entry.name.startswith(".")
                   and entry.is_file() for entry in entries)
