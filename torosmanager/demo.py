"""``make demo`` / ``toros demo``: the four daemons on this machine, with the manual's orders.

It writes a configuration for free loopback ports into a temporary directory (nothing needs
root, nothing touches /etc or /var), starts the four daemons as real processes, submits the
manual's Observation and Dome examples to the scheduler, prints the receipts and each order's
journey, asks every daemon for its health, and stops them all.
"""

import shutil
import tempfile
import time
import xmlrpc.client

from .cli import table, RECEIPT_COLUMNS
from .client import connect
from .config import SERVICES, load_config
from .examples import MANUAL_DOME, MANUAL_OBSERVATION
from .launcher import DaemonProcess, local_config

#: Seconds to let the scheduler hand the orders over before showing their state.
SETTLE_SECONDS = 1.0
#: The manual gives both examples the ID "1"; one scheduler keeps one order per ID.
DOME_DEMO_ID = "2"


def run_demo(keep=False):
    """Run the demo; return 0 when every step worked."""
    directory = tempfile.mkdtemp(prefix="toros-demo-")
    config_path = local_config(directory)
    config = load_config(config_path)
    print(f"Demo directory: {directory} (configuration, journals, logs)")
    daemons = []
    try:
        for service in SERVICES:
            daemons.append(DaemonProcess(service, config_path).start())
            print(f"started {service:12} pid {daemons[-1].pid:<7} at "
                  f"{config[service.capitalize() + ' Address']['HTTP']}")
        scheduler = connect(config, "scheduler")
        orders = [MANUAL_OBSERVATION, dict(MANUAL_DOME, ID=DOME_DEMO_ID)]
        print("\nSubmitting the manual's Observation and Dome work orders to the scheduler:")
        receipts = [scheduler.front_desk(order) for order in orders]
        print(table(receipts, RECEIPT_COLUMNS))
        time.sleep(SETTLE_SECONDS)
        for receipt in receipts:
            status = scheduler.front_desk({"WOType": "Status", "ID": receipt["ID"]})
            print(f"\nOrder {receipt['ID']} ({receipt['WOType']}), priority "
                  f"{status['Priority']:g} ({status['Priority Reason']}):")
            print(table(status["History"], ("Time", "Status", "Reason")))
        print("\nEvery daemon's health:")
        rows = []
        for service in SERVICES:
            health = connect(config, service).front_desk({"WOType": "Status"})
            rows.append({"Service": service, "Version": health["Version"],
                         "Queue": ", ".join(f"{n} {state}" for state, n in
                                            sorted(health["Queue"].items())) or "empty",
                         "Address": health["Address"]})
        print(table(rows, ("Service", "Version", "Address", "Queue")))
        result = 0
    except (OSError, RuntimeError, xmlrpc.client.Error) as error:
        print(f"\nThe demo failed: {error}")
        result = 1
    finally:
        for daemon in reversed(daemons):
            status = daemon.stop()
            print(f"stopped {daemon.service:12} exit status {status}")
        if keep or result:
            print(f"Kept {directory} (logs: *.log)")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return result
