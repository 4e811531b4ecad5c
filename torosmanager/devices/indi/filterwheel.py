"""An INDI filter wheel as a :class:`~torosmanager.devices.FilterWheel`.

Properties used (standard names; ``Properties`` renames them): ``CONNECTION``, ``FILTER_SLOT``
(the slot in the beam, counted from 1; ``Busy`` while the wheel turns) and ``FILTER_NAME`` (one
text per slot, read once, at :meth:`IndiFilterWheel.connect`).
"""

import logging

from ..filterwheel import FilterWheel, FilterWheelState
from .connection import BUSY, IndiConnection

logger = logging.getLogger(__name__)

#: Standard property and member names (INDI filter wheel standard properties).
SLOT = "FILTER_SLOT"
SLOT_VALUE = "FILTER_SLOT_VALUE"
NAMES = "FILTER_NAME"

#: INDI counts slots from 1; TOROS (like ASCOM) from 0.
FIRST_SLOT = 1


class IndiFilterWheel(FilterWheel):
    """An INDI filter wheel; its filter names are read once, at :meth:`connect`.

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Device``, ``Properties``, ``Timeout`` (seconds per request).
    """

    def __init__(self, device_settings):
        super().__init__()
        self.connection = IndiConnection(self.kind, device_settings)
        self.names = []

    def connect(self):
        connection = self.connection
        connection.connect(required=(SLOT, NAMES))
        # One text per slot, in slot order as the driver defines them.
        names = [str(name) for name in connection.read(NAMES, "connecting").values.values()]
        if not names:
            raise connection.error("reading the filter names", "the wheel reports no filters")
        self.names = names
        logger.info("%s: filters %s", connection.label, ", ".join(names))

    def disconnect(self):
        self.connection.disconnect()

    def describe(self):
        return self.connection.describe(lambda: self.state().report())

    def state(self):
        connection = self.connection
        operation = "reading the position"
        slot = connection.read(SLOT, operation)
        if slot.state == BUSY:
            return FilterWheelState(names=list(self.names), position=None)
        position = round(connection.value(slot, SLOT_VALUE, operation)) - FIRST_SLOT
        if not 0 <= position < len(self.names):
            raise connection.error("reading the position", f"slot {position + FIRST_SLOT} is not "
                                   f"one of the {len(self.names)} slots")
        return FilterWheelState(names=list(self.names), position=position)

    def start_move(self, name):
        connection = self.connection
        operation = f"moving to filter {name!r}"
        connection.require_connected(operation)
        if name not in self.names:
            raise connection.error(operation, "no such filter; the wheel has "
                                              + ", ".join(repr(each) for each in self.names))
        connection.send(SLOT, {SLOT_VALUE: self.names.index(name) + FIRST_SLOT}, operation)
