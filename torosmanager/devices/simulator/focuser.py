"""The simulated focuser: an absolute focuser on a tube that cools through the night.

Decisions
---------
* It starts half-way, at ``Focuser Maximum`` // 2, and moves at ``Focuser Speed`` steps per
  clock second; its position is where it is on the way.
* A move asked for while it moves starts from where it is then.
* Its sensor reads the tube's temperature: ``Tube Temperature`` when the focuser is made,
  falling by ``Tube Cooling Rate`` °C per clock hour, as a tube does after dusk, so that the
  focus model's temperature compensation has something to follow.
* Focus is best at ``Best Focus`` at ``Tube Temperature``, and moves by ``Focus Temperature
  Coefficient`` steps per °C the tube warms. The simulated camera's stars widen by ``Defocus
  Blur`` arcseconds of FWHM (in quadrature) per 1000 steps from there (:meth:`blur`).
"""

from ..base import DeviceError
from ..focuser import Focuser, FocuserState, position_refusal
from .common import SimulatedDevice

#: Clock seconds per hour, for a cooling rate given per hour.
SECONDS_PER_HOUR = 3600.0
#: Steps per which ``Defocus Blur`` is given.
BLUR_STEPS = 1000.0


class SimulatedFocuser(SimulatedDevice, Focuser):
    """An absolute focuser from 0 to ``Focuser Maximum`` steps.

    Parameters
    ----------
    simulator_settings : dict
        The ``Simulator`` section (``Focuser Maximum``, ``Focuser Speed``, ``Tube
        Temperature``, ``Tube Cooling Rate``, ``Best Focus``, ``Focus Temperature
        Coefficient``, ``Defocus Blur``).
    clock : torosmanager.clock.Clock
        The shared clock.
    """

    def __init__(self, simulator_settings, clock):
        super().__init__(clock)
        self._maximum = int(simulator_settings["Focuser Maximum"])
        self._speed = float(simulator_settings["Focuser Speed"])
        self._start_temperature = float(simulator_settings["Tube Temperature"])
        self._cooling_rate = float(simulator_settings["Tube Cooling Rate"])
        self._best_focus = float(simulator_settings["Best Focus"])
        self._focus_coefficient = float(simulator_settings["Focus Temperature Coefficient"])
        self._blur = float(simulator_settings["Defocus Blur"])
        self._made = clock.elapsed()
        self._from = self._to = self._maximum // 2
        self._started = self._made  # Clock.elapsed() when the last move began

    def state(self):
        """The :class:`FocuserState` now.

        Raises
        ------
        DeviceError
            When not connected.
        """
        with self._lock:
            self._require_connected()
            return self._state()

    def start_move(self, position):
        """Start moving to *position* steps; returns at once.

        Raises
        ------
        DeviceError
            When not connected, or for a position that is not a whole number from 0 to the
            maximum.
        """
        with self._lock:
            self._require_connected()
            refusal = position_refusal(position, self._maximum)
            if refusal is not None:
                raise DeviceError(f"the simulated focuser cannot move to {position!r}: "
                                  f"{refusal}")
            self._from = self._position()
            self._to = position
            self._started = self._clock.elapsed()

    def describe(self):
        """``Driver``, ``Connected``, and the focuser's state."""
        with self._lock:
            return self._describe(self._state().report())

    def _state(self):
        """The :class:`FocuserState` now; call with the lock held."""
        position = self._position()
        return FocuserState(position=position, moving=position != self._to,
                            maximum=self._maximum, temperature=self._temperature())

    def truth_best_focus(self):
        """Where focus is best now, steps (what an autofocus should find)."""
        with self._lock:
            return self._best_focus + self._focus_coefficient * (
                self._temperature() - self._start_temperature)

    def blur(self):
        """Arcseconds of FWHM the focus adds, in quadrature, to the stars' seeing now."""
        with self._lock:
            return self._blur * abs(self._position() - self.truth_best_focus()) / BLUR_STEPS

    def _position(self):
        """Where the focuser is on its way; call with the lock held."""
        travelled = self._speed * (self._clock.elapsed() - self._started)
        if travelled >= abs(self._to - self._from):
            return self._to
        step = int(travelled)
        return self._from + step if self._to > self._from else self._from - step

    def _temperature(self):
        hours = (self._clock.elapsed() - self._made) / SECONDS_PER_HOUR
        return round(self._start_temperature - self._cooling_rate * hours, 2)
