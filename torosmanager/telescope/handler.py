"""The telescope daemon: checks Observation orders against this telescope, and runs them.

An order at or above ``Priorities → ToO Threshold`` (a target of opportunity) interrupts an
observation of lower priority under way; the interrupted order ends ``interrupted``, for the
scheduler to try again. An interrupted or failed order sent again unchanged (the scheduler's
retry) is queued again, and continues where it stopped: it takes only the frames still missing.

Refused at the front desk, with the reason: another ``Telescope Name``, a filter the wheel does
not have, an exposure time or count beyond the configured limits, a target that never rises
above ``Observing → Minimum Altitude`` during tonight's dark hours (the Sun below
``Observing → Sun Altitude Limit``, when the dome may be open), a ``Not After`` passed and a
``Not Before`` after tonight. An order with a ``Not Before`` later tonight is taken up
``Telescope → Not Before Lead`` ahead of it (the scheduler sends one a slew ahead of its
start), and waits pointed; until then it waits in the queue, letting the orders ready now run
(a target of opportunity interrupts a lesser one once taken up). One whose ``Not After``
passes while it waits in the queue ends failed, expired.
"""

import html
import logging
import os

from ..devices import DeviceError
from ..devices.connections import Connections
from ..devices.factory import telescope_devices
from ..hand_offs import HAND_OFF, HANDING, PENDING, PendingHandOffs
from ..handler import Handler
from ..journal import ACCEPTED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING
from ..night import Night, reached_text
from ..workorders import WorkOrderError, check_not_ended, format_utc, parse_utc, refuse
from .executor import Executor
from .limits import check as check_limits, limits_of
from .preview import preview_png

log = logging.getLogger(__name__)

#: Width, pixels, the status page shows the latest frame at.
PREVIEW_WIDTH = 512
#: States of an Observation that a resubmission tries again (the scheduler's retries).
RETRIED_STATES = frozenset({INTERRUPTED, FAILED})


class TelescopeHandler(Handler):
    """Accept Observation orders meant for this telescope and execute them; park on demand."""

    service = "telescope"
    wotypes = ("Observation", "Park")
    transforms_coordinates = True

    def __init__(self, config, journal, clock):
        super().__init__(config, journal, clock)
        self.settings = config["Telescope"]
        # The focuser is None without a motorised one.
        self.mount, self.camera, self.filter_wheel, self.focuser = telescope_devices(config,
                                                                                   clock)
        self.night = Night(config["Site"])
        self.filters = None  # the wheel's names, once it has answered
        # Connected at start; those whose server did not answer, again before each order.
        self.connections = Connections(self._devices_by_label())
        self.executor = Executor(self)
        self.hand_offs = PendingHandOffs(self)

    # --- the front desk's checks -------------------------------------------------------

    def check(self, order):
        if order["WOType"] != "Observation":
            return
        check_limits(order, self.limits())
        order.setdefault("Telescope Name", self.settings["Name"])
        self._check_visible(order)
        self.executor.require_room()

    def limits(self):
        """What this telescope takes (published in the health Status for the scheduler)."""
        return limits_of(self.settings, self.filters)

    def _check_visible(self, order):
        sun_limit = self.config["Observing"]["Sun Altitude Limit"]
        night = self.night.window(self.clock.now(), sun_limit)
        if night is None:
            raise WorkOrderError(f"no night (Sun below {sun_limit:g}°) at the site in the "
                                 "coming day and a half; nothing can be observed")
        self._check_window(order, night)
        highest, when = self.night.max_altitude(night, order["RA"], order["Dec"])
        limit = self.config["Observing"]["Minimum Altitude"]
        if highest < limit:
            raise WorkOrderError(
                f"'RA', 'Dec': received {order['RA']:.4f}, {order['Dec']:+.4f}; allowed: a target "
                f"that rises above {limit:g}° (Observing → Minimum Altitude) tonight, "
                f"{night.start:%Y-%m-%d %H:%M}–{night.end:%H:%M} UTC; this one reaches at most "
                f"{reached_text(highest)} (at {when:%H:%M} UTC)")

    def _check_window(self, order, night):
        """Refuse an order whose ``Not After`` has passed, or whose ``Not Before`` is after
        tonight: the telescope runs what it is sent tonight (it waits for a Not Before later
        tonight); the scheduler keeps orders for later nights."""
        check_not_ended(order, self.clock.now())
        not_before = order.get("Not Before")
        if not_before is not None and parse_utc(not_before) >= night.end:
            raise refuse("Not Before", not_before, f"an instant before tonight's end, "
                         f"{format_utc(night.end)}: the telescope observes tonight; send "
                         "orders for a later night to the scheduler")

    # --- work ---------------------------------------------------------------------------

    def queued_reason(self, order):
        return None if order["WOType"] == "Park" else "queued for the telescope"

    def accepted(self, record):
        if record.wotype == "Park":
            self.transition(record.id, RUNNING, "parking: " + record.work_order["Reason"])
            self.executor.park(record.work_order["Reason"], record.id,
                               record.work_order.get("User"))
            return
        self._run(record)

    def unrecorded(self, order):
        # The dome closing for safety must not wait for a disk to have room again.
        if order["WOType"] != "Park":
            return None
        log.error("parking though the journal cannot keep the Park order: %s",
                  order["Reason"])
        self.executor.park(order["Reason"], user=order.get("User"))
        return "the telescope is parking"

    def resubmitted(self, record):
        if record.wotype == "Observation" and record.state in RETRIED_STATES:
            self.executor.require_room()  # (refused now, as a new order would be)
            frames = record.progress.get("Files", [])
            self.transition(record.id, QUEUED, f"queued again: resubmitted after it was "
                            f"{record.state}; the {len(frames)} frame(s) taken before are "
                            "kept", only_from=RETRIED_STATES)
            self._run(self.journal.get(record.id))

    def _run(self, record):
        """Queue an Observation; a target of opportunity interrupts a lesser one under way."""
        self.executor.enqueue(record)
        if record.priority >= self.config["Priorities"]["ToO Threshold"]:
            self.executor.preempt(record)

    def cancel_refusal(self, record):
        if record.wotype == "Park":
            return ("a mount is not stopped halfway to its park position (the Park ends in a "
                    "moment; then send an Observation to point it elsewhere)")
        if record.state == RUNNING and record.progress.get("Step", "").startswith(HANDING):
            # Its frames are all taken, and may be at the preprocessor already.
            return ("every frame is taken and being handed to the preprocessor; to stop their "
                    "calibration, cancel its Preprocessing order there (this order's "
                    "Preprocessing ID, once it is done)")
        return None

    def cancelled(self, record, previous_state):
        self.executor.cancel(record.id, f"cancelled (was {previous_state})")

    def devices(self):
        report = {}
        for label, device in self._devices_by_label():
            try:
                report[label] = device.describe()
            except DeviceError as error:
                report[label] = {"Connected": False, "Error": str(error)}
        self.connections.add_errors(report)
        # A mount that just failed is not asked again in the same Status (another Timeout).
        mount_error = report["Mount"].get("Error")
        report["Pointing"] = {"Error": mount_error} if mount_error else self._pointing()
        report["Executor"] = self.executor.current()
        return report

    def _pointing(self):
        """Where the mount points, for the health Status (``Error`` if it cannot say)."""
        try:
            pointing = self.mount.state()
        except DeviceError as error:
            return {"Error": str(error)}
        report = {"RA": round(pointing.ra, 6), "Dec": round(pointing.dec, 6),
                  "Altitude": round(pointing.altitude, 4), "Azimuth": round(pointing.azimuth, 4),
                  "Slewing": pointing.slewing, "Parked": pointing.parked,
                  "Tracking": pointing.tracking}
        if pointing.pier_side is not None:
            report["Pier Side"] = pointing.pier_side
        return report

    def _devices_by_label(self):
        labelled = [("Mount", self.mount), ("Camera", self.camera),
                    ("Filter Wheel", self.filter_wheel)]
        return labelled + ([("Focuser", self.focuser)] if self.focuser is not None else [])

    def health(self):
        report = {"Limits": self.limits(), "Data Disk": self.executor.data_disk(),
                  "Hand-offs Pending": self.hand_offs.count()}
        if self.focuser is not None:
            report["Focus"] = self.executor.focus_report()
        return report

    def page_sections(self):
        disk = self.executor.data_disk()
        if "Unwritable" in disk:
            room = f"; {disk['Unwritable']}"
        elif disk["Frames Left"] is None:
            room = ""
        else:
            room = f", room for {disk['Frames Left']:,} frame(s) of {disk['Frame MB']:,.1f} MB"
        sections = [("Data disk", f"<p id='data-disk'>{html.escape(disk['Directory'])}: "
                                  f"{disk['Free MB']:,.1f} MB free{html.escape(room)}</p>")]
        path = self.executor.latest_frame
        if path is None:
            return sections + [("Latest frame", "<p>No frame yet.</p>")]
        from astropy.io import fits

        from ..pages import header_table
        name = html.escape(os.path.basename(path))
        try:
            header = fits.getheader(path)
        except OSError as error:    # moved, archived or cut short since: the page is served
            return sections + [("Latest frame", f"<p id='latest-frame'>{name}: no longer "
                                                f"readable ({html.escape(str(error))})</p>")]
        return sections + [("Latest frame", f"<p id='latest-frame'>{name}</p>"
                                            f"<img id='preview' src='/latest.png' alt='{name}' "
                                            f"width='{PREVIEW_WIDTH}'>"
                                            + header_table(header))]

    def page_asset(self, path):
        if path == "/latest.png" and self.executor.latest_frame is not None:
            try:
                return "image/png", preview_png(self.executor.latest_frame)
            except (OSError, ValueError):   # gone, or its data cut short: not found
                return None
        return None

    # --- life cycle ---------------------------------------------------------------------

    def connect_devices(self, only=None):
        """Connect the devices not connected yet, or *only* that one (see
        :meth:`Connections.connect_missing`); read the filter names once the wheel has
        answered. For each device still unconnected, what keeps it from connecting."""
        failures = self.connections.connect_missing(only)
        if self.filters is None and self.connections.connected(self.filter_wheel):
            try:
                self.filters = list(self.filter_wheel.state().names)
            except DeviceError as error:
                log.error("cannot read the filter names: %s (filters are not checked)", error)
        return failures

    def start(self):
        self.connect_devices()
        self.executor.check_data_directory()
        self.executor.prepare_focus()
        self._check_the_focuser()
        if self.executor.cool():
            log.info("cooling the CCD to %g °C (Telescope → Camera → Cooling Setpoint)",
                     self.config["Telescope"]["Camera"]["Cooling Setpoint"])
        # Tonight's ephemeris takes about a second to compute: do it now, not on the front desk.
        self.night.window(self.clock.now(), self.config["Observing"]["Sun Altitude Limit"])
        super().start()
        self.executor.start()
        self.hand_offs.start()

    def _check_the_focuser(self):
        """Say in the log what the focus model cannot do with this focuser."""
        model = self.executor.focus_model
        if self.focuser is None or model.best_position is None:
            return
        try:
            state = self.focuser.state()
        except DeviceError:
            return  # said when it did not connect
        if model.reference_temperature is not None and state.temperature is None:
            log.warning("the focuser reads no temperature: Telescope → Focuser → Temperature "
                        "Coefficient is not applied")
        log.info("focus model: Best Position %d, the focuser at %d of 0–%d, %s",
                 model.best_position, state.position, state.maximum,
                 "no temperature" if state.temperature is None else f"{state.temperature:g} °C")

    def resume(self, record):
        if record.wotype == "Park":  # parking is always safe to do again
            self.transition(record.id, RUNNING, "parking again after a restart")
            self.executor.park(record.work_order.get("Reason", "requested"), record.id)
        elif record.state == RUNNING and record.progress.get("Step", "").startswith(HANDING):
            # Every frame was taken: the order is done, its frames handed over from now on.
            files = record.progress["Files"]
            self.transition(record.id, DONE, f"{len(files)} frame(s) written; the telescope "
                            "daemon stopped while handing them to the preprocessor: they are "
                            "handed to it as soon as it takes them", only_from={RUNNING},
                            progress=dict(record.progress, Step="done", **{HAND_OFF: PENDING}))
        elif record.state == RUNNING:
            self.transition(record.id, INTERRUPTED,
                            "the telescope daemon stopped during the observation")
        elif record.state in (ACCEPTED, QUEUED):
            self.transition(record.id, QUEUED, "queued after a restart")
            self._run(self.journal.get(record.id))

    def stop(self):
        super().stop()
        self.executor.stop()
        self.hand_offs.stop()
        for _, device in reversed(self._devices_by_label()):
            device.disconnect()
