"""Galaxies ranked by a 3-D localisation: catalogues whose answers are known.

Two maps. A synthetic one holds an exact 3-D Gaussian blob: a source at distance D in a
direction, spread s in every direction of space, is in the Singer et al. (2016) ansatz exactly —
along a direction at angle θ from the centre, |x - x0|² = (r - D cos θ)² + D² sin² θ, so
DISTMU = D cos θ, DISTSIGMA = s and the rest is the probability per steradian. Its 90 % credible
volume is a ball of radius s·q with q² the 90 % quantile of χ² with 3 degrees of freedom, and the
threshold density is the peak's times exp(-q²/2). The real one is a BAYESTAR multi-order map
(gwcelery's test data) with distance layers, where a brute-force sum over pixels × radial shells
(ligo.skymap's method) gives the threshold independently.

Densities expected here are computed as the specification states them, dP/dV = PROBDENSITY ×
DISTNORM × N(r; DISTMU, DISTSIGMA), with each direction's pixel found level by level from the
map's own UNIQ ids (not the module's lookup).
"""

import logging
import math
from datetime import datetime, timezone

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table
from astropy_healpix import healpix_to_lonlat, level_to_nside, lonlat_to_healpix

from alert_fixtures import alert_file
from torosmanager.alerts.galaxies import (CatalogError, GalaxyCatalog, credible_volume,
                                          volume_density)
from torosmanager.alerts.event import Alert
from torosmanager.alerts.skymap import Skymap
from torosmanager.alerts.targets import candidates, observed_weight
from torosmanager.alerts.tiles import in_field

#: The synthetic source: direction (degrees), distance and spread (Mpc).
RA0, DEC0, D0, S0 = 150.0, -30.0, 100.0, 8.0
#: The camera's field, degrees: the fields observed in the tests of an update.
FIELD = 2.0
#: The synthetic map's order (nside 256, 0.23° pixels: 0.4 Mpc at D0, a twentieth of S0).
ORDER = 8
#: The synthetic map covers this cone (degrees); beyond it the blob's density is below e^-32 of
#: its peak, and the map has no pixels (the lookup must say "outside").
CONE = 40.0
#: Catalogue columns under other names than the configuration's defaults, as GLADE+ names them.
RENAMED = {"Name": "GWGC", "RA": "RAJ2000", "Dec": "DEJ2000", "Distance": "d_L",
           "B Magnitude": "m_B", "K Magnitude": "m_K"}
#: Rows in the large catalogue.
MILLION = 10 ** 6


# ----------------------------------------------------------------------------------- helpers
def chi3_quantile(level):
    """q with P(|X| ≤ q) = level for a 3-D standard normal X (bisection on its CDF)."""
    low, high = 0.0, 10.0
    for _ in range(100):
        q = (low + high) / 2
        cdf = math.erf(q / math.sqrt(2)) - math.sqrt(2 / math.pi) * q * math.exp(-q * q / 2)
        low, high = (q, high) if cdf < level else (low, q)
    return q


def angle_from(ra0, dec0, ra, dec):
    """Angle between directions, radians (the cosine formula; fine away from 0)."""
    ra0, dec0, ra, dec = (np.radians(value) for value in (ra0, dec0, ra, dec))
    cosine = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    return np.arccos(np.clip(cosine, -1, 1))


def pixel_centres(skymap, index):
    """RA and Dec of the centres of map pixels (indices), degrees."""
    ra, dec = np.empty(len(index)), np.empty(len(index))
    for position, one in enumerate(index):
        lon, lat = healpix_to_lonlat(skymap.ipix[one], level_to_nside(skymap.level[one]),
                                     order="nested")
        ra[position], dec[position] = lon.to_value(u.deg), lat.to_value(u.deg)
    return ra, dec


def map_index(skymap, ra, dec):
    """Index of the map pixel holding each direction (-1: none), matching UNIQ level by level."""
    finest = int(skymap.level.max())
    pixel = lonlat_to_healpix(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg,
                              level_to_nside(finest), order="nested").astype(np.int64)
    index = np.full(pixel.size, -1)
    for level in np.unique(skymap.level):
        uniq = 4 * 4 ** int(level) + (pixel >> 2 * (finest - int(level)))
        position = np.minimum(np.searchsorted(skymap.uniq, uniq), skymap.uniq.size - 1)
        found = skymap.uniq[position] == uniq
        index[found] = position[found]
    return index


def expected_density(skymap, ra, dec, distance):
    """dP/dV as the specification states it; 0 outside the map or without distance."""
    index = map_index(skymap, ra, dec)
    mu, sigma, norm = (layer[index] for layer in skymap.distance_layers)
    normal = np.exp(-0.5 * ((distance - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    density = skymap.probdensity[index] * norm * normal
    return np.where((index >= 0) & np.isfinite(density), density, 0.0)


def peak_density(skymap):
    """Each pixel's largest dP/dV (at DISTMU); 0 where it has no distance information."""
    mu, sigma, norm = skymap.distance_layers
    peak = skymap.probdensity * norm / (sigma * math.sqrt(2 * math.pi))
    return np.where(np.isfinite(mu) & np.isfinite(peak), peak, 0.0)


def same_ranking(ranked, expected):
    """The same galaxies in the same order, with the same scores but for rounding."""
    return ([(galaxy.name, galaxy.ra, galaxy.dec, galaxy.distance) for galaxy in ranked]
            == [(galaxy.name, galaxy.ra, galaxy.dec, galaxy.distance) for galaxy in expected]
            and np.allclose([galaxy.score for galaxy in ranked],
                            [galaxy.score for galaxy in expected], rtol=1e-12, atol=0))


def settings(path, weight="none", **columns):
    return {"File": str(path), "Luminosity Weight": weight, "Columns": {**RENAMED, **columns}}


def write_table(path, names, ra, dec, distance, m_b=None, m_k=None):
    """A catalogue file in GLADE+'s column names; the format from the suffix."""
    count = len(names)
    table = Table({RENAMED["Name"]: names, RENAMED["RA"]: ra, RENAMED["Dec"]: dec,
                   RENAMED["Distance"]: distance,
                   RENAMED["B Magnitude"]: np.full(count, np.nan) if m_b is None else m_b,
                   RENAMED["K Magnitude"]: np.full(count, np.nan) if m_k is None else m_k})
    # astropy names VOTable files .vot or .xml but recognises only the content when reading.
    table.write(path, overwrite=True, format="votable" if path.suffix == ".xml" else None)
    return path


# ----------------------------------------------------------------------------------- the maps
@pytest.fixture(scope="module")
def blob():
    """The exact 3-D Gaussian as a map of order ORDER within CONE of its centre."""
    ipix = np.arange(12 * 4 ** ORDER)
    lon, lat = healpix_to_lonlat(ipix, level_to_nside(ORDER), order="nested")
    theta = angle_from(RA0, DEC0, lon.to_value(u.deg), lat.to_value(u.deg))
    near = theta < math.radians(CONE)
    theta = theta[near]
    mu = D0 * np.cos(theta)
    # ∫ r² N(r; μ, s) dr over r > 0 is μ² + s² when μ ≫ s (μ/s > 9 in the cone).
    norm = 1 / (mu ** 2 + S0 ** 2)
    # dP/dV = ρ N N(r; μ, s) must equal exp(-D² sin²θ / 2s²) exp(-(r - μ)² / 2s²) / (2π)^1.5 s³.
    density = np.exp(-(D0 * np.sin(theta)) ** 2 / (2 * S0 ** 2)) / (2 * math.pi * S0 ** 2 * norm)
    uniq = 4 * 4 ** ORDER + ipix[near]
    return Skymap(uniq, density, (mu, np.full(mu.size, S0), norm))


@pytest.fixture(scope="module")
def bayestar():
    skymap = Skymap.read(alert_file("MS220722v_bayestar.multiorder.fits"))
    assert skymap.has_distance
    return skymap


def blob_peak():
    return (2 * math.pi) ** -1.5 / S0 ** 3


# ----------------------------------------------------------------------------------- the volume
@pytest.mark.parametrize("level", [0.5, 0.9])
def test_the_credible_volume_of_a_3d_gaussian_is_the_ball_of_the_chi3_quantile(blob, level):
    q = chi3_quantile(level)
    volume = credible_volume(blob, level)
    # The map's pixels (0.4 Mpc across at D0, a twentieth of S0) blur the blob by ~1e-4.
    assert volume.threshold == pytest.approx(blob_peak() * math.exp(-q * q / 2), rel=0.002)
    assert volume.volume == pytest.approx(4 / 3 * math.pi * (q * S0) ** 3, rel=0.002)


def test_points_drawn_from_the_gaussian_fall_in_its_90_percent_volume_90_percent_of_the_time(
        blob):
    rng = np.random.default_rng(11)
    centre = D0 * np.array([math.cos(math.radians(DEC0)) * math.cos(math.radians(RA0)),
                            math.cos(math.radians(DEC0)) * math.sin(math.radians(RA0)),
                            math.sin(math.radians(DEC0))])
    x = centre + S0 * rng.standard_normal((200_000, 3))
    r = np.linalg.norm(x, axis=1)
    ra, dec = np.degrees(np.arctan2(x[:, 1], x[:, 0])) % 360, np.degrees(np.arcsin(x[:, 2] / r))
    inside = volume_density(blob, ra, dec, r) >= credible_volume(blob, 0.9).threshold
    # 200 000 draws: the fraction's standard deviation is 0.0007.
    assert inside.mean() == pytest.approx(0.9, abs=0.005)


def test_the_real_maps_threshold_agrees_with_a_sum_over_pixels_and_radial_shells(bayestar):
    """ligo.skymap's method, brute force: each pixel's distance cut into shells (midpoint rule)
    where r² N(r; μ, σ) is not negligible, the voxels sorted by density and summed until they
    hold the level."""
    mu, sigma, _ = bayestar.distance_layers
    valid = np.flatnonzero(peak_density(bayestar) > 0)
    mu, sigma = mu[valid, None], sigma[valid, None]
    # Within 8σ of μ; where μ < 0, r² N(r) ∝ r² exp(-r |μ| / σ²) falls within 40 σ² / |μ|.
    near = np.maximum(mu - 8 * sigma, 0.0)
    far = np.where(mu > 0, mu + 8 * sigma, np.minimum(8 * sigma, 40 * sigma ** 2 / np.abs(mu)))
    shells = 320
    dr = (far - near) / shells
    r = near + dr * (np.arange(shells) + 0.5)
    density = peak_density(bayestar)[valid, None] * np.exp(-0.5 * ((r - mu) / sigma) ** 2)
    area = (bayestar.probability / bayestar.probdensity)[valid, None]
    probability = (density * area * r ** 2 * dr).ravel()
    order = np.argsort(density.ravel())[::-1]
    cumulative = np.cumsum(probability[order])
    assert cumulative[-1] == pytest.approx(bayestar.probability[valid].sum(), rel=1e-4)
    for level in (0.5, 0.9):
        brute = density.ravel()[order][np.searchsorted(cumulative, level * cumulative[-1])]
        # Shells of σ/20 or finer resolve the threshold to a few 1e-5 (the two agree to 2e-5).
        assert credible_volume(bayestar, level).threshold == pytest.approx(brute, rel=2e-4)


def test_the_density_at_a_place_is_probdensity_times_distnorm_times_the_normal(bayestar):
    rng = np.random.default_rng(5)
    ra, dec = rng.uniform(0, 360, 20_000), np.degrees(np.arcsin(rng.uniform(-1, 1, 20_000)))
    distance = rng.uniform(1, 400, ra.size)
    expected = expected_density(bayestar, ra, dec, distance)
    assert np.count_nonzero(expected) > ra.size / 2
    np.testing.assert_allclose(volume_density(bayestar, ra, dec, distance), expected,
                               rtol=1e-12, atol=0)


def test_outside_a_partial_map_the_density_is_zero(blob):
    assert volume_density(blob, RA0 + 180, -DEC0, D0) == 0.0
    assert volume_density(blob, RA0, DEC0, D0) == pytest.approx(blob_peak(), rel=1e-3)


def test_a_volume_needs_distance_layers_and_a_level_between_0_and_1(bayestar):
    two_d = Skymap(bayestar.uniq, bayestar.probdensity)
    with pytest.raises(ValueError, match="no distance layers"):
        credible_volume(two_d, 0.9)
    with pytest.raises(ValueError, match="no distance layers"):
        GalaxyCatalog(["a"], [1.0], [2.0], [50.0]).rank(two_d)
    for level in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            credible_volume(bayestar, level)
    assert credible_volume(bayestar, 1.0).threshold == 0.0


# ----------------------------------------------------------------------------------- ranking
def test_on_a_real_map_galaxies_at_the_peaks_rank_by_density_and_the_rest_are_dropped(bayestar):
    peak = peak_density(bayestar)
    mu, sigma, _ = bayestar.distance_layers
    top = np.argsort(bayestar.probdensity)[::-1][:5]
    # The least probable pixels with a distance ansatz peaking at a positive distance.
    candidates = np.flatnonzero((peak > 0) & (mu > 0))
    bottom = candidates[np.argsort(bayestar.probdensity[candidates])[:5]]
    no_distance = np.flatnonzero(~np.isfinite(mu))[:3]
    assert no_distance.size == 3                       # the map has pixels without distance
    names, ra, dec, distance = [], [], [], []
    for label, pixels, how_far in (("peak", top, mu[top]),
                                   ("5 sigma", top, mu[top] + 5 * sigma[top]),
                                   ("low", bottom, mu[bottom]),
                                   ("no distance", no_distance, np.full(3, 100.0))):
        pixel_ra, pixel_dec = pixel_centres(bayestar, pixels)
        names += [f"{label} {one}" for one in pixels]
        ra += list(pixel_ra)
        dec += list(pixel_dec)
        distance += list(how_far)
    ranked = GalaxyCatalog(names, ra, dec, distance).rank(bayestar, 0.9)
    by_peak = top[np.argsort(peak[top])[::-1]]
    assert [galaxy.name for galaxy in ranked] == [f"peak {one}" for one in by_peak]
    assert sum(galaxy.score for galaxy in ranked) == pytest.approx(1, abs=1e-12)
    expected = peak[by_peak] / peak[by_peak].sum()
    np.testing.assert_allclose([galaxy.score for galaxy in ranked], expected, rtol=1e-9)


def test_the_galaxies_kept_are_those_above_the_threshold_best_first(blob):
    rng = np.random.default_rng(3)
    count = 400
    names = [f"g{i}" for i in range(count)]
    ra, dec = RA0 + rng.normal(0, 4, count), DEC0 + rng.normal(0, 4, count)
    distance = rng.normal(D0, 2 * S0, count)
    catalog = GalaxyCatalog(names, ra, dec, distance)
    everything = catalog.rank(blob, 0.9)
    density = expected_density(blob, ra, dec, distance)
    inside = density >= credible_volume(blob, 0.9).threshold
    assert 10 < inside.sum() < count - 10
    assert {galaxy.name for galaxy in everything} == set(np.asarray(names)[inside])
    scores = [galaxy.score for galaxy in everything]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1, abs=1e-12)
    assert catalog.rank(blob, 0.9, max_targets=7) == everything[:7]
    assert len(catalog.rank(blob, 0.5)) < len(everything)
    with pytest.raises(ValueError, match="max_targets"):
        catalog.rank(blob, 0.9, max_targets=0)


def test_the_galaxies_in_fields_observed_already_are_left_out_the_others_keep_their_scores(
        blob):
    """An update in the middle of the night: what the fields observed tonight hold is not
    offered again, and the scores of the rest stay shares of the whole volume."""
    rng = np.random.default_rng(3)
    count = 400
    ra, dec = RA0 + rng.normal(0, 4, count), DEC0 + rng.normal(0, 4, count)
    catalog = GalaxyCatalog([f"g{i}" for i in range(count)], ra, dec,
                            rng.normal(D0, 2 * S0, count))
    everything = catalog.rank(blob, 0.9)
    field = (everything[0].ra, everything[0].dec)
    inside = in_field(*field, [galaxy.ra for galaxy in everything],
                      [galaxy.dec for galaxy in everything], FIELD)
    assert 2 <= inside.sum() <= len(everything) - 10
    left = catalog.rank(blob, 0.9, exclude=lambda ra, dec: in_field(*field, ra, dec, FIELD))
    assert left == [galaxy for galaxy, seen in zip(everything, inside) if not seen]
    # The share of the galaxy score the field holds.
    assert catalog.share(blob, 0.9, lambda ra, dec: in_field(*field, ra, dec, FIELD)) == \
        pytest.approx(sum(galaxy.score for galaxy, seen in zip(everything, inside) if seen),
                      rel=1e-12)
    # The alerts daemon's way in: the centres of the fields observed.
    settings = {"Field of View": FIELD, "Max Targets": 20, "Credible Level": 0.9}
    alert = Alert("S1", "gw", "UPDATE", 1, datetime(2026, 11, 10, tzinfo=timezone.utc), "test")
    kind, offered = candidates(alert, blob, settings, catalog, observed=[field])
    assert kind == "galaxies"
    assert observed_weight(kind, blob, settings, catalog, [field]) == pytest.approx(
        sum(galaxy.score for galaxy, seen in zip(everything, inside) if seen), rel=1e-12)
    assert [candidate.name for candidate in offered] == [galaxy.name for galaxy in left[:100]]
    # Every galaxy of the volume observed: nothing more to offer (not the map tiled instead).
    everywhere = [(galaxy.ra, galaxy.dec) for galaxy in everything]
    assert candidates(alert, blob, settings, catalog, observed=everywhere) == ("galaxies", [])


@pytest.mark.parametrize("unknown", ["all", "peak"])
def test_a_map_without_distance_where_its_probability_is_gets_tiled(blob, unknown):
    """LVK maps give DISTMU = inf where they know no distance: when the pixels with a distance
    hold less than the credible level, the galaxies would be ranked in the map's tail (or,
    with none, not at all); the map is tiled instead."""
    mu, sigma, norm = blob.distance_layers
    lost = np.ones(mu.size, dtype=bool) if unknown == "all" else \
        blob.probdensity >= np.quantile(blob.probdensity, 0.8)
    partial = Skymap(blob.uniq, blob.probdensity, (np.where(lost, np.inf, mu), sigma, norm))
    assert partial.probability[partial.distance_known].sum() < 0.9
    # One galaxy at the peak, one in the densest pixel that has a distance.
    tail = int(np.argmax(np.where(lost, 0.0, blob.probdensity))) if unknown == "peak" else 0
    ra, dec = pixel_centres(blob, [tail])
    catalog = GalaxyCatalog(["at the peak", "in the tail"], [RA0, float(ra[0])],
                            [DEC0, float(dec[0])], [D0, float(mu[tail])])
    settings = {"Field of View": FIELD, "Max Targets": 5, "Credible Level": 0.9}
    alert = Alert("S1", "gw", "INITIAL", 1, datetime(2026, 11, 10, tzinfo=timezone.utc), "test")
    kind, offered = candidates(alert, partial, settings, catalog)
    assert kind == "fields" and offered
    assert angle_from(RA0, DEC0, offered[0].ra, offered[0].dec) < math.radians(FIELD)


def test_an_empty_volume_gives_no_galaxies(blob):
    catalog = GalaxyCatalog(["far side", "too far"], [RA0 + 180, RA0], [-DEC0, DEC0],
                            [D0, 10 * D0])
    assert catalog.rank(blob) == []


# ----------------------------------------------------------------------------------- luminosity
def test_the_brighter_of_two_galaxies_at_the_same_place_ranks_first_when_weighted(tmp_path,
                                                                                   blob):
    path = write_table(tmp_path / "two.csv", ["faint", "bright"], [RA0, RA0], [DEC0, DEC0],
                       [D0, D0], m_b=[15.0, 12.0])
    unweighted = GalaxyCatalog.load(settings(path, "none")).rank(blob)
    assert [galaxy.score for galaxy in unweighted] == pytest.approx([0.5, 0.5])
    weighted = GalaxyCatalog.load(settings(path, "B")).rank(blob)
    assert [galaxy.name for galaxy in weighted] == ["bright", "faint"]
    # Three magnitudes brighter: 10^(0.4 × 3) times the luminosity.
    assert weighted[0].score / weighted[1].score == pytest.approx(10 ** 1.2, rel=1e-9)


def test_apparent_magnitudes_are_made_absolute_with_the_distance(tmp_path, blob):
    """Two galaxies as far in front of DISTMU as behind it (the same density), with the same
    apparent K: the farther is (d₂/d₁)² times as luminous."""
    mu = blob.distance_layers[0][map_index(blob, [RA0], [DEC0])[0]]
    near, far = mu - S0, mu + S0
    path = write_table(tmp_path / "depth.ecsv", ["near", "far"], [RA0, RA0], [DEC0, DEC0],
                       [near, far], m_k=[11.0, 11.0])
    ranked = GalaxyCatalog.load(settings(path, "K")).rank(blob)
    assert [galaxy.name for galaxy in ranked] == ["far", "near"]
    assert ranked[0].score / ranked[1].score == pytest.approx((far / near) ** 2, rel=1e-6)
    unweighted = GalaxyCatalog.load(settings(path, "none")).rank(blob)
    assert unweighted[0].score == pytest.approx(unweighted[1].score, rel=1e-6)


def test_a_galaxy_without_a_magnitude_weighs_the_median_luminosity(tmp_path, blob):
    path = write_table(tmp_path / "three.fits", ["m10", "m12", "unknown", "m14"],
                       [RA0] * 4, [DEC0] * 4, [D0] * 4, m_b=[10.0, 12.0, np.nan, 14.0])
    ranked = GalaxyCatalog.load(settings(path, "B")).rank(blob)
    assert [galaxy.name for galaxy in ranked] == ["m10", "m12", "unknown", "m14"]
    scores = {galaxy.name: galaxy.score for galaxy in ranked}
    assert scores["unknown"] == pytest.approx(scores["m12"], rel=1e-9)


def test_a_galaxy_without_a_name_or_with_a_tab_in_it_gets_one_an_order_can_carry(tmp_path,
                                                                                  blob):
    # An order's Object Name is one line of text: the scheduler would refuse these.
    path = write_table(tmp_path / "names.ecsv", ["NGC\t4993", "  "], [RA0, RA0 + 0.5],
                       [DEC0] * 2, [D0] * 2)
    names = {galaxy.name for galaxy in GalaxyCatalog.load(settings(path, "none")).rank(blob)}
    assert names == {"NGC 4993", f"galaxy at RA {RA0 + 0.5:.4f}° Dec {DEC0:+.4f}°"}


def test_a_luminosity_weight_needs_its_magnitude_column(tmp_path):
    path = write_table(tmp_path / "some.csv", ["a"], [1.0], [2.0], [50.0])
    with pytest.raises(CatalogError, match="B Magnitude"):
        GalaxyCatalog.load(settings(path, "B", **{"B Magnitude": None}))
    with pytest.raises(CatalogError, match="no galaxy has a magnitude"):
        GalaxyCatalog.load(settings(path, "K"))
    with pytest.raises(CatalogError, match="Luminosity Weight 'V'"):
        GalaxyCatalog.load(settings(path, "V"))


# ----------------------------------------------------------------------------------- files
@pytest.mark.parametrize("suffix", [".csv", ".ecsv", ".fits", ".xml"])
def test_every_table_format_reads_the_same_catalogue_under_renamed_columns(tmp_path, blob,
                                                                           suffix, caplog):
    rng = np.random.default_rng(8)
    count = 300
    ra, dec = RA0 + rng.normal(0, 4, count), DEC0 + rng.normal(0, 4, count)
    distance = rng.normal(D0, 2 * S0, count)
    distance[:3] = np.nan                               # three rows without a distance
    m_b = rng.uniform(10, 16, count)
    names = [f"galaxy {i}" for i in range(count)]
    path = write_table(tmp_path / f"catalogue{suffix}", names, ra, dec, distance, m_b=m_b)
    with caplog.at_level(logging.WARNING, logger="torosmanager.alerts.galaxies"):
        catalog = GalaxyCatalog.load(settings(path, "B"))
    assert len(catalog) == count - 3
    assert "3 of 300 rows dropped" in caplog.text
    reference = GalaxyCatalog(names[3:], ra[3:], dec[3:], distance[3:],
                              10 ** (-0.4 * (m_b[3:] - 5 * np.log10(distance[3:] * 1e5))))
    ranked, expected = catalog.rank(blob), reference.rank(blob)
    assert len(ranked) > 10
    assert same_ranking(ranked, expected)


@pytest.mark.parametrize("suffix", [".ecsv", ".fits"])
def test_columns_with_units_are_converted_to_degrees_and_mpc(tmp_path, blob, suffix):
    """A FITS TUNIT or an ECSV unit of kpc, or radians, was read as Mpc and degrees: no
    galaxy fell in the volume, and the map was tiled without a word."""
    rng = np.random.default_rng(9)
    count = 200
    ra, dec = RA0 + rng.normal(0, 4, count), DEC0 + rng.normal(0, 4, count)
    distance = rng.normal(D0, 2 * S0, count)
    names = [f"galaxy {i}" for i in range(count)]
    table = Table({"GWGC": names, "RAJ2000": np.radians(ra) * u.rad,
                   "DEJ2000": np.radians(dec) * u.rad, "d_L": distance * 1000 * u.kpc})
    path = tmp_path / f"units{suffix}"
    table.write(path)
    ranked = GalaxyCatalog.load(settings(path)).rank(blob)
    expected = GalaxyCatalog(names, ra, dec, distance).rank(blob)
    assert len(ranked) > 10
    assert [galaxy.name for galaxy in ranked] == [galaxy.name for galaxy in expected]
    # (radians to degrees and back: the last bits differ)
    assert np.allclose([(galaxy.ra, galaxy.dec, galaxy.distance, galaxy.score)
                        for galaxy in ranked],
                       [(galaxy.ra, galaxy.dec, galaxy.distance, galaxy.score)
                        for galaxy in expected], rtol=1e-9, atol=0)
    table["d_L"] = distance * u.deg
    table.write(path, overwrite=True)
    with pytest.raises(CatalogError, match=r"column 'd_L' is in deg, which is no Mpc"):
        GalaxyCatalog.load(settings(path))


@pytest.mark.parametrize("suffix", [".csv", ".ecsv", ".fits"])
def test_a_missing_column_is_named_with_the_columns_the_file_has(tmp_path, suffix):
    path = write_table(tmp_path / f"catalogue{suffix}", ["a"], [1.0], [2.0], [50.0])
    with pytest.raises(CatalogError) as raised:
        GalaxyCatalog.load(settings(path, Dec="DECJ2000"))
    message = str(raised.value)
    assert isinstance(raised.value, ValueError)
    for expected in (path.name, "'DECJ2000'", "Columns → Dec", "RAJ2000", "DEJ2000", "d_L"):
        assert expected in message


def test_an_empty_file_is_said_to_have_no_columns(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(CatalogError, match=r"no column 'GWGC' \(Columns → Name\); the file has "
                                           r"no columns \(is it empty\?\)"):
        GalaxyCatalog.load(settings(path))


def test_no_file_configured_means_no_catalogue(tmp_path):
    assert GalaxyCatalog.load({"File": None, "Luminosity Weight": "none", "Columns": {}}) is None
    with pytest.raises(CatalogError, match="missing.csv"):
        GalaxyCatalog.load(settings(tmp_path / "missing.csv"))


def test_a_text_column_where_numbers_are_expected_is_refused(tmp_path):
    path = tmp_path / "sexagesimal.csv"
    path.write_text("GWGC,RAJ2000,DEJ2000,d_L\nNGC 4993,13:09:47.7,-23:23:02,40.0\n")
    with pytest.raises(CatalogError, match="'RAJ2000' is not numeric"):
        GalaxyCatalog.load(settings(path, **{"B Magnitude": None, "K Magnitude": None}))


# ----------------------------------------------------------------------------------- a million
@pytest.fixture(scope="module")
def million(tmp_path_factory):
    """10⁶ galaxies on a random sky within 400 Mpc, in a FITS file."""
    rng = np.random.default_rng(2024)
    ra, dec = rng.uniform(0, 360, MILLION), np.degrees(np.arcsin(rng.uniform(-1, 1, MILLION)))
    distance = 400 * rng.uniform(0, 1, MILLION) ** (1 / 3)   # uniform in volume
    names = np.char.add("random ", np.arange(MILLION).astype(str))
    path = tmp_path_factory.mktemp("million") / "million.fits"
    write_table(path, names, ra, dec, distance, m_b=rng.uniform(12, 20, MILLION))
    return path


def test_a_million_galaxies_load_and_rank_as_the_specification_says(million, bayestar):
    catalog = GalaxyCatalog.load(settings(million, "none"))
    assert len(catalog) == MILLION
    ranked = catalog.rank(bayestar, 0.9)
    table = Table.read(million)
    density = expected_density(bayestar, np.asarray(table[RENAMED["RA"]]),
                               np.asarray(table[RENAMED["Dec"]]),
                               np.asarray(table[RENAMED["Distance"]]))
    threshold = credible_volume(bayestar, 0.9).threshold
    inside = np.flatnonzero(density >= threshold)
    assert 1000 < inside.size < MILLION / 10
    expected = inside[np.argsort(density[inside])[::-1]]
    names = np.asarray(table[RENAMED["Name"]]).astype(str)
    assert [galaxy.name for galaxy in ranked] == list(names[expected])
    np.testing.assert_allclose([galaxy.score for galaxy in ranked],
                               density[expected] / density[expected].sum(), rtol=1e-9)
    assert ranked[0].distance == pytest.approx(float(table[RENAMED["Distance"]][expected[0]]))
