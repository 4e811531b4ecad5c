"""The processor's name, for the machine line of every benchmark's table."""


def processor_name(default):
    """The CPU model from ``/proc/cpuinfo`` (Linux), or *default* where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as stream:
            return next(line.split(":", 1)[1].strip() for line in stream
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return default
