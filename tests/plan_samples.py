"""The instants at which the planner tests check a plan with astropy."""

import numpy as np

#: Seconds between two checked instants of an entry (its end is checked too).
CHECK_SECONDS = 30.0


def samples(entries, since):
    """Every entry's instants, every CHECK_SECONDS and its end: (entry index, Time) arrays."""
    import astropy.units as u
    from astropy.time import Time

    owner, offsets = [], []
    for index, entry in enumerate(entries):
        length = (entry.end - entry.start).total_seconds()
        steps = np.append(np.arange(0.0, length, CHECK_SECONDS), length)
        owner += [index] * len(steps)
        offsets += [(entry.start - since).total_seconds() + step for step in steps]
    return np.array(owner), Time(since) + np.array(offsets) * u.s
