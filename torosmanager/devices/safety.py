"""The safety monitor: is it safe to open, according to the weather station?"""

from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime

from .base import Device


@dataclass
class SafetyState:
    """The safety monitor's verdict.

    Attributes
    ----------
    safe : bool
        Whether conditions are safe for an open dome.
    updated : datetime or None
        When the weather data behind the verdict were last refreshed (UTC); ``None`` when the
        monitor does not say. The dome daemon treats stale data as unsafe.
    reason : str
        Why, in a few words ("rain", "wind 22 m/s", "safe").
    """

    safe: bool
    updated: datetime | None
    reason: str


class SafetyMonitor(Device):
    """A safety monitor, usually backed by a weather station."""

    kind = "safety monitor"

    @abstractmethod
    def state(self) -> SafetyState:
        """The :class:`SafetyState` now."""
