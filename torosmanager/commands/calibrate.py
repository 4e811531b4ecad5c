"""``toros calibrate NIGHT_DIR``: a night's calibration on this machine, without the daemon.

The same pipeline as a Preprocessing order
(:func:`torosmanager.preprocessor.pipeline.calibrate`), with the ``Preprocessor`` settings of
the configuration (options override a few), a progress bar on stderr, and a summary on
stdout::

    toros calibrate /var/lib/toros/data/20261121
    toros calibrate /data/20261121 --workers 2 --no-library
    toros calibrate /data/20261121 --executor tcp://10.0.0.5:8786    # on a Dask cluster
    toros calibrate /data/202611*                                     # night after night

Several nights are calibrated one after the other, each with its own calibration frames
(:func:`~torosmanager.preprocessor.pipeline.calibrate`).

Exit status: 0 when light frames were calibrated, or masters made from nights without any
(skipped files are listed), in every night given; 1 when nothing could be in a night (of
several: which, on stderr, after what the others made), 130 when interrupted.
"""

import argparse
import dataclasses
import logging
import os
import shutil
import sys
import time

from ..clock import Clock
from ..config import EXECUTOR_ALLOWED, SCHEMA, is_executor
from ..console import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, positive_whole_number
from ..preprocessor.executors import RunnerError, Stopped, make_runner

#: Characters of the progress bar itself.
BAR_WIDTH = 30
#: Least seconds between two redraws of the bar.
REDRAW_INTERVAL = 0.1


def add_arguments(parser):
    """Add ``calibrate``'s arguments to *parser* (an :class:`argparse.ArgumentParser`)."""
    parser.add_argument("locations", nargs="+", metavar="NIGHT_DIR",
                        help="a night directory (its raw/ is used when there is one), or FITS "
                             "files; products go to <night>/reduced/; several nights are "
                             "calibrated one after the other")
    parser.add_argument("--workers", type=workers, metavar="N",
                        help="worker processes (default: Preprocessor → Workers)")
    parser.add_argument("--executor", type=executor, metavar="ADDRESS",
                        help="'local', or a dask.distributed scheduler's address (default: "
                             "Preprocessor → Executor)")
    library = parser.add_mutually_exclusive_group()
    library.add_argument("--library", metavar="DIR",
                         help="master library (default: Preprocessor → Master Library)")
    library.add_argument("--no-library", action="store_true",
                         help="neither use nor fill a master library")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.epilog = (
        "The masters made are also kept in the master library (Preprocessor → Master Library, "
        f"{SCHEMA['Preprocessor']['Master Library'].default} by default) unless --library or "
        "--no-library says otherwise. Exit status: 0 done, 1 nothing could be calibrated in a "
        "night (the reason on stderr), 2 a wrong option, 130 interrupted.")


def workers(text):
    """``--workers``: what ``Preprocessor → Workers`` allows (an :mod:`argparse` type)."""
    value = positive_whole_number(text)
    setting = SCHEMA["Preprocessor"]["Workers"]
    if value > setting.maximum:
        raise argparse.ArgumentTypeError(f"{value} is not allowed; allowed: "
                                         f"{setting.allowed()}")
    return value


def executor(text):
    """``--executor``: what ``Preprocessor → Executor`` allows (an :mod:`argparse` type)."""
    if not is_executor(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: {EXECUTOR_ALLOWED}")
    return text


def run(config, arguments):
    """Run ``toros calibrate``; return the exit status."""
    # Here, not above: the pipeline brings astropy and ccdproc, which `toros` need not load
    # for its other commands.
    from ..preprocessor.pipeline import PreprocessingError, calibrate
    from ..preprocessor.room import NoRoom

    settings = _settings(config, arguments)
    location = arguments.locations if len(arguments.locations) > 1 else arguments.locations[0]
    bar = None if arguments.quiet else ProgressBar(sys.stderr)
    warnings = Warnings(bar)
    logging.getLogger().addHandler(warnings)
    runner = None
    try:
        try:
            nights = _nights_given(arguments.locations)
            runner = make_runner(settings)
            outcome = calibrate(location, settings, runner, progress=bar,
                                clock=Clock.from_config(config))
        finally:
            logging.getLogger().removeHandler(warnings)
            _finish(bar)  # end the bar's line before anything else is printed
            if runner is not None:
                runner.close()
    except (PreprocessingError, NoRoom, RunnerError, OSError) as error:
        print(f"toros calibrate: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (KeyboardInterrupt, Stopped):
        print("toros calibrate: interrupted; products already written are complete, the rest "
              "were not made (run it again: it is safe)", file=sys.stderr)
        return EXIT_INTERRUPTED
    _report(outcome)
    if not outcome.succeeded:
        print(f"toros calibrate: {outcome.failure()}", file=sys.stderr)
        return EXIT_FAILED
    barren = {night: why for night, why in nights.items()
              if why or not _made_something(night, outcome)}
    if len(nights) > 1 and barren:
        # What the other nights made is above; the exit status says that one was not done.
        print(f"toros calibrate: nothing could be calibrated in {len(barren)} of the "
              f"{len(nights)} nights given: "
              + "; ".join(f"{night} ({why or 'see skipped above'})"
                          for night, why in barren.items()), file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _nights_given(locations):
    """The nights *locations* name (as the pipeline groups its frames, :func:`by_night`), each
    with why it has nothing to calibrate (a directory without FITS files, a path that does not
    exist: a name mistyped), else ``""``."""
    from ..preprocessor.pipeline import RAW_DIRECTORY, by_night

    found = by_night(locations if len(locations) > 1 else locations[0])
    nights = dict.fromkeys(found, "")
    for path, why in next(iter(found.values()))[1]:  # the paths not read go with the first
        if os.path.isdir(path) or not os.path.exists(path):
            night = os.path.dirname(path) if os.path.basename(path) == RAW_DIRECTORY else path
            nights[os.path.abspath(night)] = why
    return nights


def _made_something(night, outcome):
    """Whether the job did in *night* what it was for (:attr:`Outcome.succeeded`, for one
    night of several): light frames calibrated or, when none was skipped there, masters
    made. Products and masters made go to ``<night>/reduced/``."""
    from ..preprocessor.pipeline import REDUCED_DIRECTORY

    def inside(path):
        return os.path.abspath(path).startswith(os.path.join(night, REDUCED_DIRECTORY) + os.sep)

    if any(inside(path) for path in outcome.products):
        return True
    skipped_light = any(os.path.abspath(line).startswith(night + os.sep)
                        for line in outcome.skipped_lights)
    return not skipped_light and any(inside(path) for path in outcome.masters.values())


class ProgressBar:
    """``[#########-----] 12/40 frames  calibrating ...`` on a terminal, redrawn in place; one
    line per new step elsewhere (a log file, a pipe)."""

    def __init__(self, stream):
        self.stream = stream
        self.terminal = stream.isatty()
        self._drawn = 0.0
        self._phase = None
        self._line = ""

    def __call__(self, step, done, total):
        if self.terminal:
            now = time.monotonic()
            if now - self._drawn < REDRAW_INTERVAL and step != "done":
                return
            self._drawn = now
            filled = BAR_WIDTH * done // total if total else 0
            columns = shutil.get_terminal_size().columns
            line = f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {done}/{total} frames  {step}"
            line = line[:max(columns - 1, BAR_WIDTH)]
            self.stream.write("\r" + line.ljust(len(self._line)))
            self._line = line
        else:
            phase = step.split(":", 1)[0]
            if phase == self._phase:
                return
            self._phase = phase
            self.stream.write(f"{done}/{total} frames  {step}\n")
        self.stream.flush()

    def say(self, text):
        """Write *text* on a line of its own, and the bar again below it."""
        if self.terminal and self._line:
            self.stream.write(f"\r{' ' * len(self._line)}\r{text}\n{self._line}")
        else:
            self.stream.write(f"{text}\n")
        self.stream.flush()

    def finish(self):
        """End the bar's line."""
        if self.terminal and self._line:
            self.stream.write("\n")
            self.stream.flush()
            self._line = ""


class Warnings(logging.Handler):
    """The job's warnings (a master in the library that cannot be read, ...) on stderr, each
    on a line of its own above the progress *bar* (or without one, ``None``). The files
    skipped are not said here: the summary lists them, each with its reason."""

    def __init__(self, bar):
        super().__init__(logging.WARNING)
        self.bar = bar
        from ..preprocessor.pipeline import skipped_log

        self.addFilter(lambda record: record.name != skipped_log.name)

    def emit(self, record):
        text = f"toros calibrate: {record.getMessage()}"
        if self.bar is None:
            print(text, file=sys.stderr, flush=True)
        else:
            self.bar.say(text)


def _finish(bar):
    if bar is not None:
        bar.finish()


def _report(outcome):
    print(outcome.summary())
    for label, path in outcome.masters.items():
        print(f"  master {label}: {path}")
    if outcome.skipped:
        print(f"skipped ({len(outcome.skipped)}):")
        for line in outcome.skipped:
            print(f"  {line}")
    if outcome.notes:
        print("notes:")
        for line in outcome.notes:
            print(f"  {line}")


def _settings(config, arguments):
    from ..preprocessor.pipeline import Settings

    settings = Settings.from_config(config)
    changes = {}
    if arguments.workers is not None:
        changes["workers"] = arguments.workers
    if arguments.executor is not None:
        changes["executor"] = arguments.executor
    if arguments.library is not None:
        changes["library"] = arguments.library
    if arguments.no_library:
        changes["library"] = None
    return dataclasses.replace(settings, **changes)
