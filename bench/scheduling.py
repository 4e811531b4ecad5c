"""Benchmark: our night planner against astropy's affiliated scheduler, astroplan.

One night at CTMO (the configuration's default ``Site``), the night after
2026-11-21T20:00Z, is planned for N random targets that are observable that night, once by
:class:`torosmanager.scheduler.planner.Planner` and once by astroplan's ``PriorityScheduler`` on
the same targets with the same constraints and (no larger) overheads, then once more by
astroplan with its blocks rounded up so that it shortens no exposure. Every schedule is then
checked independently with astropy, and Markdown tables are printed::

    .venv/bin/python bench/scheduling.py                      # 50, 200 and 1000 targets
    .venv/bin/python bench/scheduling.py --sizes 1000 --seed 3 --repeat 1
    .venv/bin/python bench/scheduling.py --skip-astroplan     # ours only, in seconds

astroplan (``pip install astroplan``) is needed only here, not by the daemons. bench/README.md
explains the choices made to keep the comparison fair.
"""

import argparse
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from cpu import processor_name
from torosmanager.config import default_config
from torosmanager.earth_rotation import use_astropy_offline
from torosmanager.scheduler.planner import Constraints, Planner, Target

#: The benchmark's night begins after this instant (14:00 local time at CTMO).
NIGHT_AFTER = datetime(2026, 11, 21, 20, 0, tzinfo=timezone.utc)
DEFAULT_SIZES = (50, 200, 1000)
DEFAULT_SEED = 2026
#: Runs of each scheduler per size; the shortest time is reported (as timeit does: the others
#: only add what other processes took from it).
DEFAULT_REPEAT = 3
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
#: block durations down and transitions up.
TIME_RESOLUTION = 60.0
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


#: The names of the rows: ours, astroplan as asked, astroplan with blocks rounded up.
OURS = "ours"
ASTROPLAN = "astroplan"
ASTROPLAN_WHOLE = "astroplan, blocks rounded up"


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
    """The configuration's Scheduler section with the benchmark's constraints."""
    section = dict(default_config()["Scheduler"])
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

def run_ours(orders, site, scheduler_settings):
    """Plan with a new :class:`Planner` (its Night cache cold); return a :class:`Result`."""
    began, began_cpu = time.perf_counter(), time.process_time()
    planner = Planner(site, Constraints.from_settings(scheduler_settings))
    readout = scheduler_settings["Readout Time"]
    # One exposure per order: the block is the exposure and its readout (duration_of).
    targets = [Target(order.id, order.ra, order.dec, order.priority, order.exposure + readout)
               for order in orders]
    plan = planner.plan(targets, NIGHT_AFTER)
    seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    return Result(OURS, seconds, [Block(entry.id, entry.start, entry.end)
                                  for entry in plan.entries], cpu)


def run_astroplan(orders, site, scheduler_settings, resolution=TIME_RESOLUTION, whole=False):
    """Schedule with astroplan's ``PriorityScheduler``; return a :class:`Result`.

    The night's edges come from astroplan's own twilight functions, inside the timing, as ours
    come from :class:`~torosmanager.night.Night`. astroplan rounds each block's duration down to
    *resolution*; with *whole*, each block is first lengthened to a whole number of
    resolution steps, so that no exposure is shortened.
    """
    import astropy.units as u
    from astroplan import (AirmassConstraint, AtNightConstraint, FixedTarget, ObservingBlock,
                           Observer, PriorityScheduler, Schedule)
    from astropy.coordinates import SkyCoord
    from astropy.time import Time

    readout = scheduler_settings["Readout Time"]
    began, began_cpu = time.perf_counter(), time.process_time()
    observer = Observer(location=location_of(site), name=site["Name"])
    dusk = observer.twilight_evening_astronomical(Time(NIGHT_AFTER), which="next")
    dawn = observer.twilight_morning_astronomical(dusk, which="next")
    positions = SkyCoord([order.ra for order in orders] * u.deg,
                         [order.dec for order in orders] * u.deg)
    blocks = []
    for order, position in zip(orders, positions):
        exposure = order.exposure
        if whole:
            exposure = math.ceil((exposure + readout) / resolution) * resolution - readout
        # astroplan: a LOWER number is a HIGHER priority.
        blocks.append(ObservingBlock.from_exposures(
            FixedTarget(position, name=order.id), MAX_PRIORITY - order.priority,
            exposure * u.s, 1, readout * u.s, configuration={"pointing": order.id}))
    constraints = [AirmassConstraint(max=MAX_AIRMASS, boolean_constraint=True),
                   AtNightConstraint.twilight_astronomical()]
    transitioner = _flooring_transitioner(scheduler_settings, resolution)
    scheduler = PriorityScheduler(constraints=constraints, observer=observer,
                                  transitioner=transitioner, time_resolution=resolution * u.s)
    schedule = scheduler(blocks, Schedule(dusk, dawn))
    seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    placed = [Block(block.target.name, block.start_time.to_datetime(timezone.utc),
                    block.end_time.to_datetime(timezone.utc))
              for block in schedule.observing_blocks]
    return Result(ASTROPLAN_WHOLE if whole else ASTROPLAN, seconds, placed, cpu)


def _flooring_transitioner(scheduler_settings, resolution):
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
        slew_rate=scheduler_settings["Slew Rate"] * u.deg / u.s,
        instrument_reconfig_times={"pointing": {"default":
                                                scheduler_settings["Settle Time"] * u.s}})


# --- the independent check --------------------------------------------------------------------

def check(blocks, orders, site, scheduler_settings):
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
        settle; ``shortfall``: seconds of exposure lost to shortened blocks.
    """
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord, get_body
    from astropy.time import Time

    by_id = {order.id: order for order in orders}
    readout = scheduler_settings["Readout Time"]
    result = {"airmass": 0, "sun": 0, "overlaps": 0, "full length": 0, "short gaps": 0,
              "shortfall": 0.0}
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
        result["sun"] = len(np.unique(owner[bad_sun]))
    ordered = sorted(blocks, key=lambda block: block.start)
    rate, settle = scheduler_settings["Slew Rate"], scheduler_settings["Settle Time"]
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

def warm_up(site, scheduler_settings, with_astroplan):
    """Untimed runs on a few targets: imports, astropy's tables and erfa are then warm (each
    timed run still builds its own Planner, Night and Observer, so nothing of the night is)."""
    orders = random_orders(WARM_UP_TARGETS, 0, site, scheduler_settings["Readout Time"])
    run_ours(orders, site, scheduler_settings)
    if with_astroplan:
        run_astroplan(orders, site, scheduler_settings)


def measure(runner, repeat, *args):
    """Run *runner* *repeat* times; the first run's schedule (every run makes the same), with
    the shortest wall and CPU times."""
    results = [runner(*args) for _ in range(repeat)]
    first = results[0]
    first.seconds = min(result.seconds for result in results)
    first.cpu_seconds = min(result.cpu_seconds for result in results)
    return first


def markdown(rows):
    """The benchmark's Markdown table."""
    header = ("targets", "scheduler", "wall time (s)", "speed-up", "scheduled",
              "sum of priorities", "full-length blocks", "violations")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for size, result, speed_up, total in rows:
        check_ = result.check
        lines.append("| " + " | ".join((
            str(size), result.scheduler, f"{result.seconds:.3f}",
            "—" if speed_up is None else f"{speed_up:.0f}×", str(len(result.blocks)),
            f"{total:.1f}", f"{check_['full length']} / {len(result.blocks)}",
            str(check_["violations"]))) + " |")
    return "\n".join(lines)


def details(rows):
    """CPU times, what the violations column adds up, and the overheads each schedule kept."""
    header = ("targets", "scheduler", "CPU time (s)", "speed-up (CPU)", "airmass", "Sun",
              "overlaps", "gaps shorter than slew + settle", "exposure time lost (min)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    reference = {size: result.cpu_seconds for size, result, _, _ in rows
                 if result.scheduler == ASTROPLAN}
    for size, result, _, _ in rows:
        check_ = result.check
        speed_up = (f"{reference[size] / result.cpu_seconds:.0f}×"
                    if result.scheduler == OURS and size in reference else "—")
        lines.append("| " + " | ".join((
            str(size), result.scheduler, f"{result.cpu_seconds:.3f}", speed_up,
            str(check_["airmass"]), str(check_["sun"]), str(check_["overlaps"]),
            str(check_["short gaps"]), f"{check_['shortfall'] / 60:.1f}")) + " |")
    return "\n".join(lines)


def environment():
    """One line on the machine and the versions measured."""
    import astropy

    versions = [f"Python {platform.python_version()}", f"numpy {np.__version__}",
                f"astropy {astropy.__version__}"]
    try:
        import astroplan
        versions.append(f"astroplan {astroplan.__version__}")
    except ImportError:
        pass
    processor = processor_name(platform.processor() or platform.machine())
    return (f"{platform.system()} {platform.release()}, {processor}, {os.cpu_count()} CPUs; "
            + ", ".join(versions))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        metavar="N", help="numbers of targets (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="random seed of the targets (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT,
                        help="timed runs of each scheduler per size; the shortest is reported "
                             "(default: %(default)s)")
    parser.add_argument("--time-resolution", type=float, default=TIME_RESOLUTION,
                        metavar="SECONDS", help="astroplan's time resolution "
                                                "(default: %(default)s)")
    parser.add_argument("--skip-astroplan", action="store_true",
                        help="run our planner only")
    parser.add_argument("--skip-rounded-up", action="store_true",
                        help="do not run astroplan a second time with its blocks rounded up to "
                             "whole time steps")
    arguments = parser.parse_args(argv)

    use_astropy_offline()
    # Stale-table notices from astropy and astroplan say nothing about the comparison.
    warnings.simplefilter("ignore")
    site = default_config()["Site"]
    scheduler_settings = settings()
    readout = scheduler_settings["Readout Time"]
    warm_up(site, scheduler_settings, not arguments.skip_astroplan)

    rows = []
    for size in arguments.sizes:
        orders = random_orders(size, arguments.seed + size, site, readout)
        priority = {order.id: order.priority for order in orders}
        ours = measure(run_ours, arguments.repeat, orders, site, scheduler_settings)
        results = [ours]
        if not arguments.skip_astroplan:
            results.append(measure(run_astroplan, arguments.repeat, orders, site,
                                   scheduler_settings, arguments.time_resolution))
            if not arguments.skip_rounded_up:
                results.append(measure(run_astroplan, arguments.repeat, orders, site,
                                       scheduler_settings, arguments.time_resolution, True))
        for result in results:
            result.check = check(result.blocks, orders, site, scheduler_settings)
            total = sum(priority[block.id] for block in result.blocks)
            # The speed-up is ours against astroplan as the issue asks it to be run.
            speed_up = (results[1].seconds / result.seconds
                        if result is ours and len(results) > 1 else None)
            rows.append((size, result, speed_up, total))
        print(f"{size} targets done", file=sys.stderr, flush=True)

    print(environment())
    print()
    print(markdown(rows))
    print()
    print(details(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
