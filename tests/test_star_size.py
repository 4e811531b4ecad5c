"""The size of the stars in a frame, as a specification: the median half-flux diameter (HFD) of
the brightest stars, which for a Gaussian star is its FWHM and for a defocused ring ("donut") its
diameter; hot pixels, stars cut by the edge and faint stars beyond ``maximum_stars`` are not
measured, and a frame with no star raises NoStars.

The frames are made here: a flat sky, stars of known shape and flux integrated over each pixel,
photon (Poisson) and read (Gaussian) noise, as a uint16 camera frame.
"""

import numpy as np
import pytest
from scipy.special import erf

from torosmanager.telescope.star_size import NoStars, StarSize, measure_stars

#: A frame as small as a focus frame's region of interest.
SHAPE = (256, 256)
#: Sky level and read noise, counts (electrons: a gain of 1).
SKY = 1000.0
READ_NOISE = 5.0
#: A star's flux, counts: bright enough that its noise does not blur the diameter.
FLUX = 200_000.0
#: The settings a configuration would pass.
DETECTION_SIGMA = 5.0
MINIMUM_PIXELS = 5
MAXIMUM_STARS = 50
#: FWHM / σ of a Gaussian.
FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))
#: How much a pixel blurs a measured star, as a FWHM, pixels. A star is spread over pixels
#: twice: its light is summed over each pixel, and the enclosed flux is measured as if each
#: pixel's flux were spread evenly over it. Each is (nearly) a convolution with a one-pixel box,
#: of variance 1/12 pixel², so the measured HFD of a Gaussian star is hypot(FWHM, PIXEL_BLUR):
#: 10% above a FWHM of 2 pixels, under 1.5% above one of 4.
PIXEL_BLUR = FWHM_PER_SIGMA * np.sqrt(2 / 12)
#: Subpixels a side that a ring is drawn on before it is summed into pixels.
RING_SUBPIXELS = 10
#: How close the measured diameters must be, relative.
TOLERANCE = 0.03


def gaussian(light, x, y, fwhm, flux=FLUX):
    """Add to *light* a Gaussian star at (*x*, *y*), each pixel's share integrated exactly."""
    sigma = fwhm / FWHM_PER_SIGMA
    rows, columns = (np.arange(n + 1) - 0.5 for n in light.shape)
    in_rows = np.diff(erf((rows - y) / (np.sqrt(2) * sigma))) / 2
    in_columns = np.diff(erf((columns - x) / (np.sqrt(2) * sigma))) / 2
    light += flux * np.outer(in_rows, in_columns)


def ring(light, x, y, inner, outer, flux=FLUX):
    """Add to *light* a uniform annulus between radii *inner* and *outer*, centred at (*x*, *y*):
    a defocused star behind a central obstruction. It is drawn on subpixels, then summed."""
    left, bottom = int(x - outer) - 1, int(y - outer) - 1
    side = int(2 * outer) + 3
    step = 1 / RING_SUBPIXELS
    offsets = np.arange(side * RING_SUBPIXELS) * step - 0.5 + step / 2
    radius = np.hypot(*np.meshgrid(left + offsets - x, bottom + offsets - y))
    inside = ((radius >= inner) & (radius < outer)).reshape(
        side, RING_SUBPIXELS, side, RING_SUBPIXELS).sum(axis=(1, 3))
    light[bottom:bottom + side, left:left + side] += flux * inside / inside.sum()


def places(rng, count, margin):
    """*count* random (x, y), one in each cell of a square grid, at least *margin* pixels from
    the frame's edge and from each other: stars apart, as in a focus field."""
    cells = int(np.ceil(np.sqrt(count)))
    size = (SHAPE[0] - 2 * margin) / cells
    spots = []
    for index in range(count):
        row, column = divmod(index, cells)
        jitter = rng.uniform(0, size - margin, 2)
        spots.append((margin + column * size + jitter[0], margin + row * size + jitter[1]))
    return spots


def expose(light, rng):
    """The frame a camera records of *light* on the sky: photon and read noise, in uint16."""
    counts = rng.poisson(SKY + light) + rng.normal(0, READ_NOISE, light.shape)
    return np.clip(np.round(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def measure(frame, maximum_stars=MAXIMUM_STARS, minimum_pixels=MINIMUM_PIXELS):
    return measure_stars(frame, DETECTION_SIGMA, minimum_pixels, maximum_stars)


def star_field(rng, fwhm, count):
    light = np.zeros(SHAPE)
    for x, y in places(rng, count, margin=4 * fwhm):
        gaussian(light, x, y, fwhm)
    return expose(light, rng)


@pytest.mark.parametrize("fwhm", [2.0, 4.0, 8.0])
def test_a_gaussian_star_s_hfd_is_its_fwhm(fwhm):
    rng = np.random.default_rng(1)
    size = measure(star_field(rng, fwhm, 16))
    assert size.stars == 16
    assert size.hfd == pytest.approx(np.hypot(fwhm, PIXEL_BLUR), rel=TOLERANCE)


def test_a_float_frame_measures_as_its_uint16_original():
    frame = star_field(np.random.default_rng(2), 4.0, 9)
    assert measure(frame.astype(np.float32)) == measure(frame)


def test_a_donut_s_hfd_is_the_ring_s_diameter():
    # Half a uniform annulus's flux lies inside sqrt((inner² + outer²) / 2): 7.07 pixels here,
    # within 1% of the ring's mean radius.
    inner, outer = 6.0, 8.0
    rng = np.random.default_rng(3)
    light = np.zeros(SHAPE)
    for x, y in places(rng, 9, margin=3 * outer):
        ring(light, x, y, inner, outer)
    size = measure(expose(light, rng))
    assert size == StarSize(hfd=pytest.approx(inner + outer, rel=TOLERANCE), stars=9)


def test_a_hot_pixel_is_not_measured_as_a_star():
    rng = np.random.default_rng(4)
    light = np.zeros(SHAPE)
    for x, y in places(rng, 9, margin=16):
        gaussian(light, x, y, 4.0)
    frame = expose(light, rng)
    # A hot pixel (or a cosmic ray) between the stars: one saturated pixel.
    frame[5, 128] = np.iinfo(np.uint16).max
    size = measure(frame)
    assert size.stars == 9
    assert size.hfd == pytest.approx(np.hypot(4.0, PIXEL_BLUR), rel=TOLERANCE)
    # minimum_pixels is what keeps it out: at one pixel it is a (tiny) star, which the median
    # of the diameters still passes over.
    with_hot_pixel = measure(frame, minimum_pixels=1)
    assert with_hot_pixel.stars == 10
    assert with_hot_pixel.hfd == pytest.approx(np.hypot(4.0, PIXEL_BLUR), rel=TOLERANCE)


def test_stars_cut_by_the_edge_are_left_out():
    fwhm = 4.0
    rng = np.random.default_rng(5)
    light = np.zeros(SHAPE)
    last = SHAPE[0] - 1
    for x, y in [(0.0, 60.0), (last, 100.0), (180.0, 0.0), (40.0, last), (1.5, 200.0)]:
        gaussian(light, x, y, fwhm)
    edge_only = expose(light, rng)
    with pytest.raises(NoStars, match=r"^no star measured: 5 source\(s\) .*, all of them on the "
                                      r"edge of the frame$"):
        measure(edge_only)

    for x, y in [(64.0, 64.0), (190.0, 70.0), (70.0, 190.0)]:
        gaussian(light, x, y, fwhm)
    size = measure(expose(light, rng))
    assert size.stars == 3
    assert size.hfd == pytest.approx(np.hypot(fwhm, PIXEL_BLUR), rel=TOLERANCE)


def test_a_source_without_a_positive_flux_is_left_out():
    rng = np.random.default_rng(8)
    light = np.zeros(SHAPE)
    for x, y in [(64.0, 64.0), (190.0, 70.0), (70.0, 190.0)]:
        gaussian(light, x, y, 4.0)
    # A patch left dark by a bad calibration frame, with a bright knot in it: the knot is
    # detected, but with the patch around it its flux is negative.
    rows, columns = np.indices(SHAPE)
    light[np.hypot(columns - 180, rows - 180) < 12] -= 600
    light[178:181, 179:181] += 900
    size = measure(expose(light, rng))
    assert size.stars == 3
    assert size.hfd == pytest.approx(np.hypot(4.0, PIXEL_BLUR), rel=TOLERANCE)


def test_a_frame_of_noise_raises_no_stars_naming_the_threshold():
    frame = expose(np.zeros(SHAPE), np.random.default_rng(6))
    noise = np.sqrt(SKY + READ_NOISE ** 2)
    with pytest.raises(NoStars) as raised:
        measure(frame)
    message = str(raised.value)
    assert message.startswith("no star measured: 0 source(s) of at least 5 pixels above 5 σ of "
                              "the background's noise (")
    threshold = float(message.split("(")[2].split(" above")[0])
    assert threshold == pytest.approx(DETECTION_SIGMA * noise, rel=TOLERANCE)


def test_the_brightest_stars_are_the_ones_measured():
    rng = np.random.default_rng(7)
    light = np.zeros(SHAPE)
    spots = places(rng, 12, margin=24)
    # Four bright sharp stars among eight faint broad ones.
    for index, (x, y) in enumerate(spots):
        if index % 3 == 0:
            gaussian(light, x, y, 3.0, flux=4 * FLUX)
        else:
            gaussian(light, x, y, 6.0, flux=FLUX / 2)
    frame = expose(light, rng)

    brightest = measure(frame, maximum_stars=4)
    assert brightest.stars == 4
    assert brightest.hfd == pytest.approx(np.hypot(3.0, PIXEL_BLUR), rel=TOLERANCE)
    everything = measure(frame)
    assert everything.stars == 12
    assert everything.hfd == pytest.approx(np.hypot(6.0, PIXEL_BLUR), rel=TOLERANCE)
    with pytest.raises(ValueError, match="maximum_stars must be at least 1, not 0"):
        measure(frame, maximum_stars=0)
