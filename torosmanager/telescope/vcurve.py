"""The best focus of a focus run: a hyperbola fitted to the stars' sizes across the positions.

A focus run takes a frame at each of a few focuser positions either side of focus and measures
the half-flux diameter (HFD) of its stars (:mod:`.star_size`). Away from focus a star is the
telescope's defocused pupil, its size growing in proportion to the distance from focus; near
focus the seeing and the optics round the V off. The hyperbola

    HFD(x) = a · sqrt(1 + ((x − c) / b)²)

is that shape (NINA, among other autofocus programs, fits it): ``c`` is the best focus, ``a`` the
HFD there, and the asymptotes' slope ``a / b`` the HFD gained per step away from focus.

A run that does not bracket focus (its lowest HFD at either end) tells which way focus lies but
not where: it is refused, saying in which direction to centre the next run.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

#: The hyperbola's parameters: a, b and c.
PARAMETERS = 3


class FocusCurveError(Exception):
    """A focus run from which no best focus can be found; the message says why."""


@dataclass(frozen=True)
class FocusFit:
    """The best focus found from a focus run.

    Attributes
    ----------
    position : int
        The best focus, steps (the fitted centre, rounded to a step).
    hfd : float
        The fitted HFD at ``position``, pixels.
    centre : float
        The fitted centre ``c``, steps, before rounding.
    centre_error : float
        The standard error of ``centre``, steps, from the fit's covariance (``inf`` when the
        points do not constrain it).
    width : float
        ``b``: the steps from focus at which the HFD has grown by sqrt(2).
    slope : float
        ``a / b``: the HFD gained per step far from focus, pixels per step.
    points : int
        How many points were fitted (those with a finite HFD).
    """

    position: int
    hfd: float
    centre: float
    centre_error: float
    width: float
    slope: float
    points: int


def hyperbola(x, a, b, c):
    """The HFD at focuser position *x* of a curve with minimum *a* at *c* and width *b*."""
    return a * np.sqrt(1 + ((x - c) / b) ** 2)


def fit_focus(positions, hfds, minimum_points: int) -> FocusFit:
    """The best focus of a focus run, from the hyperbola fitted to its HFDs.

    Parameters
    ----------
    positions : sequence of int
        The focuser positions of the run, steps, in any order.
    hfds : sequence of float
        The HFD measured at each position, pixels; NaN where no star was measured (such points
        are left out).
    minimum_points : int
        How many points with a measured HFD the fit needs, at least the hyperbola's three
        parameters: more points average out the seeing.

    Returns
    -------
    FocusFit

    Raises
    ------
    FocusCurveError
        With the positions and HFDs in its message: when fewer than ``minimum_points`` HFDs
        were measured; when they are all equal (no focus information); when the lowest HFD is
        at either end of the run, or the fitted focus beyond it (the run must be repeated
        centred further that way); when the fit fails.
    ValueError
        When ``minimum_points`` is less than the hyperbola's three parameters, or *positions*
        and *hfds* differ in length.
    """
    if minimum_points < PARAMETERS:
        raise ValueError(f"minimum_points must be at least {PARAMETERS} (the hyperbola's "
                         f"parameters), not {minimum_points}")
    x_all = np.asarray(positions, dtype=float)
    h_all = np.asarray(hfds, dtype=float)
    if x_all.shape != h_all.shape:
        raise ValueError(f"{x_all.size} positions but {h_all.size} HFDs")
    order = np.argsort(x_all, kind="stable")
    x_all, h_all = x_all[order], h_all[order]

    def error(reason):
        run = ", ".join(f"{x:.0f}: {h:.3g}" for x, h in zip(x_all, h_all))
        return FocusCurveError(f"no best focus from the run (position: HFD) {run}: {reason}")

    measured = np.isfinite(h_all)
    x, h = x_all[measured], h_all[measured]
    if x.size < minimum_points:
        raise error(f"{x.size} HFD(s) measured, {minimum_points} needed")
    if h.min() == h.max():
        raise error("the HFD is the same at every position: the run holds no focus information")
    # Focus must lie between the ends of the run: a V seen from one side fixes no minimum.
    lowest, highest = x[0], x[-1]
    beyond_low = f"the focus lies below {lowest:.0f}, the run's lowest position"
    beyond_high = f"the focus lies beyond {highest:.0f}, the run's highest position"
    at_minimum = x[h == h.min()]
    if lowest in at_minimum:
        raise error(beyond_low)
    if highest in at_minimum:
        raise error(beyond_high)

    start = _starting_point(x, h, at_minimum[0], h.min())
    try:
        with warnings.catch_warnings():
            # An unconstrained centre is reported as an infinite centre_error, not a warning.
            warnings.simplefilter("ignore", OptimizeWarning)
            (a, b, c), covariance = curve_fit(hyperbola, x, h, p0=start)
    except (RuntimeError, ValueError) as failure:
        raise error(f"the hyperbola could not be fitted ({failure})") from failure
    # The curve depends on b only through b²: its sign is immaterial.
    b = abs(b)
    if not (np.isfinite([a, b, c]).all() and a > 0 and b > 0):
        raise error(f"the fitted hyperbola is not a V (a = {a:.4g}, b = {b:.4g})")
    if c < lowest:
        raise error(beyond_low + f" (fitted {c:.0f})")
    if c > highest:
        raise error(beyond_high + f" (fitted {c:.0f})")
    position = round(c)
    return FocusFit(position=position, hfd=float(hyperbola(position, a, b, c)), centre=float(c),
                    centre_error=float(np.sqrt(covariance[2, 2])), width=float(b),
                    slope=float(a / b), points=int(x.size))


def _starting_point(x, h, x_best, h_best):
    """A start for the fit: the centre at the lowest point, ``a`` its HFD, and ``b`` that of the
    hyperbola through it and the point farthest from it, at an end of the run (which stands
    higher: the lowest HFD is not at an end)."""
    far = np.argmax(np.abs(x - x_best))
    b = abs(x[far] - x_best) / np.sqrt((h[far] / h_best) ** 2 - 1)
    return h_best, b, x_best
