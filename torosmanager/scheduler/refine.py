"""Improving the greedy night plan by local search: more priority first, then lower airmass.

The greedy planner (:mod:`.planner`) takes orders by priority and puts each at the earliest
instant it fits. That leaves two things to gain, which this module's :class:`Refiner` looks
for, in this order, and never at the cost of a constraint:

Priority
    *Insertion*: an order left out is put into a gap, the orders on either side pushed
    earlier or later within their own observable spans to make room. *Replacement*: one or
    two neighbouring orders are taken out and the room they free (with the slack of the
    orders around them) is filled again from the orders left out and the ones taken out,
    ranked once by priority and once by priority per second of telescope time; the change is
    kept only when the sum of priorities grows, so the greedy choice of a long order over
    several shorter ones of nearly the same priority is undone. The orders brought in must be
    observable there no higher than the greedy plan's mean airmass, and the orders the room
    ends up with must include one at least as high as every order taken out (a target of
    opportunity is never exchanged for routine work).

Airmass
    *Shifts*: each order is moved, inside the time its neighbours leave it, to where its
    target stands highest (the middle of the observation nearest its transit). *Swaps*: two
    neighbours change places when that lowers their summed airmass. *Resequencing*: the same
    orders in the order of their best instants, when they all still fit. *Relocation*: the
    orders farthest above their best airmass are moved, one at a time, into the gap nearest
    their best instant. The set of orders is unchanged, so the sum of priorities is too.
    A target of opportunity is never moved later than the greedy plan put it (the planner
    hides the grid points after its greedy end from the search): it is wanted at once.

Every position is judged by the planner's own rule (the target visible at every grid point
around the observation, :func:`.planner.grid_span`), every gap holds the slew and settle
between its two orders, observations keep their full length, and a budget of telescope time
or of entries is kept. The plan's first observation never starts later than the greedy
plan's: the telescope is not left idle, waiting for a lower airmass, while something can be
observed (the scheduler dispatches what the plan puts first). The work is bounded by counts
(the module constants below), not by the clock, so a plan is the same whatever the machine's
load: the search is deterministic. Should it ever produce a plan that breaks a constraint (a
defect), the greedy plan is kept and the error logged.
"""

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

#: Sweeps of insertion and replacement over the whole plan; each sweep that adds priority may
#: open room for another. At 1,000 orders a sweep takes about 0.03–0.05 s of CPU; a third
#: sweep, or 12 candidates instead of 8, moved the sum a few per cent either way there, for
#: about a fifth more time.
MAX_PRIORITY_SWEEPS = 2
#: Placed orders taken out together by one replacement, from 1 to this: each width is one
#: more pass over the plan per sweep.
MAX_REPLACED = 2
#: Orders tried to fill the room freed by one replacement, highest priority first.
MAX_REFILL_CANDIDATES = 8
#: Rounds of shifts (forward and backward) and swaps for airmass; most plans settle in 3.
MAX_AIRMASS_ROUNDS = 4
#: Seconds of slew and settle counted with an order's duration when ranking orders by
#: priority per second (a 60° slew at 2°/s and 10 s of settling).
TYPICAL_SLEW_SECONDS = 40.0
#: While putting orders in the order of their best instants, how many places earlier an order
#: that cannot follow the last may be put instead.
MAX_STEPS_BACK = 8
#: Entries moved to another gap for airmass, at most, per plan; and by how much an entry's
#: airmass must exceed its best tonight to be tried.
MAX_RELOCATIONS = 20
RELOCATION_GAIN = 0.05
#: Ranges of starts spanning up to this many grid points are searched in plain Python, wider
#: ones with numpy (whose fixed cost per call is larger).
FEW_GRID_POINTS = 4
#: A sum of priorities must grow by more than this for a change to be kept (float noise).
PRIORITY_EPSILON = 1e-9
#: Summed airmass must fall by more than this for a shift or swap to be kept.
AIRMASS_EPSILON = 1e-4
#: Seconds taken off an observation's start when its end is aligned on a grid point, so that
#: floating-point rounding cannot carry the end past that point.
ALIGN_SECONDS = 1e-6
#: Seconds of float slack when comparing instants.
TIME_EPSILON = 1e-6
#: Below this altitude (degrees) airmass is taken as very large (sec z grows without bound).
LOWEST_ALTITUDE = 1.0


class Refiner:
    """The local search over one night's plan.

    Parameters
    ----------
    targets : list of Target
    visible, altitude : numpy.ndarray
        Targets × grid, as :class:`.planner._Grid` computes them.
    grid_seconds : float
        The grid's spacing.
    slew : callable
        ``slew(before, after)``: seconds of slew and settle between two unit vectors (or
        ``None``, unknown), as :meth:`.planner.Constraints.slew_between`.
    vectors : list
        Each target's unit vector.
    begin, end : float
        Seconds from the night's start between which the plan must lie.
    start_vector : tuple or None
        Where the telescope points before the first entry.
    budget : float, optional
        Seconds of telescope time (durations and slews) the plan may take.
    max_entries : int, optional
    first_start : float, optional
        The latest start the plan's first entry may have (the greedy plan's first start): a
        telescope that could be observing is not left idle waiting for a lower airmass, and
        the daemon dispatches what the plan puts first.
    """

    def __init__(self, targets, visible, altitude, grid_seconds, slew, vectors, begin, end,
                 start_vector, budget=None, max_entries=None, first_start=None):
        self.targets, self.altitude, self.grid = targets, altitude, grid_seconds
        self.first_limit = end if first_start is None else first_start
        self.slew_between, self.vectors = slew, vectors
        self.begin, self.end, self.start_vector = begin, end, start_vector
        self.budget, self.max_entries = budget, max_entries
        self.duration = [target.duration for target in targets]
        self.priority = [target.priority for target in targets]
        self.durations = np.array(self.duration, dtype=float)
        #: Every row, highest priority first (the shorter first among equals).
        self.by_priority = np.array(sorted(range(len(targets)), key=self._rank), dtype=int)
        #: Each row's place in that order, and in the order of priority per second of
        #: telescope time (a typical slew counted), highest first.
        self.priority_rank = np.empty(len(targets), dtype=int)
        self.priority_rank[self.by_priority] = np.arange(len(targets))
        density = -np.array(self.priority) / (self.durations + TYPICAL_SLEW_SECONDS)
        self.by_density = np.argsort(density, kind="stable")
        self.density_rank = np.empty(len(targets), dtype=int)
        self.density_rank[self.by_density] = np.arange(len(targets))
        self.points = visible.shape[1]
        #: Rows of altitudes as Python lists, each made when first read (faster to index).
        self.altitude_rows = _Rows(altitude)
        self.offsets = np.arange(self.points) * grid_seconds
        self.settle = slew(None, None)
        self.steps = np.array([math.ceil(d / grid_seconds) for d in self.duration], dtype=int)
        # blocked[i, k]: grid points before k where target i is not visible.
        count, points = len(targets), self.points
        self.blocked = np.zeros((count, points + 1), dtype=np.int16)
        np.cumsum(~visible, axis=1, out=self.blocked[:, 1:])
        # ok[i, k]: an observation of target i may start on grid point k (visible from k to
        # k + steps); heights[i, k]: its altitude in the middle of such an observation.
        # Targets of the same number of steps are done together, by slices.
        self.ok = np.zeros((count, points), dtype=bool)
        heights = np.full((count, points), -np.inf)
        for steps in np.unique(self.steps).tolist():
            rows = np.flatnonzero(self.steps == steps)
            if steps + 1 > points:
                continue
            stop = points - steps
            block = self.blocked[rows]
            self.ok[rows, :stop] = block[:, steps + 1:] == block[:, :stop]
            half = steps // 2
            heights[rows, :stop] = np.where(self.ok[rows, :stop],
                                            altitude[rows, half:half + stop], -np.inf)
        # next_ok[i, k] / prev_ok[i, k]: the nearest such grid point at or after / before k.
        columns = np.arange(points, dtype=np.int16)
        self.next_ok = np.minimum.accumulate(np.where(self.ok, columns, points)[:, ::-1],
                                             axis=1)[:, ::-1]
        self.prev_ok = np.maximum.accumulate(np.where(self.ok, columns, -1), axis=1)
        visible_any = self.ok.any(axis=1)
        first = np.where(visible_any, self.ok.argmax(axis=1), self.points)
        last = np.where(visible_any, self.points - 1 - self.ok[:, ::-1].argmax(axis=1), -1)
        #: The earliest start and the latest end each target may have, seconds.
        self.first_start = first * grid_seconds
        self.last_end = (last + self.steps) * grid_seconds
        # The grid point each target is best started on: highest at mid-observation.
        self.ideal = (heights.argmax(axis=1) * grid_seconds).tolist()
        self.best_airmass = [_airmass(height) for height in heights.max(axis=1).tolist()]
        self._slews, self._airmasses, self._low = {}, {}, {}

    # --- the planner's rule, and searches along it --------------------------------------

    def feasible(self, row, start):
        """Whether target *row* is observable from *start* for its whole duration."""
        first = math.floor(start / self.grid)
        final = math.ceil((start + self.duration[row]) / self.grid)
        return (first >= 0 and final < self.points
                and self.blocked[row, final + 1] == self.blocked[row, first])

    def earliest(self, row, low, high):
        """The earliest start of target *row* in [*low*, *high*], or ``None``."""
        if low > high + TIME_EPSILON:
            return None
        if self.feasible(row, low):
            return low
        k = max(math.floor(low / self.grid) + 1, 0)
        if k >= self.points:
            return None
        k = int(self.next_ok[row, k])
        start = k * self.grid
        if k < self.points and start <= high + TIME_EPSILON:
            return start
        return high if self.feasible(row, high) else None

    def latest(self, row, low, high):
        """The latest start of target *row* in [*low*, *high*], or ``None``."""
        if low > high + TIME_EPSILON:
            return None
        if self.feasible(row, high):
            return high
        k = min(math.floor(high / self.grid), self.points - 1)
        k = int(self.prev_ok[row, k]) if k >= 0 else -1
        if k >= 0:
            # The latest start whose first grid point is k: its end on grid point k + steps.
            start = max(low, min(high, max(k * self.grid, (k + self.steps[row]) * self.grid
                                           - self.duration[row] - ALIGN_SECONDS)))
            for candidate in (start, k * self.grid):
                if low - TIME_EPSILON <= candidate and self.feasible(row, candidate):
                    return candidate
        return low if self.feasible(row, low) else None

    def best(self, row, low, high):
        """The start in [*low*, *high*] where target *row* is highest at mid-observation,
        with its airmass, or ``(None, None)``."""
        if low > high + TIME_EPSILON:
            return None, None
        duration, grid = self.duration[row], self.grid
        # Most often the best instant itself, or the end of the range nearest it, will do.
        nearest = min(max(self.ideal[row], low), high)
        if self.feasible(row, nearest):
            return nearest, self.airmass(row, nearest)
        first_k, last_k = max(math.ceil(low / grid), 0), math.floor(high / grid) + 1
        if last_k - first_k <= FEW_GRID_POINTS:  # a narrow range: plain Python is faster
            candidates = [low, high]
            for k in range(first_k, last_k + 1):
                candidates += [k * grid, k * grid - duration / 2,
                               k * grid - duration - ALIGN_SECONDS]
            found = [(self.height(row, start + duration / 2), -start) for start in candidates
                     if low <= start <= high and self.feasible(row, start)]
            if not found:
                return None, None
            height, start = max(found)
            return -start, _airmass(height)
        ks = np.arange(first_k, last_k + 1)
        candidates = np.concatenate(([low, high], ks * grid, ks * grid - duration / 2,
                                     ks * grid - duration - ALIGN_SECONDS))
        candidates = candidates[(candidates >= low) & (candidates <= high)]
        first = np.floor(candidates / grid).astype(int)
        final = np.ceil((candidates + duration) / grid).astype(int)
        good = (first >= 0) & (final < self.points)
        first, final, candidates = first[good], final[good], candidates[good]
        good = self.blocked[row, final + 1] == self.blocked[row, first]
        if not good.any():
            return None, None
        candidates = np.sort(candidates[good])  # the earliest of equals, as the narrow path
        heights = np.interp(candidates + duration / 2, self.offsets, self.altitude[row])
        index = int(np.argmax(heights))
        return float(candidates[index]), _airmass(float(heights[index]))

    def height(self, row, instant):
        """Target *row*'s altitude (degrees) at *instant*, interpolated on the grid."""
        position = min(max(instant / self.grid, 0.0), self.points - 1)
        k = min(int(position), self.points - 2)
        fraction = position - k
        return (1 - fraction) * self.altitude_rows[row][k] \
            + fraction * self.altitude_rows[row][k + 1]

    def airmass(self, row, start):
        """Sec z of target *row* in the middle of an observation from *start* (remembered:
        the sweeps ask again for the entries that did not move)."""
        key = (row, start)
        if key not in self._airmasses:
            self._airmasses[key] = _airmass(self.height(row, start + self.duration[row] / 2))
        return self._airmasses[key]

    def slew(self, before, after):
        """Seconds of slew and settle from row *before* to row *after* (``None``: the
        telescope's position before the plan)."""
        key = (before, after)
        if key not in self._slews:
            self._slews[key] = self.slew_between(
                self.start_vector if before is None else self.vectors[before],
                self.vectors[after])
        return self._slews[key]

    # --- the plan as two lists -------------------------------------------------------------

    def run(self, rows, starts, left_out):
        """Refine a plan.

        Parameters
        ----------
        rows, starts : list
            The placed targets (indices into *targets*) in time order, and their starts.
        left_out : list
            Indices of the targets the greedy plan left out that could be observed tonight.

        Returns
        -------
        (list, list)
            The refined rows and starts, in time order.
        """
        self.rows, self.starts = list(rows), list(starts)
        self.left_out = set(left_out)
        self.left_out_mask = np.zeros(len(self.targets), dtype=bool)
        self.left_out_mask[list(self.left_out)] = True
        # Orders an exchange brings in must be observable no higher than the greedy plan's
        # mean airmass (:meth:`_low_enough`): trading must not buy priority with airmass.
        self.airmass_limit = (self.total_airmass(self.rows, self.starts) / len(self.rows)
                              if self.rows else math.inf)
        try:
            for _ in range(MAX_PRIORITY_SWEEPS):
                gained = self._insert_sweep()
                for width in range(1, MAX_REPLACED + 1):
                    gained |= self._replace_sweep(width)
                if not gained:
                    break
            self._settle_airmass()
            if self._resequence() | self._relocate_sweep():
                self._settle_airmass()
            # Moving orders for airmass may have opened a gap one more order fits in.
            if self._insert_sweep():
                self._settle_airmass()
        except _Inconsistent as error:
            log.error("refining the plan failed (%s): keeping the greedy plan", error)
            return list(rows), list(starts)
        problems = self.violations(self.rows, self.starts)
        if problems:
            # A defect of this module must not cost the night its plan: the greedy one is kept.
            log.error("the refined plan breaks a constraint (%s): keeping the greedy plan",
                      "; ".join(problems[:3]))
            return list(rows), list(starts)
        return self.rows, self.starts

    def violations(self, rows, starts):
        """What in a plan breaks a constraint, in words; empty when nothing does."""
        problems = []
        end, before = self.begin, None
        for row, start in zip(rows, starts):
            name = self.targets[row].id
            if start < end + self.slew(before, row) - TIME_EPSILON:
                problems.append(f"{name} starts before the slew to it ends")
            if not self.feasible(row, start):
                problems.append(f"{name} is not observable from {start:.0f} s")
            end, before = start + self.duration[row], row
        if end > self.end + TIME_EPSILON:
            problems.append("the last entry ends after the night")
        if starts and not self._keeps_start(starts):
            problems.append("the first entry starts later than the greedy plan's")
        if len(set(rows)) != len(rows):
            problems.append("an order is planned twice")
        if not self._room_for(rows):
            problems.append("over the budget or the number of entries")
        return problems

    def used(self, rows):
        """Telescope time (durations and slews) of *rows* in that order."""
        total, before = 0.0, None
        for row in rows:
            total += self.duration[row] + self.slew(before, row)
            before = row
        return total

    def _keeps_start(self, starts=None):
        """Whether the plan's first entry starts no later than ``first_limit``."""
        starts = self.starts if starts is None else starts
        return not starts or starts[0] <= self.first_limit + TIME_EPSILON

    def _snapshot(self):
        return list(self.rows), list(self.starts), set(self.left_out)

    def _restore(self, snapshot):
        """Go back to a :meth:`_snapshot`."""
        rows, starts, left_out = snapshot
        self.rows, self.starts, self.left_out = list(rows), list(starts), set(left_out)
        self.left_out_mask[:] = False
        self.left_out_mask[list(left_out)] = True

    def _room_for(self, rows):
        """Whether *rows* (a whole plan, in time order) keeps the budget and entry limit."""
        if self.max_entries is not None and len(rows) > self.max_entries:
            return False
        return self.budget is None or self.used(rows) <= self.budget + TIME_EPSILON

    def _chains(self):
        """Each entry's earliest start with every entry before it pushed as early as it can
        go, and latest start with every entry after it pushed as late as it can go."""
        rows, starts = self.rows, self.starts
        earliest, latest = list(starts), list(starts)
        end, before = self.begin, None
        for j, row in enumerate(rows):
            start = self.earliest(row, end + self.slew(before, row), starts[j])
            earliest[j] = starts[j] if start is None else start
            end, before = earliest[j] + self.duration[row], row
        start_after, after = self.end, None
        for j in reversed(range(len(rows))):
            row = rows[j]
            gap = 0.0 if after is None else self.slew(row, after)
            start = self.latest(row, starts[j], start_after - gap - self.duration[row])
            latest[j] = starts[j] if start is None else start
            start_after, after = latest[j], row
        return earliest, latest

    def _anchors(self, earliest, latest, first, stop):
        """The bounds of the room between entry ``first - 1`` pushed early and entry *stop*
        pushed late: (end before, row before, start after, row after)."""
        if first > 0:
            left_end = earliest[first - 1] + self.duration[self.rows[first - 1]]
            left_row = self.rows[first - 1]
        else:
            left_end, left_row = self.begin, None
        if stop < len(self.rows):
            right_start, right_row = latest[stop], self.rows[stop]
        else:
            right_start, right_row = self.end, None
        return left_end, left_row, right_start, right_row

    def _pack(self, candidates, left_end, left_row, right_start, right_row):
        """Fill the room between two anchors with *candidates* (rows), taken in that order,
        each put where it fits among those already taken; return the taken rows in time order
        with their earliest starts."""
        packed, load = [], 0.0
        room = right_start - left_end
        for row in candidates:
            # Durations and settles alone must fit before any position is worth trying.
            if load + self.duration[row] + self.settle > room or (
                    row in self.left_out and not self._low_enough(row, left_end, right_start)):
                continue
            for position in range(len(packed) + 1):
                trial = packed[:position] + [row] + packed[position:]
                starts = self._fit(trial, left_end, left_row, right_start, right_row)
                if starts is not None:
                    packed = trial
                    load += self.duration[row] + self.settle
                    break
        starts = self._fit(packed, left_end, left_row, right_start, right_row) if packed else []
        return packed, starts

    def _fit(self, rows, left_end, left_row, right_start, right_row):
        """The earliest starts of *rows* one after the other between the anchors, or
        ``None`` when they do not all fit."""
        starts, end, before = [], left_end, left_row
        for row in rows:
            start = self.earliest(row, end + self.slew(before, row),
                                  right_start - self.duration[row])
            if start is None:
                return None
            starts.append(start)
            end, before = start + self.duration[row], row
        if right_row is not None and end + self.slew(before, right_row) > right_start \
                + TIME_EPSILON:
            return None
        return starts

    def _commit(self, first, stop, rows, starts, earliest, latest):
        """Replace entries ``first:stop`` with *rows* at *starts*, and move the entries on
        either side (within their chains) just enough to keep every slew."""
        removed = self.rows[first:stop]
        self.rows[first:stop], self.starts[first:stop] = rows, starts
        self.left_out.difference_update(rows)
        self.left_out.update(row for row in removed if row not in rows)
        self.left_out_mask[rows] = False
        self.left_out_mask[[row for row in removed if row not in rows]] = True
        # Left of the new entries: each ends before the next starts, as late as it was or
        # earlier, never before its earliest start.
        bound_start, bound_row = (starts[0], rows[0]) if rows else (None, None)
        for j in range(first - 1, -1, -1):
            if bound_row is None:
                break
            row = self.rows[j]
            high = bound_start - self.slew(row, bound_row) - self.duration[row]
            if self.starts[j] <= high + TIME_EPSILON:
                break
            self.starts[j] = _found(self.latest(row, earliest[j], high), self.targets[row])
            bound_start, bound_row = self.starts[j], row
        # Right of them: each starts after the one before ends, never after its latest start.
        shift = len(rows) - (stop - first)
        before = self.rows[first + len(rows) - 1] if rows else None
        end = starts[-1] + self.duration[rows[-1]] if rows else None
        for j in range(first + len(rows), len(self.rows)):
            if before is None:
                break
            row = self.rows[j]
            low = end + self.slew(before, row)
            if self.starts[j] >= low - TIME_EPSILON:
                break
            self.starts[j] = _found(self.earliest(row, low, latest[j - shift]),
                                    self.targets[row])
            before, end = row, self.starts[j] + self.duration[row]

    # --- priority ---------------------------------------------------------------------------

    def _candidates(self, left_end, right_start, extra=()):
        """Left-out rows that could be observed between two instants, then *extra*: in two
        orders to try, by priority and by priority per second, at most
        ``MAX_REFILL_CANDIDATES`` of the left-out each; ``[]`` when no left-out row could."""
        fits = (self.left_out_mask
                & (self.durations + self.settle <= right_start - left_end)
                & (self.first_start + self.durations <= right_start)
                & (self.last_end - self.durations >= left_end))
        if not fits.any():
            return []  # only the orders taken out could go back: nothing to gain
        lists = []
        for order, rank in ((self.by_priority, self.priority_rank),
                            (self.by_density, self.density_rank)):
            chosen = order[np.flatnonzero(fits[order])[:MAX_REFILL_CANDIDATES]].tolist()
            chosen.extend(extra)
            chosen.sort(key=lambda row: rank[row])
            lists.append(chosen)
        return lists

    def _low_enough(self, row, left_end, right_start):
        """Whether a left-out order can be observed between two instants at an airmass no
        higher than the greedy plan's mean: adding it should not raise the mean."""
        key = (row, left_end, right_start)
        if key not in self._low:
            _, airmass = self.best(row, left_end + self.settle,
                                   right_start - self.settle - self.duration[row])
            self._low[key] = airmass is not None and airmass <= self.airmass_limit
        return self._low[key]

    def _fair(self, removed, added):
        """Whether an exchange keeps "priority first": the orders the room ends up with
        (*added*, which may hold some of *removed* again) include one at least as high as
        every order taken out, so a target of opportunity is never traded for routine ones."""
        taken_out = [row for row in removed if row not in added]
        if not taken_out:
            return True
        return max((self.priority[row] for row in added), default=-math.inf) >= max(
            self.priority[row] for row in taken_out)

    def _rank(self, row):
        """The order in which rows are tried: priority first, the shorter first among equals."""
        return -self.priority[row], self.duration[row], row

    def _insert_sweep(self):
        """Put left-out orders into gaps, highest priority first; return whether any went in."""
        gained = False
        earliest, latest = self._chains()
        gaps = self._gaps(earliest, latest)
        order = sorted(self.left_out, key=self._rank)
        # Which of them some gap could hold, all at once: in a full night most fit none, and
        # the gaps change only when one goes in.
        might_fit = self._might_fit(order, *gaps)
        for index, row in enumerate(order):
            if self.max_entries is not None and len(self.rows) >= self.max_entries:
                break
            if not might_fit[index]:
                continue
            duration = self.duration[row]
            left_ends, right_starts = gaps
            fitting = np.flatnonzero((right_starts - left_ends >= duration + self.settle)
                                     & (self.first_start[row] + duration <= right_starts)
                                     & (self.last_end[row] - duration >= left_ends))
            for gap in fitting:
                gap = int(gap)
                left_end, left_row, right_start, right_row = self._anchors(earliest, latest,
                                                                           gap, gap)
                starts = self._fit([row], left_end, left_row, right_start, right_row)
                if starts is None or not self._room_for(self.rows[:gap] + [row]
                                                        + self.rows[gap:]):
                    continue
                snapshot = self._snapshot()
                self._commit(gap, gap, [row], starts, earliest, latest)
                if not self._keeps_start():
                    self._restore(snapshot)
                    continue
                earliest, latest = self._chains()
                gaps = self._gaps(earliest, latest)
                might_fit = self._might_fit(order, *gaps)
                gained = True
                break
        return gained

    def _might_fit(self, rows, left_ends, right_starts):
        """For each of *rows*, whether a gap passes :meth:`_insert_sweep`'s first test (room
        for it, inside its window): an array of bools."""
        rows = np.asarray(rows, dtype=int)
        if not len(rows):
            return np.zeros(0, dtype=bool)
        duration = self.durations[rows][:, None]
        return ((right_starts - left_ends >= duration + self.settle)
                & (self.first_start[rows][:, None] + duration <= right_starts)
                & (self.last_end[rows][:, None] - duration >= left_ends)).any(axis=1)

    def _gaps(self, earliest, latest):
        """Every gap's room, entries pushed apart: (ends before, starts after) as arrays."""
        ends = [self.begin] + [start + self.duration[row]
                               for start, row in zip(earliest, self.rows)]
        return np.array(ends), np.array(latest + [self.end])

    def _replace_sweep(self, width):
        """Take out *width* neighbouring entries at a time, lowest priority first, and refill
        their room; keep the change when the sum of priorities grows."""
        gained = False
        earliest, latest = self._chains()
        windows = sorted((tuple(self.rows[j:j + width])
                          for j in range(len(self.rows) - width + 1)),
                         key=lambda rows: (sum(self.priority[row] for row in rows), rows))
        for removed in windows:
            removed = list(removed)
            if removed[0] not in self.rows:
                continue
            first = self.rows.index(removed[0])
            if self.rows[first:first + width] != removed:
                continue  # the plan changed around this window since the list was made
            left_end, left_row, right_start, right_row = self._anchors(earliest, latest,
                                                                       first, first + width)
            best = None
            tried = []
            for candidates in self._candidates(left_end, right_start, removed):
                if candidates in tried:
                    continue  # both rankings chose the same orders in the same order
                tried.append(candidates)
                packed, starts = self._pack(candidates, left_end, left_row, right_start,
                                            right_row)
                gain = (sum(self.priority[row] for row in packed)
                        - sum(self.priority[row] for row in removed))
                if (gain > PRIORITY_EPSILON and (best is None or gain > best[0])
                        and self._fair(removed, packed) and self._room_for(
                            self.rows[:first] + packed + self.rows[first + width:])):
                    best = gain, packed, starts
            if best is None:
                continue
            _, packed, starts = best
            snapshot = self._snapshot()
            self._commit(first, first + width, packed, starts, earliest, latest)
            if not self._keeps_start():
                self._restore(snapshot)
                continue
            earliest, latest = self._chains()
            gained = True
        return gained

    # --- airmass ----------------------------------------------------------------------------

    def _settle_airmass(self):
        """Shifts and swaps until none lowers the airmass (at most ``MAX_AIRMASS_ROUNDS``)."""
        for _ in range(MAX_AIRMASS_ROUNDS):
            moved = self._shift_sweep(reversed(range(len(self.rows))))
            moved |= self._shift_sweep(range(len(self.rows)))
            moved |= self._swap_sweep()
            if not moved:
                break

    def total_airmass(self, rows, starts):
        """The summed airmass of a plan, each entry's at its middle."""
        return sum(self.airmass(row, start) for row, start in zip(rows, starts))

    def _chain_from(self, rows, starts, position):
        """*starts* (of the rows before *position*) followed by the earliest starts of
        ``rows[position:]`` one after the other, or ``None`` when one does not fit."""
        chained = starts[:position]
        before = rows[position - 1] if position else None
        end = chained[-1] + self.duration[before] if position else self.begin
        for row in rows[position:]:
            start = self.earliest(row, end + self.slew(before, row),
                                  self.end - self.duration[row])
            if start is None:
                return None
            chained.append(start)
            end, before = start + self.duration[row], row
        return chained

    def _chain_back_from(self, rows, starts, position):
        """The latest starts of ``rows[:position + 1]``, each before the one after it, followed
        by *starts* (of the rows after *position*), or ``None`` when one does not fit."""
        chained = list(starts)
        after = rows[position + 1] if position + 1 < len(rows) else None
        start_after = chained[0] if chained else self.end
        for row in reversed(rows[:position + 1]):
            gap = 0.0 if after is None else self.slew(row, after)
            start = self.latest(row, self.begin + self.slew(None, row),
                                start_after - gap - self.duration[row])
            if start is None:
                return None
            chained.insert(0, start)
            start_after, after = start, row
        return chained

    def _build(self, rows, backward):
        """*rows* in that order (reversed with *backward*: built from the night's end), each
        as early (late) as it can follow (precede) the one placed before it; an order that
        cannot is put up to ``MAX_STEPS_BACK`` places earlier (later). (rows, starts) in time
        order, or ``None``."""
        order, starts = [], []
        for row in rows:
            for step in range(min(len(order), MAX_STEPS_BACK) + 1):
                if backward:
                    trial = order[:step] + [row] + order[step:]
                    chained = self._chain_back_from(trial, starts[step:], step)
                else:
                    position = len(order) - step
                    trial = order[:position] + [row] + order[position:]
                    chained = self._chain_from(trial, starts, position)
                if chained is not None:
                    order, starts = trial, chained
                    break
            else:
                return None
        return order, starts

    def _resequence(self):
        """Try the same orders in the order of their best instants (transit, or the nearest
        instant they can be observed): those best before the middle of the night from its
        start, each as early as it can follow the one before, the others from its end, each
        as late as it can precede the one after; keep that plan, settled, when its airmass is
        lower."""
        middle = (self.begin + self.end) / 2
        rows = sorted(self.rows, key=lambda row: (self.ideal[row], self.last_end[row], row))
        early = self._build([row for row in rows if self.ideal[row] < middle], False)
        late = self._build([row for row in reversed(rows) if self.ideal[row] >= middle], True)
        if early is None or late is None:
            return False
        order, starts = early[0] + late[0], early[1] + late[1]
        if early[0] and late[0] and (starts[len(early[0]) - 1] + self.duration[early[0][-1]]
                                     + self.slew(early[0][-1], late[0][0])
                                     > late[1][0] + TIME_EPSILON):
            return False
        if not self._room_for(order) or not self._keeps_start(starts):
            return False
        kept = self.rows, self.starts, self.total_airmass(self.rows, self.starts)
        self.rows, self.starts = order, starts
        self._settle_airmass()
        if self.total_airmass(self.rows, self.starts) < kept[2] - AIRMASS_EPSILON:
            return True
        self.rows, self.starts = kept[0], kept[1]
        return False

    def _relocate_sweep(self):
        """Move the entries farthest above their best airmass, one at a time, into the gap
        nearest their best instant, the entries there pushed aside; keep each move that
        lowers the plan's summed airmass. At most ``MAX_RELOCATIONS`` tries."""
        moved = False
        worst_first = sorted(zip(self.rows, self.starts), key=lambda pair: (
            self.best_airmass[pair[0]] - self.airmass(*pair), pair[0]))
        total = self.total_airmass(self.rows, self.starts)
        for row, _ in worst_first[:MAX_RELOCATIONS]:
            j = self.rows.index(row)
            if self.airmass(row, self.starts[j]) - self.best_airmass[row] < RELOCATION_GAIN:
                break
            kept = list(self.rows), list(self.starts), total
            nearest = sum(1 for start in self.starts if start < self.ideal[row])
            earliest, latest = self._chains()
            for gap in (nearest, nearest + 1, nearest - 1):
                if gap in (j, j + 1) or not 0 <= gap <= len(self.rows):
                    continue
                left_end, left_row, right_start, right_row = self._anchors(earliest, latest,
                                                                           gap, gap)
                gap_after = 0.0 if right_row is None else self.slew(row, right_row)
                start, _ = self.best(row, left_end + self.slew(left_row, row),
                                     right_start - gap_after - self.duration[row])
                if start is None:
                    continue
                self._commit(gap, gap, [row], [start], earliest, latest)
                old = j + 1 if gap <= j else j
                del self.rows[old], self.starts[old]
                after = self.total_airmass(self.rows, self.starts)
                if (self._room_for(self.rows) and self._keeps_start()
                        and after < kept[2] - AIRMASS_EPSILON):
                    moved, total = True, after
                    break
                self.rows, self.starts = list(kept[0]), list(kept[1])
        return moved

    def _bounds(self, j, row=None):
        """The earliest start and latest start of entry *j* (or of *row* in its place) that
        keep the slews from the entry before and to the entry after."""
        rows = self.rows
        row = rows[j] if row is None else row
        if j > 0:
            low = self.starts[j - 1] + self.duration[rows[j - 1]] + self.slew(rows[j - 1], row)
        else:
            low = self.begin + self.slew(None, row)
        if j + 1 < len(rows):
            high = self.starts[j + 1] - self.slew(row, rows[j + 1]) - self.duration[row]
        else:
            high = self.end - self.duration[row]
        return low, (min(high, self.first_limit) if j == 0 else high)

    def _shift_sweep(self, order):
        """Move each entry to where its target stands highest between its neighbours."""
        moved = False
        for j in order:
            row = self.rows[j]
            low, high = self._bounds(j)
            now = self.airmass(row, self.starts[j])
            if high - low <= TIME_EPSILON or now < self.best_airmass[row] + AIRMASS_EPSILON:
                continue  # held on both sides, or already at its best
            start, airmass = self.best(row, low, high)
            if start is not None and airmass < now - AIRMASS_EPSILON:
                self.starts[j] = start
                moved = True
        return moved

    def _swap_sweep(self):
        """Exchange neighbours when that lowers their summed airmass."""
        moved = False
        for j in range(len(self.rows) - 1):
            one, two = self.rows[j], self.rows[j + 1]
            before = self.rows[j - 1] if j > 0 else None
            after = self.rows[j + 2] if j + 2 < len(self.rows) else None
            low = (self.starts[j - 1] + self.duration[before] if j > 0 else self.begin) \
                + self.slew(before, two)
            end = (self.starts[j + 2] - self.slew(one, after) if after is not None
                   else self.end)
            now = self.airmass(one, self.starts[j]) + self.airmass(two, self.starts[j + 1])
            if now < self.best_airmass[one] + self.best_airmass[two] + AIRMASS_EPSILON:
                continue  # both at their best already
            between = self.slew(two, one)
            latest_first = end - self.duration[one] - between - self.duration[two]
            if j == 0:
                latest_first = min(latest_first, self.first_limit)
            first, first_airmass = self.best(two, low, latest_first)
            if first is None:
                continue
            second, second_airmass = self.best(one, first + self.duration[two] + between,
                                               end - self.duration[one])
            if second is None:
                continue
            if first_airmass + second_airmass >= now - AIRMASS_EPSILON:
                continue
            swapped = self.rows[:j] + [two, one] + self.rows[j + 2:]
            if not self._room_for(swapped):
                continue
            self.rows, self.starts[j], self.starts[j + 1] = swapped, first, second
            moved = True
        return moved


class _Rows:
    """``rows[i]``: row *i* of an array as a Python list, converted once and kept."""

    def __init__(self, array):
        self.array, self.cache = array, {}

    def __getitem__(self, index):
        if index not in self.cache:
            self.cache[index] = self.array[index].tolist()
        return self.cache[index]


class _Inconsistent(Exception):
    """The search found no place for an entry where its chain promised one (a defect)."""


def _found(start, target):
    """*start*, which a chain guarantees; :class:`_Inconsistent` when it is missing."""
    if start is None:
        raise _Inconsistent(f"no start left for {target.id}")
    return start


def _airmass(altitude):
    """Sec z at *altitude* degrees (large near the horizon)."""
    return 1.0 / math.sin(math.radians(max(altitude, LOWEST_ALTITUDE)))
