"""The telescope's executor: Observation orders one at a time, and parking on demand.

For each order, in a worker thread: ask the dome daemon whether the dome is open and safe,
unpark, slew, set the filter and the focus (:mod:`.focus`), take the exposures, each once a
dome that follows the telescope has its slit on it and the focus is where the tube's
temperature wants it (and, when asked, bias, dark and flat frames in the numbers configured),
write each frame as a FITS file, and with ``Output: Analysis`` hand the frames to the
preprocessor.
Every step is journaled as the order's progress, so ``Status`` shows it.

An order run again (the scheduler resubmits it after an interruption or a failure, or this
daemon was restarted under it) continues from that progress: it keeps every file already
written and takes only the light and calibration frames still missing; the preprocessor gets
all of the order's frames.

An order is stopped from outside by Cancel (it ends ``cancelled``), by a ``Park`` order from the
dome closing for safety, or by the daemon stopping (it ends ``interrupted``, to be tried again).
Either way the slew or exposure is aborted at once, and the mount parks if nothing else waits.
"""

import dataclasses
import logging
import os
import threading
import xmlrpc.client
from datetime import timedelta

from ..client import connect
from ..devices import DeviceError, FrameType, wait_for
from ..devices.base import Interrupted, NotCapable, TimedOut
from ..devices.dome import azimuth_separation
from ..devices.mount import LOOKING_EAST, separation
from ..dome.geometry import DomeGeometry
from ..journal import CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING
from ..logs import Outage
from ..night import airmass, local_night_date
from ..order_queue import OrderQueue
from ..workorders import parse_utc
from . import meridian
from .autofocus import Autofocus, AutofocusFailed, model_after
from .fits import Exposure, night_directory, remove_partial_frames, write_frame
from .focus import FocusModel
from .focus_memory import FocusMemory, LastRun
from ..hand_offs import HANDING, prepare_calibration
from .room import (NoRoom, Unwritable, describe, frame_bytes, not_written, require_room,
                   unwritable)
from .wcs import SkyOrientation

log = logging.getLogger(__name__)

#: Shortest real pause between two polls of a device: a fast simulated clock must not turn
#: polling into a busy loop.
MIN_REAL_POLL_SECONDS = 0.005
#: The Progress key of the calibration frames an order has taken: a count by ``IMAGETYP``.
CALIBRATION_DONE = "Calibration Done"
#: Poll intervals past an order's Not Before within which the wait for it must have seen it.
NOT_BEFORE_SLACK = 4


#: °C the CCD's temperature moves before a wait for it is journaled again.
COOLING_STEP_SHOWN = 1.0


class DomeNotReady(Exception):
    """The dome is closed, unsafe, or its daemon does not answer."""


#: ``Interrupted By`` of an order the dome stopped (its Park as it closes; closed or unsafe
#: between frames): no fault of the order's, so the scheduler does not count it as a try, as
#: for a target of opportunity's turn.
BY_THE_DOME = "the dome"
#: The ``User`` of the Park orders the dome daemon sends as it closes.
DOME_USER = "dome"
#: ``Interrupted By`` of an order under way when this daemon was stopped (systemctl stop or
#: restart, an upgrade): no try either. One under way when it died (kill -9, a crash) is left
#: running and found so at the next start: that is a try, so that an order that crashes the
#: daemon is not tried for ever.
BY_A_STOP = "a stop of the telescope daemon"


class TargetLow(Exception):
    """The target is below ``Observing → Minimum Altitude`` now."""


@dataclasses.dataclass(frozen=True)
class PendingPark:
    """The worker's turn to try again to park a mount that could not be parked (see
    :meth:`Executor._keep_park_pending`)."""

    reason: str


class Job:
    """One order under way, and how to stop it."""

    def __init__(self, record):
        self.record = record
        self.stop = threading.Event()
        self.reason = None
        self.final_state = INTERRUPTED
        self.interrupted_by = None
        #: The CCD did not reach its setpoint within Cooling Timeout: not waited for again.
        self.ccd_waited_out = False
        #: The order's Not After came before its next frame could end: no more frames.
        self.window_ended = False

    def interrupt(self, reason, final_state=INTERRUPTED, by=None):
        """Stop the job; it ends in *final_state* with *reason* (*by*: the order that took
        its place, :data:`BY_THE_DOME` or :data:`BY_A_STOP`)."""
        if not self.stop.is_set():
            self.reason, self.final_state, self.interrupted_by = reason, final_state, by
            self.stop.set()


class Executor:
    """Runs a telescope daemon's Observation and Park orders.

    Parameters
    ----------
    handler : TelescopeHandler
        Gives the configuration, the clock, the journal and the devices.
    """

    def __init__(self, handler):
        self.handler = handler
        self.config = handler.config
        self.settings = handler.config["Telescope"]
        self.clock = handler.clock
        self.mount, self.camera, self.filter_wheel = (handler.mount, handler.camera,
                                                      handler.filter_wheel)
        self.focuser = handler.focuser  # None: no motorised focuser
        self.focus_model = FocusModel.from_settings(self.settings["Focuser"])
        self.autofocus = Autofocus(self.settings["Focuser"])
        # The last focus run, kept over a restart (once the devices are connected:
        # prepare_focus); whether the model's focus came from a run.
        self.focus_memory = None
        self._focus_found = False
        self.orientation = SkyOrientation.from_config(self.settings["Camera"])
        self._focuser_outage = Outage(log)  # a focuser not answering for a frame's header
        self.orders = OrderQueue(handler.journal, Job)
        self._park_requests = []
        # Why the mount is to be parked, while it could not be (it did not answer), and the
        # last try's error; tried again every Park Retry Interval (under the queue's lock).
        self._park_pending = None
        self._park_error = None
        self._park_retry_due = False
        self._park_timer = None
        self._preemptions = []  # timers of targets of opportunity with a later Not Before
        #: The path of the last frame written, for the status page.
        self.latest_frame = None
        self._cannot_cool = False  # the camera said it cannot set its temperature
        self._unwritable = None  # why the data directory cannot be written, if it cannot
        self._refused_in = None  # the directory whose write failed, looked at again (raw/)
        self._unwritable_lock = threading.Lock()  # (looked at again by the front desk too)
        self._thread = threading.Thread(target=self._run, name="telescope-executor")

    # --- called from the front desk ------------------------------------------------------

    def start(self):
        """Start the worker thread."""
        self._thread.start()

    def enqueue(self, record):
        """Queue an Observation; higher priority first, then first come, first served."""
        self.orders.put(record)

    def cancel(self, order_id, reason):
        """Stop *order_id* if it is under way (a queued one is skipped when its turn comes)."""
        job = self.orders.current_if(order_id)
        if job is not None:
            job.interrupt(reason, CANCELLED)

    def preempt(self, record):
        """Interrupt the observation under way if *record* (a target of opportunity) outranks
        it; *record* is next, being first in the queue. One with a later ``Not Before`` does
        so when it is taken up (see :meth:`_not_yet`), not before."""
        wait = self._not_yet(record)
        if wait > 0:
            timer = threading.Timer(wait, self._preempt_if_queued, (record.id,))
            timer.daemon = True
            self._preemptions.append(timer)
            timer.start()
            return
        job = self.orders.current
        if job is not None and job.record.priority < record.priority:
            job.interrupt(f"interrupted by target of opportunity {record.id} "
                          f"(priority {record.priority:g})", by=record.id)

    def _preempt_if_queued(self, order_id):
        record = self.handler.journal.get(order_id)
        if record is not None and record.state == QUEUED:
            self.preempt(record)

    def park(self, reason, order_id=None, user=None):
        """Interrupt the observation under way and park: a ``Park`` order (*order_id*, from
        *user*), or one its journal could not keep (``None``: the parking is only logged)."""
        which = f" (Park order {order_id})" if order_id else ""
        with self.orders.condition:
            job = self.orders.current
            if job is not None:
                job.interrupt(f"{reason}{which}",
                              by=BY_THE_DOME if user == DOME_USER else None)
            self._park_requests.append((reason, order_id))
            self.orders.condition.notify()

    def stop(self):
        """Interrupt the order under way, stop the worker, and start parking the mount."""
        for timer in self._preemptions:
            timer.cancel()
        with self.orders.condition:
            if self._park_timer is not None:
                self._park_timer.cancel()
        job = self.orders.stop()
        if job is not None:
            job.interrupt("the telescope daemon stopped during the observation",
                          by=BY_A_STOP)
        if self._thread.is_alive():
            self._thread.join()
        if self.focus_memory is not None:
            self.focus_memory.close()

    def current(self):
        """What the executor is doing, for the health report; ``Park Pending``: why the
        mount is to be parked and the last try's error, while it could not be parked."""
        report = self.orders.describe()
        pending = self.park_pending()
        if pending is not None:
            report["Park Pending"] = pending
        return report

    def park_pending(self):
        """Why the mount is still to be parked, with the last try's error (tried again every
        ``Telescope → Park Retry Interval``); ``None`` when no park is pending."""
        with self.orders.condition:
            if self._park_pending is None:
                return None
            return f"{self._park_pending} (last try: {self._park_error})"

    # --- the worker ---------------------------------------------------------------------

    def _run(self):
        while True:
            work = self.orders.take(first=self._next_park, not_yet=self._not_yet)
            if work is None:
                break
            try:
                if isinstance(work, Job):
                    with self.handler.failing_on_error(work.record.id, "observing",
                                                       unjournaled=INTERRUPTED):
                        self._observe(work)
                elif isinstance(work, PendingPark):
                    self._retry_park(work.reason)
                else:
                    self._park_for(*work)
            finally:
                if isinstance(work, Job):
                    self.orders.finished()
        self._start_park_quietly("the telescope daemon is stopping", retry=False)

    def _next_park(self):
        # Called by the queue with its lock held: a Park goes before any observation; a
        # pending park's try, when due, before an observation ready now would take the mount.
        if self._park_requests:
            return self._park_requests.pop(0)
        if self._park_retry_due and self._park_pending is not None \
                and not self.orders.waiting(ready=True):
            self._park_retry_due = False
            return PendingPark(self._park_pending)
        return None

    def _not_yet(self, record):
        """Real seconds before *record* is taken up: ``Not Before Lead`` before its ``Not
        Before`` (then it slews, and waits pointed). Until then the orders ready now run, and
        an idle mount parks."""
        start = record.work_order.get("Not Before")
        if start is None:
            return 0
        seconds = (parse_utc(start) - self.clock.now()).total_seconds() \
            - self.settings["Not Before Lead"]
        return self.clock.real_seconds(seconds) if seconds > 0 else 0

    def _observe(self, job):
        record, order = job.record, job.record.work_order
        order_id = record.id
        progress = self._progress_so_far(record)
        files_before = len(progress["Files"])
        deadline = order.get("Not After")
        if deadline is not None and parse_utc(deadline) <= self.clock.now():
            # Waited in the queue past its window (another order ran long).
            self.handler.transition(order_id, FAILED, f"expired: its window ended at "
                                    f"{deadline}", only_from={QUEUED})
            return
        if self._step(order_id, progress, only_from={QUEUED}) is None:
            return  # cancelled a moment ago
        self.cool()  # again: a camera switched off and on has forgotten its setpoint
        try:
            # Those an observation needs: a focuser that does not answer only leaves the
            # focus where it is.
            self._now_at(job, progress, "connecting the devices")
            unconnected = self.handler.connect_devices()
            needed = [why for device, why in unconnected.items() if device is not self.focuser]
            if needed:
                raise DeviceError("; ".join(needed))
            # Calibration frames need neither the sky nor the target: an attempt that has
            # only those left neither waits for the dome nor slews.
            if progress["Frames Done"] < progress["Frames Total"]:
                self.require_room()  # before the slew, which would be for nothing
                self._point(job, order, progress)
                self._take_lights(job, order, progress)
            if order["Calibration Frames"] and not job.window_ended:
                self._calibrate(job, order, progress)
        except Interrupted:
            self._abort()
            if job.final_state == INTERRUPTED:
                if job.interrupted_by:
                    progress["Interrupted By"] = job.interrupted_by
                self.handler.transition(order_id, INTERRUPTED, job.reason, only_from={RUNNING},
                                        progress=progress)
            self._park_if_idle(job.reason)
            return
        except (DomeNotReady, TargetLow) as reason:
            taken = len(progress["Files"]) - files_before
            where = f"stopped after {taken} frame(s)" if taken else "not started"
            if isinstance(reason, DomeNotReady) and taken:
                # Not started is a try: the scheduler sent it as the dome said it was open,
                # and a telescope that keeps finding otherwise (a dome daemon it cannot reach)
                # must not be sent the order for ever.
                progress["Interrupted By"] = BY_THE_DOME
            self.handler.transition(order_id, INTERRUPTED, f"{where}: {reason}",
                                    only_from={RUNNING}, progress=progress)
            if isinstance(reason, TargetLow):
                self._park_if_idle("the target is too low")
            return
        except NoRoom as reason:
            self.handler.transition(order_id, INTERRUPTED, f"stopped at {progress['Step']}: "
                                    f"{reason}", only_from={RUNNING}, progress=progress)
            self._park_if_idle("the data directory cannot be written"
                               if isinstance(reason, Unwritable) else "no room for frames")
            return
        except (DeviceError, OSError) as error:
            self._abort()
            self.handler.transition(order_id, FAILED, f"{progress['Step']}: {error}",
                                    only_from={RUNNING}, progress=progress)
            self._park_if_idle("the observation failed")
            return
        files = progress["Files"]
        if job.window_ended and not progress["Frames Done"]:
            self._park_if_idle("the observation's window ended")
            self.handler.transition(order_id, FAILED, f"expired: its window ended at "
                                    f"{deadline} before its first frame (Not After)",
                                    only_from={RUNNING}, progress=progress)
            return
        message = f"{len(files)} frame(s) written to {self._directory()}"
        if job.window_ended:
            message += (f"; {progress['Frames Done']} of {progress['Frames Total']} light "
                        f"frame(s), and no calibration frame: its window ended at {deadline} "
                        "(Not After)")
            log.info("[WO %s] its window ends at %s: no more frames", order_id, deadline)
        if order["Output"] == "Analysis":
            # The last frame is journaled before the wait for the preprocessor.
            progress["Step"] = f"{HANDING}{len(files)} frame(s) to the preprocessor"
            if self._step(order_id, progress) is None:
                return  # cancelled a moment ago: its frames are not analysed
            message += "; " + self.handler.hand_offs.at_end(order_id, files, progress,
                                                            record.priority)
        progress["Step"] = "done"
        self.handler.transition(order_id, DONE, message, only_from={RUNNING}, progress=progress)

    def _progress_so_far(self, record):
        """The progress an attempt at *record* starts from.

        An order tried again (after an interruption, a failure or a restart of this daemon)
        continues from what its earlier attempts journaled, so that no frame is taken twice
        and none written is dropped from the order.

        Returns
        -------
        dict
            ``Step``; ``Frames Done`` of ``Frames Total`` light frames; ``Files``, every frame
            written for the order; ``Calibration Done``, the calibration frames taken, by
            ``IMAGETYP``. What concerned only the earlier attempt (``Interrupted By``) is left
            out.
        """
        earlier, total = record.progress, record.work_order["Number of Exposures"]
        progress = {"Step": "checking the dome",
                    "Frames Done": min(earlier.get("Frames Done", 0), total),
                    "Frames Total": total, "Files": list(earlier.get("Files", [])),
                    CALIBRATION_DONE: dict(earlier.get(CALIBRATION_DONE, {}))}
        if progress["Files"]:
            progress["Step"] = (f"continuing after {progress['Frames Done']}/{total} frame(s) "
                                f"and {sum(progress[CALIBRATION_DONE].values())} calibration "
                                "frame(s) taken before")
            log.info("[WO %s] %s", record.id, progress["Step"])
        return progress

    def _take_lights(self, job, order, progress):
        """Take the light frames still missing, numbered on from those taken before."""
        total, first = progress["Frames Total"], progress["Frames Done"] + 1
        self._wait_for_not_before(job, order, progress)
        flip_tried = False  # a mount that did not flip is not asked again (see .meridian)
        for number in range(first, total + 1):
            # Journaled first, with the frame just written: a daemon killed while it waits
            # for the dome keeps that frame in the order.
            progress["Step"] = step = f"exposing {number}/{total}"
            self._step(job.record.id, progress)
            if self._window_ends_before(order, order["Exposure Time"]):
                job.window_ended = True
                return
            self._check_altitude(order)
            if number > first and not flip_tried:
                flip_tried = self._flip_if_due(job, order, progress, resume=step)
            # Before every frame, the first too: a wait for Not Before or an autofocus run
            # may have lasted while the dome closed.
            self._wait_for_the_slit(job, progress, resume=step)
            if number > first:  # the first was focused once pointed
                self._focus(job, order["Filter"], progress, resume=step)
            self._wait_for_the_ccd(job, progress, resume=step)
            progress["Files"].append(self._expose(job, FrameType.LIGHT, order["Exposure Time"],
                                                  number))
            progress["Frames Done"] = number
            if number == first and number < total and self._prepares_calibration(order):
                threading.Thread(target=prepare_calibration, name="prepare-calibration",
                                 args=(self.handler.config, job.record.id,
                                       progress["Files"][-1], job.record.priority),
                                 daemon=True).start()

    @staticmethod
    def _prepares_calibration(order):
        """Whether the preprocessor is asked to prepare an observation's calibration at its
        first frame: its frames go to the preprocessor, and it takes no calibration frames
        (from which its job would make masters, and terms, of its own)."""
        return order["Output"] == "Analysis" and not order["Calibration Frames"]

    def _window_ends_before(self, order, seconds):
        """Whether the order's ``Not After`` comes before a frame of *seconds* started now
        would end: no frame starts, or runs, past it."""
        deadline = order.get("Not After")
        return deadline is not None and \
            self.clock.now() + timedelta(seconds=seconds) > parse_utc(deadline)

    def _wait_for_not_before(self, job, order, progress):
        """Wait, pointed, for the order's ``Not Before``: the scheduler sends an order a slew
        ahead of its planned start, and a client may send one early tonight."""
        start = order.get("Not Before")
        if start is None:
            return
        instant = parse_utc(start)
        seconds = (instant - self.clock.now()).total_seconds()
        if seconds <= 0:
            return
        progress["Step"] = f"waiting for its Not Before, {start}"
        self._step(job.record.id, progress)
        self._wait(job, lambda: self.clock.now() >= instant,
                   seconds + NOT_BEFORE_SLACK * self.settings["Poll Interval"],
                   "its Not Before")

    def _step(self, order_id, progress, only_from=frozenset({RUNNING})):
        return self.handler.transition(order_id, RUNNING, progress["Step"], only_from=only_from,
                                       progress=dict(progress))

    def _point(self, job, order, progress):
        """Slew to the target once the dome says open and safe, set the filter, and wait for
        the dome's slit.

        A parked mount leaves park only after the dome's answer. A mount already out of park
        (observing a moment ago, under a dome found open before its last frame) starts the slew
        first and the dome is asked while it moves: a slew inside a closed dome harms nothing,
        and a target of opportunity does not wait for the dome daemon's answer. A dome that
        is not ready stops that slew, and no frame is taken.
        """
        if (order.get("Not Before") is not None
                and self._altitude_now(order) < self.config["Observing"]["Minimum Altitude"]):
            # Not up yet: wait for its Not Before before the slew, not pointed.
            self._wait_for_not_before(job, order, progress)
        self._check_altitude(order)
        # Each device step journaled before it: a failure is said under its own step.
        self._now_at(job, progress, "reading the mount")
        parked = self.mount.state().parked
        if parked:
            self._now_at(job, progress, "checking the dome")
            self._check_dome()
            self._now_at(job, progress, "unparking")
            self.mount.unpark()
        self._now_at(job, progress, self._slewing_to(order))
        self.mount.start_slew(order["RA"], order["Dec"])
        # Not before: an order that ends without moving the mount (its lights taken before,
        # the dome not ready) leaves it to be parked still.
        self._drop_pending_park(f"order {job.record.id} takes the mount")
        if not parked:
            try:
                self._check_dome()
            except DomeNotReady:
                self._abort()
                raise
        self._wait(job, lambda: not self.mount.state().slewing, self.settings["Slew Timeout"],
                   "the mount to finish its slew")
        self._arrive(job, order, progress)
        progress["Step"] = f"filter {order['Filter']}"
        self._step(job.record.id, progress)
        self._set_filter(job, order["Filter"])
        self._focus(job, order["Filter"], progress)
        self._wait_for_the_slit(job, progress)
        self._autofocus_if_due(job, order["Filter"], progress)

    def _now_at(self, job, progress, step):
        """Journal *step* as the order's progress: what it does now, and what a failure's
        message is prefixed with."""
        progress["Step"] = step
        self._step(job.record.id, progress)

    @staticmethod
    def _slewing_to(order):
        return f"slewing to RA {order['RA']:.4f}° Dec {order['Dec']:+.4f}°"

    def _arrive(self, job, order, progress):
        """Check that the slew just ended where it was sent: within ``Telescope → Pointing
        Tolerance`` of the order's target (both ICRS: every driver converts the mount's own
        coordinates, JNow or J2000, before :class:`~..devices.mount.MountState`). A mount
        farther (a slew stopped short: aborted by another client, by a limit of its own) is
        sent once more; *progress*'s step is journaled again after.

        Raises
        ------
        DeviceError
            When the second slew ends out of the tolerance too, naming how far, the target
            and where the mount is.
        """
        ra, dec, tolerance = order["RA"], order["Dec"], self.settings["Pointing Tolerance"]
        state = self.mount.state()
        away = separation(state.ra, state.dec, ra, dec)
        if away <= tolerance:
            return
        resume = progress["Step"]
        log.warning("[WO %s] the slew ended %.3f° from the target RA %.4f° Dec %+.4f°, beyond "
                    "Telescope → Pointing Tolerance (%g°): the mount is at RA %.4f° Dec %+.4f°; "
                    "slewing again", job.record.id, away, ra, dec, tolerance, state.ra,
                    state.dec)
        self._now_at(job, progress, f"slewing again to RA {ra:.4f}° Dec {dec:+.4f}°: the slew "
                                    f"ended {away:.3f}° away")
        if state.parked:
            # A park under way when the slew was sent (the last order's end) won it. Left
            # again only with the dome's word: one closing has parked it (DomeNotReady).
            self._check_dome()
            self.mount.unpark()
        self.mount.start_slew(ra, dec)
        self._wait(job, lambda: not self.mount.state().slewing, self.settings["Slew Timeout"],
                   "the mount to finish its second slew")
        state = self.mount.state()
        away = separation(state.ra, state.dec, ra, dec)
        if away > tolerance:
            raise DeviceError(f"{self.mount.label}: the slew ended {away:.3f}° from the target "
                              f"RA {ra:.4f}° Dec {dec:+.4f}° twice (Telescope → Pointing "
                              f"Tolerance {tolerance:g}°): the mount is at RA {state.ra:.4f}° "
                              f"Dec {state.dec:+.4f}° (ICRS)")
        log.info("[WO %s] the second slew reached the target", job.record.id)
        self._now_at(job, progress, resume)

    def _altitude_now(self, order):
        """The order's target's altitude now, degrees."""
        return self.handler.night.altitude_at(self.clock.now(), order["RA"], order["Dec"])

    def _check_altitude(self, order):
        """Raise :class:`TargetLow` when the order's target is below ``Observing → Minimum
        Altitude`` now (not risen yet, or set since), saying when it is up tonight."""
        altitude, limit = (self._altitude_now(order),
                           self.config["Observing"]["Minimum Altitude"])
        if altitude >= limit:
            return
        night = self.handler.night.window(self.clock.now(),
                                          self.config["Observing"]["Sun Altitude Limit"])
        rises = None if night is None else self.handler.night.rises_above(
            night, order["RA"], order["Dec"], limit)
        when = (f"it is above it from {rises:%H:%M} UTC" if rises is not None else
                "it is not above it again tonight")
        raise TargetLow(f"the target is at {altitude:.1f}° of altitude, below Observing → "
                        f"Minimum Altitude ({limit:g}°); {when}")

    def _flip_if_due(self, job, order, progress, resume):
        """Slew to the target again if a German equatorial mount should flip
        (:mod:`.meridian`); whether it did so. *resume* is the step journaled again after."""
        if not self.settings["Meridian Flip"]:
            return False
        state, latitude = self.mount.state(), self.config["Site"]["Latitude"]
        if not meridian.flip_due(state, latitude, self.settings["Meridian Flip After"]):
            return False
        past = meridian.minutes_past_the_meridian(state, latitude)
        progress["Step"] = (f"meridian flip: {past:.1f} min past the meridian, the tube on the "
                            "west side of the pier")
        self._step(job.record.id, progress)
        self.mount.start_slew(order["RA"], order["Dec"])
        self._wait(job, lambda: not self.mount.state().slewing, self.settings["Slew Timeout"],
                   "the mount to flip")
        self._arrive(job, order, progress)
        side = self.mount.state().pier_side
        if side == LOOKING_EAST:
            log.warning("[WO %s] the mount did not flip: slewed to the target again %.1f min "
                        "past the meridian, it still says it is on the west side of the pier "
                        "(its own limits may let it track on; set Telescope → Meridian Flip "
                        "After to where it changes sides). Not tried again in this attempt at "
                        "the order", job.record.id, past)
        else:
            log.info("[WO %s] meridian flip: %.1f min past the meridian, now on the %s side of "
                     "the pier", job.record.id, past, side)
        progress["Step"] = resume
        self._step(job.record.id, progress)
        return True

    def _set_filter(self, job, name):
        if self.filter_wheel.state().current == name:
            return
        self.filter_wheel.start_move(name)
        self._wait(job, lambda: self.filter_wheel.state().current == name,
                   self.settings["Slew Timeout"], f"the filter wheel to reach {name}")

    def _focus(self, job, filter_name, progress, resume=None):
        """Move the focuser where the focus model (:mod:`.focus`) wants it for *filter_name*
        at the tube's temperature now, when it is more than ``Tolerance`` steps from there.
        *resume* is the step journaled again after a move."""
        if self.focuser is None or self.focus_model.best_position is None:
            return
        state = self.focuser.state()
        wanted, why = self.focus_model.position(filter_name, state.temperature)
        if not 0 <= wanted <= state.maximum:
            raise DeviceError(f"the focus model wants the focuser at {wanted} ({why}); allowed: "
                              f"0 to {state.maximum}, the focuser's range. Check Telescope → "
                              "Focuser → Best Position, Filter Offsets and Temperature "
                              "Coefficient")
        tolerance = self.focus_model.tolerance
        if abs(wanted - state.position) <= tolerance:
            return
        progress["Step"] = f"focusing: {state.position} → {wanted} ({why})"
        self._step(job.record.id, progress)
        self._move_focuser(job, wanted, tolerance)
        log.info("[WO %s] focused at %d (%s)", job.record.id, wanted, why)
        if resume is not None:
            progress["Step"] = resume
            self._step(job.record.id, progress)

    def _move_focuser(self, job, position, tolerance):
        """Move the focuser to *position* and wait until it is still within *tolerance*
        steps of it (a focuser compensating its backlash may stop a step or two away)."""
        self.focuser.start_move(position)

        def arrived():
            now = self.focuser.state()
            return not now.moving and abs(now.position - position) <= tolerance

        self._wait(job, arrived, self.settings["Focuser"]["Move Timeout"],
                   f"the focuser to reach {position}")

    def _autofocus_if_due(self, job, filter_name, progress):
        """Make a focus run (:mod:`.autofocus`) on the field pointed at, if one is due, and
        go to the focus it finds; a run that finds none keeps the model, said in the log. A
        target of opportunity does not wait for a run: it is made at the next order."""
        if self.focuser is None or not self.autofocus.enabled:
            return  # without asking the focuser, at every order
        state = self.focuser.state()
        night = local_night_date(self.clock.now(), self.config["Site"]["Longitude"])
        if not self.autofocus.due(night, state.temperature):
            return
        if job.record.priority >= self.config["Priorities"]["ToO Threshold"]:
            log.info("[WO %s] autofocus is due, but a target of opportunity does not wait for "
                     "it: its frames are focused by the focus model", job.record.id)
            return
        wanted, _ = self.focus_model.position(filter_name, state.temperature)
        positions = self.autofocus.positions(state.position if wanted is None else wanted,
                                             state.maximum)
        seconds = self.settings["Focuser"]["Autofocus Exposure"]

        def take_frame(number, position):
            progress["Step"] = f"autofocus: frame {number}/{len(positions)} at {position}"
            self._step(job.record.id, progress)
            self._move_focuser(job, position, self.focus_model.tolerance)
            return self._image(job, FrameType.LIGHT, seconds)

        try:
            run = self.autofocus.run(positions, take_frame, night, state.temperature)
        except AutofocusFailed as error:
            log.warning("[WO %s] autofocus found no focus, the focus model is kept: %s",
                        job.record.id, error)
        else:
            self.focus_model = model_after(self.focus_model, run, filter_name)
            self._focus_found = True
            log.info("[WO %s] autofocus: best focus at %d through %s at %s (%s)",
                     job.record.id, run.position, filter_name,
                     "an unknown temperature" if run.temperature is None
                     else f"{run.temperature:g} °C", run.table())
        self._remember_focus()
        if self.focus_model.best_position is None:  # no model, no focus found: as it was
            self._move_focuser(job, state.position, self.focus_model.tolerance)
        self._focus(job, filter_name, progress)

    def prepare_focus(self):
        """Once the devices are connected: the filter wheel's own focus offsets when the
        configuration gives none, the last focus run kept over a restart, and what a run
        measures with, loaded."""
        if self.focuser is None:
            return
        model = self.focus_model.with_wheel_offsets(self.filter_wheel.focus_offsets())
        if model is not self.focus_model:
            log.info("focus offsets from the filter wheel (Telescope → Focuser → Filter "
                     "Offsets gives none): %s", ", ".join(
                         f"{name} {offset:+d}" for name, offset in model.filter_offsets.items()))
            self.focus_model = model
        if self.autofocus.enabled:
            self.focus_memory = FocusMemory(self.handler.journal.path, self.focus_model)
            self._recall_focus()
            self.autofocus.prepare()

    def _recall_focus(self):
        """Carry the last focus run over the daemon's restart (:mod:`.focus_memory`): it
        counts as made, and the focus it left becomes the model's."""
        run = self.focus_memory.recall()
        if run is None:
            return
        self.autofocus.recall(run)
        if run.best_position is not None:
            self.focus_model = dataclasses.replace(
                self.focus_model, best_position=run.best_position,
                reference_temperature=run.reference_temperature)
            self._focus_found = True
        log.info("the last focus run (%s) is carried over the restart: Best Position %s, "
                 "Reference Temperature %s", run.outcome, self.focus_model.best_position,
                 self.focus_model.reference_temperature)

    def _remember_focus(self):
        """Write down the last focus run, and the focus the model has since a run found it."""
        model = self.focus_model
        self.focus_memory.remember(LastRun(
            self.autofocus.last_night, self.autofocus.last_temperature, self.autofocus.last_run,
            model.best_position if self._focus_found else None,
            model.reference_temperature if self._focus_found else None))

    def focus_report(self):
        """The focus model in use (after the last focus run, if any), for the health
        report: ``"not set"`` where it has no value."""
        model, autofocus = self.focus_model, self.autofocus
        report = {"Best Position": model.best_position,
                  "Reference Temperature": model.reference_temperature,
                  "Last Autofocus": autofocus.last_run}
        report = {key: "not set" if value is None else value for key, value in report.items()}
        return dict(report, **{"Filter Offsets": dict(model.filter_offsets)})

    def _focuser_reading(self):
        """The focuser's position and temperature for a frame's header; ``(None, None)``
        without a focuser, or while it does not answer (said once in the log): the frame is
        worth more than two cards."""
        if self.focuser is None:
            return None, None
        try:
            state = self.focuser.state()
        except DeviceError as error:
            self._focuser_outage.failed("the focuser does not answer (%s): frames are written "
                                        "without FOCUSPOS and FOCUSTEM", error)
            return None, None
        self._focuser_outage.answered("the focuser answers again")
        return state.position, state.temperature

    def _calibrate(self, job, order, progress):
        """Take the bias, dark and flat frames still missing, numbered on from those taken
        before."""
        frames = self.handler.config["Observing"]  # what the scheduler's plan counts too
        plan = [(FrameType.BIAS, 0.0, frames["Bias Frames"]),
                (FrameType.DARK, order["Exposure Time"], frames["Dark Frames"]),
                (FrameType.FLAT, frames["Flat Exposure Time"], frames["Flat Frames"])]
        taken = progress[CALIBRATION_DONE]
        for frame_type, seconds, count in plan:
            for number in range(taken.get(frame_type.value, 0) + 1, count + 1):
                progress["Step"] = f"{frame_type.value.lower()} {number}/{count}"
                self._step(job.record.id, progress)
                if frame_type.shutter_open:  # an attempt that did not point set no filter
                    self._set_filter(job, order["Filter"])
                self._wait_for_the_ccd(job, progress, resume=progress["Step"])
                progress["Files"].append(self._expose(job, frame_type, seconds, number))
                taken[frame_type.value] = number

    def _expose(self, job, frame_type, seconds, number):
        """Take one frame and write it; return the file's path."""
        order = job.record.work_order
        self.require_room()
        pointing = self.mount.state()
        temperature = self.camera.state().temperature
        focus_position, focus_temperature = self._focuser_reading()
        start = self.clock.now()
        data = self._image(job, frame_type, seconds)
        exposure = Exposure(
            start=start, seconds=seconds, frame_type=frame_type.value,
            filter_name=self.filter_wheel.state().current or "unknown",
            target=order.get("Object Name", f"RA{order['RA']:.3f}_Dec{order['Dec']:+.3f}"),
            ra=pointing.ra, dec=pointing.dec, altitude=pointing.altitude,
            airmass=float(airmass(pointing.altitude)), order=order, number=number,
            ccd_temperature=temperature, pier_side=pointing.pier_side,
            focus_position=focus_position, focus_temperature=focus_temperature,
            azimuth=pointing.azimuth)
        try:
            path = write_frame(self._directory(start), exposure, data, self.camera.info(),
                               self.config["Site"], self.settings["Name"], self.orientation)
        except OSError as error:
            self._not_written(job, error)
            raise
        log.info("[WO %s] wrote %s", job.record.id, path)
        self.latest_frame = path
        return path

    def _image(self, job, frame_type, seconds):
        """Expose one frame and return its image, not written anywhere."""
        self.camera.start_exposure(seconds, frame_type)
        readout = self.settings["Readout Timeout"]
        try:
            self._wait(job, lambda: self.camera.state().image_ready, seconds + readout,
                       f"the {frame_type.value} frame")
        except TimedOut:
            raise TimedOut(f"{self.camera.label}: no image came in the {readout:g} s after "
                           f"the end of the {seconds:g} s {frame_type.value} exposure "
                           "(Telescope → Readout Timeout)") from None
        return self.camera.image()

    def check_data_directory(self):
        """Say in the log when frames cannot be written in the data directory (the daemon
        runs on: it parks the mount when the dome closes); else delete the frames left half
        written when the daemon last stopped."""
        self._unwritable = unwritable(self.settings["Data Directory"])
        if self._unwritable is not None:
            log.error("%s: observations are refused until it can", self._unwritable)
            return
        remove_partial_frames(self.settings["Data Directory"])

    def require_room(self):
        """Raise :class:`~.room.NoRoom` unless the data directory can be written (looked at
        again only while it could not: :class:`~.room.Unwritable`) and its disk has room for
        the next frame."""
        reason = self._still_unwritable()
        if reason is not None:
            raise Unwritable(reason)
        require_room(self.settings["Data Directory"], self._frame_bytes(),
                     self.settings["Minimum Free Bytes"])

    def _not_written(self, job, error):
        """Raise :class:`~.room.NoRoom` for a frame whose write (*error*) found the data disk
        full, as if there had been no room before it; and :class:`~.room.Unwritable` for one
        that found the disk refusing writes (remounted read-only, as a failing disk or an NFS
        server does), which marks the directory unwritable, as at the start: observations are
        refused until a look finds it can be written again. Another error is the caller's."""
        refusal = not_written(self.settings["Data Directory"], error)
        if refusal is None:
            return
        if isinstance(refusal, Unwritable):
            with self._unwritable_lock:
                self._unwritable = str(refusal)
                # Looked at again where the frame was refused: the Data Directory may take a
                # file while its night's raw/ (another disk mounted there) does not.
                self._refused_in = os.path.dirname(error.filename) if error.filename else None
            log.error("[WO %s] %s (writing %s): observations are refused until it can",
                      job.record.id, refusal, error.filename)
        raise refusal from error

    def _still_unwritable(self):
        """Why the data directory cannot be written, or ``None``: looked at again while it
        could not (as room is: at each order, each frame and each health Status). Once it
        can, said in the log, and the frames left half written meanwhile are deleted."""
        with self._unwritable_lock:
            if self._unwritable is None:
                return None
            directory = self.settings["Data Directory"]
            refused_in = self._refused_in
            if refused_in is None or not os.path.isdir(refused_in):
                refused_in = directory  # (a night's directory removed meanwhile is made again)
            self._unwritable = unwritable(directory) or (
                unwritable(refused_in) if refused_in != directory else None)
            if self._unwritable is None:
                self._refused_in = None
                log.warning("the data directory %s can be written again: observations are "
                            "taken again", directory)
                try:
                    remove_partial_frames(directory)
                except OSError as error:
                    log.warning("could not delete the frames left half written in %s: %s",
                                directory, error)
            return self._unwritable

    def data_disk(self):
        """The data disk's free space and the frames it has room for (the health report);
        ``Unwritable``: why no frame can be written there, while it cannot."""
        reason = self._still_unwritable()
        return describe(self.settings["Data Directory"], self._frame_bytes(),
                        self.settings["Minimum Free Bytes"], reason)

    def _frame_bytes(self):
        """Bytes of the camera's next frame; 0 while the camera does not answer."""
        try:
            return frame_bytes(self.camera.info())
        except DeviceError:
            return 0

    def _directory(self, instant=None):
        return night_directory(self.settings["Data Directory"], instant or self.clock.now(),
                               self.config["Site"]["Longitude"])

    def _wait(self, job, condition, clock_seconds, what):
        wait_for(condition, self.clock.real_seconds(clock_seconds), what, self._poll_interval(),
                 stop=job.stop, error_grace=self._error_grace())

    def _poll_interval(self):
        """Real seconds between two polls of a device."""
        return max(self.clock.real_seconds(self.settings["Poll Interval"]),
                   MIN_REAL_POLL_SECONDS)

    def _error_grace(self):
        """Real seconds a device's errors are waited out during a wait (``Telescope → Device
        Error Grace``), asked again at each poll."""
        return self.clock.real_seconds(self.settings["Device Error Grace"])

    def cool(self):
        """Ask the camera to cool the CCD to ``Telescope → Camera → Cooling Setpoint``, if one
        is set; whether it was asked. A camera that cannot is said so once, in the log, and
        not waited for."""
        setpoint = self.settings["Camera"]["Cooling Setpoint"]
        if setpoint is None or self._cannot_cool:
            return False
        try:
            self.camera.set_cooling(setpoint)
        except NotCapable as error:
            self._cannot_cool = True
            log.error("cannot cool the CCD (%s): frames do not wait for it. Unset Telescope → "
                      "Camera → Cooling Setpoint for a camera cooled some other way", error)
            return False
        except DeviceError as error:  # asked again at the next order
            log.warning("cannot set the CCD's cooling: %s", error)
            return False
        return True

    def _wait_for_the_ccd(self, job, progress, resume):
        """Return once the CCD is within ``Cooling Tolerance`` of its setpoint, or once it has
        been waited for ``Cooling Timeout`` in this attempt at the order (then said once, and
        the frames are taken anyway: their CCD-TEMP says how warm). *resume* is the step
        journaled again after a wait."""
        camera = self.settings["Camera"]
        setpoint, tolerance = camera["Cooling Setpoint"], camera["Cooling Tolerance"]
        if setpoint is None or self._cannot_cool or job.ccd_waited_out:
            return
        now = self.camera.state().temperature
        if now is None or abs(now - setpoint) <= tolerance:
            return
        shown = None

        def show():
            # Journaled again at each degree: the scheduler sees progress (Stall Timeout).
            nonlocal shown
            if shown is None or abs(now - shown) >= COOLING_STEP_SHOWN:
                shown = now
                progress["Step"] = f"cooling the CCD to {setpoint:g} °C, now {now:.1f} °C"
                self._step(job.record.id, progress)

        def settled():
            nonlocal now
            now = self.camera.state().temperature
            if now is None or abs(now - setpoint) <= tolerance:
                return True
            show()
            return False

        show()
        timeout = camera["Cooling Timeout"]
        try:
            self._wait(job, settled, timeout, "the CCD to reach its setpoint")
        except TimedOut:  # (a camera that no longer answers fails the order in the wait)
            job.ccd_waited_out = True
            log.warning("[WO %s] the CCD is at %.1f °C, not within %g °C of its setpoint %g °C "
                        "after %g s (Telescope → Camera → Cooling Timeout): taking the frames "
                        "anyway", job.record.id, now, tolerance, setpoint, timeout)
        progress["Step"] = resume
        self._step(job.record.id, progress)

    def _wait_for_the_slit(self, job, progress, resume=None):
        """Return once the dome says open and safe and, if it turns its slit to the telescope,
        the slit is within the dome's ``Follow Tolerance`` of the telescope's azimuth.

        A wait is a step of its own; *resume* is the step journaled again after it (that of
        the frame waiting for the slit), if any.

        Raises
        ------
        DomeNotReady
            When the dome is not open and safe, or the slit does not come within the
            tolerance in ``Telescope → Slit Timeout``.
        """
        lag, tolerance = self._slit_lag()
        if lag is None or lag <= tolerance:
            return
        progress["Step"] = f"waiting for the dome's slit, {lag:.1f}° away"
        self._step(job.record.id, progress)

        def on_the_telescope():
            nonlocal lag, tolerance
            lag, tolerance = self._slit_lag()
            return lag is None or lag <= tolerance

        timeout = self.settings["Slit Timeout"]
        try:
            self._wait(job, on_the_telescope, timeout, "the dome's slit")
        except TimedOut:  # (a mount that no longer answers fails the order in the wait)
            raise DomeNotReady(f"the dome's slit did not come within {tolerance:g}° of the "
                               f"telescope in {timeout:g} s (Telescope → Slit Timeout): still "
                               f"{lag:.1f}° away") from None
        if resume is not None:
            progress["Step"] = resume
            self._step(job.record.id, progress)

    def _slit_lag(self):
        """Degrees between the dome's slit and where the telescope looks out of the dome (the
        dome daemon's geometry: :mod:`~torosmanager.dome.geometry`), and the dome's tolerance,
        once the dome daemon says open and safe (:meth:`_check_dome`); the lag is ``None``
        when the dome does not turn to the telescope (it is told not to follow it, or reports
        no azimuth)."""
        devices = self._check_dome()
        azimuth = devices.get("Enclosure", {}).get("Azimuth")
        if not devices.get("Following Telescope") or azimuth is None:
            return None, None
        pointing = self.mount.state()
        slit = DomeGeometry.from_settings(devices["Geometry"]).slit_azimuth(
            pointing.altitude, pointing.azimuth, self.config["Site"]["Latitude"],
            pointing.pier_side)
        return azimuth_separation(azimuth, slit), devices["Follow Tolerance"]

    def _check_dome(self):
        """The dome daemon's devices report; raise :class:`DomeNotReady` unless it says open
        and safe."""
        try:
            health = connect(self.config, "dome").front_desk({"WOType": "Status"})
        except (OSError, xmlrpc.client.Error) as error:
            raise DomeNotReady(f"the dome daemon does not answer: {error}") from None
        enclosure = health["Devices"].get("Enclosure", {})
        safety = health["Devices"].get("Safety", {})
        if not safety.get("Safe", False):
            raise DomeNotReady(f"the dome reports unsafe conditions: {safety.get('Reason')}")
        if enclosure.get("Shutter") != "open":
            raise DomeNotReady(f"the dome shutter is {enclosure.get('Shutter', 'unknown')}")
        return health["Devices"]

    def _park_for(self, reason, order_id):
        """Park for a Park order (*order_id*), or for one its journal could not keep
        (``None``: there is only the log to say how it went)."""
        if order_id is not None:
            with self.handler.failing_on_error(order_id, "parking"):
                error = self._park_mount()
                self._after_park(reason, error)
                if error is None:
                    self.handler.transition(order_id, DONE, f"parked ({reason})",
                                            only_from={RUNNING})
                else:
                    self.handler.transition(order_id, FAILED, f"could not park: {error}",
                                            only_from={RUNNING})
            return
        try:
            error = self._park_mount()
        except Exception:  # noqa: BLE001 - the worker goes on with the next order
            log.exception("could not park (%s)", reason)
            return
        self._after_park(reason, error)
        if error is None:
            log.info("parked (%s)", reason)
        else:
            log.error("could not park (%s): %s", reason, error)

    def _park_mount(self):
        """Stop whatever moves, park, and wait; the DeviceError that stopped it, or ``None``."""
        try:
            # A mount switched on since is parked all the same (the other devices are not
            # waited for: one that does not answer takes its whole Timeout).
            self.handler.connect_devices(only=self.mount)
            self._abort(self.mount)
            self.mount.start_park()
            # Once the mount is on its way: a camera that does not answer holds nothing back.
            self._abort(self.camera)
            wait_for(lambda: self.mount.state().parked,
                     self.clock.real_seconds(self.settings["Slew Timeout"]), "the mount to park",
                     self._poll_interval(), error_grace=self._error_grace())
        except DeviceError as error:
            return error
        return None

    def _abort(self, *devices):
        """Stop *devices* (the mount's slew, the camera's exposure; default both); one that
        never connected has nothing under way."""
        for device in devices or (self.mount, self.camera):
            if not self.handler.connections.connected(device):
                continue
            try:
                device.abort()
            except DeviceError as error:
                log.error("could not abort the %s: %s", device.name, error)

    def _park_if_idle(self, reason):
        with self.orders.condition:
            idle = not self.orders.waiting(ready=True) and not self._park_requests
        if idle:
            self._start_park_quietly(reason)

    def _start_park_quietly(self, reason, retry=True):
        """Start parking without waiting. A mount that does not answer is to be parked still
        (with *retry*: tried again every ``Park Retry Interval``, :meth:`_keep_park_pending`);
        there is no order to fail."""
        try:
            if not self.mount.state().parked:
                log.info("parking the mount: %s", reason)
                self.mount.start_park()
        except DeviceError as error:
            if retry:
                self._keep_park_pending(reason, error)
            else:
                log.error("could not park the mount (%s): %s", reason, error)
            return
        self._drop_pending_park("the mount parks")

    def _after_park(self, reason, error):
        """After a park waited for (a Park order's): still pending if it failed with *error*,
        else no longer."""
        if error is None:
            self._drop_pending_park("the mount parked")
        else:
            self._keep_park_pending(reason, error)

    def _keep_park_pending(self, reason, error):
        """The mount could not be parked (*error*): try again in ``Telescope → Park Retry
        Interval``, and at each interval after, until it parks or an order takes the mount
        (a mount left pointed at the sky after a fault, under a dome that may close). Said
        once in the log, and in the health Status (``Executor → Park Pending``)."""
        interval = self.settings["Park Retry Interval"]
        with self.orders.condition:
            first = self._park_pending is None
            self._park_pending, self._park_error = reason, str(error)
            if self._park_timer is not None:
                self._park_timer.cancel()
            self._park_timer = threading.Timer(self.clock.real_seconds(interval),
                                               self._park_retry_is_due)
            self._park_timer.daemon = True
            self._park_timer.start()
        if first:
            log.error("could not park the mount (%s): %s; tried again every %g s (Telescope → "
                      "Park Retry Interval) until it parks or an order takes the mount",
                      reason, error, interval)
        else:
            log.debug("could not park the mount yet (%s): %s", reason, error)

    def _park_retry_is_due(self):
        # The timer's thread: the worker makes the try (it alone moves the mount).
        with self.orders.condition:
            self._park_retry_due = True
            self.orders.condition.notify()

    def _drop_pending_park(self, why):
        """No park is pending any more: *why* (the mount parks, an order takes it)."""
        with self.orders.condition:
            reason, self._park_pending, self._park_error = self._park_pending, None, None
            self._park_retry_due = False
            if self._park_timer is not None:
                self._park_timer.cancel()
                self._park_timer = None
        if reason is not None:
            log.info("the pending park (%s) is over: %s", reason, why)

    def _retry_park(self, reason):
        """Try again to park the mount (a pending park's turn): its connection made again
        first, if it was lost."""
        self.handler.connect_devices(only=self.mount)
        self._start_park_quietly(reason)
