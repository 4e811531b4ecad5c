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
        data = json.loads(text) if path.endswith(".json") else plain_yaml.load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"not valid {'JSON' if path.endswith('.json') else 'YAML'}: {error}")
    orders = data if isinstance(data, list) else [data]
    if not orders or not all(isinstance(order, dict) for order in orders):
        raise ValueError("expected a work order (a mapping) or a list of them")
    for number, order in enumerate(orders, start=1):
        _check_sendable(order, f"work order {number}")
    return orders


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
