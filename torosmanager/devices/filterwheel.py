"""The filter wheel."""

from abc import abstractmethod
from dataclasses import dataclass

from .base import Device


@dataclass
class FilterWheelState:
    """Which filter is in the beam.

    Attributes
    ----------
    names : list of str
        The filters, by slot.
    position : int or None
        The slot in the beam; ``None`` while the wheel turns.
    """

    names: list[str]
    position: int | None

    @property
    def current(self) -> str | None:
        """The name of the filter in the beam, or ``None`` while moving."""
        return None if self.position is None else self.names[self.position]

    def report(self) -> dict[str, str]:
        """The state for a health report: the filter in the beam, or ``"(moving)"``."""
        return {"Filter": "(moving)" if self.current is None else self.current}


class FilterWheel(Device):
    """A filter wheel with named filters."""

    kind = "filter wheel"

    @abstractmethod
    def state(self) -> FilterWheelState:
        """The :class:`FilterWheelState` now."""

    @abstractmethod
    def start_move(self, name: str) -> None:
        """Start turning to the filter called *name*; returns at once.

        Raises :class:`DeviceError` for a name the wheel does not have.
        """

    def focus_offsets(self) -> dict[str, int]:
        """Focuser steps the wheel's driver keeps for each filter, by name (ASCOM's
        ``FocusOffsets``), read at connect; empty when it keeps none (this default)."""
        return {}
