"""The ``alpaca`` driver: ASCOM Alpaca devices through the alpyca client.

Each class wraps one alpyca device object in an :class:`~.connection.AlpacaConnection`, which
bounds every HTTP request by the device's ``Timeout`` setting and turns every failure (an Alpaca
error, a refused or silent server, a malformed answer) into a
:class:`~torosmanager.devices.DeviceError` naming the device, the operation and the cause.

Long operations (slew, park, shutter, filter change, focus move, exposure) are started and
return at once; callers follow them through ``state()``.

Note that alpyca serialises the requests of all its devices in a process (one lock around each
request), so a device that stops answering delays the others by up to its ``Timeout`` per request.
"""

from .camera import AlpacaCamera
from .dome import AlpacaDome
from .filterwheel import AlpacaFilterWheel
from .focuser import AlpacaFocuser
from .mount import AlpacaMount
from .safety import AlpacaSafetyMonitor

__all__ = ["AlpacaMount", "AlpacaCamera", "AlpacaFilterWheel", "AlpacaFocuser", "AlpacaDome",
           "AlpacaSafetyMonitor"]
