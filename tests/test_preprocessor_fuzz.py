"""Whatever a FITS file's header says, the preprocessor describes it as a frame or refuses it
with FrameError (a master of its library: ValueError or FrameError), naming what is wrong, at
once; and a raw header it takes can be carried into a product. Nothing else escapes to fail the
night's job.

Real frames and masters, made by the simulated observatory and the pipeline, are changed one
to four cards at a time (values from other cameras' software and from no software at all),
their header's bytes flipped, or the file cut: another camera's driver, a header edited by
hand, a copy cut short. The first run found a header that was read for hours (NAXIS =
99999999999999999999) and six exceptions that failed the whole job.
"""

import os
import random
import threading
import warnings

import pytest

from preprocessing_data import make_night
from torosmanager.preprocessor import writing
from torosmanager.preprocessor.classify import describe
from torosmanager.preprocessor.executors import LocalRunner
from torosmanager.preprocessor.masters import master_from_file
from torosmanager.preprocessor.pipeline import Settings, calibrate
from torosmanager.preprocessor.reading import FITS_BLOCK, FrameError, RawFrame

SEED = 20261205
#: Files made and read for each kind of file.
MUTATIONS = 3000
#: Seconds the whole run may take: it takes a few; a header read for hours fails it.
DEADLINE = 300
#: Values a card is set to, as written in the file.
ODD_VALUES = ["'", "''", "1.0.0", "-1", "0", "1e400", "-1E400", "NaN", "T", "F", "'abc'",
              "'   '", "99999999999999999999", "-99999999999", "(1, 2)", "1.5", "2", "3", "-32",
              "64", "7", "", "/ comment", "'\x00'", "'a\x7fb'", "'x' / \x01", "1D5",
              "'2026-99-99'", "-0.0", "1e-300", "'NaN'", "'inf'", "1E38", "-1E38", "3.4E38",
              "'LIGHT'", "'DARK'", "'BIAS'", "'FLAT'", "'MASTER BIAS'", "'adu'", "'R'"]
RAW_KEYS = ["SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "PCOUNT",
            "GCOUNT", "BZERO", "BSCALE", "BLANK", "IMAGETYP", "EXPTIME", "EXPOSURE", "FILTER",
            "GAIN", "EGAIN", "RDNOISE", "DATE-OBS", "SATURATE", "DATAMIN", "DATAMAX",
            "XBINNING", "YBINNING", "CALSOFT", "BIASCOR",
            "OBJECT", "OBSERVER"]
MASTER_KEYS = ["BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "BZERO", "BSCALE", "IMAGETYP", "BUNIT",
               "EXPTIME", "FILTER", "NCOMBINE", "NIGHT", "RAWNX", "RAWNY", "XBINNING",
               "YBINNING", "BIASLEV"]
#: Characters a flipped byte of a header becomes: those that change what a card means.
CARD_CHARACTERS = b" =/'0123456789.-+ETFNDe()"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A night's raw frames, and the masters the pipeline made of them (in its library)."""
    root = tmp_path_factory.mktemp("fuzz")
    night = make_night(root).directory
    masters = str(root / "library")
    runner = LocalRunner(1)
    try:
        calibrate(str(night), Settings(workers=1, library=masters), runner)
    finally:
        runner.close()
    raw = sorted(str(night / "raw" / name) for name in os.listdir(night / "raw"))
    made = sorted(os.path.join(directory, name) for directory, _, names in os.walk(masters)
                  for name in names)
    assert len(raw) == 16 and len(made) == 3
    return raw, made


def with_card(content, key, written):
    """*content* (a FITS file's bytes) with *key*'s card of the first header reading
    ``KEY = written``, or that card added before END."""
    end = content.index(b"END" + b" " * 77)
    header = bytearray(content[:end + 80])
    card = f"{key:<8}= {written:>20}".ljust(80)[:80].encode("latin-1")
    for start in range(0, end, 80):
        if header[start:start + 8].rstrip() == key.encode():
            header[start:start + 80] = card
            return bytes(header) + content[end + 80:]
    if (end + 80) % FITS_BLOCK:  # room for one more card in the header's last block
        header[end:end + 160] = card + b"END".ljust(80)
        return bytes(header) + content[end + 160:]
    return content


def mutated(rng, content, keys):
    """*content* with one to four cards changed, or up to eight bytes of its header flipped,
    or cut short; and what was done, for the failure message."""
    how = rng.randrange(3)
    if how == 0:
        done = []
        for _ in range(rng.randint(1, 4)):
            key, value = rng.choice(keys), rng.choice(ODD_VALUES)
            content = with_card(content, key, value)
            done.append(f"{key} = {value!r}")
        return content, ", ".join(done)
    if how == 1:
        changed = bytearray(content)
        places = [rng.randrange(2 * FITS_BLOCK) for _ in range(rng.randint(1, 8))]
        for place in places:
            changed[place] = rng.choice(CARD_CHARACTERS)
        return bytes(changed), f"bytes {places} flipped"
    size = rng.randrange(len(content))
    return content[:size], f"cut at {size} bytes"


def each_mutation(sources, keys, check, tmp_path):
    """Call *check(path)* on MUTATIONS changed copies of *sources*, within DEADLINE seconds;
    the first exception other than those allowed fails the test, naming the change."""
    rng = random.Random(SEED)
    path = str(tmp_path / "changed.fits")
    contents = {source: open(source, "rb").read() for source in sources}
    failures, finished = [], threading.Event()

    def run():
        for _ in range(MUTATIONS):
            source = rng.choice(sources)
            content, how = mutated(rng, contents[source], keys)
            with open(path, "wb") as stream:
                stream.write(content)
            try:
                check(path)
            except Exception as error:  # the test's point: any other exception, named
                failures.append(f"{os.path.basename(source)} with {how}: "
                                f"{type(error).__name__}: {error}")
                break
        finished.set()

    worker = threading.Thread(target=run, daemon=True)  # left behind if it never ends
    worker.start()
    assert finished.wait(DEADLINE), f"one of the files was still being read after {DEADLINE} s"
    assert not failures, failures[0]


def test_a_raw_frame_is_described_and_read_or_refused_saying_why(files, tmp_path):
    described = []

    def check(path):
        try:
            frame = describe(path)
            with RawFrame(path) as raw:
                raw.image()
                writing.image_header(raw.header, raw.shape).tostring()
        except FrameError as error:
            assert str(error)
        else:
            described.append(frame)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's VerifyWarnings, numpy's overflows
        each_mutation(files[0], RAW_KEYS, check, tmp_path)
    assert MUTATIONS // 4 < len(described) < MUTATIONS  # both paths were taken


def test_a_masters_file_is_a_master_or_skipped_saying_why(files, tmp_path):
    taken = []

    def check(path):
        try:
            master = master_from_file(path, "library")
        except (FrameError, ValueError) as error:
            assert str(error)
        else:
            taken.append(master)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        each_mutation(files[1], MASTER_KEYS, check, tmp_path)
    assert MUTATIONS // 10 < len(taken) < MUTATIONS
