"""The telescope mount."""

from abc import abstractmethod
from dataclasses import dataclass

from .base import Device


@dataclass
class MountState:
    """Where the mount points and what it is doing.

    Attributes
    ----------
    ra, dec : float
        Where it points, ICRS degrees (RA 0–360).
    altitude, azimuth : float
        The same, horizontal, degrees (azimuth from north through east).
    slewing, parked, tracking : bool
        What it is doing.
    """

    ra: float
    dec: float
    altitude: float
    azimuth: float
    slewing: bool
    parked: bool
    tracking: bool


class Mount(Device):
    """An equatorial or alt-az telescope mount."""

    kind = "mount"

    @abstractmethod
    def state(self):
        """The :class:`MountState` now."""

    @abstractmethod
    def unpark(self):
        """Leave the park position (quick; returns when unparked)."""

    @abstractmethod
    def start_slew(self, ra, dec):
        """Start slewing to ICRS *ra*, *dec* (degrees) and track there; returns at once.

        Raises :class:`DeviceError` when parked, or for a target below the horizon limit.
        """

    @abstractmethod
    def start_park(self):
        """Start moving to the park position; returns at once."""

    @abstractmethod
    def abort(self):
        """Stop any slew at once."""

    @abstractmethod
    def set_tracking(self, enabled):
        """Switch sidereal tracking on or off."""
