"""An ASCOM Alpaca safety monitor as a :class:`~torosmanager.devices.SafetyMonitor`.

An Alpaca ``SafetyMonitor`` says only whether it is safe, not how old its data are. Weather
stations usually publish an ``ObservingConditions`` device with the same number on the same
server; when one answers, its ``TimeSinceLastUpdate`` dates the verdict, so that a station that
stopped updating shows up as stale data. Otherwise the verdict is dated by the clock when it is
read. A server that has no such device says so at :meth:`~AlpacaSafetyMonitor.connect`; one
whose station does not answer then (restarting) is looked for again at each verdict, in a
thread of its own (a station that hangs must not hold the verdict back), until it answers.
"""

import logging
import threading
from datetime import timedelta

from alpaca.exceptions import AlpacaRequestException, NotImplementedException
from alpaca.observingconditions import ObservingConditions
from alpaca.safetymonitor import SafetyMonitor as AlpacaSafetyMonitorDevice

from ...units import finite_float
from ..base import DeviceError
from ..safety import SafetyMonitor, SafetyState
from .connection import AlpacaConnection

logger = logging.getLogger(__name__)

#: ``TimeSinceLastUpdate`` of this sensor name is that of the most recently updated sensor.
ANY_SENSOR = ""
#: The HTTP statuses an Alpaca server answers for a device it does not have.
NO_SUCH_DEVICE_STATUSES = (400, 404)


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
        #: Whether :attr:`weather` answered and dates the verdicts.
        self.dated_by_weather = False
        #: Whether the server has no observing conditions to ask again (it said so).
        self._no_weather = False
        self._looking = threading.Lock()  # held by the one look for the station under way

    def connect(self):
        self.connection.connect()
        self._no_weather = False
        self._connect_weather(say=True)

    def _connect_weather(self, say):
        """Date the verdicts by the observing conditions beside the monitor if they answer;
        the failure is said (*say*) at :meth:`connect` only, not at each verdict."""
        try:
            self.weather.connect()
            self._data_age()
        except DeviceError as error:
            self.dated_by_weather = False
            if self.weather.connected:
                self.weather.disconnect()
            # The server has no such device: nothing to ask again.
            cause = error.__cause__
            self._no_weather = isinstance(cause, NotImplementedException) or (
                isinstance(cause, AlpacaRequestException)
                and cause.number in NO_SUCH_DEVICE_STATUSES)
            if say:
                logger.info("%s: no usable observing conditions beside it, so its verdicts are "
                            "dated when read (%s)%s", self.connection.label, error,
                            "" if self._no_weather else "; asked again at each verdict")
        else:
            self.dated_by_weather = True
            logger.info("%s: verdicts dated by %s", self.connection.label, self.weather.label)

    def _look_for_weather(self):
        """Look for the station again in a thread of its own, unless a look is under way."""
        if self._looking.acquire(blocking=False):
            threading.Thread(target=self._look, name="weather-station", daemon=True).start()

    def _look(self):
        try:
            self._connect_weather(say=False)
        finally:
            self._looking.release()

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
        if not self.dated_by_weather and not self._no_weather:
            self._look_for_weather()
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
        if age < 0:     # what some drivers say of a sensor never read: not fresh data
            raise self.weather.error("reading TimeSinceLastUpdate",
                                     f"it answered {answer!r}: a negative age, data of no "
                                     "known time")
        return age
