"""The dome's auxiliary outputs, as Dome orders name them (``Blink01`` … ``BlinkNN``).

The dome daemon checks an order's outputs against ``Dome → Auxiliary Outputs``; the scheduler,
which forwards Dome orders, against the count the dome daemon's Status gives (``Devices →
Auxiliary Outputs``), so that an order for an output the dome lacks is refused on arrival
wherever it is sent.
"""

from ..workorders import refuse

BLINK_PREFIX = "Blink"


def output_keys(order):
    """The ``BlinkNN`` keys of *order*, in order."""
    return sorted(key for key in order if key.startswith(BLINK_PREFIX))


def check_outputs(order, outputs):
    """Refuse a ``BlinkNN`` key of *order* beyond the dome's *outputs* (a count).

    Raises
    ------
    WorkOrderError
        Naming the key, its value and the outputs the dome has.
    """
    for key in output_keys(order):
        if not 1 <= int(key[len(BLINK_PREFIX):]) <= outputs:
            raise refuse(key, order[key], f"Blink01 to Blink{outputs:02d}: this dome has "
                                          f"{outputs} auxiliary outputs (Dome → Auxiliary "
                                          "Outputs)")
