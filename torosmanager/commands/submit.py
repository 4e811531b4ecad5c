"""``toros submit FILE``: send work orders from a YAML or JSON file, print a receipt table."""

import json
import sys
import xmlrpc.client

import yaml

from .. import plain_yaml
from ..client import connect
from ..config import SERVICES
from ..console import EXIT_FAILED, EXIT_OK, RECEIPT_COLUMNS, table
from ..workorders import SCHEMAS
from .front_desk import unreachable


def add_arguments(parser):
    """The arguments of ``toros submit``."""
    parser.add_argument("file", metavar="FILE", help="one work order, or a list ('-': stdin)")
    parser.add_argument("--to", choices=SERVICES,
                        help="daemon to send to (default: the one each WOType goes to)")


def run(config, arguments):
    """``toros submit FILE``: send each order, print a receipt table."""
    try:
        orders = _read_orders(arguments.file)
    except (OSError, ValueError) as error:
        print(f"toros: {arguments.file}: {error}", file=sys.stderr)
        return EXIT_FAILED
    rows, failed = [], False
    for order in orders:
        service = arguments.to or _destination(order)
        try:
            receipt = connect(config, service).front_desk(order)
        except xmlrpc.client.Fault as refusal:
            failed = True
            rows.append({"ID": order.get("ID", ""), "WOType": order.get("WOType", ""),
                         "Status": "refused", "Message": refusal.faultString})
            continue
        except (OSError, xmlrpc.client.ProtocolError) as error:
            print(unreachable(config, service, error), file=sys.stderr)
            return EXIT_FAILED
        rows.append(receipt)
    print(table(rows, RECEIPT_COLUMNS))
    return EXIT_FAILED if failed else EXIT_OK


def _read_orders(path):
    if path == "-":
        text = sys.stdin.read()
    else:
        with open(path, encoding="utf-8") as stream:
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
