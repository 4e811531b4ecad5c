"""The dome's safety guard: it keeps the instrument safe whatever the work orders say.

Every ``Dome → Check Interval`` it looks at five things:

- the safety monitor's verdict (unsafe, or not answering, is unsafe);
- the age of its weather data (older than ``Weather Max Age``, or missing, is unsafe);
- the Sun (at or above ``Observing → Sun Altitude Limit`` is unsafe), computed for the instant of the
  check rather than read from :class:`~torosmanager.night.Night`'s grid: its samples are
  minutes apart, and the dome must say daylight when the Sun crosses the limit, not minutes
  before or after;
- on a real clock, whether the kernel says the system clock is synchronized
  (:mod:`~torosmanager.clock_sync`; ``Require Synchronized Clock``): the Sun's altitude is only
  as right as the clock, and a clock no time service has set may be hours wrong. Where it
  cannot be known (not Linux, or a sandbox forbids asking) the guard says so once and trusts
  the clock;
- the scheduler's heartbeat (none for ``Heartbeat Timeout``, or none yet, is unsafe).

A check that raises (a bug, or a device's answer no driver foresaw) is unsafe as well.

When anything is unsafe it closes the shutter and tells the telescope to park, and it refuses to
open. Once everything is good it still refuses to open until conditions have stayed good for
``Reopen Delay`` (hysteresis: a passing gap in the clouds does not open the dome).

The dome daemon starts with the dome closed, and its guard waits for the scheduler's next
heartbeat. Conditions found good before a restart (:mod:`.safety_memory`) count towards
``Reopen Delay`` once they are good again, provided the guard's last check before the restart
is no older than ``Weather Max Age`` (the oldest weather data it trusts) and nothing but the
heartbeat was missing since: a restart on a clear night costs the heartbeat and the shutter's
travel, not the whole delay. The time the daemon was down is not counted.

Under systemd the guard's own thread tells the watchdog (``WatchdogSec=`` in the dome's unit)
that it is alive: if it ever hangs (a device call that never returns, a bug), systemd kills the
daemon and starts it again, and the new guard, hearing no heartbeat yet, closes the dome.
"""

import logging
import sqlite3
import threading
import time
from datetime import timedelta

from ..clock_sync import system_clock_sync
from ..devices import DeviceError
from ..logs import Outage
from ..night import sun_altitude
from ..systemd_notify import tell_watchdog_alive, watchdog_interval
from ..workorders import format_utc

log = logging.getLogger(__name__)

NOT_CHECKED = "not checked yet"
#: How the verdict's reasons about the scheduler's heartbeat begin.
HEARTBEAT_REASON = "no heartbeat from the scheduler"
NO_HEARTBEAT_YET = f"{HEARTBEAT_REASON} yet"
#: The health report's ``Last Heartbeat`` before the first (the scheduler then sends one).
NEVER_HEARD = "never"
#: What a guard just started lacks only because it has just started: conditions good before
#: the restart are carried over these, and over nothing else.
STARTING = frozenset((NOT_CHECKED, NO_HEARTBEAT_YET))


class SafetyGuard:
    """Decides whether the dome may be open, and closes it when it may not.

    Parameters
    ----------
    handler : DomeHandler
        Gives the configuration, the clock and the safety monitor, and closes the dome.
    clock_sync : callable, optional
        Returns the system clock's :class:`~torosmanager.clock_sync.ClockSync` (the kernel's
        word, by default).
    memory : SafetyMemory, optional
        Where each check is written down, and read back at the start; none by default
        (conditions then count as good only from the first good check).
    """

    def __init__(self, handler, clock_sync=system_clock_sync, memory=None):
        self.handler = handler
        self._clock_sync = clock_sync
        self._memory = memory
        self._memory_outage = Outage(log)  # checks that cannot be written down
        self._carried = None  # the last check before the restart, while it may be carried
        self._sync = None  # the last reading, for the report
        self._unknown_said = False
        self.settings = handler.config["Dome"]
        self.site = handler.config["Site"]
        self.clock = handler.clock
        self._lock = threading.Lock()
        self._last_heartbeat = None
        self._heartbeat_from = ""
        # When the last heartbeat came and since when conditions are good, on the clock's
        # count that setting the system clock does not move (Clock.elapsed): what decides.
        self._heartbeat_elapsed = 0.0
        self._good_elapsed = 0.0
        self._reasons = [NOT_CHECKED]
        self._unsafe_since = self.clock.now()
        self._good_since = None
        self._stop = threading.Event()
        self._check_now = threading.Event()  # a heartbeat that may end an unsafe verdict
        self._checking = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="dome-safety")
        self._failing = Outage(log)  # checks that raise: said once, with the traceback

    def start(self):
        """Read the last check before the restart, check once now, then every ``Check
        Interval`` in a thread of its own."""
        self._carried = self._recall()
        self.check()
        self._thread.start()

    def _recall(self):
        """The last check before the restart, if conditions were good then and it is recent
        enough to carry on (see the module's description); else ``None``."""
        try:
            last = None if self._memory is None else self._memory.recall()
        except sqlite3.Error as error:
            log.warning("cannot read the safety guard's last check in %s (%s): conditions "
                        "count as good only from the next good check", self._memory.path,
                        error)
            return None
        if last is None or last.good_for is None:
            return None
        ago = (self.clock.now() - last.checked).total_seconds()
        limit = self.settings["Weather Max Age"]
        if not 0 <= ago <= limit:
            log.info("conditions were good at the last check before this start, %s, but that "
                     "is not within Dome → Weather Max Age (%g s) of now: they count as good "
                     "only from the next good check", format_utc(last.checked), limit)
            return None
        log.info("conditions had been good for %.0f s at the last check before this start, "
                 "%.0f s ago (within Dome → Weather Max Age, %g s): once they are good again, "
                 "that counts towards Dome → Reopen Delay", last.good_for, ago, limit)
        return last

    def stop(self):
        """Stop checking."""
        self._stop.set()
        self._check_now.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._memory is not None:
            self._memory.close()

    def heartbeat(self, sender):
        """Record the scheduler's dead-man signal."""
        with self._lock:
            self._last_heartbeat = self.clock.now()
            self._heartbeat_elapsed = self.clock.elapsed()
            self._heartbeat_from = sender
            missed = any(reason.startswith(HEARTBEAT_REASON) for reason in self._reasons)
        if missed:
            # Checked again now, not up to a Check Interval later: the verdict, which the
            # telescope asks before each frame, would name a heartbeat that has come.
            self._check_now.set()

    def _run(self):
        interval = self.clock.real_seconds(self.settings["Check Interval"])
        # Under systemd's watchdog (the dome's unit sets WatchdogSec=), this thread alone says
        # the daemon is alive, between its checks: a guard that hangs is killed and restarted
        # by systemd, and the new one closes the dome.
        alive_every = watchdog_interval()
        wake = interval if alive_every is None else min(interval, alive_every)
        due = time.monotonic() + interval
        while True:
            asked = self._check_now.wait(wake)
            if self._stop.is_set():
                return
            self._check_now.clear()
            if asked or time.monotonic() >= due:
                due = time.monotonic() + interval
                try:
                    self.check()
                except Exception:  # the guard must outlive any bug in closing, too
                    log.exception("the safety check failed; trying again")
            if alive_every is not None:
                tell_watchdog_alive()

    def check(self):
        """Evaluate the conditions once and close the dome if anything is unsafe."""
        with self._checking:  # one at a time: the guard's thread, and its start
            self._check()

    def _check(self):
        now, elapsed = self.clock.now(), self.clock.elapsed()
        try:
            reasons = self.evaluate(now)
        except Exception as error:  # a bug, or a device's answer no driver foresaw: unsafe
            reasons = [f"the safety check failed ({type(error).__name__}: {error})"]
            self._failing.failed("%s; the dome stays closed until checks succeed", reasons[0],
                                 exc_info=True)
        else:
            self._failing.answered("the safety checks succeed again")
        with self._lock:
            if not STARTING.issuperset(reasons):
                self._carried = None  # something more than a start was wrong
            if reasons and not self._reasons:
                self._unsafe_since, self._good_since = now, None
                log.warning("conditions bad: %s", "; ".join(reasons))
            elif not reasons and self._reasons:
                carried, self._carried = self._carried, None
                good_for = 0.0 if carried is None else carried.good_for
                self._good_since = now - timedelta(seconds=good_for)
                self._good_elapsed = elapsed - good_for
                log.info("conditions good since %s (were: %s)%s", format_utc(self._good_since),
                         "; ".join(self._reasons), "" if carried is None else
                         f"; good for {good_for:.0f} s before the restart, the time it took "
                         "not counted")
            self._reasons = reasons
            good_for = None if reasons else elapsed - self._good_elapsed
        if reasons:
            self.handler.close_for_safety(f"{'; '.join(reasons)} (since "
                                          f"{format_utc(self._unsafe_since)})")
        self.handler.keep_telescope_parked()
        self._remember(now, good_for)

    def _remember(self, now, good_for):
        """Write the check down for the next start (see :mod:`.safety_memory`)."""
        if self._memory is None:
            return
        try:
            self._memory.remember(now, good_for)
        except sqlite3.Error as error:
            self._memory_outage.failed("cannot write the safety check down in %s (%s): a "
                                       "restart of the dome daemon would wait Dome → Reopen "
                                       "Delay in full", self._memory.path, error)
        else:
            self._memory_outage.answered("the safety checks are written down again")

    def evaluate(self, now):
        """The reasons it is unsafe at *now*: an empty list when all is well."""
        reasons = []
        try:
            verdict = self.handler.safety_monitor.state()
        except DeviceError as error:
            reasons.append(f"safety monitor not answering: {error}")
        else:
            if not verdict.safe:
                reasons.append(f"weather unsafe: {verdict.reason}")
            if verdict.updated is None:
                reasons.append("weather data missing")
            elif (now - verdict.updated).total_seconds() > self.settings["Weather Max Age"]:
                reasons.append(f"weather data stale since {format_utc(verdict.updated)}")
        daylight = self._daylight(now)
        if daylight:
            reasons.append(daylight)
        unsynchronized = self._unsynchronized()
        if unsynchronized:
            reasons.append(unsynchronized)
        with self._lock:
            last, silent = self._last_heartbeat, self.clock.elapsed() - self._heartbeat_elapsed
        if last is None:
            reasons.append(NO_HEARTBEAT_YET)
        elif silent > self.settings["Heartbeat Timeout"]:
            reasons.append(f"{HEARTBEAT_REASON} since {format_utc(last)}")
        return reasons

    def _daylight(self, now):
        """``"daylight: ..."`` when the Sun is at or above the limit at *now*, else ``""``.

        The Sun's altitude is computed for *now* itself (tens of milliseconds of astropy, once
        per check): the verdict changes at the crossing, and the altitude it reports is the one
        it was decided on.
        """
        limit = self.handler.config["Observing"]["Sun Altitude Limit"]
        altitude = sun_altitude(self.site, now)
        if altitude < limit:
            return ""
        return f"daylight: Sun at {altitude:.1f}° (limit {limit:g}°)"

    def _clock_not_asked(self):
        """Why the kernel is not asked about the clock (a simulated clock, or ``Require
        Synchronized Clock`` off), or ``""`` when it is."""
        if self.clock.simulated:
            return "simulated: not checked"
        if not self.settings["Require Synchronized Clock"]:
            return "not checked (Dome → Require Synchronized Clock is off)"
        return ""

    def _unsynchronized(self):
        """``"system clock not synchronized: ..."`` when the kernel, asked, says so; else
        ``""``."""
        if self._clock_not_asked():
            return ""
        sync = self._clock_sync()
        with self._lock:
            self._sync = sync
        if sync.synchronized is None:
            if not self._unknown_said:
                log.warning("the system clock: %s; the Sun's altitude is computed from it "
                            "as it is", sync.describe())
                self._unknown_said = True
            return ""
        if sync.synchronized:
            return ""
        return ("system clock not synchronized: no time service (systemd-timesyncd, chrony) "
                "keeps it, so the Sun's altitude cannot be trusted (see Dome → Require "
                "Synchronized Clock)")

    def _describe_clock(self):
        not_asked = self._clock_not_asked()
        if not_asked:
            return not_asked
        with self._lock:
            sync = self._sync
        return sync.describe() if sync is not None else "not checked yet"

    def may_open(self):
        """Whether the dome may open now: ``(True, "")`` or ``(False, why not)``."""
        now, elapsed = self.clock.now(), self.clock.elapsed()
        delay = self.settings["Reopen Delay"]
        with self._lock:
            if self._reasons:
                return False, (f"unsafe since {format_utc(self._unsafe_since)}: "
                               + "; ".join(self._reasons))
            good_since, good_for = self._good_since, elapsed - self._good_elapsed
        if good_for < delay:
            # Shown on the system clock, which may have been set since: by whole seconds (the
            # two clocks' readings differ by microseconds otherwise).
            setting = round((now - good_since).total_seconds() - good_for)
            ready = good_since + timedelta(seconds=delay + setting)
            return False, (f"conditions good only since {format_utc(good_since)}; the "
                           f"dome may open from {format_utc(ready)} (Dome → Reopen Delay)")
        return True, ""

    def report(self):
        """The guard's view, for the health report (XML-RPC types only)."""
        may_open, why_not = self.may_open()
        clock = self._describe_clock()
        with self._lock:
            report = {
                "Safe": not self._reasons,
                "Reason": "; ".join(self._reasons) or "safe",
                "May Open": may_open,
                "Clock": clock,
                "Last Heartbeat": (f"{format_utc(self._last_heartbeat)} from "
                                   f"{self._heartbeat_from}" if self._last_heartbeat
                                   else NEVER_HEARD),
            }
            if self._reasons:
                report["Unsafe Since"] = format_utc(self._unsafe_since)
            if self._good_since is not None:
                report["Good Since"] = format_utc(self._good_since)
        if why_not:
            report["Why Not"] = why_not
        return report
