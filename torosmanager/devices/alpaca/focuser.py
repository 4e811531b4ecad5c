"""An ASCOM Alpaca focuser as a :class:`~torosmanager.devices.Focuser`."""

import logging

from alpaca.focuser import Focuser as AlpacaFocuserDevice

from ..base import DeviceError
from ..focuser import Focuser, FocuserState, position_refusal
from .connection import AlpacaConnection

logger = logging.getLogger(__name__)


class AlpacaFocuser(Focuser):
    """An ASCOM Alpaca absolute focuser; its ``MaxStep`` is read once, at :meth:`connect`.

    A relative focuser is refused at :meth:`connect`, and temperature compensation is switched
    off there (see :meth:`connect`).

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Device Number``, ``Timeout`` (seconds per request).
    """

    def __init__(self, device_settings):
        super().__init__()
        self.connection = AlpacaConnection(self.kind, AlpacaFocuserDevice, device_settings)
        #: The largest position (``MaxStep``), read at :meth:`connect`; ``None`` before.
        self.maximum = None

    def connect(self):
        """Connect, check that the focuser is absolute, read its maximum, and switch its
        temperature compensation off.

        Raises
        ------
        DeviceError
            When the device cannot be reached or read, or is a relative focuser; the device is
            then left disconnected.
        """
        connection = self.connection
        connection.connect()
        try:
            self.maximum = self._prepare()
        except DeviceError:
            # A refused or half-read focuser must not look connected: state() and start_move()
            # need its maximum, and a relative focuser has no position to report.
            self.maximum = None
            connection.disconnect()
            raise
        logger.info("%s: absolute, 0 to %d steps", connection.label, self.maximum)

    def _prepare(self):
        """Check the connected device and return its ``MaxStep``; raise :class:`DeviceError`."""
        connection = self.connection
        if not connection.flag("Absolute"):
            raise connection.error("connecting", "it is a relative focuser (Absolute is false); "
                                                 "the focus model needs an absolute focuser, "
                                                 "which knows where focus is")
        maximum = int(connection.get("MaxStep"))
        # ASCOM forbids Move while TempComp is on (InvalidOperationException), and the telescope
        # daemon's focus model compensates for temperature itself: two compensations would fight.
        if connection.flag("TempCompAvailable") and connection.flag("TempComp"):
            connection.set("TempComp", False)
            logger.info("%s: switched its temperature compensation off: ASCOM forbids moves "
                        "while it is on, and the telescope daemon's focus model compensates for "
                        "temperature itself", connection.label)
        return maximum

    def disconnect(self):
        self.connection.disconnect()

    def describe(self):
        return self.connection.describe(lambda: self.state().report())

    def state(self):
        connection = self.connection
        connection.require_connected("reading the position")
        # A focuser without a sensor raises NotImplementedException, which optional() makes None;
        # any other failure is a DeviceError, as for every other property.
        temperature = connection.optional("Temperature")
        return FocuserState(
            position=int(connection.get("Position")),
            moving=connection.flag("IsMoving"),
            maximum=self.maximum,
            temperature=None if temperature is None else float(temperature),
        )

    def start_move(self, position):
        connection = self.connection
        operation = f"moving to position {position!r}"
        connection.require_connected(operation)
        refusal = position_refusal(position, self.maximum)  # ASCOM lets a focuser clamp it
        if refusal is not None:
            raise connection.error(operation, refusal)
        connection.start(operation, connection.device.Move, position)
