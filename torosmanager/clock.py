"""One clock for every daemon: real UTC, or a simulated night shared by separate processes.

A simulated clock is fixed by three settings (``Clock`` in the configuration): the simulated
instant ``Start`` that corresponds to the real instant ``Anchor``, and a ``Speed`` factor. Every
process that reads the same configuration computes the same simulated time, with no messages
between them::

    simulated now = Start + Speed × (real now − Anchor)
"""

import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .units import Seconds
from .workorders import format_utc


class Clock:
    """Real or simulated UTC time.

    Parameters
    ----------
    start : datetime, optional
        The simulated instant at *anchor*; ``None`` for real time.
    anchor : datetime, optional
        The real UTC instant *start* corresponds to.
    speed : float
        Simulated seconds per real second.
    """

    def __init__(self, start: datetime | None = None, anchor: datetime | None = None,
                 speed: float = 1.0) -> None:
        if (start is None) != (anchor is None):
            raise ValueError("a simulated clock needs both start and anchor")
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.start = start
        self.anchor = anchor
        self.speed = float(speed)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Clock":
        """The clock the ``Clock`` section of a loaded configuration describes."""
        section = config["Clock"]
        if section["Mode"] == "real":
            return cls()
        return cls(section["Start"], section["Anchor"], section["Speed"])

    @property
    def simulated(self) -> bool:
        """Whether this clock runs on simulated time."""
        return self.start is not None

    def now(self) -> datetime:
        """The current UTC time (timezone-aware)."""
        real = datetime.now(timezone.utc)
        if self.start is None or self.anchor is None:
            return real
        return self.start + (real - self.anchor) * self.speed

    def elapsed(self) -> Seconds:
        """Seconds of clock time on a count that setting the system clock does not move
        (:func:`time.monotonic`); only differences mean anything.

        What must last a given time (a heartbeat's timeout, a delay before the dome reopens)
        is measured so: a clock set back an hour by NTP or by hand would otherwise stretch it
        by that hour, or set forward, end it at once.
        """
        return time.monotonic() * (self.speed if self.simulated else 1.0)

    def sleep(self, seconds: Seconds) -> None:
        """Wait *seconds* of clock time."""
        time.sleep(self.real_seconds(seconds))

    def wait(self, event: threading.Event, seconds: Seconds) -> bool:
        """Wait up to *seconds* of clock time for a :class:`threading.Event`; return its state."""
        return event.wait(self.real_seconds(seconds))

    def real_seconds(self, seconds: Seconds) -> Seconds:
        """How many real seconds *seconds* of clock time take."""
        return max(seconds, 0.0) / self.speed if self.simulated else max(seconds, 0.0)

    def describe(self) -> str:
        """A short description for health reports and logs."""
        if self.start is None or self.anchor is None:
            return "real UTC"
        return (f"simulated, {self.speed:g}× real time, from {format_utc(self.start)} at "
                f"real {format_utc(self.anchor)}")
