"""The dome's safety guard on its own, in the test's process: fine weather, a given clock and
configuration, no daemon."""

from types import SimpleNamespace

from torosmanager.dome.safety import SafetyGuard


class FineWeather:
    """A safety monitor that always reports fresh, safe weather."""

    def __init__(self, clock):
        self.clock = clock

    def state(self):
        return SimpleNamespace(safe=True, reason="", updated=self.clock.now())


def guard_with(config, clock, **options):
    """A :class:`SafetyGuard` for *config* and *clock* under fine weather (*options* go to
    it), not started."""
    handler = SimpleNamespace(config=config, clock=clock, safety_monitor=FineWeather(clock))
    return SafetyGuard(handler, **options)
