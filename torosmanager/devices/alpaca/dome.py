"""An ASCOM Alpaca dome (or roll-off roof) as a :class:`~torosmanager.devices.Dome`."""

import logging

from alpaca.dome import Dome as AlpacaDomeDevice
from alpaca.dome import ShutterState as AlpacaShutterState

from ..dome import FULL_TURN, Dome, DomeState, ShutterState
from .connection import AlpacaConnection

logger = logging.getLogger(__name__)

#: ASCOM ``ShutterStatus`` → :class:`ShutterState`.
SHUTTER_STATES = {
    AlpacaShutterState.shutterOpen: ShutterState.OPEN,
    AlpacaShutterState.shutterClosed: ShutterState.CLOSED,
    AlpacaShutterState.shutterOpening: ShutterState.OPENING,
    AlpacaShutterState.shutterClosing: ShutterState.CLOSING,
    AlpacaShutterState.shutterError: ShutterState.ERROR,
}

#: Shutter states in which something moves.
MOVING_SHUTTER = (ShutterState.OPENING, ShutterState.CLOSING)


log = logging.getLogger(__name__)


class AlpacaDome(Dome):
    """An ASCOM Alpaca dome.

    Azimuth is ``None`` for a dome that does not report it (a roll-off roof), and ``parked`` is
    false for one that cannot park.

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Device Number``, ``Timeout`` (seconds per request).
    """

    def __init__(self, device_settings):
        super().__init__()
        self.connection = AlpacaConnection(self.kind, AlpacaDomeDevice, device_settings)
        self._outputs = {}

    def connect(self):
        self.connection.connect()

    def disconnect(self):
        self.connection.disconnect()

    def describe(self):
        return self.connection.describe(lambda: self.state().report())

    def state(self):
        connection = self.connection
        connection.require_connected("reading the state")
        shutter = SHUTTER_STATES[AlpacaShutterState(connection.get("ShutterStatus"))]
        azimuth = connection.optional("Azimuth")
        return DomeState(
            shutter=shutter,
            azimuth=None if azimuth is None else float(azimuth),
            slewing=connection.flag("Slewing") or shutter in MOVING_SHUTTER,
            parked=connection.flag("AtPark", default=False),
            outputs=dict(self._outputs),
        )

    def set_output(self, number, on):
        """Record auxiliary output *number*. The ASCOM Dome standard has no outputs (an ASCOM
        Switch device drives them), so this is state and a warning in the log, not a switch."""
        if number not in self._outputs:
            log.warning("the Alpaca dome has no auxiliary outputs: output %02d is recorded, not "
                        "switched (drive it through an ASCOM Switch device)", number)
        self._outputs[int(number)] = bool(on)

    def start_open(self):
        self._start_shutter("opening the shutter", "OpenShutter")

    def start_close(self):
        self._start_shutter("closing the shutter", "CloseShutter")

    def start_slew(self, azimuth):
        connection = self.connection
        # ASCOM accepts [0, 360): 360 is north again.
        azimuth = float(azimuth) % FULL_TURN
        operation = f"slewing to azimuth {azimuth:.2f}°"
        connection.require_connected(operation)
        connection.capable("CanSetAzimuth", operation)
        connection.start(operation, connection.device.SlewToAzimuth, azimuth)

    def start_park(self):
        connection = self.connection
        connection.require_connected("parking")
        connection.capable("CanPark", "parking")
        connection.start("parking", connection.device.Park)

    def abort(self):
        # ASCOM's AbortSlew stops the shutter too.
        self.connection.require_connected("aborting")
        self.connection.run("AbortSlew")

    def _start_shutter(self, operation, method):
        connection = self.connection
        connection.require_connected(operation)
        connection.capable("CanSetShutter", operation)
        connection.start(operation, getattr(connection.device, method))
