"""An alert's answer: the Observation orders it calls for, and the probability they cover.

:func:`respond` is the whole decision for one alert, with no side effect: the policy
(:mod:`.policy`), the localisation and its targets (:mod:`.targets`), tonight's pick
(:mod:`.pick`), one more pick for each later night followed (``Alerts → Nights``), and the
work orders. The alerts daemon journals and submits what it returns; ``toros alert FILE
--dry-run`` prints it. The daemon takes its two steps apart: :func:`assess` (the policy and
the localisation), then, once an update has stopped the event's orders not yet started,
:func:`plan_orders` with the orders observed tonight, whose fields it leaves out.

A later night's orders carry that night's dusk as ``Not Before``: the scheduler keeps them
queued until then (tonight the same fields may be observable too). Every order's ``Not After``
is the dawn of its night, so a night clouded out leaves nothing to observe stale on the next.

Examples
--------
>>> response = respond(alert, config, now)                           # doctest: +SKIP
>>> response.coverage()                                              # doctest: +SKIP
{'Planned': 0.41, 'Visible Tonight': 0.63, 'Total': 0.97}
"""

from dataclasses import dataclass, field

from ..scheduler.planner import duration_of
from ..workorders import format_utc
from .coverage import night_from
from .pick import SECONDS_PER_HOUR, pick
from .policy import (CLASSIFICATION_ROUNDING, kind_settings, neutron_star_probability,
                     verdict)
from .targets import candidates, localisation, observed_weight

#: Who the orders are from, in the scheduler's journal and its User Adjustments.
USER = "alerts"
#: The Type of job of every order: the scheduler's target-of-opportunity rules apply.
TYPE_OF_JOB = "ToO"
#: Type of object by alert kind: the names the scheduler's Object Adjustments know.
TYPE_OF_OBJECT = {"gw": "Kilonova candidate", "grb": "GRB afterglow",
                  "neutrino": "Neutrino counterpart", "x-ray": "X-ray transient"}
#: The Type of object of a gravitational-wave event without a neutron star (a binary black
#: hole: no kilonova, and no Object Adjustment by default).
NO_NEUTRON_STAR_OBJECT = "Gravitational-wave counterpart"
#: Where the frames go once taken: the preprocessor (calibrated with the night's or the
#: library's masters).
OUTPUT = "Analysis"
#: Decimal places kept of a target's coordinates (0.0036″) and weight.
COORDINATE_DECIMALS = 6
WEIGHT_DECIMALS = 6


def type_of_object(alert):
    """An order's ``Type of object`` for *alert*: by its kind, but a kilonova only where a
    neutron star may be (its share unknown, or at least :data:`~.policy.CLASSIFICATION_ROUNDING`)."""
    if alert.kind == "gw":
        share = neutron_star_probability(alert.properties)
        if share is not None and share < CLASSIFICATION_ROUNDING:
            return NO_NEUTRON_STAR_OBJECT
    return TYPE_OF_OBJECT[alert.kind]


@dataclass
class Response:
    """What to do about one alert.

    Attributes
    ----------
    alert : Alert
    ignored : str or None
        Why nothing is to be observed (the policy), or ``None``.
    event_ruled_out : bool
        Whether *ignored* is what the alert says of its event (:func:`.policy.rules_out`):
        its earlier alerts' orders are to be stood down.
    targets : str or None
        ``"galaxies"``, ``"fields"`` or ``"pointing"``.
    area : float or None
        The localisation's credible area (at ``Alerts → Credible Level``), deg².
    skymap : Skymap or None
    pick : Pick or None
        Tonight's choice among the candidates.
    later : list of Pick
        The picks of the later nights followed (``Alerts → Nights`` − 1 of them), in order;
        they stop at a night the site has none of.
    orders : list of dict
        The Observation work orders, night after night, each night's in the pick's time
        order.
    observed : list of str
        The IDs of the event's orders observed tonight, or being observed, whose fields
        tonight's pick leaves out.
    observed_hours : float
        The telescope time those take (exposures and readouts): tonight's pick has the rest
        of ``Budget Hours``.
    observed_weight : float
        What their fields cover of this alert's localisation (probability, or galaxy
        score): ``Observed Tonight`` in the coverage.
    """

    alert: object
    ignored: str | None = None
    event_ruled_out: bool = False
    targets: str | None = None
    area: float | None = None
    skymap: object = None
    pick: object = None
    later: list = field(default_factory=list)
    orders: list = field(default_factory=list)
    observed: list = field(default_factory=list)
    observed_hours: float = 0.0
    observed_weight: float = 0.0

    def event(self):
        """The alert's identity, as reports and ``--json`` show it."""
        alert = self.alert
        return {"ID": alert.event_id, "Kind": alert.kind, "Alert Type": alert.alert_type,
                "Serial": alert.serial, "Issued": format_utc(alert.issued),
                "Source": alert.source, "Test": alert.test}

    def coverage(self):
        """``Planned``, ``Visible Tonight`` and ``Total``: probability (or galaxy score), of
        tonight; ``Observed Tonight`` for an update that left fields out (what they cover of
        this localisation); and ``Later Nights`` when followed longer, each night's dusk
        (``Night``), ``Planned`` and ``Visible``."""
        if self.pick is None:
            return {"Planned": 0.0, "Visible Tonight": 0.0, "Total": 0.0}
        coverage = {"Planned": round(self.pick.covered, WEIGHT_DECIMALS),
                    "Visible Tonight": round(self.pick.visible_tonight, WEIGHT_DECIMALS),
                    "Total": round(self.pick.total, WEIGHT_DECIMALS)}
        if self.observed:
            coverage["Observed Tonight"] = round(self.observed_weight, WEIGHT_DECIMALS)
        if self.later:
            coverage["Later Nights"] = [
                {"Night": format_utc(night.night_start),
                 "Planned": round(night.covered, WEIGHT_DECIMALS),
                 "Visible": round(night.visible_tonight, WEIGHT_DECIMALS)}
                for night in self.later]
        return coverage

    def summary(self):
        """One sentence for the journal and the log."""
        if self.ignored:
            return f"ignored: {self.ignored}"
        coverage = self.coverage()
        later = "".join(f"; {night['Planned']:.1%} {night_from(night['Night'])}"
                        for night in coverage.get("Later Nights", ()))
        left_out = (f", the fields of {len(self.observed)} order(s) observed tonight, "
                    f"{coverage['Observed Tonight']:.1%} of this localisation, left out with "
                    f"their {self.observed_hours:.2f} h of the event's budget"
                    if self.observed else "")
        # None chosen: why not the heaviest (not up tonight, a budget too small for one...).
        why_none = ""
        if not self.orders and self.pick is not None and self.pick.not_chosen:
            name, reason = next(iter(self.pick.not_chosen.items()))
            why_none = f"; the heaviest candidate, {name}: {reason}"
        return (f"{len(self.orders)} order(s) on {self.targets} covering "
                f"{coverage['Planned']:.1%} tonight (visible tonight "
                f"{coverage['Visible Tonight']:.1%} of the candidates' "
                f"{coverage['Total']:.1%}{left_out}){later}{why_none}")

    def outcome(self):
        """What the events book and the report keep of it."""
        outcome = {"Event": self.event(), "Summary": self.summary()}
        if self.skymap is not None:
            outcome["Skymap SHA-256"] = self.skymap.digest
        if self.ignored:
            outcome["Ignored"] = self.ignored
        else:
            outcome.update({"Targets": self.targets, "Coverage": self.coverage(),
                            "Area": None if self.area is None else round(self.area, 1),
                            "Not Chosen": dict(list(self.pick.not_chosen.items())[:50])})
            if self.observed:
                outcome["Observed Orders"] = self.observed
            last_night = (self.later or [self.pick])[-1]
            if last_night.night_end is not None:
                outcome["Plan Ends"] = format_utc(last_night.night_end)
        return outcome


def respond(alert, config, now, catalog=None, id_prefix="dry-run"):
    """Decide what *alert* calls for tonight, and on the later nights followed, as the first
    alert of its event: the :func:`assess`-ment, then the :func:`plan_orders` of an alert
    not ignored.

    Parameters
    ----------
    alert : Alert
        Not a retraction (those cancel; they plan nothing).
    config : dict
        The whole configuration (``Alerts``, ``Site``, ``Observing``).
    now : datetime
        The clock's time: tonight is the night in progress, or the next one.
    catalog : GalaxyCatalog, optional
    id_prefix : str
        The orders' IDs are ``<id_prefix>-01``, ``-02``..., numbered on across the nights.

    Returns
    -------
    Response

    Raises
    ------
    TargetError
        The localisation cannot be had (a skymap URL that cannot be reached...).
    """
    response = assess(alert, config)
    if response.ignored:
        return response
    return plan_orders(response, config, now, catalog, id_prefix)


def assess(alert, config, stopping=None, retry=True):
    """The policy's word on *alert*, with its localisation: a :class:`Response` that says
    why the alert is ignored, or that holds the skymap (``None`` for a single pointing) and
    its credible area, for :func:`plan_orders`.

    Parameters
    ----------
    stopping : threading.Event, optional
        The daemon's stop flag (see :func:`.targets.localisation`).
    retry : bool, optional
        Whether a linked skymap is tried again while it cannot be had (see
        :func:`.targets.localisation`).

    Raises
    ------
    TargetError
        The localisation cannot be had.
    Stopping
        *stopping* was set while the skymap was fetched.
    """
    settings = config["Alerts"]
    reason, on_the_event = verdict(alert, settings)
    if reason:
        return Response(alert, ignored=reason, event_ruled_out=on_the_event)
    skymap = localisation(alert, settings["Skymap Download Timeout"], settings["Field of View"],
                          stopping, retry, max_bytes=settings["Max Skymap Bytes"])
    area = None if skymap is None else skymap.credible_area(settings["Credible Level"])
    distance = None if skymap is None else skymap.header.get("DISTMEAN")
    reason, on_the_event = verdict(alert, settings, area, distance)
    return Response(alert, ignored=reason, event_ruled_out=on_the_event, area=area,
                    skymap=skymap)


def plan_orders(assessed, config, now, catalog=None, id_prefix="dry-run", supersedes=(),
                observed=()):
    """The targets and orders of an alert :func:`assess` did not ignore.

    Parameters
    ----------
    assessed : Response
        From :func:`assess`, not ignored.
    supersedes : sequence of str
        IDs of the event's earlier orders these replace.
    observed : sequence of dict
        The event's Observation orders observed tonight, or being observed (an update comes
        in the middle of the night): the probability and the galaxies in their fields are
        left out of tonight's pick, which goes on to what is not observed yet, within what
        they have left of ``Budget Hours`` and ``Max Targets`` (an event's, each night).
        Later nights' picks are made of the whole map (the same fields again, for the light
        curve).
    config, now, catalog, id_prefix
        As for :func:`respond`.

    Returns
    -------
    Response
    """
    alert, settings = assessed.alert, config["Alerts"]
    kind = kind_settings(alert, settings)
    duration = duration_of(kind, config["Observing"])
    centres = [(order["RA"], order["Dec"]) for order in observed]
    targets, offered = candidates(alert, assessed.skymap, settings, catalog, centres)
    left_out = [order["ID"] for order in observed] if targets != "pointing" else []
    used = sum(duration_of(order, config["Observing"]) for order in observed) if left_out \
        else 0.0
    covered = observed_weight(targets, assessed.skymap, settings, catalog, centres)
    tonight = pick(offered, now, config, duration,
                   max(settings["Budget Hours"] - used / SECONDS_PER_HOUR, 0.0),
                   max(settings["Max Targets"] - len(left_out), 0))
    later = []
    if settings["Nights"] > 1 and tonight.night_end is not None:
        if left_out:
            offered = candidates(alert, assessed.skymap, settings, catalog)[1]
        later = nightly_picks(offered, tonight.night_end, config, duration,
                              settings["Nights"] - 1)
    orders = []
    for night, chosen in enumerate([tonight] + later):
        # Tonight's orders may start at once; a later night's wait for its dusk.
        not_before = chosen.night_start if night else None
        orders += [observation(alert, choice.candidate, kind,
                               f"{id_prefix}-{len(orders) + number:02d}", chosen.night_end,
                               supersedes, not_before)
                   for number, choice in enumerate(chosen.chosen, start=1)]
    return Response(alert, targets=targets, area=assessed.area, skymap=assessed.skymap,
                    pick=tonight, later=later, orders=orders, observed=left_out,
                    observed_hours=used / SECONDS_PER_HOUR, observed_weight=covered)


def nightly_picks(offered, now, config, duration, nights):
    """The pick of *offered* for the night in progress at *now* or the next, then for each
    night after it, *nights* in all (fewer when the site has no dark hours in the coming day
    and a half: the picks stop there)."""
    picks = []
    while len(picks) < nights and (not picks or picks[-1].night_end is not None):
        # A night whose dark hours end at *now* is over: the pick takes the next one. (Its
        # budget and number of targets: Alerts → Budget Hours and Max Targets, each night.)
        start = picks[-1].night_end if picks else now
        picks.append(pick(offered, start, config, duration))
    return picks


def observation(alert, candidate, kind, order_id, not_after=None, supersedes=(),
                not_before=None):
    """The Observation work order for one target of *alert*."""
    order = {
        "ID": order_id,
        "WOType": "Observation",
        "RA": round(candidate.ra % 360.0, COORDINATE_DECIMALS) % 360.0,
        "Dec": round(candidate.dec, COORDINATE_DECIMALS),
        "Object Name": candidate.name,
        "Filter": kind["Filter"],
        "Exposure Time": kind["Exposure Time"],
        "Number of Exposures": kind["Number of Exposures"],
        "Type of job": TYPE_OF_JOB,
        "Type of object": type_of_object(alert),
        "Priority": kind["Priority"],
        "User": USER,
        "Group ID": alert.event_id,
        # Calibrated as they come: the frames a counterpart is searched for in.
        "Output": OUTPUT,
        "Probability": round(min(max(candidate.weight, 0.0), 1.0), WEIGHT_DECIMALS),
    }
    if not_before is not None:
        order["Not Before"] = format_utc(not_before)
    if not_after is not None:
        order["Not After"] = format_utc(not_after)
    if supersedes:
        order["Supersedes"] = list(supersedes)
    return order
