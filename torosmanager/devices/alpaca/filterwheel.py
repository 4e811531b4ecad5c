"""An ASCOM Alpaca filter wheel as a :class:`~torosmanager.devices.FilterWheel`."""

import logging

from alpaca.filterwheel import FilterWheel as AlpacaFilterWheelDevice

from ..base import DeviceError
from ..filterwheel import FilterWheel, FilterWheelState
from .connection import AlpacaConnection

logger = logging.getLogger(__name__)

#: What ASCOM filter wheels report as ``Position`` while turning.
MOVING = -1


class AlpacaFilterWheel(FilterWheel):
    """An ASCOM Alpaca filter wheel; its filter names and focus offsets are read once, at
    :meth:`connect`.

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Device Number``, ``Timeout`` (seconds per request).
    """

    def __init__(self, device_settings):
        super().__init__()
        self.connection = AlpacaConnection(self.kind, AlpacaFilterWheelDevice, device_settings)
        self.names = []
        self._offsets = {}

    def connect(self):
        connection = self.connection
        connection.connect()
        names = [str(name) for name in connection.get("Names")]
        if not names:
            raise connection.error("reading Names", "the wheel reports no filters")
        self.names = names
        self._offsets = self._read_offsets()
        logger.info("%s: filters %s", connection.label, ", ".join(names))

    def focus_offsets(self):
        return dict(self._offsets)

    def _read_offsets(self):
        """``FocusOffsets`` by filter name; empty when all are 0 or they cannot be read as one
        whole number per filter (said in the log: the focus goes without them)."""
        connection = self.connection
        try:
            offsets = list(connection.get("FocusOffsets"))
        except DeviceError as error:
            logger.warning("%s: no focus offsets: %s", connection.label, error)
            return {}
        if len(offsets) != len(self.names) or not all(
                isinstance(offset, int) and not isinstance(offset, bool) for offset in offsets):
            logger.warning("%s: focus offsets %r are not one whole number per filter (%s): "
                           "not used", connection.label, offsets, ", ".join(self.names))
            return {}
        return dict(zip(self.names, offsets)) if any(offsets) else {}

    def disconnect(self):
        self.connection.disconnect()

    def describe(self):
        return self.connection.describe(lambda: self.state().report())

    def state(self):
        connection = self.connection
        connection.require_connected("reading the position")
        position = int(connection.get("Position"))
        if position == MOVING:
            return FilterWheelState(names=list(self.names), position=None)
        if not 0 <= position < len(self.names):
            raise connection.error("reading Position", f"position {position} is not one of the "
                                                       f"{len(self.names)} slots")
        return FilterWheelState(names=list(self.names), position=position)

    def start_move(self, name):
        connection = self.connection
        operation = f"moving to filter {name!r}"
        connection.require_connected(operation)
        if name not in self.names:
            raise connection.error(operation, "no such filter; the wheel has "
                                              + ", ".join(repr(each) for each in self.names))
        connection.start(operation, setattr, connection.device, "Position",
                         self.names.index(name))
