"""Whether the telescope's and the dome's daemons keep the scheduler's time.

Why: the scheduler plans by its own clock, and the telescope and the dome act by theirs. Daemons
on several machines whose clocks drift apart, or a ``Clock`` setting changed and only some
daemons restarted, make every plan wrong where it is carried out: a target the scheduler sees
high is too low for the telescope (each refusal a try spent), and the dome closes at the
scheduler's dawn in the middle of its own night. Each daemon's health Status says its ``Now``;
the scheduler compares it with its own whenever it reads one, and says a difference larger than
``Max Clock Difference`` once, and once when it is gone.
"""

import logging
import time

from ..logs import Outage
from ..workorders import parse_utc

log = logging.getLogger(__name__)


class PeerClocks:
    """Compares the ``Now`` of other daemons' health Status with this daemon's clock.

    Parameters
    ----------
    config : dict
        The configuration (``Scheduler → Max Clock Difference``).
    clock : Clock
        This daemon's clock.
    """

    def __init__(self, config, clock):
        self.limit = config["Scheduler"]["Max Clock Difference"]
        self.clock = clock
        self._outages = {}

    def status(self, service, ask):
        """*ask()*'s answer, the health Status of *service*, its clock compared with this one.

        The time the answer took, in this clock's seconds, is allowed on top of the limit: at
        a simulated clock's speed, a few milliseconds of network are many seconds.
        """
        began = time.monotonic()
        health = ask()
        took = time.monotonic() - began
        there = health.get("Now") if isinstance(health, dict) else None
        if isinstance(there, str):
            self._compare(service, there, took)
        return health

    def _compare(self, service, there, took):
        try:
            difference = (parse_utc(there) - self.clock.now()).total_seconds()
        except ValueError:      # not a time: nothing to compare
            return
        outage = self._outages.setdefault(service, Outage(log))
        if abs(difference) > self.limit + took * self.clock.speed:
            outage.failed("the %s daemon's clock reads %s, %+.0f s from the scheduler's "
                          "(Scheduler → Max Clock Difference: %g s): what is planned here is "
                          "too early or too late there (a target too low, the dome closed at "
                          "another dawn). Give every daemon the same Clock settings, and keep "
                          "the machines' clocks on time (NTP)", service, there, difference,
                          self.limit)
        else:
            outage.answered("the %s daemon's clock agrees with the scheduler's again", service)
