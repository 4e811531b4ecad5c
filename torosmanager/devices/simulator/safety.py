"""The simulated safety monitor: bad weather during the configured periods, and test controls.

It is unsafe while the clock is inside one of the ``Unsafe Periods`` (``start <= now < end``),
or while the ``Weather File`` (if set) exists and begins with ``unsafe`` (what follows the word
is the reason), safe otherwise; its data are always fresh (``updated`` is the clock's now). The
file lets an operator rehearsing a night, or a test, bring a storm at a moment of their
choosing: ``echo "unsafe: rain" > FILE``.

Simulator controls (plain methods, no real monitor has them) let tests and demos force it:
:meth:`~SimulatedSafetyMonitor.set_unsafe`, :meth:`~SimulatedSafetyMonitor.set_safe` and
:meth:`~SimulatedSafetyMonitor.clear_forcing` override the periods;
:meth:`~SimulatedSafetyMonitor.set_stale` freezes ``updated`` at the time it is called, as a
weather station that stopped reporting (the verdict itself still follows the periods or the
forcing).
"""

from datetime import timezone

from ...workorders import format_utc
from ..base import DeviceError
from ..safety import SafetyMonitor, SafetyState
from .common import SimulatedDevice

#: A weather file whose text begins with this word means bad weather.
UNSAFE_WORD = "unsafe"
#: What may stand between that word and the reason (``unsafe: rain``, ``unsafe - rain``).
UNSAFE_SEPARATORS = " \t:-"
#: The reason given when the weather file says ``unsafe`` and nothing more.
WEATHER_FILE_REASON = "the weather file says unsafe"
#: Characters of the weather file read (its first line is the reason).
WEATHER_FILE_MAX_CHARACTERS = 200
#: The reason given when conditions are safe.
SAFE_REASON = "safe"
#: The reason given by :meth:`SimulatedSafetyMonitor.set_unsafe` when none is.
FORCED_UNSAFE_REASON = "forced unsafe (simulator control)"
#: The reason given while :meth:`SimulatedSafetyMonitor.set_safe` is in force.
FORCED_SAFE_REASON = "safe (forced by simulator control)"


def _utc(moment):
    """*moment* as a timezone-aware UTC datetime (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


class SimulatedSafetyMonitor(SimulatedDevice, SafetyMonitor):
    """A weather verdict from a schedule of bad-weather periods.

    Parameters
    ----------
    simulator_settings : dict
        The ``Simulator`` section: ``Unsafe Periods``, a list of ``(start, end)`` datetimes.
    clock : torosmanager.clock.Clock
        The shared clock.
    """

    def __init__(self, simulator_settings, clock):
        super().__init__(clock)
        self._periods = sorted((_utc(start), _utc(end))
                               for start, end in simulator_settings["Unsafe Periods"])
        self._weather_file = simulator_settings.get("Weather File")
        self._forced = None        # (safe, reason) while a simulator control overrides
        self._stale_since = None   # the clock time the data stopped refreshing, if they did

    def state(self):
        """The :class:`SafetyState` now.

        Raises
        ------
        DeviceError
            When not connected.
        """
        with self._lock:
            self._require_connected()
            now = self._clock.now()
            updated = self._stale_since if self._stale_since is not None else now
            if self._forced is not None:
                safe, reason = self._forced
                return SafetyState(safe=safe, updated=updated, reason=reason)
            storm = self._weather_from_file()
            if storm is not None:
                return SafetyState(safe=False, updated=updated, reason=storm)
            ends = [end for start, end in self._periods if start <= now < end]
            if ends:
                return SafetyState(safe=False, updated=updated,
                                   reason=f"simulated bad weather until {format_utc(max(ends))}")
            return SafetyState(safe=True, updated=updated, reason=SAFE_REASON)

    def _weather_from_file(self):
        """The reason the weather file gives for bad weather (its text after the word
        ``unsafe``), or ``None`` when it announces none."""
        if not self._weather_file:
            return None
        try:
            # (utf-8-sig: a byte-order mark, as some editors write, before "unsafe".)
            with open(self._weather_file, encoding="utf-8-sig") as stream:
                text = stream.read(WEATHER_FILE_MAX_CHARACTERS).strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeError) as error:  # no verdict: the guard takes it as unsafe
            raise DeviceError(f"{self.name}: cannot read the weather file "
                              f"{self._weather_file}: {error}") from None
        if not text.lower().startswith(UNSAFE_WORD):
            return None
        # The word is the flag, not part of the reason: the dome says "weather unsafe: rain".
        return text[len(UNSAFE_WORD):].lstrip(UNSAFE_SEPARATORS) or WEATHER_FILE_REASON

    def describe(self):
        """``Driver``, ``Connected`` and, when connected, the verdict."""
        with self._lock:
            fields = {"Unsafe Periods": len(self._periods),
                      "Forced": self._forced is not None, "Stale": self._stale_since is not None}
            if self._connected:
                state = self.state()
                fields.update({"Safe": state.safe, "Reason": state.reason,
                               "Updated": format_utc(state.updated)})
            return self._describe(fields)

    # -- simulator controls --------------------------------------------------------------------

    def set_unsafe(self, reason=FORCED_UNSAFE_REASON):
        """Simulator control: report unsafe, for *reason*, until another control is used."""
        with self._lock:
            self._forced = (False, str(reason))

    def set_safe(self):
        """Simulator control: report safe, even inside an unsafe period, until released."""
        with self._lock:
            self._forced = (True, FORCED_SAFE_REASON)

    def clear_forcing(self):
        """Simulator control: follow the ``Unsafe Periods`` again."""
        with self._lock:
            self._forced = None

    def set_stale(self, stale=True):
        """Simulator control: freeze ``updated`` at the clock's now (or refresh it again).

        Parameters
        ----------
        stale : bool
            ``True`` to stop refreshing (a second call keeps the first time), ``False`` to
            resume.
        """
        with self._lock:
            if not stale:
                self._stale_since = None
            elif self._stale_since is None:
                self._stale_since = self._clock.now()
