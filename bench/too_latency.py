"""Benchmark: a target of opportunity from the scheduler's receipt to the telescope slewing.

The set-up of issue 12 (part 4): the scheduler, telescope, dome and preprocessor daemons as
processes (``bench/daemons.py``, as the tests start them), simulated devices, the clock at
speed 1 (real time), the dome opened by the scheduler, a long observation exposing. Then, one
after the other, ToO orders (``Type of job: ToO``, priority 9, at the ToO Threshold) are sent to
the scheduler's front desk, each 4° from the long observation, each once the long observation
is exposing again and the daemons are idle; each is cancelled once timed, so that the long
observation resumes.

For every ToO the client polls, every :data:`POLL_SECONDS`, the telescope's Status of the order
until it shows ``slewing``, and the scheduler's until it shows ``running``. The steps are then
read from the daemons' journals (Status histories, on the daemons' shared clock), in seconds
after the client sent the order:

* the scheduler's receipt: the order accepted in its journal;
* the scheduler noticing, planning and sending it: accepted at the telescope (telescope
  journal), then recorded as dispatched (scheduler journal);
* the telescope interrupting the long exposure (telescope journal);
* the slew beginning (telescope journal), and seen by the client;
* the scheduler's own Status showing the ToO running (scheduler journal), and seen by the
  client.

The goal rows are differences of two of these columns, per ToO: receipt → slewing (p50 < 50 ms,
max < 150 ms) and the scheduler's Status against the telescope's (within 0.5 s). The first ToO
after the daemons start is reported apart (cold). Medians, maxima and the spread (min–max) over
the ToOs are given, not the best. Linux only (``/proc``)::

    .venv/bin/python bench/too_latency.py                 # 20 ToOs: about 4 min
    .venv/bin/python bench/too_latency.py --too 5         # a quick look
    .venv/bin/python bench/too_latency.py --update-docs   # and rewrite its part of
                                                          # docs/benchmarks.md
"""

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from cpu import Conditions, machine_line
from daemons import (LONG_ORDER, REOPEN_DELAY, Clock, Site, history_time, start_observatory,
                     status, wait_exposing, wait_until)
from docs_section import DOCS, update_docs

log = logging.getLogger("bench.too_latency")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOO = 20
#: Real seconds between two polls of the client while it times a ToO: the steps are timed by
#: the daemons' journals; faster polls would load the daemons being timed.
POLL_SECONDS = 0.05
#: Real seconds a ToO may take to slew, and the scheduler to show it running, before the run
#: stops with an error.
SLEWING_TIMEOUT = 60.0
#: The ToO: 4° from the long observation (RA 330°, Dec +35°), 80° high that evening, so the
#: slew back and forth between ToOs is short.
TOO_ORDER = {"WOType": "Observation", "RA": 334.0, "Dec": 33.0, "Filter": "V",
             "Exposure Time": 10.0, "Number of Exposures": 1, "User": "bench",
             "Type of job": "ToO"}
#: Issue 12's goals, seconds.
GOAL_P50 = 0.050
GOAL_MAX = 0.150
GOAL_AGREEMENT = 0.5

#: The table's rows: (label, key), in the order the work happens.
STEPS = (
    ("receipt (client)", "receipt"),
    ("accepted by the scheduler (scheduler journal)", "accepted"),
    ("accepted by the telescope (telescope journal)", "at_telescope"),
    ("dispatched (scheduler journal)", "dispatched"),
    ("long exposure interrupted (telescope journal)", "interrupted"),
    ("slewing (telescope journal)", "slewing"),
    ("slewing seen by the client", "slewing_seen"),
    ("running at the scheduler (scheduler journal)", "running"),
    ("running at the scheduler seen by the client", "running_seen"),
)
#: Differences between two columns: (label, from, to, goal of the p50, goal of the max). The
#: last is taken as an absolute value: the scheduler may record the ToO running before or after
#: the telescope records it slewing.
PARTS = (
    ("scheduler: notices, plans and sends", "accepted", "at_telescope", None, None),
    ("telescope: receipt → exposure interrupted", "at_telescope", "interrupted", None, None),
    ("telescope: interrupted → slewing", "interrupted", "slewing", None, None),
    ("**receipt → slewing**", "accepted", "slewing", GOAL_P50, GOAL_MAX),
    ("**scheduler's running against telescope's slewing, either way**", "slewing", "running",
     None, GOAL_AGREEMENT),
)
#: The parts compared as absolute values.
ABSOLUTE = ("slewing", "running")


def one_target_of_opportunity(site, number, clock):
    """Send ToO number *number*; seconds from sending it to each of :data:`STEPS`."""
    scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
    order = dict(TOO_ORDER, ID=f"too-{number}")
    sent = clock.now()
    began = time.perf_counter()
    scheduler.front_desk(order)
    run = {"id": order["ID"], "receipt": time.perf_counter() - began}
    at_telescope = at_scheduler = None
    while "slewing_seen" not in run or "running_seen" not in run:
        if "slewing_seen" not in run:
            at_telescope = status(telescope, order["ID"])
            if at_telescope and at_telescope["Progress"].get("Step", "").startswith("slewing"):
                run["slewing_seen"] = time.perf_counter() - began
        if "running_seen" not in run:
            at_scheduler = status(scheduler, order["ID"])
            if at_scheduler and at_scheduler["Status"] == "running":
                run["running_seen"] = time.perf_counter() - began
        if time.perf_counter() - began > SLEWING_TIMEOUT:
            raise RuntimeError(f"{order['ID']}: {SLEWING_TIMEOUT:g} s after sending it, the "
                               f"telescope says {at_telescope and at_telescope['Message']!r}, "
                               f"the scheduler {at_scheduler and at_scheduler['Status']!r}")
        time.sleep(POLL_SECONDS)
    at_telescope = status(telescope, order["ID"])
    at_scheduler = status(scheduler, order["ID"])
    long_order = status(telescope, LONG_ORDER["ID"])
    times = {
        "accepted": at_scheduler["History"][0]["Time"],
        "at_telescope": at_telescope["History"][0]["Time"],
        "dispatched": history_time(at_scheduler, lambda e: e["Status"] == "dispatched"),
        "interrupted": history_time(long_order, lambda e: e["Status"] == "interrupted"
                                    and Clock.seconds_after(e["Time"], sent) >= 0),
        "slewing": history_time(at_telescope, lambda e: e["Reason"].startswith("slewing")),
        "running": history_time(at_scheduler, lambda e: e["Status"] == "running"),
    }
    for key, text in times.items():
        run[key] = None if text is None else Clock.seconds_after(text, sent)
    scheduler.front_desk({"WOType": "Cancel", "ID": order["ID"], "User": "bench"})
    return run


def measure(arguments, workdir):
    """One cold ToO, then ``arguments.too`` timed ones; their runs."""
    clock = Clock()
    overrides = {"Clock": clock.settings(), "Dome": {"Reopen Delay": REOPEN_DELAY}}
    site = Site(workdir, overrides)
    runs = []
    try:
        start_observatory(site, "preprocessor")
        for number in range(arguments.too + 1):
            wait_exposing(site)
            run = one_target_of_opportunity(site, number, clock)
            runs.append(run)
            log.info("ToO %d: slewing %.3f s, running at the scheduler %.3f s after receipt",
                     number, run["slewing"] - run["accepted"], run["running"] - run["accepted"])
            # The cancellation settles at the telescope before the next one is timed.
            wait_until(lambda: status(site.proxy("telescope"), run["id"])["Status"]
                       in ("cancelled", "done", "failed"), f"{run['id']} to end", SLEWING_TIMEOUT)
    finally:
        site.stop()
    return runs


def milliseconds(value):
    # round() gives an int: a step a fraction of a millisecond before the client's send (the
    # journals keep milliseconds) prints as 0, not -0.
    return "—" if value is None else str(round(value * 1000))


def spread(values):
    return f"{milliseconds(min(values))}–{milliseconds(max(values))}"


def table(runs):
    """The steps and the parts, in milliseconds: the cold ToO, then p50, max and spread."""
    cold, warm = runs[0], runs[1:]
    lines = [f"| step, ms after the client sent the ToO | first (cold) | p50 of {len(warm)} | "
             "max | min–max |", "|---|---|---|---|---|"]
    for label, key in STEPS:
        values = [run[key] for run in warm]
        lines.append(f"| {label} | {milliseconds(cold[key])} | "
                     f"{milliseconds(statistics.median(values))} | {milliseconds(max(values))} "
                     f"| {spread(values)} |")
    lines += ["", f"| part, ms (a difference of two rows above, per ToO) | first (cold) | "
              f"p50 of {len(warm)} | max | min–max | goal |", "|---|---|---|---|---|---|"]
    verdicts = []
    for label, start, end, goal_p50, goal_max in PARTS:
        difference = abs if (start, end) == ABSOLUTE else float
        values = [difference(run[end] - run[start]) for run in warm]
        p50, worst = statistics.median(values), max(values)
        goals = []
        if goal_p50 is not None:
            goals.append(f"p50 < {milliseconds(goal_p50)}")
            verdicts.append((f"{label.strip('*')} p50", p50, goal_p50))
        if goal_max is not None:
            goals.append(f"max < {milliseconds(goal_max)}")
            verdicts.append((f"{label.strip('*')} max", worst, goal_max))
        lines.append(f"| {label} | {milliseconds(difference(cold[end] - cold[start]))} | "
                     f"{milliseconds(p50)} | {milliseconds(worst)} | {spread(values)} | "
                     f"{', '.join(goals) or '—'} |")
    lines.append("")
    lines.append("Goals: " + "; ".join(
        f"{label} {milliseconds(value)} ms against {milliseconds(goal)}: "
        f"{'met' if value < goal else 'NOT met'}" for label, value, goal in verdicts) + ".")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--too", type=int, default=DEFAULT_TOO,
                        help="ToOs timed, after a first one reported apart (default "
                             "%(default)s)")
    parser.add_argument("--workdir", default="/var/tmp",
                        help="where the daemons' temporary directory is made (default: "
                             "%(default)s; removed at the end)")
    parser.add_argument("--update-docs", action="store_true",
                        help=f"also write the results into {DOCS.relative_to(ROOT)}")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    conditions = Conditions()
    workdir = Path(tempfile.mkdtemp(prefix="toros-bench-too-", dir=arguments.workdir))
    try:
        runs = measure(arguments, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    command = " ".join(["bench/too_latency.py", *(argv if argv is not None else sys.argv[1:])])
    text = "\n".join([
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. `.venv/bin/python {command}` on "
        f"{machine_line()}; {conditions.text()}.", "",
        table(runs)])
    print(text)
    if arguments.update_docs:
        update_docs("too_latency.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
