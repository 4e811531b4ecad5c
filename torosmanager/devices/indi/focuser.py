"""An INDI focuser as a :class:`~torosmanager.devices.Focuser`.

Properties used (standard names; ``Properties`` renames them): ``CONNECTION``,
``ABS_FOCUS_POSITION`` (the position in steps; ``Busy`` while the focuser moves), and, when the
device defines them, ``FOCUS_MAX`` (the largest position, read once, at
:meth:`IndiFocuser.connect`) and ``FOCUS_TEMPERATURE`` (the focuser's sensor).

A device without ``ABS_FOCUS_POSITION`` is a relative focuser, which knows no position: it is
refused at :meth:`IndiFocuser.connect`.

A move returns once the driver has answered its ``ABS_FOCUS_POSITION``, within ``Timeout``.
Most drivers answer ``Busy`` at once; some move before they answer (INDI's focuser simulator
sleeps through the move, 100 µs a step, and then answers ``Ok``), and a move of theirs longer
than ``Timeout`` fails for want of an answer, though the focuser still gets there.
"""

import logging
import math

from ..base import DeviceError
from ..focuser import Focuser, FocuserState, position_refusal
from .connection import BUSY, IndiConnection

logger = logging.getLogger(__name__)

#: Standard property and member names (INDI focuser standard properties).
POSITION = "ABS_FOCUS_POSITION"
POSITION_VALUE = "FOCUS_ABSOLUTE_POSITION"
MAXIMUM = "FOCUS_MAX"
MAXIMUM_VALUE = "FOCUS_MAX_VALUE"
TEMPERATURE = "FOCUS_TEMPERATURE"
TEMPERATURE_VALUE = "TEMPERATURE"


class IndiFocuser(Focuser):
    """An INDI absolute focuser; its maximum is read once, at :meth:`connect`.

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Device``, ``Properties``, ``Timeout`` (seconds per request).
    """

    def __init__(self, device_settings):
        super().__init__()
        self.connection = IndiConnection(self.kind, device_settings)
        #: The largest position, read at :meth:`connect`; ``None`` before.
        self.maximum = None

    def connect(self):
        """Connect, check that the focuser is absolute, and read its maximum.

        Raises
        ------
        DeviceError
            When the device cannot be reached, is a relative focuser (no
            ``ABS_FOCUS_POSITION``) or reports no usable maximum; it is then left disconnected.
        """
        connection = self.connection
        # ABS_FOCUS_POSITION is not required here: its absence is checked below, to say why a
        # relative focuser will not do rather than only that a property is missing.
        connection.connect()
        try:
            self.maximum = self._read_maximum()
        except DeviceError:
            # A refused focuser must not look connected: state() and start_move() need the
            # maximum, and a relative focuser has no position to report.
            self.maximum = None
            connection.disconnect()
            raise
        logger.info("%s: absolute, 0 to %d steps", connection.label, self.maximum)

    def _read_maximum(self):
        """The connected device's largest position; a :class:`DeviceError` if it has none."""
        connection = self.connection
        operation = "connecting"
        position = connection.optional(POSITION, operation)
        if position is None:
            raise connection.error(operation, f"the device does not define "
                                              f"{connection.property_name(POSITION)}: it is a "
                                              "relative focuser (or names it otherwise: rename it "
                                              "with Properties); the focus model needs an "
                                              "absolute focuser, which knows where focus is")
        # FOCUS_MAX is the standard's say; a driver without it bounds the position number itself.
        limit = connection.optional(MAXIMUM, operation)
        if limit is not None:
            maximum = connection.value(limit, MAXIMUM_VALUE, operation)
        else:
            # value() first: it names the member when the property lacks it.
            connection.value(position, POSITION_VALUE, operation)
            maximum = position.limits.get(POSITION_VALUE, (0.0, 0.0))[1]
        if not math.isfinite(maximum) or maximum < 1:
            raise connection.error(operation, f"the focuser reports a maximum of {maximum:g} "
                                              "steps")
        return int(maximum)

    def disconnect(self):
        self.connection.disconnect()

    def describe(self):
        return self.connection.describe(lambda: self.state().report())

    def state(self):
        connection = self.connection
        operation = "reading the position"
        position = connection.read(POSITION, operation)
        sensor = connection.optional(TEMPERATURE, operation)
        temperature = (None if sensor is None
                       else float(connection.value(sensor, TEMPERATURE_VALUE, operation)))
        return FocuserState(
            position=round(connection.value(position, POSITION_VALUE, operation)),
            moving=position.state == BUSY,
            maximum=self.maximum,
            # A sensor that cannot read says so with a number that is none (NaN): unknown.
            temperature=temperature if temperature is not None and math.isfinite(temperature)
            else None,
        )

    def start_move(self, position):
        connection = self.connection
        operation = f"moving to position {position!r}"
        connection.require_connected(operation)
        refusal = position_refusal(position, self.maximum)
        if refusal is not None:
            raise connection.error(operation, refusal)
        connection.send(POSITION, {POSITION_VALUE: position}, operation)
