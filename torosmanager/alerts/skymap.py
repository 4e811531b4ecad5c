"""A HEALPix localisation: where on the sky (and how far) a gravitational-wave source may be.

LVK alerts carry a *multi-order* map (``ORDERING = NUNIQ``: a ``UNIQ`` column of pixel ids of
mixed resolution and a ``PROBDENSITY`` column in sr⁻¹); older and other maps are *flat* (one
``NSIDE``, ``ORDERING`` RING or NESTED, a ``PROB`` column of probability per pixel). Both may
add the distance layers ``DISTMU``, ``DISTSIGMA``, ``DISTNORM`` (Singer et al. 2016, ApJS 226,
10: along each direction the distance posterior is ∝ r² N(r; DISTMU, DISTSIGMA)).

:class:`Skymap` reads either kind, from a file or from bytes (an LVK JSON alert holds the map
base64-encoded in ``event.skymap``), and keeps it as multi-order pixels: a flat map is a
multi-order map whose pixels all have the same order. Only ``astropy-healpix``, astropy and
numpy are used.

Examples
--------
>>> skymap = Skymap.read("bayestar.multiorder.fits")            # doctest: +SKIP
>>> skymap.credible_area(0.9)                                    # doctest: +SKIP
1234.5
>>> skymap.flat(64).sum()                                        # doctest: +SKIP
1.0
"""

import hashlib
import io
import logging
import math
import os
import zlib
from functools import cached_property
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy_healpix import (healpix_to_lonlat, level_to_nside, lonlat_to_healpix,
                             nside_to_level, nside_to_pixel_area,
                             uniq_to_level_ipix)
from astropy_healpix.core import ring_to_nested

from .intake import FITS_MAGIC, GZIP_MAGIC  # a gzipped map (bayestar.fits.gz)

log = logging.getLogger(__name__)

#: The distance layers of a map, in the order of the FITS columns.
DISTANCE_COLUMNS = ("DISTMU", "DISTSIGMA", "DISTNORM")
#: How far the probabilities in a file may add up from 1 before the map is refused.
TOTAL_TOLERANCE = 1e-3
#: The first bytes of a file that is not FITS, quoted in the message that refuses it.
FIRST_BYTES_SHOWN = 32
#: The finest order (nside 2**order) at which cones are integrated: nside 8192, 0.4′ pixels.
MAX_CONE_ORDER = 13
#: Pixels across a cone's radius when it is integrated (the map's own resolution if finer).
CONE_PIXELS_PER_RADIUS = 8
#: A pixel's farthest point from its centre, at most this many times its side (healpy's
#: max_pixrad is at most 0.83 times the side, at nside 1).
PIXEL_RADIUS_FACTOR = 1.0
#: The side of an order-0 (nside 1) pixel, degrees: sqrt(4π / 12) rad.
ORDER_0_RESOLUTION = math.degrees(math.sqrt(4 * math.pi / 12))
#: The smallest resolution :func:`order_for_resolution` is asked for, degrees (avoids 0).
MIN_RESOLUTION = 1e-6
#: A flat map keeps its resolution in this credible region; beyond it, pixels are merged
#: (:func:`coarsened`).
KEEP_LEVEL = 0.9999
#: HEALPix's deepest order (nside 2**29): its 12 × 4**29 nested indices fit a signed 64-bit
#: integer, order 30's would not.
MAX_ORDER = 29
#: zlib's window bits for the gzip format (16 + the largest window).
GZIP_WBITS = 16 + zlib.MAX_WBITS
#: The NUNIQ ids of pixels, ``4 * 4**order + index``: from order 0's first to order
#: :data:`MAX_ORDER`'s last (an id below 4 has no order; one from 2**62 on is of order 30).
UNIQ_RANGE = (4, 4 * 4 ** (MAX_ORDER + 1) - 1)
#: Pixel areas by order (0 to :data:`MAX_ORDER`), steradians.
PIXEL_AREAS_SR = 4 * math.pi / (12 * 4.0 ** np.arange(MAX_ORDER + 1))
#: HEALPix's mark of a pixel without a value (healpy.UNSEEN), and how near a value must be to
#: it to be that mark (a float32 column holds it as -1.6374999963e30; healpy allows 1e-5).
HEALPIX_UNSEEN, UNSEEN_TOLERANCE = -1.6375e30, 1e-5
#: The layout of a float64 (IEEE 754): 52 bits of mantissa below the exponent, biased by 1023.
FLOAT64_MANTISSA_BITS, FLOAT64_EXPONENT_BIAS = 52, 1023
#: Square degrees in a steradian.
DEG2_PER_SR = (180 / math.pi) ** 2
#: The column of a flat map that holds the probability per pixel (LVK's flat maps name it
#: PROB, Fermi GBM's PROBABILITY), the first found of these; a map with none is refused,
#: not read from whatever column comes first (a DISTMU would be read as probabilities).
FLAT_PROBABILITY_COLUMNS = ("PROB", "PROBABILITY")
#: The header card of the mean distance, Mpc, which ``Alerts → Max Distance`` is compared with.
DISTANCE_CARD = "DISTMEAN"


class Skymap:
    """A sky localisation as multi-order HEALPix pixels (NESTED), with optional distance layers.

    Build one with :meth:`read` (a path or the bytes of a FITS file); the constructor takes the
    pixels themselves.

    Parameters
    ----------
    uniq : array of int
        NUNIQ pixel ids, ``4 * nside**2 + nested index``.
    probdensity : array of float
        Probability per steradian in each pixel.
    distance : tuple of three arrays, optional
        ``DISTMU``, ``DISTSIGMA`` (Mpc), ``DISTNORM`` (Mpc⁻²) per pixel.
    header : astropy.io.fits.Header, optional
        The FITS header the map came with (``OBJECT``, ``DATE-OBS``, ``DISTMEAN``...).

    Attributes
    ----------
    uniq : ndarray of int64
        The pixels' NUNIQ ids, in increasing order.
    level, ipix : ndarray of int64
        Each pixel's order (nside = 2**level) and NESTED index at that order.
    probdensity, probability : ndarray of float64
        Probability per steradian, and probability in the pixel (density × pixel area).
    """

    def __init__(self, uniq, probdensity, distance=None, header=None):
        uniq = np.asarray(uniq, dtype=np.int64)
        order = np.argsort(uniq, kind="stable")
        self.uniq = uniq[order]
        self.probdensity = np.asarray(probdensity, dtype=np.float64)[order]
        self.distance_layers = (None if distance is None else
                                tuple(np.asarray(layer, dtype=np.float64)[order]
                                      for layer in distance))
        self.header = header if header is not None else fits.Header()
        level, ipix = uniq_to_level_ipix(self.uniq)
        self.level, self.ipix = level.astype(np.int64), ipix.astype(np.int64)
        self.probability = self.probdensity * _pixel_area_sr(self.level)
        self._flat = {}

    # ----------------------------------------------------------------------------- reading
    @classmethod
    def read(cls, source, max_bytes=None):
        """Read a skymap from a FITS file (a path) or from its bytes (plain or gzip).

        Parameters
        ----------
        source : str, os.PathLike or bytes
            A path, or the content of the file, e.g. ``base64.b64decode(alert["event"]
            ["skymap"])`` for an LVK JSON alert.
        max_bytes : int, optional
            The most a gzipped map may decompress to (``Alerts → Max Skymap Bytes``); no
            limit by default.

        Returns
        -------
        Skymap

        Raises
        ------
        ValueError
            The file is not a HEALPix map this module reads, is truncated (a download cut
            short), or its probabilities do not add up to 1.
        """
        if not isinstance(source, (bytes, bytearray, memoryview)):
            with open(source, "rb") as stream:
                start = stream.read(FIRST_BYTES_SHOWN)
            if start.startswith(GZIP_MAGIC):
                return cls.read(Path(source).read_bytes(), max_bytes)
            _check_fits(start)
            with fits.open(source) as hdus:
                return cls._from_hdus(hdus, os.path.getsize(source))
        data = bytes(source)
        if data.startswith(GZIP_MAGIC):
            data = _gunzip(data, max_bytes)
        _check_fits(data[:FIRST_BYTES_SHOWN])
        with fits.open(io.BytesIO(data)) as hdus:
            return cls._from_hdus(hdus, len(data))

    @classmethod
    def _from_hdus(cls, hdus, size):
        table = next((hdu for hdu in hdus if isinstance(hdu, fits.BinTableHDU)), None)
        if table is None:
            raise ValueError("no binary table in the FITS file: not a HEALPix map")
        needed = table.fileinfo()["datLoc"] + table.size
        if needed > size:
            raise ValueError(f"the FITS file is truncated: {size:,} bytes, where its table "
                             f"ends at byte {needed:,}")
        header = table.header.copy()
        _check_distance_card(header)
        names = [name.upper() for name in table.columns.names]
        if "UNIQ" in names:
            skymap = cls._multi_order(table.data, names, header)
        else:
            skymap = cls._flat_map(table.data, names, header)
        total = float(skymap.probability.sum())
        if not abs(total - 1) <= TOTAL_TOLERANCE:
            raise ValueError(f"the map's probabilities add up to {total}, not 1")
        return skymap

    @classmethod
    def _multi_order(cls, data, names, header):
        if "PROBDENSITY" not in names:
            raise ValueError(f"multi-order map without a PROBDENSITY column (columns: {names})")
        uniq = np.asarray(data["UNIQ"]).astype(np.int64)   # native int64, whatever the file
        _check_uniq(uniq)
        density = _column(data, "PROBDENSITY")
        _zero_blank_pixels(density)
        _refuse_negative(density, "PROBDENSITY")
        return cls(uniq, density, _distance_columns(data, names), header)

    @classmethod
    def _flat_map(cls, data, names, header):
        if str(header.get("INDXSCHM", "IMPLICIT")).upper() == "EXPLICIT":
            raise ValueError("partial-sky flat maps (INDXSCHM = EXPLICIT) are not supported")
        column = next((name for name in FLAT_PROBABILITY_COLUMNS if name in names), None)
        if column is None:
            wanted = " or ".join(FLAT_PROBABILITY_COLUMNS)
            raise ValueError(f"flat map without a probability column ({wanted}); its columns: "
                             + ", ".join(names))
        prob = _column(data, column)
        _zero_blank_pixels(prob)
        _refuse_negative(prob, column)
        nside = _nside(header) or _npix_to_nside(prob.size)
        if prob.size != 12 * nside ** 2 or nside & (nside - 1):
            raise ValueError(f"flat map of {prob.size} pixels with NSIDE {nside}: NSIDE must be "
                             "a power of 2 and the map cover the whole sky")
        ordering = str(header.get("ORDERING", "")).upper()
        if ordering not in ("RING", "NESTED"):
            raise ValueError(f"flat map with ORDERING {ordering!r}: RING or NESTED expected")
        distance = _distance_columns(data, names)
        if ordering == "RING":
            nested = ring_to_nested(np.arange(prob.size), nside)
            prob = _reordered(prob, nested)
            if distance is not None:
                distance = tuple(_reordered(layer, nested) for layer in distance)
        uniq, prob, distance = coarsened(prob, distance)
        level, _ = uniq_to_level_ipix(uniq)
        return cls(uniq, prob / _pixel_area_sr(level), distance, header)

    # ----------------------------------------------------------------------------- queries
    @property
    def has_distance(self):
        """bool: whether the map carries the distance layers DISTMU, DISTSIGMA, DISTNORM."""
        return self.distance_layers is not None

    @cached_property
    def distance_known(self):
        """ndarray of bool: the pixels whose distance layers can be used (a finite DISTMU, a
        finite positive DISTSIGMA and DISTNORM); none in a map without them. LVK maps give
        ``inf`` (or NaN) where they know no distance."""
        if not self.has_distance:
            return np.zeros(self.uniq.size, dtype=bool)
        mu, sigma, norm = self.distance_layers
        with np.errstate(invalid="ignore"):
            return (np.isfinite(mu) & np.isfinite(sigma) & (sigma > 0) & np.isfinite(norm)
                    & (norm > 0))

    @cached_property
    def digest(self):
        """str: the SHA-256 of the map's pixels and values, in hex: the same map has the same
        digest whichever file, encoding or byte order it came in (an LVK alert's JSON holds
        the file its VOEvent links to)."""
        digest = hashlib.sha256()
        for values in (self.uniq, self.probdensity) + (self.distance_layers or ()):
            digest.update(np.ascontiguousarray(values).tobytes())
        return digest.hexdigest()

    @property
    def max_nside(self):
        """int: the nside of the map's finest pixels."""
        return int(level_to_nside(int(self.level.max())))

    def flat(self, nside):
        """The map resampled to a flat NESTED grid: probability per pixel.

        Finer pixels are summed into the coarser pixel that holds them; coarser pixels share
        their probability equally among the finer pixels they hold.

        Parameters
        ----------
        nside : int
            A power of 2.

        Returns
        -------
        ndarray of float64, 12 * nside**2
            Probability per NESTED pixel (a read-only view; copy it to change it).
        """
        if nside not in self._flat:
            self._flat[nside] = self._resample(nside)
            self._flat[nside].flags.writeable = False
        return self._flat[nside]

    def _resample(self, nside):
        target = int(nside_to_level(nside))
        flat = np.zeros(12 * nside ** 2)
        for level in np.unique(self.level):
            mine = self.level == level
            ipix, prob = self.ipix[mine], self.probability[mine]
            shift = 2 * (int(level) - target)
            if shift >= 0:
                # Many fine pixels fall in one coarse pixel: np.add.at sums repeated indices
                # (flat[index] += prob would keep only one of them).
                np.add.at(flat, ipix >> shift, prob)
            else:
                children = 1 << -shift
                index = (ipix[:, None] << -shift) + np.arange(children)
                np.add.at(flat, index.ravel(), np.repeat(prob / children, children))
        return flat

    def credible_area(self, level=0.9, nside=None):
        """The area of the smallest region holding *level* of the probability, in deg².

        Parameters
        ----------
        level : float
            Credible level, between 0 and 1 (0.5 and 0.9 are the usual).
        nside : int, optional
            Count pixels of the map resampled to this nside; by default the map's own pixels.

        Returns
        -------
        float
        """
        if not 0 < level <= 1:
            raise ValueError(f"credible level {level}: between 0 and 1 expected")
        if nside is None:
            density, area = self.probdensity, _pixel_area_sr(self.level) * DEG2_PER_SR
        else:
            density = self.flat(nside)
            area = np.full(density.size, nside_to_pixel_area(nside).to_value(u.deg ** 2))
        return float(area[credible_region(density, level, density * area)].sum())

    def cone_probability(self, ra, dec, radius):
        """The probability enclosed in a cone on the sky.

        Pixels wholly inside the cone count whole, pixels wholly outside not at all; pixels on
        its edge are split into their four children until they are fine enough for
        :data:`CONE_PIXELS_PER_RADIUS` across the radius (and at least as fine as the map's
        own pixels, at most order :data:`MAX_CONE_ORDER`), where a pixel counts when its
        centre is in the cone.

        Parameters
        ----------
        ra, dec, radius : float
            Centre and radius, degrees.

        Returns
        -------
        float
        """
        finest = min(MAX_CONE_ORDER, max(int(self.level.max()),
                                         order_for_resolution(radius / CONE_PIXELS_PER_RADIUS)))
        level, ipix, density = self.level, self.ipix, self.probdensity
        total = 0.0
        while level.size:
            distance = angular_separation(ra, dec, *_centres(level, ipix))
            reach = PIXEL_RADIUS_FACTOR * ORDER_0_RESOLUTION / 2.0 ** level
            counted = (distance + reach <= radius) | ((level >= finest) & (distance <= radius))
            total += float(np.sum(density[counted] * _pixel_area_sr(level[counted])))
            split = ~counted & (distance - reach <= radius) & (level < finest)
            level = np.repeat(level[split] + 1, 4)
            ipix = (4 * ipix[split, None] + np.arange(4)).ravel()
            density = np.repeat(density[split], 4)
        return total

    def distance(self, ra, dec):
        """The distance posterior's mean and standard deviation along a direction.

        These are the moments of ∝ r² N(r; DISTMU, DISTSIGMA) in the pixel holding the
        direction, not the DISTMU/DISTSIGMA parameters themselves.

        Parameters
        ----------
        ra, dec : float
            Degrees.

        Returns
        -------
        (float, float)
            Mean and standard deviation, Mpc (``inf`` and ``nan`` where the map has no
            distance information, e.g. outside the localisation).

        Raises
        ------
        ValueError
            The map has no distance layers.
        """
        if not self.has_distance:
            raise ValueError("this skymap has no distance layers (DISTMU, DISTSIGMA, DISTNORM)")
        target = int(self.level.max())
        pixel = lonlat_to_healpix(ra * u.deg, dec * u.deg, level_to_nside(target),
                                  order="nested")
        index = int(self._containing(np.atleast_1d(pixel), target)[0])
        mu, sigma = self.distance_layers[0][index], self.distance_layers[1][index]
        return distance_moments(mu, sigma)

    def _containing(self, pixels, target):
        """Index into the map's pixels of the pixel holding each NESTED pixel at order
        *target* (no finer than the map's finest pixels); -1 where there is none."""
        pixels = np.asarray(pixels, dtype=np.int64)
        index = np.full(pixels.size, -1, dtype=np.int64)
        for level in np.unique(self.level):
            uniq = 4 * 4 ** int(level) + (pixels >> 2 * (target - int(level)))
            position = np.minimum(np.searchsorted(self.uniq, uniq), self.uniq.size - 1)
            match = self.uniq[position] == uniq
            index[match] = position[match]
        return index


def distance_moments(mu, sigma):
    """Mean and standard deviation of the distance ansatz ∝ r² N(r; mu, sigma), r > 0.

    Parameters
    ----------
    mu, sigma : float
        The DISTMU and DISTSIGMA of a pixel, Mpc.

    Returns
    -------
    (float, float)
        Mean and standard deviation, Mpc; ``(inf, nan)`` when the parameters are not finite.
    """
    if not (np.isfinite(mu) and np.isfinite(sigma) and sigma > 0):
        return math.inf, math.nan
    x = mu / sigma
    # Moments m_k of the normal N(mu, sigma) truncated to r > 0 (m_0 = 1); the ansatz's
    # moments are m_{k+2} / m_2.
    inverse_mills = (math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
                     / (0.5 * math.erfc(-x / math.sqrt(2))))
    m1 = mu + sigma * inverse_mills
    m2 = mu * m1 + sigma ** 2
    m3 = mu * m2 + 2 * sigma ** 2 * m1
    m4 = mu * m3 + 3 * sigma ** 2 * m2
    mean = m3 / m2
    return float(mean), float(math.sqrt(max(m4 / m2 - mean ** 2, 0.0)))


def angular_separation(ra1, dec1, ra2, dec2):
    """Angle between directions, degrees (arrays broadcast); the haversine formula."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(value, dtype=float))
                            for value in (ra1, dec1, ra2, dec2))
    h = (np.sin((dec2 - dec1) / 2) ** 2
         + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2)
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def _centres(level, ipix):
    """RA and Dec of the centres of NESTED pixels of mixed orders, degrees."""
    ra, dec = np.empty(level.size), np.empty(level.size)
    for one in np.unique(level):
        mine = level == one
        lon, lat = healpix_to_lonlat(ipix[mine], level_to_nside(int(one)), order="nested")
        ra[mine], dec[mine] = lon.to_value(u.deg), lat.to_value(u.deg)
    return ra, dec


def order_for_resolution(resolution):
    """The coarsest HEALPix order whose pixels are at most *resolution* degrees across.

    Parameters
    ----------
    resolution : float
        Degrees (the square root of a pixel's area).

    Returns
    -------
    int
        An order ≥ 0 (nside = 2**order).
    """
    ratio = ORDER_0_RESOLUTION / max(resolution, MIN_RESOLUTION)
    return max(0, math.ceil(math.log2(ratio)))


def credible_count(cumulative, level):
    """How many pixels, taken in decreasing density, it takes for *cumulative* to reach
    *level*."""
    return int(min(np.searchsorted(cumulative, level, side="left") + 1, cumulative.size))


def credible_region(values, level, weights=None):
    """The fewest largest *values* whose *weights* (the values themselves by default) hold
    *level* of the weights' sum: their indices, largest value first.

    The order is that of ``np.argsort(values, kind="stable")[::-1]`` (of equal values, the
    later index first), but only the values in the powers of two that reach *level* are sorted:
    a flat nside-1024 map has 12.6 million pixels, nearly all of them in the tail, and sorting
    them all took half a second.

    Parameters
    ----------
    values : ndarray of float, non-negative
        Probability, or probability density, per pixel.
    level : float
        Credible level, between 0 and 1.
    weights : ndarray of float, optional
        What each pixel holds (probability when *values* are densities).

    Returns
    -------
    ndarray of int64
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    weights = values if weights is None else weights
    total = weights.sum()
    # The power of two of each value, read from its IEEE 754 exponent bits (biased by 1023):
    # a value of exponent e lies in [2**(e - 1023), 2**(e - 1022)).
    exponent = values.view(np.int64) >> FLOAT64_MANTISSA_BITS
    mass = np.bincount(exponent, weights=weights)[::-1].cumsum()
    reached = int(np.searchsorted(mass, level * total, side="left"))
    # One more power of two than the sums suggest: they were added in another order.
    threshold = math.ldexp(1.0, mass.size - 1 - reached - FLOAT64_EXPONENT_BIAS - 1)
    candidates = np.flatnonzero(values >= threshold)
    ranked = candidates[np.argsort(values[candidates], kind="stable")[::-1]]
    cumulative = np.cumsum(weights[ranked])
    if level >= 1 or reached + 1 >= mass.size or cumulative.size == 0 or \
            cumulative[-1] < level * total:
        ranked = np.argsort(values, kind="stable")[::-1]   # the whole map is needed
        cumulative = np.cumsum(weights[ranked])
        total = cumulative[-1]
    return ranked[:credible_count(cumulative / total, level)]


def _pixel_area_sr(level):
    """Area of a HEALPix pixel of order *level*, steradians (arrays allowed)."""
    return PIXEL_AREAS_SR[np.asarray(level)]


def flat_fits(probability, **cards):
    """A flat NESTED HEALPix map (probability per pixel) as FITS bytes: a ``PROB`` column, as
    LVK flat maps have it, and *cards* added to its header (``OBJECT``, ``DISTMEAN``...)."""
    nside = int(round(math.sqrt(probability.size / 12)))
    table = fits.BinTableHDU.from_columns([fits.Column("PROB", "D", unit="pix-1",
                                                       array=probability)])
    table.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "NESTED", "COORDSYS": "C",
                         "NSIDE": nside, "INDXSCHM": "IMPLICIT", **cards})
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
    return buffer.getvalue()


def coarsened(probability, distance=None, keep_level=KEEP_LEVEL):
    """A flat NESTED map as multi-order pixels: full resolution in its *keep_level* credible
    region, the rest merged into the coarsest pixels that do not overlap it.

    A flat nside-1024 map has 12.6 million pixels, nearly all of them in the tail of the
    probability; kept as they are they cost seconds and gigabytes in every step after. Merging
    four siblings into their parent keeps their probability (summed) and their distance layers
    (probability-weighted means: in the tail, where only the probability counts).

    Parameters
    ----------
    probability : ndarray
        Probability per pixel, NESTED order, 12 × nside² of them.
    distance : tuple of three ndarrays, optional
        DISTMU, DISTSIGMA, DISTNORM per pixel, NESTED order.
    keep_level : float
        Pixels of this credible region keep the map's resolution.

    Returns
    -------
    (ndarray of int64, ndarray, tuple or None)
        NUNIQ ids, probability per pixel and distance layers of the multi-order map.
    """
    level = int(round(math.log2(math.sqrt(probability.size / 12))))
    keep = np.zeros(probability.size, dtype=bool)
    keep[credible_region(probability, keep_level)] = True
    layers = [] if distance is None else [layer * probability for layer in distance]
    uniq, kept_probability, kept_layers = [], [], [[] for _ in layers]

    def emit(order, pixels, weights, weighted_layers):
        uniq.append(4 * 4 ** order + pixels)
        kept_probability.append(weights[pixels])
        for kept, layer in zip(kept_layers, weighted_layers):
            kept.append(layer[pixels])

    pixels = np.flatnonzero(keep)
    emit(level, pixels, probability, layers)
    covered = keep
    for order in range(level, 0, -1):
        # Siblings of a pixel already emitted cannot merge into their parent: emit them here.
        group_covered = covered.reshape(-1, 4).any(axis=1)
        emit(order, np.flatnonzero(np.repeat(group_covered, 4) & ~covered), probability,
             layers)
        probability = probability.reshape(-1, 4).sum(axis=1)
        layers = [layer.reshape(-1, 4).sum(axis=1) for layer in layers]
        covered = group_covered
    emit(0, np.flatnonzero(~covered), probability, layers)
    weights = np.concatenate(kept_probability)
    if distance is None:
        return np.concatenate(uniq).astype(np.int64), weights, None
    with np.errstate(divide="ignore", invalid="ignore"):
        merged = tuple(np.where(weights > 0, np.concatenate(layer) / weights, np.nan)
                       for layer in kept_layers)
    return np.concatenate(uniq).astype(np.int64), weights, merged


def _reordered(values, nested):
    """*values* given in the order of *nested* indices, put in NESTED order."""
    result = np.empty_like(values)
    result[np.asarray(nested, dtype=np.int64)] = values
    return result


def _check_fits(start):
    """Refuse a file whose first bytes *start* are not a FITS file's (an HTML error page, a
    VOEvent): astropy's own message suggests an option that does not apply."""
    if not start.startswith(FITS_MAGIC):
        raise ValueError(f"not a FITS file: it begins with {start!r}")


def _gunzip(data, max_bytes=None):
    """*data* (gzip, one member or more) decompressed, or :class:`ValueError` saying why not
    (a download cut short, more than *max_bytes* once decompressed)."""
    parts, total, rest = [], 0, data
    try:
        while rest:
            member = zlib.decompressobj(wbits=GZIP_WBITS)
            pending = rest
            while pending:
                room = 0 if max_bytes is None else max_bytes + 1 - total  # (0: no limit)
                part = member.decompress(pending, room)
                parts.append(part)
                total += len(part)
                if max_bytes is not None and total > max_bytes:
                    raise ValueError(f"it decompresses to more than {max_bytes:,} bytes "
                                     "(Alerts → Max Skymap Bytes): a gzip bomb, or a map "
                                     "finer than any follow-up needs")
                pending = member.unconsumed_tail
            if not member.eof:
                raise EOFError("the compressed data ends before its end-of-stream marker")
            rest = member.unused_data
    except (EOFError, zlib.error) as error:
        raise ValueError(f"the gzip-compressed file cannot be decompressed (truncated or "
                         f"corrupt): {error}") from None
    return b"".join(parts)


def _npix_to_nside(npix):
    return int(round(math.sqrt(npix / 12)))


def _column(data, name):
    """A column as a flat float64 array of its own (old flat maps store rows of 1024
    pixels)."""
    return np.array(data[name], dtype=np.float64).ravel()


def _zero_blank_pixels(values):
    """Pixels without a value (NaN, or HEALPix's UNSEEN) hold no probability: set to 0, in
    place, in flat and multi-order maps alike."""
    values[np.isnan(values)] = 0.0
    negative = np.flatnonzero(values < 0)
    values[negative[np.isclose(values[negative], HEALPIX_UNSEEN, rtol=UNSEEN_TOLERANCE,
                               atol=0)]] = 0.0


def _check_uniq(uniq):
    """Refuse NUNIQ ids out of :data:`UNIQ_RANGE`, and pixels given twice or inside another:
    their probability would count twice (a 90 % area larger than the sky)."""
    low, high = UNIQ_RANGE
    wrong = np.flatnonzero((uniq < low) | (uniq > high))
    if wrong.size:
        raise ValueError(f"UNIQ: {wrong.size} pixel id(s) out of range, the first "
                         f"{uniq[wrong[0]]}; a NUNIQ id is 4 × 4**order + index, from {low} to "
                         f"{high} (orders 0 to {MAX_ORDER})")
    ordered = np.sort(uniq)
    repeated = np.flatnonzero(ordered[1:] == ordered[:-1])
    if repeated.size:
        raise ValueError(f"UNIQ: {repeated.size} pixel id(s) given more than once, the first "
                         f"{ordered[repeated[0]]}; each pixel is given once")
    level, ipix = (np.asarray(part, dtype=np.int64) for part in uniq_to_level_ipix(ordered))
    # Each pixel as the range of the finest pixels it holds: ranges of pixels that do not
    # overlap, sorted by their start, each end before the next start.
    shift = 2 * (int(level.max()) - level)
    start, end = ipix << shift, (ipix + 1) << shift
    by_start = np.argsort(start, kind="stable")
    inside = np.flatnonzero(start[by_start][1:] < end[by_start][:-1])
    if inside.size:
        outer, inner = ordered[by_start[inside[0]]], ordered[by_start[inside[0] + 1]]
        raise ValueError(f"UNIQ: {inside.size} pixel(s) inside another, the first {inner} inside "
                         f"{outer}; the pixels of a multi-order map do not overlap")


def _nside(header):
    """The NSIDE card as a whole number, 0 when absent, or :class:`ValueError` naming it."""
    value = header.get("NSIDE", 0)
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(value)
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"NSIDE header card is {value!r}, not a whole number (a power of 2)"
                         ) from None


def _check_distance_card(header):
    """Leave the :data:`DISTANCE_CARD` out of *header* when it is not a number of Mpc (0 or
    more), saying so: the distance is then unknown, as in a map without it; the map itself
    is good."""
    value = header.get(DISTANCE_CARD)
    if value is None or (not isinstance(value, bool) and isinstance(value, int | float)
                         and math.isfinite(value) and value >= 0):
        return
    log.warning("skymap: %s header card is %r, not a distance (a number of Mpc, 0 or more): "
                "the source's distance is taken as unknown", DISTANCE_CARD, value)
    del header[DISTANCE_CARD]


def _refuse_negative(values, column):
    negative = np.flatnonzero(values < 0)
    if negative.size:
        raise ValueError(f"{column}: {negative.size} pixel(s) of negative probability (the "
                         f"least {values[negative].min():g}, pixel {negative[0]} the first); "
                         "a probability is 0 or more")


def _distance_columns(data, names):
    if not all(name in names for name in DISTANCE_COLUMNS):
        return None
    return tuple(_column(data, name) for name in DISTANCE_COLUMNS)
