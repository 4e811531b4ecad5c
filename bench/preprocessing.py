"""Benchmark: the preprocessor against naive ccdproc and against the I/O floor, side by side.

For each frame size it generates a night of raw frames as the telescope writes them (uint16,
``BZERO = 32768``), then runs, each in a process of its own whose memory is sampled:

* **I/O floor**: read each raw light and write it back as float32, nothing else, in one
  process, with the very reader and (atomic) writer the pipeline uses, and flush them all to
  the disk at the end as the pipeline does; and the same in two processes.
* **ours, calibrate**: the preprocessor's pipeline on the lights (masters from its library),
  ``--workers`` processes; the time from the first frame to the last.
* **naive ccdproc, ccd_process**: ``CCDData.read``, ``ccd_process`` with uncertainty and a bad
  pixel mask, ``CCDData.write``, one frame after the other.
* **ours, master bias**: the pipeline's master bias of ``--frames`` bias frames.
* **naive ccdproc, combine**: ``ccdproc.combine(method="median")`` of the same bias frames
  (with ``mem_limit`` lowered above :data:`NAIVE_FULL_SIZE`, where its default would take most
  of this machine's memory).

Each stage first reads its input files once, untimed, so that it finds them in the page cache,
as a night's job finds the frames the camera has just written and the masters it has just
made; the writes are timed until they are flushed to the disk. Peak memory is the largest sum,
sampled every :data:`SAMPLE_SECONDS`, of the memory the stage's process and its descendants
(the worker processes) own: anonymous and shared memory, each page counted once between the
processes that map it (``Pss_Anon + Pss_Shmem``), not the page cache of the files they read.
MB/s counts the raw frames' bytes. Linux only (``/proc``).

Usage::

    .venv/bin/python bench/preprocessing.py                       # 2048, 4096 and 10560
    .venv/bin/python bench/preprocessing.py --sizes 2048 --frames 5
"""

import argparse
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np

from cpu import processor_name

DEFAULT_SIZES = (2048, 4096, 10560)
DEFAULT_FRAMES = 10
DEFAULT_WORKERS = 2
DEFAULT_WORKDIR = "/var/tmp/toros-bench-preprocessing"
DEFAULT_REPEAT = 5
#: Seconds between two samples of the stages' memory.
SAMPLE_SECONDS = 0.05
#: The detector of the generated frames.
GAIN, READ_NOISE, BIAS_LEVEL = 1.5, 8.0, 1000.0          # e-/ADU, e-, ADU
DARK_CURRENT, SKY, FLAT_LEVEL = 0.05, 20.0, 20000.0      # e-/s, e-/s, e-
LIGHT_SECONDS, DARK_SECONDS, FLAT_SECONDS = 30.0, 30.0, 2.0
DARKS, FLATS = 2, 2
#: Above this size the naive stages are cut down: combine gets MEM_LIMIT_BIG, ccd_process
#: runs on NAIVE_FRAMES_BIG frames (each writes about 2 GB with its uncertainty and mask).
NAIVE_FULL_SIZE = 4096
NAIVE_MEM_LIMIT_BIG = 4e9
NAIVE_FRAMES_BIG = 3
#: Raw and output bytes per pixel, to check the free space before a size.
RAW_BYTES, FLOAT_BYTES, NAIVE_BYTES = 2, 4, 17
MEGABYTE = 1e6
GIGABYTE = 1e9


# --- the parent: runs the stages, samples memory, prints the table ----------------------------

def main(argv=None):
    arguments = parse_arguments(argv)
    if arguments.stage:
        result = STAGES[arguments.stage](arguments)
        print(json.dumps(result))
        return 0
    os.makedirs(arguments.workdir, exist_ok=True)
    rows = []
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    for size in arguments.sizes:
        rows += bench_size(arguments, size)
    print(table(rows))
    print()
    print(machine_notes(arguments, time.monotonic() - started, load_before))
    return 0


def bench_size(arguments, size):
    """Every stage at one frame size; the table's rows."""
    base = os.path.join(arguments.workdir, str(size))
    shutil.rmtree(base, ignore_errors=True)
    check_space(arguments, size)
    frames = arguments.frames
    naive_frames = frames if size <= NAIVE_FULL_SIZE else min(frames, NAIVE_FRAMES_BIG)
    log(f"{size}x{size}: generating {2 * frames + DARKS + FLATS} frames in {base}")
    stage(arguments, "generate", size)
    rows = []
    try:
        masters = stage(arguments, "masters", size)
        rows.append(row(size, "ours: master bias (sigma-clipped mean)", masters,
                        masters["bias_seconds"], frames))
        if not arguments.skip_naive:
            combine = stage(arguments, "naive-combine", size)
            label = "naive: ccdproc.combine, median" + (
                "" if size <= NAIVE_FULL_SIZE else f", mem_limit {NAIVE_MEM_LIMIT_BIG / 1e9:g} GB")
            rows.append(row(size, label, combine, combine["seconds"], frames))
        # Alternated and repeated: the disk's flushes vary with everything else on it.
        runs = {"floor": [], "floor-parallel": [], "pipeline": []}
        for _ in range(arguments.repeat):
            for name in runs:
                runs[name].append(stage(arguments, name, size))
        floor, floor2, ours = (median_run(runs[name]) for name in runs)
        # Each run of ours against the floors run beside it: the disk's pace drifts between
        # repetitions more than between neighbours.
        ratios = [statistics.median(runs[name][index]["seconds"] / run["seconds"]
                         for index, run in enumerate(runs["pipeline"]))
                  for name in ("floor", "floor-parallel")]
        rows.append(row(size, "I/O floor, 1 process (read raw, write float32)", floor,
                        floor["seconds"], frames))
        rows.append(row(size, f"I/O floor, {arguments.workers} processes", floor2,
                        floor2["seconds"], frames))
        ours_row = row(size, f"ours: calibrate, {arguments.workers} workers", ours,
                       ours["seconds"], frames)
        ours_row["vs floor"] = f"{ratios[0]:.2f} / {ratios[1]:.2f}"
        rows.append(ours_row)
        if not arguments.skip_naive:
            naive = stage(arguments, "naive-process", size, frames=naive_frames)
            rows.append(row(size, "naive: ccd_process + uncertainty + mask", naive,
                            naive["seconds"], naive_frames))
    finally:
        if not arguments.keep:
            shutil.rmtree(base, ignore_errors=True)
    return rows


def stage(arguments, name, size, frames=None):
    """Run one stage in a child process, sampling its memory; its result with ``peak_gb``."""
    command = [sys.executable, os.path.abspath(__file__), "--stage", name, "--size", str(size),
               "--frames", str(frames or arguments.frames), "--workers", str(arguments.workers),
               "--workdir", arguments.workdir]
    log(f"  {name} ...")
    os.sync()  # no stage pays for the write-back of the one before
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    sampler = MemorySampler(child.pid)
    sampler.start()
    output, _ = child.communicate()
    sampler.stop()
    if child.returncode != 0:
        raise SystemExit(f"stage {name} at {size} failed with status {child.returncode}")
    result = json.loads(output.strip().splitlines()[-1])
    result["peak_gb"] = sampler.peak / GIGABYTE
    log(f"  {name}: {result.get('seconds', 0):.2f} s, peak {result['peak_gb']:.2f} GB")
    return result


def median_run(results):
    """The run of median time, with the largest peak memory of all the runs."""
    ordered = sorted(results, key=lambda result: result["seconds"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["peak_gb"] = max(result["peak_gb"] for result in results)
    return chosen


def row(size, what, result, seconds, frames):
    raw_mb = size * size * RAW_BYTES / MEGABYTE
    return {"size": f"{size}²", "what": what, "frames": frames,
            "s/frame": seconds / frames, "MB/s": raw_mb * frames / seconds,
            "peak GB": result["peak_gb"], "vs floor": ""}


def table(rows):
    lines = ["| frames | what | n | s/frame | MB/s (raw) | peak memory (GB) | "
             "throughput vs I/O floor (1 / 2 processes) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for each in rows:
        lines.append(f"| {each['size']} | {each['what']} | {each['frames']} | "
                     f"{each['s/frame']:.3f} | {each['MB/s']:.0f} | {each['peak GB']:.2f} | "
                     f"{each['vs floor']} |")
    return "\n".join(lines)


def machine_notes(arguments, elapsed, load_before):
    import astropy
    import ccdproc

    cpu = processor_name("unknown CPU")
    with open("/proc/meminfo", encoding="ascii") as stream:
        memory = int(stream.readline().split()[1]) * 1024 / 2 ** 30
    disk = shutil.disk_usage(arguments.workdir)
    return (f"Machine: {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, work directory "
            f"{arguments.workdir} ({disk.free / 2 ** 30:.0f} GiB free); Python "
            f"{platform.python_version()}, numpy {np.__version__}, astropy {astropy.__version__}, "
            f"ccdproc {ccdproc.__version__}. Frames per size: {arguments.frames} lights, "
            f"{arguments.frames} biases, {DARKS} darks, {FLATS} flats; floor and ours run "
            f"{arguments.repeat} times, alternated: median times, and the median of each run's "
            f"ratio to the floors run beside it. Whole run: {elapsed / 60:.1f} "
            f"min; load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} "
            "after (other work on the machine slows the two-process stages most).")


def check_space(arguments, size):
    pixels = size * size
    frames = arguments.frames
    needed = pixels * (RAW_BYTES * (2 * frames + DARKS + FLATS) + FLOAT_BYTES * frames * 2
                       + NAIVE_BYTES * min(frames, NAIVE_FRAMES_BIG))
    free = shutil.disk_usage(arguments.workdir).free
    if free < needed:
        raise SystemExit(f"{arguments.workdir} has {free / GIGABYTE:.1f} GB free; {size}x{size} "
                         f"needs about {needed / GIGABYTE:.1f} GB: use --workdir or --frames")


class MemorySampler(threading.Thread):
    """The peak of the memory a process and its descendants own: anonymous memory and shared
    memory, each page counted once (``Pss_Anon + Pss_Shmem``); not the page cache of files."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.peak = max(self.peak, tree_anonymous_bytes(self.pid))
            self._halt.wait(SAMPLE_SECONDS)

    def stop(self):
        self._halt.set()
        self.join()


def tree_anonymous_bytes(root):
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stream:
                    fields = stream.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as stream:
                for line in stream:
                    if line.startswith(("Pss_Anon:", "Pss_Shmem:")):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def log(text):
    print(text, file=sys.stderr, flush=True)


# --- the stages (children) -----------------------------------------------------------------

def paths(arguments):
    base = os.path.join(arguments.workdir, str(arguments.size))
    return {"calibration": os.path.join(base, "calibration"), "lights": os.path.join(base, "lights"),
            "library": os.path.join(base, "library"), "floor": os.path.join(base, "floor"),
            "naive": os.path.join(base, "naive")}


def stage_generate(arguments):
    """Bias, dark, flat and light frames, written as the telescope writes them."""
    from torosmanager.devices.camera import CameraInfo
    from torosmanager.telescope.fits import Exposure, write_frame

    places = paths(arguments)
    size = arguments.size
    camera = CameraInfo(name="benchmark CCD", width=size, height=size, binning=1, gain=GAIN,
                        read_noise=READ_NOISE, pixel_size=9.0, max_adu=65535)
    site = {"Name": "CTMO", "Latitude": 25.9958, "Longitude": -97.569, "Elevation": 12.0}
    rng = np.random.default_rng(size)
    flat = _flat_response(size, rng)
    start = datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc)
    plan = ([("BIAS", 0.0, "calibration")] * arguments.frames
            + [("DARK", DARK_SECONDS, "calibration")] * DARKS
            + [("FLAT", FLAT_SECONDS, "calibration")] * FLATS
            + [("LIGHT", LIGHT_SECONDS, "lights")] * arguments.frames)
    for number, (kind, seconds, place) in enumerate(plan, start=1):
        electrons = np.full((size, size), DARK_CURRENT * seconds, dtype=np.float32)
        if kind == "FLAT":
            electrons += FLAT_LEVEL * flat
        elif kind == "LIGHT":
            electrons += SKY * seconds * flat
        noise = rng.standard_normal((size, size), dtype=np.float32)
        noise *= np.sqrt(electrons + READ_NOISE ** 2)       # photon and read noise, e-
        electrons += noise
        del noise
        electrons /= GAIN
        electrons += BIAS_LEVEL
        np.rint(electrons, out=electrons)
        np.clip(electrons, 0, 65535, out=electrons)
        exposure = Exposure(start=start + timedelta(seconds=40 * number), seconds=seconds,
                            frame_type=kind, filter_name="R", target="bench", ra=10.0, dec=20.0,
                            altitude=60.0, airmass=1.15, order={"ID": "bench", "User": "bench"},
                            number=number)
        write_frame(os.path.join(places[place], "raw"), exposure, electrons.astype(np.uint16),
                    camera, site, "CTMO")
        del electrons
    return {"seconds": 0.0}


def _flat_response(size, rng):
    rows = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    radius = rows[:, None] ** 2 + rows[None, :] ** 2
    response = 1.0 - 0.1 * radius
    response *= 1.0 + 0.01 * rng.standard_normal((size, size), dtype=np.float32)
    return response


def timed_calibrate(arguments, location, inputs):
    """The pipeline on *location* (its *inputs* read once first) with already started workers:
    its outcome, when each step began (``{step: time}``), and when it started and ended."""
    from torosmanager.preprocessor.pipeline import Settings, calibrate

    runner = warmed_runner(arguments.workers)
    warm(inputs)
    marks = {}

    def progress(step, done, total):
        marks.setdefault(step, time.monotonic())

    try:
        started = time.monotonic()
        outcome = calibrate(location, Settings(workers=arguments.workers,
                                               library=paths(arguments)["library"]),
                            runner, progress=progress)
        ended = time.monotonic()
    finally:
        runner.close()
    return outcome, marks, started, ended


def stage_masters(arguments):
    """The pipeline on the calibration frames: the master bias's time, and every master."""
    places = paths(arguments)
    raw = os.path.join(places["calibration"], "raw")
    outcome, marks, started, ended = timed_calibrate(
        arguments, places["calibration"], [os.path.join(raw, name) for name in os.listdir(raw)])
    first = next(mark for step, mark in marks.items() if step.startswith("bias")
                 and "combining" in step)
    written = next(mark for step, mark in marks.items() if step.startswith("bias")
                   and step.endswith("written"))
    assert len(outcome.masters) == 3, outcome.skipped
    return {"seconds": ended - started, "bias_seconds": written - first}


def quiet_astropy():
    """ccdproc and astropy warn on every frame (MJD-OBS filled in, negative values); the
    benchmark's output is the table."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)


def stage_naive_combine(arguments):
    import ccdproc

    quiet_astropy()
    places = paths(arguments)
    raw = os.path.join(places["calibration"], "raw")
    files = sorted(os.path.join(raw, name) for name in os.listdir(raw) if "_BIAS_" in name)
    options = {} if arguments.size <= NAIVE_FULL_SIZE else {"mem_limit": NAIVE_MEM_LIMIT_BIG}
    warm(files)
    started = time.monotonic()
    ccdproc.combine(files, method="median", unit="adu", **options)
    return {"seconds": time.monotonic() - started}


def warm(files):
    """Read *files* once, so that the timed stage finds them in the page cache, as a night's
    job finds the frames the camera has just written and the masters it has just made."""
    chunk = bytearray(2 ** 24)
    for path in files:
        with open(path, "rb", buffering=0) as stream:
            while stream.readinto(chunk):
                pass


def _library(arguments):
    library = paths(arguments)["library"]
    return [os.path.join(root, name) for root, _, names in os.walk(library) for name in names]


def _lights(arguments):
    raw = os.path.join(paths(arguments)["lights"], "raw")
    return sorted(os.path.join(raw, name) for name in os.listdir(raw) if name.endswith(".fits"))


def floor_one(path, output):
    """Read a raw frame and write it as float32, the pipeline's way, and nothing else (the
    products are flushed to the disk together at the end, as the pipeline does)."""
    from torosmanager.preprocessor.calibrate import BLOCK_BYTES
    from torosmanager.preprocessor.reading import RawFrame
    from torosmanager.preprocessor.writing import ImageWriter

    with RawFrame(path) as frame:
        height, width = frame.shape
        rows = max(1, BLOCK_BYTES // (width * 4))
        with ImageWriter(output, frame.header, frame.shape, durable=False) as writer:
            for start in range(0, height, rows):
                writer.write(frame.rows(start, min(height, start + rows)))


def stage_floor(arguments):
    importlib.import_module("torosmanager.preprocessor.calibrate")  # imports are not timed
    output = paths(arguments)["floor"]
    os.makedirs(output, exist_ok=True)
    lights = _lights(arguments)
    from torosmanager.preprocessor.writing import sync_files

    outputs = [os.path.join(output, os.path.basename(path)) for path in lights]
    warm(lights)
    started = time.monotonic()
    for path, made in zip(lights, outputs):
        floor_one(path, made)
    sync_files(outputs)
    seconds = time.monotonic() - started
    shutil.rmtree(output)
    return {"seconds": seconds}


def stage_floor_parallel(arguments):
    output = paths(arguments)["floor"]
    os.makedirs(output, exist_ok=True)
    lights = _lights(arguments)
    from torosmanager.preprocessor.writing import sync_files

    outputs = [os.path.join(output, os.path.basename(path)) for path in lights]
    runner = warmed_runner(arguments.workers)
    warm(lights)
    try:
        started = time.monotonic()
        for _, _, error in runner.run(floor_one, list(zip(lights, outputs))):
            if error is not None:
                raise error
        sync_files(outputs)
        seconds = time.monotonic() - started
    finally:
        runner.close()
    shutil.rmtree(output)
    return {"seconds": seconds}


def stage_pipeline(arguments):
    """The pipeline on the lights, with the masters of the library; the lights' time."""
    places = paths(arguments)
    outcome, marks, _, ended = timed_calibrate(arguments, places["lights"],
                                               _lights(arguments) + _library(arguments))
    assert len(outcome.products) == arguments.frames and not outcome.skipped, outcome.skipped
    first = next(mark for step, mark in marks.items() if step.startswith("calibrating"))
    for step, mark in marks.items():
        log(f"    {mark - first:7.2f} s  {step}")
    shutil.rmtree(os.path.join(places["lights"], "reduced"))
    return {"seconds": ended - first}


def stage_naive_process(arguments):
    """``ccd_process`` with uncertainty and mask, frame after frame, as a first try would."""
    import astropy.units as u
    import ccdproc
    from astropy.nddata import CCDData

    quiet_astropy()
    places = paths(arguments)
    masters = os.path.join(places["calibration"], "reduced", "masters")
    found = {name.split("_", 1)[0]: os.path.join(masters, name) for name in os.listdir(masters)}
    bias = CCDData.read(found["bias"])
    dark_rate = CCDData.read(found["dark"])
    dark = CCDData(dark_rate.data * DARK_SECONDS / GAIN, unit=u.adu,
                   meta={"EXPTIME": DARK_SECONDS})
    flat = CCDData.read(found["flat"])
    mask = flat.data < 0.5
    output = places["naive"]
    os.makedirs(output, exist_ok=True)
    lights = _lights(arguments)[:arguments.frames]
    warm(lights)
    started = time.monotonic()
    for path in lights:
        ccd = CCDData.read(path, unit="adu")
        ccd = ccdproc.ccd_process(ccd, error=True, gain=GAIN * u.electron / u.adu,
                                  readnoise=READ_NOISE * u.electron, master_bias=bias,
                                  dark_frame=dark, master_flat=flat, bad_pixel_mask=mask,
                                  exposure_key="EXPTIME", exposure_unit=u.s, dark_scale=True,
                                  gain_corrected=False)
        ccd.write(os.path.join(output, os.path.basename(path)), overwrite=True)
    seconds = time.monotonic() - started
    shutil.rmtree(output)
    return {"seconds": seconds}


def warmed_runner(workers):
    """Local workers, already started (their start-up is not what is measured)."""
    from torosmanager.preprocessor.executors import LocalRunner

    runner = LocalRunner(workers)
    for _ in runner.run(time.sleep, [(0.5,)] * workers):
        pass
    return runner


STAGES = {"generate": stage_generate, "masters": stage_masters,
          "naive-combine": stage_naive_combine, "floor": stage_floor,
          "floor-parallel": stage_floor_parallel, "pipeline": stage_pipeline,
          "naive-process": stage_naive_process}


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        metavar="N", help="frame sizes, N x N pixels (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help="lights, and biases for the master (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help="the pipeline's worker processes (default: %(default)s)")
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR,
                        help="where frames are written (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT,
                        help="runs of the floor and of ours, alternated; the median is shown "
                             "(default: %(default)s)")
    parser.add_argument("--skip-naive", action="store_true", help="do not run ccdproc naively")
    parser.add_argument("--keep", action="store_true", help="keep the frames afterwards")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
