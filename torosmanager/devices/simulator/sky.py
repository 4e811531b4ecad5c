"""The simulated sky: a deterministic star field, and what each filter lets through.

The star field is cut into tiles about :data:`TILE_SIZE` degrees on a side (bands of
declination, each cut into equal spans of RA). Each tile's stars are drawn by a generator seeded
with the simulator seed and the tile's indices, so the same seed always gives the same sky,
whatever the pointing: overlapping frames share their stars, as they would on the real sky.

Fluxes follow a power law, ``N(> rate) ∝ rate ** -FLUX_INDEX``, from :data:`FAINTEST_STAR_RATE`
up: many faint stars, a few bright ones. Rates are electrons per second through the clear
filter at the optical centre; stars have no colour, so a filter scales every star and the sky by
its :func:`throughput`.
"""

import math
from dataclasses import dataclass

import numpy as np

#: Side of a star-field tile, degrees: about a frame's size, so a frame draws a few tiles.
TILE_SIZE = 1.0
#: Tag mixed into the seed of the star-field generators (the frame noise and the flat field use
#: others), so that the streams never coincide.
STAR_STREAM = 3
#: Electrons per second (clear filter) of the faintest simulated star: a few sigma above the
#: default sky in a few seconds.
FAINTEST_STAR_RATE = 50.0
#: Power-law index of the cumulative flux distribution: each factor of 10 in brightness has
#: ten times fewer stars (about 2.5 times fewer per magnitude, as in a typical field).
FLUX_INDEX = 1.0
#: Brightest star rate, electrons per second (clear): caps the power law's tail.
BRIGHTEST_STAR_RATE = 1.0e7

#: Throughput of each filter relative to the clear one (looked up case-insensitively).
THROUGHPUT = {"u": 0.3, "b": 0.6, "v": 0.8, "r": 0.85, "i": 0.6, "clear": 1.0}
#: Throughput of a filter whose name is not in :data:`THROUGHPUT`.
UNKNOWN_FILTER_THROUGHPUT = 0.5
#: Throughput with no filter wheel at all.
UNFILTERED_THROUGHPUT = 1.0

#: Square degrees per steradian.
SQUARE_DEGREES_PER_STERADIAN = (180.0 / math.pi) ** 2


def throughput(filter_name):
    """The fraction of the clear filter's light that *filter_name* passes.

    Parameters
    ----------
    filter_name : str or None
        ``None`` for an unfiltered beam.
    """
    if filter_name is None:
        return UNFILTERED_THROUGHPUT
    return THROUGHPUT.get(str(filter_name).lower(), UNKNOWN_FILTER_THROUGHPUT)


@dataclass(frozen=True)
class Stars:
    """Stars on the sky.

    Attributes
    ----------
    ra, dec : numpy.ndarray
        ICRS degrees.
    rate : numpy.ndarray
        Electrons per second through the clear filter at the optical centre.
    """

    ra: np.ndarray
    dec: np.ndarray
    rate: np.ndarray

    def __len__(self):
        return len(self.ra)

    def select(self, mask):
        """The stars where the boolean array (or index array) *mask* says."""
        return Stars(self.ra[mask], self.dec[mask], self.rate[mask])

    @classmethod
    def concatenate(cls, parts):
        """One :class:`Stars` of all of *parts*."""
        if not parts:
            empty = np.zeros(0)
            return cls(empty, empty, empty)
        return cls(*(np.concatenate([getattr(part, name) for part in parts])
                     for name in ("ra", "dec", "rate")))


class StarField:
    """The whole sky's stars for one seed, generated tile by tile on demand.

    Parameters
    ----------
    seed : int
        The simulator seed.
    density : float
        Mean stars per square degree.
    """

    def __init__(self, seed, density):
        self.seed = int(seed)
        self.density = float(density)
        self._bands = int(round(180.0 / TILE_SIZE))
        self._band_height = 180.0 / self._bands

    def _band_limits(self, band):
        """The (south, north) declinations of a band, degrees."""
        south = -90.0 + band * self._band_height
        return south, south + self._band_height

    def _columns(self, band):
        """How many RA spans the band is cut into: about square tiles, at least one."""
        south, north = self._band_limits(band)
        middle = math.radians(0.5 * (south + north))
        return max(1, int(round(360.0 * math.cos(middle) / TILE_SIZE)))

    def tile(self, band, column):
        """The stars of one tile: the same for the same seed, band and column, always."""
        south, north = self._band_limits(band)
        width = 360.0 / self._columns(band)
        low_sin, high_sin = math.sin(math.radians(south)), math.sin(math.radians(north))
        area = math.radians(width) * (high_sin - low_sin) * SQUARE_DEGREES_PER_STERADIAN
        rng = np.random.default_rng([self.seed, STAR_STREAM, band, column])
        count = rng.poisson(self.density * area)
        ra = column * width + width * rng.random(count)
        # Uniform in sin(dec) is uniform in area on the sphere.
        dec = np.degrees(np.arcsin(low_sin + (high_sin - low_sin) * rng.random(count)))
        # 1 - random() is in (0, 1], so the power is finite.
        rate = FAINTEST_STAR_RATE * (1.0 - rng.random(count)) ** (-1.0 / FLUX_INDEX)
        return Stars(ra, dec, np.minimum(rate, BRIGHTEST_STAR_RATE))

    def around(self, ra, dec, radius):
        """The stars within *radius* degrees of ICRS *ra*, *dec*.

        Parameters
        ----------
        ra, dec, radius : float
            Degrees.
        """
        if self.density <= 0:
            return Stars.concatenate([])
        parts = [self.tile(band, column) for band, column in self._tiles_near(ra, dec, radius)]
        stars = Stars.concatenate(parts)
        return stars.select(angular_distance(stars.ra, stars.dec, ra, dec) <= radius)

    def _tiles_near(self, ra, dec, radius):
        """The (band, column) of every tile that may hold a star within *radius* of the point."""
        south = max(dec - radius, -90.0)
        north = min(dec + radius, 90.0)
        first = min(int((south + 90.0) // self._band_height), self._bands - 1)
        last = min(int((north + 90.0) // self._band_height), self._bands - 1)
        # The RA half-width of a cap of this radius is asin(sin radius / cos dec), unless the
        # cap holds a pole: then it spans every RA.
        half_width = 180.0
        if north < 90.0 and south > -90.0:
            sin_ratio = math.sin(math.radians(radius)) / math.cos(math.radians(dec))
            if sin_ratio < 1.0:
                half_width = math.degrees(math.asin(sin_ratio))
        for band in range(first, last + 1):
            columns = self._columns(band)
            width = 360.0 / columns
            if half_width >= 180.0:
                yield from ((band, column) for column in range(columns))
                continue
            low = math.floor((ra - half_width) / width)
            high = math.floor((ra + half_width) / width)
            # Wrapping past RA 0/360 may name a column twice when the span covers the band.
            yield from ((band, column) for column in
                        sorted({index % columns for index in range(low, high + 1)}))


def angular_distance(ra, dec, ra0, dec0):
    """Degrees from each (*ra*, *dec*) to (*ra0*, *dec0*) (haversine: exact for small angles)."""
    ra, dec = np.radians(ra), np.radians(dec)
    ra0, dec0 = math.radians(ra0), math.radians(dec0)
    haversine = (np.sin((dec - dec0) / 2) ** 2
                 + np.cos(dec) * math.cos(dec0) * np.sin((ra - ra0) / 2) ** 2)
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(haversine, 0.0, 1.0))))


def gnomonic(ra, dec, ra0, dec0):
    """Tangent-plane (TAN) coordinates of (*ra*, *dec*) about (*ra0*, *dec0*).

    Returns
    -------
    xi, eta : numpy.ndarray
        Standard coordinates in degrees, *xi* towards the east, *eta* towards the north.
    in_front : numpy.ndarray of bool
        The points on the near hemisphere (the others project nowhere).
    """
    ra, dec = np.radians(ra), np.radians(dec)
    ra0, dec0 = math.radians(ra0), math.radians(dec0)
    delta = ra - ra0
    cos_c = math.sin(dec0) * np.sin(dec) + math.cos(dec0) * np.cos(dec) * np.cos(delta)
    in_front = cos_c > 0
    safe = np.where(in_front, cos_c, 1.0)
    xi = np.cos(dec) * np.sin(delta) / safe
    eta = (math.cos(dec0) * np.sin(dec) - math.sin(dec0) * np.cos(dec) * np.cos(delta)) / safe
    return np.degrees(xi), np.degrees(eta), in_front
