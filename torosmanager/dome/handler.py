"""The dome daemon: executes Dome orders, and keeps the instrument safe on its own.

Dome orders run one at a time in a worker: shutter, azimuth, park, following the telescope,
and the auxiliary outputs (``Blink01`` is the warning light; the outputs are kept as state and
logged). Safety (:class:`~torosmanager.dome.safety.SafetyGuard`) beats every order: an order to
open is refused while it is unsafe, and the dome closes by itself when conditions turn.
While the shutter is open, the slit follows the telescope
(:class:`~torosmanager.dome.follower.SlitFollower`). The dome starts closed after a restart, and
closes when its daemon stops.
"""

import logging
import threading
import time
import xmlrpc.client

from ..client import connect
from ..devices import DeviceError, ShutterState, wait_for
from ..devices.base import Interrupted
from ..devices.connections import Connections
from ..devices.factory import dome_devices
from ..handler import Handler, Workers
from ..journal import ACCEPTED, DONE, FAILED, QUEUED, RUNNING
from ..logs import Outage
from ..workorders import FaultCode, WorkOrderError, format_utc
from .follower import SlitFollower
from .outputs import BLINK_PREFIX, check_outputs, output_keys
from .safety import SafetyGuard
from .safety_memory import SafetyMemory

log = logging.getLogger(__name__)

#: Dome orders run one after another: the shutter and the rotation are one machine.
DOME_WORKERS = 1
#: How many of the newest Shutter orders are looked through, at the start, for the last that
#: ran (the few before it may have been refused as unsafe, or cancelled).
RECALLED_SHUTTER_ORDERS = 50
#: Shortest real pause between two polls of the dome (see the telescope's executor).
MIN_REAL_POLL_SECONDS = 0.005


class DomeHandler(Handler):
    """Execute Dome orders; answer the scheduler's Heartbeat; close when unsafe."""

    service = "dome"
    wotypes = ("Dome", "Heartbeat")

    def __init__(self, config, journal, clock):
        super().__init__(config, journal, clock)
        self.settings = config["Dome"]
        self.enclosure, self.safety_monitor = dome_devices(config, clock)
        # Connected at start; those whose server did not answer, again every Check Interval
        # in a thread of their own (the guard's checks must not wait for them).
        self.connections = Connections([("Enclosure", self.enclosure),
                                        ("Safety Monitor", self.safety_monitor)])
        self._stopping = threading.Event()
        # Not joined at stop: a connect under way may take the device's whole Timeout, and the
        # daemon must close the dome and exit within systemd's stop timeout.
        self._connector = threading.Thread(target=self._connect_later, name="connections",
                                           daemon=True)
        self.guard = SafetyGuard(self, memory=SafetyMemory(journal.path))
        self.workers = Workers("dome", DOME_WORKERS)
        self.closed_by = ""
        #: The Dome order that closed the shutter last (``ID``, ``User``, ``At``), until an
        #: order opens it: the scheduler keeps a dome closed so closed for the night. Read
        #: back from the journal, so that a restart (a power cut) does not end that hold.
        self.closed_by_order = self._last_close_order()
        # The guard and the orders both move the shutter, the follower turns an open dome:
        # one at a time.
        self._motion = threading.Lock()
        self.follower = SlitFollower(config, clock, self.enclosure, self._motion)
        #: When (time.monotonic) the shutter was last told to close and has not closed since
        #: (``None``: closed, or not told), for a close that stalls (see close_for_safety).
        self._closing_since = None
        self._close_failing = Outage(log, logging.CRITICAL)  # said once, not at every check
        self._shutter_unread = Outage(log, logging.ERROR)
        # A Park the telescope daemon did not take (away, restarting): its reason, told again
        # at every check while the shutter is closed, in a thread of its own (set while one
        # runs), said once.
        self._park_owed = None
        self._park_resending = threading.Event()
        self._park_failing = Outage(log, logging.ERROR)
        self._cancelled_opening = set()  # running Open orders cancelled: they stop waiting

    # --- the front desk ----------------------------------------------------------------

    def check(self, order):
        if order["WOType"] != "Dome":
            return
        check_outputs(order, self.settings["Auxiliary Outputs"])
        if order.get("Shutter") == "Open":
            may_open, why_not = self.guard.may_open()
            if not may_open:
                raise WorkOrderError(f"'Shutter': the dome refuses to open now: {why_not}",
                                     FaultCode.UNSAFE)

    def signal(self, order):
        self.guard.heartbeat(order.get("User", "unknown"))
        return {"Status": "received", "Message": "heartbeat recorded",
                "Service": self.service, "Time": format_utc(self.clock.now())}

    def queued_reason(self, order):
        return "queued for the dome"

    def cancel_refusal(self, record):
        if record.state == RUNNING and record.work_order.get("Shutter") == "Close":
            return ("the shutter is closing, which is always safe and is not stopped; once it "
                    "is closed, a Dome order with 'Shutter': 'Open' opens it")
        return None

    def cancelled(self, record, previous_state):
        # An Open cancelled while the shutter moves: its worker closes the shutter again.
        if previous_state == RUNNING and record.work_order.get("Shutter") == "Open":
            self._cancelled_opening.add(record.id)

    def accepted(self, record):
        self.workers.submit(self.execute, record.id)

    def unrecorded(self, order):
        # Closing is always safe: it must not wait for a disk to have room again.
        if order["WOType"] != "Dome" or order.get("Shutter") != "Close":
            return None
        # In a thread of its own: the front desk does not wait for the devices.
        threading.Thread(target=self.close_for_safety, name="close",
                         args=(f"a Dome order from {order['User']} that the journal cannot "
                               "keep",)).start()
        return "the dome is closing"

    def devices(self):
        report = {"Safety": self.guard.report(), "Following Telescope": self.follower.following,
                  "Auxiliary Outputs": self.settings["Auxiliary Outputs"],
                  "Follow Tolerance": self.settings["Follow Tolerance"],
                  "Turn Lag": self.settings["Turn Lag"],
                  "Geometry": self.follower.geometry.report()}
        try:
            state = self.enclosure.state()
            report["Enclosure"] = {"Shutter": state.shutter.value, "Slewing": state.slewing,
                                   "Parked": state.parked, "Closed By": self.closed_by}
            if self.closed_by_order is not None:
                report["Enclosure"]["Closed By Order"] = dict(self.closed_by_order)
            report["Outputs"] = {f"{number:02d}": state.outputs.get(number, False)
                                 for number in range(1, self.settings["Auxiliary Outputs"] + 1)}
            if state.azimuth is not None:
                report["Enclosure"]["Azimuth"] = round(state.azimuth, 3)
        except DeviceError as error:
            report["Enclosure"] = {"Shutter": "unknown", "Error": str(error)}
        try:
            report["Safety Monitor"] = self.safety_monitor.describe()
        except DeviceError as error:
            report["Safety Monitor"] = {"Connected": False, "Error": str(error)}
        self.connections.add_errors(report)
        return report

    # --- executing orders ---------------------------------------------------------------

    def execute(self, order_id):
        """Carry out one Dome order's actions, in the order shutter, follow, azimuth, park,
        outputs (in a worker): an order that turns the dome and stops following stops
        following first, so that the follower does not turn it back."""
        with self.failing_on_error(order_id, "moving the dome"):
            self._execute(order_id)

    def _execute(self, order_id):
        record = self.journal.get(order_id)
        if record is None or record.state != QUEUED:
            return
        order = record.work_order
        if self.transition(order_id, RUNNING, "moving the dome", only_from={QUEUED}) is None:
            return
        done = []
        try:
            if "Shutter" in order:
                done.append(self._shutter(order["Shutter"], order_id, order["User"]))
            if "Follow Telescope" in order:
                self.follower.following = order["Follow Telescope"]
                done.append("following the telescope" if self.follower.following
                            else "no longer following the telescope")
            if "Azimuth" in order:
                done.append(self._rotate(order["Azimuth"]))
            if order.get("Park"):
                done.append(self._park())
            if ("Azimuth" in order or order.get("Park")) and self._turned_back():
                done.append("the dome follows the telescope and turns back to it while the "
                            "shutter is open ('Follow Telescope': false keeps it here)")
            for key in output_keys(order):
                done.append(self._output(key[len(BLINK_PREFIX):], order[key], order_id))
        except (DeviceError, Interrupted) as error:
            self.transition(order_id, FAILED, f"{error}", only_from={RUNNING})
            return
        finally:
            self._cancelled_opening.discard(order_id)
        # ('Park': false, alone, asks for nothing.)
        self.transition(order_id, DONE, "; ".join(done) or "nothing asked: 'Park' is false",
                        only_from={RUNNING})

    def _shutter(self, action, order_id, user):
        timeout = self.clock.real_seconds(self.settings["Shutter Timeout"])
        if action == "Open":
            with self._motion:
                if order_id in self._cancelled_opening:
                    raise Interrupted("cancelled before the shutter opened")
                may_open, why_not = self.guard.may_open()
                if not may_open:
                    raise DeviceError(f"refused to open: {why_not}")
                self.enclosure.start_open()
                self.closed_by, self.closed_by_order = "", None
                self._closing_since = None

            def opened():
                if order_id in self._cancelled_opening:
                    raise Interrupted("cancelled while the shutter opened: it closes again")
                if not self.guard.may_open()[0]:
                    raise DeviceError(f"closed for safety while opening: {self.closed_by}")
                shutter = self.enclosure.state().shutter
                if shutter == ShutterState.ERROR:
                    raise DeviceError("the shutter reports an error while opening")
                return shutter == ShutterState.OPEN

            try:
                wait_for(opened, timeout, "the shutter to open", self._poll(),
                         stop=self.workers.stopping)
            except Interrupted:
                if order_id in self._cancelled_opening:
                    self.close_for_safety(f"Dome order {order_id} cancelled while the shutter "
                                          "opened")
                raise
            return "shutter open"
        now = format_utc(self.clock.now())
        with self._motion:
            was = self.enclosure.state().shutter
            self.enclosure.start_close()
            self._closing_since = self._closing_since or time.monotonic()
            self.closed_by_order = {"ID": order_id, "User": user, "At": now}
            if was != ShutterState.CLOSED:
                self.closed_by = f"Dome order {order_id} from {user}, at {now}"
        if was != ShutterState.CLOSED:
            # As when it closes for safety: no frame is taken behind a closing shutter.
            self._park_telescope(f"Dome order {order_id} from {user}")
        wait_for(lambda: self.enclosure.state().shutter == ShutterState.CLOSED, timeout,
                 "the shutter to close", self._poll(), stop=self.workers.stopping)
        with self._motion:
            self._closing_since = None
        return "shutter closed"

    def _last_close_order(self):
        """The Dome order that closed the shutter and that no order opened since, from the
        journal: the newest Shutter order that ran (done, or cut short: what someone asked
        for all the same), if it was a Close, else ``None``. Orders still queued run after
        the restart and change it then."""
        for record in self.journal.newest_with("Dome", "Shutter", RECALLED_SHUTTER_ORDERS):
            if record.state not in (DONE, RUNNING, FAILED):
                continue
            order = record.work_order
            if order["Shutter"] != "Close":
                return None
            started = [entry["Time"] for entry in self.journal.history(record.id)
                       if entry["Status"] == RUNNING]
            return {"ID": record.id, "User": order["User"],
                    "At": started[0] if started else record.updated}
        return None

    def _turned_back(self):
        """Whether the slit follower will turn the dome back to the telescope."""
        return self.follower.following and \
            self.enclosure.state().shutter == ShutterState.OPEN

    def _rotate(self, azimuth):
        with self._motion:  # not while the follower starts a turn of its own
            self.enclosure.start_slew(azimuth)
        wait_for(lambda: not self.enclosure.state().slewing,
                 self.clock.real_seconds(self.settings["Shutter Timeout"]),
                 f"the dome to reach azimuth {azimuth:g}°", self._poll(),
                 stop=self.workers.stopping)
        return f"at azimuth {azimuth:g}°"

    def _park(self):
        with self._motion:
            self.enclosure.start_park()
        wait_for(lambda: self.enclosure.state().parked,
                 self.clock.real_seconds(self.settings["Shutter Timeout"]), "the dome to park",
                 self._poll(), stop=self.workers.stopping)
        return "parked"

    def _output(self, number, on, order_id):
        name = "warning light" if number == "01" else f"auxiliary output {number}"
        self.enclosure.set_output(int(number), on)
        log.info("[WO %s] %s (output %s) %s", order_id, name, number,
                 "blinking" if on else "off")
        return f"{name} {'blinking' if on else 'off'}"

    def _poll(self):
        return max(self.clock.real_seconds(self.settings["Poll Interval"]),
                   MIN_REAL_POLL_SECONDS)

    # --- safety -------------------------------------------------------------------------

    def close_for_safety(self, reason):
        """Close the shutter (unless closed, or closing for less than Shutter Timeout) and tell
        the telescope to park.

        A shutter whose state cannot be read is told to close all the same (closing is always
        safe), once, as one closing is. One still closing, or unread, Shutter Timeout after it
        was told to is told again, said as critical: a close that stalls must not leave the
        dome open unsaid. A telescope daemon that did not take its Park (away, restarting) is
        told again (:meth:`keep_telescope_parked`).
        """
        if self._start_closing(reason):
            self._park_telescope(reason)

    def keep_telescope_parked(self):
        """At each safety check: a Park the telescope daemon did not take, after a close for
        safety or by a Dome order, is sent again while the shutter is closed, in a thread of
        its own (the check does not wait for a daemon away: Peer Timeout), until it answers."""
        reason = self._park_owed
        if reason is None or self._park_resending.is_set():
            return
        try:
            closed = self.enclosure.state().shutter == ShutterState.CLOSED
        except DeviceError:     # unread: asked again at the next check
            return
        if not closed:
            return
        self._park_resending.set()

        def resend():
            try:
                self._park_telescope(reason)
            finally:
                self._park_resending.clear()

        threading.Thread(target=resend, name="park-telescope", daemon=True).start()

    def _start_closing(self, reason):
        """Tell the shutter to close, as :meth:`close_for_safety` says; whether it was told."""
        with self._motion:
            try:
                shutter = self.enclosure.state().shutter
            except DeviceError as error:
                shutter = None
                self._shutter_unread.failed("cannot read the shutter (%s); closing it all the "
                                            "same: %s", reason, error)
            else:
                self._shutter_unread.answered("the shutter is read again: %s", shutter.value)
            if shutter == ShutterState.CLOSED:
                self._closing_since = None
                return False
            told = shutter == ShutterState.CLOSING or (shutter is None
                                                       and self._closing_since is not None)
            if told and not self._close_stalled(reason):
                return False
            if not told and not self._close_failing.ongoing:   # (a failing close: said once)
                log.warning("closing the dome: %s", reason)
            try:
                self.enclosure.start_close()
            except DeviceError as error:
                self._close_failing.failed("cannot close the dome (%s): %s (tried again at "
                                           "every check)", reason, error)
                return False
            self._close_failing.answered("the dome was told to close: %s", reason)
            self._closing_since = time.monotonic()
            self.closed_by = f"{reason}, at {format_utc(self.clock.now())}"
            return True

    def _close_stalled(self, reason):
        """Whether the shutter, closing (or unread since it was told to), has been for longer
        than Shutter Timeout (said as critical); timed from now if this daemon did not start
        the close."""
        now = time.monotonic()
        if self._closing_since is None:
            self._closing_since = now
        waited = now - self._closing_since
        if waited < self.clock.real_seconds(self.settings["Shutter Timeout"]):
            return False
        log.critical("the shutter is still not closed %.0f s after it was told to close "
                     "(Dome → Shutter Timeout: %g s): telling it to close again (%s)", waited,
                     self.settings["Shutter Timeout"], reason)
        return True

    def _park_telescope(self, reason):
        """Send the telescope daemon a Park; owed again if it did not answer (a refusal is an
        answer: said, not sent again)."""
        try:
            connect(self.config, "telescope").front_desk(
                {"WOType": "Park", "User": "dome", "Reason": f"dome closing: {reason}"})
        except xmlrpc.client.Fault as refusal:
            self._park_owed = None
            self._park_failing.answered("the telescope daemon answers again")
            log.error("the telescope refused to park: %s", refusal.faultString)
            return
        except (OSError, xmlrpc.client.Error) as error:
            self._park_owed = reason
            self._park_failing.failed("could not tell the telescope to park: %s (told again "
                                      "at every check while the dome is closed)", error)
            return
        self._park_owed = None
        self._park_failing.answered("the telescope daemon answers again: told to park")

    # --- life cycle ---------------------------------------------------------------------

    def start(self):
        if self.connections.connect_missing():
            self._connector.start()
        self.close_for_safety("the dome daemon started; it starts closed")
        super().start()
        self.guard.start()
        self.follower.start()

    def _connect_later(self):
        """Connect, every Check Interval, the devices that did not answer at start, until
        every one has (the guard's next check reads the safety monitor then)."""
        interval = self.clock.real_seconds(self.settings["Check Interval"])
        while not self._stopping.wait(interval):
            if not self.connections.connect_missing():
                return

    def resume(self, record):
        if record.state in (ACCEPTED, QUEUED):
            self.transition(record.id, QUEUED, "queued after a restart")
            self.workers.submit(self.execute, record.id)
        elif record.state == RUNNING:
            self.transition(record.id, FAILED, "the dome daemon stopped while this order ran; "
                            "it starts closed")

    def stop(self):
        super().stop()
        self._stopping.set()
        self.workers.stopping.set()  # an order waiting on the dome ends its wait now
        self.follower.stop()
        self.guard.stop()
        # Before waiting for the workers: a slow Open must not keep the dome open until
        # systemd's stop timeout kills the daemon.
        self.close_for_safety("the dome daemon is stopping")
        self.workers.stop()
        for device in (self.enclosure, self.safety_monitor):
            device.disconnect()
