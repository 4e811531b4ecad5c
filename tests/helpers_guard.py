"""The dome's safety guard on its own, in the test's process: weather of the test's making
(fine unless it says otherwise), a given clock and configuration, no daemon."""

from types import SimpleNamespace

from torosmanager.dome.safety import SafetyGuard


class Weather:
    """A safety monitor reporting fresh weather: safe, unless :attr:`unsafe` says why not."""

    def __init__(self, clock):
        self.clock = clock
        self.unsafe = ""

    def state(self):
        return SimpleNamespace(safe=not self.unsafe, reason=self.unsafe or "safe",
                               updated=self.clock.now())


def guard_with(config, clock, monitor=None, **options):
    """A :class:`SafetyGuard` for *config* and *clock* under *monitor*'s weather (fine, by
    default), closing nothing (*options* go to it), not started."""
    handler = SimpleNamespace(config=config, clock=clock,
                              safety_monitor=monitor or Weather(clock),
                              close_for_safety=lambda reason: None,
                              keep_telescope_parked=lambda: None)
    return SafetyGuard(handler, **options)
