"""The master library: masters kept from earlier nights, for nights that lack their own.

Layout, under ``Preprocessor → Master Library``::

    bias/<geometry>/<night>_<digest>.fits
    dark/<geometry>/<exptime>s/<night>_<digest>.fits
    flat/<geometry>/<filter>/<night>_<digest>.fits

where ``<geometry>`` is the raw frames' ``<width>x<height>_<xbin>x<ybin>``. After a night's
masters are made they are copied here. A night without its own master of a kind uses the
library's *newest* matching one (same raw geometry and trimmed size; same filter for a flat)
taken on or before that night, or, for a night older than every master, the oldest after it:
re-running an old night then keeps using the same masters as more nights are added. A job
links each library master it uses into its night's ``reduced/masters/library/``
(:meth:`MasterLibrary.pinned`) and reads it there: another job, keeping a master of its own
night, may remove one from the library meanwhile.

Every job looks at all the library's masters of its geometry: after a year of nights, a
thousand files or more. Their headers are read once and kept while the files are unchanged
(:func:`_described`), so that a job pays a ``stat`` per master (a header costs 0.5 ms: 0.5 s a
job for 365 nights of a bias, a dark and a flat, docs/benchmarks.md), and the daemon's log says
once that a file is unusable, not at every job.
"""

import dataclasses
import logging
import os
import shutil
import stat
import threading

from ..disk_sync import flush_to_disk, sync_directory
from .classify import Kind, same_exptime
from .masters import master_from_file, master_inputs, safe_name
from .reading import FrameError
from .writing import remove_orphans, temporary_name

log = logging.getLogger(__name__)


class MasterLibrary:
    """The masters kept under *root* (created when the first master is stored)."""

    def __init__(self, root):
        self.root = root

    def store(self, master, present=frozenset()):
        """Copy *master* (a :class:`~.masters.Master`) into the library; return the names of
        the earlier masters it replaces there.

        It replaces a master of the same night and set-up made from some of the same frames
        whose other frames are none of *present* (the names of the files in the frames'
        directories now, as masters name their inputs): an earlier run of the night before a
        bad frame was removed, or before more were added. Kept, it would go on being given
        to later nights, as the master of most frames. A master of other frames of the night
        (another observation's), or of frames that are all still there, is kept.

        Raises
        ------
        OSError
            When the library cannot be written.
        """
        directory = self._directory(master.kind, master.geometry, master.exptime, master.filter)
        digest = os.path.splitext(master.name)[0].rsplit("_", 1)[-1]
        path = os.path.join(directory, f"{master.night}_{digest}.fits")
        # A copy: the library's master is its own, whatever becomes of the night's.
        _link_or_copy(master.path, path, link=False)
        replaced = self._replace_earlier(directory, path, master.night, present)
        sync_directory(directory)
        return replaced

    def _replace_earlier(self, directory, path, night, present):
        """Remove the masters :meth:`store` replaces with the one at *path*; their names."""
        inputs = master_inputs(path)
        replaced = []
        for name in _listdir(directory):
            earlier = os.path.join(directory, name)
            if (earlier == path or not name.startswith(f"{night}_")
                    or not name.endswith(".fits")):
                continue
            try:
                theirs = master_inputs(earlier)
            except FrameError as error:
                log.warning("the master library's %s cannot be read: %s", earlier, error)
                continue
            if theirs & inputs and not (theirs - inputs) & present:
                os.unlink(earlier)
                replaced.append(name)
        return replaced

    def pinned(self, master, directory):
        """*master*, one of the library's, as a file of the job that uses it: a hard link to it
        in *directory* (the night's), under its name. Another job storing a master may remove
        the library's file at any moment (:meth:`store`); the job goes on reading its own.

        Where no link can be made (the library on another file system), a copy, with the
        library file's modification time. One already in *directory* is kept while it is the
        library's file (or a copy of its size and time): a master made again under the same
        name (its inputs') by a later run, or another version of this software, is linked anew.

        Raises
        ------
        FileNotFoundError
            When the library's file has been removed since it was found.
        OSError
            When *directory* cannot be written.
        """
        path = os.path.join(directory, master.name)
        with _pinning:
            library = os.stat(master.path)
            if not _same_file(path, library):
                _link_or_copy(master.path, path)
                _still_known(master.path, library)
        return dataclasses.replace(master, path=path, library_file=master.path)

    def find(self, kind, geometry, shape, night, filter_name=""):
        """The library's master of *kind* for *geometry* and trimmed *shape* (and the filter,
        for a flat) to use on *night*, or ``None``."""
        if kind == Kind.DARK:
            raise ValueError("darks are chosen by exposure time: use darks()")
        directory = self._directory(kind, geometry, 0.0, filter_name)
        chosen = _by_night(self._masters(directory, kind, geometry, shape, filter_name), night)
        return chosen

    def darks(self, geometry, shape, night):
        """The library's darks for *geometry* and *shape*: the one to use on *night* for each
        exposure time."""
        base = os.path.join(self.root, Kind.DARK.value, geometry.tag)
        found = []
        for entry in _listdir(base):
            masters = self._masters(os.path.join(base, entry), Kind.DARK, geometry, shape)
            chosen = _by_night(masters, night)
            if chosen is not None and not any(same_exptime(chosen.exptime, other.exptime)
                                              for other in found):
                found.append(chosen)
        return found

    def _directory(self, kind, geometry, exptime, filter_name):
        parts = [self.root, kind.value, geometry.tag]
        if kind == Kind.DARK:
            parts.append(f"{exptime:g}s")
        elif kind == Kind.FLAT:
            parts.append(safe_name(filter_name))
        return os.path.join(*parts)

    def _masters(self, directory, kind, geometry, shape, filter_name=None):
        return [master for master in _described(directory)
                if master.kind == kind and master.geometry == geometry
                and tuple(master.shape) == tuple(shape)
                and (filter_name is None or master.filter == filter_name)]


#: For each library directory looked at, what its files were when last listed: each name's
#: identity (:func:`_identity`) and its master, ``None`` for a file that is not one. Files no
#: longer there are dropped at the next listing.
_known: dict = {}
_known_lock = threading.Lock()  # calibrate() may run in several threads of a program
#: Held while a master is pinned: a job and the preparation of the next one, in two threads
#: of the daemon, may pin the same master (under the same temporary name).
_pinning = threading.Lock()


def _described(directory):
    """The masters in *directory*, a file's header read again only when the file changed."""
    with _known_lock:
        before = _known.get(directory, {})
    now = {}
    for name in _listdir(directory):
        if not name.endswith(".fits") or name.startswith("."):
            continue
        path = os.path.join(directory, name)
        try:
            status = os.stat(path)
        except FileNotFoundError:  # removed since listed
            continue
        except OSError as error:  # not kept: said again at the next job, until it is fixed
            log.warning("the master library's %s cannot be read: %s", path, error)
            continue
        identity = _identity(status)
        known = before.get(name)
        if known is None or known[0] != identity:
            known = (identity, _describe(path, status))
        now[name] = known
    with _known_lock:
        _known[directory] = now
    return [master for _, master in now.values() if master is not None]


def _still_known(path, before):
    """Keep what is known of the master in *path* (of *before*, ``os.stat``) now that a link
    to it changed its change time, and nothing else: its header is not read again."""
    after = os.stat(path)
    if (after.st_ino, after.st_size, after.st_mtime_ns) != (before.st_ino, before.st_size,
                                                             before.st_mtime_ns):
        return  # replaced meanwhile: read at the next listing
    directory, name = os.path.split(path)
    with _known_lock:
        known = _known.get(directory, {}).get(name)
        if known is not None and known[0] == _identity(before):
            _known[directory][name] = (_identity(after), known[1])


def _identity(status):
    """What changes when a file of *status* (``os.stat``) is rewritten or replaced: its
    inode, size, and times (the change time too, which a copy keeping the modification time
    cannot set back)."""
    return status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


def _describe(path, status):
    """The master in *path* (of *status*), or ``None`` (logged) when the file is not one of
    ours or cannot be read: one bad file must not stop every job that looks at its
    directory."""
    if not stat.S_ISREG(status.st_mode):  # opening a FIFO would wait for a writer
        log.warning("the master library's %s is not usable: not a regular file", path)
        return None
    try:
        return master_from_file(path, "library")
    except (FrameError, ValueError, KeyError) as error:
        log.warning("the master library's %s is not usable: %s", path, error)
        return None


def _same_file(path, status):
    """Whether *path* is the file of *status* (``os.stat``), or a copy of its size and
    modification time."""
    try:
        pinned = os.stat(path)
    except FileNotFoundError:
        return False
    return ((pinned.st_dev, pinned.st_ino) == (status.st_dev, status.st_ino)
            or (pinned.st_size, pinned.st_mtime_ns) == (status.st_size, status.st_mtime_ns))


def _link_or_copy(source, path, link=True):
    """Make *path* a hard link to *source* (if *link*), else a copy of it (its modification
    time too) flushed to the disk; whole or not at all."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    remove_orphans(directory)
    temporary = temporary_name(path)
    if os.path.lexists(temporary):  # left by an earlier process of this PID: not written into
        os.unlink(temporary)
    try:
        if not (link and _linked(source, temporary)):
            shutil.copyfile(source, temporary)
            shutil.copystat(source, temporary)
            with open(temporary, "rb+") as stream:
                flush_to_disk(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise


def _linked(source, path):
    """Whether *path* could be made a hard link to *source* (``FileNotFoundError`` when
    *source* is gone)."""
    try:
        os.link(source, path)
    except FileNotFoundError:
        raise
    except OSError:  # another file system (EXDEV), or one without links
        return False
    return True


def _by_night(masters, night):
    """The newest of *masters* from *night* or before, else the oldest after it."""
    if not masters:
        return None
    # Among masters of one night, the one of most frames, then by name (deterministic).
    ordered = sorted(masters, key=lambda master: (master.night, master.ncombine, master.path))
    before = [master for master in ordered if master.night <= night]
    if before:
        return before[-1]
    return min(ordered, key=lambda master: (master.night, -master.ncombine, master.path))


def _listdir(directory):
    try:
        return sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
