"""The simulated camera's frames, as a specification: they are made of the known truth (the
camera's ``truth_*`` methods), so calibration can be checked against it.

* bias: mean at the bias level, spread the read noise;
* dark: the dark current times the exposure time above the bias;
* flat: the flat-field response of the filter (vignetting and pixel pattern), within its noise;
* light: the sky through the filter and the flat field, and stars where the truth puts them;
* the same seed gives the same sequence of frames, and the same pointing the same stars.

Statistical tolerances are several standard errors wide; the seed is fixed, so the tests are
deterministic anyway.
"""


import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from torosmanager.config import default_config
from torosmanager.devices import FilterWheelState, FrameType, MountState
from torosmanager.devices.mount import LOOKING_EAST, LOOKING_WEST
from torosmanager.devices.simulator import SimulatedCamera
from torosmanager.telescope.wcs import SkyOrientation

from stepped_clock import SteppedClock

#: Pixels on a side: enough pixels for tight statistics, quick to make.
SIZE = 512
#: Where the light frames point (ICRS degrees).
TARGET = (45.0, 20.0)
#: Arcseconds per degree.
ARCSEC = 3600.0
#: The standard deviation of a normal distribution per unit of median absolute deviation.
MAD_TO_SIGMA = 1.4826


class FixedMount:
    """A mount that points where the test says: the camera only needs ``state()``."""

    def __init__(self, ra, dec, pier_side=None):
        self.ra, self.dec, self.pier_side = ra, dec, pier_side

    def state(self):
        return MountState(ra=self.ra, dec=self.dec, altitude=60.0, azimuth=180.0,
                          slewing=False, parked=False, tracking=True, pier_side=self.pier_side)


class FixedWheel:
    """A filter wheel holding one filter in the beam."""

    def __init__(self, name):
        self.name = name

    def state(self):
        return FilterWheelState(names=[self.name], position=0)


def make_camera(size=SIZE, filter_name="V", pointing=TARGET, pier_side=None, **settings):
    simulator = default_config()["Simulator"]
    simulator.update({"Width": size, "Height": size, **settings})
    clock = SteppedClock()
    camera = SimulatedCamera(simulator, default_config()["Site"], clock,
                             mount=FixedMount(*pointing, pier_side),
                             filter_wheel=FixedWheel(filter_name))
    camera.connect()
    return camera, clock, simulator


def expose(camera, clock, seconds, frame_type):
    """Take a frame and return it as float64 ADU."""
    camera.start_exposure(seconds, frame_type)
    clock.advance(seconds + 3600)  # well past exposure and readout
    return camera.image().astype(np.float64)


@pytest.fixture(scope="module")
def camera_and_clock():
    camera, clock, _ = make_camera()
    return camera, clock


@pytest.fixture(scope="module")
def bias(camera_and_clock):
    return expose(*camera_and_clock, 0.0, FrameType.BIAS)


def test_a_bias_sits_at_the_bias_level_with_the_read_noise(camera_and_clock, bias):
    camera, _ = camera_and_clock
    assert bias.mean() == pytest.approx(camera.truth_bias_level_adu(), abs=0.1)
    # Rounding to whole ADU adds 1/12 ADU² of variance.
    expected_std = np.sqrt(camera.truth_read_noise_adu() ** 2 + 1 / 12)
    assert bias.std() == pytest.approx(expected_std, rel=0.02)


def test_the_read_noise_in_adu_is_the_read_noise_over_the_gain(camera_and_clock):
    camera, _ = camera_and_clock
    info = camera.info()
    assert camera.truth_read_noise_adu() == pytest.approx(info.read_noise / info.gain)


def test_a_dark_adds_the_dark_current_times_the_exposure_time(camera_and_clock):
    camera, clock = camera_and_clock
    gain = camera.info().gain
    for seconds in (1000.0, 2000.0):
        dark = expose(camera, clock, seconds, FrameType.DARK)
        signal = dark.mean() - camera.truth_bias_level_adu()
        expected = camera.truth_dark_electrons_per_second() * seconds / gain
        assert signal == pytest.approx(expected, rel=0.01)


def test_a_flat_normalised_is_the_flat_field_response_within_its_noise(camera_and_clock,
                                                                        bias):
    camera, clock = camera_and_clock
    flat = expose(camera, clock, 1.0, FrameType.FLAT) - camera.truth_bias_level_adu()
    truth = camera.truth_flat("V")
    residual = flat / flat.mean() - truth / truth.mean()
    # Per pixel: Poisson noise of the flat's electrons, read noise, rounding.
    level = default_config()["Simulator"]["Flat Level"] * truth
    gain = camera.info().gain
    variance = (level + camera.info().read_noise ** 2 + gain ** 2 / 12) / level ** 2
    predicted = np.sqrt(variance.mean())
    assert residual.std() == pytest.approx(predicted, rel=0.05)
    # Against another filter's response the pixel pattern no longer matches.
    other = camera.truth_flat("R")
    assert (flat / flat.mean() - other / other.mean()).std() > 1.5 * predicted


def test_the_flat_field_is_vignetted_by_the_configured_fraction_in_the_corners(
        camera_and_clock):
    camera, clock = camera_and_clock
    vignetting = default_config()["Simulator"]["Vignetting"]
    flat = expose(camera, clock, 1.0, FrameType.FLAT) - camera.truth_bias_level_adu()
    box = 4
    middle = SIZE // 2
    centre = flat[middle - box:middle + box, middle - box:middle + box].mean()
    corner = np.mean([flat[:box, :box].mean(), flat[:box, -box:].mean(),
                      flat[-box:, :box].mean(), flat[-box:, -box:].mean()])
    assert corner / centre == pytest.approx(1 - vignetting, abs=0.01)


def test_the_flat_field_response_is_fixed_by_the_seed_and_the_filter():
    first, _, _ = make_camera(size=64)
    second, _, _ = make_camera(size=64)
    other_seed, _, _ = make_camera(size=64, Seed=2)
    assert np.array_equal(first.truth_flat("V"), second.truth_flat("V"))
    assert not np.array_equal(first.truth_flat("V"), first.truth_flat("B"))
    assert not np.array_equal(first.truth_flat("V"), other_seed.truth_flat("V"))


def light_frame(camera, clock, seconds, bias_level):
    """A light frame in electrons above the bias, and the sky expected on each pixel."""
    gain = camera.info().gain
    image = (expose(camera, clock, seconds, FrameType.LIGHT) - bias_level) * gain
    sky = (camera.truth_sky_electrons_per_second("V") * camera.truth_flat("V")
           + camera.truth_dark_electrons_per_second()) * seconds
    return image, sky


def test_a_light_frame_shows_the_sky_through_the_filter_and_the_flat_field(camera_and_clock):
    camera, clock = camera_and_clock
    seconds = 30.0
    image, sky = light_frame(camera, clock, seconds, camera.truth_bias_level_adu())
    expected = camera.truth_expected_electrons(seconds, FrameType.LIGHT, *TARGET, "V")
    starless = expected - sky < 1.0
    assert starless.mean() > 0.9, "most pixels see only the sky"
    assert image[starless].mean() == pytest.approx(sky[starless].mean(), rel=0.005)
    assert camera.truth_sky_electrons_per_second("V") == pytest.approx(
        default_config()["Simulator"]["Sky Background"] * camera.truth_throughput("V"))


def test_stars_are_where_the_truth_puts_them_with_the_truths_flux(camera_and_clock):
    camera, clock = camera_and_clock
    seconds = 30.0
    image, sky = light_frame(camera, clock, seconds, camera.truth_bias_level_adu())
    stars = camera.truth_stars(*TARGET)
    assert len(stars.x) > 10
    margin, half = 20, 6
    inside = ((stars.x > margin) & (stars.x < SIZE - margin)
              & (stars.y > margin) & (stars.y < SIZE - margin))
    # The brightest star inside that stays well below saturation.
    flat = camera.truth_flat("V")
    electrons = stars.rate * camera.truth_throughput("V") * seconds
    usable = np.flatnonzero(inside & (electrons < 100_000))
    star = usable[np.argmax(electrons[usable])]
    x, y = stars.x[star], stars.y[star]
    row, column = int(round(y)), int(round(x))
    box = np.s_[row - half:row + half + 1, column - half:column + half + 1]
    signal = image[box] - sky[box]
    sky_noise = np.sqrt(sky[box].mean() + camera.info().read_noise ** 2)
    assert signal.max() > 20 * sky_noise, "a star stands well above the sky"
    # The star's whole flux lands on the detector, through the flat field where it falls.
    model = camera.truth_expected_electrons(seconds, FrameType.LIGHT, *TARGET, "V")
    expected_flux = (model[box] - sky[box]).sum()
    assert expected_flux == pytest.approx(electrons[star] * flat[box].mean(), rel=0.02)
    flux_noise = np.sqrt(expected_flux + signal.size * sky_noise ** 2)
    assert signal.sum() == pytest.approx(expected_flux, abs=5 * flux_noise)
    rows, columns = np.mgrid[box]
    assert (signal * columns).sum() / signal.sum() == pytest.approx(x, abs=0.1)
    assert (signal * rows).sum() / signal.sum() == pytest.approx(y, abs=0.1)


def test_frames_show_north_up_and_east_left():
    camera, _, _ = make_camera()
    stars = camera.truth_stars(*TARGET)
    assert np.corrcoef(stars.x, stars.ra)[0, 1] < -0.99
    assert np.corrcoef(stars.y, stars.dec)[0, 1] > 0.99


@pytest.mark.parametrize("position_angle, pier_side", [
    (30.0, None), (30.0, LOOKING_EAST), (30.0, LOOKING_WEST), (-75.0, LOOKING_WEST)])
def test_the_stars_lie_where_a_wcs_of_the_cameras_angle_and_side_of_the_pier_puts_them(
        position_angle, pier_side):
    """The frame is turned by Position Angle, and 180° more with the tube looking west (a
    German equatorial mount after its flip): the telescope's WCS of that angle finds each
    star where the image shows it."""
    camera, clock, simulator = make_camera(pier_side=pier_side,
                                           **{"Position Angle": position_angle})
    seconds = 30.0
    image, sky = light_frame(camera, clock, seconds, camera.truth_bias_level_adu())
    image -= sky
    orientation = SkyOrientation(simulator["Pixel Scale"], position_angle)
    wcs = WCS(fits.Header([fits.Card(key, value) for key, value, _ in orientation.cards(
        *TARGET, SIZE, SIZE, 1, pier_side)]))
    stars = camera.truth_stars(*TARGET)  # where they are on the sky
    x, y = wcs.world_to_pixel_values(stars.ra, stars.dec)
    margin, half = 20, 4
    electrons = stars.rate * camera.truth_throughput("V") * seconds
    inside = np.flatnonzero((x > margin) & (x < SIZE - margin) & (y > margin)
                            & (y < SIZE - margin) & (electrons < 100_000))
    brightest = inside[np.argsort(electrons[inside])[-5:]]
    assert len(brightest) == 5
    for star in brightest:
        row, column = int(round(y[star])), int(round(x[star]))
        box = np.s_[row - half:row + half + 1, column - half:column + half + 1]
        rows, columns = np.mgrid[box]
        signal = image[box]
        assert (signal * columns).sum() / signal.sum() == pytest.approx(x[star], abs=0.2)
        assert (signal * rows).sum() / signal.sum() == pytest.approx(y[star], abs=0.2)


def take_sequence(camera, clock):
    return [expose(camera, clock, seconds, frame_type) for seconds, frame_type in
            ((0.0, FrameType.BIAS), (60.0, FrameType.DARK), (60.0, FrameType.DARK),
             (10.0, FrameType.LIGHT), (1.0, FrameType.FLAT))]


def test_the_same_seed_gives_the_same_sequence_of_frames():
    first = take_sequence(*make_camera(size=128)[:2])
    second = take_sequence(*make_camera(size=128)[:2])
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[1], first[2]), "each frame has its own noise"


def test_another_seed_gives_other_frames():
    first = take_sequence(*make_camera(size=128)[:2])
    other = take_sequence(*make_camera(size=128, Seed=2)[:2])
    assert not any(np.array_equal(a, b) for a, b in zip(first, other))


def test_the_same_pointing_shows_the_same_stars():
    first, first_clock, _ = make_camera()
    second, second_clock, _ = make_camera()
    stars = first.truth_stars(*TARGET)
    again = second.truth_stars(*TARGET)
    assert np.array_equal(stars.x, again.x) and np.array_equal(stars.y, again.y)
    brightest = np.argmax(stars.rate * ((stars.x > 0) & (stars.x < SIZE - 1)
                                        & (stars.y > 0) & (stars.y < SIZE - 1)))
    pixel = int(round(stars.y[brightest])), int(round(stars.x[brightest]))
    for camera, clock in ((first, first_clock), (second, second_clock)):
        frame = expose(camera, clock, 10.0, FrameType.LIGHT)
        sky = np.median(frame)
        noise = MAD_TO_SIGMA * np.median(np.abs(frame - sky))
        assert frame[pixel] > sky + 10 * noise


def test_overlapping_pointings_share_their_stars_shifted_by_the_offset():
    camera, _, simulator = make_camera()
    offset = 120.0  # arcseconds north
    here = camera.truth_stars(*TARGET)
    there = camera.truth_stars(TARGET[0], TARGET[1] + offset / ARCSEC)
    shift = offset / simulator["Pixel Scale"]
    in_both = (here.y > shift + 10) & (here.y < SIZE - 10)
    assert in_both.sum() > 5
    positions = {(ra, dec): y for ra, dec, y in zip(there.ra, there.dec, there.y)}
    for ra, dec, y in zip(here.ra[in_both], here.dec[in_both], here.y[in_both]):
        assert (ra, dec) in positions, "the same star on the sky"
        assert positions[(ra, dec)] == pytest.approx(y - shift, abs=0.5)


def test_the_star_field_is_continuous_across_ra_0():
    camera, _, _ = make_camera()
    stars = camera.truth_stars(0.0, 10.0)
    assert np.any(stars.ra > 359.0) and np.any(stars.ra < 1.0)
    assert np.all((stars.x < SIZE / 2) == (stars.ra < 1.0)), "east (RA > 0) on the left"


def test_the_poles_have_stars_too():
    camera, _, _ = make_camera()
    assert len(camera.truth_stars(123.0, 89.99).x) > 10
    assert len(camera.truth_stars(0.0, -90.0).x) > 10


def test_no_stars_without_star_density():
    camera, _, _ = make_camera(**{"Star Density": 0.0})
    assert len(camera.truth_stars(*TARGET).x) == 0
