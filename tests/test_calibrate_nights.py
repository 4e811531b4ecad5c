"""`toros calibrate` of several nights: each night given is accounted for in its exit status."""

import os
import subprocess
import sys

from preprocessing_data import make_night

TOROS = os.path.join(os.path.dirname(sys.executable), "toros")
#: Seconds a calibration of these small nights may take.
RUN_LIMIT = 300


def calibrate(*locations):
    return subprocess.run([TOROS, "calibrate", *map(str, locations), "--no-library", "--quiet",
                           "--workers", "1"], capture_output=True, text=True, timeout=RUN_LIMIT)


def test_a_night_that_yields_nothing_among_several_is_named_and_the_exit_status_is_1(tmp_path):
    """`--help` says exit 1 when "nothing could be calibrated in a night", yet a night of
    several that yielded nothing (no FITS files in it, or every light frame skipped) left the
    exit status 0, as if every night given had been calibrated: a script went on to the next
    step without it. The others are still calibrated, and reported, before it is said."""
    good = make_night(tmp_path / "good").directory
    empty = tmp_path / "20261122"
    (empty / "raw").mkdir(parents=True)
    without_bias = make_night(tmp_path / "nobias", name="20261123", biases=0, darks={},
                              flats={}).directory
    result = calibrate(good, empty, without_bias)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3 frame(s) calibrated" in result.stdout
    assert result.stderr == (
        "toros calibrate: nothing could be calibrated in 2 of the 3 nights given: "
        f"{without_bias} (see skipped above); {empty} (no FITS files (.fits, .fit, .fts) in "
        "it)\n")
    again = make_night(tmp_path / "other", name="20261124").directory
    both = calibrate(good, again)
    assert both.returncode == 0 and both.stderr == "", both.stderr


def test_a_night_mistyped_among_several_makes_the_exit_status_1(tmp_path):
    """A path that does not exist was listed as skipped, and the exit status stayed 0."""
    good = make_night(tmp_path / "good").directory
    typo = tmp_path / "20261122-typo"
    result = calibrate(good, typo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3 frame(s) calibrated" in result.stdout
    assert result.stderr.startswith("toros calibrate: nothing could be calibrated in 1 of the 2 "
                                    f"nights given: {typo} ("), result.stderr
