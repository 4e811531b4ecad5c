"""Skymaps and tiles: synthetic maps whose answers are known, then real LVK maps.

The synthetic maps are Gaussian blobs, density ∝ exp(-θ² / 2σ²) at angular distance θ from a
centre: for σ of a few degrees the sky is nearly flat there, so the region holding a fraction p
of the probability is the disc of radius σ √(-2 ln(1 - p)), of area -2π σ² ln(1 - p) (90 %:
2π σ² ln 10).
"""

import base64
import gzip
import io
import json
import math
import re

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy_healpix import (healpix_to_lonlat, level_to_nside, nside_to_pixel_area,
                             uniq_to_level_ipix)
from astropy_healpix.core import nested_to_ring

from alert_fixtures import FOLLOWUP_ADVOCATE, alert_file
from torosmanager.alerts.skymap import (KEEP_LEVEL, Skymap, angular_separation, credible_count,
                                       credible_region, distance_moments)
from torosmanager.alerts.tiles import MEMBER_LEVEL, Tile, enclosed, in_field, pointing, tiles

#: The synthetic blob: centre and width, degrees.
RA0, DEC0, SIGMA = 40.0, -20.0, 3.0
#: The synthetic flat maps' order (nside 128, 0.46° pixels) and the multi-order map's coarse
#: order away from the blob (nside 16).
FINE, COARSE = 7, 4


def centres(level, ipix):
    lon, lat = healpix_to_lonlat(ipix, level_to_nside(level), order="nested")
    return lon.to_value(u.deg), lat.to_value(u.deg)


def blob(ra, dec, ra0=RA0, dec0=DEC0, sigma=SIGMA):
    return np.exp(-angular_separation(ra0, dec0, ra, dec) ** 2 / (2 * sigma ** 2))


def pixel_area_sr(level):
    return nside_to_pixel_area(level_to_nside(level)).to_value(u.sr)


def gaussian_area(level, sigma=SIGMA):
    return -2 * math.pi * sigma ** 2 * math.log(1 - level)


def flat_hdu(prob, ordering, column_format="D", distance=None):
    """A flat map's FITS table, as LVK wrote them (PROB per pixel, NSIDE, ORDERING)."""
    nside = int(round(math.sqrt(prob.size / 12)))
    columns = [fits.Column("PROB", column_format, array=prob)]
    for name, values in (distance or {}).items():
        columns.append(fits.Column(name, "D", array=values))
    hdu = fits.BinTableHDU.from_columns(columns)
    hdu.header.update(PIXTYPE="HEALPIX", ORDERING=ordering, NSIDE=nside, INDXSCHM="IMPLICIT")
    return hdu


def flat_nested(density_function, level=FINE):
    ipix = np.arange(12 * 4 ** level)
    prob = density_function(*centres(level, ipix))
    return prob / prob.sum()


def write(tmp_path, name, hdu):
    path = tmp_path / name
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


@pytest.fixture(scope="module")
def gaussian():
    """The blob as a flat NESTED map of order FINE, read from the bytes of its file."""
    return Skymap.read(to_bytes(flat_hdu(flat_nested(blob), "NESTED")))


def to_bytes(hdu):
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    return buffer.getvalue()


# ------------------------------------------------------------------ a Gaussian blob, known
def test_credible_areas_of_a_gaussian_blob_are_2_pi_sigma_squared_ln_10_and_ln_2(gaussian):
    assert gaussian.credible_area(0.9) == pytest.approx(gaussian_area(0.9), rel=0.03)
    assert gaussian.credible_area(0.5) == pytest.approx(gaussian_area(0.5), rel=0.03)


def test_the_probability_in_a_cone_on_the_blob_is_one_minus_exp_of_minus_r2_over_2_sigma2(
        gaussian):
    for radius in (1.0, SIGMA, SIGMA * math.sqrt(2 * math.log(10))):
        expected = 1 - math.exp(-radius ** 2 / (2 * SIGMA ** 2))
        assert gaussian.cone_probability(RA0, DEC0, radius) == pytest.approx(expected, abs=0.01)
    assert gaussian.cone_probability(RA0 + 180, -DEC0, 10) < 1e-12
    assert gaussian.cone_probability(0, 0, 180) == pytest.approx(1, abs=1e-9)


def test_resampling_sums_fine_pixels_into_coarse_ones_and_shares_coarse_among_fine(gaussian):
    fine = gaussian.flat(level_to_nside(FINE))
    coarse = gaussian.flat(level_to_nside(FINE - 2))
    np.testing.assert_allclose(coarse, fine.reshape(-1, 16).sum(axis=1), rtol=0, atol=1e-15)
    finer = gaussian.flat(level_to_nside(FINE + 1))
    np.testing.assert_allclose(finer.reshape(-1, 4), np.repeat(fine[:, None], 4, axis=1) / 4)
    for level in (FINE - 3, FINE, FINE + 1):
        assert gaussian.flat(level_to_nside(level)).sum() == pytest.approx(1, abs=1e-12)
    # Finer than the map, the region may end part-way through one of its pixels.
    one_pixel = nside_to_pixel_area(level_to_nside(FINE)).to_value(u.deg ** 2)
    assert gaussian.credible_area(0.9, nside=level_to_nside(FINE + 1)) == pytest.approx(
        gaussian.credible_area(0.9), abs=one_pixel)


def test_a_map_without_distance_layers_says_so(gaussian):
    assert not gaussian.has_distance
    with pytest.raises(ValueError, match="no distance layers"):
        gaussian.distance(RA0, DEC0)


# ------------------------------------------------------------------ flat and multi-order
def multi_order_blob():
    """The blob at order FINE within 5σ, at order COARSE elsewhere: UNIQ and PROBDENSITY."""
    coarse = np.arange(12 * 4 ** COARSE)
    near = angular_separation(RA0, DEC0, *centres(COARSE, coarse)) < 5 * SIGMA
    children = ((coarse[near, None] << 2 * (FINE - COARSE))
                + np.arange(4 ** (FINE - COARSE))).ravel()
    uniq = np.concatenate([4 * 4 ** COARSE + coarse[~near], 4 * 4 ** FINE + children])
    density = np.concatenate([blob(*centres(COARSE, coarse[~near])),
                              blob(*centres(FINE, children))])
    area = np.concatenate([np.full((~near).sum(), pixel_area_sr(COARSE)),
                           np.full(children.size, pixel_area_sr(FINE))])
    return uniq, density / np.sum(density * area)


def flat_of_multi_order():
    """The same function as :func:`multi_order_blob` sampled on the flat order FINE grid:
    the blob near it, the coarse pixel's value elsewhere."""
    ipix = np.arange(12 * 4 ** FINE)
    parent = ipix >> 2 * (FINE - COARSE)
    near = angular_separation(RA0, DEC0, *centres(COARSE, parent)) < 5 * SIGMA
    density = np.where(near, blob(*centres(FINE, ipix)), blob(*centres(COARSE, parent)))
    return density / density.sum()


@pytest.fixture(scope="module")
def three_files(tmp_path_factory):
    """The same map as multi-order, flat NESTED and flat RING files."""
    directory = tmp_path_factory.mktemp("maps")
    uniq, density = multi_order_blob()
    moc = fits.BinTableHDU.from_columns([fits.Column("UNIQ", "K", array=uniq),
                                         fits.Column("PROBDENSITY", "D", array=density)])
    moc.header.update(PIXTYPE="HEALPIX", ORDERING="NUNIQ", INDXSCHM="EXPLICIT", MOC=True)
    nested = flat_of_multi_order()
    ring = np.empty_like(nested)
    ring[nested_to_ring(np.arange(nested.size), level_to_nside(FINE))] = nested
    return {"multi-order": Skymap.read(write(directory, "moc.fits", moc)),
            "nested": Skymap.read(write(directory, "nested.fits", flat_hdu(nested, "NESTED"))),
            "ring": Skymap.read(write(directory, "ring.fits", flat_hdu(ring, "RING")))}


def test_a_flat_map_and_the_same_map_as_multi_order_give_the_same_credible_areas(three_files):
    moc = three_files["multi-order"]
    assert moc.level.min() == COARSE and moc.level.max() == FINE
    for name in ("nested", "ring"):
        flat = three_files[name]
        for level in (0.5, 0.9):
            assert flat.credible_area(level) == pytest.approx(moc.credible_area(level), rel=1e-9)
        # The same pixels, but for the tail beyond KEEP_LEVEL, which a flat map merges into
        # coarse pixels on arrival: its probability moves, its total does not.
        flat_128, moc_128 = flat.flat(128), moc.flat(128)
        tail = moc_128 < np.sort(moc_128)[::-1][credible_count(np.cumsum(np.sort(moc_128)[::-1]),
                                                                KEEP_LEVEL) - 1]
        np.testing.assert_allclose(flat_128[~tail], moc_128[~tail], rtol=1e-9)
        assert np.abs(flat_128 - moc_128).sum() <= 2 * (1 - KEEP_LEVEL)
        assert flat_128.sum() == pytest.approx(1, abs=1e-12)
    assert moc.credible_area(0.9) == pytest.approx(gaussian_area(0.9), rel=0.03)


def test_a_ring_map_is_read_in_ring_order(three_files):
    nested, ring = three_files["nested"], three_files["ring"]
    np.testing.assert_array_equal(nested.uniq, ring.uniq)
    np.testing.assert_allclose(nested.probability, ring.probability, rtol=0, atol=0)


def test_a_map_is_refused_when_it_is_not_one(tmp_path):
    prob = flat_nested(blob, level=2)
    with pytest.raises(ValueError, match="ORDERING"):
        Skymap.read(write(tmp_path, "bad.fits", flat_hdu(prob, "SIDEWAYS")))
    with pytest.raises(ValueError, match="add up to"):
        Skymap.read(write(tmp_path, "half.fits", flat_hdu(prob / 2, "NESTED")))


@pytest.mark.parametrize("content", [b"<html><body>502 Bad Gateway</body></html>",
                                     gzip.compress(b"<?xml version='1.0'?><voe:VOEvent/>")],
                         ids=["an HTML page", "a gzipped VOEvent"])
def test_a_file_that_is_not_fits_is_refused_quoting_its_first_bytes(tmp_path, content):
    # (astropy's own message would suggest ignore_missing_simple=True, which cannot help.)
    path = tmp_path / "map.fits"
    path.write_bytes(content)
    for source in (content, path):
        with pytest.raises(ValueError) as refused:
            Skymap.read(source)
        assert re.match(r"not a FITS file: it begins with b['\"]<", str(refused.value))
        assert "ignore_missing_simple" not in str(refused.value)


@pytest.fixture(scope="module")
def real_map():
    """A real multi-order map (MS220722v, BAYESTAR), 777,600 bytes."""
    return alert_file("MS220722v_bayestar.multiorder.fits").read_bytes()


@pytest.mark.filterwarnings("ignore:File may have been truncated")  # astropy's, true here
@pytest.mark.parametrize("kept", [0.5, 0.9, 0.999])
def test_a_map_cut_short_is_refused_as_truncated_as_bytes_and_as_a_file(real_map, tmp_path,
                                                                         kept):
    """A download cut short, or an alert's skymap truncated: the map is refused saying so,
    where it was an error of astropy's buffers (or of gzip's) that failed the alert."""
    whole = 8640 + 19_200 * 40  # its headers, then 19,200 rows of 40 bytes; then padding
    assert Skymap.read(real_map[:whole]).credible_area(0.9) == pytest.approx(
        Skymap.read(real_map).credible_area(0.9))
    cut = real_map[:int(whole * kept)]
    with pytest.raises(ValueError, match=f"truncated: {len(cut):,} bytes, where its table "
                                         f"ends at byte {whole:,}"):
        Skymap.read(cut)
    with pytest.raises(ValueError, match="truncated"):
        Skymap.read(write_bytes(tmp_path / "cut.fits", cut))
    compressed = gzip.compress(real_map)
    for broken in (compressed[:int(len(compressed) * kept)],
                   compressed[:len(compressed) // 2] + bytes(1000)):
        with pytest.raises(ValueError, match="cannot be decompressed"):
            Skymap.read(broken)
        with pytest.raises(ValueError, match="cannot be decompressed"):
            Skymap.read(write_bytes(tmp_path / "cut.fits.gz", broken))


def test_a_map_that_decompresses_beyond_the_limit_is_refused_before_it_fills_the_memory(
        real_map, tmp_path):
    """A gzip bomb: a FITS header and then zeros, 100 MB in 100 kB. It was decompressed
    whole (a 1.5 GB one took 40 s and failed with an empty MemoryError)."""
    bomb = gzip.compress(real_map[:2880] + bytes(100_000_000), compresslevel=1)
    assert len(bomb) < 1_000_000
    for source in (bomb, write_bytes(tmp_path / "bomb.fits.gz", bomb)):
        with pytest.raises(ValueError, match=r"decompresses to more than 10,000,000 bytes "
                                             r"\(Alerts → Max Skymap Bytes\)"):
            Skymap.read(source, max_bytes=10_000_000)
    # Within the limit, and in two gzip members: read as before.
    halves = gzip.compress(real_map[:400_000]) + gzip.compress(real_map[400_000:])
    assert Skymap.read(halves, max_bytes=len(real_map)).digest == Skymap.read(real_map).digest


def write_bytes(path, data):
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("missing", [np.nan, -1.6375e30], ids=["NaN", "UNSEEN"])
@pytest.mark.parametrize("column_format", ["D", "E"], ids=["float64", "float32"])
def test_a_pixel_without_a_value_in_a_flat_map_holds_no_probability(tmp_path, missing,
                                                                     column_format):
    prob = flat_nested(blob, level=3)
    peak = np.argmax(prob)
    prob[peak] = 0.0
    prob /= prob.sum()
    zero = Skymap.read(write(tmp_path, "zero.fits", flat_hdu(prob, "NESTED", column_format)))
    prob[peak] = missing
    skymap = Skymap.read(write(tmp_path, "missing.fits",
                               flat_hdu(prob, "NESTED", column_format)))
    assert skymap.probability.sum() == pytest.approx(1, abs=1e-6)  # float32: 7 digits
    np.testing.assert_array_equal(skymap.uniq, zero.uniq)
    np.testing.assert_array_equal(skymap.probability, zero.probability)


def test_a_map_with_negative_probabilities_is_refused_saying_where(tmp_path):
    prob = flat_nested(blob, level=2)
    prob[[5, 7]] = -1e-3
    with pytest.raises(ValueError, match=r"PROB: 2 pixel\(s\) of negative probability \(the "
                                         r"least -0\.001, pixel 5 the first\)"):
        Skymap.read(write(tmp_path, "negative.fits", flat_hdu(prob, "NESTED")))
    uniq, density = multi_order_blob()
    density[0] = -density[0]
    moc = fits.BinTableHDU.from_columns([fits.Column("UNIQ", "K", array=uniq),
                                         fits.Column("PROBDENSITY", "D", array=density)])
    with pytest.raises(ValueError, match=r"PROBDENSITY: 1 pixel\(s\) of negative probability"):
        Skymap.read(write(tmp_path, "negative-moc.fits", moc))


# ------------------------------------------------------------------ credible regions
@pytest.mark.parametrize("values", [
    pytest.param(np.random.default_rng(1).lognormal(-12, 4, 100_000), id="a long tail"),
    pytest.param(np.round(np.random.default_rng(2).random(10_000), 2), id="ties"),
    pytest.param(np.repeat(np.random.default_rng(3).random(2_500), 4), id="equal siblings"),
    pytest.param(np.where(np.arange(1_000) % 2, 0.0, np.random.default_rng(4).random(1_000)),
                 id="zeros"),
])
@pytest.mark.parametrize("level", [0.1, 0.5, 0.9, 0.9999, 1.0])
def test_a_credible_region_is_the_fewest_largest_values_holding_the_level(values, level):
    region = credible_region(values, level)
    held = values[region].sum() / values.sum()
    assert held >= level * (1 - 1e-12)
    assert values[region[:-1]].sum() / values.sum() < level        # none can be left out
    assert (np.diff(values[region]) <= 0).all()                      # largest first
    outside = np.delete(values, region)
    assert outside.size == 0 or values[region].min() >= outside.max()
    plain = np.argsort(values, kind="stable")[::-1]                  # ties: the later index first
    np.testing.assert_array_equal(region, plain[:region.size])


def test_a_credible_region_of_densities_counts_what_each_pixel_holds():
    density = np.array([4.0, 3.0, 2.0, 1.0])
    area = np.array([0.01, 0.01, 1.0, 10.0])       # the least dense pixel holds the most
    held = density * area
    assert credible_region(density, 0.5, held).tolist() == [0, 1, 2, 3]
    assert credible_region(density, 0.05, held).tolist() == [0, 1, 2]


# ------------------------------------------------------------------ distance
def test_distance_moments_are_those_of_r2_times_a_normal():
    r = np.linspace(0, 2000, 200001)
    for mu, sigma in ((100.0, 30.0), (50.0, 80.0), (-20.0, 60.0)):
        weight = r ** 2 * np.exp(-(r - mu) ** 2 / (2 * sigma ** 2))
        mean = np.sum(r * weight) / np.sum(weight)
        std = math.sqrt(np.sum((r - mean) ** 2 * weight) / np.sum(weight))
        assert distance_moments(mu, sigma) == pytest.approx((mean, std), rel=1e-5)
    assert distance_moments(math.inf, 1.0)[0] == math.inf


def test_a_flat_map_with_distance_layers_gives_the_distance_along_a_direction(tmp_path):
    prob = flat_nested(blob, level=5)
    mu, sigma = np.full(prob.size, 100.0), np.full(prob.size, 30.0)
    mu[:prob.size // 2] = 300.0            # the first half of the NESTED pixels: farther
    hdu = flat_hdu(prob, "NESTED", distance={"DISTMU": mu, "DISTSIGMA": sigma,
                                    "DISTNORM": np.full(prob.size, 1e-4)})
    skymap = Skymap.read(write(tmp_path, "distance.fits", hdu))
    assert skymap.has_distance
    ra, dec = centres(5, np.array([0, prob.size - 1]))
    assert skymap.distance(ra[0], dec[0]) == pytest.approx(distance_moments(300.0, 30.0))
    assert skymap.distance(ra[1], dec[1]) == pytest.approx(distance_moments(100.0, 30.0))


# ------------------------------------------------------------------ tiles
@pytest.fixture(scope="module")
def two_blobs():
    """70 % of the probability at (30°, +10°), 30 % at (200°, -40°), σ = 2°."""
    def density(ra, dec):
        return (0.7 * blob(ra, dec, 30, 10, 2.0) + 0.3 * blob(ra, dec, 200, -40, 2.0))
    return Skymap.read(to_bytes(flat_hdu(flat_nested(density), "NESTED")))


def test_the_first_tile_is_on_the_heavier_blob_and_the_lighter_one_gets_a_tile(two_blobs):
    chosen = tiles(two_blobs, fov=3.0, max_tiles=10)
    assert len(chosen) == 10 and all(isinstance(tile, Tile) for tile in chosen)
    assert angular_separation(30, 10, chosen[0].ra, chosen[0].dec) < 1.0
    # A 3° field on a σ = 2° blob holds erf(0.75/√2)² ≈ 0.30 of it.
    assert chosen[0].probability == pytest.approx(0.7 * 0.30, abs=0.02)
    assert any(angular_separation(200, -40, tile.ra, tile.dec) < 1.5 for tile in chosen)


def test_tiles_are_ranked_and_count_no_probability_twice(two_blobs):
    chosen = tiles(two_blobs, fov=3.0, max_tiles=10)
    added = [tile.probability for tile in chosen]
    assert added == sorted(added, reverse=True)
    assert sum(added) <= 1 + 1e-12
    # What the tiles add up to is the probability of the union of their fields, each pixel once.
    nside = level_to_nside(7)
    ra, dec = centres(7, np.arange(12 * nside ** 2))
    covered = np.zeros(ra.size, dtype=bool)
    for tile in chosen:
        covered |= in_field(tile.ra, tile.dec, ra, dec, 3.0)
    assert sum(added) == pytest.approx(two_blobs.flat(nside)[covered].sum(), rel=1e-9)


def test_fields_observed_already_count_as_covered_and_the_tiles_go_on_beyond_them(two_blobs):
    """An update in the middle of the night: its tiles add only what the fields observed
    tonight have not covered."""
    first = tiles(two_blobs, fov=3.0, max_tiles=3)
    observed = [(tile.ra, tile.dec) for tile in first]
    after = tiles(two_blobs, fov=3.0, max_tiles=10, observed=observed)
    nside = level_to_nside(7)
    ra, dec = centres(7, np.arange(12 * nside ** 2))
    seen = np.zeros(ra.size, dtype=bool)
    for tile in first:
        seen |= in_field(tile.ra, tile.dec, ra, dec, 3.0)
    covered = np.zeros(ra.size, dtype=bool)
    for tile in after:
        covered |= in_field(tile.ra, tile.dec, ra, dec, 3.0)
    # Each tile's probability is what it adds beyond the observed fields and the tiles before.
    assert sum(tile.probability for tile in after) == pytest.approx(
        two_blobs.flat(nside)[covered & ~seen].sum(), rel=1e-9)
    assert not {(tile.ra, tile.dec) for tile in after} & set(observed)
    # What the observed fields enclose, each pixel once: the first three tiles' probability.
    assert enclosed(two_blobs, observed, 3.0) == pytest.approx(
        two_blobs.flat(nside)[seen].sum(), rel=1e-9)
    assert enclosed(two_blobs, observed, 3.0) == pytest.approx(
        sum(tile.probability for tile in first), rel=1e-9)
    # The same ten tiles as without the observed fields, less those three: the next best.
    assert [(tile.ra, tile.dec) for tile in after[:7]] == [
        (tile.ra, tile.dec) for tile in tiles(two_blobs, fov=3.0, max_tiles=10)[3:]]


def test_tiling_stops_when_the_candidates_cover_everything(gaussian):
    chosen = tiles(gaussian, fov=30.0, max_tiles=50)
    assert len(chosen) < 50
    # Everything, but for the thin tail outside the region the fields' sums are taken over.
    assert MEMBER_LEVEL <= sum(tile.probability for tile in chosen) <= 1 + 1e-9


def test_a_small_error_circle_is_one_pointing_at_its_centre():
    assert pointing(123.4, -56.7, 0.4, fov=1.0) == Tile(123.4, -56.7, 1.0)
    with pytest.raises(ValueError, match="does not fit"):
        pointing(123.4, -56.7, 0.6, fov=1.0)


# ------------------------------------------------------------------ real LVK maps
@pytest.fixture(scope="module")
def bayestar():
    return Skymap.read(alert_file("MS220722v_bayestar.multiorder.fits"))


def test_a_real_multi_order_map_reads_with_int64_uniq_and_sums_to_one(bayestar):
    assert bayestar.uniq.dtype == np.int64
    assert bayestar.probability.sum() == pytest.approx(1, abs=1e-6)
    assert bayestar.max_nside == 512 and bayestar.has_distance
    assert bayestar.header["OBJECT"] == "M252714"


def test_a_real_map_has_plausible_credible_areas_at_every_nside(bayestar):
    native = {level: bayestar.credible_area(level) for level in (0.5, 0.9)}
    assert 150 < native[0.5] < 400 and 1000 < native[0.9] < 1500     # 258 and 1262 deg²
    for nside in (128, 256, 512):
        for level, area in native.items():
            assert bayestar.credible_area(level, nside=nside) == pytest.approx(area, rel=0.02)
        assert bayestar.flat(nside).sum() == pytest.approx(1, abs=1e-6)


def test_a_real_map_gives_a_distance_near_its_header_mean_where_it_is_most_probable(bayestar):
    best = int(np.argmax(bayestar.probdensity))
    ra, dec = centres(int(bayestar.level[best]), bayestar.ipix[best])
    mean, std = bayestar.distance(float(ra), float(dec))
    assert bayestar.header["DISTMEAN"] / 2 < mean < 2 * bayestar.header["DISTMEAN"]
    assert 0 < std < mean
    assert bayestar.cone_probability(float(ra), float(dec), 5) > 0.05


def test_tiles_on_a_real_map_cover_increasing_probability(bayestar):
    chosen = tiles(bayestar, fov=5.0, max_tiles=20)
    assert len(chosen) == 20
    covered = np.cumsum([tile.probability for tile in chosen])
    assert np.all(np.diff(covered) > 0) and covered[-1] <= 1
    # Twenty 25 deg² fields cover about 500 deg², well inside the 90 % region of 1262 deg².
    assert 0.3 < covered[-1] < 0.9


def test_the_skymap_of_an_lvk_json_alert_is_read_from_its_bytes(tmp_path):
    alert = json.loads(alert_file("S1234/files/S1234-2-initial.json", FOLLOWUP_ADVOCATE)
                       .read_text())
    data = base64.b64decode(alert["event"]["skymap"])
    skymap = Skymap.read(data)
    assert skymap.uniq.dtype == np.int64
    assert skymap.probability.sum() == pytest.approx(1, abs=1e-6)
    (tmp_path / "skymap.fits").write_bytes(data)
    from_file, from_gzip = Skymap.read(tmp_path / "skymap.fits"), Skymap.read(gzip.compress(data))
    for other in (from_file, from_gzip):
        np.testing.assert_array_equal(other.uniq, skymap.uniq)
        assert other.credible_area(0.9) == skymap.credible_area(0.9)


def test_a_map_has_one_digest_whatever_file_encoding_or_row_order_it_came_in(real_map,
                                                                            tmp_path):
    """The digest tells the same map in an LVK JSON alert (bytes) and at its VOEvent's URL (a
    file, maybe gzipped, maybe written again), and tells a map changed in one pixel."""
    skymap = Skymap.read(real_map)
    assert len(skymap.digest) == 64 and int(skymap.digest, 16) >= 0
    (tmp_path / "map.fits").write_bytes(real_map)
    with fits.open(io.BytesIO(real_map)) as hdus:
        table = hdus[1]
        header = table.header
        shuffled = table.data[np.random.default_rng(1).permutation(len(table.data))]
        rewritten = fits.BinTableHDU(shuffled, header=header)
        changed = table.data.copy()
        # The densest pixel swaps its density with a pixel of its order: the total is the same.
        levels = uniq_to_level_ipix(np.asarray(changed["UNIQ"], dtype=np.int64))[0]
        density = changed["PROBDENSITY"]
        first = int(np.argmax(density))
        second = int(np.flatnonzero((levels == levels[first]) & (density < density[first]))[0])
        density[[first, second]] = density[[second, first]]
        swapped = fits.BinTableHDU(changed, header=header)
        plain = fits.BinTableHDU.from_columns([table.columns["UNIQ"],
                                               table.columns["PROBDENSITY"]])
    same = [Skymap.read(tmp_path / "map.fits"), Skymap.read(gzip.compress(real_map)),
            Skymap.read(to_bytes(rewritten))]
    assert [other.digest for other in same] == [skymap.digest] * 3
    different = [Skymap.read(to_bytes(swapped)), Skymap.read(to_bytes(plain))]
    assert len({skymap.digest} | {other.digest for other in different}) == 3


def test_a_flat_map_is_coarsened_on_arrival_outside_its_credible_region(bayestar, tmp_path):
    """A flat nside-512 map of the real MS220722v keeps its resolution where the probability
    is, and merges the rest: far fewer pixels, the same total and the same credible areas."""
    probability = bayestar.flat(512)
    flat = Skymap.read(write(tmp_path, "flat.fits", flat_hdu(probability, "NESTED")))
    assert flat.uniq.size < probability.size / 5
    assert flat.probability.sum() == pytest.approx(1, abs=1e-9)
    kept = flat.level == 9
    assert flat.probability[kept].sum() >= KEEP_LEVEL
    for level in (0.5, 0.9):
        assert flat.credible_area(level) == pytest.approx(bayestar.credible_area(level, nside=512),
                                                          rel=1e-6)
