"""Whether the system clock is kept synchronized, as the kernel tells.

The dome decides daylight from the Sun's altitude at the system clock's time, so a clock hours
wrong (a Raspberry Pi without a real-time clock, booted offline, starts at the time it was last
shut down) could open the dome at noon. A time service (systemd-timesyncd, chrony, ntpd) that
keeps the clock tells the kernel so; until one has, Linux marks the clock unsynchronized.

This reads that mark with ``adjtimex`` asking nothing to change (``modes`` 0, allowed without
privileges), what ``timedatectl``'s "System clock synchronized" and ``ntptime`` report. systemd's
``ProtectClock=yes`` forbids the call altogether (its seccomp filter does not look at
``modes``); the dome's unit allows it, and its empty ``CapabilityBoundingSet=`` still keeps the
daemon from setting the clock.
"""

import ctypes
import os
import sys
from dataclasses import dataclass

#: ``adjtimex``'s answer when the clock is not synchronized (``<sys/timex.h>``).
TIME_ERROR = 5
#: The status bit a time service clears once it keeps the clock (``<sys/timex.h>``).
STA_UNSYNC = 0x0040
#: ``maxerror`` is in microseconds.
MICROSECONDS = 1e6


@dataclass(frozen=True)
class ClockSync:
    """What the kernel says of the system clock.

    Attributes
    ----------
    synchronized : bool or None
        ``None`` when it cannot be known here (another system, or the call refused).
    max_error : float or None
        The kernel's estimate of the clock's largest error, seconds.
    detail : str
        Why it cannot be known, when it cannot.
    """

    synchronized: bool | None
    max_error: float | None = None
    detail: str = ""

    def describe(self):
        """One line for logs and the health report."""
        if self.synchronized is None:
            return f"not known whether synchronized: {self.detail}"
        state = "synchronized" if self.synchronized else "NOT synchronized"
        if self.max_error is None:
            return state
        return f"{state} (the kernel's maximum error {self.max_error:g} s)"


class _Timex(ctypes.Structure):
    """The start of Linux's ``struct timex``, then room for the rest of it (the kernel writes
    the whole structure, some 200 bytes on 64-bit systems)."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("rest", ctypes.c_byte * 256)]


def system_clock_sync():
    """The kernel's word on the system clock now, a :class:`ClockSync`."""
    if not sys.platform.startswith("linux"):
        return ClockSync(None, detail=f"only Linux's kernel is asked, not {sys.platform}'s")
    libc = ctypes.CDLL(None, use_errno=True)
    timex = _Timex()  # modes 0: ask, change nothing
    state = libc.adjtimex(ctypes.byref(timex))
    if state < 0:
        number = ctypes.get_errno()
        return ClockSync(None, detail=f"adjtimex refused: {os.strerror(number)} (a sandbox "
                                      "such as systemd's ProtectClock=yes forbids it)")
    synchronized = state != TIME_ERROR and not timex.status & STA_UNSYNC
    return ClockSync(synchronized, max_error=timex.maxerror / MICROSECONDS)
