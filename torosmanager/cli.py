"""The ``toros`` command: submit work orders, follow them, see which daemons answer.

::

    toros submit orders.yaml          # one order or a list, YAML or JSON
    toros status 42                   # an order's state and history
    toros status                      # the scheduler's health (--to another daemon)
    toros cancel 42
    toros services                    # which daemons answer, where, their health
    toros plan                        # tonight's plan from the scheduler (--plot FILE.png)
    toros calibrate NIGHT_DIR         # calibrate a night offline, with a progress bar
    toros iers                        # the Earth-rotation table's age (--update: a newer one)
    toros passwd                      # a password hash for Server → Users
    toros backup DIR                  # a copy of each daemon's journal, safe while they run
    toros alert FILE                  # hand an alert to the alerts daemon (--dry-run: see what
                                      # it would submit, here)
    toros alerts [EVENT]              # the events the alerts daemon has read, or one's report
    toros demo                        # the five daemons on this machine, with the manual's orders

Exit status: 0 when everything asked for succeeded, 1 when a daemon refused or did not answer
(its message is printed), 2 for a wrong command line, 78 for an unusable configuration file.
"""

import argparse
import getpass
import json
import os
import sys
import xmlrpc.client
from datetime import date, datetime

import yaml

from . import __version__, backup as backup_command, iers_command
from .client import connect
from .config import (DEFAULT_PATH, ENVIRONMENT_VARIABLE, SERVICES, ConfigError, address_key,
                     default_config, load_config, resolve_path)
from .alerts import command as alerts_command
from .preprocessor import command as calibrate_command
from .earth_rotation import use_astropy_offline
from .passwords import hash_password
from .scheduler import plan_command
from .workorders import SCHEMAS, format_utc

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 78
RECEIPT_COLUMNS = ("ID", "WOType", "Status", "Priority", "Message")


def main(argv=None):
    """Run the ``toros`` command; return its exit status."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command is None:
        parser.print_help()
        return EXIT_FAILED
    if arguments.uses_astropy:
        # Imported only by the commands that need it (it takes a third of a second).
        use_astropy_offline()
    if arguments.command == "demo":
        from .demo import run_demo
        return run_demo()
    if not arguments.needs_config:
        return arguments.action(None, arguments)
    try:
        config = _load(arguments.config)
    except ConfigError as error:
        print(f"toros: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return arguments.action(config, arguments)


def _parser():
    parser = argparse.ArgumentParser(prog="toros", description="Talk to the TOROS Manager daemons.")
    parser.add_argument("--config", metavar="PATH",
                        help=f"configuration file (default: ${ENVIRONMENT_VARIABLE}, else "
                             f"{DEFAULT_PATH}, else built-in defaults)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(uses_astropy=False, needs_config=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    submit = commands.add_parser("submit", help="submit work orders from a YAML or JSON file")
    submit.add_argument("file", metavar="FILE", help="one work order, or a list ('-': stdin)")
    submit.add_argument("--to", choices=SERVICES,
                        help="daemon to send to (default: the one each WOType goes to)")
    submit.set_defaults(action=submit_orders)

    status = commands.add_parser("status", help="an order's state and history, or a "
                                                "daemon's health")
    status.add_argument("id", nargs="?", metavar="ID")
    status.add_argument("--to", choices=SERVICES, default="scheduler",
                        help="daemon to ask (default: scheduler)")
    status.set_defaults(action=show_status)

    cancel = commands.add_parser("cancel", help="cancel an order")
    cancel.add_argument("id", metavar="ID")
    cancel.add_argument("--to", choices=SERVICES, default="scheduler",
                        help="daemon to ask (default: scheduler)")
    cancel.set_defaults(action=cancel_order)

    services = commands.add_parser("services", help="which daemons answer, and their health")
    services.set_defaults(action=list_services)

    plan = commands.add_parser("plan", help="tonight's plan from the scheduler (--plot: an "
                                            "altitude chart)")
    plan_command.add_arguments(plan)
    plan.set_defaults(action=plan_command.run, uses_astropy=True)

    calibrate = commands.add_parser("calibrate", help="calibrate a night of raw frames here, "
                                                      "offline, with a progress bar")
    calibrate_command.add_arguments(calibrate)
    calibrate.set_defaults(action=calibrate_command.run, uses_astropy=True)

    iers = commands.add_parser("iers", help="how old the Earth-rotation table is, and the "
                                            "pointing error that implies (--update: a newer one)")
    iers_command.add_arguments(iers)
    iers.set_defaults(action=iers_command.run, uses_astropy=True)

    passwd = commands.add_parser("passwd", help="make a salted hash of a password, for "
                                                "Server → Users")
    passwd.add_argument("--stdin", action="store_true",
                        help="read the password from standard input instead of asking twice")
    passwd.set_defaults(action=make_password_hash, needs_config=False)

    backup = commands.add_parser("backup", help="copy each daemon's journal into DIR with a "
                                                "time-stamped name, safely while they run")
    backup_command.add_arguments(backup)
    backup.set_defaults(action=backup_command.run)

    alert = commands.add_parser("alert", help="hand an alert file to the alerts daemon "
                                              "(--dry-run: the orders it would make)")
    alerts_command.add_alert_arguments(alert)
    alert.set_defaults(action=alerts_command.run_alert, uses_astropy=True)

    alerts = commands.add_parser("alerts", help="the events the alerts daemon has read, or "
                                                "one event's report")
    alerts_command.add_events_arguments(alerts)
    alerts.set_defaults(action=alerts_command.run_events)

    commands.add_parser("demo", help="a whole simulated night with the five daemons, here, in "
                                      "a few minutes")
    return parser


def make_password_hash(config, arguments):
    """``toros passwd``: print a hash of a password typed twice (or read from stdin)."""
    if arguments.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("The same again: ") != password:
            print("toros: the two passwords differ; nothing made", file=sys.stderr)
            return EXIT_FAILED
    if not password:
        print("toros: an empty password; nothing made", file=sys.stderr)
        return EXIT_FAILED
    print(hash_password(password))
    return EXIT_OK


def _load(path):
    """The configuration; built-in defaults when none was named and the default file is absent."""
    if path is None and ENVIRONMENT_VARIABLE not in os.environ and not os.path.exists(
            DEFAULT_PATH):
        return default_config()
    try:
        return load_config(path)
    except ConfigError as error:
        if "Permission denied" in str(error):
            raise ConfigError(f"{error} (it may hold passwords: run as root or as a member of the "
                              "toros group, or name another file with --config)") from None
        raise


def submit_orders(config, arguments):
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
            print(_unreachable(config, service, error), file=sys.stderr)
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
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"not valid {'JSON' if path.endswith('.json') else 'YAML'}: {error}")
    orders = data if isinstance(data, list) else [data]
    if not orders or not all(isinstance(order, dict) for order in orders):
        raise ValueError("expected a work order (a mapping) or a list of them")
    return [_plain(order) for order in orders]


def _plain(value):
    """YAML reads unquoted timestamps as datetimes; send them as ISO 8601 text (XML-RPC's own
    date type has no fractions of a second)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return format_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _destination(order):
    wotype = order.get("WOType")
    if wotype is None and order.get("Request") == "Exposure Calibration":
        wotype = "Preprocessing"
    schema = SCHEMAS.get(wotype)
    # Unknown types go to the scheduler, whose refusal lists the accepted ones.
    return schema.services[0] if schema and schema.services else "scheduler"


def show_status(config, arguments):
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
    for key in RECEIPT_COLUMNS + ("Priority Reason", "Created", "Updated"):
        print(f"{key + ':':17} {answer.get(key, '')}")
    if answer.get("Progress"):
        print(f"{'Progress:':17} {json.dumps(answer['Progress'])}")
    print("\nWork order:")
    for key, value in answer.get("Work Order", {}).items():
        print(f"  {key}: {value}")
    print("\nHistory:")
    print(table(answer.get("History", []), ("Time", "Status", "Reason")))
    return EXIT_OK


def cancel_order(config, arguments):
    """``toros cancel ID``."""
    answer = ask(config, arguments.to, {"WOType": "Cancel", "ID": arguments.id})
    if answer is None:
        return EXIT_FAILED
    print(table([answer], RECEIPT_COLUMNS))
    return EXIT_OK


def list_services(config, arguments):
    """``toros services``: one row per daemon."""
    rows, failed = [], False
    for service in SERVICES:
        row = {"Service": service, "Address": config[address_key(service)]["HTTP"]}
        try:
            health = connect(config, service).front_desk({"WOType": "Status"})
        except xmlrpc.client.Fault as refusal:
            failed = True
            row["Answers"] = f"refused: {refusal.faultString}"
        except (OSError, xmlrpc.client.ProtocolError) as error:
            failed = True
            row["Answers"] = f"no: {_reason(error)}"
        else:
            row.update({"Answers": "yes", "Version": health["Version"],
                        "Uptime": f"{health['Uptime']:.0f} s",
                        "Queue": _queue_text(health["Queue"])})
        rows.append(row)
    print(table(rows, ("Service", "Address", "Answers", "Version", "Uptime", "Queue")))
    return EXIT_FAILED if failed else EXIT_OK


def ask(config, service, query):
    """The *service* daemon's answer to *query*, or ``None`` (said why on stderr)."""
    return call(config, service, lambda daemon: daemon.front_desk(query))


def call(config, service, conversation):
    """``conversation(proxy)`` with the *service* daemon's front desk, or ``None`` when the
    daemon refused or did not answer (said why on stderr)."""
    try:
        return conversation(connect(config, service))
    except xmlrpc.client.Fault as refusal:
        print(f"toros: the {service} daemon refused: {refusal.faultString}", file=sys.stderr)
    except (OSError, xmlrpc.client.ProtocolError) as error:
        print(_unreachable(config, service, error), file=sys.stderr)
    return None


def _unreachable(config, service, error):
    return (f"toros: the {service} daemon does not answer at "
            f"{config[address_key(service)]['HTTP']}: {_reason(error)} "
            f"(is it running? `systemctl status {service}`; configuration: "
            f"{resolve_path(None)})")


def _reason(error):
    if isinstance(error, xmlrpc.client.ProtocolError):
        return f"HTTP {error.errcode} {error.errmsg}"
    return getattr(error, "strerror", None) or str(error)


def _queue_text(counts):
    return ", ".join(f"{count} {state}" for state, count in sorted(counts.items())) or "empty"


def _health_text(health):
    lines = [f"{key + ':':10} {health.get(key, '')}"
             for key in ("Service", "Version", "Status", "Address", "Started", "Clock", "Now")]
    lines.append(f"{'Uptime:':10} {health['Uptime']:.0f} s")
    lines.append(f"{'Queue:':10} {_queue_text(health['Queue'])}")
    for name, value in health.get("Devices", {}).items():
        lines.append(f"{'Device:':10} {name}: {value}")
    return "\n".join(lines)


def table(rows, columns):
    """Format dicts as a plain-text table with the given columns."""
    cells = [[_cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(line[i]) for line in cells])
              for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths)).rstrip(),
             "  ".join("-" * width for width in widths)]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
              for line in cells]
    return "\n".join(lines)


def _cell(value):
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
