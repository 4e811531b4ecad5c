"""The CCD camera."""

import enum
from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..units import Celsius, Micrometres, Seconds
from .base import Device

if TYPE_CHECKING:  # for the checker only: numpy is loaded by the drivers that make images
    import numpy as np
    from numpy.typing import NDArray

    #: A frame: a 2-D array indexed ``[y, x]`` of unsigned ADU.
    Image = NDArray[np.unsignedinteger[Any]]


class FrameType(str, enum.Enum):
    """What a frame is for; also the FITS ``IMAGETYP``."""

    LIGHT = "LIGHT"
    BIAS = "BIAS"
    DARK = "DARK"
    FLAT = "FLAT"

    @property
    def shutter_open(self) -> bool:
        """Whether the shutter opens for this kind of frame."""
        return self in (FrameType.LIGHT, FrameType.FLAT)


@dataclass
class CameraInfo:
    """What does not change while connected.

    Attributes
    ----------
    name : str
        The camera's model, for ``INSTRUME``.
    width, height : int
        Pixels of a frame at the current binning.
    binning : int
        Binning factor, the same on both axes.
    gain : float
        Electrons per ADU.
    read_noise : float
        Electrons RMS.
    pixel_size : float
        Micrometres, unbinned.
    max_adu : int
        Saturation level.
    """

    name: str
    width: int
    height: int
    binning: int
    gain: float
    read_noise: float
    pixel_size: Micrometres
    max_adu: int


@dataclass
class CameraState:
    """What the camera is doing.

    Attributes
    ----------
    exposing : bool
        An exposure (or its readout) is under way.
    image_ready : bool
        The last exposure can be read with :meth:`Camera.image`.
    percent_complete : float or None
        Progress of the exposure, when the camera reports it.
    temperature : float or None
        CCD temperature, °C.
    """

    exposing: bool
    image_ready: bool
    percent_complete: float | None = None
    temperature: Celsius | None = None


class Camera(Device):
    """A CCD camera."""

    kind = "camera"

    @abstractmethod
    def info(self) -> CameraInfo:
        """The :class:`CameraInfo`."""

    @abstractmethod
    def state(self) -> CameraState:
        """The :class:`CameraState` now."""

    @abstractmethod
    def start_exposure(self, seconds: Seconds, frame_type: FrameType) -> None:
        """Start an exposure of *seconds* of the :class:`FrameType`; returns at once."""

    @abstractmethod
    def abort(self) -> None:
        """Abort the exposure under way (its image is discarded)."""

    @abstractmethod
    def image(self) -> "Image":
        """The last image: a 2-D :class:`numpy.ndarray` indexed ``[y, x]`` of unsigned ADU."""

    @abstractmethod
    def set_cooling(self, setpoint: Celsius) -> None:
        """Switch the cooler on and regulate the CCD at *setpoint* °C; returns at once (the
        CCD then takes its time: :attr:`CameraState.temperature`).

        Raises :class:`~.base.NotCapable` for a camera that cannot set its temperature.
        """
