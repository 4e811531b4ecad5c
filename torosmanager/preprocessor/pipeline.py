"""A night's calibration, from raw frames to products, with progress: the daemon's job and the
``toros calibrate`` command both run :func:`calibrate`.

Steps
-----
1. Find the frames: a night directory (its ``raw/`` subdirectory when there is one), a FITS
   file, or a list of files; products go to ``<night>/reduced/``, where ``<night>`` is the
   parent of ``raw/`` (or the frames' own directory), masters to ``<night>/reduced/masters/``.
2. Read every header and classify (:mod:`.classify`), having waited for the files still being
   written (:mod:`.incomplete`); unreadable files and unknown types are skipped with the
   reason, the rest goes on.
3. Per detector geometry: the master bias, a master dark per exposure time, a master flat per
   filter (:mod:`.masters`), each combined by the workers in blocks of rows. A geometry without
   its own master of a kind takes the master library's (:mod:`.library`), said in the headers
   and the notes; the night's masters are copied to the library.
4. Each science frame is calibrated by a worker (:mod:`.calibrate`). A frame without a bias
   is skipped; one without a dark or a flat is calibrated without it, said in its header and
   the notes. Raw files are only ever read. The products are flushed to the disk before the
   job ends.

Re-running a night rewrites the same products (the same names, the same pixels).
"""

import dataclasses
import logging
import os
import re
import tempfile
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from .. import __version__
from ..clock import Clock
from ..fits_text import fits_text
from ..workorders import inside, local_path
from .calibrate import (SHARED_MEMORY, ScienceTask, SharedTerms, folded_bzero, task_calibrate,
                        terms_key, writes_direct)
from .classify import Kind, classify, same_exptime
from .executors import LOCAL, Stopped
from .incomplete import classify_whole
from .layout import Layout, LayoutError
from .library import MasterLibrary
from .masters import (LEVEL_SAMPLE_PIXELS, Master, StackSpec, master_digest, master_header,
                      master_name, normalise_flat, stack_rows, task_combine_rows,
                      task_flat_level, write_master)
from .reading import FrameError, compressed_fits, is_fits_name
from .room import NoRoom, image_bytes, is_full_disk, require_room
from .terms_store import TermsStore, terms_bytes
from .writing import remove_orphans, sync_files

log = logging.getLogger(__name__)
#: Each file a job skips is logged here, with the reason (``toros calibrate`` lists them at
#: the end instead).
skipped_log = logging.getLogger(__name__ + ".skipped")

#: The subdirectory of a night holding the raw frames.
RAW_DIRECTORY = "raw"
#: The subdirectory of a night receiving the products.
REDUCED_DIRECTORY = "reduced"
#: Why a file a link leads away is not read or written, for the daemon's jobs.
_OUTSIDE = "outside Preprocessor → Allowed Directories, where a link has led it"
#: The subdirectory of ``reduced/`` receiving the masters.
MASTERS_DIRECTORY = "masters"
#: The subdirectory of the masters' receiving the library's masters a night's jobs use, each a
#: link to the library's file (:meth:`.MasterLibrary.pinned`).
LIBRARY_MASTERS_DIRECTORY = "library"
#: A night directory's name: the date of its evening.
NIGHT_NAME = re.compile(r"^\d{8}$")
#: What dask.distributed raises for a task whose workers died each time it ran (named, not
#: imported: Dask is optional), and how a Status says it.
KILLED_WORKER = "KilledWorker"
KILLED_WORKER_REASON = ("the Dask workers that ran it died each time (out of memory? their "
                        "own logs say)")
#: The software, for the products' headers.
SOFTWARE = f"TOROS Manager {__version__}"
#: The libraries whose conventions the products follow, by their installed versions (read
#: without importing ccdproc, which the daemon does not otherwise load: seconds of CPU).
VERSIONS = ", ".join(f"{name} {metadata.version(name)}" for name in ("ccdproc", "astropy",
                                                                     "numpy"))
#: ``CALDATE``'s format: UTC to the second.
CALDATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
#: Skipped files a failure's message names, with their reasons; Status's ``Skipped`` and the
#: command list them all.
LISTED_SKIPPED = 5


class PreprocessingError(Exception):
    """Nothing can be calibrated (no such directory, no frames...); the message says why."""


@dataclass(frozen=True)
class Settings:
    """The ``Preprocessor`` settings a night's calibration uses."""

    workers: int = 2
    executor: str = "local"
    library: str | None = None
    gain: float = 1.0
    overscan: str | None = None
    trim: str | None = None
    cosmic_rays: bool = False
    block_rows: int = 512
    #: Megabytes of calibration terms a daemon keeps from one job to the next.
    kept_terms: int = 1024
    #: Megabytes from which a product is written around the page cache (0: none).
    direct_writes_from: int = 256
    #: Bytes a job leaves free on each disk it writes to (:mod:`.room`).
    minimum_free_bytes: int = 0
    #: Seconds between two looks for room by a job waiting for it (the daemon's).
    room_retry_interval: float = 60.0
    #: Fraction of a flat's pixels saturated beyond which it is not used.
    max_saturated_flat: float = 0.001
    #: Seconds after its last change beyond which a file still being written is not waited
    #: for (:mod:`.incomplete`); 0: skipped at once.
    incomplete_file_wait: float = 0.0
    #: Seconds between two readings of a file still being written.
    incomplete_file_check: float = 1.0
    #: Resolved directories (the daemon's Allowed Directories) a job reads and writes only
    #: inside, links followed; empty: anywhere (``toros calibrate``).
    confined_to: tuple = ()

    @classmethod
    def from_config(cls, config):
        """The settings of a loaded configuration's ``Preprocessor`` section."""
        section = config["Preprocessor"]
        return cls(workers=section["Workers"], executor=section["Executor"],
                   library=section["Master Library"], gain=section["Gain"],
                   overscan=section["Overscan"], trim=section["Trim"],
                   cosmic_rays=section["Cosmic Rays"], block_rows=section["Block Rows"],
                   kept_terms=section["Kept Terms"],
                   direct_writes_from=section["Direct Writes From"],
                   minimum_free_bytes=section["Minimum Free Bytes"],
                   room_retry_interval=section["Room Retry Interval"],
                   max_saturated_flat=section["Max Saturated Flat Pixels"],
                   incomplete_file_wait=section["Incomplete File Wait"],
                   incomplete_file_check=section["Incomplete File Check"])


@dataclass
class Outcome:
    """What a night's calibration made, and what it could not.

    Attributes
    ----------
    products : list of str
        Calibrated science frames.
    masters : dict
        Label → path of each master made from this job's frames.
    skipped : list of str
        ``"file: reason"`` for each file not calibrated.
    notes : list of str
        What a person should know: masters from the library, missing flats or darks.
    lacking : list of str
        What calibrated science frames go without, in short ("frames in filter V not
        flat-fielded"): said in :meth:`summary`, as a receipt of the job is read first.
    total, done : int
        FITS files found, and files dealt with.
    lights : int
        Light (science) frames found.
    skipped_lights : list of str
        The lines of *skipped* that are about light frames.
    without_bias : list of str
        The detector geometries (``"512x512 bin 1x1"``) whose light frames were skipped for
        want of a master bias, in this night and in the master library.
    bias_made : list of str
        The detector geometries of the master biases made from this job's frames (kept in the
        master library, when there is one).
    library_kept : bool
        Whether masters made by the job were kept in the master library.
    library_problem : str
        Why masters made by the job could not be kept there (``""``: none), for the health
        report until a later job keeps some.
    """

    products: list = field(default_factory=list)
    masters: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    lacking: list = field(default_factory=list)
    total: int = 0
    done: int = 0
    lights: int = 0
    skipped_lights: list = field(default_factory=list)
    without_bias: list = field(default_factory=list)
    bias_made: list = field(default_factory=list)
    library_kept: bool = False
    library_problem: str = ""

    @property
    def succeeded(self):
        """Whether the job did what it was for: light frames calibrated or, when there were
        none (a night of calibration frames), masters made.

        Masters made while every light frame was skipped are not a success: the science
        frames, what the order was for, are not calibrated.
        """
        if self.lights:
            return bool(self.products)
        return bool(self.masters)

    def failure(self):
        """Why the job did not succeed, for a failed order's message and the command.

        Names each skipped light frame (or, without lights, each skipped file) with its
        reason: the first :data:`LISTED_SKIPPED`, then how many more; ``skipped`` has them
        all.
        """
        if self.lights:
            why = f"all {self.lights} light frame(s) were skipped"
            lines = self.skipped_lights
        else:
            why = "no light frames, and no master could be made"
            lines = self.skipped
        listed = "; ".join(lines[:LISTED_SKIPPED])
        if len(lines) > LISTED_SKIPPED:
            listed += f"; and {len(lines) - LISTED_SKIPPED} more"
        made = f"; {len(self.masters)} master(s) made" if self.masters else ""
        return (f"nothing could be calibrated: {why}" + (f": {listed}" if listed else "")
                + made + (" (see Skipped)" if self.skipped else ""))

    def summary(self):
        """One line for Status and the command's last words."""
        places = sorted({os.path.dirname(path) for path in self.products})
        parts = [f"{len(self.products)} frame(s) calibrated"
                 + (f" into {', '.join(places)}" if places else "")]
        parts.append(f"{len(self.masters)} master(s) made")
        parts += self.lacking
        if self.skipped:
            parts.append(f"{len(self.skipped)} file(s) skipped (see Skipped)")
        if self.notes:
            parts.append(f"{len(self.notes)} note(s) (see Notes)")
        return "; ".join(parts)

    def add(self, other, night):
        """Add *other*, what one night of a job of several made; its masters' labels name
        the *night*."""
        self.products += other.products
        self.masters.update({f"{label}, night {night}": path
                             for label, path in other.masters.items()})
        self.skipped += other.skipped
        self.skipped_lights += other.skipped_lights
        for mine, theirs in ((self.notes, other.notes), (self.lacking, other.lacking),
                             (self.without_bias, other.without_bias),
                             (self.bias_made, other.bias_made)):
            mine += [each for each in theirs if each not in mine]
        self.total += other.total
        self.done += other.done
        self.lights += other.lights
        self.library_kept = self.library_kept or other.library_kept
        self.library_problem = other.library_problem or self.library_problem


def calibrate(location, settings, runner, progress=None, stop=None, clock=None,
              terms_store=None):
    """Calibrate the frames at *location*.

    Parameters
    ----------
    location : str or list of str
        A night directory, a FITS file, or a list of files (``file://`` URLs too).
    settings : Settings
    runner : TaskRunner
        Where the work runs (:mod:`.executors`).
    progress : callable, optional
        Called as ``progress(step, done, total)`` as the work advances.
    stop : threading.Event, optional
        When set, the job stops between tasks (raising :class:`~.executors.Stopped`).
    clock : Clock, optional
        The configured clock (``Clock``), for ``CALDATE``: the daemons may run on simulated
        time. Default real UTC.
    terms_store : TermsStore, optional
        Where the terms of local workers are put, and kept for later jobs
        (:mod:`.terms_store`). Default: a store of this job's own, which keeps none.

    Returns
    -------
    Outcome

    Raises
    ------
    PreprocessingError
        When there is nothing to calibrate.
    NoRoom
        When a disk has no room for what the job would write (before it writes anything), or
        fills while it calibrates.
    Stopped
        When *stop* was set.
    RunnerError
        When the workers failed.
    """
    nights, clock = by_night(location), clock or Clock()
    if len(nights) == 1:
        return _Night(*nights.values(), settings, runner, progress, stop, clock,
                      terms_store).run()
    # Frames of several nights (an observation resumed on a later night, whose frames are
    # handed over together): each night with its own calibration frames and masters, as a
    # job of its own; the progress counts them all.
    outcome = Outcome()
    total = sum(len(paths) + len(missing) for paths, missing in nights.values())
    for night, found in nights.items():
        name = os.path.basename(night)

        def counted(step, done, _, name=name, before=outcome.total):
            if progress is not None:
                progress(step if step == "done" else f"{step} (night {name})", before + done,
                         total)

        try:
            outcome.add(_Night(found, settings, runner, counted, stop, clock,
                               terms_store).run(), name)
        except Stopped as stopped:
            if stopped.outcome is not None:
                outcome.add(stopped.outcome, name)
            stopped.outcome = outcome
            raise
    return outcome


def prepare(location, settings, terms_store, clock=None):
    """Make the calibration terms of the light frames at *location*, from the master
    library, and keep them in *terms_store* for the job that will calibrate them.

    The telescope sends such a request at an observation's first frame (``Request: Prepare
    Calibration``): the terms (:mod:`.calibrate`) are then made while the observation's
    other frames are taken, and its job, handed the frames at the end, maps them instead of
    making them; at 4096², a fifth of a ten-frame job's time (docs/benchmarks.md).

    Parameters
    ----------
    location : str or list of str
        As for :func:`calibrate`; its calibration frames, if any, are not read.
    settings : Settings
    terms_store : TermsStore or None
        The daemon's store; ``None`` when its workers do not share terms.
    clock : Clock, optional

    Returns
    -------
    str
        What was prepared, or why nothing was, for Status.

    Raises
    ------
    PreprocessingError
        When *location* holds no light frame.
    OSError, FrameError
        When a master cannot be read.
    """
    if terms_store is None:
        return ("nothing prepared: the workers are not local processes sharing memory "
                "(Preprocessor → Executor), each makes its own terms")
    if not settings.library:
        return ("nothing prepared: terms are prepared from the master library, and there is "
                "none (Preprocessor → Master Library)")
    clock = clock or Clock()
    return "; ".join(_Night(found, settings, None, None, None, clock, terms_store).prepare()
                     for found in by_night(location).values())


def find_frames(location):
    """The FITS files *location* names, and those it names that are not files to read.

    Returns
    -------
    (list of str, list of (str, str))
        The regular files; and the paths that do not exist or are not regular files (a FIFO
        would block its reader until something writes to it), each with the reason.

    A file named twice (two spellings of one path, a link) is read once. A directory
    without FITS files among several locations is one of those not read.

    Raises
    ------
    PreprocessingError
        When nothing at all is there.
    """
    locations = location if isinstance(location, list) else [location]
    paths, missing = [], []
    for place in locations:
        place = local_path(str(place))
        if os.path.isdir(place):
            raw = os.path.join(place, RAW_DIRECTORY)
            directory = raw if os.path.isdir(raw) else place
            listed = sorted(name for name in os.listdir(directory) if not name.startswith("."))
            names = [name for name in listed if is_fits_name(name)]
            missing += [(os.path.join(directory, name), why) for name in listed
                        if (why := compressed_fits(name))]
            if not names and not missing:
                if len(locations) == 1:
                    raise PreprocessingError(f"no FITS files (.fits, .fit, .fts) in {directory}")
                missing.append((directory, "no FITS files (.fits, .fit, .fts) in it"))
            for name in names:
                path = os.path.join(directory, name)
                if os.path.isfile(path):
                    paths.append(path)
                else:
                    missing.append((path, _not_a_file(path)))
        elif os.path.isfile(place):
            paths.append(place)
        else:
            missing.append((place, _not_a_file(place)))
    if not paths:
        if missing:
            raise PreprocessingError("nothing to calibrate: "
                                     + "; ".join(f"{path}: {why}" for path, why in missing))
        raise PreprocessingError(f"no FITS files in {', '.join(map(str, locations))}")
    first = {}
    for path in paths:
        first.setdefault(os.path.realpath(path), path)
    return list(first.values()), missing


def by_night(location):
    """What :func:`find_frames` finds at *location*, by the night directory each file is in
    (:func:`night_directory`, of the path as given: a frame linked into a night is of that
    night), in the order of the nights' first files: ``{night: (paths, not read)}``. The
    paths not read go with the first night, which says why it skips them.

    Raises
    ------
    PreprocessingError
        When nothing at all is there.
    """
    paths, missing = find_frames(location)
    nights: dict = {}
    for path in paths:
        nights.setdefault(night_directory(path), ([], []))[0].append(path)
    nights[next(iter(nights))][1].extend(missing)
    return nights


def _not_a_file(path):
    """Why *path*, not a regular file, is not read: a FIFO would block the job for good."""
    if not os.path.exists(path):
        return "no such file or directory"
    return "not a regular file (a directory, a FIFO, a device): not read"


def check_room(location, settings):
    """Raise :class:`~.room.NoRoom` unless the disks have room for what calibrating
    *location* would write, as :func:`calibrate` checks before it writes anything (without
    calibrating: for a job waiting for room).

    Raises
    ------
    NoRoom
    PreprocessingError, OSError
        When *location* cannot be read as :func:`calibrate` would.
    """
    paths, _ = find_frames(location)
    frames, _ = classify(paths)
    require_room(_outputs(frames), settings.minimum_free_bytes, in_flight=settings.workers)


def _outputs(frames):
    """What a job on *frames* may write, for :func:`~.room.require_room`: a product per light
    frame, at most the size of its frame as float32 (replacing the one a run before made), and
    a master per group of calibration frames."""
    outputs, groups = [], set()
    for frame in frames:
        size = image_bytes(frame.geometry.width, frame.geometry.height)
        if frame.kind == Kind.LIGHT:
            product = product_path(frame.path)
            outputs.append((os.path.dirname(product), size, product))
            continue
        group = (frame.kind, frame.geometry,
                 round(frame.exptime, 3) if frame.kind == Kind.DARK else frame.filter)
        if group not in groups:
            groups.add(group)
            outputs.append((os.path.join(night_directory(frame.path), REDUCED_DIRECTORY,
                                         MASTERS_DIRECTORY), size, None))
    return outputs


def require_writable(directories):
    """Raise :class:`PreprocessingError` unless a file can be made in each of *directories*
    (or, for one not there yet, in the nearest directory above it, where it would be made):
    one message before any work, rather than one for each product and master. Nothing is
    left behind; a full disk is left to :func:`~.room.require_room` and the job."""
    for directory in directories:
        existing = directory
        while not os.path.isdir(existing):
            if os.path.lexists(existing):
                raise PreprocessingError(f"cannot make {directory}, where this job's products "
                                         f"go: {existing} is there, and not a directory")
            existing = os.path.dirname(existing)
        try:
            descriptor, probe = tempfile.mkstemp(prefix=".toros-write-check-", dir=existing)
        except OSError as error:
            if is_full_disk(error):
                continue
            reason = error.strerror or str(error)
            if existing == directory:
                raise PreprocessingError(f"cannot write in {directory}, where this job's "
                                         f"products go: {reason}") from None
            raise PreprocessingError(f"cannot make {directory}, where this job's products "
                                     f"go: cannot write in {existing}: {reason}") from None
        os.close(descriptor)
        os.unlink(probe)


def night_directory(path):
    """The night a raw frame belongs to: the parent of its ``raw/`` directory, or its own."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.basename(directory) == RAW_DIRECTORY:
        return os.path.dirname(directory)
    return directory


def product_path(path):
    """Where the calibrated frame of raw *path* goes: ``<night>/reduced/<same name>``."""
    return os.path.join(night_directory(path), REDUCED_DIRECTORY, os.path.basename(path))


def choose_dark(darks, exptime):
    """The dark to use for *exptime* seconds: the same time, else the closest longer, else
    the longest shorter.

    Returns
    -------
    (Master or None, str)
        The dark, and ``"exact"``, ``"longer"``, ``"shorter"`` or ``"none"``.
    """
    exact = [dark for dark in darks if same_exptime(dark.exptime, exptime)]
    if exact:
        return exact[0], "exact"
    longer = [dark for dark in darks if dark.exptime > exptime]
    if longer:
        return min(longer, key=lambda dark: dark.exptime), "longer"
    if darks:
        return max(darks, key=lambda dark: dark.exptime), "shorter"
    return None, "none"


class _Night:
    """One run of :func:`calibrate` on one night's files, *found* by :func:`by_night`:
    ``(paths, [(path not read, why), ...])``."""

    def __init__(self, found, settings, runner, progress, stop, clock, terms_store):
        self.found = found
        self.settings = settings
        self.runner = runner
        self.report = progress or (lambda step, done, total: None)
        self.stop = stop
        self.library = MasterLibrary(settings.library) if settings.library else None
        self.when = clock.now().strftime(CALDATE_FORMAT)
        self.outcome = Outcome()
        self._light_paths = set()  # to tell skipped light frames from other skipped files
        self._frame_paths = []     # every FITS file of the job
        self.made = []          # masters made from this job's frames, for the library
        self._pins = {}         # library master's path → the job's own link (_pinned)
        self.terms = terms_store

    # --- the steps ----------------------------------------------------------------------

    def run(self):
        own = None
        if self.terms is None and shares_terms(self.settings):
            own = self.terms = TermsStore(0)
        try:
            return self._run()
        except Stopped as stopped:
            stopped.outcome = self.outcome  # what it wrote, for a cancelled order's Status
            raise
        finally:
            if own is not None:
                own.close()

    def _run(self):
        paths, missing = self.found
        outcome = self.outcome
        outcome.total = len(paths) + len(missing)
        for path, reason in missing:
            self._skip(path, reason)
        paths = self._confined(paths)
        self._step("reading headers")
        frames, unusable = classify_whole(paths, self.settings.incomplete_file_wait,
                                          self.settings.incomplete_file_check, self._pause,
                                          self._step)
        for path, error in unusable:
            self._skip(path, str(error))
        self._light_paths = {frame.path for frame in frames if frame.kind == Kind.LIGHT}
        self._frame_paths = paths
        outcome.lights = len(self._light_paths)
        self.night = _night_name(frames, paths)
        outputs = _outputs(frames)
        directories = sorted({directory for directory, _, _ in outputs})
        for directory in directories:
            self._require_inside(directory, "where this job's products go")
        require_writable(directories)
        require_room(outputs, self.settings.minimum_free_bytes, in_flight=self.settings.workers)
        by_geometry = defaultdict(list)
        for frame in frames:
            by_geometry[frame.geometry].append(frame)
        for geometry in sorted(by_geometry, key=lambda each: each.label):
            self._geometry(geometry, by_geometry[geometry])
        self._flush()
        self._keep_in_library()
        self._step("done")
        return outcome

    def _confined(self, paths):
        """*paths* but those leading, links followed, outside the directories the job is
        confined to (skipped, saying where they lead)."""
        if not self.settings.confined_to:
            return paths
        kept = []
        for path in paths:
            real = os.path.realpath(path)
            if inside(real, self.settings.confined_to):
                kept.append(path)
            else:
                self._skip(path, f"it is {real}: {_OUTSIDE}")
        return kept

    def prepare(self):
        """:func:`prepare`'s work: the terms of each group of light frames, kept."""
        paths, _ = self.found
        frames, _ = classify(self._confined(paths))
        lights = [frame for frame in frames if frame.kind == Kind.LIGHT]
        if not lights:
            raise PreprocessingError("no light frame to prepare the calibration terms of, in "
                                     f"{len(paths)} FITS file(s)")
        self.night = _night_name(frames, paths)
        prepared, unprepared = 0, []
        by_geometry = _group(lights, lambda frame: frame.geometry)
        for geometry in sorted(by_geometry, key=lambda each: each.label):
            try:
                layout = Layout.for_frame(geometry.shape, self.settings.overscan,
                                          self.settings.trim)
            except LayoutError as error:
                unprepared.append(f"{geometry.label}: {error}")
                continue
            if not self.terms.keeps(layout.shape):
                unprepared.append(
                    f"the terms of {geometry.label} frames, {terms_bytes(layout.shape) / 2**20:g}"
                    f" MB, exceed Preprocessor → Kept Terms ({self.terms.budget / 2**20:g} MB)")
                continue
            bias = self._from_library(Kind.BIAS, geometry, layout)
            if bias is None:
                unprepared.append(f"no master bias for {geometry.label} in the master library")
                continue
            darks, flats, tasks = self._library_darks(geometry, layout), {}, []
            for frame in by_geometry[geometry]:
                dark, _, flat = self._masters_of(frame, geometry, layout, darks, flats)
                tasks.append(self._science_task(frame, layout, bias, dark, flat))
            groups = _group(tasks, lambda task: terms_key(task, task.terms_bzero))
            for key, group in groups.items():
                prefix = self.terms.place(key, group[0], group[0].terms_bzero)
                try:
                    terms = SharedTerms(dataclasses.replace(group[0], terms=prefix),
                                        group[0].terms_bzero)
                    try:
                        terms.fill_all()
                    finally:
                        terms.close()
                finally:
                    self.terms.release(key, prefix, tuple(layout.shape))
                prepared += 1
        if not prepared:
            said = "nothing prepared: " + "; ".join(unprepared)
        else:
            said = (f"calibration terms prepared for {prepared} group(s) of frames, kept for "
                    "their job")
            if unprepared:
                said += "; not prepared: " + "; ".join(unprepared)
        log.info("%s", said)
        return said

    def _geometry(self, geometry, frames):
        """Masters, then science frames, of one detector geometry."""
        try:
            layout = Layout.for_frame(geometry.shape, self.settings.overscan, self.settings.trim)
        except LayoutError as error:
            for frame in frames:
                self._skip(frame.path, str(error))
            return
        kinds = defaultdict(list)
        for frame in frames:
            kinds[frame.kind].append(frame)
        bias = self._bias(geometry, layout, kinds[Kind.BIAS])
        darks = self._darks(geometry, layout, kinds[Kind.DARK], bias)
        flats = self._flats(geometry, layout, kinds[Kind.FLAT], bias, darks)
        self._lights(geometry, layout, kinds[Kind.LIGHT], bias, darks, flats)

    def _bias(self, geometry, layout, frames):
        if frames:
            spec = StackSpec(Kind.BIAS, tuple(f.path for f in frames),
                             tuple(f.exptime for f in frames), (1.0,) * len(frames),
                             (1.0,) * len(frames), layout)
            label = f"bias {geometry.label}"
            made = self._master(spec, frames, label, layout)
            if made is not None:
                self.outcome.bias_made.append(geometry.label)
                return made
        return self._from_library(Kind.BIAS, geometry, layout)

    def _darks(self, geometry, layout, frames, bias):
        groups = _group(frames, lambda frame: round(frame.exptime, 3))
        darks = []
        for exptime in sorted(groups):
            group = groups[exptime]
            label = f"dark {group[0].exptime:g} s {geometry.label}"
            if bias is None:
                self._skip_all(group, f"no bias for {geometry.label}, in this night or the "
                                      "master library, to subtract from the dark")
                continue
            spec = StackSpec(Kind.DARK, tuple(f.path for f in group),
                             tuple(f.exptime for f in group), self._gains(group),
                             (1.0,) * len(group), layout, bias=bias.path)
            made = self._master(spec, group, label, layout, bias=bias)
            if made is not None:
                darks.append(made)
        if darks or self.library is None:
            return darks
        return self._library_darks(geometry, layout)  # noted when used

    def _flats(self, geometry, layout, frames, bias, darks):
        groups = _group(frames, lambda frame: frame.filter)
        flats = {}
        for filter_name in sorted(groups):
            group = groups[filter_name]
            label = f"flat {filter_name or 'no filter'} {geometry.label}"
            if bias is None:
                self._skip_all(group, f"no bias for {geometry.label}, in this night or the "
                                      "master library, to subtract from the flat")
                continue
            dark, _ = self._chosen_dark(darks, float(np.median([f.exptime for f in group])),
                                        geometry, layout)
            self._note_library(dark, geometry)
            made = self._flat(geometry, layout, group, label, bias, dark)
            if made is not None:
                flats[filter_name] = made
        return flats

    def _flat(self, geometry, layout, group, label, bias, dark):
        paths = tuple(f.path for f in group)
        base = StackSpec(Kind.FLAT, paths, tuple(f.exptime for f in group), self._gains(group),
                         (1.0,) * len(group), layout, bias=bias.path,
                         dark=dark.path if dark else None)
        self._step(f"{label}: measuring {len(group)} flat(s)")
        levels = {}
        limit = self.settings.max_saturated_flat
        for index, measured, error in self.runner.run(task_flat_level,
                                                      [(base, i) for i in range(len(group))],
                                                      self.stop):
            level, saturated, full = measured if error is None else (None, None, None)
            if error is not None or not np.isfinite(level) or level <= 0:
                why = str(error) if error else f"its level after bias and dark is {level:g}"
                self._skip(group[index].path, f"not usable as a flat: {why}")
            elif saturated > limit:  # (a twilight flat taken too early)
                self._skip(group[index].path, f"not usable as a flat: {saturated:.1%} of its "
                           f"pixels are saturated (at or above {full:g} ADU), more than "
                           f"Preprocessor → Max Saturated Flat Pixels ({limit:g})")
            else:
                levels[index] = level
        if not levels:
            return None
        kept = [group[index] for index in sorted(levels)]
        spec = StackSpec(Kind.FLAT, tuple(f.path for f in kept), tuple(f.exptime for f in kept),
                         self._gains(kept), tuple(1.0 / levels[i] for i in sorted(levels)),
                         layout, bias=bias.path, dark=dark.path if dark else None)
        return self._master(spec, kept, label, layout, bias=bias, dark=dark,
                            flat_level=float(np.mean(list(levels.values()))))

    def _lights(self, geometry, layout, frames, bias, darks, flats):
        if not frames:
            return
        if bias is None:
            self._skip_all(frames, f"no bias for {geometry.label}, in this night or the master "
                                   "library")
            self.outcome.without_bias.append(geometry.label)
            return
        tasks = []
        for frame in sorted(frames, key=lambda f: (f.filter, f.exptime, self._gain(f)[0],
                                                   f.bzero, f.path)):
            dark, how, flat = self._masters_of(frame, geometry, layout, darks, flats)
            self._explain(geometry, frame, dark, how, flat)
            tasks.append(self._science_task(frame, layout, bias, dark, flat))
        for directory in {os.path.dirname(task.output) for task in tasks}:
            os.makedirs(directory, exist_ok=True)
            remove_orphans(directory)
        self._calibrated, total = 0, len(tasks)
        self._step(f"calibrating {geometry.label}: 0/{total}")
        if self.terms is None:
            self._calibrate(tasks, geometry, total)
            return
        # Frames of one group share their terms: computed once, by the workers as their first
        # frames need them, and mapped by all; or kept from an earlier job.
        groups = _group(tasks, lambda task: terms_key(task, task.terms_bzero))
        for key, group in groups.items():
            try:
                prefix = self.terms.place(key, group[0], group[0].terms_bzero)
            except OSError as error:  # each worker computes its own
                log.warning("cannot share the terms of %s: %s", group[0].path, error)
                self._calibrate(group, geometry, total)
                continue
            try:
                self._calibrate([dataclasses.replace(task, terms=prefix) for task in group],
                                geometry, total)
            finally:
                self.terms.release(key, prefix, tuple(group[0].layout.shape))

    def _calibrate(self, tasks, geometry, total):
        """Run the science *tasks* on the workers; count and report them."""
        try:
            for index, _, error in self.runner.run(task_calibrate, [(task,) for task in tasks],
                                                   self.stop):
                task = tasks[index]
                self._calibrated += 1
                if is_full_disk(error):  # so would every frame after it: the job waits
                    raise NoRoom(f"the disk filled while {task.output} was written: {error}")
                if error is not None:
                    self._skip(task.path, _reason(error))
                else:
                    self.outcome.products.append(task.output)
                    self.outcome.done += 1
                # (Not _step: a stop is the runner's to raise, with the frames under way.)
                self.report(f"calibrating {geometry.label}: {self._calibrated}/{total}",
                            self.outcome.done, self.outcome.total)
        except Stopped as stopped:
            # The frames under way as it stopped were finished: theirs are written too.
            self.outcome.products.extend(tasks[index].output for index, _, error
                                         in stopped.finished if error is None)
            raise
        finally:
            self.outcome.products.sort()

    def _flush(self):
        """Put every product on the disk before the job says it is done."""
        if self.outcome.products:
            self._step(f"flushing {len(self.outcome.products)} product(s) to the disk")
            sync_files(self.outcome.products)

    # --- masters ---------------------------------------------------------------------------

    def _master(self, spec, frames, label, layout, bias=None, dark=None, flat_level=None):
        """Combine *spec*'s frames into a master and write it; ``None`` if that failed."""
        geometry = frames[0].geometry
        height, width = layout.shape
        rows = stack_rows(len(spec.paths), width, self.settings.block_rows)
        blocks = [(spec, start, min(height, start + rows)) for start in range(0, height, rows)]
        data = np.empty((height, width), dtype=np.float32)
        self._step(f"{label}: combining {len(frames)} frame(s)")
        for count, (index, block, error) in enumerate(
                self.runner.run(task_combine_rows, blocks, self.stop), start=1):
            if error is not None:
                self._skip_all(frames, f"the {label} could not be made: {_reason(error)}")
                return None
            _, start, stop = blocks[index]
            data[start:stop] = block
            self._step(f"{label}: combining {len(frames)} frame(s), rows {count}/{len(blocks)}")
        try:
            header = master_header(spec.kind, frames, layout, self.night,
                                   gains=spec.gains if spec.kind != Kind.BIAS else None,
                                   bias=bias, dark=dark, software=SOFTWARE, when=self.when)
        except ValueError as error:  # a mean of the inputs' cards beyond a float (1e308 s)
            self._skip_all(frames, f"the {label} could not be made: {error}")
            return None
        level = 0.0
        if spec.kind == Kind.BIAS:
            step = max(1, int(np.sqrt(data.size / LEVEL_SAMPLE_PIXELS)))
            # For SATURATE, a grid will do; a pixel no bias frame had a value of is NaN.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all NaN: said below
                level = float(np.nanmedian(data[::step, ::step]))
            if not np.isfinite(level):
                self._skip_all(frames, f"the {label} could not be made: its median is "
                                       f"{level:g}")
                return None
            header["BIASLEV"] = (level, "[ADU] median of the master bias")
        elif spec.kind == Kind.FLAT:
            try:
                _, dead = normalise_flat(data)
            except ValueError as error:
                self._skip_all(frames, f"the {label} could not be made: {error}")
                return None
            header["FLATLEV"] = (flat_level, "[e-] mean level of the input flats")
            header["NDEAD"] = (dead, "dead pixels (NaN)")
        digest = master_digest(spec.kind, spec.paths, layout)
        exptime = frames[0].exptime if spec.kind == Kind.DARK else 0.0
        directory = os.path.join(night_directory(frames[0].path), REDUCED_DIRECTORY,
                                 MASTERS_DIRECTORY)
        os.makedirs(directory, exist_ok=True)
        remove_orphans(directory)
        path = os.path.join(directory, master_name(spec.kind, geometry, digest, exptime,
                                                   frames[0].filter))
        write_master(path, spec.kind, data, header)
        master = Master(kind=spec.kind, geometry=geometry, shape=layout.shape, path=path,
                        exptime=float(header["EXPTIME"]), filter=str(header["FILTER"]),
                        ncombine=len(frames), night=self.night, level=level)
        log.info("made the %s from %d frame(s): %s", label, len(frames), path)
        self.outcome.masters[label] = path
        self.made.append(master)
        self.outcome.done += len(frames)
        self._step(f"{label}: written")
        return master

    def _from_library(self, kind, geometry, layout, filter_name=""):
        if self.library is None:
            return None

        def find():
            return self.library.find(kind, geometry, layout.shape, self.night, filter_name)
        master = self._pinned(find(), find)
        self._note_library(master, geometry)
        return master

    def _library_darks(self, geometry, layout):
        """The library's darks for this night, one per exposure time (each pinned once
        chosen: :meth:`_chosen_dark`)."""
        return self.library.darks(geometry, layout.shape, self.night)

    def _chosen_dark(self, darks, exptime, geometry, layout):
        """:func:`choose_dark`'s dark of *darks* for *exptime*, and how it was chosen; one of
        the library's pinned (:meth:`_pinned`)."""
        dark, how = choose_dark(darks, exptime)
        if dark is not None and dark.source == "library":
            def find_again():
                return next((each for each in self._library_darks(geometry, layout)
                             if same_exptime(each.exptime, dark.exptime)), None)
            dark = self._pinned(dark, find_again)
        return dark, how

    def _pinned(self, master, find_again):
        """*master*, one of the library's (or ``None``), pinned for this job in the night's
        ``reduced/masters/library/`` (:meth:`.MasterLibrary.pinned`), once: another job storing
        its masters may remove it from the library meanwhile. One removed between being found
        and pinned is replaced by its successor, ``find_again()``."""
        if master is None or master.library_file:
            return master
        if master.path not in self._pins:
            directory = os.path.join(night_directory(self.found[0][0]), REDUCED_DIRECTORY,
                                     MASTERS_DIRECTORY, LIBRARY_MASTERS_DIRECTORY)
            self._require_inside(directory, "where the library's masters it uses are linked")
            try:
                pinned = self.library.pinned(master, directory)
            except FileNotFoundError:  # removed since found
                successor = find_again()
                pinned = None if successor is None else self.library.pinned(successor,
                                                                             directory)
            self._pins[master.path] = pinned
        return self._pins[master.path]

    def _require_inside(self, directory, what):
        """Raise :class:`PreprocessingError` if *directory*, links followed, leads outside the
        directories the job is confined to."""
        real = os.path.realpath(directory)
        if self.settings.confined_to and not inside(real, self.settings.confined_to):
            raise PreprocessingError(f"{directory}, {what}, is {real}: {_OUTSIDE} ("
                                     + ", ".join(self.settings.confined_to) + ")")

    def _note_library(self, master, geometry):
        """Say that a master from the library is used (once per master)."""
        if master is not None and master.source == "library":
            self._note(f"{master.label}: none in this night; using the master library's "
                       f"{master.library_file or master.path} (night {master.night})")

    def _keep_in_library(self):
        if self.library is None or not self.made:
            return
        self._step("keeping the masters in the library")
        # The files in the frames' directories now, by the names masters give their inputs:
        # an earlier master of this night made from frames since removed is replaced.
        present = {fits_text(name) for directory in {os.path.dirname(path)
                                                      for path in self._frame_paths}
                   for name in os.listdir(directory)}
        for master in self.made:
            try:
                for replaced in self.library.store(master, present):
                    self._note(f"{master.label}: replaces the master library's {replaced}, made "
                               "by an earlier run of this night from frames since removed, or "
                               "from fewer")
            except OSError as error:
                self.outcome.library_problem = (f"the masters could not be kept in the master "
                                                f"library {self.library.root}: {error}")
                self._note(self.outcome.library_problem)
                log.error("cannot write the master library %s: %s", self.library.root, error)
                return
            self.outcome.library_kept = True

    # --- science frames ------------------------------------------------------------------

    def _masters_of(self, frame, geometry, layout, darks, flats):
        """The dark (and how it was chosen, see :func:`choose_dark`) and the flat a light
        frame is calibrated with: the night's flat of its filter (*flats*, by filter), else the
        library's, added to *flats*. The same for a job and for :meth:`prepare`, whose terms
        the job must find under the same key."""
        dark, how = self._chosen_dark(darks, frame.exptime, geometry, layout)
        flat = flats.get(frame.filter)
        if flat is None and self.library is not None:
            flat = self._from_library(Kind.FLAT, geometry, layout, frame.filter)
            if flat is not None:
                flats[frame.filter] = flat
        return dark, how, flat

    def _science_task(self, frame, layout, bias, dark, flat):
        gain, gain_source = self._gain(frame)
        cards = [
            ("BUNIT", "electron", "pixel values are electrons"),
            ("GAIN", 1.0, "[e-/e-] data are in electrons: see GAINCOR"),
            ("GAINCOR", gain, f"[e-/ADU] gain applied, {gain_source}"),
            ("BIASCOR", bias.name, "master bias subtracted"),
            ("BIASSRC", _source(bias), "where the master bias came from"),
            ("DARKCOR", dark.name if dark else "none", "master dark subtracted"),
            ("DARKSRC", _source(dark), "where the master dark came from"),
            ("FLATCOR", flat.name if flat else "none", "master flat divided"),
            ("FLATSRC", _source(flat), "where the master flat came from"),
        ]
        history = [f"bias subtracted: {bias.name} ({_source(bias)})"]
        if dark is not None:
            scale = frame.exptime / dark.exptime
            cards += [("DARKEXP", dark.exptime, "[s] exposure time of the master dark"),
                      ("DARKSCAL", scale, "dark scaled by EXPTIME / DARKEXP")]
            history.append(f"dark subtracted: {dark.name} ({_source(dark)}), "
                           f"{frame.exptime:g} s of dark current (x{scale:.4g})")
        else:
            history.append("no master dark: dark current not subtracted")
        history.append(f"flat-fielded: {flat.name} ({_source(flat)})" if flat else
                       f"no master flat for filter {frame.filter or 'none'}: not flat-fielded")
        history.append(f"converted to electrons with gain {gain:g} e-/ADU ({gain_source})")
        if frame.egain:
            cards.append(("EGAIN", 1.0, "[e-/e-] data are in electrons: see GAINCOR"))
        saturation = None
        if frame.saturate is not None:
            saturation = (frame.saturate - bias.level) * gain
            cards.append(("SATURATE", round(saturation, 1),
                          "[e-] (raw SATURATE - bias) x gain"))
        cards += [(key, round((level - bias.level) * gain, 1),
                   f"[e-] (raw {key} - bias) x gain") for key, level in frame.levels]
        cards += layout.cards()
        cards += [("RAWFILE", os.path.basename(frame.path), "raw frame calibrated"),
                  ("CALSOFT", SOFTWARE, "calibration software"),
                  ("CALVERS", VERSIONS, "libraries"),
                  ("CALDATE", self.when, "UTC when calibrated")]
        return ScienceTask(
            path=frame.path, output=product_path(frame.path), layout=layout, bias=bias.path,
            dark=dark.path if dark else None, flat=flat.path if flat else None,
            exptime=frame.exptime, gain=gain, cards=tuple(cards), history=tuple(history),
            cosmic_rays=self.settings.cosmic_rays,
            read_noise=frame.rdnoise if frame.rdnoise is not None else 0.0,
            saturation=saturation,
            terms_bzero=folded_bzero(layout, frame.bzero, frame.bscale),
            direct=writes_direct(layout.shape, self.settings.direct_writes_from))

    def _explain(self, geometry, frame, dark, how, flat):
        """Notes on what a science frame lacks, and on masters from the library."""
        self._note_library(dark, geometry)
        if frame.exptime == 0 and dark is not None:
            # A light of 0 s saw no sky: a bias filed as LIGHT, or a camera that wrote 0.
            self._note(f"light frame(s) of 0 s ({geometry.label}): no dark current subtracted "
                       "(DARKSCAL = 0); is EXPTIME right, or are they biases?")
        if flat is None:
            self._note(f"light frame(s) in filter {frame.filter or 'none'} ({geometry.label}): "
                       "no flat in this night or the master library; bias- and dark-corrected "
                       "only, not flat-fielded (FLATCOR = 'none')")
            self._lack(f"frames in filter {frame.filter or 'none'} not flat-fielded")
        if dark is None:
            self._note(f"light frame(s) of {frame.exptime:g} s ({geometry.label}): no dark in "
                       "this night or the master library; dark current not subtracted "
                       "(DARKCOR = 'none')")
            self._lack(f"frames of {frame.exptime:g} s not dark-subtracted")
        elif how == "shorter":
            self._note(f"light frame(s) of {frame.exptime:g} s ({geometry.label}): no dark as "
                       f"long; the {dark.exptime:g} s dark is scaled up")

    def _gain(self, frame):
        if frame.gain is not None:
            return frame.gain, f"from {frame.gain_source}"
        # Said once a job: a wrong gain scales every electron count, and only the cards say it.
        self._note(f"frames of {frame.geometry.label} without a gain of their own "
                   f"({frame.gain_source}): converted with Preprocessor → Gain, "
                   f"{self.settings.gain:g} e-/ADU")
        return self.settings.gain, f"from Preprocessor -> Gain ({frame.gain_source})"

    def _gains(self, frames):
        return tuple(self._gain(frame)[0] for frame in frames)

    # --- bookkeeping -----------------------------------------------------------------------

    def _skip(self, path, reason):
        line = f"{path}: {reason}"
        self.outcome.skipped.append(line)
        if path in self._light_paths:
            self.outcome.skipped_lights.append(line)
        self.outcome.done += 1
        skipped_log.warning("skipped %s: %s", path, reason)

    def _skip_all(self, frames, reason):
        for frame in frames:
            self._skip(frame.path, reason)

    def _lack(self, text):
        if text not in self.outcome.lacking:
            self.outcome.lacking.append(text)

    def _note(self, text):
        if text not in self.outcome.notes:
            self.outcome.notes.append(text)
            log.info("%s", text)

    def _step(self, text):
        if self.stop is not None and self.stop.is_set():
            raise Stopped()
        self.report(text, self.outcome.done, self.outcome.total)

    def _pause(self, seconds):
        """Wait *seconds*; raise :class:`Stopped` if the job is stopped meanwhile."""
        if self.stop is None:
            time.sleep(seconds)
        elif self.stop.wait(seconds):
            raise Stopped()


def shares_terms(settings):
    """Whether the workers share their terms in shared memory: they are local processes of
    this machine, and it has shared memory."""
    return settings.executor == LOCAL and os.path.isdir(SHARED_MEMORY)


def _group(frames, key):
    groups = defaultdict(list)
    for frame in frames:
        groups[key(frame)].append(frame)
    return groups


def _source(master):
    if master is None:
        return "none"
    return "night" if master.source == "night" else f"library {master.night}"


def _reason(error):
    """The message of a task's exception, for Status."""
    if isinstance(error, (FrameError, OSError, ValueError)):
        return str(error)
    if type(error).__name__ == KILLED_WORKER:
        return KILLED_WORKER_REASON
    return f"{type(error).__name__}: {error}"


def _night_name(frames, paths):
    """``YYYYMMDD`` of the night: the night directory's name, else the first frame's date."""
    for path in paths:
        name = os.path.basename(night_directory(path))
        if NIGHT_NAME.match(name):
            return name
    for frame in frames:
        if frame.date_obs[:10].count("-") == 2:
            return frame.date_obs[:10].replace("-", "")
    return "00000000"
