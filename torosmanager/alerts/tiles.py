"""Fields of view that cover the most probability of a localisation.

:func:`tiles` covers a :class:`~torosmanager.alerts.skymap.Skymap` with a camera's square field,
greedily: among candidate centres on the map's high-probability pixels it picks the field that
encloses the most probability, removes what that field covers from the map, and repeats. A
probability covered by two fields therefore counts once, for the first; the tiles come out
ranked by the probability they add, and their probabilities add up to at most 1.

:func:`pointing` is the one field for a small error circle (a GRB, a neutrino): centred on it.

A field is a square of side ``fov`` degrees aligned with RA and Dec, in the tangent plane at
its centre (the gnomonic projection); a pixel is in the field when its centre is.

Examples
--------
>>> best = tiles(skymap, fov=1.5, max_tiles=10)                # doctest: +SKIP
>>> best[0].ra, best[0].dec, best[0].probability               # doctest: +SKIP
(98.4, -27.4, 0.012)
"""

import math
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy_healpix import healpix_to_lonlat, level_to_nside
from scipy.spatial import cKDTree

from ..night import unit_vectors
from .skymap import credible_region, order_for_resolution

#: Probability pixels across a field's side (the finer, the closer a field's edge is followed).
PIXELS_PER_FIELD_SIDE = 6
#: Candidate centres across a field's side (their spacing is the field's side over this).
CANDIDATES_PER_FIELD_SIDE = 2
#: Candidate centres lie in this credible region of the map, whatever ``Alerts → Credible
#: Level``: fields are chosen for the probability they enclose, and one centred just outside a
#: smaller region may enclose more of it than any centred inside (a 0.5 region would also leave
#: few centres to choose from).
CANDIDATE_LEVEL = 0.99
#: At most this many candidate centres, the most probable (bounds the time taken).
MAX_CANDIDATES = 3000
#: A field's probability is summed over the pixels of this credible region of the map (the rest
#: holds at most 0.1 % of the probability, spread thin).
MEMBER_LEVEL = 0.999
#: The finest order of the probability pixels (nside 1024, 3.4′): fields smaller than about
#: 0.35° are tiled with coarser pixels than :data:`PIXELS_PER_FIELD_SIDE` asks.
MAX_TILING_ORDER = 10


@dataclass(frozen=True)
class Tile:
    """A field of view to observe.

    Attributes
    ----------
    ra, dec : float
        Centre, degrees (ICRS).
    probability : float
        The probability this field adds: what it encloses, less what earlier tiles cover.
    """

    ra: float
    dec: float
    probability: float


def tiles(skymap, fov, max_tiles, observed=()):
    """The fields of view covering the most probability, best first (greedy).

    Parameters
    ----------
    skymap : Skymap
        The localisation.
    fov : float
        The side of the camera's square field, degrees.
    max_tiles : int
        At most this many tiles; fewer when the candidates cover all the probability.
    observed : sequence of (float, float)
        Centres (RA, Dec, degrees) of fields of the same side observed already: the
        probability they enclose counts as covered before the first tile is chosen.

    Returns
    -------
    list of Tile
        Ranked by the probability each adds (non-increasing); no probability counted twice,
        none of the *observed* fields' counted at all.
    """
    if not fov > 0 or max_tiles < 1:
        raise ValueError(f"fov {fov}° and max_tiles {max_tiles}: both must be positive")
    order = _tiling_order(fov)
    remaining = skymap.flat(int(level_to_nside(order))).copy()
    remaining[_union(observed, fov, order, remaining)] = 0.0
    ra, dec = candidate_centres(skymap, fov, order)
    members, starts = _field_members(ra, dec, fov, order, remaining)
    candidate = np.repeat(np.arange(ra.size), np.diff(starts))
    chosen = []
    while len(chosen) < max_tiles:
        enclosed = np.bincount(candidate, weights=remaining[members], minlength=ra.size)
        best = int(np.argmax(enclosed))
        if enclosed[best] <= 0:
            break
        chosen.append(Tile(float(ra[best]), float(dec[best]), float(enclosed[best])))
        remaining[members[starts[best]:starts[best + 1]]] = 0.0
    return chosen


def enclosed(skymap, centres, fov):
    """The probability of *skymap* in the union of the fields of side *fov* centred on
    *centres* ((RA, Dec) degrees), each pixel counted once, as :func:`tiles` counts it."""
    order = _tiling_order(fov)
    probability = skymap.flat(int(level_to_nside(order)))
    return float(probability[_union(centres, fov, order, probability)].sum())


def pointing(ra, dec, radius, fov):
    """The single field for an error circle smaller than the field: centred on the circle.

    Parameters
    ----------
    ra, dec, radius : float
        The error circle's centre and radius, degrees.
    fov : float
        The side of the camera's square field, degrees.

    Returns
    -------
    Tile
        Centred on the circle, with probability 1 (the whole circle is in the field).

    Raises
    ------
    ValueError
        The circle does not fit in the field (radius more than half its side): tile a skymap.
    """
    if not 0 <= radius <= fov / 2:
        raise ValueError(f"an error circle of radius {radius}° does not fit in a {fov}° field "
                         f"(at most {fov / 2}°): tile a skymap instead")
    return Tile(float(ra), float(dec), 1.0)


def candidate_centres(skymap, fov, finest):
    """Centres of the pixels, :data:`CANDIDATES_PER_FIELD_SIDE` across a field, in the map's
    :data:`CANDIDATE_LEVEL` credible region (at most :data:`MAX_CANDIDATES`, most probable
    first).

    Parameters
    ----------
    skymap : Skymap
    fov : float
        Field side, degrees.
    finest : int
        The candidates' pixels are no finer than this order.

    Returns
    -------
    (ndarray, ndarray)
        RA and Dec, degrees.
    """
    order = min(finest, order_for_resolution(fov / CANDIDATES_PER_FIELD_SIDE))
    nside = int(level_to_nside(order))
    probability = skymap.flat(nside)
    ranked = credible_region(probability, CANDIDATE_LEVEL)[:MAX_CANDIDATES]
    lon, lat = healpix_to_lonlat(ranked, nside, order="nested")
    return lon.to_value(u.deg), lat.to_value(u.deg)


def in_field(ra0, dec0, ra, dec, fov):
    """Whether directions fall in the square field of side *fov* centred on (ra0, dec0).

    Parameters
    ----------
    ra0, dec0 : float or array of float
        The field's centre (or each direction's field's centre), degrees.
    ra, dec : array of float
        Directions, degrees.
    fov : float
        The field's side, degrees.

    Returns
    -------
    ndarray of bool
    """
    xi, eta, cos_c = _gnomonic(ra0, dec0, ra, dec)
    half = math.tan(math.radians(fov / 2))
    return (cos_c > 0) & (np.abs(xi) <= half) & (np.abs(eta) <= half)


def _tiling_order(fov):
    """The order of the probability pixels fields of side *fov* are tiled with."""
    return min(MAX_TILING_ORDER, order_for_resolution(fov / PIXELS_PER_FIELD_SIDE))


def _union(centres, fov, order, probability):
    """The NESTED pixels of *order* in any of the fields centred on *centres*, once each."""
    if not len(centres):
        return np.zeros(0, dtype=np.int64)
    ra, dec = np.asarray(centres, dtype=float).T
    return np.unique(_field_members(ra, dec, fov, order, probability)[0])


def _gnomonic(ra0, dec0, ra, dec):
    """Tangent-plane coordinates (ξ towards +RA, η towards +Dec) about (ra0, dec0), and the
    cosine of the distance from it (centres and directions broadcast)."""
    ra0, dec0, ra, dec = (np.radians(np.asarray(value, dtype=float))
                          for value in (ra0, dec0, ra, dec))
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.cos(dec) * np.sin(ra - ra0) / cos_c
        eta = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cos_c
    return xi, eta, cos_c


def _field_members(ra, dec, fov, order, probability):
    """The NESTED pixels of *order* in each candidate's field, concatenated, and where each
    candidate's run starts (``starts[i]:starts[i + 1]``).

    Only the pixels of the map's :data:`MEMBER_LEVEL` credible region are considered: the others
    hold at most 1 − MEMBER_LEVEL of the probability between them. Their neighbours within a
    field's reach are found at once with a k-d tree of unit vectors (chord distances), then kept
    when in the square field.
    """
    nside = int(level_to_nside(order))
    pixels = np.sort(credible_region(probability, MEMBER_LEVEL))
    lon, lat = healpix_to_lonlat(pixels, nside, order="nested")
    pixel_ra, pixel_dec = lon.to_value(u.deg), lat.to_value(u.deg)
    reach = math.atan(math.sqrt(2) * math.tan(math.radians(fov / 2)))  # the field's corner
    tree = cKDTree(unit_vectors(pixel_ra, pixel_dec).T)
    near = tree.query_ball_point(unit_vectors(ra, dec).T, 2 * math.sin(reach / 2))
    counts = np.fromiter((len(found) for found in near), dtype=np.int64, count=len(near))
    index = (np.concatenate([np.asarray(found, dtype=np.int64) for found in near])
             if counts.sum() else np.zeros(0, np.int64))
    owner = np.repeat(np.arange(len(near)), counts)
    inside = in_field(ra[owner], dec[owner], pixel_ra[index], pixel_dec[index], fov)
    owner, members = owner[inside], pixels[index[inside]]
    starts = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=len(near)))))
    return members.astype(np.int64), starts.astype(np.int64)
