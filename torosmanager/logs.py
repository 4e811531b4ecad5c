"""Logging for the daemons: to the configured file (rotated by size) and to stderr.

stderr is what journald (systemd) and launchd capture; the file is for operators without them.
Every line about a work order carries ``[WO <ID>]``, so ``grep '\\[WO 42\\]'`` traces its life.
"""

import logging
import logging.handlers
import os
import sys

FORMAT = "%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s"


class ReopenableFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotated log file that can also be reopened (after an external logrotate)."""

    def reopen(self):
        """Close the file and open it again under its name."""
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


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
    ReopenableFileHandler
        The file handler, to reopen on SIGHUP.
    """
    settings = config["Logging"]
    path = settings["File"].replace("{service}", service)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    formatter = logging.Formatter(FORMAT)
    file_handler = ReopenableFileHandler(path, maxBytes=settings["Max Bytes"],
                                         backupCount=settings["Backup Count"], encoding="utf-8")
    console = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in (file_handler, console):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(settings["Log Level"])
    logging.captureWarnings(True)
    return file_handler
