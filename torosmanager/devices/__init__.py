"""Devices: one small interface per kind, a dataclass for its state, drivers behind them.

=================  =====================  ==========================================
kind               interface              state
=================  =====================  ==========================================
mount              :class:`Mount`         :class:`MountState`
camera             :class:`Camera`        :class:`CameraState`, :class:`CameraInfo`
filter wheel       :class:`FilterWheel`   :class:`FilterWheelState`
focuser            :class:`Focuser`       :class:`FocuserState`
dome (enclosure)   :class:`Dome`          :class:`DomeState`
safety monitor     :class:`SafetyMonitor` :class:`SafetyState`
=================  =====================  ==========================================

Long operations (slew, park, shutter, filter change, focus move, exposure) are *started* by a
method that returns at once and then followed through the device's ``state()``;
:func:`wait_for` does the polling with a timeout, so a device that stops answering fails the
work order instead of hanging it. Every device failure is a :class:`DeviceError`.

Drivers, chosen per device in the configuration (``Driver``; see the README's table and
docs/devices/): ``simulator`` (in-process, the default), ``alpaca`` (ASCOM Alpaca devices
through alpyca), ``indi`` (INDI devices through indipyclient), ``lx200`` (an LX200 mount on a
serial line or TCP, through pyserial) and ``text-tcp`` (a mount computer's plain-text protocol).
Mounts share :mod:`.coordinates` (ICRS ↔ apparent place).
"""

from .base import Device, DeviceError, wait_for
from .camera import Camera, CameraInfo, CameraState, FrameType
from .dome import Dome, DomeState, ShutterState
from .filterwheel import FilterWheel, FilterWheelState
from .focuser import Focuser, FocuserState
from .mount import Mount, MountState
from .safety import SafetyMonitor, SafetyState

__all__ = [
    "Device", "DeviceError", "wait_for",
    "Mount", "MountState",
    "Camera", "CameraInfo", "CameraState", "FrameType",
    "FilterWheel", "FilterWheelState",
    "Focuser", "FocuserState",
    "Dome", "DomeState", "ShutterState",
    "SafetyMonitor", "SafetyState",
]
