"""The simulated filter wheel: named slots, a fixed time per filter change.

Decisions
---------
* The wheel starts at slot 0.
* Any change takes ``Filter Change Time`` clock seconds, whatever the number of slots between
  (the setting is "seconds to change filter"); asking for the filter already in the beam is
  done at once.
* A move asked for while the wheel turns is queued: it starts when the current one ends, from
  that filter. The position is ``None`` until the last move is over.
"""

from ..base import DeviceError
from ..filterwheel import FilterWheel, FilterWheelState
from .common import SimulatedDevice


class SimulatedFilterWheel(SimulatedDevice, FilterWheel):
    """A filter wheel holding the ``Filters`` of the simulator settings, by slot.

    Parameters
    ----------
    simulator_settings : dict
        The ``Simulator`` section (``Filters``, ``Filter Change Time`` in seconds).
    clock : torosmanager.clock.Clock
        The shared clock.

    Raises
    ------
    ValueError
        For an empty ``Filters`` list (the configuration loader already refuses one).
    """

    def __init__(self, simulator_settings, clock):
        super().__init__(clock)
        self._names = [str(name) for name in simulator_settings["Filters"]]
        if not self._names:
            raise ValueError("the simulated filter wheel needs at least one filter")
        self._change_time = float(simulator_settings["Filter Change Time"])
        self._slot = 0            # the slot in the beam, or the one the wheel is turning to
        self._arrives = None      # Clock.elapsed() when the last move ends; None when still

    def state(self):
        """The :class:`FilterWheelState` now (position ``None`` while turning).

        Raises
        ------
        DeviceError
            When not connected.
        """
        with self._lock:
            self._require_connected()
            return FilterWheelState(names=list(self._names), position=self._position())

    def start_move(self, name):
        """Start turning to the filter called *name* (exact name); returns at once.

        Raises
        ------
        DeviceError
            When not connected, or for a name the wheel does not have (the message lists them).
        """
        with self._lock:
            self._require_connected()
            if name not in self._names:
                raise DeviceError(f"the filter wheel has no filter {name!r}; "
                                  f"it has {', '.join(self._names)}")
            slot = self._names.index(name)
            if slot == self._slot:
                return
            now = self._clock.elapsed()
            begins = now if self._arrives is None or self._arrives <= now else self._arrives
            self._slot = slot
            self._arrives = begins + self._change_time

    def describe(self):
        """``Driver``, ``Connected``, and the filter in the beam (``""`` while turning)."""
        with self._lock:
            position = self._position()
            return self._describe({
                "Filter": "" if position is None else self._names[position],
                "Moving": position is None,
                "Filters": ", ".join(self._names)})

    def _position(self):
        """The slot in the beam, or ``None`` while turning; call with the lock held."""
        if self._arrives is not None and self._clock.elapsed() < self._arrives:
            return None
        self._arrives = None
        return self._slot
