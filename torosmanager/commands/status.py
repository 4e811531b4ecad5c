"""``toros status [ID]``: an order's state and history, or a daemon's health."""

from ..config import SERVICES
from ..console import EXIT_FAILED, EXIT_OK, RECEIPT_COLUMNS, queue_text, table
from ..scheduler.plan_command import heading
from .front_desk import ask

#: How far the items of a mapping are indented below its key.
INDENT = "  "
#: The lines of an order's status, after the receipt's columns.
ORDER_DETAILS = ("Priority Reason", "Created", "Updated")
#: The lines of a daemon's health, before its uptime and queue.
HEALTH_DETAILS = ("Service", "Version", "Status", "Address", "Started", "Clock", "Now")
#: The keys of a health report said in lines of their own (the rest, each daemon's own, follow
#: as they come).
SHOWN_APART = HEALTH_DETAILS + ("Uptime", "Queue", "Devices", "Plan", "Earth Rotation")


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
        print("\n".join(nested_lines("Progress", answer["Progress"])))
    print("\nWork order:")
    for key, value in answer.get("Work Order", {}).items():
        print("\n".join(nested_lines(key, value, INDENT)))
    print("\nHistory:")
    print(table(answer.get("History", []), ("Time", "Status", "Reason")))
    return EXIT_OK


def _health_text(health):
    lines = [f"{key + ':':10} {health.get(key, '')}" for key in HEALTH_DETAILS]
    lines.append(f"{'Uptime:':10} {health['Uptime']:.0f} s")
    lines.append(f"{'Queue:':10} {queue_text(health['Queue'])}")
    if "Plan" in health:  # the scheduler's: in short (`toros plan` lists it)
        plan = health["Plan"]
        lines.append(f"{'Plan:':10} {heading(plan)} {plan.get('Planned', 0)} planned, "
                     f"{plan.get('Not Planned', 0)} not (toros plan)")
    if "Earth Rotation" in health:
        lines.append(f"Earth Rotation: {health['Earth Rotation'].get('Message', '')}")
    for name, value in health.get("Devices", {}).items():
        lines += nested_lines(f"{'Device:':10} {name}", value, "", INDENT * 2)
    for key, value in health.items():
        if key not in SHOWN_APART:
            lines += nested_lines(key, value)
    return "\n".join(lines)


def nested_lines(key, value, indent="", inner=None):
    """``key: value`` as lines for a person, a mapping's items as lines of their own below
    its key, indented (where Python's repr of a dict was printed), and a list of plain values
    on one line, separated by commas.

    Parameters
    ----------
    key : str
    value : object
        As XML-RPC brings it: a dict, a list, or a plain value.
    indent : str
        Before the line of *key*.
    inner : str, optional
        Before the lines of *value*'s items; default *indent* and :data:`INDENT`.
    """
    inner = indent + INDENT if inner is None else inner
    if isinstance(value, dict):
        lines = [f"{indent}{key}:" + ("" if value else " none")]
        for item_key, item in value.items():
            lines += nested_lines(item_key, item, inner)
        return lines
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        lines = [f"{indent}{key}:"]
        for number, item in enumerate(value, start=1):
            lines += nested_lines(f"{number}.", item, inner)
        return lines
    if isinstance(value, list):
        return [f"{indent}{key}: {', '.join(map(_plain, value)) or 'none'}"]
    return [f"{indent}{key}: {_plain(value)}".rstrip()]


def _plain(value):
    return "" if value is None else str(value)
