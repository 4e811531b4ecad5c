"""Benchmark: the preprocessor against the I/O floor and naive ccdproc, side by side.

For each frame size it generates a night of raw frames as the telescope writes them (uint16,
``BZERO = 32768``), then runs, each in a process of its own whose memory is sampled:

* **I/O floor**: the same window of work as ours and nothing else: find the light frames
  (list the directory), open each, parse its header, read its pixels, write them as float32
  under a temporary name, rename it, and flush every product (and its directory) to the disk
  before the end, as the pipeline does. Plain numpy and astropy; of the pipeline's code only
  the file objects it writes with (:func:`torosmanager.preprocessor.writing.open_output`), so
  that the floor writes as ours can: through the page cache, each file's write-back started
  when it is written, or around it (``O_DIRECT``); each in 1 process and in ``--workers``
  processes. The fastest of the four (the smallest median time) is *the* floor every ratio is
  taken against.
* **ours, calibrate**: the whole ``pipeline.calibrate`` call on the night of lights, with the
  masters of its library, ``--workers`` local processes already started: finding the frames,
  reading every header, the library lookup, the group's shared terms, calibrating and writing
  each frame, and flushing the products to the disk.
* **naive ccdproc, ccd_process**: ``CCDData.read``, ``ccd_process``, ``CCDData.write``, one
  frame after the other in one process: with an uncertainty frame and a bad-pixel mask (it
  writes float64 data, the uncertainty and the mask), and without them.
* **ours, master bias**: the pipeline's master bias of ``--frames`` bias frames.
* **naive ccdproc, combine**: ``ccdproc.combine`` of the same bias frames with its default
  method, ``average``, and with ``median`` (with ``mem_limit`` lowered above
  :data:`NAIVE_FULL_SIZE`, where its default would take most of this machine's memory).

The floors and ours run ``--repeat`` times, alternated (the disk's pace drifts), after a
``sync``; each row shows the median time and the spread (min–max) of its runs. The naive
rows are one run each. The ratio shown is the faster floor's median s/frame divided by the
row's median s/frame, both as printed; a second table pairs ours with the faster floor
round by round (the same round's runs, seconds apart), and the verdicts give the range of
those ratios. Each stage first reads its input files once, untimed, so that it finds them in
the page cache, as a night's job finds the frames the camera has just written and the
masters it has just made.

Memory, both sampled every :data:`SAMPLE_SECONDS` over the stage's process and its
descendants (the workers) and shown at their largest; the owned memory is sampled in one more,
untimed run of each repeated stage (reading it costs the kernel a walk of every mapping, which
would slow the timed runs, ours most), and in the one run of the others:

* **peak RSS**: the sum of the processes' resident set sizes (``VmRSS``): what ``top`` shows,
  counting a page shared by two processes twice and the mapped files' cached pages too;
* **peak owned memory**: ``Pss_Anon + Pss_Shmem``, the anonymous and shared memory the stage
  owns, each page counted once between the processes that map it, not the page cache of
  the files they read (the metric used before both were shown).

MB/s counts the raw frames' bytes. Linux only (``/proc``).

``--profile`` times the phases of calibrating one frame (by default 4096²) in one process,
with the pipeline's own functions: opening it, the shared full-frame terms (read the master
bias, dark and flat, compute ``O`` and ``S``; once per group of frames), reading the pixels,
the arithmetic, writing, and its fsync.

Usage::

    .venv/bin/python bench/preprocessing.py --profile --update-docs   # what the docs show
    .venv/bin/python bench/preprocessing.py --sizes 2048 4096 --skip-naive
    .venv/bin/python bench/preprocessing.py --sizes 4096 --repeat 3 --skip-naive --profile
"""

import argparse
import dataclasses
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from cpu import Conditions, processor_name
from docs_section import update_docs

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = (2048, 4096, 10560)
DEFAULT_FRAMES = 10
DEFAULT_WORKERS = 2
DEFAULT_WORKDIR = "/var/tmp/toros-bench-preprocessing"
DEFAULT_REPEAT = 5
DEFAULT_PROFILE_SIZE = 4096
#: Frames timed by ``--profile`` (the median of each phase is shown).
PROFILE_FRAMES = 5
#: The profile's phase of the shared terms, and its two parts, timed apart
#: (:func:`_terms_parts`): the part that a job whose terms were prepared or kept does not pay.
TERMS_PHASE = "shared terms (once per group)"
TERMS_PARTS = ("… of which computed from the masters (reading them, O and S)",
               "… of which written into shared memory (its pages new)")
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
#: The floor's blocks of rows: about a megabyte of float32, as the pipeline's.
FLOOR_BLOCK_BYTES = 2 ** 20
#: The goal of issue 12: ours at least this fraction of the faster floor's throughput.
GOAL_RATIO = 0.8
MEGABYTE = 1e6
GIGABYTE = 1e9
#: The markers of this benchmark's results in docs/benchmarks.md (``--update-docs``).
#: The rows' names.
FLOOR = "I/O floor: read raw, write float32,"
OURS_BIAS = "ours: master bias (sigma-clipped mean), {workers} workers"
OURS = ("ours: calibrate, a first job, its terms not prepared (a restart during the "
        "observation), {workers} workers{writes}")
OURS_PREPARED = ("ours: calibrate, a first job, its terms prepared at the observation's first "
                 "frame (Prepare Calibration), {workers} workers{writes}")
OURS_LATER = ("ours: calibrate, a later job of the night (the terms kept from the job before), "
              "{workers} workers{writes}")
#: The timed stages of ours, and the short name of each in the round-by-round table.
OURS_JOBS = {"pipeline": "first job, not prepared", "pipeline-prepared": "first job, prepared",
             "pipeline-later": "later job"}


# --- the parent: runs the stages, samples memory, prints the table ----------------------------

def main(argv=None):
    arguments = parse_arguments(argv)
    if arguments.stage:
        result = STAGES[arguments.stage](arguments)
        print(json.dumps(result))
        return 0
    os.makedirs(arguments.workdir, exist_ok=True)
    command = " ".join([".venv/bin/python bench/preprocessing.py"] + list(
        sys.argv[1:] if argv is None else argv))
    started = time.monotonic()
    conditions = Conditions()
    sections = []
    rows = []
    for size in arguments.sizes:
        rows += bench_size(arguments, size)
    if rows:
        sections += [table(rows), "", rounds_table(rows), "", verdicts(arguments, rows)]
    if arguments.profile:
        profile = stage_in_child(arguments, "profile", arguments.profile_size)
        sections += ["", profile_table(arguments, profile)]
    text = "\n".join([header(arguments, command, time.monotonic() - started,
                             conditions), ""] + sections)
    print(text)
    if arguments.update_docs:
        update_docs("preprocessing.py", text)
    if not arguments.keep:
        shutil.rmtree(os.path.join(arguments.workdir, "profile"), ignore_errors=True)
    return 0


def bench_size(arguments, size):
    """Every stage at one frame size; the table's rows."""
    from torosmanager.preprocessor.calibrate import writes_direct

    base = os.path.join(arguments.workdir, str(size))
    shutil.rmtree(base, ignore_errors=True)
    check_space(arguments, size)
    frames = arguments.frames
    workers = arguments.workers
    naive_frames = frames if size <= NAIVE_FULL_SIZE else min(frames, NAIVE_FRAMES_BIG)
    log(f"{size}x{size}: generating {2 * frames + DARKS + FLATS} frames in {base}")
    stage_in_child(arguments, "generate", size)
    # The table's rows, in its order: masters, ccdproc.combine, timed stages, ccd_process.
    made, combined, timed, processed = [], [], [], []
    try:
        masters = stage_in_child(arguments, "masters", size)
        made.append(row(size, OURS_BIAS.format(workers=workers), [masters], frames,
                        key="bias_seconds"))
        # Alternated and repeated: the disk's pace drifts with everything else on it.
        writes = (", writing around the page cache (O_DIRECT)"
                  if writes_direct((size, size), arguments.direct_writes_from)
                  else ", writing through the page cache")
        names = {"floor-1-cache": f"{FLOOR} through the page cache, 1 process",
                 "floor-n-cache": f"{FLOOR} through the page cache, {workers} processes",
                 "floor-1-direct": f"{FLOOR} around the page cache (O_DIRECT), 1 process",
                 "floor-n-direct": f"{FLOOR} around the page cache (O_DIRECT), {workers} "
                                   "processes",
                 "pipeline": OURS.format(workers=workers, writes=writes),
                 "pipeline-prepared": OURS_PREPARED.format(workers=workers, writes=writes),
                 "pipeline-later": OURS_LATER.format(workers=workers, writes=writes)}
        runs = {name: [] for name in names}
        for _ in range(arguments.repeat):
            for name in runs:
                runs[name].append(stage_in_child(arguments, name, size, owned=False))
        # The owned memory in one more run of each, untimed: reading it perturbs the stage.
        memory = {name: stage_in_child(arguments, name, size) for name in names}
        for name, what in names.items():
            timed.append(dict(row(size, what, runs[name], frames, memory=memory[name]),
                              job=OURS_JOBS.get(name),
                              prepare=[run.get("prepare_seconds") for run in runs[name]]))
        # The naive stages come after the timed runs: at 10560² the round right after
        # ccdproc.combine (4-7 GB) was slower (bench/README.md).
        if not arguments.skip_naive:
            limit = ("" if size <= NAIVE_FULL_SIZE
                     else f", mem_limit {NAIVE_MEM_LIMIT_BIG / GIGABYTE:g} GB")
            for method, what in (("average", "average (its default)"), ("median", "median")):
                combine = stage_in_child(arguments, "naive-combine", size, method=method)
                combined.append(row(size, f"naive: ccdproc.combine, {what}{limit}, 1 process",
                                    [combine], frames))
            for uncertainty in (True, False):
                naive = stage_in_child(arguments, "naive-process", size, frames=naive_frames,
                                       uncertainty=uncertainty)
                what = ("with uncertainty and mask" if uncertainty
                        else "without uncertainty or mask")
                processed.append(row(size, f"naive: ccd_process {what}, writes "
                                           f"{naive['written']}, 1 process", [naive],
                                     naive_frames, calibrates=True))
    finally:
        if not arguments.keep:
            shutil.rmtree(base, ignore_errors=True)
    return with_ratios(made + combined + timed + processed)


def stage_in_child(arguments, name, size, frames=None, method=None, uncertainty=None,
                   owned=True):
    """Run one stage in a child process, sampling its memory (its owned memory too when
    *owned*); its result with the peaks."""
    command = [sys.executable, os.path.abspath(__file__), "--stage", name, "--size", str(size),
               "--frames", str(frames or arguments.frames), "--workers", str(arguments.workers),
               "--workdir", arguments.workdir,
               "--direct-writes-from", str(arguments.direct_writes_from)]
    if method:
        command += ["--method", method]
    if uncertainty is not None:
        command += ["--uncertainty", "yes" if uncertainty else "no"]
    log(f"  {name} {method or ''}{'' if uncertainty is None else uncertainty} ...")
    os.sync()  # no stage pays for the write-back of the one before
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    sampler = MemorySampler(child.pid, owned)
    sampler.start()
    output, _ = child.communicate()
    sampler.stop()
    if child.returncode != 0:
        raise SystemExit(f"stage {name} at {size} failed with status {child.returncode}")
    result = json.loads(output.strip().splitlines()[-1])
    result["rss_gb"] = sampler.peak_rss / GIGABYTE
    result["owned_gb"] = sampler.peak_owned / GIGABYTE if owned else None
    log(f"  {name}: {result.get('seconds', 0):.3f} s, peak RSS {result['rss_gb']:.2f} GB"
        + (f", owned {result['owned_gb']:.2f} GB" if owned else ""))
    return result


def row(size, what, results, frames, key="seconds", calibrates=None, memory=None):
    """A row of the table from the runs *results* of one stage (times per frame, rounded as
    printed, so that the ratios follow from the printed columns) and, for the owned memory,
    its untimed *memory* run (default: the runs themselves)."""
    memory = [memory] if memory is not None else results
    per_frame = [result[key] / frames for result in results]
    median = statistics.median(per_frame)
    raw_mb = size * size * RAW_BYTES / MEGABYTE
    return {"size": size, "what": what, "frames": frames, "runs": len(results),
            "per_run": [seconds_shown(value) for value in per_frame],
            "median": seconds_shown(median), "MB/s": raw_mb / median,
            "rss": max(result["rss_gb"] for result in results + memory),
            "owned": max(result["owned_gb"] for result in memory),
            "calibrates": what.startswith(("ours: calibrate", "naive: ccd_process"))
            if calibrates is None else calibrates,
            "floor": what.startswith("I/O floor"), "ratio": None}


def seconds_shown(value):
    """*value* rounded as the table prints it: four significant digits."""
    return float(f"{value:.4g}")


def with_ratios(rows):
    """Mark the faster floor of the size and give each calibrating row its ratio to it."""
    floors = [each for each in rows if each["floor"]]
    if not floors:
        return rows
    faster = min(floors, key=lambda each: each["median"])
    faster["faster"] = True
    for each in rows:
        if each["calibrates"]:
            each["ratio"] = faster["median"] / each["median"]
            each["against"] = faster
    return rows


def table(rows):
    lines = ["| frames | what | n | runs | s/frame, median | spread (min–max) | MB/s (raw) "
             "| peak RSS, sum over processes (GB) | peak owned memory, Pss_Anon + Pss_Shmem (GB) "
             "| faster floor's s/frame ÷ this row's (medians shown) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for each in rows:
        what = each["what"] + (" — **the faster floor**" if each.get("faster") else "")
        spread = (f"{min(each['per_run']):.4g}–{max(each['per_run']):.4g}" if each["runs"] > 1
                  else "1 run")
        ratio = f"{each['ratio']:.2f}" if each["ratio"] is not None else ""
        lines.append(f"| {each['size']}² | {what} | {each['frames']} | {each['runs']} | "
                     f"{each['median']:.4g} | {spread} | {each['MB/s']:.0f} | "
                     f"{each['rss']:.2f} | {each['owned']:.2f} | {ratio} |")
    return "\n".join(lines)


def paired(floor, ours):
    """Round by round, the faster floor's s/frame divided by ours in the same round (the
    stages' runs in the order they ran), both as printed."""
    return [shown / mine for shown, mine in zip(floor["per_run"], ours["per_run"])]


def rounds_table(rows):
    """Ours beside the faster floor, round by round. A round runs the floors and ours one after
    the other, seconds apart, so its ratio compares them in the same state of the machine;
    the medians' ratio above pairs runs minutes apart."""
    order = list(OURS_JOBS.values())
    ours = sorted((each for each in rows if each.get("job")),
                  key=lambda each: order.index(each["job"]))
    kinds = [job for job in order if any(each["job"] == job for each in ours)]
    lines = ["Round by round (each stage's runs in the order they ran; a round runs the floors, "
             "then ours, seconds apart): the faster floor's s/frame divided by ours in the same "
             "round, both as shown.", "",
             "| frames | round | the faster floor (s/frame) | "
             + " | ".join(f"ours, a {kind} (s/frame) | floor ÷ ours" for kind in kinds)
             + " |", "|---|---:|---:|" + "---:|---:|" * len(kinds)]
    for size in sorted({each["size"] for each in ours}):
        at_size = [each for each in ours if each["size"] == size]
        floor = at_size[0]["against"]
        columns = [(each["per_run"], paired(floor, each)) for each in at_size]
        for index, shown in enumerate(floor["per_run"]):
            cells = " | ".join(f"{mine[index]:.4g} | {ratios[index]:.3f}"
                               for mine, ratios in columns)
            lines.append(f"| {size}² | {index + 1} | {shown:.4g} | {cells} |")
    return "\n".join(lines)


def verdicts(arguments, rows):
    """The goals of issue 12, one line each, from the tables' columns."""
    lines = []
    for each in rows:
        if not each["what"].startswith("ours: calibrate"):
            continue
        floor = each["against"]
        ratios = paired(floor, each)
        met = each["ratio"] >= GOAL_RATIO
        verdict = ("met" if met else
                   f"NOT met: {GOAL_RATIO - each['ratio']:.3f} short, ours would need "
                   f"≤ {floor['median'] / GOAL_RATIO:.4g} s/frame")
        lines.append(f"- {each['size']}², {each['what']}: {each['median']:.4g} s/frame against "
                     f"the faster floor ({floor['what']}) {floor['median']:.4g}: "
                     f"**{each['ratio']:.2f}×** (round by round {min(ratios):.3f}–"
                     f"{max(ratios):.3f}×, ≥ {GOAL_RATIO}× in "
                     f"{sum(ratio >= GOAL_RATIO for ratio in ratios)} of {len(ratios)} rounds). "
                     f"Goal ≥ {GOAL_RATIO}×: {verdict}." + _preparation(each))
    for each in rows:
        if each["what"].startswith("ours: master bias") and each["size"] == max(
                row_["size"] for row_ in rows):
            lines.append(f"- Master bias of {each['frames']} {each['size']}² frames: "
                         f"{each['median'] * each['frames']:.2f} s, peak RSS {each['rss']:.2f} "
                         f"GB, peak owned memory {each['owned']:.2f} GB.")
    return "\n".join(lines)


def _preparation(each):
    """What the Prepare Calibration of a prepared row took, not counted in its s/frame."""
    seconds = [value for value in each.get("prepare", ()) if value is not None]
    if not seconds:
        return ""
    return (f" The preparation, untimed above (it runs while the telescope takes the other "
            f"frames): {statistics.median(seconds):.3g} s, {min(seconds):.3g}–"
            f"{max(seconds):.3g} s over the runs.")


def header(arguments, command, elapsed, conditions):
    import astropy
    import ccdproc

    cpu = processor_name("unknown CPU")
    with open("/proc/meminfo", encoding="ascii") as stream:
        memory = int(stream.readline().split()[1]) * 1024 / 2 ** 30
    disk = shutil.disk_usage(arguments.workdir)
    sizes = ", ".join(f"{size}²" for size in arguments.sizes) or "none"
    return (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Command: `{command}`. Sizes "
            f"measured in this run: {sizes}; {arguments.frames} lights and "
            f"{arguments.frames} biases per size ({DARKS} darks, {FLATS} flats), "
            f"{arguments.workers} workers; the floors and ours run {arguments.repeat} times, "
            f"alternated, then once more each, untimed, for their owned memory"
            f"{'' if arguments.skip_naive else '; the naive stages and masters once'}. Machine: "
            f"`nproc` {len(os.sched_getaffinity(0))} ({os.cpu_count()} CPUs, {cpu}), "
            f"{memory:.0f} GiB; disk: {disk_description(arguments.workdir)}, "
            f"{disk.free / 2 ** 30:.0f} GiB free in {arguments.workdir}; Python "
            f"{platform.python_version()}, numpy {np.__version__}, astropy "
            f"{astropy.__version__}, ccdproc {ccdproc.__version__}. Whole run "
            f"{elapsed / 60:.1f} min; {conditions.text()}. "
            "Times run from the first thing each does (listing the frames) to the last product "
            "flushed to the disk; the ratio column is the faster floor's median s/frame divided "
            "by the row's median s/frame, both as shown.")


def disk_description(path):
    """The device and file system holding *path*, from ``/proc/self/mounts`` and sysfs."""
    best, device, kind = "", "?", "?"
    try:
        with open("/proc/self/mounts", encoding="ascii", errors="replace") as stream:
            for line in stream:
                fields = line.split()
                if len(fields) > 2 and os.path.realpath(path).startswith(fields[1]) and len(
                        fields[1]) > len(best):
                    best, device, kind = fields[1], fields[0], fields[2]
    except OSError:
        pass
    name = os.path.basename(device)
    rotational = _read(f"/sys/block/{name}/queue/rotational")
    model = _read(f"/sys/block/{name}/device/model")
    what = "virtio disk" if name.startswith("vd") else "disk"
    return (f"{device} ({kind}, {what}{', ' + model if model else ''}"
            f"{', rotational ' + rotational if rotational else ''})")


def _read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as stream:
            return stream.read().strip()
    except OSError:
        return ""


def profile_table(arguments, profile):
    phases = profile["phases"]
    total = sum(statistics.median(values) for name, values in phases.items()
                if name not in (TERMS_PHASE, *TERMS_PARTS))
    lines = [f"**Profile of one {arguments.profile_size}² frame** (`--profile`: one process, "
             f"the pipeline's own functions, {PROFILE_FRAMES} frames, median and spread of each "
             "phase; the first frame maps the terms' pages). The shared terms (read the master "
             "bias, dark and flat, compute O and S, write them to shared memory) are made once "
             "per group of frames, here by one process, in the pipeline by the workers together, "
             "a band of rows each; they are timed whole, then in their two parts apart (what a "
             "job whose terms were prepared or kept does not pay):", "",
             "| phase | ms, median | spread (min–max) | share of a frame |",
             "|---|---:|---:|---:|"]
    for name, values in phases.items():
        median = statistics.median(values) * 1000
        share = "" if name in (TERMS_PHASE, *TERMS_PARTS) else f"{median / 1000 / total:.0%}"
        lines.append(f"| {name} | {median:.1f} | {min(values) * 1000:.1f}–"
                     f"{max(values) * 1000:.1f} | {share} |")
    lines.append(f"| **a frame, without the shared terms** | {total * 1000:.1f} | | 100% |")
    return "\n".join(lines)


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
    """The peaks of the memory of a process and its descendants: the sum of their resident
    set sizes (``VmRSS``, cheap to read), and, when *owned*, the memory they own
    (``Pss_Anon + Pss_Shmem``, from ``smaps_rollup``: the kernel walks every mapping for it,
    about 13 ms for a worker mapping 3 GB, so it is sampled only in the untimed memory runs)."""

    def __init__(self, pid, owned):
        super().__init__(daemon=True)
        self.pid = pid
        self.owned = owned
        self.peak_rss = 0
        self.peak_owned = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            rss, owned = tree_memory(self.pid, self.owned)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_owned = max(self.peak_owned, owned)
            self._halt.wait(SAMPLE_SECONDS)

    def stop(self):
        self._halt.set()
        self.join()


def tree_memory(root, owned_too):
    """``(VmRSS, Pss_Anon + Pss_Shmem or 0)`` summed over *root* and its descendants, bytes."""
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
    rss = owned = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as stream:
                for line in stream:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
            if owned_too:
                with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as stream:
                    for line in stream:
                        if line.startswith(("Pss_Anon:", "Pss_Shmem:")):
                            owned += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, owned


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


def timed_calibrate(arguments, location, inputs, terms_store=None):
    """The pipeline on *location* (its *inputs* read once first) with already started workers
    (and *terms_store*, see :func:`~torosmanager.preprocessor.pipeline.calibrate`): its
    outcome, when each step began (``{step: time}``), and when it started and ended."""
    from torosmanager.preprocessor.pipeline import Settings, calibrate

    runner = warmed_runner(arguments.workers)
    # A daemon imports astropy's NDData once, at its first master (seconds), as it starts its
    # workers once: neither is a job's own time.
    importlib.import_module("astropy.nddata")
    warm(inputs)
    marks = {}

    def progress(step, done, total):
        marks.setdefault(step, time.monotonic())

    try:
        started = time.monotonic()
        outcome = calibrate(location, Settings(
            workers=arguments.workers, library=paths(arguments)["library"],
            direct_writes_from=arguments.direct_writes_from),
                            runner, progress=progress, terms_store=terms_store)
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
    ccdproc.combine(files, method=arguments.method, unit="adu", **options)
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


def floor_frame(path, output, direct):
    """Read the raw frame *path* and write it to *output* as float32 (physical values), the
    plainest way, under a temporary name then renamed; flushed later (:func:`stage_floor`).

    The file is written with the pipeline's file classes only (through the page cache, its
    write-back started at the end, or around it, *direct*): the floor writes as ours does,
    and does nothing else.
    """
    from astropy.io import fits

    from torosmanager.preprocessor.writing import open_output, start_writeback

    block = 2880
    with open(path, "rb", buffering=0) as source:
        header = fits.Header.fromfile(source)
        source.seek(-(-source.tell() // block) * block)
        height, width = int(header["NAXIS2"]), int(header["NAXIS1"])
        stored = np.dtype(">i2") if header["BITPIX"] == 16 else np.dtype(">f4")
        bzero = np.float32(header.get("BZERO", 0.0))
        header["BITPIX"] = -32
        for key in ("BZERO", "BSCALE"):
            header.remove(key, ignore_missing=True)
        rows = max(1, FLOOR_BLOCK_BYTES // (width * 4))
        raw = np.empty((rows, width), dtype=stored)
        pixels = np.empty((rows, width), dtype=np.float32)
        temporary = output + ".part"
        target = open_output(temporary, direct)
        try:
            target.write_bytes(header.tostring().encode("ascii"))
            for start in range(0, height, rows):
                count = min(rows, height - start)
                view = memoryview(raw[:count]).cast("B")
                done = 0
                while done < len(view):
                    done += source.readinto(view[done:])
                np.add(raw[:count], bzero, out=pixels[:count])
                target.write_pixels(pixels[:count])
            target.write_bytes(b"\0" * (-target.tell() % block))
            target.finish()
            start_writeback(target.fileno())
        finally:
            target.close()
        os.replace(temporary, output)


def stage_floor(arguments, processes, direct):
    importlib.import_module("astropy.io.fits")  # imports are not timed
    from torosmanager.preprocessor.writing import sync_files

    output = paths(arguments)["floor"]
    raw = os.path.join(paths(arguments)["lights"], "raw")
    os.makedirs(output, exist_ok=True)
    runner = warmed_runner(processes) if processes > 1 else None
    warm(_lights(arguments))
    try:
        started = time.monotonic()
        lights = sorted(os.path.join(raw, name) for name in os.listdir(raw)
                        if name.lower().endswith((".fits", ".fit", ".fts")))
        work = [(path, os.path.join(output, os.path.basename(path)), direct)
                for path in lights]
        if runner is None:
            for each in work:
                floor_frame(*each)
        else:
            for _, _, error in runner.run(floor_frame, work):
                if error is not None:
                    raise error
        sync_files([made for _, made, _ in work])
        seconds = time.monotonic() - started
    finally:
        if runner is not None:
            runner.close()
    assert len(lights) == arguments.frames
    shutil.rmtree(output)
    return {"seconds": seconds}


def stage_pipeline(arguments):
    """The pipeline on the lights, with the masters of the library: the whole call."""
    places = paths(arguments)
    outcome, marks, started, ended = timed_calibrate(arguments, places["lights"],
                                                     _lights(arguments) + _library(arguments))
    assert len(outcome.products) == arguments.frames and not outcome.skipped, outcome.skipped
    for step, mark in marks.items():
        log(f"    {mark - started:7.3f} s  {step}")
    shutil.rmtree(os.path.join(places["lights"], "reduced"))
    return {"seconds": ended - started}


def stage_pipeline_later(arguments):
    """The pipeline on the lights as a later job of a night: a job before it, on the same
    lights and masters, untimed, left its terms in the store, as in the daemon
    (``Preprocessor → Kept Terms``, its default); only the second job is timed, with workers
    started for it."""
    def job_before(store, inputs):
        timed_calibrate(arguments, paths(arguments)["lights"], inputs, terms_store=store)
        shutil.rmtree(os.path.join(paths(arguments)["lights"], "reduced"))
        os.sync()  # the timed job does not pay for the write-back of the one before
        return {}

    return _timed_after(arguments, job_before)


def stage_pipeline_prepared(arguments):
    """The pipeline on the lights as the first job of a night whose terms the daemon prepared
    at the observation's first frame (the telescope's ``Prepare Calibration``,
    :func:`~torosmanager.preprocessor.pipeline.prepare`, into a store as the daemon's): the
    preparation is not timed, as it runs while the telescope takes the other frames (its
    seconds are returned); the job is, with workers started for it."""
    from torosmanager.preprocessor.pipeline import Settings, prepare

    def preparation(store, inputs):
        warm(inputs)
        began = time.monotonic()
        said = prepare(_lights(arguments)[:1], Settings(library=paths(arguments)["library"]),
                       store)
        assert said.startswith("calibration terms prepared for 1 group"), said
        return {"prepare_seconds": time.monotonic() - began}

    return _timed_after(arguments, preparation)


def _timed_after(arguments, untimed):
    """The pipeline on the lights, timed, with the daemon's store of terms (``Preprocessor →
    Kept Terms``, its default) after ``untimed(store, inputs)`` filled it; the stage's result,
    with what *untimed* returned."""
    from torosmanager.config import default_config
    from torosmanager.preprocessor.terms_store import TermsStore

    places = paths(arguments)
    store = TermsStore(default_config()["Preprocessor"]["Kept Terms"] * 2 ** 20)
    try:
        inputs = _lights(arguments) + _library(arguments)
        result = untimed(store, inputs)
        outcome, _, started, ended = timed_calibrate(arguments, places["lights"], inputs,
                                                     terms_store=store)
    finally:
        store.close()
    assert len(outcome.products) == arguments.frames and not outcome.skipped, outcome.skipped
    shutil.rmtree(os.path.join(places["lights"], "reduced"))
    return dict(result, seconds=ended - started)


def stage_naive_process(arguments):
    """``ccd_process`` frame after frame, as a first try would: with an uncertainty frame and
    a bad-pixel mask, or without them."""
    import astropy.units as u
    import ccdproc
    from astropy.io import fits
    from astropy.nddata import CCDData

    quiet_astropy()
    uncertainty = arguments.uncertainty == "yes"
    places = paths(arguments)
    masters = os.path.join(places["calibration"], "reduced", "masters")
    found = {name.split("_", 1)[0]: os.path.join(masters, name) for name in os.listdir(masters)}
    bias = CCDData.read(found["bias"])
    dark_rate = CCDData.read(found["dark"])
    dark = CCDData(dark_rate.data * DARK_SECONDS / GAIN, unit=u.adu,
                   meta={"EXPTIME": DARK_SECONDS})
    flat = CCDData.read(found["flat"])
    mask = flat.data < 0.5 if uncertainty else None
    output = places["naive"]
    os.makedirs(output, exist_ok=True)
    lights = _lights(arguments)[:arguments.frames]
    warm(lights)
    options = ({"error": True, "readnoise": READ_NOISE * u.electron, "bad_pixel_mask": mask}
               if uncertainty else {})
    started = time.monotonic()
    for path in lights:
        ccd = CCDData.read(path, unit="adu")
        ccd = ccdproc.ccd_process(ccd, gain=GAIN * u.electron / u.adu, master_bias=bias,
                                  dark_frame=dark, master_flat=flat, exposure_key="EXPTIME",
                                  exposure_unit=u.s, dark_scale=True, gain_corrected=False,
                                  **options)
        ccd.write(os.path.join(output, os.path.basename(path)), overwrite=True)
    seconds = time.monotonic() - started
    with fits.open(os.path.join(output, os.path.basename(lights[0]))) as written:
        kinds = [f"{hdu.data.dtype.name}" + (f" {hdu.name.lower()}" if index else " data")
                 for index, hdu in enumerate(written) if hdu.data is not None]
    shutil.rmtree(output)
    return {"seconds": seconds, "written": " + ".join(kinds)}


def stage_profile(arguments):
    """Each phase of calibrating one frame, in this process, with the pipeline's functions."""
    from torosmanager.preprocessor import calibrate
    from torosmanager.preprocessor.layout import Layout
    from torosmanager.preprocessor.reading import RawFrame
    from torosmanager.preprocessor.writing import ImageWriter

    arguments.frames = PROFILE_FRAMES
    arguments.workdir = os.path.join(arguments.workdir, "profile")  # its own night
    places = paths(arguments)
    if not os.path.isdir(places["library"]):
        stage_generate(arguments)
        stage_masters(arguments)
    lights = _lights(arguments)
    library = {kind: next(path for path in _library(arguments) if f"/{kind}/" in path)
               for kind in ("bias", "dark", "flat")}
    warm(lights + list(library.values()))
    layout = Layout.for_frame((arguments.size, arguments.size))
    output = os.path.join(paths(arguments)["lights"], "profile")
    os.makedirs(output, exist_ok=True)
    phases = {name: [] for name in (
        TERMS_PHASE, *TERMS_PARTS, "open, parse the header", "read (raw → float32)",
        "arithmetic (− O, × S)", "write (big-endian float32, handed to the disk)",
        "finish, start write-back, close, rename", "fsync")}
    clock = time.perf_counter
    task = calibrate.ScienceTask(path=lights[0], output="", layout=layout,
                                 bias=library["bias"], dark=library["dark"],
                                 flat=library["flat"], exptime=LIGHT_SECONDS, gain=GAIN)
    with RawFrame(lights[0]) as frame:
        bzero = calibrate.folded_bzero(layout, frame.bzero, frame.bscale)
    directory = tempfile.mkdtemp(prefix="toros-bench-", dir=calibrate.SHARED_MEMORY)
    prefix = os.path.join(directory, "group")
    try:
        # The group's terms, made as many times as frames are timed, for their spread; the
        # frames then use the last ones, as a worker's frames use their group's (in the
        # pipeline the workers fill them as their first frames need them).
        for _ in lights:
            calibrate.forget_terms()
            calibrate.remove_terms(prefix)
            begin = clock()
            calibrate.share_terms(task, bzero, prefix)
            group = calibrate.terms(dataclasses.replace(task, terms=prefix, terms_bzero=bzero),
                                    bzero)
            group.fill_all()
            phases[TERMS_PHASE].append(clock() - begin)
        for computed, written in _terms_parts(task, bzero, prefix, len(lights)):
            phases[TERMS_PARTS[0]].append(computed)
            phases[TERMS_PARTS[1]].append(written)
    finally:
        calibrate.remove_terms(prefix)  # the maps keep their pages meanwhile
        os.rmdir(directory)
    height, width = layout.shape
    rows = calibrate.block_rows(width)
    buffer = np.empty((rows, width), dtype=np.float32)
    for path in lights:
        task = dataclasses.replace(task, path=path,
                                   output=os.path.join(output, os.path.basename(path)))
        times = dict.fromkeys(phases, 0.0)
        for name in (TERMS_PHASE, *TERMS_PARTS):
            del times[name]
        begin = clock()
        frame = RawFrame(path)
        scratch = calibrate.native_scratch(frame, (rows, width))
        writer = ImageWriter(task.output, frame.header, layout.shape, durable=False,
                             cards=task.cards, history=task.history,
                             direct=calibrate.writes_direct(layout.shape,
                                                            arguments.direct_writes_from))
        times["open, parse the header"] = clock() - begin
        with writer:
            for start in range(0, height, rows):
                stop = min(height, start + rows)
                block = buffer[:stop - start]
                mark = clock()
                calibrate.read_block(frame, None, start, stop, block, scratch)
                read = clock()
                calibrate.apply_terms(block, *group.rows(start, stop))
                computed = clock()
                writer.write(block)
                written = clock()
                times["read (raw → float32)"] += read - mark
                times["arithmetic (− O, × S)"] += computed - read
                times["write (big-endian float32, handed to the disk)"] += written - computed
            closing = clock()
        frame.close()
        synced = clock()
        descriptor = os.open(task.output, os.O_RDONLY)
        os.fsync(descriptor)
        os.close(descriptor)
        times["finish, start write-back, close, rename"] = synced - closing
        times["fsync"] = clock() - synced
        for name, value in times.items():
            phases[name].append(value)
    shutil.rmtree(output)
    return {"phases": phases}


def _terms_parts(task, bzero, prefix, runs):
    """The two parts of making a group's shared terms, timed apart *runs* times: computing
    every band from the masters into the same two buffers, and writing the bands into new
    files in shared memory (pages the system must give); ``[(computed, written), ...]``."""
    from torosmanager.preprocessor import calibrate

    height, width = task.layout.shape
    maker = calibrate._TermMaker(task, bzero)
    buffers = [np.empty((maker.rows, width), dtype=np.float32) for _ in range(2)]
    bands = [(start, min(height, start + maker.rows)) for start in range(0, height, maker.rows)]
    row_bytes = width * np.dtype(np.float32).itemsize
    parts = []
    try:
        for _ in range(runs):
            begin = time.perf_counter()
            for start, stop in bands:
                maker.compute(start, stop, *(buffer[:stop - start] for buffer in buffers))
            computed = time.perf_counter() - begin
            calibrate.remove_terms(prefix)
            calibrate.share_terms(task, bzero, prefix)
            begin = time.perf_counter()
            descriptors = [os.open(prefix + suffix, os.O_RDWR)
                           for suffix in (calibrate.OFFSET_SUFFIX, calibrate.SCALE_SUFFIX)]
            for start, stop in bands:
                for descriptor, buffer in zip(descriptors, buffers):
                    calibrate._write_at(descriptor, buffer[:stop - start], start * row_bytes)
            for descriptor in descriptors:
                os.close(descriptor)
            parts.append((computed, time.perf_counter() - begin))
    finally:
        maker.close()
    return parts


def floor_stage(processes, direct):
    """The stage of the floor in 1 or ``"n"`` (``--workers``) processes, *direct* or not."""
    return lambda arguments: stage_floor(
        arguments, arguments.workers if processes == "n" else 1, direct)


def warmed_runner(workers):
    """Local workers, already started (their start-up is not what is measured)."""
    from torosmanager.preprocessor.executors import LocalRunner

    runner = LocalRunner(workers)
    for _ in runner.run(time.sleep, [(0.5,)] * workers):
        pass
    return runner


STAGES = {"generate": stage_generate, "masters": stage_masters,
          "naive-combine": stage_naive_combine, "pipeline": stage_pipeline,
          "pipeline-prepared": stage_pipeline_prepared, "pipeline-later": stage_pipeline_later,
          "naive-process": stage_naive_process, "profile": stage_profile,
          "floor-1-cache": floor_stage(1, False), "floor-n-cache": floor_stage("n", False),
          "floor-1-direct": floor_stage(1, True), "floor-n-direct": floor_stage("n", True)}


def parse_arguments(argv):
    from torosmanager.config import default_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=list(DEFAULT_SIZES),
                        metavar="N", help="frame sizes, N x N pixels (default: %(default)s; "
                                          "none with --profile alone)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help="lights, and biases for the master (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help="the pipeline's worker processes, and the floor's second count "
                             "of processes (default: %(default)s)")
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR,
                        help="where frames are written (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT,
                        help="runs of the floors and of ours, alternated; the median and the "
                             "spread are shown (default: %(default)s)")
    parser.add_argument("--skip-naive", action="store_true", help="do not run ccdproc naively")
    parser.add_argument("--direct-writes-from", type=int, metavar="MB",
                        default=default_config()["Preprocessor"]["Direct Writes From"],
                        help="ours writes products of at least MB MiB around the page "
                             "cache, 0: none (Preprocessor -> Direct Writes From; default: the "
                             "configuration's, %(default)s)")
    parser.add_argument("--profile", action="store_true",
                        help="also time the phases of calibrating one frame")
    parser.add_argument("--profile-size", type=int, default=DEFAULT_PROFILE_SIZE,
                        help="the profiled frame's size (default: %(default)s)")
    parser.add_argument("--update-docs", action="store_true",
                        help="rewrite the results in docs/benchmarks.md (between its markers)")
    parser.add_argument("--keep", action="store_true", help="keep the frames afterwards")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--uncertainty", choices=("yes", "no"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
