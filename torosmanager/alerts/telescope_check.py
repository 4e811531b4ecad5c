"""Whether the telescope takes the orders each kind of alert asks for, known before an alert.

An alert's orders ask for its kind's filter, exposure time and number of exposures
(``Alerts → Gravitational Waves`` ...). A filter the telescope's wheel lacks ("Clear" where
the wheel says "L") would have every order of every such alert refused, at night, with nobody
there to see it. So the daemon looks at what the telescope takes, as the scheduler last heard
it (the ``Telescope Limits`` of its health Status, which it checks orders against), at its start
and every ``Alerts → Telescope Check Interval`` seconds. It warns in its log when a kind's
orders would be refused (once, until that changes), and its health Status says so
(``Telescope Check``).
"""

import logging
import threading
import xmlrpc.client

from ..client import connect
from ..config import ALERT_KINDS
from ..telescope import limits as telescope_limits
from ..workorders import WorkOrderError, format_utc

log = logging.getLogger(__name__)


def refusals(settings, limits):
    """What the telescope of *limits* (its health Status' ``Limits``) would refuse of the
    orders of each kind of alert acted on under *settings* (the ``Alerts`` section): a sentence
    for each such kind, naming its setting."""
    found = []
    for title in ALERT_KINDS.values():
        kind = settings[title]
        if not kind["Act"]:
            continue
        asked = {key: kind[key] for key in ("Filter", "Exposure Time", "Number of Exposures")}
        try:
            telescope_limits.check(asked, limits)
        except WorkOrderError as error:
            found.append(f"Alerts → {title} → {error}: the telescope would refuse the orders "
                         "of every such alert")
    return found


class TelescopeCheck:
    """The look at what the telescope takes, in a thread of its own (:meth:`start`)."""

    def __init__(self, config, clock):
        self.config = config
        self.settings = config["Alerts"]
        self.clock = clock
        #: The last look, as one tuple (read by the health Status's thread): when it found
        #: what (``None``: never known), and why it is not known now (``None``: it is).
        self._found = (None, None, "not looked at yet")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telescope-check", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def describe(self):
        """The ``Telescope Check`` of the daemon's health Status."""
        checked, refused, unknown = self._found
        if refused is None:
            return {"Result": f"not known: {unknown}"}
        described = {"Checked": checked,
                     "Result": ("the telescope would refuse some kinds' orders"
                                if refused else "the telescope takes every kind's orders")}
        if refused:
            described["Refused"] = list(refused)
        if unknown:
            described["Now"] = f"not known: {unknown}"
        return described

    def _run(self):
        while not self._stopping.is_set():
            try:
                self.look()
            except Exception as error:  # noqa: BLE001 - the check must outlive a bug, said
                log.exception("the look at what the telescope takes failed; tried again in "
                              "%g s", self.settings["Telescope Check Interval"])
                self._not_known(f"the last look failed ({type(error).__name__}: {error})")
            self._stopping.wait(self.settings["Telescope Check Interval"])

    def look(self):
        """Look once at what the telescope takes, and say what changed."""
        try:
            health = connect(self.config, "scheduler").front_desk({"WOType": "Status"})
        except (OSError, xmlrpc.client.Error) as error:
            self._not_known(f"the scheduler does not answer ({error})")
            return
        limits = health.get("Telescope Limits") if isinstance(health, dict) else None
        if not limits or "Filters" not in limits:
            self._not_known("the scheduler has not heard the telescope's filters yet")
            return
        refused = refusals(self.settings, limits)
        if refused != self._found[1]:
            for line in refused:
                log.warning("%s", line)
            if not refused:
                log.info("the telescope takes the orders of every kind of alert acted on "
                         "(filter, exposure time, number of exposures)")
        self._found = (format_utc(self.clock.now()), refused, None)

    def _not_known(self, why):
        checked, refused, _ = self._found
        self._found = (checked, refused, why)
