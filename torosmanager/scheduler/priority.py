"""Priorities: a float from 0 to 10 for every order, by rules in the configuration.

The rules (the shared ``Priorities`` section), in order:

1. the priority the submitter requested, or else the priority of the order's ``Type of job``
   (``Job Priorities``), or else ``Default Priority``;
2. plus the adjustment of its ``Type of object`` (``Object Adjustments``);
3. plus the adjustment of its ``User`` (``User Adjustments``);
4. clipped to 0–10.

The result comes with a one-line reason, e.g. ``"Type of job 'ToO': 9; Type of object
'Kilonova candidate': +1"``.

Examples
--------
>>> from torosmanager.config import default_config
>>> assign({"Type of job": "ToO", "Type of object": "Kilonova candidate", "User": "LVK"},
...        default_config()["Priorities"])
(10.0, "Type of job 'ToO': 9; Type of object 'Kilonova candidate': +1")
"""

from ..workorders import clip_priority


def assign(order, settings):
    """The priority of *order* and the reason for it.

    Parameters
    ----------
    order : dict
        A validated work order.
    settings : dict
        The configuration's ``Priorities`` section.

    Returns
    -------
    (float, str)
    """
    requested = order.get("Priority")
    job = order.get("Type of job")
    if requested is not None:
        value, reasons = float(requested), [f"requested: {requested:g}"]
    elif job in settings["Job Priorities"]:
        value = settings["Job Priorities"][job]
        reasons = [f"Type of job {job!r}: {value:g}"]
    else:
        value = settings["Default Priority"]
        reasons = [f"default priority: {value:g}"]
    for key, rules in (("Type of object", "Object Adjustments"), ("User", "User Adjustments")):
        adjustment = settings[rules].get(order.get(key))
        if adjustment:
            value += adjustment
            reasons.append(f"{key} {order[key]!r}: {adjustment:+g}")
    clipped = clip_priority(value)
    if clipped != value:
        reasons.append(f"clipped to {clipped:g}")
    return clipped, "; ".join(reasons)
