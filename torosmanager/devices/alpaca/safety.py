"""An ASCOM Alpaca safety monitor as a :class:`~torosmanager.devices.SafetyMonitor`.

An Alpaca ``SafetyMonitor`` says only whether it is safe, not how old its data are. Weather
stations usually publish an ``ObservingConditions`` device with the same number on the same
server; when one answers at :meth:`~AlpacaSafetyMonitor.connect`, its ``TimeSinceLastUpdate``
dates the verdict, so that a station that stopped updating shows up as stale data. Otherwise the
verdict is dated by the clock when it is read.
"""

import logging
from datetime import timedelta

from alpaca.observingconditions import ObservingConditions
from alpaca.safetymonitor import SafetyMonitor as AlpacaSafetyMonitorDevice

from ...units import finite_float
from ..base import DeviceError
from ..safety import SafetyMonitor, SafetyState
from .connection import AlpacaConnection

logger = logging.getLogger(__name__)

#: ``TimeSinceLastUpdate`` of this sensor name is that of the most recently updated sensor.
ANY_SENSOR = ""


class AlpacaSafetyMonitor(SafetyMonitor):
    """An ASCOM Alpaca safety monitor, and the observing conditions beside it if there are any.

    Parameters
    ----------
    device_settings : dict
        ``Host``, ``Port``, ``Device Number``, ``Timeout`` (seconds per request).
    clock : Clock
        Dates the verdict (``SafetyState.updated``).
    """

    def __init__(self, device_settings, clock):
        super().__init__()
        self.clock = clock
        self.connection = AlpacaConnection(self.kind, AlpacaSafetyMonitorDevice, device_settings)
        self.weather = AlpacaConnection("weather station", ObservingConditions, device_settings)
        #: Whether :attr:`weather` answered at :meth:`connect` and dates the verdicts.
        self.dated_by_weather = False

    def connect(self):
        self.connection.connect()
        try:
            self.weather.connect()
            self._data_age()
        except DeviceError as error:
            self.dated_by_weather = False
            if self.weather.connected:
                self.weather.disconnect()
            logger.info("%s: no usable observing conditions beside it, so its verdicts are dated "
                        "when read (%s)", self.connection.label, error)
        else:
            self.dated_by_weather = True
            logger.info("%s: verdicts dated by %s", self.connection.label, self.weather.label)

    def disconnect(self):
        if self.dated_by_weather:
            self.weather.disconnect()
        self.dated_by_weather = False
        self.connection.disconnect()

    def describe(self):
        def fields():
            state = self.state()
            return {"Safe": state.safe, "Reason": state.reason,
                    "Dated By": "observing conditions" if self.dated_by_weather else "clock"}
        return self.connection.describe(fields)

    def state(self):
        connection = self.connection
        connection.require_connected("reading IsSafe")
        safe = connection.flag("IsSafe")  # (a verdict is never guessed from text)
        updated = self.clock.now()
        if self.dated_by_weather:
            # The station's age is in real seconds; a simulated clock runs `speed` times faster.
            updated -= timedelta(seconds=self._data_age() * self.clock.speed)
        reason = "safe" if safe else f"IsSafe false reported by {connection.address}"
        return SafetyState(safe=safe, updated=updated, reason=reason)

    def _data_age(self):
        """Seconds since the weather station last updated any sensor."""
        answer = self.weather.call("reading TimeSinceLastUpdate",
                                   self.weather.device.TimeSinceLastUpdate, ANY_SENSOR)
        age = finite_float(answer)
        if age is None:  # NaN or text would date the verdict nowhere: its age is unknown
            raise self.weather.error("reading TimeSinceLastUpdate",
                                     f"it answered {answer!r}, not a number of seconds")
        return max(age, 0.0)
