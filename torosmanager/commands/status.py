"""``toros status [ID]``: an order's state and history, or a daemon's health."""

import json

from ..config import SERVICES
from ..console import EXIT_FAILED, EXIT_OK, RECEIPT_COLUMNS, queue_text, table
from .front_desk import ask

#: The lines of an order's status, after the receipt's columns.
ORDER_DETAILS = ("Priority Reason", "Created", "Updated")
#: The lines of a daemon's health, before its uptime and queue.
HEALTH_DETAILS = ("Service", "Version", "Status", "Address", "Started", "Clock", "Now")


def add_arguments(parser):
    """The arguments of ``toros status``."""
    parser.add_argument("id", nargs="?", metavar="ID")
    add_daemon_argument(parser)


def add_daemon_argument(parser):
    """``--to``: the daemon asked (``toros status``, ``toros cancel``)."""
    parser.add_argument("--to", choices=SERVICES, default="scheduler",
                        help="daemon to ask (default: scheduler)")


def run(config, arguments):
    """``toros status [ID]``."""
    query = {"WOType": "Status"}
    if arguments.id is not None:
        query["ID"] = arguments.id
    answer = ask(config, arguments.to, query)
    if answer is None:
        return EXIT_FAILED
    if arguments.id is None:
        print(_health_text(answer))
        return EXIT_OK
    for key in RECEIPT_COLUMNS + ORDER_DETAILS:
        print(f"{key + ':':17} {answer.get(key, '')}")
    if answer.get("Progress"):
        print(f"{'Progress:':17} {json.dumps(answer['Progress'])}")
    print("\nWork order:")
    for key, value in answer.get("Work Order", {}).items():
        print(f"  {key}: {value}")
    print("\nHistory:")
    print(table(answer.get("History", []), ("Time", "Status", "Reason")))
    return EXIT_OK


def _health_text(health):
    lines = [f"{key + ':':10} {health.get(key, '')}" for key in HEALTH_DETAILS]
    lines.append(f"{'Uptime:':10} {health['Uptime']:.0f} s")
    lines.append(f"{'Queue:':10} {queue_text(health['Queue'])}")
    for name, value in health.get("Devices", {}).items():
        lines.append(f"{'Device:':10} {name}: {value}")
    return "\n".join(lines)
