"""``toros plan``: tonight's plan, as the scheduler daemon made it.

::

    toros plan                    # the planned observations in time order, and the others
    toros plan --plot night.png   # ... and an altitude chart of the night

The plan is read page by page with :func:`~torosmanager.scheduler.plan_command.fetch` (the
pages' contents are described there). numpy and matplotlib are imported only for ``--plot``.
"""

import sys

from ..console import EXIT_FAILED, EXIT_OK, table
from ..scheduler.plan_command import PLAN_COLUMNS, UNSCHEDULED_COLUMNS, fetch, heading, row
from .front_desk import call


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
    plan = call(config, "scheduler", fetch)
    if plan is None:
        return EXIT_FAILED
    print(text(plan))
    if arguments.plot:
        from ..scheduler import chart

        try:
            chart.draw(plan, config["Site"], arguments.plot,
                       max_airmass=config["Observing"]["Max Airmass"],
                       minimum_altitude=config["Observing"]["Minimum Altitude"])
        except (OSError, ValueError) as error:
            print(f"toros: no chart: {error}", file=sys.stderr)
            return EXIT_FAILED
        print(f"\nChart: {arguments.plot}")
    return EXIT_OK


def text(plan):
    """The plan as a few lines and tables, for people."""
    entries = sorted(plan.get("Entries", []), key=lambda entry: entry["Start"])
    unscheduled = plan.get("Unscheduled", [])
    lines = [heading(plan), ""]
    if entries:
        lines.append(table([row(entry) for entry in entries], PLAN_COLUMNS))
        total = sum(entry["Priority"] for entry in entries)
        lines.append(f"\n{len(entries)} planned, sum of priorities {total:g}.")
    else:
        lines.append("Nothing planned.")
    if unscheduled:
        lines += ["", f"Not planned ({len(unscheduled)}):",
                  table(unscheduled, UNSCHEDULED_COLUMNS)]
    return "\n".join(lines)
