"""What every device has in common, and waiting for a long operation to finish."""

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from ..units import Seconds

_Result = TypeVar("_Result")


class DeviceError(Exception):
    """A device failed, refused, or did not finish in time; the message says which and why."""


class NotCapable(DeviceError):
    """The device says it cannot do what was asked (an ASCOM ``Can...`` property is false):
    asking again will not help."""


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
             clock_sleep: Callable[[Seconds], object] | None = None) -> _Result:
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

    Raises
    ------
    DeviceError
        When *timeout* passes first.
    Interrupted
        When *stop* is set.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if stop is not None and stop.is_set():
            raise Interrupted(f"stopped while waiting for {what}")
        if time.monotonic() >= deadline:
            raise DeviceError(f"timed out after {timeout:g} s waiting for {what}")
        if stop is not None:
            stop.wait(poll_interval)
        else:
            (clock_sleep or time.sleep)(poll_interval)


class Interrupted(Exception):
    """A wait or an operation was stopped from outside (Cancel, safety, shutdown)."""
