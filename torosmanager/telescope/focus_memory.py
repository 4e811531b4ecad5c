"""The last focus run, kept across a restart of the telescope daemon.

An autofocus run's best position replaces the configured ``Best Position``
(:mod:`.autofocus`). A daemon remembering nothing of the process before it would, after a
restart in the night (an upgrade, a configuration change, a crash), go back to the configured
focus, which may be hundreds of steps off, and make another focus run at the next order. So
each run writes down its night, its temperature, what it found and the focus the model then
has, in one row of a table of the telescope's journal file; a new daemon reads it at its start
(:meth:`FocusMemory.recall`): the run counts as made, and its focus is the model's.

Unless the configured focus model changed meanwhile (its Best Position, Reference Temperature,
Temperature Coefficient or Filter Offsets): the configuration is then the operator's newer
word, and the row is forgotten, said in the log. Losing the row only ever costs a focus run:
it is written without waiting for the disk.
"""

import json
import logging
import sqlite3
from dataclasses import dataclass

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS focus_memory (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    configured TEXT NOT NULL,  -- the configured focus model then (JSON)
    night TEXT NOT NULL,       -- the local evening's date of the last run (YYYYMMDD)
    temperature REAL,          -- the focuser's temperature at the run, °C; NULL: none read
    outcome TEXT NOT NULL,     -- what the run found, as the health report says it
    best_position INTEGER,     -- the model's focus after it (from this run or an earlier
    reference REAL             --   one); NULL: no run found one since the daemon started
)
"""


@dataclass(frozen=True)
class LastRun:
    """The focus run remembered.

    Attributes
    ----------
    night : str
        The local evening's date (``YYYYMMDD``).
    temperature : float or None
        The focuser's temperature at the run, °C.
    outcome : str
        What it found, as the health report's ``Last Autofocus`` says it.
    best_position : int or None
        The focus model's Best Position after it (``None``: no run had found one).
    reference_temperature : float or None
        The model's Reference Temperature after it.
    """

    night: str
    temperature: float | None
    outcome: str
    best_position: int | None
    reference_temperature: float | None


class FocusMemory:
    """The last focus run, in table ``focus_memory`` of the SQLite file *path* (the
    telescope's journal), for the focus model *configured* (a
    :class:`~.focus.FocusModel` made from the configuration)."""

    def __init__(self, path, configured):
        self.path = path
        self._configured = json.dumps([configured.best_position,
                                       configured.reference_temperature,
                                       configured.coefficient,
                                       sorted(configured.filter_offsets.items())])
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # A row lost to a power cut only costs a focus run: no wait for the disk.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def remember(self, run):
        """Write down *run*, a :class:`LastRun`; when the file cannot take it (its disk full),
        say so in the log and go on: the order does not fail for it."""
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO focus_memory (only_row, configured, night, temperature, "
                "outcome, best_position, reference) VALUES (1, ?, ?, ?, ?, ?, ?)",
                (self._configured, run.night, run.temperature, run.outcome, run.best_position,
                 run.reference_temperature))
        except sqlite3.Error as error:
            log.warning("cannot write the focus run down in %s (%s): a restart of the telescope "
                        "daemon would start from the configured focus model", self.path, error)

    def recall(self):
        """The last run written down for this configuration, as a :class:`LastRun`; ``None``
        if there is none, the configured model changed since, or the row cannot be read (the
        last two said in the log)."""
        row = self._db.execute("SELECT configured, night, temperature, outcome, best_position, "
                               "reference FROM focus_memory").fetchone()
        if row is None:
            return None
        configured, *fields = row
        if configured != self._configured:
            log.info("the focus model in the configuration changed since the last focus run "
                     "(%s): the configured one is used until the next run", fields[2])
            return None
        try:
            run = LastRun(*fields)
            _check(run)
        except (TypeError, ValueError) as error:
            log.warning("%s: the last focus run cannot be read (%r: %s); the configured focus "
                        "model is used until the next run", self.path, fields, error)
            return None
        return run

    def close(self):
        self._db.close()


def _check(run):
    """Raise :class:`ValueError` unless *run*'s fields have their types (a row edited by hand
    or written by another version)."""
    numbers = (run.temperature, run.reference_temperature)
    if not (isinstance(run.night, str) and isinstance(run.outcome, str)
            and (run.best_position is None or isinstance(run.best_position, int))
            and all(value is None or isinstance(value, (int, float)) for value in numbers)):
        raise ValueError("a field is not of its type")
