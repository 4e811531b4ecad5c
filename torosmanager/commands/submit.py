"""``toros submit FILE``: send work orders from a YAML or JSON file, print a receipt table."""

import json
import sys
import xmlrpc.client

import yaml

from .. import plain_yaml
from ..client import connect, sent_whole
from ..config import SERVICES
from ..console import EXIT_FAILED, EXIT_OK, RECEIPT_COLUMNS, table
from ..workorders import SCHEMAS
from .front_desk import NO_ANSWER, failure, short_failure

#: The Status of a row for an order that was not sent, and of one sent whose answer did not
#: come.
NOT_SENT = "not sent"
NO_RECEIPT = "no answer"
#: What a UTF-8 text may begin with (U+FEFF), read as text.
BYTE_ORDER_MARK = "\ufeff"


def add_arguments(parser):
    """The arguments of ``toros submit``."""
    parser.add_argument("file", metavar="FILE", help="one work order, or a list ('-': stdin)")
    parser.add_argument("--to", choices=SERVICES,
                        help="daemon to send to (default: the one each WOType goes to)")


def run(config, arguments):
    """``toros submit FILE``: send each order, print a row for each: its receipt, or why it
    was not taken.

    Each order goes to its own daemon: one that does not answer stops only the orders for it
    (the first is tried, the rest are not sent), not those for the others. Exit status 1 when
    any order was refused or not sent."""
    try:
        orders = _read_orders(arguments.file)
    except (OSError, ValueError) as error:
        print(f"toros: {arguments.file}: {error}", file=sys.stderr)
        return EXIT_FAILED
    rows, failed = [], False
    # Daemons that brought no answer, and why, in a few words: the orders after it for them
    # are not sent (each would wait out the same timeout).
    silent = {}
    for order in orders:
        service = arguments.to or _destination(order)
        row = {"ID": order.get("ID", ""), "WOType": order.get("WOType", "")}
        if service in silent:
            failed = True
            rows.append(dict(row, Status=NOT_SENT,
                             Message=f"not sent: the {service} daemon brought no answer to an "
                                     f"order before ({silent[service]})"))
            continue
        try:
            receipt = connect(config, service).front_desk(order)
        except xmlrpc.client.Fault as refusal:
            failed = True
            rows.append(dict(row, Status="refused", Message=refusal.faultString))
            continue
        except NO_ANSWER as error:
            failed = True
            silent[service] = short_failure(error)
            if sent_whole(error):
                rows.append(dict(row, Status=NO_RECEIPT,
                                 Message=_maybe_received(config, service, order, error)))
            else:
                rows.append(dict(row, Status=NOT_SENT, Message=f"not sent: {silent[service]}"))
            print(failure(config, service, error), file=sys.stderr)
            continue
        rows.append(receipt)
    print(table(rows, RECEIPT_COLUMNS))
    return EXIT_FAILED if failed else EXIT_OK


def _maybe_received(config, service, order, error):
    """The row's message for an *order* sent whole to the *service* daemon, whose answer did
    not come (*error*): the daemon may have taken it."""
    timeout = config["Server"]["Peer Timeout"]
    why = (f"no answer within {timeout:g} s (Server → Peer Timeout)"
           if isinstance(error, TimeoutError) else f"no answer: {short_failure(error)}")
    to = "" if service == "scheduler" else f" --to {service}"
    if "ID" in order:
        return (f"sent, {why}: it may have been received; check with `toros status "
                f"{order['ID']}{to}`; submitting it again is safe (the daemon takes an order "
                "resubmitted unchanged, with its ID, as the one it has)")
    return (f"sent, {why}: it may have been received; it has no ID, so submitting it again "
            f"may make a second order: look for it first (`toros status{to}`, the status page)")


def _read_orders(path):
    # A byte order mark (as Windows' Notepad begins a UTF-8 file) is no part of the orders:
    # YAML's reader skips it, JSON's does not.
    if path == "-":
        text = sys.stdin.read().removeprefix(BYTE_ORDER_MARK)
    else:
        with open(path, encoding="utf-8-sig") as stream:
            text = stream.read()
    try:
        data = json.loads(text, object_pairs_hook=_once_each) if path.endswith(".json") \
            else plain_yaml.load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"not valid {'JSON' if path.endswith('.json') else 'YAML'}: {error}")
    orders = data if isinstance(data, list) else [data]
    if not orders:
        raise ValueError("expected a work order (a mapping) or a list of them; got an empty "
                         "list")
    for number, order in enumerate(orders, start=1):
        if not isinstance(order, dict):
            raise ValueError(f"work order {number}: expected a mapping of keys to values; "
                             f"got {order!r}")
    for number, order in enumerate(orders, start=1):
        _check_sendable(order, f"work order {number}")
    return orders


def _once_each(pairs):
    """A JSON object's pairs as a dict, refusing a key given twice (``json`` keeps the last:
    a second ``"ID"`` would submit another order than the one read first)."""
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} is given twice in one work order; allowed: "
                             "each key once")
        seen[key] = value
    return seen


def _check_sendable(order, which):
    """Raise ValueError naming the first key of *order* XML-RPC cannot carry (a key that is
    not text, an integer beyond 32 bits, a set...), before anything is sent."""
    for key, value in order.items():
        if not isinstance(key, str):
            raise ValueError(f"{which}: the key {key!r} is not text")
        try:
            xmlrpc.client.dumps((value,), allow_none=True)
        except (TypeError, OverflowError) as error:
            raise ValueError(f"{which}: {key!r} cannot be sent over XML-RPC: {error} "
                             f"(received {value!r})") from None


def _destination(order):
    wotype = order.get("WOType")
    if wotype is None and order.get("Request") == "Exposure Calibration":
        wotype = "Preprocessing"
    schema = SCHEMAS.get(wotype) if isinstance(wotype, str) else None
    # Unknown types go to the scheduler, whose refusal lists the accepted ones.
    return schema.services[0] if schema and schema.services else "scheduler"
