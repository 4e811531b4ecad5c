"""Following the demo's night: one line per event, and the summary at the end.

Events come from the daemons' own Status answers: the scheduler's history of every order (which
mirrors the telescope's steps), the dome's shutter and why it moved, and the preprocessor's jobs.
"""

import xmlrpc.client

from ..client import connect, status_of

FINAL = ("done", "failed", "cancelled")
ACTIVE = ("dispatched", "running")
#: How a planned order's repeated "planned for ..." lines are recognised (shown once).
PLANNED = "planned for "
#: The columns of the night's summary (:meth:`Watcher.summary`), in order.
SUMMARY_COLUMNS = ("ID", "Priority", "State", "Exposures", "Calibration Frames", "Calibrated",
                   "Why")


class Watcher:
    """Prints what happens, once, as it happens.

    Parameters
    ----------
    config : dict
        The demo's configuration (addresses).
    say : callable
        Prints one line.
    clock : Clock
        The demo's simulated clock: the time of a line that comes with none (the dome's
        shutter, the weather), as the line is printed.
    """

    def __init__(self, config, say, clock):
        self.config = config
        self.say = say
        self.clock = clock
        self.orders = {}          # ID -> the scheduler's last Status answer
        self.preprocessing = {}   # preprocessor order ID -> (observation ID, last Status)
        self._shown = {}          # ID -> history entries shown
        self._planned_once = set()
        self._shutter = None
        self.events = []

    def follow(self, order_id):
        self.orders.setdefault(order_id, None)

    def poll(self):
        """Query the daemons once and print what is new."""
        scheduler = connect(self.config, "scheduler")
        for order_id in self.orders:
            status = _status(scheduler, order_id)
            if status is None:
                continue
            self.orders[order_id] = status
            for entry in status["History"][self._shown.get(order_id, 0):]:
                self._history(order_id, entry)
            self._shown[order_id] = len(status["History"])
            handed = status.get("Progress", {}).get("Preprocessing ID")
            if handed and handed not in self.preprocessing:
                self.preprocessing[handed] = (order_id, None)
        self._dome()
        self._preprocessor()

    def _history(self, order_id, entry):
        reason = entry["Reason"]
        if reason.startswith(PLANNED):
            if order_id in self._planned_once:
                return
            self._planned_once.add(order_id)
        self.event(entry["Time"], f"{order_id:10} {entry['Status']:11} {reason}")

    def _dome(self):
        try:
            enclosure = connect(self.config, "dome").front_desk(
                {"WOType": "Status"})["Devices"]["Enclosure"]
        except (OSError, xmlrpc.client.Error, KeyError):
            return
        shutter = enclosure["Shutter"]
        if shutter != self._shutter and shutter in ("open", "closed"):
            why = f" (closed by: {enclosure['Closed By']})" if enclosure.get("Closed By") else ""
            self.event(None, f"{'dome':10} {shutter:11} shutter {shutter}{why}")
        self._shutter = shutter

    def _preprocessor(self):
        preprocessor = connect(self.config, "preprocessor")
        for job_id, (order_id, last) in list(self.preprocessing.items()):
            status = _status(preprocessor, job_id)
            if status is None or (last is not None and status["Status"] == last["Status"]
                                  and status["Message"] == last["Message"]):
                continue
            self.preprocessing[job_id] = (order_id, status)
            if status["Status"] in FINAL or last is None:
                self.event(status["Updated"], f"{order_id:10} {'calibrate':11} "
                                              f"{status['Status']}: {status['Message']}")

    def event(self, when, text):
        """Print *text* at *when* (an ISO time, ``None`` for now)."""
        stamp = when[11:16] if when else f"{self.clock.now():%H:%M}"
        line = f"{stamp}  {text}"
        self.events.append(line)
        self.say(line)

    def running(self):
        """The ID of the order under way at the telescope, or ``None``."""
        return next((order_id for order_id, status in self.orders.items()
                     if status is not None and status["Status"] == "running"), None)

    def ended(self, order_id):
        """Whether *order_id* is followed and has ended."""
        status = self.orders.get(order_id)
        return status is not None and status["Status"] in FINAL

    def busy(self):
        """Whether an order is under way at the telescope or a calibration job is unfinished
        (orders that wait for another night do not count)."""
        return (any(status is not None and status["Status"] in ACTIVE
                    for status in self.orders.values())
                or any(last is None or last["Status"] not in FINAL
                       for _, last in self.preprocessing.values()))

    def summary(self, refused):
        """Rows for the summary table (:data:`SUMMARY_COLUMNS`): every order, its priority,
        how it ended and why, its exposures taken (of those asked for), the calibration
        frames taken with them, and how many of its exposures were calibrated."""
        calibrated = {}
        for order_id, last in self.preprocessing.values():
            if last is not None:
                calibrated[order_id] = len(last.get("Progress", {}).get("Products", []))
        rows = []
        for order_id, status in self.orders.items():
            if status is None:
                continue
            progress = status.get("Progress", {})
            taken = progress.get("Frames Done", 0)
            asked = progress.get("Frames Total",
                                 status["Work Order"].get("Number of Exposures", 1))
            rows.append({"ID": order_id, "Priority": status["Priority"],
                         "State": status["Status"], "Exposures": f"{taken} of {asked}",
                         "Calibration Frames": len(progress.get("Files", [])) - taken,
                         "Calibrated": f"{calibrated.get(order_id, 0)} of {taken}",
                         "Why": status["Message"]})
        for order_id, message in refused.items():
            rows.append({"ID": order_id, "Priority": "", "State": "refused", "Exposures": "",
                         "Calibration Frames": "", "Calibrated": "", "Why": message})
        return rows


def _status(proxy, order_id):
    try:
        return status_of(proxy, order_id)
    except OSError:
        return None
