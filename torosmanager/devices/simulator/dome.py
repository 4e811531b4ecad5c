"""The simulated dome: a shutter that takes ``Shutter Travel Time`` and rotation at a fixed rate.

Decisions
---------
* The dome starts **closed and parked** at azimuth :data:`PARK_AZIMUTH` (north).
* The shutter's position is a fraction open (0 closed, 1 open); a full stroke takes
  ``Shutter Travel Time`` clock seconds, a partial one its share. Opening while closing (or the
  reverse) turns back from where the shutter is.
* Rotation goes the shortest way round at ``Dome Rotation Rate``. A slew leaves the park
  position; :meth:`SimulatedDome.start_park` rotates to :data:`PARK_AZIMUTH` and the dome is
  parked on arrival. Parking does not close the shutter (closing is its own command).
* :meth:`SimulatedDome.abort` stops rotation where it is (not parked, unless it already was)
  and a shutter caught half-way stops there in :attr:`ShutterState.ERROR`, as ASCOM's
  ``shutterError`` (neither open nor closed); opening or closing again moves it on from there.
* ``slewing`` is true while the dome rotates or the shutter moves.
"""

from ..dome import FULL_TURN, Dome, DomeState, ShutterState
from .common import SimulatedDevice, finite_number

#: The park position's azimuth, degrees: north.
PARK_AZIMUTH = 0.0
#: Shutter fractions.
CLOSED, OPEN = 0.0, 1.0


class SimulatedDome(SimulatedDevice, Dome):
    """A dome whose shutter and rotation move in clock time.

    Parameters
    ----------
    simulator_settings : dict
        The ``Simulator`` section (``Shutter Travel Time`` in seconds, ``Dome Rotation Rate``
        in degrees per second).
    clock : torosmanager.clock.Clock
        The shared clock.
    """

    def __init__(self, simulator_settings, clock):
        super().__init__(clock)
        self._travel_time = float(simulator_settings["Shutter Travel Time"])
        self._rotation_rate = float(simulator_settings["Dome Rotation Rate"])
        now = clock.elapsed()  # every time here is a Clock.elapsed() count (SimulatedDevice)
        # Shutter: the fraction open at _shutter_since, moving towards _shutter_target (or not).
        self._shutter_fraction = CLOSED
        self._shutter_target = None
        self._shutter_since = now
        self._shutter_error = False
        # Rotation: the azimuth at _rotation_since, turning _turn degrees (signed) at the rate.
        self._azimuth = PARK_AZIMUTH
        self._turn = 0.0
        self._rotation_since = now
        self._parking = False
        self._parked = True
        self._outputs = {}

    # -- the interface -------------------------------------------------------------------------

    def state(self):
        """The :class:`DomeState` now.

        Raises
        ------
        DeviceError
            When not connected.
        """
        with self._lock:
            self._require_connected()
            now = self._clock.elapsed()
            self._update(now)
            shutter_moving = self._shutter_target is not None
            rotating = self._turn != 0.0
            return DomeState(shutter=self._shutter_state(), azimuth=self._azimuth_at(now),
                             slewing=shutter_moving or rotating, parked=self._parked,
                             outputs=dict(self._outputs))

    def set_output(self, number, on):
        """Switch auxiliary output *number*: on the simulator it is only state."""
        with self._lock:
            self._require_connected()
            self._outputs[int(number)] = bool(on)

    def start_open(self):
        """Start opening the shutter; no-op when open or opening."""
        self._move_shutter(OPEN)

    def start_close(self):
        """Start closing the shutter; no-op when closed or closing."""
        self._move_shutter(CLOSED)

    def start_slew(self, azimuth):
        """Start rotating, the shortest way, to *azimuth* degrees (any value, taken modulo 360).

        Raises
        ------
        DeviceError
            When not connected, or for an azimuth that is not a finite number.
        """
        azimuth = finite_number(azimuth, "the dome azimuth") % FULL_TURN
        with self._lock:
            self._require_connected()
            self._rotate_to(azimuth, parking=False)

    def start_park(self):
        """Start rotating to :data:`PARK_AZIMUTH`; the dome is parked on arrival."""
        with self._lock:
            self._require_connected()
            self._update(self._clock.elapsed())
            if not self._parked:
                self._rotate_to(PARK_AZIMUTH, parking=True)

    def abort(self):
        """Stop rotation and the shutter where they are (see the module notes)."""
        with self._lock:
            self._require_connected()
            now = self._clock.elapsed()
            self._update(now)
            if self._turn != 0.0:
                self._azimuth = self._azimuth_at(now)
                self._turn = 0.0
                self._parking = False
            if self._shutter_target is not None:
                self._shutter_fraction = self._fraction_at(now)
                self._shutter_target = None
                self._shutter_error = True

    def describe(self):
        """``Driver``, ``Connected`` and, when connected, the shutter and azimuth."""
        with self._lock:
            if not self._connected:
                return self._describe({"Parked": self._parked})
            state = self.state()
            return self._describe({"Shutter": state.shutter.value, "Azimuth": state.azimuth,
                                   "Slewing": state.slewing, "Parked": state.parked})

    # -- bookkeeping (all with the lock held) --------------------------------------------------

    def _move_shutter(self, target):
        with self._lock:
            self._require_connected()
            now = self._clock.elapsed()
            self._update(now)
            if self._shutter_target == target or (
                    self._shutter_target is None and not self._shutter_error
                    and self._shutter_fraction == target):
                return
            self._shutter_fraction = self._fraction_at(now)
            self._shutter_target = target
            self._shutter_since = now
            self._shutter_error = False

    def _rotate_to(self, azimuth, parking):
        now = self._clock.elapsed()
        self._update(now)
        current = self._azimuth_at(now)
        # The signed shortest turn, in [-180, 180).
        self._turn = (azimuth - current + FULL_TURN / 2) % FULL_TURN - FULL_TURN / 2
        self._azimuth = current
        self._rotation_since = now
        self._parking = parking
        self._parked = False
        if self._turn == 0.0:
            self._parked = parking

    def _update(self, now):
        """Finish the shutter motion and the rotation that are over at *now*."""
        if self._shutter_target is not None and self._fraction_at(now) == self._shutter_target:
            self._shutter_fraction = self._shutter_target
            self._shutter_target = None
        if self._turn != 0.0 and \
                now >= self._rotation_since + abs(self._turn) / self._rotation_rate:
            self._azimuth = (self._azimuth + self._turn) % FULL_TURN
            self._turn = 0.0
            self._parked = self._parking
            self._parking = False

    def _fraction_at(self, now):
        """How far open the shutter is at *now*."""
        if self._shutter_target is None:
            return self._shutter_fraction
        if self._travel_time <= 0:
            return self._shutter_target
        moved = (now - self._shutter_since) / self._travel_time
        if self._shutter_target > self._shutter_fraction:
            return min(self._shutter_fraction + moved, self._shutter_target)
        return max(self._shutter_fraction - moved, self._shutter_target)

    def _azimuth_at(self, now):
        """The azimuth at *now*, degrees in [0, 360)."""
        turned = min((now - self._rotation_since) * self._rotation_rate, abs(self._turn))
        step = turned if self._turn >= 0 else -turned
        return (self._azimuth + step) % FULL_TURN

    def _shutter_state(self):
        if self._shutter_target is not None:
            return ShutterState.OPENING if self._shutter_target == OPEN else ShutterState.CLOSING
        if self._shutter_error:
            return ShutterState.ERROR
        return ShutterState.OPEN if self._shutter_fraction == OPEN else ShutterState.CLOSED
