"""``toros plan``: tonight's plan, as the scheduler daemon made it.

::

    toros plan                    # the planned observations in time order, and the others
    toros plan --plot night.png   # ... and an altitude chart of the night

The scheduler answers ``front_desk({"WOType": "Plan", "Offset": 0, "Limit": 500})`` with a
page of its plan::

    {"Night Start": "2026-11-22T01:00:00.000Z", "Night End": ..., "Sun Altitude": -18.0,
     "Entries": [{"ID", "Start", "End", "Priority", "RA", "Dec", "Altitude", "Airmass",
                  "Target"}, ...],                       # in time order; Altitude at the start
     "Unscheduled": [{"ID", "Reason"}, ...],
     "Planned": 812, "Not Planned": 4587,                # all of them, not just this page
     "Made": "2026-11-22T00:55:00.000Z"}                 # or "never"

Its health report carries the first page of a few entries (``Plan``), whatever the queue holds;
:func:`fetch` reads the whole plan page by page. :func:`as_dict` makes a page from a
:class:`~torosmanager.scheduler.planner.Plan`. This module
imports the CLI, numpy and matplotlib only when they are needed, so the daemon can use
:func:`as_dict` (and the CLI can import this module) without a cycle or a display.
"""

import sys

from ..workorders import MAX_PLAN_PAGE, format_utc

#: The columns of the plan's table.
PLAN_COLUMNS = ("Start", "End", "ID", "Target", "Priority", "Altitude", "Airmass")
#: The columns of the table of orders left out.
UNSCHEDULED_COLUMNS = ("ID", "Reason")
#: Decimals of the altitude and airmass sent, and shown.
ALTITUDE_DECIMALS = 3
SHOWN_ALTITUDE_DECIMALS = 1
SHOWN_AIRMASS_DECIMALS = 2
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
        entries on the page); an ID not in it is named by its position.
    made : datetime or None
        When *plan* was made.
    sun_altitude : float
        ``Scheduler → Sun Altitude``: the plan's night is when the Sun is below it.
    offset, limit : int
        The page: entries (in time order) and unscheduled orders from *offset*, at most
        *limit* of each (all when ``None``). ``Planned`` and ``Not Planned`` count them all.
    """
    if plan is None:
        return {"Entries": [], "Unscheduled": [], "Planned": 0, "Not Planned": 0, "Made": NEVER,
                "Sun Altitude": sun_altitude}
    from ..night import airmass

    end = None if limit is None else offset + limit
    unscheduled = list(plan.unscheduled.items())
    report = {
        "Entries": [{"ID": entry.id, "Start": format_utc(entry.start),
                     "End": format_utc(entry.end), "Priority": entry.priority,
                     "RA": entry.ra, "Dec": entry.dec,
                     "Altitude": round(entry.altitude, ALTITUDE_DECIMALS),
                     "Airmass": round(float(airmass(entry.altitude)), ALTITUDE_DECIMALS),
                     "Target": names.get(entry.id) or f"RA {entry.ra:.3f} Dec {entry.dec:+.3f}"}
                    for entry in plan.entries[offset:end]],
        "Unscheduled": [{"ID": order_id, "Reason": reason}
                        for order_id, reason in unscheduled[offset:end]],
        "Planned": len(plan.entries),
        "Not Planned": len(unscheduled),
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


def add_arguments(parser):
    """The options of ``toros plan``."""
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw the altitude of every planned target against time, "
                             "with the night and twilights marked, into this PNG file")


def run(config, arguments):
    """``toros plan [--plot FILE.png]``: ask the scheduler for its plan and show it.

    Returns
    -------
    int
        The exit status: 0 when the plan was shown (and drawn), 1 when the scheduler did not
        answer, has no plan to give, or the chart could not be written.
    """
    from ..cli import EXIT_FAILED, EXIT_OK, call

    plan = call(config, "scheduler", fetch)
    if plan is None:
        return EXIT_FAILED
    print(text(plan))
    if arguments.plot:
        from . import chart

        try:
            chart.draw(plan, config["Site"], arguments.plot,
                       max_airmass=config["Scheduler"]["Max Airmass"])
        except (OSError, ValueError) as error:
            print(f"toros: no chart: {error}", file=sys.stderr)
            return EXIT_FAILED
        print(f"\nChart: {arguments.plot}")
    return EXIT_OK


def text(plan):
    """The plan as a few lines and tables, for people."""
    from ..cli import table

    entries = sorted(plan.get("Entries", []), key=lambda entry: entry["Start"])
    unscheduled = plan.get("Unscheduled", [])
    lines = [_heading(plan), ""]
    if entries:
        lines.append(table([_row(entry) for entry in entries], PLAN_COLUMNS))
        total = sum(entry["Priority"] for entry in entries)
        lines.append(f"\n{len(entries)} planned, sum of priorities {total:g}.")
    else:
        lines.append("Nothing planned.")
    if unscheduled:
        lines += ["", f"Not planned ({len(unscheduled)}):",
                  table(unscheduled, UNSCHEDULED_COLUMNS)]
    return "\n".join(lines)


def _heading(plan):
    made = plan.get("Made", NEVER)
    if made == NEVER:
        return "The scheduler has not planned yet."
    sun = plan.get("Sun Altitude")
    if not plan.get("Night Start"):
        return f"Plan made {made}: no dark hours (Sun below {sun:g}°) in the coming day."
    return (f"Night {_short(plan['Night Start'])} to {_short(plan['Night End'])} UTC "
            f"(Sun below {sun:g}°); plan made {made}. Times are UTC.")


def _row(entry):
    return {"Start": _clock(entry["Start"]), "End": _clock(entry["End"]), "ID": entry["ID"],
            "Target": entry.get("Target", ""), "Priority": f"{entry['Priority']:g}",
            "Altitude": f"{entry['Altitude']:.{SHOWN_ALTITUDE_DECIMALS}f}",
            "Airmass": f"{entry['Airmass']:.{SHOWN_AIRMASS_DECIMALS}f}"}


def _clock(text_):
    """``HH:MM:SS`` of an ISO 8601 instant."""
    return text_[11:19]


def _short(text_):
    """``YYYY-MM-DD HH:MM`` of an ISO 8601 instant."""
    return f"{text_[:10]} {text_[11:16]}"
