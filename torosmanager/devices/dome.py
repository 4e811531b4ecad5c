"""The dome (enclosure): shutter, azimuth, park, auxiliary outputs."""

import enum
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

from ..units import Degrees
from .base import Device


#: Degrees in a full turn of the dome.
FULL_TURN = 360.0


def azimuth_separation(first: Degrees, second: Degrees) -> Degrees:
    """The smaller angle between two azimuths, 0° to 180° (359° and 1° are 2° apart).

    Examples
    --------
    >>> azimuth_separation(359.0, 1.0)
    2.0
    """
    return abs((first - second + FULL_TURN / 2) % FULL_TURN - FULL_TURN / 2)


class ShutterState(str, enum.Enum):
    """The shutter's state (the ASCOM ``ShutterStatus`` values)."""

    OPEN = "open"
    CLOSED = "closed"
    OPENING = "opening"
    CLOSING = "closing"
    ERROR = "error"


@dataclass
class DomeState:
    """The dome's shutter and position.

    Attributes
    ----------
    shutter : ShutterState
    azimuth : float or None
        Degrees from north through east; ``None`` when the dome cannot tell.
    slewing : bool
        Rotating (or the shutter moving).
    parked : bool
        At its park position.
    outputs : dict
        Auxiliary output number (1 is the warning light) to whether it is on.
    """

    shutter: ShutterState
    azimuth: Degrees | None
    slewing: bool
    parked: bool
    outputs: dict[int, bool] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        """The state for a health report (XML-RPC types), the azimuth only when known."""
        report: dict[str, Any] = {"Shutter": self.shutter.value, "Slewing": self.slewing, "Parked": self.parked}
        if self.azimuth is not None:
            report["Azimuth"] = self.azimuth
        return report


class Dome(Device):
    """A dome or roll-off roof."""

    kind = "dome"

    @abstractmethod
    def state(self) -> DomeState:
        """The :class:`DomeState` now."""

    @abstractmethod
    def start_open(self) -> None:
        """Start opening the shutter; returns at once."""

    @abstractmethod
    def start_close(self) -> None:
        """Start closing the shutter; returns at once."""

    @abstractmethod
    def start_slew(self, azimuth: Degrees) -> None:
        """Start rotating to *azimuth* degrees; returns at once."""

    @abstractmethod
    def start_park(self) -> None:
        """Start moving to the park position; returns at once."""

    @abstractmethod
    def abort(self) -> None:
        """Stop any rotation or shutter motion at once."""

    @abstractmethod
    def set_output(self, number: int, on: bool) -> None:
        """Switch auxiliary output *number* (1 is the warning light) on (blinking) or off."""
