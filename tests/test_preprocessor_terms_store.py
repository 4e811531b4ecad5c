"""The store of calibration terms kept from one job to the next (``Preprocessor → Kept
Terms``): terms are kept only when complete, only within the budget (the least recently used
let go first), and those of a process that is gone are deleted. Jobs using it, with real
workers: ``test_preprocessor_night.py``, ``TestTermsKeptBetweenJobs``."""

import os
import subprocess
import sys

from torosmanager.preprocessor.calibrate import BAND_DONE, BANDS_SUFFIX, ScienceTask, band_count
from torosmanager.preprocessor.layout import Layout
from torosmanager.preprocessor.terms_store import TermsStore

SHAPE = (40, 30)
TERMS_BYTES = 2 * SHAPE[0] * SHAPE[1] * 4


def task(tmp_path):
    return ScienceTask(path=str(tmp_path / "light.fits"), output=str(tmp_path / "out.fits"),
                       layout=Layout.for_frame(SHAPE), bias=None, dark=None, flat=None,
                       exptime=30.0, gain=1.5, cards=(), history=())


def fill(prefix):
    """What the workers do: mark every band made."""
    with open(prefix + BANDS_SUFFIX, "r+b") as stream:
        stream.write(bytes([BAND_DONE]) * band_count(SHAPE))


def files_of(prefix):
    directory, name = os.path.split(prefix)
    return sorted(each for each in os.listdir(directory) if each.startswith(name + "-"))


class TestTheStore:
    def test_complete_terms_are_kept_and_given_again_for_the_same_key(self, tmp_path):
        store = TermsStore(TERMS_BYTES, directory=str(tmp_path))
        prefix = store.place("key", task(tmp_path), 0.0)
        assert files_of(prefix) == ["terms0-bands", "terms0-offset.f32", "terms0-scale.f32"]
        fill(prefix)
        store.release("key", prefix, SHAPE)
        assert store.place("key", task(tmp_path), 0.0) == prefix
        assert store.place("other", task(tmp_path), 0.0) != prefix

    def test_terms_not_complete_are_deleted(self, tmp_path):
        store = TermsStore(TERMS_BYTES, directory=str(tmp_path))
        prefix = store.place("key", task(tmp_path), 0.0)  # a job stopped: no band made
        store.release("key", prefix, SHAPE)
        assert files_of(prefix) == []
        assert store.place("key", task(tmp_path), 0.0) != prefix

    def test_the_least_recently_used_go_to_stay_within_the_budget(self, tmp_path):
        store = TermsStore(2 * TERMS_BYTES, directory=str(tmp_path))
        prefixes = {}
        for key in ("a", "b"):
            prefixes[key] = store.place(key, task(tmp_path), 0.0)
            fill(prefixes[key])
            store.release(key, prefixes[key], SHAPE)
        assert store.place("a", task(tmp_path), 0.0) == prefixes["a"]  # "a" used last now
        store.release("a", prefixes["a"], SHAPE)
        prefixes["c"] = store.place("c", task(tmp_path), 0.0)
        fill(prefixes["c"])
        store.release("c", prefixes["c"], SHAPE)
        assert files_of(prefixes["b"]) == []
        assert files_of(prefixes["a"]) and files_of(prefixes["c"])

    def test_a_budget_of_zero_keeps_nothing_and_closing_deletes_everything(self, tmp_path):
        nothing = TermsStore(0, directory=str(tmp_path))
        prefix = nothing.place("key", task(tmp_path), 0.0)
        fill(prefix)
        nothing.release("key", prefix, SHAPE)
        assert files_of(prefix) == []
        store = TermsStore(TERMS_BYTES, directory=str(tmp_path))
        prefix = store.place("key", task(tmp_path), 0.0)
        fill(prefix)
        store.release("key", prefix, SHAPE)
        store.close()
        nothing.close()
        assert os.listdir(tmp_path) == []

    def test_terms_left_by_a_process_that_is_gone_are_deleted(self, tmp_path):
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
        for owner in (gone, str(os.getpid())):
            left = tmp_path / f"toros-calibration-{owner}-abc"
            left.mkdir()
            (left / "terms0-offset.f32").write_bytes(b"0" * 16)
        store = TermsStore(TERMS_BYTES, directory=str(tmp_path))
        store.place("key", task(tmp_path), 0.0)
        assert not (tmp_path / f"toros-calibration-{gone}-abc").exists()
        assert (tmp_path / f"toros-calibration-{os.getpid()}-abc").exists()
        store.close()
