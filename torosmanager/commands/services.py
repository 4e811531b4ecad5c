"""``toros services``: which daemons answer, where, and their health."""

import xmlrpc.client

from ..client import connect
from ..config import SERVICES, address_key
from ..console import EXIT_FAILED, EXIT_OK, queue_text, table
from .front_desk import NO_ANSWER, short_failure

#: The columns of the table, a row per daemon.
SERVICE_COLUMNS = ("Service", "Address", "Answers", "Version", "Uptime", "Queue")
#: What every daemon's health report holds, and the table shows.
HEALTH_KEYS = {"Version", "Uptime", "Queue"}


def add_arguments(parser):
    """``toros services`` takes no arguments."""


def run(config, arguments):
    """``toros services``: one row per daemon."""
    rows, failed = [], False
    for service in SERVICES:
        row = {"Service": service, "Address": config[address_key(service)]["HTTP"]}
        try:
            health = connect(config, service).front_desk({"WOType": "Status"})
        except xmlrpc.client.Fault as refusal:
            failed = True
            row["Answers"] = f"refused: {refusal.faultString}"
        except NO_ANSWER as error:
            failed = True
            row["Answers"] = f"no: {short_failure(error)}"
        else:
            if isinstance(health, dict) and HEALTH_KEYS <= health.keys():
                row.update({"Answers": "yes", "Version": health["Version"],
                            "Uptime": f"{health['Uptime']:.0f} s",
                            "Queue": queue_text(health["Queue"])})
            else:  # another XML-RPC server that happens to have a front_desk
                failed = True
                row["Answers"] = "no: not a TOROS daemon's answer (no health report)"
        rows.append(row)
    print(table(rows, SERVICE_COLUMNS))
    return EXIT_FAILED if failed else EXIT_OK
