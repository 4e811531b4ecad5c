"""An INDI weather device as a :class:`~torosmanager.devices.SafetyMonitor`.

INDI weather drivers publish ``WEATHER_STATUS``, one light per critical parameter: ``Ok``,
``Busy`` (a warning: close to its limit) or ``Alert`` (beyond it), and ``WEATHER_PARAMETERS``,
the values behind them, refreshed every ``WEATHER_UPDATE`` period. It is safe only when every
light is ``Ok``.

The verdict is dated by when the server last sent either property (real seconds, turned into the
shared clock's time as :class:`~torosmanager.devices.alpaca.AlpacaSafetyMonitor` does): a station
that stops updating, or a server that hangs, shows up as stale data to the dome's guard.
"""

import logging
from datetime import timedelta

from ..safety import SafetyMonitor, SafetyState
from .connection import OK, IndiConnection

logger = logging.getLogger(__name__)

#: Standard property names (INDI weather standard properties).
STATUS = "WEATHER_STATUS"
PARAMETERS = "WEATHER_PARAMETERS"

#: How reasons name the light states other than Ok.
LIGHT_MEANINGS = {"Busy": "warning", "Alert": "alert", "Idle": "no data"}


class IndiSafetyMonitor(SafetyMonitor):
    """An INDI weather station's verdict.

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Device``, ``Properties``, ``Timeout`` (seconds per request).
    clock : Clock
        Dates the verdict (``SafetyState.updated``).
    """

    def __init__(self, device_settings, clock):
        super().__init__()
        self.clock = clock
        self.connection = IndiConnection(self.kind, device_settings)

    def connect(self):
        self.connection.connect(required=(STATUS,))

    def disconnect(self):
        self.connection.disconnect()

    def describe(self):
        def fields():
            state = self.state()
            return {"Safe": state.safe, "Reason": state.reason}
        return self.connection.describe(fields)

    def state(self):
        connection = self.connection
        operation = "reading the weather status"
        lights = connection.read(STATUS, operation)
        parameters = connection.optional(PARAMETERS, operation)
        values = parameters.values if parameters is not None else {}
        problems = [f"{name} {LIGHT_MEANINGS.get(light, light)}"
                    + (f" ({values[name]:g})" if name in values else "")
                    for name, light in lights.values.items() if light != OK]
        if not lights.values:
            problems.append(f"{lights.name} has no lights")
        ages = [age for age in (connection.age(STATUS), connection.age(PARAMETERS))
                if age is not None]
        updated = None
        if ages:
            # The server's age is in real seconds; a simulated clock runs `speed` times faster.
            updated = self.clock.now() - timedelta(seconds=min(ages) * self.clock.speed)
        safe = not problems
        return SafetyState(safe=safe, updated=updated,
                           reason="safe" if safe else "; ".join(problems))
