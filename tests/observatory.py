"""Helpers for tests that run a whole simulated observatory on a fast clock."""

import time
import xmlrpc.client

import psutil

from conftest import EVENING, simulated_clock
from torosmanager.client import status_of
from torosmanager.dome.geometry import DomeGeometry

#: Simulated seconds per real second in these tests: a 30 s exposure takes 0.3 s.
SPEED = 100
#: Real seconds a test waits for a state before it fails.
PATIENCE = 60


def settings(speed=SPEED, start=EVENING, **sections):
    """Configuration overrides for a small, fast simulated observatory."""
    overrides = {
        "Clock": simulated_clock(start, speed),
        "Dome": {"Reopen Delay": 0, "Heartbeat Timeout": 3600},
        "Scheduler": {"Heartbeat Interval": 30},
        "Observing": {"Bias Frames": 2, "Dark Frames": 2, "Flat Frames": 1},
        "Simulator": {"Width": 256, "Height": 256},
    }
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return overrides


def wait_until(predicate, what, patience=PATIENCE):
    """Poll *predicate* until it returns a true value; fail naming *what* after *patience* s."""
    deadline = time.monotonic() + patience
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"gave up after {patience} s waiting for {what}; last: {last!r}")


def status(proxy, order_id):
    return proxy.front_desk({"WOType": "Status", "ID": order_id})


def said(proxy, order_id, prefix, what):
    """Wait for *order_id*'s message to begin with *prefix* (*what* names the wait); its
    Status answer."""
    def check():
        answer = status(proxy, order_id)
        return answer if answer["Message"].startswith(prefix) else None
    return wait_until(check, what)


def step(proxy, order_id):
    """The current step of an order, or "" while the daemon does not know it yet."""
    answer = status_of(proxy, order_id)
    return answer["Progress"].get("Step", "") if answer is not None else ""


def frames_done(proxy, order_id):
    """Light frames *order_id* has taken so far (0 while the daemon does not know it yet)."""
    answer = status_of(proxy, order_id)
    return answer["Progress"].get("Frames Done", 0) if answer is not None else 0


def ended(proxy, order_id, state):
    """Wait for *order_id* to reach *state*; fail early if it ends in another final state.

    An order the daemon does not know yet (still being handed over) is waited for too.
    """
    def check():
        answer = status_of(proxy, order_id)
        if answer is None:
            return None
        if answer["Status"] == state:
            return answer
        if answer["Status"] in ("done", "failed", "cancelled"):
            raise AssertionError(f"order {order_id} ended {answer['Status']}: "
                                 f"{answer['Message']}")
        return None
    return wait_until(check, f"order {order_id} to be {state}")


def dome_safety(site):
    return site.proxy("dome").front_desk({"WOType": "Status"})["Devices"]["Safety"]


def open_dome(site, order_id="open"):
    """Wait until the dome may open, open it, and wait until it is open."""
    wait_until(lambda: dome_safety(site)["May Open"], "the dome to be allowed to open")
    site.proxy("dome").front_desk({"ID": order_id, "WOType": "Dome", "Shutter": "Open"})
    return ended(site.proxy("dome"), order_id, "done")


def slit_and_wanted(site, *pier_sides):
    """The dome daemon's Status devices, the telescope's pointing, and the azimuths the dome's
    geometry wants the slit at for that pointing, the mount on each of *pier_sides*
    (``"west"``, ``"east"``, or ``None``: by the hour angle)."""
    pointing = site.proxy("telescope").front_desk({"WOType": "Status"})["Devices"]["Pointing"]
    devices = site.proxy("dome").front_desk({"WOType": "Status"})["Devices"]
    geometry = DomeGeometry.from_settings(devices["Geometry"])
    latitude = site.config["Site"]["Latitude"]
    return devices, pointing, [
        geometry.slit_azimuth(pointing["Altitude"], pointing["Azimuth"], latitude, side)
        for side in pier_sides]


def refusal(call, order):
    try:
        call(order)
    except xmlrpc.client.Fault as fault:
        return fault
    raise AssertionError(f"{order} was accepted")


def process_ended(pid):
    """Whether the process *pid* has ended: gone, or a zombie its parent has not reaped."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def children(pid):
    """The PIDs of the processes *pid* started, by any of its threads."""
    return [child.pid for child in psutil.Process(pid).children()]


def command_line(pid):
    """The arguments process *pid* was started with; ``[]`` once it has ended."""
    try:
        return psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []
