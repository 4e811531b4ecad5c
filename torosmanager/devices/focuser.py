"""The focuser: an absolute focuser, moved to a position in steps."""

from abc import abstractmethod
from dataclasses import dataclass

from .base import Device


@dataclass
class FocuserState:
    """Where the focuser is, and the temperature it reads.

    Attributes
    ----------
    position : int
        Steps from the focuser's zero (while moving: where it is on the way).
    moving : bool
        Whether it is moving.
    maximum : int
        The largest position it can move to (ASCOM's ``MaxStep``, INDI's ``FOCUS_MAX``).
    temperature : float or None
        °C at the focuser's sensor (the tube's temperature, which the focus follows);
        ``None`` when it has no sensor.
    """

    position: int
    moving: bool
    maximum: int
    temperature: float | None = None

    def report(self) -> dict[str, object]:
        """The state for a health report (XML-RPC types: no ``None``)."""
        return {"Position": self.position, "Moving": self.moving, "Maximum": self.maximum,
                "Temperature": "n/a" if self.temperature is None else self.temperature}


class Focuser(Device):
    """An absolute focuser. A relative one (it knows no position) is refused at
    :meth:`connect`: the focus model needs to know where focus is."""

    kind = "focuser"

    @abstractmethod
    def state(self) -> FocuserState:
        """The :class:`FocuserState` now."""

    @abstractmethod
    def start_move(self, position: int) -> None:
        """Start moving to *position* steps; returns at once.

        Raises :class:`DeviceError` for a position outside 0 to the focuser's maximum (the
        message says the range).
        """


def position_refusal(position: object, maximum: int) -> str | None:
    """Why *position* is no position for a focuser of *maximum* steps, or ``None`` when it is
    one. Drivers refuse such a position before sending anything: a device may clamp it
    silently, leaving the focus somewhere nobody asked for. A bool is an int to Python but no
    position."""
    if (isinstance(position, bool) or not isinstance(position, int)
            or not 0 <= position <= maximum):
        return f"the focuser takes a whole number of steps from 0 to {maximum}"
    return None
