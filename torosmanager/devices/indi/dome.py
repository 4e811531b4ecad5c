"""An INDI dome (or roll-off roof) as a :class:`~torosmanager.devices.Dome`.

Properties used (standard names; ``Properties`` renames them): ``CONNECTION``, ``DOME_SHUTTER``
(``SHUTTER_OPEN``/``SHUTTER_CLOSE``; ``Busy`` while moving, ``Alert`` when it failed), and, when
the device defines them, ``DOME_PARK``, ``ABS_DOME_POSITION`` (azimuth; ``Busy`` while
rotating), ``DOME_MOTION`` (``Busy`` while rotating by hand) and ``DOME_ABORT_MOTION``.
"""

import logging

from ..dome import FULL_TURN, Dome, DomeState, ShutterState
from .connection import ALERT, BUSY, OK, ON, IndiConnection

logger = logging.getLogger(__name__)

#: Standard property and member names (INDI dome standard properties).
SHUTTER = "DOME_SHUTTER"
OPEN = "SHUTTER_OPEN"
CLOSE = "SHUTTER_CLOSE"
PARK = "DOME_PARK"
POSITION = "ABS_DOME_POSITION"
AZIMUTH = "DOME_ABSOLUTE_POSITION"
MOTION = "DOME_MOTION"
ABORT = "DOME_ABORT_MOTION"

#: (switch on, property state) → :class:`ShutterState`; ``Alert`` is an error whatever the switch.
SHUTTER_STATES = {
    (OPEN, OK): ShutterState.OPEN, (OPEN, BUSY): ShutterState.OPENING,
    (CLOSE, OK): ShutterState.CLOSED, (CLOSE, BUSY): ShutterState.CLOSING,
}
#: With the state ``Idle`` (nothing asked since the driver started), the switch tells.
IDLE_SHUTTER_STATES = {OPEN: ShutterState.OPEN, CLOSE: ShutterState.CLOSED}

#: Shutter states in which something moves.
MOVING_SHUTTER = (ShutterState.OPENING, ShutterState.CLOSING)


class IndiDome(Dome):
    """An INDI dome.

    Azimuth is ``None`` for a dome that does not report it (a roll-off roof), and ``parked`` is
    false for one that cannot park.

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Device``, ``Properties``, ``Timeout`` (seconds per request).
    """

    def __init__(self, device_settings):
        super().__init__()
        self.connection = IndiConnection(self.kind, device_settings)
        self._outputs = {}

    def connect(self):
        self.connection.connect(required=(SHUTTER,))

    def disconnect(self):
        self.connection.disconnect()

    def describe(self):
        return self.connection.describe(lambda: self.state().report())

    def state(self):
        connection = self.connection
        operation = "reading the state"
        shutter = self._shutter(connection.read(SHUTTER, operation))
        position = connection.optional(POSITION, operation)
        motion = connection.optional(MOTION, operation)
        rotating = ((position is not None and position.state == BUSY)
                    or (motion is not None and motion.state == BUSY))
        return DomeState(
            shutter=shutter,
            azimuth=(None if position is None
                     else float(connection.value(position, AZIMUTH, operation))),
            slewing=rotating or shutter in MOVING_SHUTTER,
            parked=self._parked(),
            outputs=dict(self._outputs),
        )

    @staticmethod
    def _shutter(reading):
        if reading.state == ALERT:
            return ShutterState.ERROR
        switched = reading.on()
        if len(switched) != 1:
            return ShutterState.ERROR
        if reading.state in (OK, BUSY):
            return SHUTTER_STATES[(switched[0], reading.state)]
        return IDLE_SHUTTER_STATES[switched[0]]

    def _parked(self):
        park = self.connection.optional(PARK, "reading the park state")
        return park is not None and park.values.get("PARK") == ON and park.state == OK

    def set_output(self, number, on):
        """Record auxiliary output *number*. The INDI dome standard has no outputs (a separate
        INDI auxiliary device drives them), so this is state and a warning in the log."""
        if number not in self._outputs:
            logger.warning("the INDI dome has no auxiliary outputs: output %02d is recorded, not "
                           "switched", number)
        self._outputs[int(number)] = bool(on)

    def start_open(self):
        self._start_shutter("opening the shutter", OPEN)

    def start_close(self):
        self._start_shutter("closing the shutter", CLOSE)

    def _start_shutter(self, operation, switch):
        connection = self.connection
        connection.require_connected(operation)
        shutter = connection.read(SHUTTER, operation)
        if shutter.state == OK and shutter.on() == [switch]:
            # Already there: INDI domes would run their shutter motor (and timer) again.
            logger.info("%s: %s: already done", connection.label, operation)
            return
        connection.switch(SHUTTER, switch, operation)

    def start_slew(self, azimuth):
        connection = self.connection
        # INDI accepts [0, 360): 360 is north again.
        azimuth = float(azimuth) % FULL_TURN
        operation = f"slewing to azimuth {azimuth:.2f}°"
        connection.require_connected(operation)
        self._require(POSITION, operation)
        connection.send(POSITION, {AZIMUTH: azimuth}, operation)

    def start_park(self):
        connection = self.connection
        operation = "parking"
        connection.require_connected(operation)
        self._require(PARK, operation)
        connection.switch(PARK, "PARK", operation)

    def abort(self):
        connection = self.connection
        operation = "aborting"
        connection.require_connected(operation)
        self._require(ABORT, operation)
        connection.switch(ABORT, "ABORT", operation)

    def _require(self, standard, operation):
        """Raise a :class:`DeviceError` about *operation* unless the device defines *standard*."""
        if self.connection.optional(standard, operation) is None:
            raise self.connection.error(operation, f"the device cannot do it (it defines no "
                                                   f"{self.connection.property_name(standard)})")
