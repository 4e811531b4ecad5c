"""The telescope mount."""

import math
from abc import abstractmethod
from dataclasses import dataclass

from ..units import Degrees
from .base import Device


#: :attr:`MountState.pier_side` of a German equatorial mount looking east (the tube on the west
#: side of the pier: ASCOM's and INDI's "pier west"), and looking west.
LOOKING_EAST = "west"
LOOKING_WEST = "east"
#: Degrees the camera's frames turn on the sky between the two sides of the pier.
PIER_SIDE_TURN = 180.0


def frame_angle(position_angle, pier_side):
    """A frame's position angle, degrees in [0, 360), for a camera at *position_angle* with
    the tube looking east, the tube on *pier_side* (``None``: the mount does not say, taken
    as looking east)."""
    turn = PIER_SIDE_TURN if pier_side == LOOKING_WEST else 0.0
    return (position_angle + turn) % 360.0


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
    pier_side : {"east", "west", None}
        A German equatorial mount's side of the pier, as ASCOM's ``SideOfPier`` and INDI's
        ``TELESCOPE_PIER_SIDE`` name it (``"west"``: the tube on the west side, looking east);
        ``None`` when the mount does not say.
    """

    ra: Degrees
    dec: Degrees
    altitude: Degrees
    azimuth: Degrees
    slewing: bool
    parked: bool
    tracking: bool
    pier_side: str | None = None


class Mount(Device):
    """An equatorial or alt-az telescope mount."""

    kind = "mount"

    @abstractmethod
    def state(self) -> MountState:
        """The :class:`MountState` now."""

    @abstractmethod
    def unpark(self) -> None:
        """Leave the park position (quick; returns when unparked)."""

    @abstractmethod
    def start_slew(self, ra: Degrees, dec: Degrees) -> None:
        """Start slewing to ICRS *ra*, *dec* (degrees) and track there; returns at once.

        Raises :class:`DeviceError` when parked, or for a target below the horizon limit.
        """

    @abstractmethod
    def start_park(self) -> None:
        """Start moving to the park position; returns at once."""

    @abstractmethod
    def abort(self) -> None:
        """Stop any slew at once."""

    @abstractmethod
    def set_tracking(self, enabled: bool) -> None:
        """Switch sidereal tracking on or off."""


def separation(ra1: Degrees, dec1: Degrees, ra2: Degrees, dec2: Degrees) -> Degrees:
    """The angle on the sky between two points, degrees.

    Parameters
    ----------
    ra1, dec1, ra2, dec2 : float
        The two points' right ascensions and declinations, degrees, in the same frame.

    Returns
    -------
    float
        Degrees in [0, 180]: Vincenty's formula, exact near 0 and 180° alike (a mount a few
        arcseconds from its target, or on the far side of the sky).
    """
    lon = math.radians(ra2 - ra1)
    lat1, lat2 = math.radians(dec1), math.radians(dec2)
    across = math.hypot(math.cos(lat2) * math.sin(lon),
                        math.cos(lat1) * math.sin(lat2)
                        - math.sin(lat1) * math.cos(lat2) * math.cos(lon))
    along = math.sin(lat1) * math.sin(lat2) + math.cos(lat1) * math.cos(lat2) * math.cos(lon)
    return math.degrees(math.atan2(across, along))
