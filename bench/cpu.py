"""What the benchmarks say of the machine: the line of every table (system, processor, CPUs,
Python) and how fast it is at the moment (a Python loop timed)."""
import os
import platform
import time

#: The machine's speed at the moment, as the benchmarks' notes give it: this virtual machine's
#: host lends it more or less of a CPU from one minute to the next (about 1.3 s when it is
#: quiet, 2–3.6 s in a slow window).
LOOP_TEXT = "a Python loop (`sum(range(10**8))`)"
LOOP_COUNT = 10 ** 8


def processor_name(default):
    """The CPU model from ``/proc/cpuinfo`` (Linux), or *default* where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as stream:
            return next(line.split(":", 1)[1].strip() for line in stream
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return default


def machine_line():
    """``"Linux 6.18, <CPU model>, 2 CPUs (2 usable by this process, as `nproc` says);
    Python 3.11.7"``: what the benchmarks' tables say of the machine, before their own
    additions (libraries, the work directory's disk)."""
    usable = len(os.sched_getaffinity(0))
    return (f"{platform.system()} {platform.release()}, {processor_name(platform.machine())}, "
            f"{os.cpu_count()} CPUs ({usable} usable by this process, as `nproc` says); "
            f"Python {platform.python_version()}")


def loop_seconds():
    """Seconds this process takes for :data:`LOOP_TEXT`: how fast the machine is now."""
    started = time.perf_counter()
    sum(range(LOOP_COUNT))
    return time.perf_counter() - started


class Conditions:
    """The machine's load and speed when a benchmark starts (made then) and ends
    (:meth:`text`, called once, after the run)."""

    def __init__(self):
        self.load_before = os.getloadavg()
        self.loop_before = loop_seconds()

    def text(self):
        """``"load average (1, 5, 15 min) … before, … after; a Python loop … took … s before,
        … s after"``."""
        load_after = os.getloadavg()
        loop_after = loop_seconds()
        return (f"load average (1, 5, 15 min) {_loads(self.load_before)} before, "
                f"{_loads(load_after)} after; {LOOP_TEXT} took {self.loop_before:.1f} s "
                f"before, {loop_after:.1f} s after")


def _loads(values):
    return " ".join(f"{value:.2f}" for value in values)
