"""Frames still being written: read again until they are whole, or stop changing.

A night's frames may be read while they arrive: copied from the camera's computer (``cp``,
``scp``, ``rsync --inplace``), or over a network file system. Such a file is empty, or its
header or pixels are cut short; over NFS a read may fail for a moment (EIO, ESTALE). Each is an
:class:`~.reading.IncompleteFrame`. Rather than skipping it for good, a job reads it again every
``Preprocessor → Incomplete File Check`` seconds, and skips it (saying so) once the file has not
changed for ``Preprocessor → Incomplete File Wait`` seconds: a copy that stopped. A file cut
short long ago (an archive's) is skipped at once: its last change is its file's time; one not
readable for now is waited for from the first reading, whatever its age.
"""

import logging
import os
import time

from .classify import classify, describe
from .reading import FrameError, IncompleteFrame, UnreadableForNow

log = logging.getLogger(__name__)


def classify_whole(paths, wait, interval, pause, report):
    """:func:`~.classify.classify` *paths*, having waited for the files still being written.

    Parameters
    ----------
    paths : list of str
        The FITS files of a job.
    wait : float
        Seconds after a file's last change beyond which it is not waited for; 0: none is.
    interval : float
        Seconds between two readings of the files waited for.
    pause : callable
        ``pause(seconds)``: returns after *seconds*, or raises when the job is stopped.
    report : callable
        ``report(text)``: what the job is doing, for its Status.

    Returns
    -------
    (list of Frame, list of (str, FrameError))
        As :func:`~.classify.classify` returns them, in the order of *paths*.
    """
    frames, unusable = classify(paths)
    errors = dict(unusable)
    waiting = _still_changing(unusable, wait)
    if waiting:
        log.info("waiting for %d file(s) still being written, or not readable yet, until "
                 "each is whole or has not changed for %g s (Preprocessor → Incomplete File "
                 "Wait): %s", len(waiting), wait, ", ".join(waiting))
    while waiting:
        report(f"waiting for {len(waiting)} file(s) still being written: "
               f"{next(iter(waiting))}")
        pause(interval)
        now = time.time()
        for path, (state, changed) in list(waiting.items()):
            try:
                frames.append(describe(path))
            except IncompleteFrame as error:
                errors[path] = error
                if (latest := _state(path)) != state:
                    waiting[path] = (latest, now)
                    continue
                if now - changed < wait:
                    continue
                errors[path] = IncompleteFrame(f"{error} (unchanged for {wait:g} s: "
                                               "Preprocessor → Incomplete File Wait)")
            except FrameError as error:  # whole now, and no frame
                errors[path] = error
            else:
                del errors[path]
                log.info("%s is whole now", path)
            del waiting[path]
    order = {path: index for index, path in enumerate(paths)}
    frames.sort(key=lambda frame: order[frame.path])
    return frames, [(path, errors[path]) for path in paths if path in errors]


def _still_changing(unusable, wait):
    """``{path: (state, time of its last change)}`` of the incomplete files of *unusable*
    changed less than *wait* seconds ago (:func:`_state`; the time as :func:`time.time`),
    and of those not readable for now, whatever their age (waited for from now)."""
    now = time.time()
    waiting = {}
    for path, error in unusable:
        if not isinstance(error, IncompleteFrame):
            continue
        state = _state(path)
        # A time of change ahead of this machine's clock (another computer's) counts as now.
        fresh = state is None or isinstance(error, UnreadableForNow)
        changed = now if fresh else min(state[1] / 1e9, now)
        if now - changed < wait:
            waiting[path] = (state, changed)
    return waiting


def _state(path):
    """``(size, time of last change in ns)`` of *path*'s file; ``None`` when it cannot be
    looked at."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns
