"""Calibration terms kept in shared memory from one job to the next.

The telescope hands each observation's frames to the preprocessor as a job of its own, and the
observations of a night mostly share their masters, exposure time and gain, so their frames
need the same terms ``O`` and ``S`` (:mod:`.calibrate`). Making them reads three masters and
writes two full frames: for a job of ten 2048² frames, a third of its time
(docs/benchmarks.md). A :class:`TermsStore` gives each group of frames the place of its terms
in shared memory (:meth:`TermsStore.place`), and afterwards keeps those that were completed
(:meth:`TermsStore.release`), within ``Preprocessor → Kept Terms`` megabytes, letting the
least recently used go first; the next job with the same masters, exposure time and gain maps
them instead of making them again. A master rewritten since (another size or modification
time) gives a new key, so terms are never used with masters other than their own.
"""

import collections
import itertools
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np

from .calibrate import (BAND_DONE, BANDS_SUFFIX, SHARED_MEMORY, band_count, remove_terms,
                        share_terms)
from .writing import process_alive

log = logging.getLogger(__name__)

#: A store's directory: the process that owns it is in its name, so that the directory of a
#: process that is gone (a daemon killed) can be told and deleted.
_DIRECTORY = re.compile(r"^toros-calibration-(\d+)-")


@dataclass(frozen=True)
class _Kept:
    prefix: str
    size: int      # bytes of shared memory the two terms hold
    bands: int


class TermsStore:
    """The places of a process's calibration terms in shared memory, and those kept.

    Parameters
    ----------
    budget : int
        Bytes of terms kept once their job is over; 0 keeps none (each group's terms are
        deleted as soon as its frames are done).
    directory : str
        Where the store's private directory is made (Linux's shared memory).
    """

    def __init__(self, budget, directory=SHARED_MEMORY):
        self.budget = budget
        self._parent = directory
        self._directory = None
        self._kept = collections.OrderedDict()  # key -> _Kept, least recently used first
        self._numbers = itertools.count()

    def place(self, key, task, bzero):
        """The prefix of the terms of *task*'s group (*key* names the group, with its masters'
        identities): kept ones, complete, or new empty files that the workers fill (see
        :func:`~.calibrate.share_terms`). Hand it back with :meth:`release` once the
        group's frames are done.

        Raises
        ------
        OSError
            When there is no shared memory to put them in (each worker then computes its own).
        """
        kept = self._kept.pop(key, None)
        if kept is not None:
            if _complete(kept):
                log.info("calibration terms of %s kept from an earlier job or prepared "
                         "ahead: not made again", task.path)
                return kept.prefix
            remove_terms(kept.prefix)
        if self._directory is None:
            _remove_orphans(self._parent)
            self._directory = tempfile.mkdtemp(prefix=f"toros-calibration-{os.getpid()}-",
                                               dir=self._parent)
        prefix = os.path.join(self._directory, f"terms{next(self._numbers)}")
        try:
            return share_terms(task, bzero, prefix)
        except OSError:
            remove_terms(prefix)
            raise

    def release(self, key, prefix, shape):
        """The group *key*'s frames are done: keep its terms at *prefix* (of frames of
        *shape*) if every band was made and the budget allows, else delete them. The least
        recently used are deleted to make room."""
        kept = _Kept(prefix, terms_bytes(shape), band_count(shape))
        if kept.size > self.budget or not _complete(kept):
            remove_terms(prefix)
            return
        self._kept[key] = kept
        while sum(each.size for each in self._kept.values()) > self.budget:
            _, oldest = self._kept.popitem(last=False)
            remove_terms(oldest.prefix)

    def keeps(self, shape):
        """Whether the terms of frames of *shape* fit in the budget, to be kept."""
        return terms_bytes(shape) <= self.budget

    def describe(self):
        """For the health report: the sets of terms kept, the megabytes they hold, and the
        budget."""
        kept = list(self._kept.values())  # at once: the job thread changes them meanwhile
        held = sum(each.size for each in kept)
        return {"Sets": len(kept), "Megabytes": round(held / 2 ** 20, 1),
                "Budget Megabytes": round(self.budget / 2 ** 20, 1)}

    def close(self):
        """Delete every term kept, and the store's directory."""
        self._kept.clear()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None


def terms_bytes(shape):
    """Bytes of shared memory the two terms of frames of *shape* (rows, columns) hold."""
    return 2 * shape[0] * shape[1] * np.dtype(np.float32).itemsize


def _remove_orphans(parent):
    """Delete the stores' directories in *parent* whose process is gone."""
    for name in os.listdir(parent):
        match = _DIRECTORY.match(name)
        if match and not process_alive(int(match.group(1))):
            log.info("deleting %s, left in shared memory by a process that is gone", name)
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _complete(kept):
    """Whether every band of the terms at *kept* was made (a job stopped midway leaves some
    not made, or claimed by a worker that is gone)."""
    try:
        with open(kept.prefix + BANDS_SUFFIX, "rb") as stream:
            marks = stream.read()
    except OSError:
        return False
    return len(marks) == kept.bands and all(mark == BAND_DONE for mark in marks)
