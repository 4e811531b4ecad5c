"""Benchmark: our night planner, greedy and refined, against astropy's affiliated scheduler,
astroplan.

One night (the night after 2026-11-21T20:00Z) at two sites, CTMO (the configuration's default
``Site``, northern) and Cordón Macón (southern, 4,650 m), is planned for N random targets that
are observable that night, several target lists (seeds) per size: by
:class:`torosmanager.scheduler.planner.Planner` greedy only (today's planner, ``refine=False``),
by the same planner with its local search (``refine=True``, the default) and by astroplan's
``PriorityScheduler`` as it runs by default (20 s resolution, blocks rounded down to it), on the
same targets with the same constraints and (no larger) overheads. Every schedule is then checked
independently with astropy, and Markdown tables are printed::

    .venv/bin/python bench/scheduling.py --update-docs        # the full set, about 10 minutes
    .venv/bin/python bench/scheduling.py --sites ctmo --sizes 200 --seeds 1
    .venv/bin/python bench/scheduling.py --skip-astroplan     # ours only, in seconds

astroplan (``pip install astroplan``) is needed only here, not by the daemons. bench/README.md
explains the choices made to keep the comparison fair.
"""

import argparse
import importlib.util
import math
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from cpu import Conditions, machine_line
from docs_section import update_docs
from sites import SITE_NAMES, sites
from torosmanager.config import default_config
from torosmanager.earth_rotation import use_astropy_offline
from torosmanager.scheduler.planner import Constraints, Planner, Target

#: The benchmark's night begins after this instant (14:00 local time at CTMO).
NIGHT_AFTER = datetime(2026, 11, 21, 20, 0, tzinfo=timezone.utc)
DEFAULT_SIZES = (50, 200, 1000)
#: Target lists per site and size: each size N uses seed + N.
DEFAULT_SEEDS = (2026, 2027, 2028)
#: Timed runs of our planner per target list (the median is reported) and of astroplan (about
#: a minute per run at 1,000 targets: one by default).
DEFAULT_REPEAT = 3
DEFAULT_REPEAT_ASTROPLAN = 1
#: Priorities are drawn uniformly from 0 to this (ours: higher is better).
MAX_PRIORITY = 10.0
#: Exposure times are drawn uniformly from this range, seconds (one exposure per order).
EXPOSURE_RANGE = (60.0, 600.0)
#: The constraints both schedulers keep.
MAX_AIRMASS = 2.0
SUN_ALTITUDE = -18.0    # astronomical twilight
#: Our Moon constraint is switched off: astroplan is given no Moon constraint either.
MOON_SEPARATION = 0.0
#: astroplan's time resolution, seconds: its grid of possible start times, to which it rounds
#: block durations down and transitions up. Its default (``Scheduler.time_resolution``).
TIME_RESOLUTION = 20.0
#: Spacing of the samples at which every scheduled block is checked, seconds.
CHECK_SECONDS = 30.0
#: Spacing of the samples used to select observable targets, minutes.
SELECTION_MINUTES = 5
#: How many candidates are drawn at a time while selecting targets, per target wanted.
CANDIDATES_PER_TARGET = 3
#: Times two schedules may differ by through floating-point arithmetic alone, seconds.
TOLERANCE = 1e-3
#: Targets in the untimed warm-up runs (imports, astropy's tables, erfa).
WARM_UP_TARGETS = 5
#: Hours after NIGHT_AFTER searched for the night while selecting targets.
SEARCH_HOURS = 24


#: Decimals of the times printed; every ratio printed is computed from the printed times.
TIME_DECIMALS = 3
#: The goals of issue 12 (part 3): at least this many times faster than astroplan.
GOAL_SPEED_UP = 100.0

#: The names of the rows.
GREEDY = "ours, greedy"
REFINED = "ours, refined"
ASTROPLAN = "astroplan"


@dataclass(frozen=True)
class Order:
    """One random target: ICRS degrees, our priority (higher first), one exposure."""

    id: str
    ra: float
    dec: float
    priority: float
    exposure: float


@dataclass(frozen=True)
class Block:
    """One scheduled observation, as either scheduler placed it (UTC)."""

    id: str
    start: datetime
    end: datetime


@dataclass
class Result:
    """One scheduler's run on one target list."""

    scheduler: str
    seconds: float          #: wall time
    blocks: list
    cpu_seconds: float = 0.0  #: CPU time of this process: less disturbed by a busy machine
    check: dict = None


def settings():
    """The configuration's Observing section with the benchmark's constraints."""
    section = dict(default_config()["Observing"])
    section.update({"Max Airmass": MAX_AIRMASS, "Sun Altitude": SUN_ALTITUDE,
                    "Moon Separation": MOON_SEPARATION})
    return section


def location_of(site):
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    return EarthLocation(lat=site["Latitude"] * u.deg, lon=site["Longitude"] * u.deg,
                         height=site["Elevation"] * u.m)


def _longest_run(mask):
    """Length of the longest run of True along the last axis of a boolean array."""
    longest = np.zeros(mask.shape[:-1], dtype=int)
    current = np.zeros(mask.shape[:-1], dtype=int)
    for column in np.moveaxis(mask, -1, 0):
        current = np.where(column, current + 1, 0)
        longest = np.maximum(longest, current)
    return longest


def random_orders(count, seed, site, readout):
    """*count* random orders observable on the benchmark's night, drawn with *seed*.

    Positions are uniform on the sky; a candidate is kept when astropy puts it at airmass
    ≤ ``MAX_AIRMASS`` without a break, sampled every ``SELECTION_MINUTES``, for at least its
    block's length (exposure and readout) while the Sun is below ``SUN_ALTITUDE``. Our own code
    takes no part in the selection.
    """
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord, get_body
    from astropy.time import Time

    rng = np.random.default_rng(seed)
    location = location_of(site)
    times = Time(NIGHT_AFTER) + np.arange(0, SEARCH_HOURS * 60, SELECTION_MINUTES) * u.min
    frame = AltAz(obstime=times, location=location)
    night = get_body("sun", times, location).transform_to(frame).alt.deg < SUN_ALTITUDE
    times, frame = times[night], AltAz(obstime=times[night], location=location)
    orders = []
    while len(orders) < count:
        batch = CANDIDATES_PER_TARGET * (count - len(orders))
        ra = rng.uniform(0.0, 360.0, batch)
        dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, batch)))
        priority = rng.uniform(0.0, MAX_PRIORITY, batch)
        exposure = rng.uniform(*EXPOSURE_RANGE, batch)
        altaz = SkyCoord(ra * u.deg, dec * u.deg)[:, None].transform_to(frame[None, :])
        good = (altaz.alt.deg > 0) & (altaz.secz.value <= MAX_AIRMASS)
        span = (_longest_run(good) - 1) * SELECTION_MINUTES * 60.0
        for i in np.flatnonzero(span >= exposure + readout):
            if len(orders) < count:
                orders.append(Order(f"T{len(orders) + 1:04d}", float(ra[i]), float(dec[i]),
                                    float(priority[i]), float(exposure[i])))
    return orders


# --- the two schedulers ---------------------------------------------------------------------

def run_ours(orders, site, observing, refine=True):
    """Plan with a new :class:`Planner` (its Night cache cold), refined or greedy only;
    return a :class:`Result`."""
    began, began_cpu = time.perf_counter(), time.process_time()
    planner = Planner(site, Constraints.from_settings(observing))
    readout = observing["Readout Time"]
    # One exposure per order: the block is the exposure and its readout (duration_of).
    targets = [Target(order.id, order.ra, order.dec, order.priority, order.exposure + readout)
               for order in orders]
    plan = planner.plan(targets, NIGHT_AFTER, refine=refine)
    seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    return Result(REFINED if refine else GREEDY, seconds,
                  [Block(entry.id, entry.start, entry.end) for entry in plan.entries], cpu)


def run_astroplan(orders, site, observing, resolution=TIME_RESOLUTION):
    """Schedule with astroplan's ``PriorityScheduler``; return a :class:`Result`.

    The night's edges come from astroplan's own twilight functions, inside the timing, as ours
    come from :class:`~torosmanager.night.Night`. astroplan rounds each block's duration down to
    *resolution*, as it does by default.
    """
    import astropy.units as u
    from astroplan import (AirmassConstraint, AtNightConstraint, FixedTarget, ObservingBlock,
                           Observer, PriorityScheduler, Schedule)
    from astropy.coordinates import SkyCoord
    from astropy.time import Time

    readout = observing["Readout Time"]
    began, began_cpu = time.perf_counter(), time.process_time()
    observer = Observer(location=location_of(site), name=site["Name"])
    dusk = observer.twilight_evening_astronomical(Time(NIGHT_AFTER), which="next")
    dawn = observer.twilight_morning_astronomical(dusk, which="next")
    positions = SkyCoord([order.ra for order in orders] * u.deg,
                         [order.dec for order in orders] * u.deg)
    blocks = []
    for order, position in zip(orders, positions):
        exposure = order.exposure
        # astroplan: a LOWER number is a HIGHER priority.
        blocks.append(ObservingBlock.from_exposures(
            FixedTarget(position, name=order.id), MAX_PRIORITY - order.priority,
            exposure * u.s, 1, readout * u.s, configuration={"pointing": order.id}))
    constraints = [AirmassConstraint(max=MAX_AIRMASS, boolean_constraint=True),
                   AtNightConstraint.twilight_astronomical()]
    transitioner = _flooring_transitioner(observing, resolution)
    scheduler = PriorityScheduler(constraints=constraints, observer=observer,
                                  transitioner=transitioner, time_resolution=resolution * u.s)
    schedule = scheduler(blocks, Schedule(dusk, dawn))
    seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    placed = [Block(block.target.name, block.start_time.to_datetime(timezone.utc),
                    block.end_time.to_datetime(timezone.utc))
              for block in schedule.observing_blocks]
    return Result(ASTROPLAN, seconds, placed, cpu)


def _flooring_transitioner(observing, resolution):
    """astroplan's Transitioner with our slew rate and settle time, never longer than ours.

    astroplan rounds every transition *up* to its time resolution; to keep astroplan's
    overheads no larger than ours, this one rounds the true slew-and-settle time *down* to the
    resolution first (astroplan's rounding then leaves it unchanged).
    """
    import astropy.units as u
    from astroplan import Transitioner
    from astroplan.scheduling import TransitionBlock

    class FlooringTransitioner(Transitioner):
        def __call__(self, oldblock, newblock, start_time, observer):
            transition = super().__call__(oldblock, newblock, start_time, observer)
            if transition is None:
                return None
            seconds = transition.duration.to_value(u.s)
            floored = math.floor((seconds + TOLERANCE) / resolution) * resolution
            if floored <= 0:
                return None
            return TransitionBlock({"slew and settle": floored * u.s}, start_time)

    # The settle time is a "reconfiguration" between any two different pointings.
    return FlooringTransitioner(
        slew_rate=observing["Slew Rate"] * u.deg / u.s,
        instrument_reconfig_times={"pointing": {"default":
                                                observing["Settle Time"] * u.s}})


# --- the independent check --------------------------------------------------------------------

def check(blocks, orders, site, observing):
    """Check a schedule with astropy alone (none of our code).

    Every block is sampled every ``CHECK_SECONDS`` from its start to its end (both included):
    the target must be above the horizon at airmass (sec z) ≤ ``MAX_AIRMASS`` and the Sun below
    ``SUN_ALTITUDE``. Consecutive blocks must not overlap, and the gap between them must cover
    the slew (great-circle distance / ``Slew Rate``) and ``Settle Time``.

    Returns
    -------
    dict
        ``airmass``, ``sun``: blocks with a sample breaking the limit; ``overlaps``: consecutive
        pairs that overlap; ``violations``: their sum; ``full length``: blocks at least as long as
        their exposure and readout; ``short gaps``: consecutive pairs closer than slew and
        settle; ``shortfall``: seconds of exposure lost to shortened blocks; ``mean airmass``:
        the mean over blocks of each block's mean sec z over its samples; ``worst airmass``:
        the largest sec z of any sample (both ``nan`` for an empty schedule).
    """
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord, get_body
    from astropy.time import Time

    by_id = {order.id: order for order in orders}
    readout = observing["Readout Time"]
    result = {"airmass": 0, "sun": 0, "overlaps": 0, "full length": 0, "short gaps": 0,
              "shortfall": 0.0, "mean airmass": math.nan, "worst airmass": math.nan}
    if blocks:
        location = location_of(site)
        owner, offsets = [], []
        for index, block in enumerate(blocks):
            length = (block.end - block.start).total_seconds()
            samples = np.append(np.arange(0.0, length, CHECK_SECONDS), length)
            owner += [index] * len(samples)
            offsets += [(block.start - NIGHT_AFTER).total_seconds() + s for s in samples]
        owner = np.array(owner)
        times = Time(NIGHT_AFTER) + np.array(offsets) * u.s
        frame = AltAz(obstime=times, location=location)
        ra = np.array([by_id[blocks[i].id].ra for i in owner])
        dec = np.array([by_id[blocks[i].id].dec for i in owner])
        target = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame)
        bad_airmass = (target.alt.deg <= 0) | (target.secz.value > MAX_AIRMASS)
        bad_sun = get_body("sun", times, location).transform_to(frame).alt.deg > SUN_ALTITUDE
        result["airmass"] = len(np.unique(owner[bad_airmass]))
        secz = np.where(target.alt.deg > 0, target.secz.value, np.inf)
        per_block = np.bincount(owner, weights=secz) / np.bincount(owner)
        result["mean airmass"] = float(per_block.mean())
        result["worst airmass"] = float(secz.max())
        result["sun"] = len(np.unique(owner[bad_sun]))
    ordered = sorted(blocks, key=lambda block: block.start)
    rate, settle = observing["Slew Rate"], observing["Settle Time"]
    for block in ordered:
        wanted = by_id[block.id].exposure + readout
        length = (block.end - block.start).total_seconds()
        if length >= wanted - TOLERANCE:
            result["full length"] += 1
        else:
            result["shortfall"] += wanted - length
    for before, after in zip(ordered, ordered[1:]):
        gap = (after.start - before.end).total_seconds()
        if gap < -TOLERANCE:
            result["overlaps"] += 1
        one, two = by_id[before.id], by_id[after.id]
        distance = SkyCoord(one.ra * u.deg, one.dec * u.deg).separation(
            SkyCoord(two.ra * u.deg, two.dec * u.deg)).deg
        if gap < distance / rate + settle - TOLERANCE:
            result["short gaps"] += 1
    result["violations"] = result["airmass"] + result["sun"] + result["overlaps"]
    return result


# --- running it -------------------------------------------------------------------------------

def warm_up(site, observing, with_astroplan):
    """Untimed runs on a few targets: imports, astropy's tables and erfa are then warm (each
    timed run still builds its own Planner, Night and Observer, so nothing of the night is)."""
    orders = random_orders(WARM_UP_TARGETS, 0, site, observing["Readout Time"])
    run_ours(orders, site, observing)
    if with_astroplan:
        run_astroplan(orders, site, observing)


def measure(runner, repeat, *args, **options):
    """Run *runner* *repeat* times; the first run's schedule (every run makes the same), with
    the median wall and CPU times (not the best: the machine is shared)."""
    results = [runner(*args, **options) for _ in range(repeat)]
    first = results[0]
    first.seconds = statistics.median(result.seconds for result in results)
    first.cpu_seconds = statistics.median(result.cpu_seconds for result in results)
    return first


@dataclass
class Row:
    """One scheduler's run on one target list, checked."""

    site: str
    size: int
    seed: int
    result: Result
    total: float     #: sum of (our) priorities of the blocks placed

    @property
    def wall(self):
        """Wall time as printed (the ratios are computed from what is printed)."""
        return round(self.result.seconds, TIME_DECIMALS)

    @property
    def cpu(self):
        return round(self.result.cpu_seconds, TIME_DECIMALS)

    @property
    def printed_total(self):
        return round(self.total, 1)


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else math.inf


def _spread(values, form):
    """``median (min–max)`` of *values* with *form* (a format spec)."""
    values = sorted(values)
    if len(values) == 1:
        return format(values[0], form)
    return (f"{format(statistics.median(values), form)} "
            f"({format(values[0], form)}–{format(values[-1], form)})")


def cases_table(rows):
    """Every run: one line per scheduler, site, size and seed."""
    header = ("site", "targets", "seed", "scheduler", "wall (s)", "CPU (s)",
              "speed-up (wall)", "speed-up (CPU)", "scheduled", "sum of priorities",
              "sum ÷ astroplan's", "full-length blocks", "violations", "mean airmass",
              "worst airmass", "gaps < slew + settle", "exposure lost (min)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---|" + "---:|" * 13]
    reference = {(row.site, row.size, row.seed): row for row in rows
                 if row.result.scheduler == ASTROPLAN}
    for row in rows:
        check_ = row.result.check
        other = reference.get((row.site, row.size, row.seed))
        ours = row.result.scheduler != ASTROPLAN and other is not None
        lines.append("| " + " | ".join((
            row.site, str(row.size), str(row.seed), row.result.scheduler,
            f"{row.wall:.{TIME_DECIMALS}f}", f"{row.cpu:.{TIME_DECIMALS}f}",
            f"{_ratio(other.wall, row.wall):.0f}×" if ours else "—",
            f"{_ratio(other.cpu, row.cpu):.0f}×" if ours else "—",
            str(len(row.result.blocks)), f"{row.printed_total:.1f}",
            f"{_ratio(row.printed_total, other.printed_total):.3f}" if ours else "—",
            f"{check_['full length']} / {len(row.result.blocks)}", str(check_["violations"]),
            f"{check_['mean airmass']:.3f}", f"{check_['worst airmass']:.3f}",
            str(check_["short gaps"]), f"{check_['shortfall'] / 60:.1f}")) + " |")
    return "\n".join(lines)


def summary_table(rows):
    """Per site and size, over the seeds: median (min–max) of each figure, from the cases
    table's printed columns."""
    header = ("site", "targets", "scheduler", "seeds", "wall (s)", "speed-up (wall)",
              "speed-up (CPU)", "sum of priorities", "sum ÷ astroplan's", "full-length blocks",
              "violations", "mean airmass", "worst airmass")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * 10]
    groups = {}
    for row in rows:
        groups.setdefault((row.site, row.size, row.result.scheduler), []).append(row)
    reference = {(row.site, row.size, row.seed): row for row in rows
                 if row.result.scheduler == ASTROPLAN}
    for (site, size, scheduler), group in groups.items():
        others = [reference.get((row.site, row.size, row.seed)) for row in group]
        ours = scheduler != ASTROPLAN and all(other is not None for other in others)
        pairs = list(zip(group, others))
        full = sum(row.result.check["full length"] for row in group)
        blocks = sum(len(row.result.blocks) for row in group)
        lines.append("| " + " | ".join((
            site, str(size), scheduler, str(len(group)),
            _spread([row.wall for row in group], f".{TIME_DECIMALS}f"),
            _spread([_ratio(o.wall, r.wall) for r, o in pairs], ".0f") + "×" if ours else "—",
            _spread([_ratio(o.cpu, r.cpu) for r, o in pairs], ".0f") + "×" if ours else "—",
            _spread([row.printed_total for row in group], ".1f"),
            _spread([_ratio(r.printed_total, o.printed_total) for r, o in pairs], ".3f")
            if ours else "—",
            f"{full} / {blocks}", str(sum(row.result.check["violations"] for row in group)),
            _spread([row.result.check["mean airmass"] for row in group], ".3f"),
            _spread([row.result.check["worst airmass"] for row in group], ".3f"))) + " |")
    return "\n".join(lines)


def goals(rows):
    """Issue 12's goals for the refined planner, case by case, in words."""
    by_case = {}
    for row in rows:
        by_case.setdefault((row.site, row.size, row.seed), {})[row.result.scheduler] = row
    keys = [key for key, case in by_case.items() if ASTROPLAN in case and REFINED in case]
    cases = [by_case[key] for key in keys]
    if not cases:
        return "No goal can be judged without astroplan's runs."
    count = len(cases)

    def met(test):
        passed = [key for key, case in zip(keys, cases) if test(case)]
        failing = [f"{site} {size} seed {seed}" for site, size, seed in keys
                   if (site, size, seed) not in passed]
        return (f"{len(passed)} of {count} target lists" + (": met" if not failing else
                                                            f": not met ({', '.join(failing)})"))

    def speed_up(case, which):
        # As printed: a whole number of times, from the printed times.
        return round(_ratio(getattr(case[ASTROPLAN], which), getattr(case[REFINED], which)))

    def airmass(case, name):
        return round(case[name].result.check["mean airmass"], 3)

    lines = [
        "- Sum of priorities at least astroplan's: "
        + met(lambda c: c[REFINED].printed_total >= c[ASTROPLAN].printed_total) + ".",
        "- Every block full length: " + met(lambda c: c[REFINED].result.check["full length"]
                                            == len(c[REFINED].result.blocks)) + ".",
        "- No violation: " + met(lambda c: c[REFINED].result.check["violations"] == 0) + ".",
        f"- At least {GOAL_SPEED_UP:.0f}× faster, in wall time: "
        + met(lambda c: speed_up(c, "wall") >= GOAL_SPEED_UP) + "; in CPU time: "
        + met(lambda c: speed_up(c, "cpu") >= GOAL_SPEED_UP) + ".",
        "- A lower mean airmass than astroplan's and the greedy plan's, at an equal or higher "
        "sum of priorities than both: "
        + met(lambda c: airmass(c, REFINED) < min(airmass(c, ASTROPLAN), airmass(c, GREEDY))
              and c[REFINED].printed_total >= max(c[ASTROPLAN].printed_total,
                                                  c[GREEDY].printed_total)) + ".",
    ]
    return "\n".join(lines)


def versions():
    """The libraries measured."""
    import astropy

    names = [f"numpy {np.__version__}", f"astropy {astropy.__version__}"]
    try:
        import astroplan
        names.append(f"astroplan {astroplan.__version__}")
    except ImportError:
        pass
    return ", ".join(names)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", nargs="+", choices=sorted(SITE_NAMES),
                        default=["ctmo", "macon"], help="(default: %(default)s)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        metavar="N", help="numbers of targets (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS),
                        metavar="SEED", help="random seeds of the target lists; size N uses "
                                             "SEED + N (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT,
                        help="timed runs of our planner per list; the median is reported "
                             "(default: %(default)s)")
    parser.add_argument("--repeat-astroplan", type=int, default=DEFAULT_REPEAT_ASTROPLAN,
                        help="timed runs of astroplan per list (default: %(default)s)")
    parser.add_argument("--time-resolution", type=float, default=TIME_RESOLUTION,
                        metavar="SECONDS", help="astroplan's time resolution "
                                                "(default: %(default)s, astroplan's own)")
    parser.add_argument("--skip-astroplan", action="store_true",
                        help="run our planner only")
    parser.add_argument("--update-docs", action="store_true",
                        help="rewrite this benchmark's results in docs/benchmarks.md")
    arguments = parser.parse_args(argv)

    if not arguments.skip_astroplan and importlib.util.find_spec("astroplan") is None:
        raise SystemExit("bench/scheduling.py compares with astroplan, which is not installed: "
                         ".venv/bin/pip install astroplan (or run with --skip-astroplan)")
    conditions = Conditions()
    began = time.monotonic()
    use_astropy_offline()
    # Stale-table notices from astropy and astroplan say nothing about the comparison.
    warnings.simplefilter("ignore")
    observing = settings()
    readout = observing["Readout Time"]
    chosen = sites(arguments.sites)
    warm_up(next(iter(chosen.values())), observing, not arguments.skip_astroplan)

    rows = []
    for site_name, site in chosen.items():
        for size in arguments.sizes:
            for seed in arguments.seeds:
                orders = random_orders(size, seed + size, site, readout)
                priority = {order.id: order.priority for order in orders}
                results = [measure(run_ours, arguments.repeat, orders, site, observing,
                                   refine=False),
                           measure(run_ours, arguments.repeat, orders, site, observing)]
                if not arguments.skip_astroplan:
                    results.append(measure(run_astroplan, arguments.repeat_astroplan, orders,
                                           site, observing, arguments.time_resolution))
                for result in results:
                    result.check = check(result.blocks, orders, site, observing)
                    rows.append(Row(site_name, size, seed, result,
                                    sum(priority[block.id] for block in result.blocks)))
                print(f"{site_name}, {size} targets, seed {seed} done", file=sys.stderr,
                      flush=True)

    elapsed = time.monotonic() - began
    command = "bench/scheduling.py" + (" " + " ".join(argv if argv is not None else
                                                       sys.argv[1:])).rstrip()
    text = "\n".join([
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {machine_line()}, {versions()}. "
        f"Command: `.venv/bin/python {command}`; sites {', '.join(chosen)}; sizes "
        f"{', '.join(map(str, arguments.sizes))}; seeds {', '.join(map(str, arguments.seeds))}; "
        f"our planner {arguments.repeat} runs per list (median), astroplan "
        f"{arguments.repeat_astroplan} (time resolution {arguments.time_resolution:g} s); whole "
        f"run {elapsed:.0f} s; {conditions.text()}.", "",
        "**Per site and size, over the seeds** (median (min–max); the ratios are each seed's, "
        "from the table below):", "", summary_table(rows), "",
        "**Goals of issue 12 (part 3), for the refined planner:**", "", goals(rows), "",
        "**Every run** (speed-ups and *sum ÷ astroplan's* are computed from the printed columns "
        "of the same site, size and seed):", "", cases_table(rows)])
    print(text)
    if arguments.update_docs:
        update_docs("scheduling.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
