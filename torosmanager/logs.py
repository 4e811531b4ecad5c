"""Logging for the daemons: to the configured file (rotated by size) and to stderr.

stderr is what journald (systemd) and launchd capture; the file is for operators without them.
Where stderr goes to a plain file nobody rotates (launchd's ``StandardErrorPath``), the plists
set ``$TOROS_STDERR_LEVEL`` to ``WARNING``: stderr then keeps the warnings and errors only,
and the log file everything.
Every line about a work order carries ``[WO <ID>]``, so ``grep '\\[WO 42\\]'`` traces its life.
"""

import collections
import logging
import logging.handlers
import os
import sys
import time

from .printable import printable

FORMAT = "%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s"
#: Log lines kept in memory for the daemon's status page.
RECENT_LINES = 40
#: The environment variable naming the lowest level written to stderr (a level name, such as
#: ``WARNING``); the configured ``Log Level`` when it is not set.
STDERR_LEVEL_VARIABLE = "TOROS_STDERR_LEVEL"


class SharedFormatter(logging.Formatter):
    """Formats each record once for all the handlers that share it (the file, stderr, the
    status page): a daemon logs a line for every order it takes.

    Times are UTC, written as the work orders' are (ISO 8601, milliseconds, ``Z``): in the
    machine's own time zone an operator would have to convert one of the two to match a line
    with an order's ``Datetime``.
    """

    converter = staticmethod(time.gmtime)
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def format(self, record):
        line = getattr(record, "toros_line", None)
        if line is None:
            line = record.toros_line = printable(super().format(record))
        return line


class RecentLines(logging.Handler):
    """The last few formatted log lines, for the status page."""

    def __init__(self, capacity=RECENT_LINES):
        super().__init__()
        self.lines = collections.deque(maxlen=capacity)

    def emit(self, record):
        self.lines.append(self.format(record))

    def snapshot(self):
        """The lines, oldest first."""
        self.acquire()
        try:
            return list(self.lines)
        finally:
            self.release()


class Outage:
    """A daemon this one calls (or a check that keeps failing), said once when it stops
    answering and once when it answers again, not at every poll or tick in between.

    Parameters
    ----------
    logger : logging.Logger
    level : int, optional
        The level the failure is said at (default: a warning).
    """

    def __init__(self, logger, level=logging.WARNING):
        self._logger = logger
        self._level = level
        self._ongoing = False

    def failed(self, message, *args, exc_info=False):
        """A call failed: *message* at the outage's level if the calls before it succeeded
        (with the exception being handled, if *exc_info*)."""
        if not self._ongoing:
            self._logger.log(self._level, message, *args, exc_info=exc_info)
        self._ongoing = True

    @property
    def ongoing(self):
        """Whether the calls fail now (the last said so)."""
        return self._ongoing

    def answered(self, message, *args):
        """A call succeeded: *message* at INFO if the calls before it failed."""
        if self._ongoing:
            self._logger.info(message, *args)
        self._ongoing = False


class SaidOnChange:
    """A line that repeats (a periodic plan, workers started for each job): at INFO when what
    it reports differs from the last time it was logged, at DEBUG when it is the same.

    Parameters
    ----------
    logger : logging.Logger
    """

    def __init__(self, logger):
        self._logger = logger
        self._last = None

    def log(self, what, message, *args):
        """Log *message*, about *what* (any value compared with ``==``)."""
        same = self._last is not None and self._last == what
        self._logger.log(logging.DEBUG if same else logging.INFO, message, *args)
        self._last = what

    def forget(self):
        """Log the next line at INFO whatever it reports."""
        self._last = None


class ReopenableFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotated log file that can also be reopened (after an external logrotate).

    The file's size is counted as lines are written, where the stdlib asks the file for its
    position (a flush and two system calls) before every line: a daemon logs a line for
    every order it takes. The file itself is asked only when the count says the line would
    reach ``maxBytes``, so that a file truncated meanwhile (``copytruncate``) is not rotated
    early.
    """

    def _open(self):
        stream = super()._open()
        # Only a regular file is rotated (not /dev/null): asked once per opening, where the
        # stdlib asks the file system twice for every line a daemon logs.
        self._regular = os.path.isfile(self.baseFilename)
        self._size = stream.seek(0, os.SEEK_END) if self._regular else 0
        return stream

    def emit(self, record):
        super().emit(record)  # (rotated first if this line would pass maxBytes)
        self._size += len(self.format(record)) + 1

    def shouldRollover(self, record):
        if self.stream is None:  # (opened on first use: delay)
            self.stream = self._open()
        if not self._regular or self.maxBytes <= 0:
            return False
        length = len(self.format(record)) + 1
        if self._size + length < self.maxBytes:
            return False
        self._size = self.stream.seek(0, os.SEEK_END)  # truncated meanwhile, perhaps
        return self._size + length >= self.maxBytes

    def reopen(self):
        """Close the file and open it again under its name."""
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


def open_log_file(config, service):
    """The handler of *service*'s log file (``Logging → File``), its directory made if need be.

    Raises
    ------
    OSError
        When the file cannot be opened for writing.
    """
    settings = config["Logging"]
    path = settings["File"].replace("{service}", service)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return ReopenableFileHandler(path, maxBytes=settings["Max Bytes"],
                                 backupCount=settings["Backup Count"], encoding="utf-8")


def setup_logging(config, service):
    """Send the root logger's records to stderr and to *service*'s log file.

    Parameters
    ----------
    config : dict
        The loaded configuration (``Logging`` section).
    service : str
        Replaces ``{service}`` in ``Logging → File``.

    Returns
    -------
    (ReopenableFileHandler, RecentLines)
        The file handler, to reopen on SIGHUP, and the recent lines, for the status page.
    """
    settings = config["Logging"]
    file_handler = open_log_file(config, service)
    formatter = SharedFormatter(FORMAT)
    console = logging.StreamHandler(sys.stderr)
    recent = RecentLines()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in (file_handler, console, recent):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(settings["Log Level"])
    stderr_level = os.environ.get(STDERR_LEVEL_VARIABLE, "").strip().upper()
    if stderr_level:
        if isinstance(logging.getLevelName(stderr_level), int):
            console.setLevel(stderr_level)
        else:
            logging.getLogger(__name__).warning(
                "$%s: received %r; allowed: DEBUG, INFO, WARNING, ERROR or CRITICAL; stderr "
                "keeps every line logged", STDERR_LEVEL_VARIABLE, stderr_level)
    # FORMAT names neither the caller's file or line nor the thread or process name: not
    # looked up for every line (the stdlib's logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.captureWarnings(True)
    return file_handler, recent
