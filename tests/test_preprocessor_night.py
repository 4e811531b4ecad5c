"""A night's calibration, as a specification: what is made of which frames, where it goes,
what is said about what is missing, and how bad inputs are reported without losing the night.
Also ``toros calibrate``, the same pipeline from the command line."""

import errno
import gzip
import hashlib
import logging
import os
import pathlib
import re
import shutil
import threading
import time
import types

import numpy as np
import pytest
from astropy.io import fits

from preprocessing_data import make_night
from torosmanager.commands import calibrate as command
from torosmanager.config import default_config
from torosmanager.preprocessor.classify import Kind, kind_of
from torosmanager.preprocessor.masters import master_from_file
from torosmanager.preprocessor.calibrate import OFFSET_SUFFIX
from torosmanager.preprocessor import reading
from torosmanager.preprocessor.executors import Stopped
from torosmanager.preprocessor.pipeline import PreprocessingError, Settings, calibrate, prepare
from torosmanager.preprocessor.terms_store import TermsStore


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """5 biases, 3 darks of 30 s, 5 flats in R, 3 lights of 30 s in R; copied by `night`."""
    return make_night(tmp_path_factory.mktemp("base"))


@pytest.fixture
def night(base, tmp_path):
    directory = tmp_path / base.directory.name
    shutil.copytree(base.directory, directory)
    return directory


@pytest.fixture
def library(tmp_path):
    return str(tmp_path / "masters")


@pytest.fixture
def later(tmp_path):
    """A night after the base's, of one R light and no masters of its own: it takes the
    library's."""
    return make_night(tmp_path / "later", name="20261125", biases=0, darks={}, flats={},
                      lights=[("R", 30.0, 1)]).directory


def run(location, runner, **settings):
    return calibrate(location if isinstance(location, list) else str(location),
                     Settings(**settings), runner)


def raw_files(night, kind=None):
    names = sorted(os.listdir(night / "raw"))
    return [night / "raw" / name for name in names if kind is None or f"_{kind}_" in name]


def with_card(source, target, key, written):
    """Write *target*, a copy of the FITS file *source* whose *key* card reads *written*
    (80 characters as the file has them, whatever astropy would make of them)."""
    content = source.read_bytes()
    at = content.index(key.ljust(8).encode("ascii"), 0, content.index(b"END" + b" " * 77))
    target.write_bytes(content[:at] + written.ljust(80).encode("ascii") + content[at + 80:])


def run_unless_it_waits_on(fifo, location, runner, **settings):
    """:func:`run`, failing the test if the job is still waiting after a minute, as it would
    for good while opening *fifo* (it is then let go: a non-blocking open for writing does)."""
    outcomes = []
    job = threading.Thread(target=lambda: outcomes.append(run(location, runner, **settings)))
    job.start()
    job.join(timeout=60)
    waited = job.is_alive()
    if waited:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        job.join()
    assert not waited, f"the job waited on {fifo}"
    return outcomes[0]


def run_within(seconds, location, runner, **settings):
    """:func:`run`, failing the test if the job has not ended after *seconds* (it is then
    left to end on its own, in a daemon thread)."""
    outcomes = []
    job = threading.Thread(target=lambda: outcomes.append(run(location, runner, **settings)),
                           daemon=True)
    job.start()
    job.join(timeout=seconds)
    assert not job.is_alive(), f"the job still runs after {seconds} s"
    return outcomes[0]


def library_masters(library, kind=""):
    """The masters' files in *library* (under ``<kind>/``, if given), sorted."""
    return sorted(os.path.join(root, name)
                  for root, _, names in os.walk(os.path.join(library, kind)) for name in names)


def digest(paths):
    return {str(path): hashlib.sha256(open(path, "rb").read()).hexdigest() for path in paths}


class TestWhereThingsGo:
    def test_products_and_masters_go_to_the_nights_reduced_directory(self, night, runner,
                                                                     library):
        outcome = run(night, runner, library=library)
        assert sorted(os.path.basename(path) for path in outcome.products) == \
            sorted(path.name for path in raw_files(night, "LIGHT"))
        assert all(os.path.dirname(path) == str(night / "reduced") for path in outcome.products)
        assert sorted(outcome.masters) == ["bias 128x128 bin 1x1", "dark 30 s 128x128 bin 1x1",
                                           "flat R 128x128 bin 1x1"]
        assert all(os.path.dirname(path) == str(night / "reduced" / "masters")
                   for path in outcome.masters.values())
        assert outcome.done == outcome.total == 16 and not outcome.skipped
        assert "3 frame(s) calibrated" in outcome.summary()

    def test_the_masters_are_kept_in_the_library(self, night, runner, library):
        run(night, runner, library=library)
        kept = sorted(os.path.relpath(os.path.join(root, name), library)
                      for root, _, names in os.walk(library) for name in names)
        assert [path.rsplit("_", 1)[0] for path in kept] == [
            "bias/128x128_1x1/20261121", "dark/128x128_1x1/30s/20261121",
            "flat/128x128_1x1/R/20261121"]

    def test_a_list_of_files_as_the_telescope_hands_them_over(self, night, runner):
        files = [str(path) for path in raw_files(night)]
        outcome = run(files, runner)
        assert len(outcome.products) == 3 and len(outcome.masters) == 3
        assert all(path.startswith(str(night / "reduced")) for path in outcome.products)

    def test_frames_of_two_nights_are_calibrated_each_night_with_its_own_masters(
            self, night, runner, tmp_path):
        """An observation resumed on a later night is handed over as one list of files."""
        other = make_night(tmp_path / "other", name="20261122", biases=3).directory
        outcome = run([str(path) for path in raw_files(night) + raw_files(other)], runner)
        assert len(outcome.products) == 6 and not outcome.skipped
        for directory, biases in ((night, 5), (other, 3)):
            [bias] = (directory / "reduced" / "masters").glob("bias_*.fits")
            assert fits.getheader(bias)["NCOMBINE"] == biases
            assert fits.getheader(bias)["NIGHT"] == directory.name
            assert outcome.masters[f"bias 128x128 bin 1x1, night {directory.name}"] == str(bias)
            products = [path for path in outcome.products
                        if path.startswith(str(directory / "reduced"))]
            assert len(products) == 3
            assert all(fits.getheader(path)["BIASCOR"] == bias.name for path in products)

    def test_a_frame_linked_from_another_night_is_of_the_night_it_is_linked_into(
            self, night, runner, tmp_path):
        other = make_night(tmp_path / "other", name="20261120", biases=0, darks={},
                           lights=[]).directory
        for flat in raw_files(night, "FLAT"):
            flat.unlink()
        for flat in raw_files(other, "FLAT"):
            (night / "raw" / flat.name).symlink_to(flat)
        outcome = run(night, runner)
        assert len(outcome.products) == 3 and not outcome.skipped
        [flat] = (night / "reduced" / "masters").glob("flat_*.fits")
        assert fits.getheader(flat)["NIGHT"] == night.name
        assert not (other / "reduced").exists()

    def test_a_night_named_twice_is_read_once(self, night, runner, tmp_path):
        (tmp_path / "link").symlink_to(night)
        outcome = run([str(night), str(tmp_path / "link" / "raw")], runner)
        assert outcome.total == 16 and len(outcome.products) == 3
        bias = outcome.masters["bias 128x128 bin 1x1"]
        assert fits.getheader(bias)["NCOMBINE"] == len(raw_files(night, "BIAS"))

    def test_one_file_and_a_file_url(self, night, runner, library):
        run(night, runner, library=library)      # its masters go to the library
        light = raw_files(night, "LIGHT")[0]
        outcome = run(f"file://{light}", runner, library=library)
        assert outcome.products == [str(night / "reduced" / light.name)]

    def test_a_file_url_as_urls_are_written_with_a_space_and_an_accent(self, night, runner,
                                                                       tmp_path):
        moved = tmp_path / "Cordón night" / night.name
        shutil.move(night, moved)
        outcome = run(moved.as_uri(), runner)  # file:///.../Cord%C3%B3n%20night/...
        assert len(outcome.products) == 3 and not outcome.skipped

    def test_progress_goes_from_nothing_to_everything(self, night, runner):
        reports = []
        calibrate(str(night), Settings(), runner, progress=lambda *report: reports.append(report))
        done = [count for _, count, _ in reports]
        assert done == sorted(done) and done[0] == 0
        assert reports[-1] == ("done", 16, 16)
        steps = [step for step, _, _ in reports]
        assert "reading headers" in steps and any(s.startswith("calibrating") for s in steps)


    def test_a_link_leading_out_of_the_daemons_directories_is_not_followed(
            self, night, runner, tmp_path):
        """The daemon checked only File Location: a raw frame linked from elsewhere was read,
        and a night whose reduced/ was a link had its products written elsewhere, its Status
        saying 'calibrated into .../reduced' (found by a helper's audit)."""
        outside = tmp_path / "outside"
        outside.mkdir()
        elsewhere = outside / "frame.fits"
        shutil.copy(raw_files(night, "LIGHT")[0], elsewhere)
        (night / "raw" / "linked.fits").symlink_to(elsewhere)
        confined = (os.path.realpath(night),)
        outcome = run(night, runner, confined_to=confined)
        assert outcome.skipped == [
            f"{night}/raw/linked.fits: it is {elsewhere}: outside Preprocessor → Allowed "
            "Directories, where a link has led it"]
        assert len(outcome.products) == 3
        shutil.rmtree(night / "reduced")
        (night / "reduced").symlink_to(outside)
        with pytest.raises(PreprocessingError, match=re.escape(
                f"{night}/reduced, where this job's products go, is {outside}: outside "
                f"Preprocessor → Allowed Directories, where a link has led it ({night})")):
            run(night, runner, confined_to=confined)
        assert os.listdir(outside) == ["frame.fits"]
        assert len(run(night, runner).products) == 4  # toros calibrate: where the links lead


class TestTermsKeptBetweenJobs:
    """A night's observations reach the preprocessor as jobs of their own, mostly with the
    same masters, exposure time and gain: a later job maps the terms an earlier one made
    (``Preprocessor → Kept Terms``) instead of making them again, and makes the very pixels it
    would have made alone; a master rewritten gives new terms."""

    @staticmethod
    def lights(night):
        return [str(path) for path in raw_files(night, "LIGHT")]

    @staticmethod
    def products(outcome):
        """The digests of the products' pixels, by name (their headers differ by ``CALDATE``,
        the second each was made); the products are then deleted."""
        found = {os.path.basename(path): hashlib.sha256(fits.getdata(path).tobytes()).hexdigest()
                 for path in outcome.products}
        for path in outcome.products:
            os.unlink(path)
        return found

    @staticmethod
    def kept_offsets(store):
        return {kept.prefix: os.stat(kept.prefix + OFFSET_SUFFIX).st_mtime_ns
                for kept in store._kept.values()}

    def test_a_later_job_maps_the_terms_an_earlier_one_made(self, night, runner, library):
        settings = Settings(library=library)
        calibrate(str(night), settings, runner)  # the night's masters, into the library
        alone = self.products(calibrate(self.lights(night), settings, runner))  # none kept
        store = TermsStore(2 ** 20)
        try:
            first = self.products(calibrate(self.lights(night), settings, runner,
                                            terms_store=store))
            made = self.kept_offsets(store)
            assert len(made) == 1  # one group: the lights share masters, exposure and gain
            later = self.products(calibrate(self.lights(night), settings, runner,
                                            terms_store=store))
            assert self.kept_offsets(store) == made  # mapped, not written again
            assert first == later == alone and len(alone) == 3  # the same pixels
        finally:
            store.close()

    def test_terms_are_made_again_for_a_master_rewritten(self, night, runner, library):
        settings = Settings(library=library)
        calibrate(str(night), settings, runner)
        store = TermsStore(2 ** 20)
        try:
            before = self.products(calibrate(self.lights(night), settings, runner,
                                             terms_store=store))
            bias = next(os.path.join(root, name) for root, _, names in os.walk(library)
                        for name in names if root.split(os.sep)[-2] == "bias")
            with fits.open(bias, mode="update") as hdus:  # a re-run replaced the master
                hdus[0].data = hdus[0].data + np.float32(5.0)
            after = self.products(calibrate(self.lights(night), settings, runner,
                                            terms_store=store))
            alone = self.products(calibrate(self.lights(night), settings, runner))
            assert after == alone and after != before
        finally:
            store.close()


    def test_terms_prepared_from_the_first_frame_are_those_the_job_maps(self, night, runner,
                                                                         library):
        """The telescope's Prepare Calibration at an observation's first frame: its job, on
        every frame, makes no terms and the very pixels it makes alone."""
        settings = Settings(library=library)
        calibrate(str(night), settings, runner)
        alone = self.products(calibrate(self.lights(night), settings, runner))
        store = TermsStore(2 ** 20)
        try:
            said = prepare(self.lights(night)[:1], settings, store)
            assert said == ("calibration terms prepared for 1 group(s) of frames, kept for "
                            "their job")
            made = self.kept_offsets(store)
            assert len(made) == 1
            prepared = self.products(calibrate(self.lights(night), settings, runner,
                                               terms_store=store))
            assert self.kept_offsets(store) == made  # mapped, not made again
            assert prepared == alone and len(alone) == 3
        finally:
            store.close()

    def test_nothing_is_prepared_without_masters_in_the_library(self, night, library):
        store = TermsStore(2 ** 20)
        try:
            said = prepare(self.lights(night)[:1], Settings(library=library), store)
            assert said == ("nothing prepared: no master bias for 128x128 bin 1x1 in the master "
                            "library")
            assert prepare(self.lights(night)[:1], Settings(), store).startswith(
                "nothing prepared: terms are prepared from the master library, and there is "
                "none")
            assert prepare(self.lights(night)[:1], Settings(library=library), None).startswith(
                "nothing prepared: the workers are not local processes")
            assert not store._kept
        finally:
            store.close()

    @pytest.mark.parametrize("budget", [0, 2 * 128 * 128 * 4 - 1],
                             ids=["none kept", "a byte short"])
    def test_terms_beyond_the_budget_are_not_made(self, night, runner, library, budget):
        """Made, then thrown away: with Kept Terms 0 (memory short), every observation's
        Prepare read three masters and wrote two frames for nothing, holding up the jobs."""
        settings = Settings(library=library)
        calibrate(str(night), settings, runner)
        store = TermsStore(budget)
        try:
            said = prepare(self.lights(night)[:1], settings, store)
            assert said == (f"nothing prepared: the terms of 128x128 bin 1x1 frames, 0.125 MB, "
                            f"exceed Preprocessor → Kept Terms ({budget / 2**20:g} MB)")
            assert not store._kept and store._directory is None  # nothing was placed
        finally:
            store.close()

    def test_a_location_without_light_frames_is_refused(self, night, library):
        with pytest.raises(PreprocessingError, match=r"no light frame to prepare the "
                                                     r"calibration terms of, in 5 FITS file"):
            prepare([str(path) for path in raw_files(night, "BIAS")],
                    Settings(library=library), TermsStore(2 ** 20))


class TestFramesStillBeingWritten:
    """A frame copied into the night while the job reads it is read again until it is whole
    (Preprocessor → Incomplete File Wait and Check), instead of being skipped for good."""

    @staticmethod
    def copy_slowly(content, target, pieces, pause):
        """Write *content* to *target* in *pieces*, *pause* seconds apart, as a slow copy
        does (the file is there from the start, empty, then cut short)."""
        def copy():
            with open(target, "wb") as stream:
                for index in range(pieces):
                    time.sleep(pause)
                    stream.write(content[index * len(content) // pieces:
                                         (index + 1) * len(content) // pieces])
                    stream.flush()
        target.write_bytes(b"")
        writer = threading.Thread(target=copy)
        writer.start()
        return writer

    @pytest.mark.parametrize("start", [0, 100, 2880 * 2 + 10], ids=["empty", "in its header",
                                                                       "in its pixels"])
    def test_a_frame_being_copied_is_waited_for_and_calibrated(self, night, runner, start):
        light = raw_files(night, "LIGHT")[0]
        content = light.read_bytes()
        copied = night / "raw" / "copied.fits"
        copied.write_bytes(content[:start])
        steps = []
        finish = threading.Timer(1.0, lambda: copied.write_bytes(content))
        finish.start()
        try:
            outcome = calibrate(str(night), Settings(incomplete_file_wait=30,
                                                     incomplete_file_check=0.1), runner,
                                progress=lambda step, done, total: steps.append(step))
        finally:
            finish.join()
        assert f"waiting for 1 file(s) still being written: {copied}" in steps
        assert outcome.skipped == []
        assert len(outcome.products) == 4
        assert str(night / "reduced" / "copied.fits") in outcome.products

    def test_a_copy_that_goes_on_growing_is_waited_for_longer_than_the_wait(self, night,
                                                                            runner):
        """The wait counts from the file's last change: a slow copy taking several times
        Incomplete File Wait is waited for while it grows."""
        content = raw_files(night, "LIGHT")[0].read_bytes()
        copied = night / "raw" / "copied.fits"
        writer = self.copy_slowly(content, copied, pieces=8, pause=0.3)
        try:
            outcome = calibrate(str(night), Settings(incomplete_file_wait=1.0,
                                                     incomplete_file_check=0.1), runner)
        finally:
            writer.join()
        assert outcome.skipped == []
        assert str(night / "reduced" / "copied.fits") in outcome.products

    def test_a_copy_that_stopped_is_skipped_once_unchanged_for_the_wait(self, night, runner,
                                                                        caplog):
        content = raw_files(night, "LIGHT")[0].read_bytes()
        stopped = night / "raw" / "stopped.fits"
        stopped.write_bytes(content[:len(content) // 2])
        caplog.set_level(logging.INFO, logger="torosmanager.preprocessor")
        outcome = calibrate(str(night), Settings(incomplete_file_wait=0.5,
                                                 incomplete_file_check=0.1), runner)
        reasons = dict(line.split(": ", 1) for line in outcome.skipped)
        assert re.fullmatch(r"truncated: its header announces \d+ bytes of pixels, the file "
                            r"has \d+ \(unchanged for 0.5 s: Preprocessor → Incomplete File "
                            r"Wait\)", reasons[str(stopped)])
        assert len(outcome.products) == 3
        assert "waiting for 1 file(s) still being written" in caplog.text

    def test_a_file_that_turns_out_no_frame_is_skipped_for_what_it_is(self, night, runner):
        stopped = night / "raw" / "notes.fits"
        stopped.write_bytes(b"")
        threading.Timer(0.5, lambda: stopped.write_bytes(b"observing log, not a frame\n"
                                                         * 200)).start()
        outcome = calibrate(str(night), Settings(incomplete_file_wait=30,
                                                 incomplete_file_check=0.1), runner)
        assert outcome.skipped == [f"{stopped}: not a FITS file (Header size is not multiple "
                                   "of 2880: 5400)"]

    def test_an_old_frame_not_readable_for_a_moment_is_read_again(self, night, runner,
                                                                  monkeypatch):
        """An NFS server's EIO on a frame taken hours ago: waited for from the first reading,
        not skipped at once for its age (which counts only for a file cut short)."""
        light = str(raw_files(night, "LIGHT")[0])
        an_hour_ago = os.stat(light).st_mtime - 3600
        os.utime(light, (an_hour_ago, an_hour_ago))
        failures = iter(range(3))  # its first three readings fail
        getsize = reading.os.path.getsize

        def flaky(path):
            if path == light and next(failures, None) is not None:
                raise OSError(errno.EIO, os.strerror(errno.EIO), path)
            return getsize(path)
        monkeypatch.setattr(reading.os.path, "getsize", flaky)
        outcome = calibrate(str(night), Settings(incomplete_file_wait=30,
                                                 incomplete_file_check=0.05), runner)
        assert outcome.skipped == []
        assert len(outcome.products) == 3

    def test_a_job_stopped_while_it_waits_stops(self, night, runner):
        (night / "raw" / "empty.fits").write_bytes(b"")
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        with pytest.raises(Stopped):
            calibrate(str(night), Settings(incomplete_file_wait=600), runner, stop=stop)

    def test_without_a_wait_a_frame_being_copied_is_skipped_at_once(self, night, runner):
        (night / "raw" / "empty.fits").write_bytes(b"")
        outcome = calibrate(str(night), Settings(incomplete_file_wait=0), runner)
        assert outcome.skipped == [f"{night / 'raw' / 'empty.fits'}: an empty file"]


class TestRerunning:
    def test_gives_the_same_products_and_never_touches_the_raw_frames(self, night, runner,
                                                                       library):
        before = digest(raw_files(night))
        first = run(night, runner, library=library)
        assert len(first.products) == 3 and len(first.masters) == 3  # something to compare
        pixels = {path: fits.getdata(path) for path in first.products}
        again = run(night, runner, library=library)
        assert again.products == first.products and again.masters == first.masters
        for path in again.products:
            np.testing.assert_array_equal(fits.getdata(path), pixels[path])
        assert digest(raw_files(night)) == before
        leftovers = [name for _, _, names in os.walk(night) for name in names
                     if name.endswith(".part")]
        assert not leftovers

    def test_the_block_size_does_not_change_the_masters(self, night, runner):
        whole = run(night, runner, block_rows=512)
        first = {label: fits.getdata(path) for label, path in whole.masters.items()}
        blocks = run(night, runner, block_rows=7)
        # Every master of the night made both ways, so that each one is compared below.
        assert sorted(blocks.masters) == sorted(first) == [
            "bias 128x128 bin 1x1", "dark 30 s 128x128 bin 1x1", "flat R 128x128 bin 1x1"]
        for label, path in blocks.masters.items():
            np.testing.assert_array_equal(fits.getdata(path), first[label])


class TestBadInputs:
    def test_a_missing_directory(self, tmp_path, runner):
        with pytest.raises(PreprocessingError, match="no such file or directory"):
            run(tmp_path / "20991231", runner)

    def test_an_empty_directory(self, tmp_path, runner):
        (tmp_path / "20991231" / "raw").mkdir(parents=True)
        with pytest.raises(PreprocessingError, match=r"no FITS files .* in .*20991231/raw"):
            run(tmp_path / "20991231", runner)

    def test_corrupt_and_truncated_files_are_reported_and_the_rest_calibrated(self, night,
                                                                              runner):
        (night / "raw" / "garbage.fits").write_bytes(b"not a FITS file at all" * 200)
        light = raw_files(night, "LIGHT")[0]
        content = light.read_bytes()
        (night / "raw" / "truncated.fits").write_bytes(content[:len(content) // 2])
        outcome = run(night, runner)
        assert len(outcome.products) == 3
        reasons = dict(line.split(": ", 1) for line in outcome.skipped)
        assert reasons[str(night / "raw" / "garbage.fits")].startswith("not a FITS file")
        assert reasons[str(night / "raw" / "truncated.fits")].startswith("truncated")
        assert outcome.done == outcome.total == 18

    def test_a_file_cut_short_long_ago_is_skipped_at_once_not_waited_for(self, night, runner):
        """An archive's truncated frame has not changed for longer than Incomplete File Wait:
        no copy is under way, nothing to wait for."""
        light = raw_files(night, "LIGHT")[0]
        content = light.read_bytes()
        cut = night / "raw" / "cut.fits"
        cut.write_bytes(content[:len(content) // 2])
        an_hour_ago = os.stat(cut).st_mtime - 3600
        os.utime(cut, (an_hour_ago, an_hour_ago))
        steps = []
        outcome = calibrate(str(night), Settings(incomplete_file_wait=600), runner,
                            progress=lambda step, done, total: steps.append(step))
        assert not [step for step in steps if step.startswith("waiting")]
        assert f"{cut}: truncated: its header announces" in "\n".join(outcome.skipped)
        assert len(outcome.products) == 3

    def test_an_exposure_time_written_as_text_and_a_cube(self, night, runner):
        """``EXPTIME = '30'`` is 30 s and ``BZERO = '32768'`` 32768; ``EXPTIME = 'long'`` is
        said to be no number, not missing; a cube of one plane (``NAXIS3 = 1``, as some cameras
        write a frame) is that frame; a cube of several is said to be one, with its shape."""
        light = raw_files(night, "LIGHT")[0]
        with fits.open(light) as hdus:
            header, data = hdus[0].header, hdus[0].data
            for name, value in (("text.fits", "30"), ("long.fits", "long"),
                                ("negative.fits", -5.0)):
                changed = header.copy()
                changed["EXPTIME"] = value
                fits.PrimaryHDU(data, changed).writeto(night / "raw" / name)
            for name, planes in (("plane.fits", data[None]),
                                 ("cube.fits", np.stack([data, data]))):
                fits.PrimaryHDU(planes, header).writeto(night / "raw" / name)
        with_card(light, night / "raw" / "bzero.fits", "BZERO", "BZERO   = '32768'")
        outcome = run(night, runner)
        assert str(night / "reduced" / "text.fits") in outcome.products
        assert fits.getheader(night / "reduced" / "text.fits")["DARKSCAL"] == pytest.approx(1.0)
        for name in ("bzero.fits", "plane.fits"):
            np.testing.assert_array_equal(fits.getdata(night / "reduced" / name),
                                          fits.getdata(night / "reduced" / light.name))
        assert fits.getheader(night / "reduced" / "plane.fits")["NAXIS"] == 2
        reasons = dict(line.split(": ", 1) for line in outcome.skipped)
        assert reasons == {
            str(night / "raw" / "long.fits"): "EXPTIME 'long' is not a number of seconds",
            str(night / "raw" / "negative.fits"): "EXPTIME -5 is not allowed; allowed: "
                                                  "seconds, 0 or more",
            str(night / "raw" / "cube.fits"): "holds no 2-D image (it holds 3-D data of 2 × 128 "
                                              "× 128; a 2-D frame is expected)"}

    def test_frames_named_in_any_language_are_calibrated_their_names_ascii_in_the_headers(
            self, night, runner, library):
        """FITS cards hold ASCII only; a raw frame's name goes into its product's RAWFILE and
        into its master's IMCMBnnn cards."""
        for path in raw_files(night):
            path.rename(path.with_name("Cordón_Hα_" + path.name))
        outcome = run(night, runner, library=library)
        assert not outcome.skipped and len(outcome.products) == 3
        product = fits.getheader(outcome.products[0])
        assert product["RAWFILE"] == "Cordon_Halpha_" + os.path.basename(
            outcome.products[0]).removeprefix("Cordón_Hα_")
        (bias,) = library_masters(library, "bias")
        assert fits.getheader(bias)["IMCMB001"].startswith("Cordon_Halpha_")

    def test_a_fifo_named_like_a_frame_is_skipped_not_waited_for(self, night, runner):
        """Opening a FIFO waits until something writes to it: the job would wait for good,
        and every order queued after it."""
        fifo = night / "raw" / "pipe.fits"
        os.mkfifo(fifo)
        outcome = run_unless_it_waits_on(fifo, night, runner)
        assert outcome.skipped == [f"{fifo}: not a regular file (a directory, a FIFO, a "
                                   "device): not read"]
        assert len(outcome.products) == 3

    def test_frames_of_unknown_type_are_skipped_with_a_warning(self, night, runner, caplog):
        light = raw_files(night, "LIGHT")[0]
        with fits.open(light) as hdus:
            hdus[0].header["IMAGETYP"] = "FOCUS"
            hdus.writeto(night / "raw" / "focus.fits")
        with caplog.at_level(logging.WARNING):
            outcome = run(night, runner)
        assert outcome.skipped == [f"{night / 'raw' / 'focus.fits'}: unknown IMAGETYP 'FOCUS' "
                                   "(expected LIGHT/OBJECT/SCIENCE, BIAS/ZERO, DARK, "
                                   "FLAT/SKYFLAT/DOMEFLAT)"]
        assert len(outcome.products) == 3
        assert "focus.fits" in caplog.text

    def test_a_products_gain_and_levels_are_in_electrons_naming_where_the_gain_came_from(
            self, night, runner):
        first, second = raw_files(night, "LIGHT")[:2]
        with fits.open(first, mode="update") as hdus:
            header = hdus[0].header
            del header["GAIN"]
            header["EGAIN"], header["SATURATE"] = 2.0, 65535
            header["DATAMIN"], header["DATAMAX"] = 0, 65535
        with fits.open(second, mode="update") as hdus:
            hdus[0].header["GAIN"] = 0.0
        outcome = run(night, runner)
        products = {os.path.basename(fits.getval(path, "RAWFILE")): fits.getheader(path)
                    for path in outcome.products}
        egain = products[first.name]
        assert (egain["GAIN"], egain["EGAIN"], egain["GAINCOR"]) == (1.0, 1.0, 2.0)
        assert egain["DATAMAX"] == egain["SATURATE"] > 100_000  # (65535 - bias) x 2
        assert egain["DATAMIN"] < 0
        # (HISTORY cards wrap long lines across cards.)
        assert "converted to electrons with gain 2 e-/ADU (from the header's EGAIN)" in \
            "".join(egain["HISTORY"])
        assert "(from Preprocessor -> Gain (the header's GAIN, 0, is no gain))" in \
            "".join(products[second.name]["HISTORY"])
        assert outcome.notes.count("frames of 128x128 bin 1x1 without a gain of their own "
                                   "(the header's GAIN, 0, is no gain): converted with "
                                   "Preprocessor → Gain, 1 e-/ADU") == 1

    @pytest.mark.parametrize("overscan", [False, True], ids=["fast path", "with an overscan"])
    def test_pixels_marked_blank_are_calibrated_as_nan(self, night, runner, overscan):
        # An integer frame's BLANK marks pixels with no value: read as a value (here the
        # stored -32768, 0 ADU), it gave a pixel thousands of electrons below the sky.
        light = raw_files(night, "LIGHT")[0]
        with fits.open(light) as hdus:
            header, data = hdus[0].header, hdus[0].data.copy()
        assert data.dtype == np.uint16  # stored as int16, BZERO 32768
        data[20, 20] = 0
        header["BLANK"] = -32768
        fits.PrimaryHDU(data, header).writeto(light, overwrite=True)
        layout = {"overscan": "[1:8,1:128]", "trim": "[9:128,1:128]"} if overscan else {}
        outcome = run(night, runner, **layout)
        assert outcome.products, outcome.skipped
        product = next(path for path in outcome.products
                       if os.path.basename(path).endswith(light.name[-8:]))
        calibrated = fits.getdata(product)
        column = 20 - (8 if overscan else 0)  # (the trim leaves out 8 columns)
        assert np.isnan(calibrated[20, column])
        assert np.isfinite(calibrated[19:22, column - 1:column + 2]).sum() == 8

    def test_a_pixel_one_bias_has_no_value_of_is_made_of_the_other_biases(self, night, runner):
        """One bias with a BLANK pixel: its master had NaN there, in every product after it,
        or was not made at all (its median NaN): the whole night left uncalibrated."""
        biases = raw_files(night, "BIAS")
        with fits.open(biases[0]) as hdus:
            header, data = hdus[0].header, hdus[0].data.copy()
        data[10, 10] = 0
        header["BLANK"] = -32768
        fits.PrimaryHDU(data, header).writeto(biases[0], overwrite=True)
        outcome = run(night, runner)
        assert not outcome.skipped and len(outcome.products) == 3
        master = fits.getdata(outcome.masters["bias 128x128 bin 1x1"])
        others = np.stack([fits.getdata(path)[10, 10] for path in biases[1:]])
        assert master[10, 10] == pytest.approx(others.mean(), abs=0.01)
        for product in outcome.products:
            assert np.isfinite(fits.getdata(product)[10, 10])

    def test_a_saturated_flat_is_left_out_saying_so_and_a_saturated_star_is_not(
            self, night, runner):
        """A twilight flat taken too early was combined with the others without a word: the
        master flat off by up to 10 % (found by a helper's audit)."""
        flats = raw_files(night, "FLAT")
        saturated = {}
        for path, change in ((flats[0], lambda data: data * 6.0),     # the sky too bright
                             (flats[1], lambda data: np.where(         # a star: 9 pixels
                                 np.abs(np.indices(data.shape) - 60).max(axis=0) <= 1, 65535,
                                 data))):
            with fits.open(path) as hdus:
                header, data = hdus[0].header, hdus[0].data.astype(np.float64)
            data = np.clip(change(data), 0, 65535).astype(np.uint16)
            fits.PrimaryHDU(data, header).writeto(path, overwrite=True)
            saturated[path] = np.count_nonzero(data == 65535) / data.size
        assert saturated[flats[0]] > 0.3 and saturated[flats[1]] == 9 / 128 ** 2
        outcome = run(night, runner)
        assert outcome.skipped == [
            f"{flats[0]}: not usable as a flat: {saturated[flats[0]]:.1%} of its pixels are "
            "saturated (at or above 65535 ADU), more than Preprocessor → Max Saturated Flat "
            "Pixels (0.001)"]
        assert fits.getheader(outcome.masters["flat R 128x128 bin 1x1"])["NCOMBINE"] == 4
        assert len(outcome.products) == 3

    def test_compressed_frames_are_listed_as_skipped_saying_how_to_decompress_them(
            self, night, runner):
        light = raw_files(night, "LIGHT")[0]
        (night / "raw" / "packed.fits.fz").write_bytes(b"fpack'd")
        (night / "raw" / "zipped.fit.gz").write_bytes(gzip.compress(light.read_bytes()))
        (night / "raw" / "notes.txt.gz").write_bytes(gzip.compress(b"not a frame"))
        outcome = run(night, runner)
        assert len(outcome.products) == 3
        assert sorted(outcome.skipped) == [
            f"{night / 'raw' / 'packed.fits.fz'}: a tile-compressed image (fpack): decompress "
            "it with funpack",
            f"{night / 'raw' / 'zipped.fit.gz'}: gzip-compressed: decompress it with gunzip"]

    def test_products_sent_again_are_skipped_not_calibrated_twice(self, night, runner):
        # A File Location pointing at the reduced directory by mistake: its products (and its
        # masters) would have the masters subtracted a second time.
        run(night, runner)
        reduced = night / "reduced"
        products = sorted(str(path) for path in reduced.glob("*.fits"))
        before = digest(products)
        outcome = run(reduced, runner)
        assert not outcome.products and len(outcome.skipped) == len(products) == 3
        assert all("already calibrated (CALSOFT = 'TOROS Manager" in reason and
                   "calibrate the raw frames instead" in reason for reason in outcome.skipped)
        assert digest(products) == before and not list((reduced / "reduced").glob("*.fits"))

    def test_cards_astropy_cannot_parse_skip_their_frame_alone_naming_the_card(
            self, night, runner, caplog):
        """Other cameras' software writes cards astropy cannot parse (a number with two
        points, a date without quotes) or a BZERO that is text: that frame is skipped, saying
        which card, and the night goes on. One whose bad card the pipeline does not need is
        calibrated, the card written as the standard has it."""
        light = raw_files(night, "LIGHT")[0]
        with_card(light, night / "raw" / "exptime.fits", "EXPTIME", "EXPTIME = 30.0.0 / broken")
        with_card(light, night / "raw" / "bzero.fits", "BZERO",
                  "BZERO   = 'thirty-two thousand'")
        with_card(light, night / "raw" / "naxis.fits", "NAXIS1", "NAXIS1  = 'wide'")
        with_card(light, night / "raw" / "object.fits", "OBJECT",
                  "OBJECT  = M 31 without quotes")
        with caplog.at_level(logging.WARNING):
            outcome = run(night, runner)
        reasons = dict(line.split(": ", 1) for line in outcome.skipped)
        assert reasons == {
            str(night / "raw" / "exptime.fits"):
                "its EXPTIME card cannot be parsed: 'EXPTIME = 30.0.0 / broken'",
            str(night / "raw" / "bzero.fits"): "BZERO 'thirty-two thousand' is not a number",
            str(night / "raw" / "naxis.fits"): "NAXIS1 'wide' is not a whole number: its "
                                               "header does not describe its data"}
        assert len(outcome.products) == 4 and outcome.succeeded
        product = str(night / "reduced" / "object.fits")
        assert product in outcome.products
        assert fits.getheader(product)["OBJECT"] == "M 31 without quotes"  # now quoted
        assert "exptime.fits" in caplog.text

    def test_impossible_layouts_skip_their_frame_at_once(self, night, runner):
        """A header announcing more axes than FITS allows (999) was read axis by axis for
        hours, and the night's job with it; negative axes would lay the file out backwards;
        an infinite binning failed the whole job. A binning of 1.5 was taken for 1, matching
        the frame with masters of another binning; one written as text, as some cameras'
        software does (the masters' cards are read so), was refused."""
        light = raw_files(night, "LIGHT")[0]
        raw = night / "raw"
        with_card(light, raw / "axes.fits", "NAXIS", "NAXIS   = 99999999999999999999")
        with_card(light, raw / "backwards.fits", "NAXIS1", "NAXIS1  = -128")
        with_card(raw / "backwards.fits", raw / "backwards.fits", "NAXIS2", "NAXIS2  = -128")
        with_card(light, raw / "binning.fits", "XBINNING", "XBINNING= 1E400")
        with_card(light, raw / "fraction.fits", "XBINNING", "XBINNING= 1.5")
        with_card(light, raw / "text.fits", "XBINNING", "XBINNING= '1'")
        outcome = run_within(60, night, runner)
        reasons = dict(line.split(": ", 1) for line in outcome.skipped)
        assert reasons == {
            str(raw / "axes.fits"): "NAXIS 99999999999999999999 is out of range (0 to 999): "
                                    "its header does not describe its data",
            str(raw / "backwards.fits"): "NAXIS1 -128 is out of range (0 or more): its header "
                                         "does not describe its data",
            str(raw / "binning.fits"): "XBINNING inf is not a binning factor (a whole number "
                                       "of at least 1)",
            str(raw / "fraction.fits"): "XBINNING 1.5 is not a binning factor (a whole number "
                                        "of at least 1)"}
        assert len(outcome.products) == 4 and outcome.succeeded
        assert str(night / "reduced" / "text.fits") in outcome.products

    def test_pixels_beyond_float32_skip_their_frame_or_make_no_master(self, night, runner):
        """A BSCALE that scales a frame's integers beyond float32 would make every pixel
        infinite: that frame is skipped. Biases of infinite pixels (floats) make no master,
        saying why, where the job failed writing the master's level."""
        light = raw_files(night, "LIGHT")[0]
        with_card(light, night / "raw" / "scaled.fits", "BSCALE", "BSCALE  = 1E38")
        for path in raw_files(night, "BIAS"):
            with fits.open(path) as hdus:
                header, shape = hdus[0].header, hdus[0].data.shape
                fits.PrimaryHDU(np.full(shape, np.inf, np.float32), header).writeto(
                    path, overwrite=True)
        outcome = run(night, runner)
        reasons = dict(line.split(": ", 1) for line in outcome.skipped)
        assert reasons.pop(str(night / "raw" / "scaled.fits")) == (
            "BSCALE 1e+38 and BZERO 32768 put its pixels beyond what float32 holds (±3.4e+38)")
        assert {reasons[str(path)] for path in raw_files(night, "BIAS")} == {
            "the bias 128x128 bin 1x1 could not be made: its median is nan"}
        assert reasons[str(light)] == ("no bias for 128x128 bin 1x1, in this night or the "
                                       "master library")
        assert not outcome.products

    def test_a_card_holding_a_control_character_is_carried_spelled_in_ascii(
            self, night, runner):
        """astropy cannot write a card holding a control character, which some cameras'
        software leaves in a text: the frame was not calibrated for a card no step reads.
        A card whose keyword holds one is left out (test_preprocessor_writing)."""
        light = raw_files(night, "LIGHT")[0]
        raw = night / "raw"
        with_card(light, raw / "object.fits", "OBJECT", "OBJECT  = 'M31\x7f' / Andromeda\x00")
        with_card(raw / "object.fits", raw / "object.fits", "OBSERVER", "OBS\x01   = 'me'")
        outcome = run(night, runner)
        assert not outcome.skipped and len(outcome.products) == 4
        header = fits.getheader(night / "reduced" / "object.fits")
        assert (header["OBJECT"], header.comments["OBJECT"]) == ("M31?", "Andromeda?")
        assert "OBS?" not in header and "OBSERVER" not in header

    def test_frames_of_mixed_sizes_get_masters_of_their_own_size(self, night, runner):
        make_night(night.parent, name=night.name, biases=3, darks={30.0: 2}, flats={"R": 3},
                   lights=[("R", 30.0, 2)], simulator={"Width": 96, "Height": 64},
                   order_id="small")
        outcome = run(night, runner)
        assert sorted(outcome.masters) == [
            "bias 128x128 bin 1x1", "bias 96x64 bin 1x1", "dark 30 s 128x128 bin 1x1",
            "dark 30 s 96x64 bin 1x1", "flat R 128x128 bin 1x1", "flat R 96x64 bin 1x1"]
        shapes = sorted(fits.getdata(path).shape for path in outcome.products)
        assert shapes == [(64, 96)] * 2 + [(128, 128)] * 3
        for path in outcome.products:
            header = fits.getheader(path)
            small = header["NAXIS1"] == 96
            assert ("96x64" in header["BIASCOR"]) == small

    def test_a_light_without_a_matching_flat_is_calibrated_and_said_so(self, night, runner):
        before = digest(raw_files(night))
        make_night(night.parent, name=night.name, biases=0, darks={}, flats={},
                   lights=[("V", 30.0, 2)], order_id="vee")
        outcome = run(night, runner)
        assert len(outcome.products) == 5 and not outcome.skipped
        assert any("filter V" in note and "not flat-fielded" in note for note in outcome.notes)
        # Said in the job's one line too, which a receipt shows: not only in its notes.
        summary = outcome.summary()
        assert "; frames in filter V not flat-fielded; " in summary
        assert summary.endswith(f"; {len(outcome.notes)} note(s) (see Notes)")
        for path in outcome.products:
            header = fits.getheader(path)
            flattened = header["FILTER"] == "R"
            assert (header["FLATCOR"] != "none") == flattened
            assert header["BIASCOR"] != "none" and header["DARKCOR"] != "none"
        assert all(digest([path]) == {path: sha} for path, sha in before.items())

    def test_a_light_without_any_bias_is_skipped_with_the_reason(self, tmp_path, runner):
        lonely = make_night(tmp_path, biases=0, darks={}, flats={}, lights=[("R", 10.0, 2)])
        outcome = run(lonely.directory, runner)
        assert not outcome.products and not outcome.succeeded
        assert all(line.endswith("no bias for 128x128 bin 1x1, in this night or the master "
                                 "library") for line in outcome.skipped)
        assert len(outcome.skipped) == 2


class TestDarks:
    def test_a_light_without_any_dark_is_calibrated_and_said_so_in_the_summary(self, tmp_path,
                                                                                runner):
        made = make_night(tmp_path, darks={}, lights=[("R", 30.0, 2)])
        outcome = run(made.directory, runner)
        assert len(outcome.products) == 2 and outcome.succeeded
        assert fits.getheader(outcome.products[0])["DARKCOR"] == "none"
        assert "; frames of 30 s not dark-subtracted; " in outcome.summary()
        assert "flat-fielded" not in outcome.summary()

    def test_the_closest_longer_dark_is_scaled(self, tmp_path, runner):
        made = make_night(tmp_path, darks={20.0: 3, 60.0: 3}, lights=[("R", 30.0, 2)])
        outcome = run(made.directory, runner)
        assert len(outcome.products) == 2
        for path in outcome.products:
            header = fits.getheader(path)
            assert header["DARKEXP"] == 60.0 and header["DARKSCAL"] == pytest.approx(0.5)
            assert "_60s_" in header["DARKCOR"]
        assert not outcome.notes

    def test_a_shorter_dark_is_scaled_up_and_said_so(self, tmp_path, runner):
        made = make_night(tmp_path, darks={20.0: 3}, lights=[("R", 30.0, 1)])
        outcome = run(made.directory, runner)
        header = fits.getheader(outcome.products[0])
        assert header["DARKSCAL"] == pytest.approx(1.5)
        assert any("the 20 s dark is scaled up" in note for note in outcome.notes)

    def test_a_light_of_0_s_is_calibrated_and_said_so(self, tmp_path, runner):
        """A light frame of 0 s saw no sky (a bias filed as LIGHT, or a camera that wrote 0):
        it is calibrated, the dark scaled to nothing, and the notes ask about it."""
        made = make_night(tmp_path, darks={20.0: 3}, lights=[("R", 0.0, 1)])
        outcome = run(made.directory, runner)
        assert fits.getheader(outcome.products[0])["DARKSCAL"] == 0
        assert any("light frame(s) of 0 s" in note and "are they biases?" in note
                   for note in outcome.notes), outcome.notes

    def test_the_dark_current_is_removed_whatever_the_dark_used(self, tmp_path, runner):
        made = make_night(tmp_path, darks={60.0: 4}, lights=[("R", 30.0, 2)])
        outcome = run(made.directory, runner)
        assert len(outcome.products) == 2
        camera = made.camera
        response = camera.truth_flat("R")
        expected = camera.truth_sky_electrons_per_second("R") * 30.0 * np.median(response)
        for path in outcome.products:
            assert np.median(fits.getdata(path)) == pytest.approx(expected, rel=0.01)


class TestLibrary:
    def test_a_night_without_flats_or_darks_uses_the_librarys(self, night, runner, library,
                                                               tmp_path):
        run(night, runner, library=library)
        later = make_night(tmp_path, name="20261125", darks={}, flats={},
                           lights=[("R", 30.0, 2)])
        outcome = run(later.directory, runner, library=library)
        assert len(outcome.products) == 2 and not outcome.skipped
        assert sorted(outcome.masters) == ["bias 128x128 bin 1x1"]
        header = fits.getheader(outcome.products[0])
        assert header["FLATSRC"] == "library 20261121" and header["DARKSRC"] == "library 20261121"
        assert header["BIASSRC"] == "night"
        for kind in ("flat R", "dark 30 s"):
            assert any(f"{kind} 128x128 bin 1x1: none in this night; using the master library's"
                       in note for note in outcome.notes), outcome.notes
        assert any(line.startswith("flat-fielded") and "library 20261121" in line
                   for line in header["HISTORY"])
        assert outcome.lacking == []      # nothing lacking: the library's masters

    def test_a_master_the_library_replaces_while_a_job_uses_it_stays_the_jobs(
            self, night, runner, library, later):
        """Two jobs at once (the daemon's and a ``toros calibrate``, or two hosts sharing the
        library): one keeps a master that replaces the library's while the other uses it. The
        other's frames were skipped ('cannot read it: No such file'), or it failed."""
        run(night, runner, library=library)
        [first] = library_masters(library, "bias")
        bias = raw_files(night, "BIAS")[0]
        shutil.copy(bias, bias.with_name(bias.name.replace("_001.", "_006.")))  # one more
        again = []

        def night_run_again(step, done, total):
            if step != "reading headers" and not again:  # the later night's masters chosen
                again.append(run(night, runner, library=library))
        outcome = calibrate(str(later), Settings(library=library), runner,
                            progress=night_run_again)
        assert f"replaces the master library's {os.path.basename(first)}" in " ".join(
            again[0].notes)
        assert not os.path.exists(first)
        assert len(outcome.products) == 1 and not outcome.skipped, outcome.skipped
        header = fits.getheader(outcome.products[0])
        assert header["BIASCOR"] == os.path.basename(first)
        assert header["BIASSRC"] == "library 20261121"
        pinned = later / "reduced" / "masters" / "library" / os.path.basename(first)
        assert fits.getheader(pinned)["NCOMBINE"] == 5
        assert any(f"using the master library's {first} (night 20261121)" in note
                   for note in outcome.notes), outcome.notes

    def test_a_library_master_made_again_under_its_name_is_linked_anew(
            self, night, runner, library, later):
        """Its name holds its inputs' digest, not its pixels: a night that had linked it went
        on reading the old one after the library's was made again (another version of this
        software, a bias frame's pixels changed)."""
        run(night, runner, library=library)
        run(later, runner, library=library)
        [bias] = library_masters(library, "bias")
        pinned = later / "reduced" / "masters" / "library" / os.path.basename(bias)
        assert os.path.samefile(pinned, bias)
        frame = raw_files(night, "BIAS")[0]
        with fits.open(frame) as hdus:
            header, data = hdus[0].header, hdus[0].data + np.uint16(7)
        fits.PrimaryHDU(data, header).writeto(frame, overwrite=True)
        run(night, runner, library=library)
        assert library_masters(library, "bias") == [bias]  # the same name, other pixels
        run(later, runner, library=library)
        assert os.path.samefile(pinned, bias)

    def test_only_the_library_darks_a_night_uses_are_linked_into_it(self, night, runner,
                                                                   library, later, tmp_path):
        run(night, runner, library=library)
        other = make_night(tmp_path / "other", name="20261120", biases=0, flats={},
                           darks={120.0: 2}, lights=[])
        run(other.directory, runner, library=library)
        assert len(library_masters(library, "dark")) == 2
        run(later, runner, library=library)  # one light of 30 s
        linked = sorted(os.listdir(later / "reduced" / "masters" / "library"))
        assert len(linked) == 3 and [name for name in linked if name in {
            os.path.basename(path) for path in library_masters(library, "dark")}] == [
            os.path.basename(path) for path in library_masters(library, "dark/128x128_1x1/30s")]

    def test_a_link_taking_the_library_masters_out_of_the_daemons_directories_is_refused(
            self, night, runner, library, later, tmp_path):
        run(night, runner, library=library)
        outside = tmp_path / "outside"
        outside.mkdir()
        (later / "reduced").mkdir()
        (later / "reduced" / "masters").symlink_to(outside)
        with pytest.raises(PreprocessingError, match=re.escape(
                f"{later}/reduced/masters/library, where the library's masters it uses are "
                f"linked, is {outside}/library: outside Preprocessor → Allowed Directories")):
            run(later, runner, library=library, confined_to=(os.path.realpath(later),))
        assert os.listdir(outside) == []

    def test_the_newest_master_not_after_the_night_is_used(self, night, runner, library,
                                                          tmp_path):
        run(night, runner, library=library)
        newer = make_night(tmp_path / "newer", name="20261123", lights=[])
        run(newer.directory, runner, library=library)
        between = make_night(tmp_path, name="20261124", darks={}, flats={},
                             lights=[("R", 30.0, 1)])
        header = fits.getheader(run(between.directory, runner, library=library).products[0])
        assert header["FLATSRC"] == "library 20261123"
        older = make_night(tmp_path, name="20261101", darks={}, flats={},
                           lights=[("R", 30.0, 1)])
        header = fits.getheader(run(older.directory, runner, library=library).products[0])
        assert header["FLATSRC"] == "library 20261121"      # the closest after it

    def test_a_bad_file_in_the_library_is_logged_once_and_the_others_are_used(
            self, night, runner, library, later, caplog):
        run(night, runner, library=library)
        bias_directory = os.path.dirname(library_masters(library, "bias")[0])
        bad = os.path.join(bias_directory, "20261122_deadbeef.fits")
        with open(bad, "wb") as stream:
            stream.write(b"\0" * 2880)      # a newer night's name: it would be chosen
        with caplog.at_level(logging.WARNING, logger="torosmanager.preprocessor.library"):
            for _ in range(2):
                outcome = run(later, runner, library=library)
                assert len(outcome.products) == 1 and not outcome.skipped
                assert fits.getheader(outcome.products[0])["BIASSRC"] == "library 20261121"
        warnings = [record.getMessage() for record in caplog.records if bad in record.getMessage()]
        assert warnings == [f"the master library's {bad} is not usable: not a FITS file "
                            "(EOFError)"]

    @pytest.mark.parametrize("key, written, reason", [
        ("NCOMBINE", "NCOMBINE= 5.0.0", "its NCOMBINE card cannot be parsed: 'NCOMBINE= 5.0.0'"),
        ("XBINNING", "XBINNING= 1E400", "XBINNING inf is not a whole number of at least 1"),
        ("EXPTIME", "EXPTIME = -1.0", "EXPTIME -1.0 is not a number of at least 0"),
        ("RAWNX", "RAWNX   = 'wide'", "RAWNX 'wide' is not a whole number of at least 1"),
        ("BUNIT", "BUNIT   = 1", "BUNIT 1, expected adu"),
    ])
    def test_a_master_damaged_in_the_library_is_skipped_saying_why(
            self, night, runner, library, later, caplog, key, written, reason):
        """Someone edits a master's header by hand: every job that looked at the library
        failed (an unparsable card, an infinite or absent number)."""
        run(night, runner, library=library)
        (good,) = library_masters(library, "bias")
        damaged = os.path.join(os.path.dirname(good), "20261122_deadbeef.fits")
        with_card(pathlib.Path(good), pathlib.Path(damaged), key, written)  # a newer night
        with caplog.at_level(logging.WARNING, logger="torosmanager.preprocessor.library"):
            outcome = run(later, runner, library=library)
        assert len(outcome.products) == 1 and not outcome.skipped
        assert fits.getheader(outcome.products[0])["BIASSRC"] == "library 20261121"
        assert f"the master library's {damaged} is not usable: {reason}" in caplog.text

    def test_a_fifo_in_the_library_is_skipped_not_waited_for(self, night, runner, library,
                                                             later):
        run(night, runner, library=library)
        fifo = os.path.join(os.path.dirname(library_masters(library, "bias")[0]),
                            "20261122_fifo.fits")
        os.mkfifo(fifo)
        outcome = run_unless_it_waits_on(fifo, later, runner, library=library)
        assert len(outcome.products) == 1 and not outcome.skipped
        assert fits.getheader(outcome.products[0])["BIASSRC"] == "library 20261121"

    def test_a_masters_header_is_read_again_only_when_its_file_changes(
            self, night, runner, library, later, monkeypatch):
        from torosmanager.preprocessor import library as library_module

        run(night, runner, library=library)
        read = []
        monkeypatch.setattr(library_module, "master_from_file",
                            lambda path, source: read.append(path) or master_from_file(path,
                                                                                       source))
        run(later, runner, library=library)
        assert sorted(read) == library_masters(library)
        read.clear()
        run(later, runner, library=library)
        assert read == []
        # A master replaced in place (its header now says another night) is read again, and
        # what it says now is used.
        (bias,) = library_masters(library, "bias")
        with fits.open(bias) as hdus:
            hdus[0].header["NIGHT"] = "20261124"
            hdus.writeto(bias + ".new")
        os.replace(bias + ".new", bias)
        outcome = run(later, runner, library=library)
        assert read == [bias]
        assert fits.getheader(outcome.products[0])["BIASSRC"] == "library 20261124"
        # One removed is no longer used: the job has no bias.
        os.unlink(bias)
        outcome = run(later, runner, library=library)
        assert outcome.products == [] and "no bias" in outcome.skipped[0]

    @pytest.mark.parametrize("blocked", ["reduced", "reduced/masters"])
    def test_a_products_directory_that_cannot_be_made_fails_the_job_at_once_saying_so(
            self, night, runner, blocked):
        # (Root writes anywhere: a file where the directory should be stops it.)
        (night / blocked).parent.mkdir(exist_ok=True)
        (night / blocked).write_text("not a directory")
        with pytest.raises(PreprocessingError) as refused:
            run(night, runner)
        assert str(refused.value) == (f"cannot make {night / blocked}, where this job's "
                                      f"products go: {night / blocked} is there, and not a "
                                      "directory")

    def test_a_directory_where_nothing_can_be_written_fails_the_job_at_once_saying_so(
            self, night, runner, monkeypatch):
        def refused(*arguments, **options):
            raise PermissionError(13, "Permission denied")
        (night / "reduced").mkdir()
        monkeypatch.setattr("tempfile.mkstemp", refused)
        with pytest.raises(PreprocessingError, match=rf"^cannot write in {night}/reduced, "
                           "where this job's products go: Permission denied$"):
            run(night, runner)
        (night / "reduced").rmdir()
        with pytest.raises(PreprocessingError, match=rf"^cannot make {night}/reduced, where "
                           rf"this job's products go: cannot write in {night}: Permission "
                           "denied$"):
            run(night, runner)
        (night / "reduced").mkdir()
        assert os.listdir(night / "reduced") == []

    def test_an_unwritable_library_is_a_note_not_a_failure(self, night, runner, tmp_path):
        blocker = tmp_path / "file-not-directory"
        blocker.write_text("")
        outcome = run(night, runner, library=str(blocker / "masters"))
        assert len(outcome.products) == 3
        assert any("could not be kept in the master library" in note for note in outcome.notes)


@pytest.mark.parametrize("imagetyp, kind", [
    ("LIGHT", Kind.LIGHT), ("Light Frame", Kind.LIGHT), ("object", Kind.LIGHT),
    ("SCIENCE", Kind.LIGHT), ("Bias Frame", Kind.BIAS), ("zero", Kind.BIAS),
    ("Dark Frame", Kind.DARK), ("FLAT", Kind.FLAT), ("Flat Field", Kind.FLAT),
    ("SkyFlat", Kind.FLAT), ("dome-flat", Kind.FLAT), ("Twilight Flat", Kind.FLAT),
    ("FOCUS", None), ("MASTER FLAT", None), ("", None), (None, None),
])
def test_imagetyp_is_read_without_regard_to_case_or_decoration(imagetyp, kind):
    assert kind_of(imagetyp) == kind


class TestCosmicRays:
    def test_are_cleaned_when_configured(self, night, runner):
        pytest.importorskip("astroscrappy", reason="astroscrappy (a ccdproc dependency) is "
                                                   "not installed")
        light = raw_files(night, "LIGHT")[0]
        hits = [(20, 30), (64, 64), (100, 17)]
        with fits.open(light) as hdus:
            data = hdus[0].data.astype(np.int32)
            for y, x in hits:
                data[y, x] += 8000
            hdus[0].data = data.astype(np.uint16)
            hdus.writeto(light, overwrite=True)
        outcome = run(night, runner, cosmic_rays=True)
        product = night / "reduced" / light.name
        header, data = fits.getheader(product), fits.getdata(product)
        assert header["CRCLEAN"] is True and header["NCOSMIC"] >= len(hits)
        sky, noise = np.median(data), 1.4826 * np.median(np.abs(data - np.median(data)))
        for y, x in hits:
            assert abs(data[y, x] - sky) < 5 * noise
        assert len(outcome.products) == 3


class TestCommand:
    """``toros calibrate NIGHT_DIR`` (its run() function; the ``toros`` command calls it)."""

    def arguments(self, *locations, **options):
        values = {"workers": 2, "executor": None, "library": None, "no_library": True,
                  "quiet": False}
        values.update(options)
        return types.SimpleNamespace(locations=[str(path) for path in locations], **values)

    def test_calibrates_a_night_with_a_progress_report(self, night, capsys):
        status = command.run(default_config(), self.arguments(night))
        out, err = capsys.readouterr()
        assert status == command.EXIT_OK
        assert "3 frame(s) calibrated into" in out and "master flat R 128x128 bin 1x1" in out
        assert "reading headers" in err and "16/16 frames  done" in err
        assert len(os.listdir(night / "reduced")) == 4     # 3 frames and masters/

    def test_reports_skipped_files_and_still_succeeds(self, night, capsys):
        (night / "raw" / "broken.fits").write_bytes(b"\0" * 100)
        status = command.run(default_config(), self.arguments(night, quiet=True))
        out, err = capsys.readouterr()
        assert status == command.EXIT_OK and not err
        assert "skipped (1):" in out and "broken.fits: not a FITS file" in out

    def test_a_missing_directory_fails_with_the_reason(self, tmp_path, capsys):
        status = command.run(default_config(), self.arguments(tmp_path / "nope"))
        assert status == command.EXIT_FAILED
        assert "no such file or directory" in capsys.readouterr().err

    def test_a_disk_without_room_for_the_products_fails_before_writing_saying_so(self, night,
                                                                                 capsys):
        config = default_config()
        config["Preprocessor"]["Minimum Free Bytes"] = 10 ** 18  # more than any disk has
        status = command.run(config, self.arguments(night, quiet=True))
        assert status == command.EXIT_FAILED
        assert re.fullmatch(rf"toros calibrate: no room for this job's 6 file\(s\): the disk "
                            rf"of {night} has [\d,.]+ MB free; they need [\d.]+ MB and "
                            r"Preprocessor → Minimum Free Bytes keeps 1,000,000,000,000\.0 MB "
                            r"free; the disk holds [\d,.]+ MB in all, so it never will have "
                            r"room: lower Minimum Free Bytes \(and restart\), or cancel this job "
                            r"and calibrate its frames on a larger disk\n",
                            capsys.readouterr().err)
        assert not (night / "reduced").exists()

    def test_its_options(self):
        import argparse
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        parsed = parser.parse_args(["/data/20261121", "--workers", "3", "--no-library"])
        assert parsed.locations == ["/data/20261121"] and parsed.workers == 3
        with pytest.raises(SystemExit):
            parser.parse_args(["/data", "--workers", "0"])

    def test_several_nights_are_calibrated_one_after_the_other_each_with_its_own_masters(
            self, night, tmp_path, capsys):
        other = make_night(tmp_path / "other", name="20261122", biases=3).directory
        status = command.run(default_config(), self.arguments(night, other))
        out, err = capsys.readouterr()
        assert status == command.EXIT_OK
        assert "6 frame(s) calibrated" in out and "6 master(s) made" in out
        assert "calibrating 128x128 bin 1x1: 0/3 (night 20261121)" in err
        assert "calibrating 128x128 bin 1x1: 0/3 (night 20261122)" in err
        assert err.endswith("30/30 frames  done\n")
        for directory, biases in ((night, 5), (other, 3)):
            [bias] = (directory / "reduced" / "masters").glob("bias_*.fits")
            assert f"master bias 128x128 bin 1x1, night {directory.name}: {bias}" in out
            assert fits.getheader(bias)["NCOMBINE"] == biases

    def test_a_night_without_frames_among_several_is_listed_as_skipped_and_fails(
            self, night, tmp_path, capsys):
        """The other nights are calibrated; the exit status says one could not be (a script
        from cron went on without it, exit 0)."""
        empty = tmp_path / "20261122"
        (empty / "raw").mkdir(parents=True)
        status = command.run(default_config(), self.arguments(empty, night, quiet=True))
        out, err = capsys.readouterr()
        assert status == command.EXIT_FAILED and "3 frame(s) calibrated" in out
        assert f"skipped (1):\n  {empty}/raw: no FITS files (.fits, .fit, .fts) in it" in out
        assert err == ("toros calibrate: nothing could be calibrated in 1 of the 2 nights "
                       f"given: {empty} (no FITS files (.fits, .fit, .fts) in it)\n")

    @pytest.mark.parametrize("reduced", ["kept", "removed"])
    def test_a_run_again_without_a_bad_frame_replaces_the_nights_master_in_the_library(
            self, night, tmp_path, capsys, later, reduced):
        library = str(tmp_path / "masters")
        assert command.run(default_config(), self.arguments(
            night, no_library=False, library=library, quiet=True)) == command.EXIT_OK
        [first] = library_masters(library, "bias")
        if reduced == "removed":
            shutil.rmtree(night / "reduced")
        raw_files(night, "BIAS")[-1].unlink()  # a bad frame, found after the first run
        assert command.run(default_config(), self.arguments(
            night, no_library=False, library=library, quiet=True)) == command.EXIT_OK
        out, _ = capsys.readouterr()
        [second] = library_masters(library, "bias")
        assert second != first and fits.getheader(second)["NCOMBINE"] == 4
        assert (f"bias 128x128 bin 1x1: replaces the master library's "
                f"{os.path.basename(first)}, made by an earlier run of this night from frames "
                "since removed, or from fewer") in out
        # The night's own copy stays beside the new one: the first run's products name it.
        assert len(list((night / "reduced" / "masters").glob("bias_*.fits"))) == (
            2 if reduced == "kept" else 1)
        # A later night without biases takes the new one.
        assert command.run(default_config(), self.arguments(
            later, no_library=False, library=library, quiet=True)) == command.EXIT_OK
        [product] = (later / "reduced").glob("*.fits")
        assert fits.getheader(product)["BIASCOR"] == os.path.basename(second)

    def test_a_run_on_some_of_a_nights_frames_keeps_the_library_master_of_them_all(
            self, night, runner, tmp_path, later):
        library = str(tmp_path / "masters")
        run(night, runner, library=library)
        [whole] = library_masters(library, "bias")
        some = raw_files(night, "BIAS")[:2] + raw_files(night, "LIGHT")[:1]
        outcome = run([str(path) for path in some], runner, library=library)
        assert not any("replaces" in note for note in outcome.notes)
        assert len(library_masters(library, "bias")) == 2 and whole in library_masters(
            library, "bias")
        product = run(later, runner, library=library).products[0]
        assert fits.getheader(product)["BIASCOR"] == os.path.basename(whole)

    def test_masters_of_other_frames_of_the_night_are_kept_in_the_library(self, night,
                                                                          tmp_path, runner):
        """Another observation's calibration frames of the same night (no frame shared)."""
        library = str(tmp_path / "masters")
        biases = raw_files(night, "BIAS")
        first = run([str(path) for path in biases[:2]], runner, library=library)
        for path in biases[:2]:  # archived since; the second shares none of their frames
            path.unlink()
        second = run([str(path) for path in biases[2:]], runner, library=library)
        assert not any("replaces" in note for note in first.notes + second.notes)
        assert len(library_masters(library, "bias")) == 2

    def test_bad_options_are_refused_saying_what_is_allowed(self, capsys):
        import argparse
        parser = argparse.ArgumentParser(prog="toros calibrate")
        command.add_arguments(parser)
        for option, value, said in (
                ("--executor", "foo", "argument --executor: 'foo' is not allowed; allowed: "
                                      "'local', or a Dask scheduler's address such as "
                                      "tcp://10.0.0.5:8786"),
                ("--workers", "300", "argument --workers: 300 is not allowed; allowed: an "
                                     "integer from 1 to 256")):
            with pytest.raises(SystemExit) as exited:
                parser.parse_args(["/data/20261121", option, value])
            assert exited.value.code == 2 and said in capsys.readouterr().err

    def test_a_warning_is_said_once_above_the_bar_and_skipped_files_only_in_the_list(
            self, night, later, tmp_path, capsys):
        library = tmp_path / "masters"
        assert command.run(default_config(), self.arguments(
            night, no_library=False, library=str(library), quiet=True)) == command.EXIT_OK
        (library / "bias" / "128x128_1x1" / "20261120_0.fits").write_bytes(b"not a master")
        (later / "raw" / "broken.fits").write_bytes(b"\0" * 100)
        capsys.readouterr()
        status = command.run(default_config(), self.arguments(
            later, no_library=False, library=str(library)))
        out, err = capsys.readouterr()
        assert status == command.EXIT_OK
        assert "broken.fits" not in err and out.count("broken.fits: not a FITS file") == 1
        assert err.count("toros calibrate: the master library's ") == 1, err
        assert "20261120_0.fits is not usable" in err
