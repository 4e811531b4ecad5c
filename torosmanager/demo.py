"""``make demo`` / ``toros demo``: the four daemons on this machine, with the manual's orders.

Everything runs from a temporary directory on free loopback ports, with simulated devices and a
simulated clock that starts shortly after dusk tonight at the configured site and runs
:data:`SPEED` times faster than real time: no root, no network, nothing touched outside that
directory. The demo waits until the dome may open (the scheduler's heartbeat, the reopen delay),
has the scheduler open it, blink the warning light (the manual's Dome example) and run the
manual's Observation example, prints each step as it happens and the frames it wrote, and stops
every daemon it started.
"""

import shutil
import tempfile
import time
import xmlrpc.client
from datetime import datetime, timedelta, timezone

from astropy.io import fits

from .cli import RECEIPT_COLUMNS, table
from .client import connect
from .clock import use_astropy_offline
from .config import SERVICES, address_key, default_config, load_config
from .examples import MANUAL_DOME, MANUAL_OBSERVATION
from .launcher import DaemonProcess, local_config
from .night import Night

#: Simulated seconds per real second.
SPEED = 60
#: How long after the Sun passes the dome's limit the simulated evening starts.
AFTER_DUSK = timedelta(minutes=30)
#: Real seconds the demo waits for any one step before it gives up.
PATIENCE = 120
#: The manual gives both examples the ID "1"; one scheduler keeps one order per ID.
DOME_DEMO_ID = "2"
OPEN_ID = "open-dome"
#: A small simulated camera and few calibration frames keep the demo to a minute.
DEMO_SETTINGS = {
    "Simulator": {"Width": 512, "Height": 512},
    "Telescope": {"Bias Frames": 2, "Dark Frames": 2},
    "Dome": {"Reopen Delay": 60.0},
}


def run_demo(keep=False):
    """Run the demo; return 0 when every step worked."""
    directory = tempfile.mkdtemp(prefix="toros-demo-")
    start = _evening()
    overrides = dict(DEMO_SETTINGS, Clock={
        "Mode": "simulated", "Start": start.isoformat(), "Speed": SPEED,
        "Anchor": datetime.now(timezone.utc).isoformat()})
    config_path = local_config(directory, overrides)
    config = load_config(config_path)
    print(f"Demo directory: {directory} (configuration, journals, logs, FITS files)")
    print(f"Simulated clock: {start:%Y-%m-%d %H:%M} UTC at {config['Site']['Name']}, {SPEED}× "
          "real time\n")
    daemons = [DaemonProcess(service, config_path).launch() for service in SERVICES]
    result = 1
    try:
        for daemon in daemons:
            daemon.wait_ready()
            print(f"started {daemon.service:12} pid {daemon.pid:<7} at "
                  f"{config[address_key(daemon.service)]['HTTP']}")
        _night(config)
        result = 0
    except (OSError, RuntimeError, xmlrpc.client.Error) as error:
        print(f"\nThe demo failed: {error}")
    finally:
        for daemon in reversed(daemons):
            print(f"stopped {daemon.service:12} exit status {daemon.stop()}")
        if keep or result:
            print(f"Kept {directory} (logs: *.log)")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return result


def _evening():
    """Shortly after the Sun passes the dome's limit tonight at the default site."""
    use_astropy_offline()
    config = default_config()
    night = Night(config["Site"]).window(datetime.now(timezone.utc),
                                         config["Dome"]["Sun Altitude Limit"])
    if night is None:
        raise RuntimeError("no night at the site in the coming day and a half")
    return (night.start + AFTER_DUSK).replace(microsecond=0)


def _night(config):
    scheduler, dome = connect(config, "scheduler"), connect(config, "dome")
    print("\nWaiting until the dome may open (the scheduler's heartbeat, then Dome → Reopen "
          "Delay)...")
    _wait(lambda: dome.front_desk({"WOType": "Status"})["Devices"]["Safety"]["May Open"],
          "the dome to be allowed to open")
    orders = [{"ID": OPEN_ID, "WOType": "Dome", "User": "demo", "Shutter": "Open"},
              dict(MANUAL_DOME, ID=DOME_DEMO_ID)]
    print("\nSubmitting to the scheduler: open the dome, and the manual's Dome example:")
    print(table([scheduler.front_desk(order) for order in orders], RECEIPT_COLUMNS))
    for order in orders:
        _follow(config, "dome", order["ID"])
    print("\nSubmitting the manual's Observation example to the scheduler:")
    print(table([scheduler.front_desk(MANUAL_OBSERVATION)], RECEIPT_COLUMNS))
    final = _follow(config, "telescope", MANUAL_OBSERVATION["ID"])
    if final["Status"] != "done":
        raise RuntimeError(f"the observation ended {final['Status']}: {final['Message']}")
    print("\nFrames written:")
    rows = []
    for path in final["Progress"]["Files"]:
        header = fits.getheader(path)
        rows.append({"File": path, "IMAGETYP": header["IMAGETYP"], "EXPTIME": header["EXPTIME"],
                     "FILTER": header["FILTER"], "AIRMASS": header["AIRMASS"]})
    print(table(rows, ("File", "IMAGETYP", "EXPTIME", "FILTER", "AIRMASS")))
    handed = final["Progress"].get("Preprocessing ID")
    if handed:
        status = connect(config, "preprocessor").front_desk({"WOType": "Status", "ID": handed})
        print(f"\nThe preprocessor holds order {handed} for them: {status['Status']}")
    print("\nEvery daemon's health:")
    rows = []
    for service in SERVICES:
        health = connect(config, service).front_desk({"WOType": "Status"})
        rows.append({"Service": service, "Version": health["Version"], "Now": health["Now"],
                     "Queue": ", ".join(f"{n} {state}" for state, n in
                                        sorted(health["Queue"].items())) or "empty"})
    print(table(rows, ("Service", "Version", "Now", "Queue")))


def _follow(config, service, order_id):
    """Print each step of an order at *service* as it happens, until it ends or waits."""
    proxy = connect(config, service)
    print(f"\n{service} order {order_id}:")
    shown = 0

    def progressed():
        nonlocal shown
        try:
            status = proxy.front_desk({"WOType": "Status", "ID": order_id})
        except xmlrpc.client.Fault:
            return None  # not handed over yet
        for entry in status["History"][shown:]:
            print(f"  {entry['Time']}  {entry['Status']:11} {entry['Reason']}")
        shown = len(status["History"])
        return status if status["Status"] in ("done", "failed", "cancelled",
                                              "interrupted") else None

    return _wait(progressed, f"{service} order {order_id} to end")


def _wait(condition, what):
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise RuntimeError(f"gave up after {PATIENCE} s waiting for {what}")
