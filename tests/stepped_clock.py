"""A clock that moves only when a test says so: for the simulated devices and the nights they make."""

from datetime import datetime, timedelta, timezone

from torosmanager.clock import Clock

#: The night the simulator tests happen in.
NIGHT = datetime(2026, 11, 21, 5, 0, tzinfo=timezone.utc)


class SteppedClock(Clock):
    """A simulated clock that moves only when the test says so."""

    def __init__(self, start=NIGHT):
        super().__init__(start=start, anchor=start, speed=1.0)
        self.current = start
        self._elapsed = 0.0

    def now(self):
        return self.current

    def elapsed(self):
        return self._elapsed

    def advance(self, seconds):
        self.current += timedelta(seconds=seconds)
        self._elapsed += seconds

    def set_to(self, instant):
        """Set the clock, as NTP or a person sets the system clock: :meth:`elapsed` is not
        moved."""
        self.current = instant
