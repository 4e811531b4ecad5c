"""A file name that is no UTF-8, or holds a control character, in what the daemons say.

A frame copied from a Windows share or a camera computer writing Latin-1 is named in bytes
(``étoile.fits`` as ``0xE9``) that Python reads as a lone surrogate. Its calibration worked, but
its name in a Status made an answer no XML-RPC client could read, in a message one SQLite would
not store, and in a log line the log dropped.
"""

import os
import subprocess
import sys

import pytest

from conftest import Site
from observatory import ended, status, wait_until
from preprocessing_data import make_night
from torosmanager.printable import printable

TOROS = os.path.join(os.path.dirname(sys.executable), "toros")
#: ``étoile`` in Latin-1: no UTF-8.
LATIN_1_NAME = b"\xe9toile.fits"
NOT_FITS = b"not FITS " * 400


@pytest.mark.parametrize("text, shown", [
    ("/raw/\udce9toile.fits", "/raw/\\xe9toile.fits"),       # the byte, as os.fsdecode reads it
    ("a\x1b[31mred\x00", "a\\x1b[31mred\\x00"),              # control characters
    ("\ud800 and \ufffe", "\\ud800 and \\ufffe"),             # neither UTF-8 nor XML
])
def test_what_xml_and_utf_8_cannot_carry_is_written_as_python_escapes_it(text, shown):
    assert printable(text) == shown
    shown.encode("utf-8")  # (the point: no UnicodeEncodeError)


def test_text_they_carry_is_left_as_it_is():
    text = "Cordón Macón\tHα\r\n星 🌌"
    assert printable(text) is text


@pytest.fixture(scope="module")
def preprocessor(tmp_path_factory):
    directory = tmp_path_factory.mktemp("names")
    site = Site(directory, {"Preprocessor": {"Master Library": str(directory / "masters")}})
    site.start("preprocessor")
    yield site
    site.stop()


def named(path, name):
    """*path* renamed to the bytes *name* in its directory."""
    renamed = os.path.join(os.path.dirname(os.fsencode(path)), name)
    os.rename(path, renamed)
    return renamed


def test_a_night_with_such_names_is_calibrated_and_its_status_read(preprocessor):
    night = make_night(preprocessor.directory / "data", name="20261121")
    named(night.files["LIGHT"][0], LATIN_1_NAME)
    (night.raw / "junk.fits").write_bytes(NOT_FITS)
    named(night.raw / "junk.fits", b"junk\xe9\x1b.fits")
    preprocessor.proxy("preprocessor").front_desk({
        "ID": "latin-1", "WOType": "Preprocessing", "File Location": str(night.directory)})

    done = ended(preprocessor.proxy("preprocessor"), "latin-1", "done")
    assert f"{night.directory}/reduced/\\xe9toile.fits" in done["Progress"]["Products"]
    assert done["Progress"]["Skipped"] == [f"{night.raw}/junk\\xe9\\x1b.fits: not a FITS file "
                                           "(Header size is not multiple of 2880: 3600)"]
    assert os.path.exists(os.path.join(os.fsencode(night.directory), b"reduced", LATIN_1_NAME))
    assert f"skipped {night.raw}/junk\\xe9\\x1b.fits: not a FITS file" in \
        preprocessor.log("preprocessor")


def test_a_skipped_frame_of_such_a_name_is_journaled_and_read(preprocessor):
    """A light frame without a bias of its size: the order waits for one, its progress
    naming the frame (and its escape)."""
    data = preprocessor.directory / "data"
    night = make_night(data, name="20261122", biases=3, darks={}, flats={}, lights=[])
    light = make_night(data, name="20261122", biases=0, darks={}, flats={},
                       lights=[("R", 10.0, 1)], simulator={"Width": 96, "Height": 64},
                       order_id="small").files["LIGHT"][0]
    named(light, LATIN_1_NAME)
    proxy = preprocessor.proxy("preprocessor")
    proxy.front_desk({"ID": "nothing", "WOType": "Preprocessing",
                      "File Location": str(night.directory)})

    waiting = wait_until(lambda: status(proxy, "nothing")["Progress"].get("Skipped"),
                         "the order's skipped frames")
    assert waiting == [f"{night.raw}/\\xe9toile.fits: no bias for 96x64 bin 1x1, in this night "
                       "or the master library"]
    assert status(proxy, "nothing")["Message"].startswith("waiting for masters: no bias for "
                                                          "96x64 bin 1x1")
    proxy.front_desk({"WOType": "Cancel", "ID": "nothing"})


def test_toros_calibrate_prints_such_a_name_as_its_bytes_in_any_locale(tmp_path):
    night = make_night(tmp_path, biases=3, darks={}, flats={}, lights=[("R", 30.0, 1)])
    (night.raw / "junk.fits").write_bytes(NOT_FITS)
    named(night.raw / "junk.fits", LATIN_1_NAME)
    # As under en_US.UTF-8, where Python's output refuses what is no UTF-8.
    environment = dict(os.environ, PYTHONIOENCODING="utf-8:strict")
    result = subprocess.run([TOROS, "calibrate", str(night.directory), "--no-library",
                             "--quiet"], capture_output=True, timeout=120, env=environment)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert os.fsencode(f"  {night.raw}/") + LATIN_1_NAME + b": not a FITS file" in result.stdout
