"""Writing products around the page cache gives the very bytes written through it.

:class:`~torosmanager.preprocessor.writing.DirectFile` gathers bytes in an aligned buffer, pads
the last block and cuts the file back; these tests hold it to the plain buffered file, byte for
byte, for widths and row counts that do not fall on any alignment, and check that it gives way
to the page cache where a file system refuses ``O_DIRECT``. The group's terms written by the
workers into shared memory must be the terms a worker computes for itself.
"""

import ctypes
import errno
import os
import sys

import numpy as np
import pytest
from astropy.io import fits

from torosmanager.preprocessor import calibrate, writing
from torosmanager.preprocessor.layout import Layout
from torosmanager.preprocessor.writing import (BufferedFile, DirectFile, ImageWriter,
                                               open_output, start_writeback)

needs_direct = pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT here")
#: Linux's ``cachestat`` system call (the same number on every architecture).
CACHESTAT = 451


def header():
    cards = fits.Header()
    cards["OBJECT"] = ("field", "what was observed")
    cards["EXPTIME"] = 30.0
    return cards


def write(path, image, direct, rows_at_a_time=7):
    with ImageWriter(str(path), header(), image.shape, durable=False, direct=direct,
                     cards=(("GAINCOR", 1.5, "e-/ADU"),), history=("made by a test",)) as out:
        for start in range(0, image.shape[0], rows_at_a_time):
            out.write(image[start:start + rows_at_a_time])
    return path.read_bytes()


@needs_direct
@pytest.mark.parametrize("shape", [(1, 1), (37, 513), (100, 1000), (600, 1024)])
def test_direct_and_buffered_files_are_the_same_bytes(tmp_path, shape):
    image = np.random.default_rng(1).normal(1000.0, 30.0, shape).astype(np.float32)
    direct = write(tmp_path / "direct.fits", image, direct=True)
    buffered = write(tmp_path / "buffered.fits", image, direct=False)
    assert direct == buffered
    assert len(direct) % 2880 == 0
    with fits.open(tmp_path / "direct.fits") as hdus:
        np.testing.assert_array_equal(hdus[0].data, image)
        assert hdus[0].header["GAINCOR"] == 1.5 and hdus[0].header["OBJECT"] == "field"
    assert sorted(os.listdir(tmp_path)) == ["buffered.fits", "direct.fits"]  # no leftovers


@needs_direct
def test_rows_of_any_byte_order_are_written_big_endian(tmp_path):
    image = np.arange(48, dtype=np.float32).reshape(6, 8)
    native = write(tmp_path / "native.fits", image, direct=True, rows_at_a_time=6)
    swapped = write(tmp_path / "swapped.fits", image.astype(">f4"), direct=True,
                    rows_at_a_time=6)
    assert native == swapped


def test_a_file_system_without_o_direct_gets_a_buffered_file(tmp_path, monkeypatch):
    def refuse(path):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(writing, "DirectFile", refuse)
    output = open_output(str(tmp_path / "product.fits"), direct=True)
    try:
        assert isinstance(output, BufferedFile)
    finally:
        output.close()


@needs_direct
def test_writes_refused_around_the_page_cache_go_through_it(tmp_path, monkeypatch):
    image = np.random.default_rng(2).random((300, 700)).astype(np.float32)
    expected = write(tmp_path / "buffered.fits", image, direct=False)
    real_write = os.pwrite
    refused = []

    def write_unless_direct(descriptor, data, position):
        import fcntl

        if fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(descriptor, data, position)

    monkeypatch.setattr(writing.os, "pwrite", write_unless_direct)
    assert write(tmp_path / "direct.fits", image, direct=True) == expected
    assert refused  # it did try


@needs_direct
def test_a_failed_product_leaves_nothing_behind(tmp_path):
    image = np.zeros((10, 10), dtype=np.float32)
    with (pytest.raises(ValueError, match="5 rows written of 10"),
          ImageWriter(str(tmp_path / "product.fits"), header(), image.shape, direct=True,
                      durable=False) as out):
        out.write(image[:5])
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the write-back is started early on Linux only")
def test_the_write_back_goes_on_after_the_writer_has_closed_the_file(tmp_path):
    # A worker closes each product as soon as it has asked for its write-back, which a thread
    # starts, on its own copy of the descriptor, perhaps later (the disk's queue may be full).
    path = tmp_path / "product"
    data = os.urandom(8 * 2 ** 20)
    with open(path, "wb") as stream:
        stream.write(data)
        stream.flush()
        start_writeback(stream.fileno())
    writing._writeback_thread().wait()
    with open(path, "rb") as stream:
        # Without the start, the pages would stay dirty for 30 s (vm.dirty_expire_centisecs).
        assert dirty_pages(stream.fileno()) == 0
    assert path.read_bytes() == data


def dirty_pages(descriptor):
    """Pages of the open file *descriptor* dirty in the page cache (Linux's ``cachestat``)."""
    class Range(ctypes.Structure):
        _fields_ = [("offset", ctypes.c_uint64), ("length", ctypes.c_uint64)]

    class Counts(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint64) for name in (
            "cached", "dirty", "writeback", "evicted", "recently_evicted")]

    counts = Counts()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(CACHESTAT, descriptor, ctypes.byref(Range(0, 0)), ctypes.byref(counts),
                    0) != 0:
        error = ctypes.get_errno()
        if error == errno.ENOSYS:
            pytest.skip("this kernel has no cachestat (Linux 6.5 and later)")
        raise OSError(error, os.strerror(error))
    return counts.dirty


@needs_direct
def test_a_direct_file_is_cut_back_to_its_length(tmp_path):
    output = DirectFile(str(tmp_path / "bytes"))
    try:
        output.write_bytes(b"abc" * 5000)
        output.finish()
    finally:
        output.close()
    assert (tmp_path / "bytes").read_bytes() == b"abc" * 5000


def test_shared_terms_are_the_terms_a_worker_computes(tmp_path):
    shape = (700, 900)  # several bands of block_rows(900) rows
    rng = np.random.default_rng(3)
    masters = {}
    for kind, values in (("bias", rng.normal(1000.0, 5.0, shape)),
                         ("dark", rng.random(shape) * 0.1),
                         ("flat", 0.9 + 0.2 * rng.random(shape))):
        masters[kind] = str(tmp_path / f"{kind}.fits")
        fits.PrimaryHDU(values.astype(np.float32)).writeto(masters[kind])
    task = calibrate.ScienceTask(path="light.fits", output="out.fits",
                                 layout=Layout.for_frame(shape), bias=masters["bias"],
                                 dark=masters["dark"], flat=masters["flat"], exptime=30.0,
                                 gain=1.5)

    calibrate.forget_terms()
    own = calibrate.terms(task, 32768.0)
    prefix = str(tmp_path / "group")
    calibrate.share_terms(task, 32768.0, prefix)
    shared_task = calibrate.ScienceTask(**{**task.__dict__, "terms": prefix,
                                           "terms_bzero": 32768.0})
    try:
        first = calibrate.SharedTerms(shared_task, 32768.0)   # two workers' views
        second = calibrate.SharedTerms(shared_task, 32768.0)
        rows = calibrate.block_rows(shape[1])
        for start in range(0, shape[0], rows):
            # Bands asked for in turn by either: each filled once, by the first to ask.
            worker = first if (start // rows) % 3 else second
            np.testing.assert_array_equal(worker.rows(start, start + rows)[0],
                                          own.offset[start:start + rows])
        second.fill_all()
        for mine, theirs in ((own.offset, second.offset), (own.scale, second.scale)):
            np.testing.assert_array_equal(mine, theirs)
        first.close()
        second.close()
        bias = fits.getdata(masters["bias"])
        dark = fits.getdata(masters["dark"])
        np.testing.assert_allclose(own.offset, bias + dark * np.float32(30.0 / 1.5) - 32768.0,
                                   rtol=1e-6)
        np.testing.assert_allclose(own.scale, 1.5 / fits.getdata(masters["flat"]), rtol=1e-6)
    finally:
        calibrate.forget_terms()
        calibrate.remove_terms(prefix)


def test_a_band_claimed_and_never_filled_is_filled_after_a_while(tmp_path, monkeypatch):
    shape = (300, 400)
    fits.PrimaryHDU(np.full(shape, 1000.0, dtype=np.float32)).writeto(tmp_path / "bias.fits")
    task = calibrate.ScienceTask(path="light.fits", output="out.fits",
                                 layout=Layout.for_frame(shape), bias=str(tmp_path / "bias.fits"),
                                 dark=None, flat=None, exptime=30.0, gain=2.0,
                                 terms=str(tmp_path / "group"), terms_bzero=0.0)
    calibrate.share_terms(task, 0.0, task.terms)
    open(f"{task.terms}-band0", "wb").close()  # a worker that claimed the first band and died
    monkeypatch.setattr(calibrate, "TERMS_WAIT_SECONDS", 0.05)
    group = calibrate.SharedTerms(task, 0.0)
    try:
        offset, scale = group.rows(0, calibrate.block_rows(shape[1]))
        assert (offset == 1000.0).all() and (scale == 2.0).all()
        group.fill_all()
        assert (group.offset == 1000.0).all()
    finally:
        group.close()
        calibrate.remove_terms(task.terms)
    assert sorted(os.listdir(tmp_path)) == ["bias.fits"]


@needs_direct
def test_an_error_of_the_writer_thread_is_the_callers(tmp_path, monkeypatch):
    def full(descriptor, data, position):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writing.os, "pwrite", full)
    image = np.zeros((2000, 1000), dtype=np.float32)  # several buffers' worth
    with pytest.raises(OSError, match="No space left"):
        write(tmp_path / "product.fits", image, direct=True, rows_at_a_time=100)
    assert os.listdir(tmp_path) == []


class InProcess:
    """A task runner that runs each task here: the workers would not see a patched module."""

    workers = 2

    def run(self, function, arguments, stop=None):
        for index, args in enumerate(arguments):
            try:
                yield index, function(*args), None
            except Exception as error:  # as a worker's error comes back
                yield index, None, error


def test_products_written_around_the_page_cache_are_the_same(tmp_path, monkeypatch):
    from preprocessing_data import make_night

    from torosmanager.preprocessor.pipeline import Settings
    from torosmanager.preprocessor.pipeline import calibrate as calibrate_night

    runner = InProcess()
    written = []
    real_open_output = writing.open_output

    def open_output(path, direct):
        made = real_open_output(path, direct)
        written.append(type(made).__name__)
        return made

    monkeypatch.setattr(writing, "open_output", open_output)

    # 512x512 float32 products are 1 MB: from 1 MB on, every product goes around the cache.
    made = make_night(tmp_path, biases=3, darks={30.0: 2}, flats={"R": 2},
                      lights=[("R", 30.0, 2)], simulator={"Width": 512, "Height": 512})
    products = {}
    for direct_writes_from in (1, 0):  # every product around the cache, then none
        outcome = calibrate_night(str(made.directory),
                                  Settings(library=None, direct_writes_from=direct_writes_from),
                                  runner)
        assert len(outcome.products) == 2 and not outcome.skipped
        products[direct_writes_from] = {}
        for path in outcome.products:
            with fits.open(path) as hdus:
                header = hdus[0].header
                del header["CALDATE"]
                products[direct_writes_from][path] = (header.tostring(), hdus[0].data.copy())
    direct, cached = products[1], products[0]
    if hasattr(os, "O_DIRECT"):
        assert written == ["DirectFile", "DirectFile", "BufferedFile", "BufferedFile"]
    assert direct.keys() == cached.keys()
    for path, (header, data) in direct.items():
        assert header == cached[path][0]
        np.testing.assert_array_equal(data, cached[path][1])


@pytest.mark.parametrize("setting, expected", [
    ("", {4096: False, 10560: True}),  # the default, 256 MiB: 64 MiB through, 425 MiB around
    ("Direct Writes From: 0", {4096: False, 10560: False}),
    ("Direct Writes From: 64", {4096: True, 10560: True}),
    ("Direct Writes From: 65", {4096: False, 10560: True}),
])
def test_the_configured_size_decides_which_products_go_around_the_page_cache(
        tmp_path, setting, expected):
    from torosmanager.config import load_config
    from torosmanager.preprocessor.pipeline import Settings

    path = tmp_path / "toros.conf.yaml"
    path.write_text(f"Preprocessor:\n  {setting}\n" if setting else "")
    settings = Settings.from_config(load_config(str(path)))
    assert {size: calibrate.writes_direct((size, size), settings.direct_writes_from)
            for size in expected} == expected


def test_a_raw_card_astropy_cannot_write_is_spelled_in_ascii_or_left_out(caplog):
    """A control character in a raw card's text becomes '?'; in its keyword, the card is left
    out, saying so; the other cards are carried as they are."""
    raw = fits.Header([fits.Card.fromstring(image.ljust(80)) for image in (
        "OBJECT  = 'M31\x7f' / Andromeda\x00", "OBS\x01   = 'me'", "FILTER  = 'R'")])
    with caplog.at_level("WARNING", logger="torosmanager.preprocessor.writing"):
        header = writing.image_header(raw, (4, 6))
    assert [(card.keyword, card.value, card.comment) for card in header.cards][5:] == [
        ("OBJECT", "M31?", "Andromeda?"), ("FILTER", "R", "")]
    assert header.tostring().isascii()
    assert caplog.messages == ["a raw header's card \"OBS\\x01   = 'me'\" is left out of the "
                               "product: it is not a FITS card"]
