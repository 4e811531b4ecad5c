"""The ``indi`` driver: INDI devices (KStars/Ekos' device layer) through indipyclient.

Each class holds an :class:`~.connection.IndiConnection`: its own indipyclient client, running in
a background thread with its own asyncio event loop, which connects the device on the server
(``CONNECTION``), waits until it defines the properties the driver needs, and turns every call
from the daemon's threads into a synchronous one bounded by the device's ``Timeout``. A request
that gets no answer, a property the driver sets to ``Alert`` (a refusal) and a lost connection
are :class:`~torosmanager.devices.DeviceError`\\ s naming the device, the operation and the cause.

Standard INDI property names are used; ``Properties`` in a device's configuration renames any of
them where a driver departs from the standard.

Long operations (slew, park, shutter, filter change, focus move, exposure) are started and
return once the server has acknowledged them; callers follow them through ``state()``.
"""

from .camera import IndiCamera
from .dome import IndiDome
from .filterwheel import IndiFilterWheel
from .focuser import IndiFocuser
from .mount import IndiMount
from .safety import IndiSafetyMonitor

__all__ = ["IndiCamera", "IndiDome", "IndiFilterWheel", "IndiFocuser", "IndiMount",
           "IndiSafetyMonitor"]
