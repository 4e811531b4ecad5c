"""The scheduler's plan as its front desk gives it, page by page: :func:`as_dict` makes a page
(the daemon), :func:`fetch` reads them all (``toros plan``, :mod:`torosmanager.commands.plan`;
the demo).

The scheduler answers ``front_desk({"WOType": "Plan", "Offset": 0, "Limit": 500})`` with a
page of its plan::

    {"Night Start": "2026-11-22T01:00:00.000Z", "Night End": ..., "Sun Altitude": -18.0,
     "Entries": [{"ID", "Start", "End", "Priority", "RA", "Dec", "Altitude", "Airmass",
                  "Target"}, ...],                       # in time order; Altitude at the start
     "Unscheduled": [{"ID", "Reason"}, ...],
     "Planned": 812, "Not Planned": 4587,                # all of them, not just this page
     "Made": "2026-11-22T00:55:00.000Z"}                 # or "never"

Its health report carries the first page of a few entries (``Plan``), whatever the queue holds.
:func:`as_dict` makes a page from a :class:`~torosmanager.scheduler.planner.Plan`. This module
imports numpy (through :mod:`~torosmanager.night`) only when a page is made, so the ``toros``
command can import it quickly.
"""

from itertools import islice

from ..workorders import MAX_PLAN_PAGE, format_utc

#: Decimals of the altitude and airmass sent.
ALTITUDE_DECIMALS = 3
#: What ``Made`` says before the scheduler has planned.
NEVER = "never"


def as_dict(plan, names, made, sun_altitude, offset=0, limit=None):
    """The ``Plan`` of the scheduler's health report, or a page of it (XML-RPC types only).

    Parameters
    ----------
    plan : Plan or None
        The planner's latest plan; ``None`` before the first.
    names : mapping
        Order ID to the order's ``Object Name`` (anything with ``get``; asked only for the
        entries on the page); an ID not in it, or named ``None``, is named by its position.
    made : datetime or None
        When *plan* was made.
    sun_altitude : float
        ``Observing → Sun Altitude``: the plan's night is when the Sun is below it.
    offset, limit : int
        The page: entries (in time order) and unscheduled orders from *offset*, at most
        *limit* of each (all when ``None``). ``Planned`` and ``Not Planned`` count them all.
    """
    if plan is None:
        return {"Entries": [], "Unscheduled": [], "Planned": 0, "Not Planned": 0, "Made": NEVER,
                "Sun Altitude": sun_altitude}
    from ..night import airmass

    end = None if limit is None else offset + limit
    report = {
        "Entries": [{"ID": entry.id, "Start": format_utc(entry.start),
                     "End": format_utc(entry.end), "Priority": entry.priority,
                     "RA": entry.ra, "Dec": entry.dec,
                     "Altitude": round(entry.altitude, ALTITUDE_DECIMALS),
                     "Airmass": round(float(airmass(entry.altitude)), ALTITUDE_DECIMALS),
                     "Target": names.get(entry.id) or f"RA {entry.ra:.3f} Dec {entry.dec:+.3f}"}
                    for entry in plan.entries[offset:end]],
        "Unscheduled": [{"ID": order_id, "Reason": reason}
                        for order_id, reason in islice(plan.unscheduled.items(), offset, end)],
        "Planned": len(plan.entries),
        "Not Planned": len(plan.unscheduled),
        "Made": NEVER if made is None else format_utc(made),
        "Sun Altitude": sun_altitude,
    }
    if plan.night_start is not None:
        report["Night Start"] = format_utc(plan.night_start)
        report["Night End"] = format_utc(plan.night_end)
    return report


def fetch(scheduler):
    """The scheduler's whole plan, read page by page with ``Plan`` queries.

    Parameters
    ----------
    scheduler : xmlrpc.client.ServerProxy
        The scheduler daemon's front desk.
    """
    plan = scheduler.front_desk({"WOType": "Plan", "Offset": 0, "Limit": MAX_PLAN_PAGE})
    while (len(plan["Entries"]) < plan["Planned"]
           or len(plan["Unscheduled"]) < plan["Not Planned"]):
        offset = max(len(plan["Entries"]), len(plan["Unscheduled"]))
        page = scheduler.front_desk({"WOType": "Plan", "Offset": offset,
                                     "Limit": MAX_PLAN_PAGE})
        if not page["Entries"] and not page["Unscheduled"]:
            break  # re-planned meanwhile, with fewer entries: what was read is shown
        plan["Entries"] += page["Entries"]
        plan["Unscheduled"] += page["Unscheduled"]
    return plan
