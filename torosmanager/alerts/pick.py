"""Which targets of an alert to observe tonight: :func:`pick`.

An alert yields candidates (fields tiled over a skymap, galaxies, or one pointing), each with a
weight: the probability it adds, or its galaxy score. The telescope can observe only some of
them tonight; the pick chooses those that cover the most weight within a budget of telescope
time (hours) and of targets, and plans when to observe each.

Method
    *Visibility* is the scheduler's own: :meth:`Planner.visibility
    <torosmanager.scheduler.planner.Planner.visibility>` on its one-minute grid over tonight's
    dark hours (Sun, airmass, Moon from the shared ``Observing`` section; :mod:`torosmanager.night`).
    A candidate that is not observable for one target's whole duration at some time tonight
    cannot be chosen, and the reason is given.

    *The pick* is the planner's greedy plan with a budget (:meth:`Planner.plan
    <torosmanager.scheduler.planner.Planner.plan>`, ``budget`` and ``max_entries``): candidates
    in order of weight (among equals, the one observable for less time first), each put at the
    earliest observable instant of the gap between planned targets where it adds the least
    slew, and kept only if the plan's telescope time (durations plus the slews and settles
    before them) stays within the budget; a candidate that does not fit is skipped and the next
    one tried. Every target of one alert takes the same time, so weight order is the order of
    weight per unit of telescope time but for the slews, which are short next to the exposures.

    *The baseline* (:func:`reference_pick`) is what one would do without a plan: the highest
    weights, as many as the budget holds by duration alone, observed one after the other in
    that order from the start of the night, with real slews; a target that is not observable
    when its turn comes is skipped and covers nothing. :func:`pick` also works this out and,
    should the baseline ever cover more (a case the greedy plan handles badly), returns it
    instead: the pick never covers less than the baseline.

Budget
    Telescope time, not a window: the chosen observations may lie anywhere in the rest of
    tonight, from the later of *now* and dusk to dawn, and the time between them is free for
    other orders.

Known limits
    - Greedy, without a swap or insert pass: a heavy target placed first may take the only
      window of lighter ones that together weigh more.
    - Sooner is not preferred: a fading transient would gain from early observations, but an
      observation goes wherever it adds the least slew.
    - Weights are added up: right for tiles (:mod:`.tiles` counts no probability twice) and
      one pointing, an approximation for galaxies in one field.
    - One night, as if the telescope had nothing else to do: the scheduler places the
      resulting orders among the others, and weather may take any of them away. Later nights
      are each a pick of their own (:func:`~.response.nightly_picks`).
"""

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from ..scheduler.planner import Constraints, Planner, Target, Visibility

log = logging.getLogger(__name__)

#: Seconds in an hour (budgets are configured in hours, the planner counts seconds).
SECONDS_PER_HOUR = 3600.0
#: Planners kept, one per site and set of constraints: each remembers its nights, so the Sun
#: and sidereal time (most of a pick's time) are computed once a night, not once an alert.
CACHED_PLANNERS = 4
#: Coverages closer than this are equal: the same weights added in another order may differ in
#: their last bits, and the greedy plan is kept on a tie.
COVERAGE_TIE = 1e-9


@dataclass(frozen=True)
class Candidate:
    """A target an alert offers.

    Attributes
    ----------
    name : str
        Unique among the alert's candidates.
    ra, dec : float
        ICRS degrees.
    weight : float
        The probability it covers, or its galaxy score (0–1).
    """

    name: str
    ra: float
    dec: float
    weight: float


@dataclass(frozen=True)
class Choice:
    """A chosen candidate and its slot tonight.

    Attributes
    ----------
    candidate : Candidate
    start, end : datetime
        UTC; *end* − *start* is the target's duration.
    altitude : float
        Degrees, at *start*.
    """

    candidate: Candidate
    start: datetime
    end: datetime
    altitude: float


@dataclass(frozen=True)
class Pick:
    """What to observe of an alert tonight.

    Attributes
    ----------
    chosen : list of Choice
        In time order.
    covered : float
        The chosen candidates' weights added up ("Planned").
    visible_tonight : float
        The weights of the candidates observable for a target's duration at some time tonight
        ("Visible Tonight").
    total : float
        All candidates' weights ("Total").
    night_start, night_end : datetime or None
        Tonight's dark hours (from *now* in the night); ``None`` when there are none.
    not_chosen : dict
        Candidate name → why it is not chosen, heaviest first.
    """

    chosen: list
    covered: float
    visible_tonight: float
    total: float
    night_start: datetime | None
    night_end: datetime | None
    not_chosen: dict = field(default_factory=dict)


def pick(candidates, now, config, duration, budget_hours=None, max_targets=None,
         start_position=None):
    """The candidates to observe tonight that cover the most weight within the budget.

    Parameters
    ----------
    candidates : iterable of Candidate
    now : datetime
        Timezone-aware UTC. Tonight is the night in progress at *now* (its rest), or the next.
    config : dict
        The whole configuration: ``Site``, ``Observing`` (Sun Altitude, Max Airmass, Moon
        Separation, Slew Rate, Settle Time) and ``Alerts`` (the budget's defaults).
    duration : float
        Seconds one target takes, exposures and readouts (``planner.duration_of`` of the
        alert kind's Exposure Time and Number of Exposures).
    budget_hours : float, optional
        Telescope time the targets may take, slews included; default ``Alerts`` → ``Budget
        Hours``.
    max_targets : int, optional
        At most this many targets; default ``Alerts`` → ``Max Targets``.
    start_position : (float, float), optional
        Where the telescope points (ICRS degrees), for the first slew; unknown: a settle only.

    Returns
    -------
    Pick

    Raises
    ------
    ValueError
        Two candidates share a name, or *duration* is not positive.
    """
    tonight = _Tonight.of(candidates, now, config, duration)
    if tonight.visibility is None:
        return tonight.no_night()
    budget, limit = _limits(config, budget_hours, max_targets)
    planned = tonight.greedy(budget, limit, start_position)
    baseline = tonight.baseline(budget, limit, start_position)
    log.debug("pick: %d of %d candidates cover %.4g (baseline %.4g, visible %.4g, total %.4g)",
              len(planned.chosen), len(tonight.candidates), planned.covered, baseline.covered,
              planned.visible_tonight, planned.total)
    if baseline.covered > planned.covered + COVERAGE_TIE:
        log.info("the baseline order covers more (%.4g) than the greedy plan (%.4g): using it",
                 baseline.covered, planned.covered)
        return baseline
    return planned


def reference_pick(candidates, now, config, duration, budget_hours=None, max_targets=None,
                   start_position=None):
    """The baseline :func:`pick` is measured against, with what it really covers.

    The highest weights first, ignoring visibility and slews, as many as fit the budget by
    *duration* alone (and *max_targets*); then observed one after the other in that order from
    the later of *now* and dusk, with real slews: a target not observable when its turn comes
    (or whose slew and duration no longer fit the budget) is skipped and covers nothing.

    Parameters and result are those of :func:`pick`.
    """
    tonight = _Tonight.of(candidates, now, config, duration)
    if tonight.visibility is None:
        return tonight.no_night()
    return tonight.baseline(*_limits(config, budget_hours, max_targets), start_position)


def planner_for(config):
    """The (shared) :class:`Planner` of *config*'s ``Site`` and ``Observing`` sections."""
    site = config["Site"]
    return _planner((site["Latitude"], site["Longitude"], site["Elevation"]),
                    Constraints.from_settings(config["Observing"]))


@lru_cache(maxsize=CACHED_PLANNERS)
def _planner(site, constraints):
    """A :class:`Planner` for *site* (latitude, longitude, elevation) and *constraints*."""
    latitude, longitude, elevation = site
    return Planner({"Latitude": latitude, "Longitude": longitude, "Elevation": elevation},
                   constraints)


def _limits(config, budget_hours, max_targets):
    """The budget in seconds and the most targets, from the arguments or ``Alerts``."""
    settings = config["Alerts"]
    hours = settings["Budget Hours"] if budget_hours is None else budget_hours
    limit = settings["Max Targets"] if max_targets is None else max_targets
    return hours * SECONDS_PER_HOUR, limit


@dataclass
class _Tonight:
    """The candidates of one pick, their targets for the planner and tonight's visibility."""

    candidates: list
    targets: list
    planner: Planner
    visibility: Visibility | None  # None: no dark hours at the site in the coming day and a half
    duration: float
    now: datetime

    @classmethod
    def of(cls, candidates, now, config, duration):
        """Check the candidates and work out their visibility tonight (see :func:`pick`)."""
        candidates = list(candidates)
        names = [candidate.name for candidate in candidates]
        if len(set(names)) != len(names):
            raise ValueError("two candidates share a name: "
                             f"{sorted({name for name in names if names.count(name) > 1})}")
        if not duration > 0:
            raise ValueError(f"a target's duration must be positive, not {duration} s")
        targets = [Target(candidate.name, candidate.ra, candidate.dec, candidate.weight,
                          duration) for candidate in candidates]
        planner = planner_for(config)
        return cls(candidates, targets, planner, planner.visibility(targets, now), duration,
                   now)

    def no_night(self):
        """The empty pick of a site without dark hours, with the planner's reason."""
        reasons = self.planner.plan(self.targets, self.now).unscheduled
        return Pick([], 0.0, 0.0, self.total(), None, None, reasons)

    def total(self):
        """All the candidates' weights, added up."""
        return sum(candidate.weight for candidate in self.candidates)

    def greedy(self, budget, limit, start_position):
        """The planner's plan of the candidates, by weight, within the budget (seconds) and
        *limit* (targets)."""
        plan = self.planner.plan(self.targets, self.now, start_position, budget=budget,
                                 max_entries=limit)
        by_name = {candidate.name: candidate for candidate in self.candidates}
        return self.result([Choice(by_name[entry.id], entry.start, entry.end, entry.altitude)
                            for entry in plan.entries], plan.unscheduled)

    def baseline(self, budget, limit, start_position):
        """The heaviest candidates, as many as the budget (seconds) and *limit* hold by
        duration alone, observed in that order: what they really cover."""
        count = min(limit, math.floor(budget / self.duration))
        heaviest = sorted(range(len(self.candidates)), key=lambda i: -self.candidates[i].weight)
        return self.result(*self.execute(heaviest[:count], budget, start_position))

    def result(self, chosen, reasons):
        """The :class:`Pick` of *chosen* (in time order), with *reasons* for the others."""
        taken = {choice.candidate.name for choice in chosen}
        visible = sum(candidate.weight for candidate in self.candidates
                      if candidate.name not in self.visibility.reasons)
        not_chosen = {candidate.name: reasons[candidate.name]
                      for candidate in sorted(self.candidates, key=lambda c: -c.weight)
                      if candidate.name not in taken}
        return Pick(chosen, sum(choice.candidate.weight for choice in chosen), visible,
                    self.total(), self.visibility.night_start, self.visibility.night_end,
                    not_chosen)

    def execute(self, order, budget, start_position):
        """Observe the candidates of *order* (indices) one after the other from the start of
        the night, skipping those not observable at their turn or beyond the budget.

        Returns
        -------
        (list of Choice, dict)
            What is observed, in time order, and why each other candidate is not.
        """
        visibility, constraints = self.visibility, self.planner.constraints
        clock = used = 0.0  # seconds from the night's start; telescope time spent
        position = start_position
        chosen = []
        reasons = {candidate.name: visibility.reasons.get(candidate.name)
                   or f"not among the {len(order)} heaviest that the budget holds by duration"
                   for candidate in self.candidates}
        for index in order:
            candidate = self.candidates[index]
            here = (candidate.ra, candidate.dec)
            slew = constraints.slew_seconds(position, here)
            start = clock + slew
            if used + slew + self.duration > budget:
                reasons[candidate.name] = (f"the budget of {budget / SECONDS_PER_HOUR:g} h was "
                                           "spent before its turn")
            elif not visibility.observable(index, start, self.duration):
                reasons[candidate.name] = (visibility.reasons.get(candidate.name)
                                           or "not observable when its turn came, at "
                                              f"{visibility.instant(start):%H:%M} UTC")
            else:
                chosen.append(Choice(candidate, visibility.instant(start),
                                     visibility.instant(start + self.duration),
                                     visibility.altitude_at(index, start)))
                clock, used, position = start + self.duration, used + slew + self.duration, here
        return chosen, reasons
