"""Calibration against the truth, as a specification.

A night from the simulated camera, whose bias level, read noise, dark current, flat-field
response and sky are known, is calibrated; the masters must match what was injected and the
calibrated frames must reproduce the true sky (and stars) within the expected noise. The fast
path must also give what ccdproc's own functions give, step by step, overscan and trim
included.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.stats import sigma_clip
from astropy.wcs import WCS

import ccdproc
from preprocessing_data import SIMULATOR, make_night
from torosmanager.devices import FrameType
from torosmanager.preprocessor.classify import Frame, Geometry, Kind
from torosmanager.preprocessor.layout import Layout
from torosmanager.preprocessor.masters import master_header
from torosmanager.preprocessor.pipeline import Settings, calibrate
from torosmanager.preprocessor.reading import RawFrame
from torosmanager.telescope.wcs import SkyOrientation

# CCDData.read fills MJD-OBS from DATE-OBS and says so.
pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")

#: Standard errors within which a measured mean must fall of the truth.
TOLERANCE_SIGMAS = 5.0
#: A rectangular CCD, so that rows and columns cannot be confused.
SIZE = {"Width": 160, "Height": 128}
BIASES, DARKS, FLATS = 6, 4, 5
DARK_TIME, LIGHT_TIME = 60.0, 30.0


@pytest.fixture(scope="module")
def night(tmp_path_factory, runner):
    made = make_night(tmp_path_factory.mktemp("truth"), biases=BIASES, darks={DARK_TIME: DARKS},
                      flats={"R": FLATS}, lights=[("R", LIGHT_TIME, 3)], simulator=SIZE)
    outcome = calibrate(str(made.directory), Settings(library=None), runner)
    assert not outcome.skipped and not outcome.notes
    made.outcome = outcome
    return made


def master(night, kind):
    path = next(path for label, path in night.outcome.masters.items() if label.startswith(kind))
    return CCDData.read(path)


def quantisation(gain):
    """Variance, electrons², of rounding to whole ADU."""
    return gain ** 2 / 12.0


class TestMasters:
    def test_the_master_bias_is_the_bias_level(self, night):
        bias = master(night, "bias")
        truth = night.camera.truth_bias_level_adu()
        noise = np.sqrt(night.camera.truth_read_noise_adu() ** 2 + 1 / 12.0)
        assert bias.unit == u.adu and bias.shape == (128, 160)
        assert abs(bias.data.mean() - truth) < TOLERANCE_SIGMAS * noise / np.sqrt(
            BIASES * bias.data.size)
        # Each pixel is the mean of the frames: its scatter is the read noise / sqrt(N).
        assert bias.data.std() == pytest.approx(noise / np.sqrt(BIASES), rel=0.15)

    def test_the_master_dark_is_the_dark_current_in_electrons_per_second(self, night):
        dark = master(night, "dark")
        gain = SIMULATOR["Gain"]
        truth = night.camera.truth_dark_electrons_per_second()
        per_frame = truth * DARK_TIME + SIMULATOR["Read Noise"] ** 2 + quantisation(gain)
        bias_noise = night.camera.truth_read_noise_adu() * gain / np.sqrt(BIASES)
        pixel_noise = np.sqrt(per_frame / DARKS + bias_noise ** 2) / DARK_TIME
        assert dark.unit == u.electron / u.s
        assert dark.header["EXPTIME"] == DARK_TIME and dark.header["NCOMBINE"] == DARKS
        assert abs(dark.data.mean() - truth) < TOLERANCE_SIGMAS * pixel_noise / np.sqrt(
            dark.data.size)

    def test_the_master_flat_is_the_flat_field_response(self, night):
        flat = master(night, "flat")
        response = night.camera.truth_flat("R")
        response /= np.median(response)
        ratio = flat.data / response
        # Photon noise of the flats' electrons, per pixel, averaged over the frames.
        electrons = SIMULATOR["Flat Level"] * night.camera.truth_flat("R")
        expected = np.sqrt(np.mean(1.0 / electrons) / FLATS)
        assert np.median(flat.data) == pytest.approx(1.0, abs=1e-6)
        assert np.median(ratio) == pytest.approx(1.0, abs=5 * expected)
        assert ratio.std() == pytest.approx(expected, rel=0.2)
        # The pixel-to-pixel pattern (1 %) and the vignetting are in the master, not left over.
        assert ratio.std() < response.std() / 10
        assert flat.header["FILTER"] == "R" and flat.header["NCOMBINE"] == FLATS

    def test_headers_say_what_each_master_is(self, night):
        for kind, exptime in (("bias", 0.0), ("dark", DARK_TIME), ("flat", 2.0)):
            header = master(night, kind).header
            assert header["IMAGETYP"] == f"MASTER {kind.upper()}"
            assert header["EXPTIME"] == exptime
            assert header["COMBINE"] == "sigma-clipped mean"
            inputs = [header[key] for key in header if key.startswith("IMCMB")]
            assert sorted(inputs) == sorted(
                path.rsplit("/", 1)[1] for path in night.files[kind.upper()])


class TestScienceFrames:
    def test_the_calibrated_frames_are_the_true_sky_and_stars_within_the_noise(self, night):
        camera, gain = night.camera, SIMULATOR["Gain"]
        response = camera.truth_flat("R")
        normalised = response / np.median(response)
        assert len(night.outcome.products) == 3
        for path in night.outcome.products:
            with fits.open(path) as hdus:
                header, data = hdus[0].header, hdus[0].data.astype(np.float64)
            expected = camera.truth_expected_electrons(LIGHT_TIME, FrameType.LIGHT,
                                                       header["RA"], header["DEC"], "R")
            dark = camera.truth_dark_electrons_per_second() * LIGHT_TIME
            ideal = (expected - dark) / normalised
            variance = (expected + SIMULATOR["Read Noise"] ** 2 + quantisation(gain)) \
                / normalised ** 2
            residual = data - ideal
            assert abs(residual.mean()) < TOLERANCE_SIGMAS * residual.std() / np.sqrt(
                residual.size)
            assert np.mean(residual ** 2 / variance) == pytest.approx(1.0, abs=0.12)
            # The sky, per second, is the true rate through R at the flat's median response.
            sky = np.median(data) / LIGHT_TIME
            assert sky == pytest.approx(camera.truth_sky_electrons_per_second("R")
                                        * np.median(response), rel=0.01)

    def test_products_are_float32_electrons_with_their_provenance(self, night):
        for path in night.outcome.products:
            with fits.open(path) as hdus:
                header, data = hdus[0].header, hdus[0].data
            assert data.dtype == np.dtype(">f4") and data.shape == (128, 160)
            assert header["BUNIT"] == "electron" and header["GAINCOR"] == SIMULATOR["Gain"]
            for key, kind in (("BIASCOR", "bias"), ("DARKCOR", "dark"), ("FLATCOR", "flat")):
                assert header[key] == night.outcome.masters[next(
                    label for label in night.outcome.masters if label.startswith(kind))
                ].rsplit("/", 1)[1]
                assert header[key.replace("COR", "SRC")] == "night"
            assert header["DARKSCAL"] == pytest.approx(LIGHT_TIME / DARK_TIME)
            assert header["CALSOFT"].startswith("TOROS Manager") and header["CALDATE"]
            assert header["EXPTIME"] == LIGHT_TIME and header["FILTER"] == "R"
            assert any("flat-fielded" in line for line in header["HISTORY"])


#: A chip of 64x48 data pixels and an 8-column overscan strip; the region kept.
OVERSCAN, TRIM = "[65:72,1:48]", "[3:62,2:47]"
OVERSCAN_GAIN, OVERSCAN_BIAS, DARK_RATE, OBJECT_TIME = 1.7, 1500.0, 3.0, 20.0


@pytest.fixture(scope="module")
def overscan_night(tmp_path_factory, runner):
    """A synthetic night whose frames have an overscan strip and a row-to-row bias drift."""
    night = tmp_path_factory.mktemp("overscan") / "20261121"
    raw = night / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(5)
    flat = 1.0 + 0.05 * rng.standard_normal((48, 64))

    def write(name, kind, seconds, electrons, sky=()):
        adu = OVERSCAN_BIAS + rng.normal(0, 4, (48, 72))
        adu[:, :64] += rng.poisson(electrons) / OVERSCAN_GAIN
        adu += rng.normal(0, 30, (48, 1))              # the drift the overscan removes
        header = fits.Header({"IMAGETYP": kind, "EXPTIME": seconds, "FILTER": "V",
                              "GAIN": OVERSCAN_GAIN, **{key: value for key, value, _ in sky}})
        fits.PrimaryHDU(np.clip(np.rint(adu), 0, 65535).astype(np.uint16),
                        header).writeto(raw / name)
        return raw / name

    for number in range(5):
        write(f"b{number}.fits", "ZERO", 0.0, np.zeros((48, 64)))
    for number in range(3):
        write(f"d{number}.fits", "DARK", 40.0, np.full((48, 64), DARK_RATE * 40))
    for number in range(4):
        write(f"f{number}.fits", "SKYFLAT", 5.0, 30000 * flat + DARK_RATE * 5)
    light = write("light.fits", "OBJECT", OBJECT_TIME, 500 * flat + DARK_RATE * OBJECT_TIME,
                  sky=SkyOrientation(2.0, 40.0).cards(150.0, -30.0, 72, 48, 1, None))
    outcome = calibrate(str(night), Settings(library=None, overscan=OVERSCAN, trim=TRIM),
                        runner)
    return night, light, outcome


def through_ccdproc(path):
    """A raw frame through ccdproc's overscan subtraction (median) and trim."""
    ccd = CCDData.read(path, unit="adu")
    ccd = ccdproc.subtract_overscan(ccd, fits_section=OVERSCAN, median=True, overscan_axis=None)
    return ccdproc.trim_image(ccd, fits_section=TRIM)


class TestLikeCcdproc:
    """With an overscan strip and a trim section, the products equal ccdproc's, step by step."""

    def test_the_master_bias_is_the_clipped_mean_of_ccdprocs_frames(self, overscan_night):
        night, _, outcome = overscan_night
        frames = np.array([through_ccdproc(night / "raw" / f"b{n}.fits").data for n in range(5)])
        expected = np.nanmean(sigma_clip(frames, sigma=3, maxiters=5, axis=0, cenfunc="median",
                                         stdfunc="std", masked=False), axis=0)
        bias = CCDData.read(outcome.masters["bias 72x48 bin 1x1"])
        assert bias.shape == (46, 60)
        np.testing.assert_allclose(bias.data, expected, rtol=1e-6, atol=1e-3)

    def test_the_science_frame_equals_ccdprocs_steps(self, overscan_night):
        _, light, outcome = overscan_night
        masters = {label.split()[0]: CCDData.read(path) for label, path in outcome.masters.items()}
        ccd = through_ccdproc(light)
        ccd = ccdproc.subtract_bias(ccd, masters["bias"])
        ccd = ccdproc.gain_correct(ccd, OVERSCAN_GAIN * u.electron / u.adu)
        rate = CCDData(masters["dark"].data, unit=u.electron)   # electrons in 1 s
        ccd = ccdproc.subtract_dark(ccd, rate, dark_exposure=1 * u.s,
                                    data_exposure=OBJECT_TIME * u.s, scale=True)
        ccd = ccdproc.flat_correct(ccd, masters["flat"], norm_value=1)
        product = fits.getdata(outcome.products[0])
        assert product.shape == (46, 60)
        np.testing.assert_allclose(product, ccd.data, rtol=1e-5, atol=1e-2)
        header = fits.getheader(outcome.products[0])
        assert header["OVERSCAN"] == OVERSCAN and header["OVSCAXIS"] == "row"
        assert header["TRIMSEC"] == TRIM

    def test_the_science_frames_wcs_names_the_same_sky_as_ccdprocs_trimmed_one(
            self, overscan_night):
        _, light, outcome = overscan_night
        expected = through_ccdproc(light).wcs
        product = WCS(fits.getheader(outcome.products[0]))
        corners = ([0, 59, 0, 59], [0, 0, 45, 45])
        np.testing.assert_allclose(product.pixel_to_world_values(*corners),
                                   expected.pixel_to_world_values(*corners), rtol=0, atol=1e-9)
        assert product.wcs.crpix == pytest.approx(WCS(fits.getheader(light)).wcs.crpix
                                                  - [2, 1])


def test_raw_frames_read_as_astropy_reads_them(night):
    for path in night.all_files():
        with fits.open(path) as hdus:
            expected = hdus[0].data.astype(np.float32)
        with RawFrame(path) as frame:
            assert frame.bzero == 32768
            np.testing.assert_array_equal(frame.image(), expected)
            np.testing.assert_array_equal(frame.rows(5, 9), expected[5:9])


def test_a_master_of_more_than_999_frames_names_the_rest_in_history():
    """IMCMBnnn has three digits: the inputs after the 999th are named in HISTORY lines, in
    order, as their closest ASCII."""
    names = [f"bias_{number:04d}.fits" for number in range(1, 1002)] + ["bias_Hα.fits"]
    frames = [Frame(path=f"/night/raw/{name}", kind=Kind.BIAS, geometry=Geometry(8, 8),
                    exptime=0.0) for name in names]
    header = master_header(Kind.BIAS, frames, Layout.for_frame((8, 8)), "20261204")
    assert header["NCOMBINE"] == 1002
    assert [header[f"IMCMB{number:03d}"] for number in (1, 999)] == ["bias_0001.fits",
                                                                     "bias_0999.fits"]
    assert "IMCMB1000" not in header
    assert [line for line in header["HISTORY"] if line.startswith("input: ")] == [
        "input: bias_1000.fits", "input: bias_1001.fits", "input: bias_Halpha.fits"]


def test_files_half_written_by_a_process_that_is_gone_are_deleted_where_a_job_writes(
        tmp_path, runner):
    """A worker or the daemon killed while writing a product or a master left it under its
    hidden temporary name, for good; a living process's, and other files, are left alone."""
    made = make_night(tmp_path, biases=3, lights=[("R", LIGHT_TIME, 1)], simulator=SIZE)
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    reduced = made.directory / "reduced"
    (reduced / "masters").mkdir(parents=True)
    left = [reduced / f".x_LIGHT_R_001.fits.{dead}.part",
            reduced / "masters" / f".bias_x.fits.{dead}.part"]
    kept = [reduced / f".y_LIGHT_R_001.fits.{os.getpid()}.part", reduced / "notes.part"]
    for path in left + kept:
        path.write_bytes(b"half")
    outcome = calibrate(str(made.directory), Settings(library=None), runner)
    assert len(outcome.products) == 1
    assert [path for path in left if path.exists()] == []
    assert all(path.exists() for path in kept)
