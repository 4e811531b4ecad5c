"""The scheduler's care of the dome: open it at dusk, close it at dawn, keep its heartbeat.

The dome daemon keeps the instrument safe by itself; the scheduler only tells it when the night
begins and ends, and proves it is alive (a dome that stops hearing the heartbeat closes):

* :meth:`DomeKeeper.keep`, once per dispatcher tick: ask the dome daemon how the dome is (the
  dispatcher sends observations only while it is open and safe: the telescope would refuse
  them, each refusal a try spent); with ``Manage Dome``, when it is dark (Sun below ``Sun
  Altitude``), closed and safe, send it a Dome order to open, unless someone's Dome order
  closed it for this night, during it or in the day before (it then stays closed until a Dome
  order opens it, or the next night); when it is not dark and the dome is open, one to close, and park the telescope. One
  such order at a time: the next waits until the dome daemon has ended it.
* a thread sends a Heartbeat every ``Heartbeat Interval``, and at once when the dome daemon
  says it has heard none yet (it has just started, after the scheduler or again): its guard
  keeps the dome closed until the first one.
"""

import logging
import threading
import xmlrpc.client

from ..client import connect
from ..dome.safety import NEVER_HEARD
from ..journal import CANCELLED, DONE, FAILED
from ..logs import Outage, SaidOnChange
from ..workorders import new_id, parse_utc
from .peer_clocks import PeerClocks

log = logging.getLogger(__name__)

#: The ``User`` of the scheduler's own orders (its close at dawn holds nothing).
KEEPER = "scheduler"


def dome_order_id(now):
    """A new ID for a Dome order of the scheduler's: its time, readable, and a random part,
    since two may be sent within a second (a fast simulated clock, a close right after an
    open). The random part is a whole :func:`~torosmanager.workorders.new_id` (48 bits): with
    6 hexadecimal characters (24 bits), a thousand IDs in one second shared one 3 % of the
    time."""
    return f"scheduler-{now:%Y%m%dT%H%M%S}-{new_id()}"


class DomeKeeper:
    """Opens and closes the dome with the night, and sends the dome daemon its heartbeat.

    Parameters
    ----------
    config : dict
        The configuration (its ``Scheduler`` and ``Observing`` sections, and the daemons'
        addresses).
    clock : Clock
        The shared clock.
    night : Night
        The site's night (:class:`torosmanager.night.Night`), for dusk and dawn.
    """

    def __init__(self, config, clock, night):
        self.config = config
        self.settings = config["Scheduler"]
        self.clock = clock
        self.night = night
        #: Whether the dome was open at the last :meth:`keep` (``None`` before the first, and
        #: while the dome daemon does not answer).
        self.is_open = None
        #: How many auxiliary outputs the dome has, as its daemon last said (``None`` before).
        self.outputs = None
        #: Why nothing is sent to the telescope in the dark, in words for the plan's readers
        #: (``None`` while the dome is open and safe, and by day).
        self.waiting = None
        self._request = None  # the ID of the Dome order being waited on
        self._hold_said = None  # the ID of the Dome order last said to keep the dome closed
        self._may_not_open = SaidOnChange(log)  # why the dome daemon will not open, in the dark
        self._status_outage = Outage(log)     # the dome daemon not answering Status
        self._peer_clocks = PeerClocks(config, clock)
        self._heartbeat_outage = Outage(log)  # ... nor the heartbeat
        self._stopping = False
        self._heartbeat_due = threading.Event()  # set: send one now (or stop)
        self._heartbeat = threading.Thread(target=self._send_heartbeats, name="heartbeat")

    # --- life cycle ---------------------------------------------------------------------

    def start(self):
        """Start sending heartbeats."""
        self._heartbeat.start()

    def stop(self):
        self._stopping = True
        self._heartbeat_due.set()
        if self._heartbeat.is_alive():
            self._heartbeat.join()

    # --- dusk and dawn ------------------------------------------------------------------

    @property
    def request_under_way(self):
        """Whether a Dome order of this keeper's has been sent and not yet seen ended."""
        return self._request is not None

    def keep(self, now, manage=True):
        """Ask the dome daemon how the dome is and, if *manage*, open it at dusk, close it at
        dawn; return ``(open, changed)``: whether the dome is open now, and whether that
        differs from the last call (the plan then needs redoing)."""
        # :attr:`waiting` is set once, whole: the front desk's threads read it meanwhile.
        is_open, changed, self.waiting = self._keep(now, manage)
        return is_open, changed

    def _keep(self, now, manage):
        """:meth:`keep`'s work; also return :attr:`waiting`'s new value."""
        sun_limit = self.config["Observing"]["Sun Altitude"]
        try:
            dome = self._peer_clocks.status("dome", lambda: connect(
                self.config, "dome").front_desk({"WOType": "Status"}))["Devices"]
        except (OSError, xmlrpc.client.Error, KeyError) as error:
            self._status_outage.failed("cannot ask the dome daemon how the dome is: %s", error)
            # Not known open until it answers: a target of opportunity sent meanwhile would
            # only be refused by the telescope, which asks the dome too, each refusal a try.
            self.is_open = None
            return False, False, (f"the dome daemon does not answer ({error})"
                                  if self.night.is_dark(now, sun_limit) else None)
        self._status_outage.answered("the dome daemon answers again")
        self.outputs = dome.get("Auxiliary Outputs", self.outputs)
        if dome.get("Safety", {}).get("Last Heartbeat") == NEVER_HEARD:
            log.info("the dome daemon has heard no heartbeat yet: sending one now")
            self._heartbeat_due.set()
        shutter = dome.get("Enclosure", {}).get("Shutter", "unknown")
        # Open as the telescope sees it before it exposes: open and safe (a shutter that
        # could not close in the rain is open, and no place to observe).
        safe = dome.get("Safety", {}).get("Safe", False)
        is_open = shutter == "open" and safe
        changed = self.is_open is not None and is_open != self.is_open
        if changed:
            log.info("the dome is now %s%s: re-planning", shutter, "" if safe else ", unsafe")
        self.is_open = is_open
        waiting = _waiting(dome, is_open, self.night.is_dark(now, sun_limit))
        if not manage:  # someone else opens and closes it
            if waiting is not None:
                waiting += " (Scheduler → Manage Dome is off: someone else opens it)"
            return is_open, changed, waiting
        if self._request is not None and not self._request_pending():
            self._request = None
        if self._request is not None:
            return is_open, changed, waiting
        # Opened while some of the night is left to plan in (a grid step); closed only once it
        # is over: the plan may end an observation in its last step.
        night = self.night.window(now, sun_limit)
        if night is not None and night.contains(now) and shutter == "closed":
            safety = dome.get("Safety", {})
            if not safety.get("May Open"):
                # Said once per reason: the orders due wait, and the log says for what.
                why = safety.get("Why Not") or safety.get("Reason", "no reason given")
                self._may_not_open.log(why, "dark, but the dome may not open: %s", why)
                waiting = f"the dome is closed and may not open: {why}"
            else:
                held = self._hold(dome.get("Enclosure", {}).get("Closed By Order"), now)
                if held is not None:
                    waiting = held
                else:
                    self._may_not_open.forget()
                    self._request = self._send({"Shutter": "Open"}, now,
                                               "dark and safe: opening the dome")
        elif shutter in ("open", "opening") and not self.night.is_dark(now, sun_limit):
            self._request = self._send({"Shutter": "Close", "Park": True}, now,
                                       "dawn: closing the dome")
            self._park_telescope("dawn")
        return is_open, changed, waiting

    def _hold(self, closed_by_order, now):
        """Why the dome stays closed, if someone's Dome order closed it for tonight
        (*closed_by_order*, as the dome daemon reports it): someone inside, a storm the safety
        monitor does not see; else ``None``.

        A close is for the night in progress when it was made, or for the next one when made by
        day: an operator who closes the dome in the afternoon before going in must not find it
        opened at dusk. It holds until a Dome order opens it, or the night after (the close
        this keeper sends itself, at dawn, holds nothing). The dome daemon keeps that order
        through its restarts (in its journal). In a polar night, which has no dusk to begin
        the next night, only a Dome order opens it."""
        if closed_by_order is None or closed_by_order["User"] == KEEPER:
            return None
        sun_limit = self.config["Observing"]["Sun Altitude"]
        tonight = self.night.window(now, sun_limit, whole=True)
        if tonight is None:
            return None
        closed_at = parse_utc(closed_by_order["At"])
        if tonight.starts_at_dusk and closed_at < tonight.start:
            its_night = self.night.window(closed_at, sun_limit, whole=True)
            if its_night is None or its_night.start != tonight.start:
                return None     # a close for an earlier night
        held = (f"the dome was closed by Dome order {closed_by_order['ID']} from "
                f"{closed_by_order['User']} at {closed_by_order['At']}: it stays closed "
                "tonight; a Dome order with 'Shutter': 'Open' opens it again")
        if self._hold_said != closed_by_order["ID"]:
            self._hold_said = closed_by_order["ID"]
            log.warning("%s", held)
        return held

    def _send(self, actions, now, why):
        order = dict(actions, WOType="Dome", User=KEEPER, ID=dome_order_id(now))
        try:
            connect(self.config, "dome").front_desk(order)
        except xmlrpc.client.Fault as refusal:
            log.warning("the dome refused %s: %s", actions, refusal.faultString)
            return None
        except (OSError, xmlrpc.client.Error) as error:
            log.warning("cannot reach the dome daemon: %s", error)
            return None
        log.info("%s (dome order %s)", why, order["ID"])
        return order["ID"]

    def _request_pending(self):
        try:
            state = connect(self.config, "dome").front_desk(
                {"WOType": "Status", "ID": self._request})["Status"]
        except (OSError, xmlrpc.client.Error):
            return False
        return state not in (DONE, FAILED, CANCELLED)

    def _park_telescope(self, reason):
        try:
            connect(self.config, "telescope").front_desk(
                {"WOType": "Park", "User": KEEPER, "Reason": reason})
        except (OSError, xmlrpc.client.Error) as error:
            log.warning("cannot tell the telescope to park: %s", error)

    # --- heartbeat ----------------------------------------------------------------------

    def _send_heartbeats(self):
        """Tell the dome daemon, every Heartbeat Interval and when :meth:`keep` finds it has
        heard none yet, that the scheduler is alive."""
        while not self._stopping:
            try:
                connect(self.config, "dome").front_desk({"WOType": "Heartbeat",
                                                         "User": KEEPER})
                self._heartbeat_outage.answered("the dome daemon hears the heartbeat again")
            except (OSError, xmlrpc.client.Error) as error:
                self._heartbeat_outage.failed("cannot send the heartbeat to the dome daemon: "
                                              "%s", error)
            self._heartbeat_due.wait(self.clock.real_seconds(self.settings["Heartbeat Interval"]))
            self._heartbeat_due.clear()


def _waiting(dome, is_open, dark):
    """Why nothing is sent to the telescope, from the dome daemon's Status *dome*: ``None``
    when it is open and safe (*is_open*) or not *dark* (the plan waits for the night then)."""
    if is_open or not dark:
        return None
    shutter = dome.get("Enclosure", {}).get("Shutter", "unknown")
    safety = dome.get("Safety", {})
    if safety.get("Safe", False):
        return f"the dome is {shutter}"
    return f"the dome is {shutter}, unsafe: {safety.get('Reason') or 'no reason given'}"
