"""The scheduler's plan as its front desk gives it, page by page: :func:`as_dict` makes a page
(the daemon), :func:`fetch` reads them all (``toros plan``, :mod:`torosmanager.commands.plan`;
the demo); :func:`heading` and :func:`row` say a page for people, as ``toros plan`` prints
it and the scheduler's status page shows it (:func:`html`).

The scheduler answers ``front_desk({"WOType": "Plan", "Offset": 0, "Limit": 500})`` with a
page of its plan::

    {"Night Start": "2026-11-22T01:00:00.000Z", "Night End": ..., "Sun Altitude": -18.0,
     "Entries": [{"ID", "Start", "End", "Priority", "RA", "Dec", "Altitude", "Airmass",
                  "Target"}, ...],                       # in time order; Altitude at the start
     "Unscheduled": [{"ID", "Reason"}, ...],
     "Planned": 812, "Not Planned": 4587,                # all of them, not just this page
     "Made": "2026-11-22T00:55:00.000Z",                 # or "never"
     "Waiting": "the dome is closed and may not open: ..."}  # only while nothing is sent

Its health report carries the first page of a few entries (``Plan``), whatever the queue holds.
:func:`as_dict` makes a page from a :class:`~torosmanager.scheduler.planner.Plan`. This module
imports numpy (through :mod:`~torosmanager.night`) only when a page is made, so the ``toros``
command can import it quickly.
"""

import html as html_text
from itertools import islice

from ..pages import rows_table
from ..workorders import MAX_PLAN_PAGE, format_utc

#: Decimals of the altitude and airmass sent.
ALTITUDE_DECIMALS = 3
#: What ``Made`` says before the scheduler has planned.
NEVER = "never"
#: The columns of the plan's table, for people (:func:`row`).
PLAN_COLUMNS = ("Start", "End", "ID", "Target", "Priority", "Altitude", "Airmass")
#: The columns of the table of orders left out.
UNSCHEDULED_COLUMNS = ("ID", "Reason")
#: Decimals of the altitude and airmass shown.
SHOWN_ALTITUDE_DECIMALS = 1
SHOWN_AIRMASS_DECIMALS = 2


def as_dict(plan, names, made, sun_altitude, offset=0, limit=None, waiting=None):
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
    waiting : str or None
        Why nothing is sent to the telescope in the dark (the dome: see
        :attr:`~torosmanager.scheduler.dome_keeper.DomeKeeper.waiting`), as ``Waiting``.
    """
    if plan is None:
        report = {"Entries": [], "Unscheduled": [], "Planned": 0, "Not Planned": 0,
                  "Made": NEVER, "Sun Altitude": sun_altitude}
        if waiting is not None:
            report["Waiting"] = waiting
        return report
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
    if waiting is not None:
        report["Waiting"] = waiting
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


def heading(plan):
    """One line on a plan (a page of it): its night, when it was made, or why there is none;
    and why nothing is sent to the telescope, while that is so."""
    made = plan.get("Made", NEVER)
    sun = plan.get("Sun Altitude")
    if made == NEVER:
        said = "The scheduler has not planned yet."
    elif not plan.get("Night Start"):
        said = f"Plan made {made}: no dark hours (Sun below {sun:g}°) in the coming day."
    else:
        said = (f"Night {_short(plan['Night Start'])} to {_short(plan['Night End'])} UTC "
                f"(Sun below {sun:g}°); plan made {made}. Times are UTC.")
    if plan.get("Waiting"):
        said += f" Nothing is sent to the telescope: {plan['Waiting'].rstrip('.')}."
    return said


def row(entry):
    """A planned entry (of a page), its values as text, by :data:`PLAN_COLUMNS`."""
    return {"Start": _clock(entry["Start"]), "End": _clock(entry["End"]), "ID": entry["ID"],
            "Target": entry.get("Target", ""), "Priority": f"{entry['Priority']:g}",
            "Altitude": f"{entry['Altitude']:.{SHOWN_ALTITUDE_DECIMALS}f}",
            "Airmass": f"{entry['Airmass']:.{SHOWN_AIRMASS_DECIMALS}f}"}


def html(plan):
    """A page of the plan as HTML, for the scheduler's status page: its heading, the entries
    in it, and the orders left out with why; how many of each the whole plan has."""
    parts = [f"<p id='plan-heading'>{html_text.escape(heading(plan))}</p>"]
    for title, rows, count, columns, table_id in (
            ("Planned", [row(entry) for entry in plan["Entries"]], plan["Planned"],
             PLAN_COLUMNS, "plan"),
            ("Not planned", plan["Unscheduled"], plan["Not Planned"], UNSCHEDULED_COLUMNS,
             "not-planned")):
        if not count:
            continue
        shown = (f"the first {len(rows)} of {count:,} (<code>toros plan</code> lists every "
                 "one)" if count > len(rows) else f"{count:,}")
        parts.append(f"<p>{title}: {shown}.</p>{rows_table(rows, columns, table_id)}")
    return "".join(parts)


def _clock(text_):
    """``HH:MM:SS`` of an ISO 8601 instant."""
    return text_[11:19]


def _short(text_):
    """``YYYY-MM-DD HH:MM`` of an ISO 8601 instant."""
    return f"{text_[:10]} {text_[11:16]}"
