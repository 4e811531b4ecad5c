"""What a telescope takes: its name, its filters, its longest exposure and most frames.

The telescope daemon checks every Observation order against these at its front desk, and
publishes them in its health Status (``Limits``). The scheduler checks orders against the
limits its telescope last published, with the same function, so that it refuses at once, with
the telescope's own words, what the telescope would refuse at dispatch hours later.
"""

from ..workorders import refuse


def limits_of(settings, filters):
    """The ``Limits`` of a telescope's health Status.

    Parameters
    ----------
    settings : dict
        The ``Telescope`` section of the configuration.
    filters : list of str or None
        The filter wheel's names; ``None`` while the wheel has not answered.
    """
    limits = {"Telescope Name": settings["Name"],
              "Max Exposure Time": settings["Max Exposure Time"],
              "Max Number of Exposures": settings["Max Number of Exposures"]}
    if filters is not None:
        limits["Filters"] = list(filters)
    return limits


def check(order, limits):
    """Refuse (raise :class:`~torosmanager.workorders.WorkOrderError`) an Observation order
    that is not for this telescope, asks for a filter it lacks, or exceeds its limits."""
    name = limits["Telescope Name"]
    requested = order.get("Telescope Name", name)
    if requested.casefold() != name.casefold():
        raise refuse("Telescope Name", requested,
                     f"{name!r}, the telescope this daemon drives (Telescope → Name)")
    filters = limits.get("Filters")
    if filters is not None and order["Filter"] not in filters:
        raise refuse("Filter", order["Filter"], "one of " + ", ".join(
            repr(filter_name) for filter_name in filters) + " (the filter wheel's filters)")
    longest = limits["Max Exposure Time"]
    if order["Exposure Time"] > longest:
        raise refuse("Exposure Time", order["Exposure Time"],
                     f"at most {longest:g} seconds (Telescope → Max Exposure Time)")
    most = limits["Max Number of Exposures"]
    if order.get("Number of Exposures", 1) > most:
        raise refuse("Number of Exposures", order["Number of Exposures"],
                     f"at most {most} (Telescope → Max Number of Exposures)")
