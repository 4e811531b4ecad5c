"""The daemons of a benchmark: started as the tests start them, on one simulated clock.

Shared by ``bench/alerts.py`` (alert → slewing) and ``bench/too_latency.py`` (target of
opportunity → slewing): :class:`Site` runs the daemons as processes on 127.0.0.1
(:func:`torosmanager.launcher.local_config`, :class:`DaemonProcess`), :class:`Clock` is their
simulated clock at speed 1 on the tests' evening at CTMO, and :func:`observe_long_order` brings
the observatory to the state a target of opportunity interrupts: the dome opened by the
scheduler and a long observation exposing.
"""

import logging
import os
import time
import xmlrpc.client
from datetime import datetime, timezone

log = logging.getLogger("bench.daemons")

#: The tests' simulated evening at CTMO (tests/conftest.py EVENING): an hour after astronomical
#: dusk, the Moon down. Every daemon's clock starts here, at speed 1.
EVENING = datetime(2026, 11, 10, 2, 0, tzinfo=timezone.utc)
#: A daemon counts as settled when it uses less than this share of a core over IDLE_WINDOW
#: seconds (waited for at most SETTLE_TIMEOUT seconds), as in bench/front_desk.py.
IDLE_CPU, IDLE_WINDOW, SETTLE_TIMEOUT = 0.05, 0.3, 30.0
#: Real seconds the dome may take to open and the long order to expose before the run stops
#: with an error.
DOME_TIMEOUT = 300.0
EXPOSING_TIMEOUT = 120.0
#: Poll interval while waiting for the observatory to be ready (not a measurement), seconds.
SETUP_POLL_SECONDS = 0.1
#: The long Research observation a target of opportunity interrupts: high that evening, far
#: from the Moon (tests/test_scheduler.py FIELDS "gal-a"), one exposure of half an hour.
LONG_ORDER = {"ID": "long", "WOType": "Observation", "RA": 330.0, "Dec": 35.0, "Filter": "V",
              "Exposure Time": 1800.0, "Number of Exposures": 1, "User": "bench",
              "Type of job": "Research"}
#: Dome → Reopen Delay. The default, 1200 s, keeps a dome that has just started shut for 20
#: minutes of real time at speed 1; every other setting is the default.
REOPEN_DELAY = 0.0


class Clock:
    """One simulated clock (speed 1 from :data:`EVENING`) shared by the daemons of a part and
    the in-process runs, and the conversions of journal times to seconds after a send."""

    def __init__(self):
        self.anchor = datetime.now(timezone.utc)

    def settings(self):
        """The configuration's ``Clock`` section."""
        return {"Mode": "simulated", "Start": EVENING.isoformat(),
                "Anchor": self.anchor.isoformat(), "Speed": 1.0}

    def now(self):
        """The daemons' time now."""
        return EVENING + (datetime.now(timezone.utc) - self.anchor)

    @staticmethod
    def seconds_after(text, instant):
        """Seconds from *instant* (the daemons' time) to a journal time *text*."""
        return (datetime.fromisoformat(text.replace("Z", "+00:00")) - instant).total_seconds()


class Site:
    """Daemons sharing one configuration in *directory*, started as the tests start them."""

    def __init__(self, directory, overrides):
        from torosmanager.config import load_config
        from torosmanager.launcher import local_config

        self.directory = directory
        self.config_path = local_config(str(directory), overrides)
        self.config = load_config(self.config_path)
        self.daemons = {}

    def start(self, *services):
        """Launch the daemons at once, wait for each one's READY=1, then until it is idle."""
        from torosmanager.launcher import DaemonProcess

        launched = [DaemonProcess(service, self.config_path).launch() for service in services]
        for daemon in launched:
            self.daemons[daemon.service] = daemon
        for daemon in launched:
            daemon.wait_ready()
        self.wait_idle()
        return self

    def proxy(self, service):
        """An XML-RPC client of *service*, as any program would make one."""
        from torosmanager.config import address_key

        return xmlrpc.client.ServerProxy(self.config[address_key(service)]["HTTP"],
                                         allow_none=True)

    def wait_idle(self, timeout=SETTLE_TIMEOUT):
        """Wait until every daemon uses under IDLE_CPU of a core over IDLE_WINDOW seconds."""
        deadline = time.monotonic() + timeout
        pids = [daemon.pid for daemon in self.daemons.values()]
        while time.monotonic() < deadline:
            before = sum(process_cpu(pid) for pid in pids)
            time.sleep(IDLE_WINDOW)
            if sum(process_cpu(pid) for pid in pids) - before < IDLE_CPU * IDLE_WINDOW:
                return
        log.warning("the daemons did not settle within %g s", timeout)

    def stop(self):
        """Stop every daemon by its PID (SIGTERM, then SIGKILL if it does not stop)."""
        for daemon in self.daemons.values():
            daemon.stop()


def start_observatory(site, *others):
    """Start the dome, then the telescope, the scheduler and *others*; have the scheduler open
    the dome and dispatch :data:`LONG_ORDER`."""
    # The dome first: the scheduler's first heartbeat, sent as it starts, must reach it (the
    # next comes a Heartbeat Interval, 60 s, later).
    site.start("dome")
    site.start("telescope", "scheduler", *others)
    site.proxy("scheduler").front_desk(LONG_ORDER)  # dispatched once the dome is open
    dome = site.proxy("dome")
    wait_until(lambda: dome.front_desk({"WOType": "Status"})["Devices"]["Enclosure"]
               .get("Shutter") == "open", "the scheduler to open the dome", DOME_TIMEOUT)


def wait_exposing(site):
    """Wait until :data:`LONG_ORDER` exposes at the telescope, then until the daemons idle."""
    telescope = site.proxy("telescope")

    def exposing():
        answer = status(telescope, LONG_ORDER["ID"])
        return (answer is not None and answer["Status"] == "running"
                and answer["Progress"].get("Step", "").startswith("exposing"))
    wait_until(exposing, "the long observation to expose", EXPOSING_TIMEOUT)
    site.wait_idle()


def idle_pool_thread(stack):
    """Whether a py-spy sample (its frames, ``;``-separated) is a thread waiting: a daemon's
    workers (the server's among them) wait in ``SimpleQueue.get``, the server's own thread in
    the selector, which py-spy cannot tell from work, so such samples are left out of the busy
    ones."""
    last = stack.split(";")[-1]
    return ("/concurrent/futures/thread.py" in last
            or (last.startswith("select (") and "/selectors.py" in last))


def raw_stacks(lines):
    """py-spy's raw output as (stack, count) pairs. A frame's text may hold a line break (a
    name py-spy read mid-update): such a line is joined to the next."""
    stacks, pending = [], ""
    for line in lines:
        line = pending + line.rstrip("\n")
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            stacks.append((stack, count))
            pending = ""
        else:
            pending = line
    return stacks


def process_cpu(pid):
    """CPU seconds (user + system) a process has used, with those of its child processes, live
    (the scheduler's planning process) or ended, from /proc: the daemon's work, wherever it
    runs."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    # utime, stime, and cutime, cstime: those of the children it has waited for.
    own = sum(int(field) for field in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(_child_cpu(child) for child in _children(pid))


def _children(pid):
    children = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as stream:
                children += [int(child) for child in stream.read().split()]
    except FileNotFoundError:  # it, or one of its threads, has just ended
        pass
    return children


def _child_cpu(pid):
    try:
        return process_cpu(pid)
    except FileNotFoundError:  # ended between the two reads; its parent now counts it
        return 0.0


def wait_until(predicate, what, timeout):
    """Poll *predicate* every SETUP_POLL_SECONDS until it returns a true value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(SETUP_POLL_SECONDS)
    raise RuntimeError(f"gave up after {timeout:g} s waiting for {what}; last: {last!r}")


def status(proxy, order_id):
    """*order_id*'s Status at a daemon, or ``None`` while the daemon does not know it."""
    from torosmanager.client import status_of

    return status_of(proxy, order_id)


def history_time(answer, predicate):
    """The time of the first entry of a Status answer's History satisfying *predicate*."""
    return next((entry["Time"] for entry in answer["History"] if predicate(entry)), None)
