"""The best focus of a focus run, as a specification: the centre of the hyperbola fitted to the
HFDs, to within a fraction of the run's spacing; the points may come in any order and frames
without stars are left out; a run whose lowest HFD (or fitted focus) is at an end, too short a
run, and a run without focus information are refused, naming the points and, for an end, which
way focus lies."""

import numpy as np
import pytest

from torosmanager.telescope import vcurve
from torosmanager.telescope.vcurve import FocusCurveError, FocusFit, fit_focus, hyperbola

#: A focuser's focus: the HFD at focus (pixels), the steps from focus at which it has grown by
#: sqrt(2), and the best focus (steps).
A, B, CENTRE = 2.5, 400.0, 50_123
#: A focus run: 11 positions 200 steps apart, either side of focus.
SPACING = 200
RUN = np.arange(49_000, 51_001, SPACING)
#: The scatter of a measured HFD about the curve, relative: the seeing changing between frames.
SCATTER = 0.02
#: How close a fitted focus must be: a tenth of the run's spacing (at 2% scatter the fitted
#: centre's error is about 7 steps).
FOCUS_TOLERANCE = SPACING / 10
#: The settings a configuration would pass.
MINIMUM_POINTS = 5


def measured(positions, centre=CENTRE, seed=None):
    """The HFDs a run at *positions* measures, with SCATTER when *seed* is given."""
    hfds = hyperbola(np.asarray(positions, dtype=float), A, B, centre)
    if seed is not None:
        hfds *= 1 + np.random.default_rng(seed).normal(0, SCATTER, hfds.size)
    return hfds


def test_the_focus_of_an_exact_hyperbola_is_its_centre():
    fit = fit_focus(RUN, measured(RUN), MINIMUM_POINTS)
    assert fit == FocusFit(position=CENTRE, hfd=pytest.approx(A), centre=pytest.approx(CENTRE),
                           centre_error=pytest.approx(0, abs=1e-3), width=pytest.approx(B),
                           slope=pytest.approx(A / B), points=RUN.size)


@pytest.mark.parametrize("seed", range(5))
def test_a_scattered_run_finds_focus_within_a_tenth_of_its_spacing(seed):
    fit = fit_focus(RUN, measured(RUN, seed=seed), MINIMUM_POINTS)
    assert abs(fit.position - CENTRE) <= FOCUS_TOLERANCE
    assert fit.hfd == pytest.approx(A, rel=3 * SCATTER)
    # The reported error is of the size of the real one.
    assert abs(fit.position - CENTRE) <= 3 * fit.centre_error


def test_positions_may_come_in_any_order():
    hfds = measured(RUN, seed=1)
    shuffled = np.random.default_rng(2).permutation(RUN.size)
    assert (fit_focus(list(RUN[shuffled]), list(hfds[shuffled]), MINIMUM_POINTS)
            == fit_focus(RUN, hfds, MINIMUM_POINTS))


def test_a_frame_without_stars_is_left_out():
    hfds = measured(RUN, seed=3)
    with_nan = hfds.copy()
    with_nan[4] = np.nan
    fit = fit_focus(RUN, with_nan, MINIMUM_POINTS)
    assert fit == fit_focus(np.delete(RUN, 4), np.delete(hfds, 4), MINIMUM_POINTS)
    assert fit.points == RUN.size - 1
    assert abs(fit.position - CENTRE) <= FOCUS_TOLERANCE


@pytest.mark.parametrize("centre, direction", [
    (51_300, "the focus lies beyond 51000, the run's highest position"),
    (48_600, "the focus lies below 49000, the run's lowest position"),
])
def test_a_run_with_its_lowest_hfd_at_an_end_says_which_way_focus_lies(centre, direction):
    with pytest.raises(FocusCurveError, match=f": {direction}$"):
        fit_focus(RUN, measured(RUN, centre=centre, seed=4), MINIMUM_POINTS)


def test_a_fitted_focus_beyond_the_run_is_refused_too():
    # The lowest HFD is one step in from the end, but the curve still falls there: a run on
    # the flat bottom of a wide V, whose focus is past its end.
    positions = [49_000, 49_400, 49_800, 50_200, 50_600, 51_000]
    hfds = [5.01, 4.51, 4.12, 3.68, 3.11, 3.12]
    with pytest.raises(FocusCurveError, match=r": the focus lies beyond 51000, the run's highest "
                                              r"position \(fitted 5\d{4}\)$"):
        fit_focus(positions, hfds, MINIMUM_POINTS)


def test_the_error_names_the_points_it_got():
    hfds = [3.1, np.nan, 2.5, np.nan, 3.0]
    with pytest.raises(FocusCurveError) as raised:
        fit_focus([50_200, 50_000, 50_100, 49_900, 50_000], hfds, MINIMUM_POINTS)
    assert str(raised.value) == (
        "no best focus from the run (position: HFD) 49900: nan, 50000: nan, 50000: 3, "
        "50100: 2.5, 50200: 3.1: 3 HFD(s) measured, 5 needed")


def test_too_few_points_are_refused():
    with pytest.raises(FocusCurveError, match=": 4 HFD.s. measured, 5 needed$"):
        fit_focus(RUN[3:7], measured(RUN[3:7]), MINIMUM_POINTS)
    with pytest.raises(ValueError, match="minimum_points must be at least 3"):
        fit_focus(RUN, measured(RUN), 2)


def test_a_flat_run_holds_no_focus_information():
    with pytest.raises(FocusCurveError, match="the HFD is the same at every position: the run "
                                              "holds no focus information$"):
        fit_focus(RUN, np.full(RUN.size, 3.2), MINIMUM_POINTS)


def test_a_fit_that_fails_is_a_focus_curve_error(monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found: maxfev = 800")

    monkeypatch.setattr(vcurve, "curve_fit", failing)
    with pytest.raises(FocusCurveError, match=r": the hyperbola could not be fitted \(Optimal "
                                              r"parameters not found: maxfev = 800\)$"):
        fit_focus(RUN, measured(RUN), MINIMUM_POINTS)
