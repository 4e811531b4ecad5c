"""What every device has in common, and waiting for a long operation to finish."""

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from ..units import Seconds

_Result = TypeVar("_Result")

log = logging.getLogger(__name__)


class DeviceError(Exception):
    """A device failed, refused, or did not finish in time; the message says which and why."""


class NotCapable(DeviceError):
    """The device says it cannot do what was asked (an ASCOM ``Can...`` property is false):
    asking again will not help."""


class DeviceFault(DeviceError):
    """The device answered, and said the operation failed (an INDI property in Alert): asking
    again will not help, so a wait ends at once."""


class TimedOut(DeviceError):
    """A wait (:func:`wait_for`) did not see its condition within its timeout."""


class Device(ABC):
    """The base of every device interface.

    Parameters
    ----------
    name : str
        How logs and health reports call this device, e.g. ``"camera"``.
    """

    #: The device kind, e.g. ``"mount"``.
    kind = ""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.kind

    @property
    def label(self) -> str:
        """How messages name this device, as its errors do: its connection's label (``camera
        (INDI device 'CCD Simulator' at 127.0.0.1:7624)``) when it has one, else its name."""
        connection = getattr(self, "connection", None)
        label = getattr(connection, "label", None)
        return label if isinstance(label, str) and label else self.name

    @abstractmethod
    def connect(self) -> None:
        """Open the connection to the device (idempotent). Raises :class:`DeviceError`."""

    @abstractmethod
    def disconnect(self) -> None:
        """Close the connection (idempotent); never raises for a device already gone."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """A dict for health reports (XML-RPC types): at least ``Driver`` and ``Connected``."""


def wait_for(condition: Callable[[], _Result | None], timeout: Seconds, what: str,
             poll_interval: Seconds, stop: threading.Event | None = None,
             clock_sleep: Callable[[Seconds], object] | None = None,
             error_grace: Seconds | None = None) -> _Result:
    """Poll *condition* until it returns a true value; return that value.

    Parameters
    ----------
    condition : callable
        Called with no arguments; may raise :class:`DeviceError`. Its first true value is
        returned.
    timeout : float
        Real seconds before giving up.
    what : str
        Describes the wait for the error message, e.g. ``"the mount to finish slewing"``.
    poll_interval : float
        Real seconds between polls.
    stop : threading.Event, optional
        When set, the wait ends at once with :class:`Interrupted`.
    clock_sleep : callable, optional
        ``sleep(seconds)``; default :func:`time.sleep` (tests pass a faster one).
    error_grace : float, optional
        Real seconds a :class:`DeviceError` from *condition* is tolerated, *condition* asked
        again every *poll_interval* meanwhile: one failed reading (a server restarting, a
        connection dropped and made again) does not end a long wait. ``None`` (the default):
        the first error ends the wait. A device that says the operation failed
        (:class:`DeviceFault`) or cannot do it (:class:`NotCapable`) ends it at once all the
        same.

    Raises
    ------
    TimedOut
        When *timeout* passes first.
    DeviceError
        The error of *condition*: at once without *error_grace*; with it, once the errors
        have lasted *error_grace* (or *timeout* passed while they did), naming the last
        error and how long they lasted.
    Interrupted
        When *stop* is set.
    """
    deadline = time.monotonic() + timeout
    failing_since = None  # monotonic time of the first error of the failures under way
    while True:
        try:
            result = condition()
        except (DeviceFault, NotCapable):
            raise
        except DeviceError as error:
            if error_grace is None:
                raise
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
                log.warning("waiting for %s: %s (asked again for up to %g s)", what, error,
                            error_grace)
            if now - failing_since >= error_grace or now >= deadline:
                raise DeviceError(f"{error} (failing for {now - failing_since:.1f} s while "
                                  f"waiting for {what})") from error
            result = None
        else:
            if failing_since is not None:
                log.info("waiting for %s: the device answers again after %.1f s", what,
                         time.monotonic() - failing_since)
                failing_since = None
        if result:
            return result
        if stop is not None and stop.is_set():
            raise Interrupted(f"stopped while waiting for {what}")
        if failing_since is None and time.monotonic() >= deadline:
            raise TimedOut(f"timed out after {timeout:g} s waiting for {what}")
        if stop is not None:
            stop.wait(poll_interval)
        else:
            (clock_sleep or time.sleep)(poll_interval)


class Interrupted(Exception):
    """A wait or an operation was stopped from outside (Cancel, safety, shutdown)."""
