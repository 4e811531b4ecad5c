"""The masters' combination, as a specification: the fast sigma-clipped mean gives what
astropy's ``sigma_clip`` (median centre, standard deviation, 3 sigma, 5 rounds) followed by a
mean gives, for any number of frames, outliers included."""

import itertools
import warnings

import numpy as np
import pytest
from astropy.stats import sigma_clip

from torosmanager.preprocessor.combine import clipped_mean, sorting_network


def astropy_clipped_mean(stack):
    clipped = sigma_clip(stack, sigma=3, maxiters=5, axis=0, cenfunc="median", stdfunc="std",
                         masked=False)
    return np.nanmean(clipped, axis=0)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 10, 16, 33])
def test_equals_astropys_sigma_clipped_mean(count):
    rng = np.random.default_rng(count)
    stack = (rng.standard_normal((count, 40, 70)) * 10 + 1000).astype(np.float32)
    stack[rng.random(stack.shape) < 0.03] = 60000.0     # cosmic rays
    stack[rng.random(stack.shape) < 0.01] = 0.0         # dropouts
    expected = astropy_clipped_mean(stack)
    result = clipped_mean(stack.copy())
    assert result.dtype == np.float32 and result.shape == (40, 70)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 10, 16])
def test_values_that_are_not_finite_are_left_out_as_astropy_leaves_them(count):
    """A NaN pixel (a camera's BLANK) or an infinite one in one frame: the sort spread it over
    the pixel's other values, and the master had NaN there, in every product after it."""
    rng = np.random.default_rng(count)
    stack = (rng.standard_normal((count, 40, 70)) * 10 + 1000).astype(np.float32)
    stack[rng.random(stack.shape) < 0.03] = 60000.0
    stack[rng.random(stack.shape) < 0.05] = np.nan
    stack[rng.random(stack.shape) < 0.02] = np.inf
    stack[rng.random(stack.shape) < 0.02] = -np.inf
    stack[:, 5, 5] = np.nan                             # a pixel dead in every frame
    stack[0, :, 9] = np.nan                             # a bad column in one frame
    with np.errstate(all="raise"):
        result = clipped_mean(stack.copy())
    with warnings.catch_warnings():  # astropy says it clips them; numpy, 'Mean of empty slice'
        warnings.simplefilter("ignore")
        expected = astropy_clipped_mean(stack)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-3)
    # NaN only where no frame has a value: the dead pixel, and those the dice made so.
    np.testing.assert_array_equal(np.isnan(result), ~np.isfinite(stack).any(axis=0))
    assert np.isnan(result[5, 5])


def test_a_cosmic_ray_in_one_of_ten_frames_is_rejected():
    stack = np.full((10, 3, 3), 1000.0, dtype=np.float32)
    stack += np.arange(10, dtype=np.float32)[:, None, None]   # 1000..1009, mean 1004.5
    stack[4, 1, 1] = 65000.0
    result = clipped_mean(stack)
    assert result[1, 1] == pytest.approx((sum(range(1000, 1010)) - 1004) / 9)
    assert result[0, 0] == pytest.approx(1004.5)


def test_identical_values_are_their_own_mean():
    stack = np.full((6, 4, 5), 1234.5, dtype=np.float32)
    assert np.all(clipped_mean(stack) == np.float32(1234.5))


@pytest.mark.parametrize("count", range(1, 9))
def test_the_sorting_network_sorts_every_order(count):
    pairs = sorting_network(count)
    for values in itertools.permutations(range(count)):
        items = list(values)
        for low, high in pairs:
            if items[low] > items[high]:
                items[low], items[high] = items[high], items[low]
        assert items == sorted(values)


def test_refuses_what_it_would_have_to_copy():
    with pytest.raises(ValueError):
        clipped_mean(np.zeros((3, 4, 4)))               # float64
    with pytest.raises(ValueError):
        clipped_mean(np.zeros((3, 4, 8), np.float32)[:, :, ::2])
