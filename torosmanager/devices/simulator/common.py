"""What every simulated device shares: a lock, a connection flag, the clock, argument checks."""

import math
import threading

from ..base import DeviceError

#: The ``Driver`` every simulated device reports in :meth:`describe`.
DRIVER = "simulator"


class SimulatedDevice:
    """Mixin for the simulated devices: connection, locking and the clock.

    Put it first among the bases (``class SimulatedMount(SimulatedDevice, Mount)``) so its
    :meth:`connect` and :meth:`disconnect` implement the interface's abstract methods.

    Parameters
    ----------
    clock : torosmanager.clock.Clock
        Every duration is counted in this clock's (possibly simulated) seconds, on
        :meth:`~torosmanager.clock.Clock.elapsed`: a system clock set back an hour (NTP, a
        person) must not make an exposure or a slew last an hour longer, as it would not a
        real device's. What a device reports of the sky (where the mount points, a frame's
        stars) follows :meth:`~torosmanager.clock.Clock.now`.

    Notes
    -----
    The telescope daemon polls ``state()`` from a worker thread while its front desk asks for
    health from another, so every method that reads or changes the device's state holds
    ``self._lock`` (re-entrant, so :meth:`describe` may call ``state()``).
    """

    def __init__(self, clock):
        super().__init__()
        self._clock = clock
        self._lock = threading.RLock()
        self._connected = False

    @property
    def connected(self):
        """Whether :meth:`connect` was called (and :meth:`disconnect` not since)."""
        return self._connected

    def connect(self):
        """Connect (idempotent); a simulated device is always there."""
        with self._lock:
            self._connected = True

    def disconnect(self):
        """Disconnect (idempotent). Motions under way go on in clock time, as a real one's would."""
        with self._lock:
            self._connected = False

    def _require_connected(self):
        """Raise :class:`DeviceError` unless connected; call with the lock held."""
        if not self._connected:
            raise DeviceError(f"the simulated {self.kind} is not connected")

    def _describe(self, fields):
        """``Driver`` and ``Connected``, then *fields* (plain XML-RPC types only)."""
        return {"Driver": DRIVER, "Connected": self._connected, **fields}


def finite_number(value, what):
    """*value* as a finite float, or :class:`DeviceError` naming *what* it was meant to be."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DeviceError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise DeviceError(f"{what} must be finite, got {value!r}")
    return number
