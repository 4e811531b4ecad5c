"""Frames handed to the preprocessor, now or, if it does not answer, as soon as it does.

An Observation with ``Output: Analysis`` ends by handing its frames to the preprocessor: the
telescope's when it ends done (:meth:`PendingHandOffs.at_end`), the scheduler's when it ends
failed for good with frames taken (tries spent, or its window ended while it waited to be tried
again: the frames taken are calibrated all the same). When the preprocessor does not answer
(stopped, restarting, its journal's disk full), the order ends all the same, so that the
night goes on, and its progress says ``Hand-off: pending``. :class:`PendingHandOffs` tries
again every ``Telescope → Hand-off Retry Interval`` until the preprocessor takes the frames,
then journals the preprocessing order's ID in the order (``Preprocessing ID``). Pending
hand-offs are found again in the journal at start: a restart of either daemon loses none. A
hand-off's order has an ID made from the observation's and its files (:func:`hand_off_id`):
sent again after the preprocessor took it but before its answer came back (either daemon
stopped in between), it is the same order, received once, not a second calibration of the
frames. The scheduler follows the telescope's until they are handed over, and takes the
telescope's last word (:meth:`~torosmanager.scheduler.dispatcher.Dispatcher._follow_hand_offs`).

At an observation's first frame, the telescope also asks the preprocessor to prepare the
frames' calibration (:func:`prepare_calibration`), so that their job, at the end, finds its
terms made.
"""

import hashlib
import json
import logging
import threading
import xmlrpc.client

from .client import connect, unavailable
from .journal import DONE
from .logs import Outage
from .workorders import MAX_ID_CHARACTERS, PREPARE_CALIBRATION

log = logging.getLogger(__name__)

#: Hex digits of the hash of an observation's ID and files in its hand-off's ID.
HAND_OFF_HASH_DIGITS = 12
#: How the step of an order handing its frames over begins (they are all taken then).
HANDING = "handing "
#: The progress key of a hand-off still to be made, and its value.
HAND_OFF, PENDING = "Hand-off", "pending"


class NotNow(Exception):
    """The preprocessor did not answer, or answered that it cannot take orders now: it may
    take the frames later."""


def hand_off_id(order_id, files, kind="frames"):
    """The ID of the Preprocessing order handing *files* of observation *order_id* over: the
    same for the same frames, another when a retried observation hands over more. (*kind*
    "prepare": the ID of the order preparing their calibration, :func:`prepare_calibration`.)"""
    digest = hashlib.sha256(json.dumps([order_id, files]).encode()).hexdigest()
    suffix = f"-{kind}-{digest[:HAND_OFF_HASH_DIGITS]}"
    return order_id[:MAX_ID_CHARACTERS - len(suffix)] + suffix


def hand_over(config, order_id, files, priority, user="telescope"):
    """Hand *files* of observation *order_id* to the preprocessor as a Preprocessing order
    (:func:`hand_off_id`) of the observation's *priority* (a target of opportunity's frames
    are calibrated before the night's other frames waiting), from *user* (the daemon that
    sends it); its receipt.

    Raises
    ------
    NotNow
        It may take them later.
    xmlrpc.client.Fault
        It refused them, which trying again would not change.
    """
    order = {"ID": hand_off_id(order_id, files), "WOType": "Preprocessing",
             "File Location": files, "User": user, "Priority": priority}
    try:
        return connect(config, "preprocessor").front_desk(order)
    except xmlrpc.client.Fault as fault:
        if unavailable(fault):
            raise NotNow(fault) from None
        raise
    except (OSError, xmlrpc.client.Error) as error:
        raise NotNow(error) from None


def prepare_calibration(config, order_id, first_frame, priority):
    """Ask the preprocessor to make the calibration terms of observation *order_id*'s frames
    now, from its *first_frame*, while the telescope takes the others (``Request: Prepare
    Calibration``): the job it is handed at the end then does not make them. Only a help to
    that job: a preprocessor that does not take it is logged, and nothing is tried again.
    Sent from a thread of its own: *first_frame*'s exposures go on meanwhile."""
    order = {"ID": hand_off_id(order_id, [first_frame], "prepare"), "WOType": "Preprocessing",
             "Request": PREPARE_CALIBRATION, "File Location": [first_frame],
             "User": "telescope", "Priority": priority}
    try:
        receipt = connect(config, "preprocessor").front_desk(order)
    except (OSError, xmlrpc.client.Error) as error:
        log.info("[WO %s] the preprocessor was not asked to prepare the calibration of its "
                 "frames (%s): their job will make its terms", order_id, error)
        return
    log.debug("[WO %s] the preprocessor prepares the calibration of its frames: order %s",
              order_id, receipt["ID"])


class PendingHandOffs:
    """The hand-offs the preprocessor could not take yet, tried again in a thread of their own.

    Parameters
    ----------
    handler : Handler
        Its ``journal``, ``config`` and ``transition``.
    state : OrderState
        The state of the orders whose frames wait: ``done`` at the telescope, ``failed`` at
        the scheduler.
    """

    def __init__(self, handler, state=DONE):
        self.handler = handler
        self.state = state
        self._pending = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hand-offs")
        self._outage = Outage(log)

    def start(self):
        """Find the hand-offs a stopped daemon left pending; start trying them again."""
        left = self.handler.journal.in_states([self.state], "Observation",
                                              progress=(HAND_OFF, PENDING))
        if left:
            log.info("%d hand-off(s) to the preprocessor pending from before the restart",
                     len(left))
        with self._lock:
            self._pending.update(record.id for record in left)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def at_end(self, order_id, files, progress, priority):
        """Hand the frames of *order_id* (of *priority*), which is ending, over now, or else
        later; the words for its message. *progress* gets the ``Preprocessing ID``, or
        ``Hand-off: pending`` (the order is added to the pending ones: journal its end with
        that *progress*)."""
        try:
            receipt = hand_over(self.handler.config, order_id, files, priority,
                                self.handler.service)
        except NotNow as error:
            # The night goes on: the frames are handed over once the preprocessor answers.
            log.warning("[WO %s] the preprocessor does not answer (%s): its frames are handed "
                        "to it as soon as it does", order_id, error)
            progress[HAND_OFF] = PENDING
            with self._lock:
                self._pending.add(order_id)
            return (f"the preprocessor does not answer ({error}): they are handed to it as "
                    "soon as it does")
        except xmlrpc.client.Fault as refusal:
            log.error("[WO %s] the preprocessor refused its frames: %s", order_id, refusal)
            return f"the preprocessor refused them: {refusal}"
        progress["Preprocessing ID"] = receipt["ID"]
        return f"handed to the preprocessor as order {receipt['ID']}"

    def add(self, order_id):
        """Count *order_id*'s frames as pending, before its end (``Hand-off: pending`` in its
        progress) is journaled, so that no health report shows the end without them; they
        are handed over once the end is journaled (:meth:`wake`)."""
        with self._lock:
            self._pending.add(order_id)

    def wake(self):
        """Try the pending hand-offs now (in their own thread)."""
        self._wake.set()

    def count(self):
        """How many hand-offs are pending (for the health report)."""
        with self._lock:
            return len(self._pending)

    def _run(self):
        while True:
            self._wake.wait(self.handler.config["Telescope"]["Hand-off Retry Interval"])
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.try_again()
            except Exception:  # noqa: BLE001 - the next pass tries again; the log says why
                log.exception("the pending hand-offs to the preprocessor failed; trying again")

    def try_again(self):
        """One pass over the pending hand-offs, oldest ID first, until the preprocessor does
        not answer."""
        with self._lock:
            pending = sorted(self._pending)
        for order_id in pending:
            if self._stop.is_set() or not self._hand_over(order_id):
                return

    def _hand_over(self, order_id):
        """Hand *order_id*'s frames over; ``False`` when the preprocessor does not answer."""
        record = self.handler.journal.get(order_id)
        if record is not None and not record.finished:
            return True  # its end is being journaled (see at_end): the next pass
        if (record is None or record.state != self.state
                or record.progress.get(HAND_OFF) != PENDING):
            with self._lock:
                self._pending.discard(order_id)
            return True
        progress = dict(record.progress)
        del progress[HAND_OFF]
        try:
            receipt = hand_over(self.handler.config, order_id, progress["Files"],
                                record.priority, self.handler.service)
        except NotNow as error:
            self._outage.failed("the preprocessor still does not answer (%s): %d hand-off(s) "
                                "pending", error, self.count())
            return False
        except xmlrpc.client.Fault as refusal:
            log.error("[WO %s] the preprocessor refused its frames: %s", order_id, refusal)
            message = f"{record.message}; the preprocessor refused them: {refusal}"
        else:
            self._outage.answered("the preprocessor answers again")
            progress["Preprocessing ID"] = receipt["ID"]
            message = f"{record.message}; handed to it later, as order {receipt['ID']}"
            log.info("[WO %s] %d frame(s) handed to the preprocessor as order %s", order_id,
                     len(progress["Files"]), receipt["ID"])
        self.handler.transition(order_id, self.state, message, only_from={self.state},
                                progress=progress)
        with self._lock:
            self._pending.discard(order_id)
        return True
