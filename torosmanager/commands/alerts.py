"""``toros alert FILE`` and ``toros alerts``: hand an alert to the alerts daemon, see what it
would do (``--dry-run``), and list the events.

::

    toros alert S230518h-2-Initial.json              # submit it to the alerts daemon
    toros alert bayestar.multiorder.fits --event-id S230518h
    toros alert G298048-1-Initial.xml --dry-run --json --night-after 2017-08-17T22:00:00
    toros alerts                                     # the events and their state
    toros alerts S230518h                            # one event's report

The file's format is recognised from its content: a VOEvent (XML), an LVK or GCN JSON alert,
a 160-byte GCN socket notice, or a bare HEALPix skymap (FITS, flat or multi-order; it needs
``--event-id``). ``--dry-run`` submits nothing: it reads the alert here, with the configuration's
policy, catalogue and site, and prints the orders it would submit (``--json``: one JSON object
with ``Event``, ``Orders`` and ``Coverage``).
"""

import argparse
import json
import sys

from ..alerts.coverage import coverage_text
from ..alerts.formats import AlertFormatError
from ..alerts.formats.lvk_json import schema_warning
from ..alerts.intake import alert_of, guess_format, payload_of
from ..alerts.policy import issued_too_late
from ..clock import Clock
from ..console import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, RECEIPT_COLUMNS, positive_whole_number,
                       table)
from ..workorders import format_utc, parse_utc
from .front_desk import ask

#: Events ``toros alerts`` lists unless told otherwise (``--limit``, ``--all``).
LISTED_EVENTS = 20
#: Columns of `toros alerts` and of the dry run's orders.
EVENT_COLUMNS = ("ID", "Kind", "State", "Latest Alert", "Orders", "Planned", "Updated")
ORDER_COLUMNS = ("ID", "Object Name", "RA", "Dec", "Probability", "Priority", "Not Before")
REPORT_ORDER_COLUMNS = ("ID", "Object Name", "Probability", "Not Before", "Here", "Scheduler")


def add_alert_arguments(parser):
    """The arguments of ``toros alert``."""
    parser.add_argument("file", metavar="FILE", help="an alert: VOEvent, LVK or GCN JSON, "
                                                     "160-byte GCN notice, or a skymap FITS")
    parser.add_argument("--event-id", metavar="ID", help="the event a bare skymap belongs to")
    parser.add_argument("--dry-run", action="store_true",
                        help="submit nothing; print the orders the alert would make")
    parser.add_argument("--night-after", metavar="ISO-TIME", type=instant,
                        help="with --dry-run: plan the night after this UTC instant (default: "
                             "now, by the configured clock)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def instant(text):
    """An ISO 8601 instant on the command line (an :mod:`argparse` type), UTC unless it says."""
    try:
        return parse_utc(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is no ISO 8601 instant, such as "
                                         "2026-12-01T20:00:00") from None


def add_events_arguments(parser):
    """The arguments of ``toros alerts``."""
    parser.add_argument("event", nargs="?", metavar="EVENT", help="one event's report")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--limit", type=positive_whole_number, default=LISTED_EVENTS, metavar="N",
                       help="list the N most recent events (default: %(default)s)")
    shown.add_argument("--all", action="store_true", help="list every event")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run_alert(config, arguments):
    """``toros alert FILE``."""
    try:
        with open(arguments.file, "rb") as stream:
            data = stream.read()
        format_name = guess_format(data)
    except (OSError, AlertFormatError) as error:
        print(f"toros: {arguments.file}: {error}", file=sys.stderr)
        return EXIT_FAILED
    order = {"WOType": "Alert", "Format": format_name, "Payload": payload_of(data, format_name),
             "Origin": f"file:{arguments.file}", "User": "toros alert"}
    if arguments.event_id is not None:  # an empty one is refused, naming it
        order["Event ID"] = arguments.event_id
    if arguments.dry_run:
        return _dry_run(config, arguments, order)
    if arguments.night_after:
        print("toros: --night-after goes with --dry-run (the daemon plans by its clock)",
              file=sys.stderr)
        return EXIT_USAGE
    receipt = ask(config, "alerts", order)
    if receipt is None:
        return EXIT_FAILED
    if arguments.json:
        print(json.dumps(receipt, indent=1))
        return EXIT_OK
    print(table([receipt], RECEIPT_COLUMNS))
    # Read and acted on in the background: the receipt only says it is kept.
    print(f"Follow it: toros status {receipt['ID']} --to alerts; its event: toros alerts")
    return EXIT_OK


def _dry_run(config, arguments, order):
    from ..alerts.galaxies import CatalogError, GalaxyCatalog
    from ..alerts.response import Response, respond
    from ..alerts.targets import TargetError

    try:
        now = arguments.night_after or Clock.from_config(config).now()
        alert = alert_of(order, now)
        misfit = schema_warning(alert)
        if misfit:
            print(f"toros: {arguments.file}: {misfit}", file=sys.stderr)
        too_late = issued_too_late(alert, now, config["Alerts"])
        if too_late:
            print(f"toros: {arguments.file}: {too_late}", file=sys.stderr)
            return EXIT_FAILED
        if alert.is_retraction:
            response = Response(alert)
            summary = (f"a retraction: the alerts daemon would cancel every order of "
                       f"{alert.event_id} not ended yet, and act on none of its later alerts")
        else:
            catalog = GalaxyCatalog.load(config["Alerts"]["Galaxy Catalog"])
            response = respond(alert, config, now, catalog)
            summary = response.summary()
    except (ValueError, AlertFormatError, CatalogError, TargetError) as error:
        print(f"toros: {arguments.file}: {error}", file=sys.stderr)
        return EXIT_FAILED
    result = {"Event": response.event(), "Orders": response.orders,
              "Coverage": response.coverage(), "Targets": response.targets,
              "Summary": summary}
    if response.ignored:
        result["Ignored"] = response.ignored
    if response.pick is not None:
        result["Night"] = {"Start": _time(response.pick.night_start),
                           "End": _time(response.pick.night_end)}
    if arguments.json:
        print(json.dumps(result, indent=1, default=str))
        return EXIT_OK
    event = result["Event"]
    print(f"{event['ID']} {event['Alert Type']} ({event['Kind']}, {event['Source']}): "
          f"{summary}")
    if response.orders:
        print(table(response.orders, ORDER_COLUMNS))
    return EXIT_OK


def run_events(config, arguments):
    """``toros alerts [EVENT]``."""
    query = {"WOType": "Events"}
    if arguments.event:
        query["Event ID"] = arguments.event
    elif not arguments.all:
        query["Limit"] = arguments.limit
    answer = ask(config, "alerts", query)
    if answer is None:
        return EXIT_FAILED
    if arguments.json:
        print(json.dumps(answer, indent=1))
    elif arguments.event:
        print(f"{answer['Event']} ({answer['Kind']}): {answer['State']}; "
              f"{coverage_text(answer['Coverage'])}")
        for alert in answer["Alerts"]:
            print(f"  {alert['Received']}  {alert['Alert Type']:12} {alert['Summary']}")
        print(table(answer["Orders"], REPORT_ORDER_COLUMNS))
    elif not answer["Events"]:
        print("No alerts yet.")
    else:
        rows = [dict(event, Planned=f"{event['Planned']:.1%}") for event in answer["Events"]]
        print(table(rows, EVENT_COLUMNS))
        if answer["Total Events"] > len(rows):
            print(f"The {len(rows)} most recent of {answer['Total Events']:,} events "
                  "(--limit N or --all for more).")
    return EXIT_OK


def _time(instant):
    return None if instant is None else format_utc(instant)
