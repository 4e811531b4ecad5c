"""The ``lx200`` driver: a mount that speaks the Meade LX200 command language.

The mount is reached through pyserial's :func:`serial.serial_for_url`: a serial port
(``/dev/ttyUSB0``) or ``socket://HOST:PORT``. The ``Dialect`` setting says which LX200 it
speaks (meade, onstep, 10micron), which decides how the driver reads the status and parks,
unparks and switches tracking (:mod:`.dialects`). Every request is bounded by the ``Timeout``
setting, and every failure is a :class:`~torosmanager.devices.DeviceError` naming the device,
the operation, the command and the cause.

Modules: :mod:`.protocol` (pure formatting and parsing), :mod:`.connection` (the port),
:mod:`.dialects`, :mod:`.mount`.
"""

from .mount import Lx200Mount

__all__ = ["Lx200Mount"]
