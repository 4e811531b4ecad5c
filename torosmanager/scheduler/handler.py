"""The scheduler daemon: priorities on arrival, then the night (see :mod:`.dispatcher`).

Observation orders are queued, planned and dispatched to the telescope daemon at their time by
the :class:`~torosmanager.scheduler.dispatcher.Dispatcher`. Dome orders are handed to the dome
daemon at once (trying again while it does not answer: ``Dispatch Attempts``,
``Dispatch Retry Interval``) and followed to their end. The dispatcher's
:class:`~torosmanager.scheduler.dome_keeper.DomeKeeper` opens and closes the dome with the night
and sends the dome daemon its heartbeat.
"""

import logging
import xmlrpc.client

from ..client import connect, unavailable
from ..config import address_key
from ..dome.outputs import check_outputs
from ..ephemeris import longest_night
from ..handler import Handler, Workers
from ..journal import ACCEPTED, CANCELLED, DISPATCHED, FAILED, QUEUED, RUNNING
from ..logs import Outage
from ..telescope import limits as telescope_limits
from ..workorders import check_not_ended, format_utc, parse_utc, refuse
from . import priority
from .dispatcher import EXECUTOR, Dispatcher
from .dome_keeper import KEEPER
from .planner import duration_of, span_text
from .plan_command import html as plan_html

log = logging.getLogger(__name__)

#: The progress key of an order cancelled here that its executor (the telescope or dome
#: daemon) has not yet been told to cancel, and its value.
EXECUTOR_CANCEL, PENDING = "Cancel at Executor", "pending"
#: Dome orders handed over at once; forwarding is quick, so a few threads are plenty.
DISPATCH_THREADS = 4
#: Plan entries (and unscheduled orders) in the health report; the rest by Plan queries.
HEALTH_PLAN_ENTRIES = 10
#: The plan's entries (and orders left out) shown on the status page.
PAGE_PLAN_ENTRIES = 25
#: The zenith's altitude, degrees: a declination δ culminates at
#: ZENITH_ALTITUDE − |δ − latitude|.
ZENITH_ALTITUDE = 90.0
#: The celestial poles' declination, degrees (north; the south's is its negative).
POLE_DECLINATION = 90.0
#: Degrees of declination beyond the limit still accepted (and left to the planner): the
#: equinox of the date moves a J2000 declination by up to 0.3° in 50 years.
NEVER_RISES_MARGIN = 1.0
#: Seconds beyond the longest night still accepted (and left to the planner): the night's
#: length is worked out to a few minutes (:func:`~torosmanager.ephemeris.longest_night`).
LONGEST_NIGHT_MARGIN = 600.0


class SchedulerHandler(Handler):
    """Prioritise, plan and dispatch Observation orders; forward Dome orders."""

    service = "scheduler"
    wotypes = ("Observation", "Dome", "Plan")
    # Dispatched: handed to the telescope, which may be slewing to it already.
    started_states = (DISPATCHED, RUNNING)
    # accepted() wakes the dispatcher or hands a Dome order to a worker: the receipt shows
    # the order as journaled, without reading it again.
    accepting_changes_state = False

    def __init__(self, config, journal, clock):
        super().__init__(config, journal, clock)
        self.settings = config["Scheduler"]
        self.workers = Workers("dispatch", DISPATCH_THREADS)
        self.dispatcher = Dispatcher(self)
        # The declinations that rise above the altitude limit at the site, once.
        latitude = config["Site"]["Latitude"]
        reach = ZENITH_ALTITUDE - self.dispatcher.planner.constraints.min_altitude
        self._rising = (max(latitude - reach, -POLE_DECLINATION),
                        min(latitude + reach, POLE_DECLINATION))
        self._longest_night = longest_night(latitude, config["Observing"]["Sun Altitude"])

    def check(self, order):
        outputs = self.dispatcher.dome.outputs
        if order["WOType"] == "Dome" and outputs is not None:
            # Refused here, as the dome would a moment later (the order then failed).
            check_outputs(order, outputs)
        if order["WOType"] != "Observation":
            return
        # Refused here, at once, what the telescope would refuse at dispatch, in its words.
        limits = self.dispatcher.telescope_limits
        if limits is not None:
            telescope_limits.check(order, limits)
        check_not_ended(order, self.clock.now())
        self._check_window_meets_a_night(order)
        self._check_rises(order)
        self._check_fits_a_night(order)

    def _check_window_meets_a_night(self, order):
        """Refuse an order whose ``Not After`` comes before the next dark hours begin: queued,
        it could only expire (hours later, at its Not After)."""
        not_after = order.get("Not After")
        if not_after is None:
            return
        sun_altitude = self.config["Observing"]["Sun Altitude"]
        night = self.dispatcher.planner.night.window(self.clock.now(), sun_altitude)
        if night is not None and parse_utc(not_after) <= night.start:
            raise refuse("Not After", not_after, f"an instant after the next dark hours begin "
                         f"({format_utc(night.start)}, the Sun below {sun_altitude:g}°, "
                         "Observing → Sun Altitude): before then the order cannot be observed")

    def _check_fits_a_night(self, order):
        """Refuse an order longer than the site's longest night: exposures are never split
        across nights, so it could never be observed."""
        seconds = duration_of(order, self.config["Observing"])
        if seconds <= self._longest_night + LONGEST_NIGHT_MARGIN:
            return
        site = self.config["Site"]
        raise refuse("Number of Exposures", order.get("Number of Exposures", 1),
                     f"exposures that fit in a night: these take {span_text(seconds)} with "
                     "their readouts (and calibration frames, if asked), while the longest "
                     f"night at {site['Name']} (the Sun below "
                     f"{self.config['Observing']['Sun Altitude']:g}°, Observing → Sun "
                     f"Altitude) lasts {span_text(self._longest_night)}; send them as "
                     "several orders")

    def _check_rises(self, order):
        """Refuse a declination that never rises above the altitude limit at the site, on any
        night: queued, it would wait for ever (a sign typed wrong, a southern target)."""
        low, high = self._rising
        if low - NEVER_RISES_MARGIN <= order["Dec"] <= high + NEVER_RISES_MARGIN:
            return
        site, constraints = self.config["Site"], self.dispatcher.planner.constraints
        limit = (f"{constraints.minimum_altitude:g}° (Observing → Minimum Altitude)"
                 if constraints.by_minimum_altitude else
                 f"airmass {constraints.max_airmass:g} (Observing → Max Airmass)")
        raise refuse("Dec", order["Dec"], f"from {low:+.1f}° to {high:+.1f}°, the "
                     f"declinations that rise above {limit} at {site['Name']} (latitude "
                     f"{site['Latitude']:+.2f}°)")

    def assign_priority(self, order):
        return priority.assign(order, self.config["Priorities"])

    def queued_reason(self, order):
        if order["WOType"] == "Observation":
            return "queued; waiting for the next plan"
        return "queued for the dome daemon"

    def accepted(self, record):
        if record.wotype == "Observation":
            # A target of opportunity is planned at once; other arrivals are gathered.
            threshold = self.config["Priorities"]["ToO Threshold"]
            self.dispatcher.wake(gather=record.priority < threshold)
        else:
            self.workers.submit(self.forward, record.id)

    def cancelled(self, record, previous_state):
        if previous_state not in (ACCEPTED, QUEUED):
            self.cancel_at_executor(record.id)
        self.dispatcher.wake()

    def devices(self):
        return {service: self.config[address_key(service)]["HTTP"]
                for service in sorted(set(EXECUTOR.values()))}

    def health(self):
        # The first few entries: the health stays small whatever the queue holds (a Plan
        # query pages through the rest).
        return {"Plan": self.dispatcher.plan_report(limit=HEALTH_PLAN_ENTRIES),
                "Telescope Limits": self.dispatcher.telescope_limits or {},
                "Hand-offs Pending": self.dispatcher.failed_frames.count()}

    def page_sections(self):
        """The status page's Plan: its first entries and orders left out, with why."""
        return [("Plan", plan_html(self.dispatcher.plan_report(limit=PAGE_PLAN_ENTRIES)))]

    def signal(self, order):
        """Answer a Plan query: a page of tonight's plan."""
        return self.dispatcher.plan_report(order["Offset"], order["Limit"])

    # --- life cycle ---------------------------------------------------------------------

    def start(self):
        super().start()
        # Cancels journaled here that the telescope or dome daemon had not yet heard of when
        # this daemon stopped: told now.
        for record in self.journal.in_states([CANCELLED], progress=(EXECUTOR_CANCEL, PENDING)):
            reason = record.message.removesuffix(_telling(record.wotype))
            self.workers.submit(self._tell_executor, record.id, reason)
        self.dispatcher.start()

    def resume(self, record):
        # An order "running" here runs at the telescope or dome: the dispatcher follows it
        # again, as it does queued and dispatched ones, from the journal.
        if record.state == ACCEPTED:
            self.transition(record.id, QUEUED, "queued after a restart")
        if record.wotype == "Dome" and self.journal.get(record.id).state == QUEUED:
            self.workers.submit(self.forward, record.id)

    def stop(self):
        super().stop()
        self.dispatcher.stop()
        self.workers.stop()

    # --- Dome orders --------------------------------------------------------------------

    def forward(self, order_id):
        """Hand one queued Dome order to the dome daemon, trying again while it does not
        answer (in a worker)."""
        with self.failing_on_error(order_id, "handing it to the dome daemon"):
            self._forward(order_id)

    def _forward(self, order_id):
        record = self.journal.get(order_id)
        if record is None or record.state != QUEUED:
            return
        attempts = self.settings["Dispatch Attempts"]
        for attempt in range(1, attempts + 1):
            if self.workers.stopping.is_set():
                return  # still queued in the journal: handed over after the restart
            try:
                receipt = connect(self.config, "dome").front_desk(record.work_order)
            except (OSError, xmlrpc.client.ProtocolError, xmlrpc.client.Fault) as error:
                if isinstance(error, xmlrpc.client.Fault) and not unavailable(error):
                    self.transition(order_id, FAILED, f"the dome daemon refused it: "
                                    f"{error.faultString}", only_from={QUEUED})
                    return
                log.warning("[WO %s] the dome daemon %s (attempt %d of %d): %s", order_id,
                            "cannot take it now" if unavailable(error) else "did not answer",
                            attempt, attempts, error)
                last_error = error
                if attempt < attempts:
                    self.workers.stopping.wait(
                        self.clock.real_seconds(self.settings["Dispatch Retry Interval"]))
                continue
            reason = (f"dispatched to the dome daemon, which answered "
                      f"{receipt.get('Status')}: {receipt.get('Message')}")
            if self.transition(order_id, DISPATCHED, reason, only_from={QUEUED}) is None:
                self.cancel_at_executor(order_id)  # cancelled meanwhile
            self.dispatcher.wake(replan=False)
            return
        outcome = "did not take it" if unavailable(last_error) else "did not answer"
        self.transition(order_id, FAILED, f"the dome daemon {outcome} after {attempts} "
                        f"attempts: {last_error}", only_from={QUEUED})

    def cancel_at_executor(self, order_id):
        """Have the telescope or dome daemon cancel *order_id*, cancelled here after it was
        handed over. Journaled as pending first, so that a restart of this daemon before
        the executor is told tells it then; told in a worker, tried again until it answers."""
        record = self.journal.get(order_id)
        self.transition(order_id, CANCELLED, record.message + _telling(record.wotype),
                        only_from={CANCELLED},
                        progress=dict(record.progress, **{EXECUTOR_CANCEL: PENDING}))
        self.workers.submit(self._tell_executor, order_id, record.message)

    def _tell_executor(self, order_id, reason):
        """Send *order_id*'s Cancel to its executor until it answers (in a worker); journal
        that it was told, after the Cancel's *reason*."""
        executor = EXECUTOR[self.journal.get(order_id).wotype]
        outage = Outage(log)
        while True:
            try:
                connect(self.config, executor).front_desk(
                    {"WOType": "Cancel", "ID": order_id, "User": KEEPER})
            except xmlrpc.client.Fault as refusal:
                if not unavailable(refusal):  # it has ended there, or never had it
                    log.warning("[WO %s] the %s daemon did not cancel it: %s", order_id,
                                executor, refusal.faultString)
                    break
                outage.failed("[WO %s] the %s daemon cannot take its Cancel now (%s): tried "
                              "again until it can", order_id, executor, refusal.faultString)
            except (OSError, xmlrpc.client.ProtocolError) as error:
                outage.failed("[WO %s] could not tell the %s daemon to cancel it (%s): tried "
                              "again until it answers", order_id, executor, error)
            else:
                break
            if self.workers.stopping.wait(
                    self.clock.real_seconds(self.settings["Dispatch Retry Interval"])):
                return  # still pending in the journal: told at the next start
        outage.answered("[WO %s] the %s daemon has its Cancel", order_id, executor)
        progress = dict(self.journal.get(order_id).progress)
        progress.pop(EXECUTOR_CANCEL, None)
        self.transition(order_id, CANCELLED, f"{reason}; the {executor} daemon was told",
                        only_from={CANCELLED}, progress=progress)


def _telling(wotype):
    """What an order's message says while its executor is being told of its Cancel."""
    return f"; telling the {EXECUTOR[wotype]} daemon"
