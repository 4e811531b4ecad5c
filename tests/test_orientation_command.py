"""``toros orientation FILE`` reads the camera's settings back from a solved frame: a frame
written with a WCS of known settings gives those settings, whatever its binning and side of
the pier, and the settings give frames whose WCS matches the solver's."""

import os
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.wcs import WCS

from torosmanager.devices.camera import CameraInfo
from torosmanager.telescope.fits import Exposure, write_frame
from torosmanager.telescope.wcs import SkyOrientation, measured_orientation

TOROS = os.path.join(os.path.dirname(sys.executable), "toros")
SITE = {"Name": "CTMO", "Latitude": 25.9958, "Longitude": -97.5689, "Elevation": 12.0}


def frame(directory, orientation, pier_side, binning):
    """A light frame as the telescope writes it, with *orientation*'s WCS."""
    camera = CameraInfo(name="a CCD", width=60, height=40, binning=binning, gain=1.5,
                        read_noise=8.0, pixel_size=9.0, max_adu=65535)
    exposure = Exposure(start=datetime(2026, 11, 9, 3, tzinfo=timezone.utc), seconds=30.0,
                        frame_type="LIGHT", filter_name="V", target="M31", ra=10.6847,
                        dec=41.2687, altitude=60.0, airmass=1.15, order={"ID": "7"}, number=1,
                        pier_side=pier_side)
    return write_frame(str(directory), exposure, np.zeros((40, 60), np.uint16), camera, SITE,
                       "CTMO", orientation)


@pytest.mark.parametrize("position_angle, mirrored, pier_side, binning", [
    (0.0, False, None, 1),
    (30.0, False, "west", 1),
    (30.0, False, "east", 2),       # looking west: the frame's own angle is 210°
    (260.0, True, "east", 3),
    (359.5, False, None, 1),
])
def test_a_frame_gives_back_the_settings_its_wcs_was_written_with(
        tmp_path, position_angle, mirrored, pier_side, binning):
    written = SkyOrientation(1.2, position_angle, mirrored)
    measured = measured_orientation(fits.getheader(frame(tmp_path, written, pier_side,
                                                         binning)))
    assert measured.pixel_scale == pytest.approx(1.2, rel=1e-9)
    assert (measured.position_angle - position_angle + 180.0) % 360.0 - 180.0 == \
        pytest.approx(0.0, abs=1e-7)
    assert measured.mirrored is mirrored


def test_the_command_prints_the_settings_as_yaml_the_configuration_takes(tmp_path):
    """As an operator would: a solver's WCS in the PC form (not the CD the telescope writes),
    on a frame taken looking west at binning 2."""
    solved = WCS(naxis=2)
    solved.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    solved.wcs.crpix, solved.wcs.crval = [512.5, 384.5], [150.0, -30.0]
    angle = np.radians(250.0)  # the frame's +y at 250°: looking west, so 70° looking east
    scale = 2.4 / 3600
    solved.wcs.cdelt = [scale, scale]
    solved.wcs.pc = [[-np.cos(angle), np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    header = solved.to_header()
    header.update({"NAXIS": 2, "NAXIS1": 1024, "NAXIS2": 768, "XBINNING": 2,
                   "PIERSIDE": "EAST"})
    path = tmp_path / "solved.fits"
    fits.PrimaryHDU(np.zeros((768, 1024), np.int16), header).writeto(path)
    result = subprocess.run([TOROS, "orientation", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "taken looking west (PIERSIDE EAST): 180° taken off its angle" in result.stdout
    settings = yaml.safe_load(result.stdout)["Telescope"]["Camera"]
    assert settings == {"Pixel Scale": pytest.approx(1.2, abs=1e-4),
                        "Position Angle": pytest.approx(70.0, abs=0.01), "Mirrored": False}


def test_a_north_up_frame_is_said_at_0_degrees_not_360(tmp_path):
    """A CD of diag(-s, s) measures 359.9999...°: it was printed "360.00"."""
    header = fits.Header({"NAXIS": 2, "NAXIS1": 100, "NAXIS2": 100, "CTYPE1": "RA---TAN",
                          "CTYPE2": "DEC--TAN", "CRPIX1": 50.5, "CRPIX2": 50.5,
                          "CRVAL1": 150.0, "CRVAL2": -30.0, "CD1_1": -0.0004, "CD1_2": 0.0,
                          "CD2_1": 0.0, "CD2_2": 0.0004, "XBINNING": 2, "PIERSIDE": "WEST"})
    path = tmp_path / "north.fits"
    fits.PrimaryHDU(np.zeros((100, 100), np.int16), header).writeto(path)
    result = subprocess.run([TOROS, "orientation", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "    Position Angle: 0.00\n" in result.stdout, result.stdout


@pytest.mark.parametrize("content, reason", [
    ("a frame without a WCS", "it has no celestial WCS (CTYPE1/CTYPE2 such as RA---TAN, "
                              "DEC--TAN): solve it first"),
    ("not FITS", "not a FITS file"),
])
def test_a_frame_without_a_wcs_is_refused_saying_what_to_do(tmp_path, content, reason):
    path = tmp_path / "frame.fits"
    if content == "not FITS":
        path.write_bytes(b"this is not FITS" * 300)
    else:
        fits.PrimaryHDU(np.zeros((4, 4), np.int16)).writeto(path)
    result = subprocess.run([TOROS, "orientation", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith(f"toros: {path}: {reason}"), result.stderr


@pytest.mark.parametrize("scale, reason", [
    ({}, "its WCS has no pixel scale (no CD1_1…CD2_2, nor CDELT1 and CDELT2: only where it "
         "points)"),
    ({"CD1_1": 0.0, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 0.0},
     "its WCS has no pixel scale: the CD matrix (CD1_1 = 0.0, CD1_2 = 0.0, CD2_1 = 0.0, "
     "CD2_2 = 0.0) is singular"),
])
def test_a_wcs_without_a_scale_is_refused_not_measured_at_a_degree_a_pixel(tmp_path, scale,
                                                                           reason):
    """A WCS that says where the frame points but not its scale (CTYPE and CRVAL only, or an
    all-zero CD) was read as astropy's default, 1° a pixel: `Pixel Scale: 3598.6756`, exit 0,
    to be copied into the configuration."""
    header = fits.Header({"NAXIS": 2, "NAXIS1": 100, "NAXIS2": 100, "CTYPE1": "RA---TAN",
                          "CTYPE2": "DEC--TAN", "CRPIX1": 50.5, "CRPIX2": 50.5,
                          "CRVAL1": 30.0, "CRVAL2": -25.0, **scale})
    path = tmp_path / "unscaled.fits"
    fits.PrimaryHDU(np.zeros((100, 100), np.int16), header).writeto(path)
    result = subprocess.run([TOROS, "orientation", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"toros: {path}: {reason}"), result.stderr
    assert "solve it first" in result.stderr
