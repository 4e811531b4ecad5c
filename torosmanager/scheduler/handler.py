"""The scheduler's work: hand each accepted order to the daemon that executes it.

It also sends the dome daemon its heartbeat (``Scheduler → Heartbeat Interval``): a dome that
stops hearing it closes.

An order is forwarded, in a worker, to the telescope daemon (Observation) or the dome daemon
(Dome) with its assigned Priority. A daemon that does not answer is tried again
(``Scheduler → Dispatch Attempts``, ``Dispatch Retry Interval``); one that refuses the order
fails it with the refusal's message. Cancelling a dispatched order cancels it there too.
"""

import logging
import threading
import xmlrpc.client

from ..client import connect
from ..config import address_key
from ..handler import Handler, Workers
from ..journal import DISPATCHED, FAILED, QUEUED

log = logging.getLogger(__name__)

#: Which daemon executes each WOType the scheduler takes.
EXECUTOR = {"Observation": "telescope", "Dome": "dome"}

#: Orders handed over at once; forwarding is quick, so a few threads are plenty.
DISPATCH_THREADS = 4


class SchedulerHandler(Handler):
    """Forward Observation orders to the telescope daemon and Dome orders to the dome daemon."""

    service = "scheduler"
    wotypes = ("Observation", "Dome")

    def __init__(self, config, journal, clock):
        super().__init__(config, journal, clock)
        self.settings = config["Scheduler"]
        self.workers = Workers("dispatch", DISPATCH_THREADS)
        self._heartbeat_stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._send_heartbeats, name="heartbeat")

    def accepted(self, record):
        self.transition(record.id, QUEUED, f"queued for the {EXECUTOR[record.wotype]} daemon")
        self.workers.submit(self.dispatch, record.id)

    def resume(self, record):
        super().resume(record)
        if self.journal.get(record.id).state == QUEUED:
            self.workers.submit(self.dispatch, record.id)

    def cancelled(self, record, previous_state):
        if previous_state == DISPATCHED:
            self.workers.submit(self._cancel_at_executor, record)

    def devices(self):
        return {service: self.config[address_key(service)]["HTTP"]
                for service in sorted(set(EXECUTOR.values()))}

    def start(self):
        super().start()
        self._heartbeat.start()

    def stop(self):
        self.workers.stop()
        self._heartbeat_stop.set()
        if self._heartbeat.is_alive():
            self._heartbeat.join()

    def _send_heartbeats(self):
        """Tell the dome daemon, every Heartbeat Interval, that the scheduler is alive."""
        failing = False
        while True:
            try:
                connect(self.config, "dome").front_desk({"WOType": "Heartbeat",
                                                         "User": "scheduler"})
                if failing:
                    log.info("the dome daemon hears the heartbeat again")
                failing = False
            except (OSError, xmlrpc.client.Error) as error:
                if not failing:  # once per outage, not every interval
                    log.warning("cannot send the heartbeat to the dome daemon: %s", error)
                failing = True
            if self._heartbeat_stop.wait(
                    self.clock.real_seconds(self.settings["Heartbeat Interval"])):
                return

    def dispatch(self, order_id):
        """Hand one queued order to its executor, trying again while it does not answer."""
        record = self.journal.get(order_id)
        if record is None or record.state != QUEUED:
            return
        executor = EXECUTOR[record.wotype]
        attempts = self.settings["Dispatch Attempts"]
        for attempt in range(1, attempts + 1):
            if self.workers.stopping.is_set():
                return  # still queued in the journal: dispatched after the restart
            try:
                receipt = connect(self.config, executor).front_desk(record.work_order)
            except xmlrpc.client.Fault as refusal:
                self.transition(order_id, FAILED, f"the {executor} daemon refused it: "
                                f"{refusal.faultString}", only_from={QUEUED})
                return
            except (OSError, xmlrpc.client.ProtocolError) as error:
                log.warning("[WO %s] the %s daemon did not answer (attempt %d of %d): %s",
                            order_id, executor, attempt, attempts, error)
                last_error = error
                if attempt < attempts:
                    self.workers.stopping.wait(
                        self.clock.real_seconds(self.settings["Dispatch Retry Interval"]))
                continue
            reason = (f"dispatched to the {executor} daemon, which answered "
                      f"{receipt.get('Status')}: {receipt.get('Message')}")
            if self.transition(order_id, DISPATCHED, reason, only_from={QUEUED}) is None:
                # Cancelled while we were handing it over: cancel it there too.
                self._cancel_at_executor(self.journal.get(order_id))
            return
        self.transition(order_id, FAILED, f"the {executor} daemon did not answer after "
                        f"{attempts} attempts: {last_error}", only_from={QUEUED})

    def _cancel_at_executor(self, record):
        executor = EXECUTOR[record.wotype]
        try:
            connect(self.config, executor).front_desk(
                {"WOType": "Cancel", "ID": record.id, "User": "scheduler"})
        except xmlrpc.client.Fault as refusal:
            log.warning("[WO %s] the %s daemon did not cancel it: %s", record.id, executor,
                        refusal.faultString)
        except (OSError, xmlrpc.client.ProtocolError) as error:
            log.error("[WO %s] could not tell the %s daemon to cancel it: %s", record.id,
                      executor, error)
