"""Benchmark: a calibration job's look-ups in the master library, as the library grows.

A night without its own masters takes the library's (``Preprocessor → Master Library``): its
job looks at every master of its geometry, bias, darks and the flats of its filters, to find the
newest one not after the night. After a year of nights that is hundreds of files. This measures
those look-ups, exactly as a light job of such a night makes them (``MasterLibrary.find`` for
the bias and the flat, ``MasterLibrary.darks``), in two ways, alternated in one run:

- **every header read**: each master's header is read at each job, as the library did before
  it kept them, and as it still does at the daemon's first job;
- **ours, a later job**: the headers kept from the job before, each file's ``stat`` compared.

The library is made of real masters: a night of 2048² frames (``bench/preprocessing.py``'s
generator) calibrated by the pipeline gives a bias, a dark and a flat; each night of the library
is a copy of them with its own ``NIGHT``, the pixels left sparse (a look-up reads headers only).
The headers are in the page cache for both ways, as in a daemon that looked before.

Usage::

    .venv/bin/python bench/master_library.py                   # 30, 365, 1095 nights: ~1 min
    .venv/bin/python bench/master_library.py --nights 365 --repeat 9
    .venv/bin/python bench/master_library.py --update-docs
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from types import SimpleNamespace

from cpu import Conditions, machine_line
from docs_section import update_docs

#: The raw frames' size, as bench/preprocessing.py's smallest (the header is the same at any).
SIZE = 2048
#: The night the measured job calibrates: after every night of the library.
JOB_NIGHT = "20991231"
FIRST_NIGHT = date(2024, 1, 1)


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nights", type=int, nargs="+", default=[30, 365, 1095],
                        help="nights in the library, each a bias, a dark and a flat "
                             "(default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="jobs timed each way, alternated (default: %(default)s)")
    parser.add_argument("--workdir", default=None,
                        help="where the library is made (default: a temporary directory in "
                             "/var/tmp)")
    parser.add_argument("--update-docs", action="store_true",
                        help="rewrite the results in docs/benchmarks.md (between its markers)")
    return parser.parse_args(argv)


def seed_masters(workdir):
    """A night's bias, dark and flat, made by the pipeline from generated frames: their paths,
    relative to the library they were kept in, and that library."""
    import preprocessing
    from torosmanager.preprocessor.executors import LocalRunner
    from torosmanager.preprocessor.pipeline import Settings, calibrate

    arguments = SimpleNamespace(workdir=os.path.join(workdir, "frames"), size=SIZE, frames=3)
    preprocessing.stage_generate(arguments)
    library = os.path.join(workdir, "seed")
    runner = LocalRunner(1)
    try:
        outcome = calibrate(preprocessing.paths(arguments)["calibration"],
                            Settings(library=library), runner)
    finally:
        runner.close()
    assert len(outcome.masters) == 3, outcome.skipped
    shutil.rmtree(arguments.workdir)
    return library, sorted(os.path.relpath(os.path.join(root, name), library)
                           for root, _, names in os.walk(library) for name in names)


def build_library(seed, masters, root, nights):
    """*nights* nights of copies of the *masters* of *seed* under *root*, pixels sparse."""
    from astropy.io import fits

    shutil.rmtree(root, ignore_errors=True)
    for relative in masters:
        source = os.path.join(seed, relative)
        header = fits.getheader(source)
        size = os.path.getsize(source)
        directory = os.path.join(root, os.path.dirname(relative))
        os.makedirs(directory, exist_ok=True)
        digest = os.path.splitext(os.path.basename(relative))[0].rsplit("_", 1)[-1]
        for number in range(nights):
            night = (FIRST_NIGHT + timedelta(days=number)).strftime("%Y%m%d")
            header["NIGHT"] = night
            with open(os.path.join(directory, f"{night}_{digest}.fits"), "wb") as stream:
                stream.write(header.tostring().encode("ascii"))
                stream.truncate(size)
    return nights * len(masters)


def job_lookups(root):
    """A light job's look-ups (bias, darks, the R flat) on a night after every master."""
    from torosmanager.preprocessor.classify import Geometry, Kind
    from torosmanager.preprocessor.library import MasterLibrary

    library = MasterLibrary(root)
    geometry, shape = Geometry(SIZE, SIZE, 1, 1), (SIZE, SIZE)
    chosen = [library.find(Kind.BIAS, geometry, shape, JOB_NIGHT),
              *library.darks(geometry, shape, JOB_NIGHT),
              library.find(Kind.FLAT, geometry, shape, JOB_NIGHT, "R")]
    assert len(chosen) == 3 and all(master is not None for master in chosen), chosen
    return chosen


def timed(function, *arguments):
    started = time.perf_counter()
    function(*arguments)
    return time.perf_counter() - started


def measure(root, repeat):
    """Seconds of each job, each way: ``{"every": [...], "ours": [...]}``, alternated (the
    order swapped every other round)."""
    from torosmanager.preprocessor import library

    def every_header():
        library._known.clear()  # the library forgets every header: it reads them all again
        job_lookups(root)

    job_lookups(root)  # the headers into the page cache, for both ways
    seconds = {"every": [], "ours": []}
    for round_ in range(repeat):
        order = ["every", "ours"] if round_ % 2 == 0 else ["ours", "every"]
        for way in order:
            if way == "every":
                seconds[way].append(timed(every_header))
            else:
                seconds[way].append(timed(job_lookups, root))
    return seconds


def table(results):
    lines = ["| nights | masters | what | jobs | ms a job, median | spread (min–max) | "
             "every header ÷ ours (medians shown) |",
             "|---:|---:|---|---:|---:|---:|---:|"]
    for nights, masters, seconds in results:
        every = round(statistics.median(seconds["every"]) * 1000, 2)
        ours = round(statistics.median(seconds["ours"]) * 1000, 2)
        for way, what, ratio in (
                ("every", "every header read at each job (the library before it kept them; "
                          "ours at the daemon's first job)", ""),
                ("ours", "ours: a later job, the headers kept while their files are unchanged",
                 f"{every / ours:.0f}")):
            values = seconds[way]
            median = every if way == "every" else ours
            lines.append(f"| {nights} | {masters} | {what} | {len(values)} | {median:g} | "
                         f"{min(values) * 1000:.2f}–{max(values) * 1000:.2f} | {ratio} |")
    return "\n".join(lines)


def main(argv=None):
    arguments = parse_arguments(argv)
    command = " ".join([".venv/bin/python bench/master_library.py"] + list(
        sys.argv[1:] if argv is None else argv))
    conditions = Conditions()
    started = time.monotonic()
    workdir = arguments.workdir or tempfile.mkdtemp(prefix="toros-bench-library-",
                                                    dir="/var/tmp")
    results = []
    try:
        seed, masters = seed_masters(workdir)
        for nights in arguments.nights:
            root = os.path.join(workdir, "library")
            count = build_library(seed, masters, root, nights)
            results.append((nights, count, measure(root, arguments.repeat)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Command: `{command}`. "
            f"{machine_line()}. Each night of the library: a bias, a dark and an R flat of "
            f"{SIZE}² (real masters of the pipeline, copied with their night); a job's look-ups: "
            f"the bias, the darks and the R flat for a night after them all. The two ways "
            f"alternate, {arguments.repeat} jobs each; whole run "
            f"{(time.monotonic() - started) / 60:.1f} min; {conditions.text()}. The ratio is "
            f"the first row's median divided by the second's, both as shown.\n\n"
            + table(results))
    print(text)
    if arguments.update_docs:
        update_docs("master_library.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
