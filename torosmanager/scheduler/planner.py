"""Planning a night: which orders to observe, when, to maximise the sum of priorities.

Visibility
    For every order, on a one-minute grid over tonight's dark hours (the Sun below
    ``Sun Altitude``): the target is below ``Max Airmass`` (with a small altitude margin, so no
    instant between grid points breaks the limit), farther than ``Moon Separation`` from the
    Moon while the Moon is above the horizon (:data:`MOON_HORIZON`: once it has set, its light
    is gone), and inside the order's own ``Not Before`` / ``Not After``. Altitudes come from
    :class:`~torosmanager.night.Night` (astropy for the Sun and sidereal time, numpy per target).

Plan
    Orders are taken in order of priority (the more constrained first among equals) and each is
    put at the earliest instant where its whole duration is observable and it fits between the
    orders already placed, counting the slew from the one before and to the one after
    (``Slew Rate``, ``Settle Time``) and a readout per frame (``Readout Time``). Exposures are
    never shortened. What cannot be placed is reported with the reason. A plan may also be
    held to a budget of telescope time (durations and slews) and a number of entries: an order
    that would break either is left out and the next one tried (the alerts' pick uses this).

Refinement
    The greedy plan is then improved by local search (:mod:`.refine`), within the same
    constraints: orders left out are slipped in, and placed orders exchanged for others when
    the sum of priorities grows (never for orders all lower than one taken out); then orders
    are moved and reordered toward their targets' transits (lower airmass). The first
    observation starts when the greedy plan's would. Plans held to a budget or a number of
    entries (the alerts' pick) stay greedy unless asked.
"""

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from .. import ephemeris
from ..devices.camera import FrameType
from ..night import Night, altitude_grid, dot_products, precess, reached_text, unit_vectors
from ..units import Degrees, Seconds
from ..workorders import parse_utc
from .refine import Refiner

#: The visibility grid's spacing, seconds.
GRID_SECONDS = 60.0
#: Degrees added to the altitude limit: between two grid points a target moves at most 0.25°,
#: and the fast altitude formula differs from astropy's full transform by under 0.05°.
ALTITUDE_MARGIN = 0.3
#: Degrees added to the Moon limit (the Moon moves 0.5° an hour; it is sampled coarsely).
MOON_MARGIN = 0.5
#: The Moon's altitude, degrees, below which it is not kept away from: set, with a margin for
#: its coarse sampling and its half-degree disc.
MOON_HORIZON = -1.0
#: Moon positions computed over a night; in between they are interpolated.
MOON_SAMPLES = 13
#: Seconds of added slew below which two places for an order count as equal.
SLEW_TIE = 1e-6
#: Reasons give a duration in minutes up to this many, then in hours up to this many, then days.
SPAN_MINUTES_UP_TO = 120
SPAN_HOURS_UP_TO = 48
#: Why an order the greedy plan held is left out of the refined one.
EXCHANGED = "no room left tonight: orders of more priority together take its time"
#: Why an order observable tonight is not in the plan when others are.
NO_ROOM = "no room left tonight after orders of higher or equal priority"
#: Sidereal time advances 2π radians per sidereal day (86164.0905 s).
SIDEREAL_RADIANS_PER_SECOND = 2 * math.pi / 86164.0905


@dataclass
class Target:
    """What the planner needs to know of one order.

    Attributes
    ----------
    id : str
    ra, dec : float
        ICRS degrees.
    priority : float
        0–10, higher first.
    duration : float
        Seconds, all frames and readouts included (see :func:`duration_of`).
    not_before, not_after : datetime or None
        The order's own window.
    urgent : bool
        A target of opportunity (``Priorities → ToO Threshold``): wanted at its earliest, so
        the refined plan never moves it later than the greedy plan put it (to within a grid
        step), toward a lower airmass; the scheduler dispatches it at once in any case.
    """

    id: str
    ra: Degrees
    dec: Degrees
    priority: float
    duration: Seconds
    not_before: datetime | None = None
    not_after: datetime | None = None
    urgent: bool = False


@dataclass
class PlanEntry:
    """One order in the plan."""

    id: str
    start: datetime
    end: datetime
    priority: float
    ra: Degrees
    dec: Degrees
    altitude: Degrees   #: at the start
    slew: Seconds       #: of slew and settle before the start


@dataclass
class Plan:
    """A night's plan: the entries in time order, and why the others are not in it."""

    night_start: datetime | None
    night_end: datetime | None
    entries: list[PlanEntry] = field(default_factory=list)
    #: Order ID → why it is not in the plan.
    unscheduled: dict[str, str] = field(default_factory=dict)

    @property
    def total_priority(self) -> float:
        """The sum of the priorities observed."""
        return sum(entry.priority for entry in self.entries)


@dataclass(frozen=True)
class Constraints:
    """The limits a plan keeps (from the shared ``Observing`` section)."""

    sun_altitude: Degrees
    max_airmass: float
    moon_separation: Degrees
    slew_rate: float    #: degrees per second
    settle_time: Seconds
    #: ``Observing → Minimum Altitude``, the telescope's limit whatever the airmass.
    minimum_altitude: Degrees = 0.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "Constraints":
        return cls(settings["Sun Altitude"], settings["Max Airmass"], settings["Moon Separation"],
                   settings["Slew Rate"], settings["Settle Time"], settings["Minimum Altitude"])

    @property
    def airmass_altitude(self) -> Degrees:
        """The altitude at which sec z equals the airmass limit, degrees."""
        return math.degrees(math.asin(1.0 / self.max_airmass))

    @property
    def min_altitude(self) -> Degrees:
        """The lowest altitude a plan observes at, degrees: the airmass limit's, or
        ``Minimum Altitude`` where that is higher (a Max Airmass of 3 is 19.5°, below the
        telescope's 20°: planned there, an order was refused at dispatch, and failed)."""
        return max(self.airmass_altitude, self.minimum_altitude)

    @property
    def by_minimum_altitude(self) -> bool:
        """Whether ``Minimum Altitude``, not the airmass limit, sets :attr:`min_altitude`."""
        return self.minimum_altitude > self.airmass_altitude

    def limit_text(self) -> str:
        """The altitude limit as a reason says it, naming its setting."""
        if self.by_minimum_altitude:
            return f"above {self.minimum_altitude:g}° (Observing → Minimum Altitude)"
        return f"below airmass {self.max_airmass:g} (altitude {self.airmass_altitude:.0f}°)"

    def slew_seconds(self, before: tuple[Degrees, Degrees] | None,
                     after: tuple[Degrees, Degrees] | None) -> Seconds:
        """Seconds a plan counts to slew from *before* to *after* and settle.

        Parameters
        ----------
        before, after : (float, float) or None
            ICRS positions (RA, Dec degrees); ``None`` (unknown): the settle time alone, as
            for a plan's first slew without a start position.
        """
        return self.slew_between(None if before is None else _unit(*before),
                                 None if after is None else _unit(*after))

    def slew_between(self, before: Sequence[float] | None,
                     after: Sequence[float] | None) -> Seconds:
        """The same as :meth:`slew_seconds`, between unit vectors (``None``: unknown)."""
        if before is None or after is None:
            return self.settle_time
        angle = math.degrees(math.acos(max(-1.0, min(1.0, sum(a * b for a, b in
                                                              zip(before, after))))))
        return angle / self.slew_rate + self.settle_time


def duration_of(order: Mapping[str, Any], observing: Mapping[str, Any],
                done: Mapping[str, Any] | None = None) -> Seconds:
    """Seconds an Observation order occupies the telescope, slews excluded.

    Parameters
    ----------
    order : dict
        A validated Observation order.
    observing : dict
        The ``Observing`` section: ``Readout Time`` per frame, and the calibration frames the
        telescope takes when the order asks for them.
    done : dict, optional
        The progress of its earlier attempts, as the telescope reports it (``Frames Done``,
        ``Calibration Done`` by ``IMAGETYP``): an order tried again takes only the frames
        still missing (at least a readout's time is counted).
    """
    done = done or {}
    taken = done.get("Calibration Done", {})
    readout = observing["Readout Time"]
    seconds = order["Exposure Time"]

    def missing(wanted, frame_type):
        return max(wanted - int(taken.get(frame_type.value, 0)), 0)

    lights = max(order.get("Number of Exposures", 1) - int(done.get("Frames Done", 0)), 0)
    total = lights * (seconds + readout)
    if order.get("Calibration Frames"):
        total += missing(observing["Bias Frames"], FrameType.BIAS) * readout
        total += missing(observing["Dark Frames"], FrameType.DARK) * (seconds + readout)
        total += (missing(observing["Flat Frames"], FrameType.FLAT)
                  * (observing["Flat Exposure Time"] + readout))
    return max(total, readout)


def target_of(order: Mapping[str, Any], priority: float,
              observing: Mapping[str, Any], urgent: bool = False,
              done: Mapping[str, Any] | None = None) -> Target:
    """The :class:`Target` of a validated Observation order (*urgent*: see :class:`Target`;
    *done*: see :func:`duration_of`; its ``Retry After``, the scheduler's wait before a
    failed order's next try, starts the order no earlier than its ``Not Before`` does)."""
    def instant(mapping, key):
        text = mapping.get(key)
        return None if text is None else parse_utc(text)

    starts = [instant(order, "Not Before"), instant(done or {}, "Retry After")]
    not_before = max((start for start in starts if start is not None), default=None)
    return Target(order["ID"], order["RA"], order["Dec"], priority,
                  duration_of(order, observing, done), not_before,
                  instant(order, "Not After"), urgent)


@dataclass
class Visibility:
    """Targets' visibility over tonight's dark hours, on the planner's one-minute grid.

    Attributes
    ----------
    night_start, night_end : datetime
        Tonight's dark hours (from *now* when the night is in progress).
    offsets : numpy.ndarray
        The grid's instants, seconds from *night_start*.
    visible : numpy.ndarray
        Boolean, targets × grid: every constraint of the plan is met.
    altitude : numpy.ndarray
        Degrees, targets × grid.
    reasons : dict
        Target ID → why it cannot be observed tonight for its whole duration; only the
        targets that cannot.
    """

    night_start: datetime
    night_end: datetime
    offsets: np.ndarray
    visible: np.ndarray
    altitude: np.ndarray
    reasons: dict[str, str] = field(default_factory=dict)

    def instant(self, seconds: Seconds) -> datetime:
        """The UTC instant *seconds* after the night's start."""
        return self.night_start + timedelta(seconds=float(seconds))

    def seconds(self, instant: datetime) -> Seconds:
        """Seconds from the night's start to *instant*."""
        return (instant - self.night_start).total_seconds()

    def observable(self, index: int, start: Seconds, duration: Seconds) -> bool:
        """Whether target *index* is visible from *start* (seconds) for *duration* seconds,
        judged on the grid points around that span (as :meth:`Planner.plan` places orders)."""
        first, final = grid_span(start, duration)
        return 0 <= first and final < self.visible.shape[1] and bool(
            self.visible[index, first:final + 1].all())

    def altitude_at(self, index: int, seconds: Seconds) -> Degrees:
        """Target *index*'s altitude (degrees) *seconds* after the night's start."""
        return float(np.interp(seconds, self.offsets, self.altitude[index]))


class Planner:
    """Plans nights at one site.

    Parameters
    ----------
    site : dict
        The configuration's ``Site`` section.
    constraints : Constraints
    """

    def __init__(self, site: Mapping[str, Any], constraints: Constraints) -> None:
        self.night = Night(site)
        self.constraints = constraints
        # The Moon's track over the night being planned (see moon_track): the scheduler plans
        # the same night again and again, and astropy's Moon is most of a small plan's time.
        self._moon = None
        self._moon_lock = threading.Lock()

    def moon_track(self, window):
        """The Moon's place seen from the site over *window*'s night: ``(start, seconds,
        ra, dec)``, at :data:`MOON_SAMPLES` instants (*seconds* after the datetime *start*;
        right ascension unwrapped and declination in radians, GCRS).

        Computed once a night, from the first window asked for until the night's end, and
        reused for the later, shorter windows of the same night.
        """
        with self._moon_lock:
            cached = self._moon
            if cached is None or cached[0] != window.end or window.start < cached[1]:
                night = self.night
                seconds = np.linspace(0, (window.end - window.start).total_seconds(),
                                      MOON_SAMPLES)
                ra, dec = ephemeris.moon_from_site(
                    *ephemeris.julian_dates(window.start, seconds), night.latitude,
                    night.longitude, night.elevation)
                cached = (window.end, window.start, seconds, np.unwrap(ra), dec)
                self._moon = cached
            return cached[1:]

    def warm_up(self, now: datetime) -> None:
        """Plan one target at *now*, and forget the plan: the first plan of a process imports
        what it computes with (astropy's coordinates, for the precession; about two seconds
        of CPU here). The scheduler's planning process does it as it starts, so that its
        first plan, a flood's, does not. (The daemon's own planner does not: a scheduler
        that plans nothing never loads astropy's coordinates, IERS and table modules.)"""
        self.plan([Target("warm-up", 0.0, 0.0, 1.0, GRID_SECONDS)], now)

    def plan(self, targets: Sequence[Target], now: datetime,
             start_position: tuple[Degrees, Degrees] | None = None,
             free_from: datetime | None = None, budget: Seconds | None = None,
             max_entries: int | None = None, refine: bool | None = None) -> Plan:
        """Plan the rest of tonight (or the next night) for *targets*.

        Parameters
        ----------
        targets : list of Target
        now : datetime
            The clock's time; nothing is planned before it.
        start_position : (float, float), optional
            Where the telescope points (ICRS degrees), for the first slew.
        free_from : datetime, optional
            When the telescope is free (the order under way ends); default *now*.
        budget : float, optional
            Seconds of telescope time the plan may take: its entries' durations and the slews
            before them. An order that would take the plan over it is left out (a later,
            lower one may still fit). Default: no limit but the night.
        max_entries : int, optional
            At most this many entries, the first placed. Default: no limit.
        refine : bool, optional
            Improve the greedy plan by local search (:mod:`.refine`): more priority where
            orders can be exchanged or slipped in, then lower airmass; the first observation
            still starts when the greedy plan's would. Default: yes, but for a plan held to a
            *budget* or *max_entries* (the alerts' pick, which is the greedy plan by design).

        Returns
        -------
        Plan
        """
        window = self.night.window(now, self.constraints.sun_altitude)
        if window is None:
            return Plan(None, None, unscheduled={
                target.id: f"no dark hours (Sun below {self.constraints.sun_altitude:g}°) at "
                           "the site in the coming day and a half" for target in targets})
        plan = Plan(window.start, window.end)
        if not targets:
            return plan
        grid = _Grid(window, self, now)
        visible, altitude = grid.visibility(targets)
        longest = _longest_runs(visible)
        begin = max(free_from or now, window.start)
        timeline = _Timeline(grid.seconds(begin), grid.seconds(window.end), start_position,
                             self.constraints)
        # Each target's count of visible grid points, whether it has any, and its first and
        # last (see _Timeline.insert): for all targets at once, not in the loop below.
        seen = visible.sum(axis=1).tolist()
        order = sorted(range(len(targets)), key=lambda i: (-targets[i].priority, seen[i],
                                                           targets[i].duration))
        first_visible = visible.argmax(axis=1).tolist()
        last_visible = (visible.shape[1] - 1 - visible[:, ::-1].argmax(axis=1)).tolist()
        for i in order:
            target = targets[i]
            steps = math.ceil(target.duration / GRID_SECONDS)
            if not seen[i] or steps >= visible.shape[1]:
                plan.unscheduled[target.id] = self._why_not(target, visible[i], altitude[i],
                                                            longest[i], grid)
                continue
            refusal = _refusal(timeline, budget, max_entries)
            before = list(timeline.entries)
            placed = None if refusal else timeline.insert(target, visible[i], steps,
                                                          (first_visible[i], last_visible[i]))
            if placed is not None and budget is not None and timeline.used() > budget:
                timeline.restore(before)  # it fitted the night, not the budget: undone
                placed, refusal = None, _over_budget(budget)
            if placed is None:
                plan.unscheduled[target.id] = (
                    self._why_not(target, visible[i], altitude[i], longest[i], grid)
                    or refusal or self._no_room(target, visible[i], timeline, grid))
        row = {target.id: i for i, target in enumerate(targets)}
        if refine is None:
            refine = budget is None and max_entries is None
        if refine and timeline.entries:
            self._refine(timeline, targets, visible, altitude, row, plan.unscheduled, budget,
                         max_entries)
        for start, end, target, slew in timeline.entries:
            at_start = float(np.interp(start, grid.offsets, altitude[row[target.id]]))
            plan.entries.append(PlanEntry(target.id, grid.instant(start), grid.instant(end),
                                          target.priority, target.ra, target.dec, at_start, slew))
        return plan

    def _refine(self, timeline, targets, visible, altitude, row, unscheduled, budget,
                max_entries):
        """Replace *timeline*'s entries with the refined plan's, and *unscheduled*'s reasons
        with the refined plan's (orders added, orders exchanged for others)."""
        placed = [row[target.id] for _, _, target, _ in timeline.entries]
        left_out = [row[order_id] for order_id in unscheduled if order_id in row]
        urgent = [(row[target.id], end) for _, end, target, _ in timeline.entries
                  if target.urgent]
        if urgent:
            # A target of opportunity may end no later than the greedy plan has it end: the
            # grid points after that count as out of sight, for the search alone.
            visible = visible.copy()
            for index, end in urgent:
                visible[index, math.ceil(end / GRID_SECONDS) + 1:] = False
        refiner = Refiner(targets, visible, altitude, GRID_SECONDS,
                          self.constraints.slew_between, [_unit(t.ra, t.dec) for t in targets],
                          timeline.begin, timeline.end, timeline.start_position, budget,
                          max_entries, first_start=timeline.entries[0][0])
        rows, starts = refiner.run(placed, [start for start, _, _, _ in timeline.entries],
                                   left_out)
        entries, before = [], timeline.start_position
        for index, start in zip(rows, starts):
            target = targets[index]
            here = timeline.vector(target)
            entries.append((start, start + target.duration, target,
                            timeline.slew(before, here)))
            before = here
        timeline.entries = entries
        for index in rows:
            unscheduled.pop(targets[index].id, None)
        for index in sorted(set(placed) - set(rows)):
            unscheduled[targets[index].id] = EXCHANGED

    def visibility(self, targets: Sequence[Target], now: datetime) -> Visibility | None:
        """Where and when each target can be observed tonight, as :meth:`plan` sees it.

        Parameters
        ----------
        targets : list of Target
        now : datetime
            The clock's time: tonight is the rest of the night in progress, or the next one.

        Returns
        -------
        Visibility or None
            ``None`` when the site has no dark hours in the coming day and a half.
        """
        window = self.night.window(now, self.constraints.sun_altitude)
        if window is None:
            return None
        grid = _Grid(window, self, now)
        if not targets:
            empty = np.zeros((0, len(grid.offsets)))
            return Visibility(window.start, window.end, grid.offsets, empty.astype(bool), empty)
        visible, altitude = grid.visibility(targets)
        longest = _longest_runs(visible)
        reasons = {}
        for i, target in enumerate(targets):
            reason = self._why_not(target, visible[i], altitude[i], longest[i], grid)
            if reason:
                reasons[target.id] = reason
        return Visibility(window.start, window.end, grid.offsets, visible, altitude, reasons)

    def _no_room(self, target, visible, timeline, grid):
        """Why *target*, observable tonight (*visible* on *grid*), was not placed in
        *timeline*."""
        if timeline.entries:
            return NO_ROOM
        # Alone, it does not fit with the slew and settling before it.
        begin = grid.instant(timeline.begin)
        first = int(np.searchsorted(grid.offsets, timeline.begin))
        stretch = _span(int(_longest_runs(visible[None, first:])[0]))
        slew = timeline.slew(timeline.start_position, timeline.vector(target))
        return (f"needs {span_text(target.duration, math.ceil)} without a break after "
                f"{slew:.0f} s of slew and settling, and is observable for at most "
                f"{span_text(stretch, math.floor)} at a "
                f"stretch from {begin:%H:%M} UTC tonight")

    def _why_not(self, target, visible, altitude, longest_run, grid):
        """Why *target* cannot be observed tonight, or ``""`` when it could be but for others
        (*altitude*: its altitudes on *grid*; *longest_run*: grid points in its longest
        observable stretch)."""
        limit, window = self.constraints.min_altitude, grid.window
        if target.not_after is not None and target.not_after <= window.start:
            if target.not_after > grid.now:  # later today, in daylight
                return (f"its window closes at {target.not_after:%Y-%m-%d %H:%M} UTC, before "
                        f"tonight's dark hours begin ({window.start:%H:%M} UTC)")
            return f"its window ended at {target.not_after:%Y-%m-%d %H:%M} UTC"
        if target.not_before is not None and target.not_before >= window.end:
            return f"its window opens at {target.not_before:%Y-%m-%d %H:%M} UTC, after tonight"
        # Only the dark hours of its own window count: high outside it is no use.
        in_window = grid.in_window(target)
        if not in_window.any():
            return (f"its window, {target.not_before:%H:%M:%S}–{target.not_after:%H:%M:%S} "
                    f"UTC, holds no point of the plan's {GRID_SECONDS:g}-second grid")
        highest = float(altitude[in_window].max())
        if highest < limit + ALTITUDE_MARGIN:
            points = grid.offsets[in_window]
            hours = ("tonight's dark hours" if in_window.all() else
                     f"its window's dark hours tonight ({grid.instant(points[0]):%H:%M}–"
                     f"{grid.instant(points[-1]):%H:%M} UTC)")
            margin = (f", within the plan's margin of {ALTITUDE_MARGIN:g}°" if highest >= limit
                      else "")
            return (f"never {self.constraints.limit_text()} in {hours}; it reaches "
                    f"{reached_text(highest)}{margin}")
        if not visible.any():
            return (f"too close to the Moon (under {self.constraints.moon_separation:g}°) "
                    "whenever it is high enough")
        if _span(longest_run) < target.duration:
            return (f"needs {span_text(target.duration, math.ceil)} without a break but is "
                    f"observable for at most {span_text(_span(longest_run), math.floor)} at a "
                    "stretch tonight")
        return ""


def span_text(seconds, rounded=round):
    """A duration for people: minutes, hours or days, never a number of many digits.

    *rounded* (:func:`round`, :func:`math.ceil` or :func:`math.floor`) rounds it to what is
    shown: a need beside what is available is rounded up and the other down, so that "needs
    103 min … at most 103 min" is never said of 102.6 and 102.8.
    """
    minutes = seconds / 60
    if minutes < SPAN_MINUTES_UP_TO:
        return f"{rounded(minutes):.0f} min"
    hours = minutes / 60
    if hours < SPAN_HOURS_UP_TO:
        return f"{rounded(hours * 10) / 10:.1f} h"
    return f"{rounded(hours / 24):,.0f} days"


def _refusal(timeline, budget, max_entries):
    """Why no order can be added to *timeline* at all (its limits are reached), or ``""``."""
    if max_entries is not None and len(timeline.entries) >= max_entries:
        return f"the plan already has the most entries allowed ({max_entries})"
    if budget is not None and budget - timeline.used() < timeline.constraints.settle_time:
        return _over_budget(budget)  # not even a settle fits, let alone an observation
    return ""


def _over_budget(budget):
    """The reason an order is left out of a plan whose *budget* (seconds) it would exceed."""
    return f"over the budget of {span_text(budget)} of telescope time"


class _Grid:
    """The one-minute grid over a night, and each target's visibility on it (planned at
    *now*)."""

    def __init__(self, window, planner, now):
        self.window, self.planner, self.now = window, planner, now
        self.start = window.start
        span = (window.end - window.start).total_seconds()
        self.offsets = np.arange(0.0, span + 1e-9, GRID_SECONDS)
        origin = np.datetime64(window.start.replace(tzinfo=None), "s")
        coarse = (window.times - origin).astype("timedelta64[s]").astype(float)
        # Sidereal time grows linearly. During the night a cached window's grid starts up to
        # one grid step after `now`: extrapolate from its first point (interpolating would hold
        # it constant before that point and misplace every target by up to 1.25°).
        self.lst = window.lst_radians[0] + SIDEREAL_RADIANS_PER_SECOND * (self.offsets
                                                                          - coarse[0])
        self.latitude = planner.night.latitude

    def seconds(self, instant):
        return (instant - self.start).total_seconds()

    def instant(self, seconds):
        return self.start + timedelta(seconds=float(seconds))

    def altitudes(self, ra, dec, lst):
        """Altitudes (degrees) of targets (arrays, ICRS degrees) at sidereal times *lst*."""
        ra_now, dec_now = precess(ra, dec, self.window.equinox_jyear)
        return altitude_grid(self.latitude, ra_now, dec_now, lst)

    def visibility(self, targets):
        """A boolean array (targets × grid), and the altitudes (degrees) on the grid."""
        constraints = self.planner.constraints
        ra = np.array([target.ra for target in targets])
        dec = np.array([target.dec for target in targets])
        altitude = self.altitudes(ra, dec, self.lst)
        visible = altitude >= constraints.min_altitude + ALTITUDE_MARGIN
        if constraints.moon_separation > 0:
            visible &= self._far_from_moon(ra, dec, constraints.moon_separation + MOON_MARGIN)
        for i, target in enumerate(targets):
            if target.not_before is not None or target.not_after is not None:
                visible[i] &= self.in_window(target)
        return visible, altitude

    def in_window(self, target):
        """A boolean array over the grid: whether each point lies in *target*'s window (its
        Not Before and Not After)."""
        inside = np.ones(len(self.offsets), dtype=bool)
        if target.not_before is not None:
            inside &= self.offsets >= self.seconds(target.not_before)
        if target.not_after is not None:
            inside &= self.offsets <= self.seconds(target.not_after)
        return inside

    def _far_from_moon(self, ra, dec, limit):
        """A boolean array (targets × grid): whether each target (ICRS degrees) is at least
        *limit* degrees from the Moon, or the Moon is down. The cosine of the distance is the dot product of the
        two unit vectors, compared with the cosine of the limit (a distance grows as its
        cosine falls): no trigonometry on the whole grid, which took a flood's plan of
        thousands of orders 50 ms (as :func:`~torosmanager.night.altitude_grid`)."""
        start, seconds, track_ra, track_dec = self.planner.moon_track(self.window)
        instants = self.offsets + (self.start - start).total_seconds()
        moon_ra = np.interp(instants, seconds, track_ra)
        moon_dec = np.interp(instants, seconds, track_dec)
        moon = unit_vectors(np.degrees(moon_ra), np.degrees(moon_dec))
        far = dot_products(unit_vectors(ra, dec), moon) <= math.cos(math.radians(limit))
        return far | ~self._moon_up(moon_ra, moon_dec)

    def _moon_up(self, ra, dec):
        """Whether the Moon, at *ra*, *dec* (radians, one place per grid point), stands above
        :data:`MOON_HORIZON` at each grid point (the hour angle from the grid's sidereal time;
        precession, a fraction of a degree, left out)."""
        latitude = math.radians(self.latitude)
        sine = (math.sin(latitude) * np.sin(dec)
                + math.cos(latitude) * np.cos(dec) * np.cos(self.lst - ra))
        return sine > math.sin(math.radians(MOON_HORIZON))


class _Timeline:
    """The orders placed so far, as (start, end, target, slew) in seconds from the night's start,
    kept in time order."""

    def __init__(self, begin, end, start_position, constraints):
        self.begin, self.end = begin, end
        self.start_position = None if start_position is None else _unit(*start_position)
        self.constraints = constraints
        self.entries = []
        self._vectors = {}
        self._gaps = None  # see gaps()

    def slew(self, before, after):
        """Seconds to slew between two unit vectors (``None``: unknown) and settle."""
        return self.constraints.slew_between(before, after)

    def vector(self, target):
        if target.id not in self._vectors:
            self._vectors[target.id] = _unit(target.ra, target.dec)
        return self._vectors[target.id]

    def used(self):
        """Seconds of telescope time the entries take: their durations and slews."""
        return sum(end - start + slew for start, end, _, slew in self.entries)

    def restore(self, entries):
        """Put back *entries*, a copy of :attr:`entries` taken before an insertion."""
        self.entries = entries
        self._gaps = None

    def gaps(self):
        """The free spans: arrays of their beginnings (the night's start, or an entry's end)
        and their ends (the next entry's start, or the night's end), gap *i* before entry
        *i*; and the longest gap's length. Made again after each change."""
        if self._gaps is None:
            begins = np.array([self.begin] + [end for _, end, _, _ in self.entries])
            ends = np.array([start for start, _, _, _ in self.entries] + [self.end])
            self._gaps = (begins, ends, float((ends - begins).max()))
        return self._gaps

    def insert(self, target, visible, steps, visible_span):
        """Place *target* at its earliest possible start; return that start or ``None``.
        *visible_span* is its first and last visible grid points."""
        settle = self.constraints.settle_time
        begins, ends, longest = self.gaps()
        # A full night refuses most of a long queue: no gap is long enough, and the masks
        # below would say so at a greater cost (a greedy plan of 1,000 targets: 20 % more).
        if target.duration + settle > longest:
            return None
        # The gaps it could fit in: long enough (with a settle before it; one after it too is
        # asked below), beginning before its last start and ending after its first start plus
        # its duration. First by its first and last visible points alone, between which its
        # starts lie: in a full night most orders left fit none, and are refused without the
        # grid of their starts, or a look at each gap.
        first_seen, last_seen = visible_span
        candidates = np.flatnonzero(
            (ends - begins >= target.duration + settle)
            & (begins <= (last_seen - steps + 1) * GRID_SECONDS)
            & (ends >= max(first_seen - 1, 0) * GRID_SECONDS + target.duration))
        if not len(candidates):
            return None
        blocked = np.concatenate(([0], np.cumsum(~visible)))
        last = len(visible) - 1
        grid_starts = np.flatnonzero(blocked[steps + 1:] - blocked[:-steps - 1] == 0)
        if not len(grid_starts):
            return None
        # Starts between grid points are checked on the grid points around them.
        first_start = max(grid_starts[0] - 1, 0) * GRID_SECONDS
        last_start = (grid_starts[-1] + 1) * GRID_SECONDS
        here = self.vector(target)

        def observable(start):
            first, final = grid_span(start, target.duration)
            return final <= last and blocked[final + 1] - blocked[first] == 0

        # Then by its starts.
        candidates = candidates[(begins[candidates] <= last_start)
                                & (ends[candidates] >= first_start + target.duration)]
        # Of the gaps it fits in, the one where it adds the least slew time (the earliest of
        # equals): slews are most of the time lost between observations.
        best = None
        for index in candidates.tolist():
            following = self.entries[index] if index < len(self.entries) else None
            previous_end = self.entries[index - 1][1] if index else self.begin
            previous_vector = (self.vector(self.entries[index - 1][2]) if index
                               else self.start_position)
            gap_end = following[0] if following else self.end
            if following is not None and gap_end - previous_end < target.duration + 2 * settle:
                continue
            start = self._start_in_gap(target, here, previous_end, previous_vector, following,
                                       gap_end, observable, grid_starts)
            if start is not None:
                added = self.slew(previous_vector, here)
                if following is not None:
                    after = self.vector(following[2])
                    added += self.slew(here, after) - self.slew(previous_vector, after)
                if best is None or added < best[0] - SLEW_TIE:
                    best = (added, index, start, previous_vector)
        if best is None:
            return None
        _, index, start, previous_vector = best
        self._gaps = None
        self.entries.insert(index, (start, start + target.duration, target,
                                    self.slew(previous_vector, here)))
        if index + 1 < len(self.entries):
            # The order after it now slews from it.
            begin, end, following_target, _ = self.entries[index + 1]
            self.entries[index + 1] = (begin, end, following_target,
                                       self.slew(here, self.vector(following_target)))
        return start

    def _start_in_gap(self, target, here, previous_end, previous_vector, following, gap_end,
                      observable, grid_starts):
        earliest = previous_end + self.slew(previous_vector, here)
        latest_end = (gap_end - self.slew(here, self.vector(following[2])) if following
                      else gap_end)
        if earliest + target.duration > latest_end:
            return None
        if observable(earliest):
            return earliest
        k = int(np.searchsorted(grid_starts, math.ceil(earliest / GRID_SECONDS)))
        if k < len(grid_starts) and grid_starts[k] * GRID_SECONDS + target.duration <= latest_end:
            return grid_starts[k] * GRID_SECONDS
        return None


def grid_span(start: Seconds, duration: Seconds) -> tuple[int, int]:
    """The first and last grid points around the span from *start* for *duration* seconds:
    an observation is observable when the target is visible at all of them."""
    return int(math.floor(start / GRID_SECONDS)), int(math.ceil((start + duration)
                                                                / GRID_SECONDS))


def _unit(ra, dec):
    """The unit vector of an ICRS position (degrees)."""
    ra, dec = math.radians(ra), math.radians(dec)
    return (math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec))


def _span(points):
    """Seconds from the first to the last of *points* consecutive grid points."""
    return max(points - 1, 0) * GRID_SECONDS


def _longest_runs(mask):
    """The length of the longest run of ``True`` in each row of a boolean array (all rows at
    once: a plan of a thousand targets asks for most of them)."""
    rows, columns = mask.shape
    padded = np.zeros((rows, columns + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    # Row-major order: the n-th rise and the n-th fall of a row belong to the same run.
    rising_rows, rises = np.nonzero(edges == 1)
    _, falls = np.nonzero(edges == -1)
    longest = np.zeros(rows, dtype=int)
    np.maximum.at(longest, rising_rows, falls - rises)
    return longest
