"""A raw frame's FITS header: the cards an astronomer's tools look for, each as documented."""

import logging
import math
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from torosmanager.devices.camera import CameraInfo
from torosmanager.fits_text import fits_card, fits_text
from torosmanager.telescope.fits import Exposure, file_name, header
from torosmanager.telescope.wcs import SkyOrientation

DOCS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
CAMERA = CameraInfo(name="a CCD", width=64, height=64, binning=1, gain=1.5, read_noise=8.0,
                    pixel_size=9.0, max_adu=65535)
SITE = {"Name": "CTMO", "Latitude": 25.9958, "Longitude": -97.5689, "Elevation": 12.0}


def exposure(**changes):
    fields = dict(start=datetime(2026, 11, 9, 3, 0, tzinfo=timezone.utc), seconds=30.0,
                  frame_type="LIGHT", filter_name="V", target="M31", ra=10.6847, dec=41.2687,
                  altitude=60.0, airmass=1.1547, order={"ID": "7", "User": "test"}, number=1)
    fields.update(changes)
    return Exposure(**fields)


def cards(orientation=None, **changes):
    return header(exposure(**changes), CAMERA, SITE, "CTMO", orientation)


def test_times_are_the_fits_standards_start_end_and_middle():
    written = cards()
    assert (written["DATE-OBS"], written["DATE-END"]) == (
        "2026-11-09T03:00:00.000", "2026-11-09T03:00:30.000")
    assert written["TIMESYS"] == "UTC"
    # 2026-11-09 is MJD 61353; 03:00 is an eighth of its day; 15 s more in the middle.
    assert written["MJD-OBS"] == 61353.125
    assert written["MJD-AVG"] == pytest.approx(61353.125 + 15 / 86400, abs=1e-8)
    assert written["DATE-AVG"] == "2026-11-09T03:00:15.000"
    assert written["MJD-END"] == pytest.approx(61353.125 + 30 / 86400, abs=1e-8)


def test_the_sidereal_time_and_the_hour_angle_are_astropys():
    """Astronomers read them from the header (what the audit asked for, beside AZIMUTH)."""
    import astropy.units as u
    from astropy.time import Time

    start = datetime(2026, 11, 9, 3, 0, tzinfo=timezone.utc)
    written = cards(start=start, ra=10.6847)
    lst = Time(start).sidereal_time("apparent", longitude=SITE["Longitude"] * u.deg).hour
    hours, minutes, seconds = (float(part) for part in written["LST"].split())
    assert hours + minutes / 60 + seconds / 3600 == pytest.approx(lst, abs=0.1 / 3600)
    assert written["HA"] == pytest.approx((lst - 10.6847 / 15 + 12) % 24 - 12, abs=1e-4)


def test_a_bias_starts_and_ends_at_once():
    written = cards(seconds=0.0, frame_type="BIAS")
    assert written["DATE-END"] == written["DATE-OBS"]
    assert written["MJD-AVG"] == written["MJD-OBS"]


@pytest.mark.parametrize("ra, dec, objctra, objctdec", [
    (10.6847, 41.2687, "00 42 44.33", "+41 16 07.3"),
    (359.99999999, -0.5, "00 00 00.00", "-00 30 00.0"),    # 24h wraps to 0h
    (180.0, -1e-9, "12 00 00.00", "+00 00 00.0"),          # no "-00" for what rounds to 0
    (0.0, -90.0, "00 00 00.00", "-90 00 00.0"),
])
def test_the_pointing_is_also_written_as_sexagesimal_text(ra, dec, objctra, objctdec):
    written = cards(ra=ra, dec=dec)
    assert (written["OBJCTRA"], written["OBJCTDEC"]) == (objctra, objctdec)


def test_the_ccd_temperature_is_written_only_when_the_camera_reports_it():
    assert cards(ccd_temperature=-20.004)["CCD-TEMP"] == -20.0
    assert "CCD-TEMP" not in cards()


def test_the_side_of_the_pier_is_written_only_when_the_mount_says_it():
    assert cards(pier_side="west")["PIERSIDE"] == "WEST"
    assert cards(pier_side="east")["PIERSIDE"] == "EAST"
    assert "PIERSIDE" not in cards()


def test_the_focus_is_written_only_when_there_is_a_focuser():
    written = cards(focus_position=50_085, focus_temperature=7.504)
    assert (written["FOCUSPOS"], written["FOCUSTEM"]) == (50_085, 7.5)
    assert "FOCUSTEM" not in cards(focus_position=50_085)
    assert "FOCUSPOS" not in cards() and "FOCUSTEM" not in cards()


def sky_of(written):
    """Where a header's WCS, as astropy reads it, puts the frame's centre, and which way its
    +y and +x axes point on the sky: ``(centre, PA of +y, PA of +x)``, degrees. Read
    without a warning: a header astropy must mend (its ``datfix``) says so to every user."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wcs = WCS(written)
    middle = ((CAMERA.width - 1) / 2.0, (CAMERA.height - 1) / 2.0)  # 0-based pixels
    centre = wcs.pixel_to_world(*middle)
    up = wcs.pixel_to_world(middle[0], middle[1] + 1)
    right = wcs.pixel_to_world(middle[0] + 1, middle[1])
    return (centre, centre.position_angle(up).deg % 360,
            centre.position_angle(right).deg % 360)


@pytest.mark.parametrize("position_angle, mirrored, pier_side, up, right", [
    (0.0, False, None, 0.0, 270.0),        # north up, east left
    (0.0, False, "west", 0.0, 270.0),      # looking east: as configured
    (0.0, False, "east", 180.0, 90.0),     # looking west: turned 180°
    (30.0, False, "west", 30.0, 300.0),
    (30.0, False, "east", 210.0, 120.0),
    (-100.0, False, None, 260.0, 170.0),
    (0.0, True, None, 0.0, 90.0),          # through a diagonal: east right
    (30.0, True, "east", 210.0, 300.0),
])
def test_a_light_frame_has_a_wcs_centred_on_the_pointing_at_the_cameras_angle(
        position_angle, mirrored, pier_side, up, right):
    orientation = SkyOrientation(pixel_scale=1.2, position_angle=position_angle,
                                 mirrored=mirrored)
    written = cards(orientation, pier_side=pier_side)
    centre, up_angle, right_angle = sky_of(written)
    pointing = SkyCoord(10.6847, 41.2687, unit="deg", frame="icrs")
    assert centre.separation(pointing).arcsec < 1e-6
    assert (up_angle, right_angle) == (pytest.approx(up, abs=1e-6),
                                        pytest.approx(right, abs=1e-6))
    assert proj_plane_pixel_scales(WCS(written)) * 3600 == pytest.approx([1.2, 1.2])


def test_a_binned_frame_s_pixels_are_binning_times_as_large():
    binned = CameraInfo(**{**vars(CAMERA), "width": 32, "height": 32, "binning": 2})
    written = header(exposure(), binned, SITE, "CTMO", SkyOrientation(pixel_scale=1.2))
    assert proj_plane_pixel_scales(WCS(written)) * 3600 == pytest.approx([2.4, 2.4])
    assert (written["CRPIX1"], written["CRPIX2"]) == (16.5, 16.5)


def test_the_wcs_is_centred_on_the_image_written_whatever_the_camera_said():
    """A camera whose image is not the size its info gives (a subframe, a driver's slip):
    the reference pixel is the image's middle."""
    written = header(exposure(), CAMERA, SITE, "CTMO", SkyOrientation(pixel_scale=1.2),
                     shape=(40, 50))
    assert (written["CRPIX1"], written["CRPIX2"]) == (25.5, 20.5)


@pytest.mark.parametrize("frame_type", ["BIAS", "DARK", "FLAT"])
def test_calibration_frames_and_cameras_without_a_pixel_scale_have_no_wcs(frame_type):
    assert "CTYPE1" not in cards(SkyOrientation(pixel_scale=1.2), frame_type=frame_type)
    assert "CTYPE1" not in cards()
    assert SkyOrientation.from_config({"Pixel Scale": None, "Position Angle": 0.0,
                                       "Mirrored": False}) is None


def test_a_mount_position_that_is_not_a_number_leaves_the_wcs_out_not_the_frame(caplog):
    with caplog.at_level(logging.WARNING, logger="torosmanager.telescope.fits"):
        written = cards(SkyOrientation(pixel_scale=1.2), ra=math.nan)
    assert not [key for key in written if key.startswith(("CTYPE", "CRVAL", "CD"))]
    assert "the frame has no WCS: the mount reported RA nan, Dec 41.2687" in caplog.messages


#: What the devices' sensors read, for the cards that depend on them.
SENSORS = {"ccd_temperature": -20.0, "focus_position": 50_000, "focus_temperature": 8.0,
           "azimuth": 123.4}


@pytest.mark.parametrize("changes, left_out", [
    ({"ccd_temperature": math.nan}, {"CCD-TEMP": "nan"}),
    ({"focus_temperature": math.nan}, {"FOCUSTEM": "nan"}),
    ({"ra": math.nan}, {"RA": "nan", "OBJCTRA": "nan", "HA": "nan"}),
    ({"azimuth": math.nan}, {"AZIMUTH": "nan"}),
    ({"dec": math.inf}, {"DEC": "inf", "OBJCTDEC": "inf"}),
    ({"altitude": math.nan, "airmass": math.nan}, {"ALTITUDE": "nan", "AIRMASS": "nan"}),
])
def test_a_number_a_device_reports_as_nan_leaves_its_card_out_not_the_frame(
        changes, left_out, caplog):
    """FITS has no NaN: astropy refused the header, after the exposure, and the frame was
    lost for a sensor's reading."""
    with caplog.at_level(logging.WARNING, logger="torosmanager.telescope.fits"):
        written = cards(**{**SENSORS, **changes})
    assert [key for key in cards(**SENSORS) if key not in written] == list(left_out)
    assert caplog.messages == [f"the frame's {key} card is left out: a device reported {value}"
                               for key, value in left_out.items()]


def test_a_target_of_opportunity_frame_names_its_event_and_its_kind_of_work():
    written = cards(order={"ID": "S230518h-01", "User": "alerts", "Group ID": "S230518h",
                           "Type of job": "ToO"})
    assert (written["GROUPID"], written["JOBTYPE"]) == ("S230518h", "ToO")
    assert "GROUPID" not in cards() and "JOBTYPE" not in cards()


@pytest.mark.parametrize("name, spelled", [
    ("CTMO", "CTMO"),                                   # ASCII stays as it is
    ("Cordón Macón", "Cordon Macon"),                   # accents dropped
    ("Galáxia de Andrômeda", "Galaxia de Andromeda"),
    ("Hα", "Halpha"),                                   # Greek letters spelled out
    ("Ω Cen", "Omega Cen"),
    ("ς", "sigma"),
    ("1 µm", "1 mum"),                                  # the micro sign is Greek mu
    ("line\nbreak\tand tab", "line break and tab"),
    ("20 °C", "20 ?C"),                                 # no ASCII spelling
    ("東京", "??"),
])
def test_names_are_written_as_their_closest_printable_ascii(name, spelled):
    assert fits_text(name) == spelled


def test_a_header_holds_a_site_a_filter_and_a_target_named_in_any_language():
    written = header(exposure(filter_name="Hα", target="Galáxia de Andrômeda",
                              order={"ID": "ñ-1", "User": "José", "Group ID": "S1"}),
                     CAMERA, dict(SITE, Name="Cordón Macón"), "Cerro Macón 1.5 m")
    assert (written["OBSERVAT"], written["TELESCOP"], written["FILTER"], written["OBJECT"],
            written["ORDERID"], written["OBSERVER"]) == (
        "Cordon Macon", "Cerro Macon 1.5 m", "Halpha", "Galaxia de Andromeda", "n-1", "Jose")
    written.tostring().encode("ascii")  # what is written to the file


@pytest.mark.parametrize("value", ["M31", "x" * 50, "x" * 58, "x" * 68, "'" * 30, 1.5,
                                   -20.25, True, 65535, 10 ** 25])
def test_a_comment_is_cut_to_the_room_its_value_leaves_and_never_warned_about(value):
    comment = "a comment of forty-seven characters, and more " * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy's VerifyWarning: "comment will be truncated"
        card = fits_card("OBJECT", value, comment)
        image = card.image
    assert len(image) == 80 and card.value == value
    assert comment.startswith(card.comment) and image.rstrip().endswith(card.comment)


def test_a_value_longer_than_a_card_keeps_its_whole_comment_on_continue_cards():
    card = fits_card("OBJECT", "y" * 100, "target name")
    assert card.value == "y" * 100 and card.comment == "target name"
    assert len(card.image) % 80 == 0 and "CONTINUE" in card.image


def test_every_card_written_is_documented_and_every_card_documented_is_written():
    written = set(cards(SkyOrientation(pixel_scale=1.2), **SENSORS, pier_side="west",
                        order={"ID": "7", "User": "test", "Group ID": "S1",
                               "Type of job": "ToO"}))
    section = DOCS.read_text().split("## The frames and their headers")[1].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {name for line in table for name in re.findall(r"`([A-Z][A-Z0-9_-]*)`",
                                                                 line.split("|")[1])}
    assert documented == written


def test_frames_of_ids_that_differ_by_characters_a_file_name_does_not_take_never_share_a_name():
    """'M31/1', 'M31:1' and 'M31-1' all read M31-1 in a file name: started in the same second,
    the second frame replaced the first, silently. An ID a file name takes is kept as it is."""
    names = {order_id: file_name(exposure(order={"ID": order_id, "User": "test"}))
             for order_id in ("M31/1", "M31:1", "M31_1", "M31-1")}
    assert len(set(names.values())) == 4
    assert names["M31-1"] == "20261109T030000_M31-1_LIGHT_V_001.fits"
    assert re.fullmatch(r"20261109T030000_M31-1-[0-9a-f]{12}_LIGHT_V_001\.fits", names["M31/1"])
