"""Galaxies to observe for a gravitational-wave alert: a catalogue ranked by a 3-D localisation.

A three-dimensional LVK localisation (:class:`~torosmanager.alerts.skymap.Skymap` with the
layers ``DISTMU``, ``DISTSIGMA``, ``DISTNORM``) gives in each HEALPix pixel *i* the probability
per steradian ρᵢ and, along that direction, a distance posterior ∝ r² N(r; μᵢ, σᵢ) normalised by
Nᵢ = DISTNORM (Singer et al. 2016, ApJS 226, 10, "Going the distance"; ApJL 829, L15). The
probability per unit volume (dV = r² dr dΩ) at distance r in that pixel is therefore

    dP/dV = ρᵢ Nᵢ N(r; μᵢ, σᵢ) = cᵢ exp(-(r - μᵢ)² / 2σᵢ²),   cᵢ = ρᵢ Nᵢ / (σᵢ √(2π)),

largest (cᵢ, the pixel's *peak density*) at r = μᵢ.

**The credible volume.** The smallest volume holding a fraction *level* of the probability is
where dP/dV ≥ t, for the threshold t at which it holds exactly *level*. Within pixel *i* that
set is the interval |r - μᵢ| ≤ wᵢ σᵢ, wᵢ = √(2 ln(cᵢ / t)) (empty when cᵢ < t), cut at r > 0,
and the probability it holds has a closed form: with z = (r - μ) / σ and Φ, φ the standard
normal distribution and density,

    ∫ r² N(r; μ, σ) dr over [z_a, z_b] = (μ² + σ²) [Φ(z_b) - Φ(z_a)]
                                           - σ [φ(z_b) (2μ + σ z_b) - φ(z_a) (2μ + σ z_a)],

taken as a share of the same integral over r > 0 (which is 1 / DISTNORM). The probability
enclosed, a sum over pixels, falls continuously and monotonically as t rises;
:func:`credible_volume` finds the t where it equals *level* by regula falsi on ln t. The method
is exact for the map as written (density constant across a pixel, the ansatz along the line of
sight): its only error is the root finder's, below :data:`PROBABILITY_TOLERANCE` in enclosed
probability. ligo.skymap (``ligo.skymap.postprocess.crossmatch``) sums pixels × radial shells
instead; on a real BAYESTAR map the two thresholds agree to 1e-5 with shells of σ/20.
Pixels without distance information (DISTMU not finite, as BAYESTAR writes where it has none)
hold no volume: *level* is a share of the probability of the pixels that have it (99.5 % of it
in gwcelery's MS220722v map).

**Ranking.** A galaxy's score is dP/dV at its position and distance times its luminosity weight;
galaxies outside the credible volume (dP/dV < t) are dropped, and each galaxy's score is its
share of the summed scores of the galaxies inside, so the scores of all the galaxies in the
volume add up to 1 and "the score covered" by the observed galaxies is the chance the host is
among them, if the host is a catalogued galaxy in the volume (Gehrels et al. 2016, ApJ 820,
136; Arcavi et al. 2017, ApJL 848, L33; Singer et al. 2016, ApJL 829, L15).

**Luminosity.** Brighter galaxies are likelier hosts (stellar mass traces the merger rate):
with Luminosity Weight ``B`` (star formation, blue light) or ``K`` (stellar mass, near-infrared)
a galaxy weighs L ∝ 10^(-0.4 M), M = m - 5 log₁₀(d / 10 pc) the absolute magnitude. The
magnitude columns are taken as **apparent**, as in GLADE+ (Dálya et al. 2022, MNRAS 514, 1403:
columns ``m_B``, ``m_K``, ``d_L``), and made absolute with the catalogue's own luminosity
distance; the magnitudes are used as given, without extinction or K-correction (small at the
z ≲ 0.1 of these sources next to the spread of galaxy luminosities). A galaxy without the
magnitude weighs the median luminosity of those with one: neither favoured nor dropped (GLADE+
lacks B for many faint galaxies, which a weight of 0 would rule out as hosts). A catalogue
whose median "apparent" magnitude is negative is logged as a warning: its column is probably
absolute.

**Speed.** A catalogue is loaded once, when the daemon starts: its rows are kept as numpy arrays
sorted by their HEALPix pixel at the finest order (:data:`FINEST_ORDER`), so finding each
galaxy's pixel in any multi-order map is one ``searchsorted`` of sorted keys (a map pixel of
order ℓ covers a contiguous range of finest-order NESTED pixels). Ranking 10⁶ galaxies against
a real multi-order map takes about 0.1 s, half of it finding the threshold.

Examples
--------
>>> catalog = GalaxyCatalog.load(config["Alerts"]["Galaxy Catalog"])    # doctest: +SKIP
>>> skymap = Skymap.read("bayestar.multiorder.fits")                      # doctest: +SKIP
>>> best = catalog.rank(skymap, level=0.9, max_targets=20)                # doctest: +SKIP
>>> best[0].name, best[0].score                                           # doctest: +SKIP
('NGC 4993', 0.083)
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table
from astropy_healpix import lonlat_to_healpix

from ..workorders import CONTROL_CHARACTERS

LOGGER = logging.getLogger(__name__)

#: The credible level used when none is given (the LVK's usual 90 % region).
DEFAULT_LEVEL = 0.9
#: The finest HEALPix order whose NESTED indices fit in int64 (nside 2**29, 0.4 milliarcsec
#: pixels): galaxies are indexed once at this order, and any map's pixel is a range of them.
FINEST_ORDER = 29
#: The search for the threshold stops once the enclosed probability is this close to the level
#: asked: far finer than anything the map's pixels resolve, and cheap (a dozen steps).
PROBABILITY_TOLERANCE = 1e-7
#: ... or once ln t is known this well (a relative precision of the threshold of 1e-12).
LOG_THRESHOLD_TOLERANCE = 1e-12
#: ... or, whatever happens to rounding, after this many steps (a dozen to 30 are usual).
MAX_THRESHOLD_STEPS = 200
#: The search starts at a threshold this many standard deviations down the Gaussian of the
#: pixel of lowest peak density: the volume there holds all but about 1e-21 of the probability.
TAIL_SIGMAS = 10.0
#: ln √(2π), the normal density's normalisation.
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
#: Parsecs in a megaparsec (catalogue distances are in Mpc).
PARSECS_PER_MPC = 1e6
#: Absolute magnitude is the apparent magnitude at this distance, parsecs.
ABSOLUTE_MAGNITUDE_DISTANCE_PC = 10.0
#: Pogson's ratio: a magnitude is -2.5 log₁₀ of a flux, so L ∝ 10^(-0.4 M).
MAGNITUDE_TO_LOG_FLUX = -0.4
#: Galaxies' apparent magnitudes are positive (the Magellanic Clouds, the brightest, are about
#: 0.9 and 2.7 in B; M31 4.4): a median below this means the column holds absolute magnitudes.
BRIGHTEST_APPARENT_MAGNITUDE = 0.0
#: The luminosity weights, as the configuration names them, and the magnitude column each needs.
LUMINOSITY_COLUMNS = {"none": None, "B": "B Magnitude", "K": "K Magnitude"}
#: The configuration's default column names (``Alerts → Galaxy Catalog → Columns``).
DEFAULT_COLUMNS = {"Name": "Name", "RA": "RA", "Dec": "Dec", "Distance": "Distance",
                   "B Magnitude": None, "K Magnitude": None}
#: The astropy format of a table, from its file's suffix (astropy's own guess otherwise).
SUFFIX_FORMATS = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".fits": "fits", ".fit": "fits",
                  ".fts": "fits", ".xml": "votable", ".vot": "votable", ".votable": "votable",
                  ".hdf5": "hdf5", ".h5": "hdf5", ".parquet": "parquet"}
#: Compression suffixes astropy reads through (``glade.csv.gz`` is a CSV).
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")


class CatalogError(ValueError):
    """A galaxy catalogue that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Galaxy:
    """A galaxy to observe.

    Attributes
    ----------
    name : str
        As the catalogue names it.
    ra, dec : float
        Degrees (ICRS).
    distance : float
        Luminosity distance, Mpc.
    score : float
        The galaxy's share of the summed score (dP/dV × luminosity weight) of the catalogue's
        galaxies in the credible volume: the scores of all of them add up to 1.
    """

    name: str
    ra: float
    dec: float
    distance: float
    score: float


@dataclass(frozen=True)
class CredibleVolume:
    """The smallest volume of a 3-D localisation that holds a given probability.

    Attributes
    ----------
    level : float
        The probability it holds (of the pixels with distance information).
    threshold : float
        The least probability density inside, dP/dV in Mpc⁻³ (0 when *level* is 1).
    volume : float
        Its volume, Mpc³ (Euclidean, in luminosity distance, as the map's ansatz is).
    """

    level: float
    threshold: float
    volume: float


class GalaxyCatalog:
    """A galaxy catalogue, held as numpy arrays, that ranks galaxies for a 3-D localisation.

    Build one with :meth:`load` (from the configuration) or from arrays.

    Parameters
    ----------
    names : array
        Galaxy names (str, bytes or numbers).
    ra, dec : array of float
        Degrees.
    distance : array of float
        Luminosity distance, Mpc.
    luminosity : array of float, optional
        Each galaxy's weight (e.g. from :func:`luminosity`); all 1 by default.

    Raises
    ------
    CatalogError
        Arrays of different lengths, or a row without a finite, in-range position or a
        positive distance (:meth:`load` drops those rows before building the catalogue).
    """

    def __init__(self, names, ra, dec, distance, luminosity=None):
        ra, dec, distance = (np.asarray(values, dtype=np.float64) for values in (ra, dec, distance))
        names = np.asarray(names)
        weight = (np.ones_like(distance) if luminosity is None
                  else np.asarray(luminosity, dtype=np.float64))
        if not names.shape == ra.shape == dec.shape == distance.shape == weight.shape:
            raise CatalogError("names, ra, dec, distance and luminosity must have one value "
                               "per galaxy")
        if not np.all(_usable_rows(ra, dec, distance)):
            raise CatalogError("every galaxy needs a finite RA, a Dec within ±90° and a positive "
                               "distance")
        pixel = _finest_pixels(ra, dec)
        # Sorted by pixel, the galaxies of any map pixel are contiguous and the lookup of
        # :func:`_map_pixel_index` searches sorted keys (ten times faster than unsorted ones).
        order = np.argsort(pixel, kind="stable")
        self._pixel = pixel[order]
        self._names, self._ra, self._dec = names[order], np.mod(ra[order], 360.0), dec[order]
        self._distance, self._luminosity = distance[order], weight[order]

    # ------------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, settings):
        """Read the catalogue the configuration names.

        Parameters
        ----------
        settings : dict
            ``config["Alerts"]["Galaxy Catalog"]``: ``File`` (a path, or None),
            ``Luminosity Weight`` (``"none"``, ``"B"`` or ``"K"``) and ``Columns`` (the file's
            column names for ``Name``, ``RA``, ``Dec`` (degrees), ``Distance`` (luminosity
            distance, Mpc), ``B Magnitude`` and ``K Magnitude`` (apparent)).

        Returns
        -------
        GalaxyCatalog or None
            None when no file is configured.

        Raises
        ------
        CatalogError
            The file cannot be read, lacks a configured column (the message lists the
            columns it has), a column is not numeric, or a luminosity weight is asked without
            its magnitude column.
        """
        if settings.get("File") is None:
            return None
        path = Path(settings["File"])
        weighting = settings.get("Luminosity Weight", "none")
        columns = {**DEFAULT_COLUMNS, **settings.get("Columns", {})}
        magnitude_column = _magnitude_column(path, weighting, columns)
        wanted = {key: columns[key] for key in ("Name", "RA", "Dec", "Distance")
                  if columns[key] is not None}
        if magnitude_column is not None:
            wanted["Magnitude"] = magnitude_column
        table = _read_table(path, wanted)
        ra, dec, distance = (_numbers(table, wanted[key], path, COLUMN_UNITS[key])
                             for key in ("RA", "Dec", "Distance"))
        usable = _usable_rows(ra, dec, distance)
        _log_dropped(path, usable, wanted)
        names = _names(table, wanted.get("Name"), path)[usable]
        weight = None
        if magnitude_column is not None:
            weight = luminosity(_numbers(table, magnitude_column, path)[usable], distance[usable],
                                source=f"{path}, column {magnitude_column!r}")
        catalog = cls(names, ra[usable], dec[usable], distance[usable], weight)
        LOGGER.info("galaxy catalogue %s: %d galaxies, luminosity weight %s", path, len(catalog),
                    weighting)
        return catalog

    def __len__(self):
        return int(self._distance.size)

    # ------------------------------------------------------------------------------- ranking
    def rank(self, skymap, level=DEFAULT_LEVEL, max_targets=None, exclude=None):
        """The catalogue's galaxies in the credible volume of a 3-D localisation, best first.

        Parameters
        ----------
        skymap : Skymap
            A localisation with distance layers.
        level : float
            The credible volume's probability, 0 < level ≤ 1.
        max_targets : int, optional
            Return at most this many (the scores keep their shares of the whole volume).
        exclude : callable, optional
            ``exclude(ra, dec)`` of arrays of degrees: a boolean array, true for the galaxies
            to leave out (those in fields observed already); their scores still count in the
            whole volume.

        Returns
        -------
        list of Galaxy
            By decreasing score (dP/dV × luminosity weight); the scores of all the galaxies in
            the volume add up to 1, so those of a list cut by *max_targets*, or with galaxies
            left out, add up to less.

        Raises
        ------
        ValueError
            The map has no distance layers, or *level* or *max_targets* is out of range.
        """
        if max_targets is not None and max_targets < 1:
            raise ValueError(f"max_targets {max_targets}: at least 1 expected")
        inside, score = self._volume_scores(skymap, level)
        if inside.size == 0:
            LOGGER.info("no catalogued galaxy in the %.0f %% credible volume", 100 * level)
            return []
        LOGGER.debug("%d galaxies in the %.0f %% credible volume", inside.size, 100 * level)
        if exclude is not None:
            kept = ~self._where(exclude, inside)
            inside, score = inside[kept], score[kept]
        best = np.argsort(-score, kind="stable")[:max_targets]
        return [self._galaxy(int(inside[one]), float(score[one])) for one in best]

    def share(self, skymap, level, where):
        """The scores of the credible volume's galaxies for which ``where(ra, dec)`` (arrays
        of degrees) is true, added up: the share of the galaxy score they hold (e.g. those in
        the fields observed already). Parameters and errors as for :meth:`rank`."""
        inside, score = self._volume_scores(skymap, level)
        return float(score[self._where(where, inside)].sum())

    def _volume_scores(self, skymap, level):
        """The catalogue indices of the galaxies in the credible volume, and their scores
        (adding up to 1; empty arrays for an empty volume)."""
        layers = _DistanceLayers(skymap)
        inside, log_density = self._inside(layers, _log_threshold(layers, level))
        if inside.size == 0:
            return inside, np.zeros(0)
        # Densities relative to the largest, so no product under- or overflows.
        score = np.exp(log_density - log_density.max()) * self._luminosity[inside]
        return inside, score / score.sum()

    def _where(self, test, indices):
        """``test(ra, dec)`` of the galaxies at catalogue *indices*, as a boolean array."""
        return np.asarray(test(self._ra[indices], self._dec[indices]), dtype=bool)

    def _inside(self, layers, log_threshold):
        """The catalogue indices of the galaxies with dP/dV ≥ the threshold, and ln dP/dV."""
        index = _map_pixel_index(layers, self._pixel)
        # Only galaxies in pixels whose peak density reaches the threshold can be inside.
        reachable = np.append(layers.log_peak >= log_threshold, False)   # index -1: no pixel
        candidates = np.flatnonzero(reachable[index])
        log_density = layers.log_density(index[candidates], self._distance[candidates])
        keep = log_density >= log_threshold
        return candidates[keep], log_density[keep]

    def _galaxy(self, index, score):
        """The :class:`Galaxy` of catalogue row *index*, with its *score*."""
        name = self._names[index]
        name = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        ra, dec = float(self._ra[index]), float(self._dec[index])
        # An order's Object Name is one line of text: a catalogue's tab or missing name
        # would have the scheduler refuse the order.
        name = (" ".join(CONTROL_CHARACTERS.sub(" ", name).split())
                or f"galaxy at RA {ra:.4f}° Dec {dec:+.4f}°")
        return Galaxy(name, ra, dec, float(self._distance[index]), score)


# ----------------------------------------------------------------------------------- the volume
def credible_volume(skymap, level=DEFAULT_LEVEL):
    """The smallest volume holding *level* of a 3-D localisation's probability.

    Parameters
    ----------
    skymap : Skymap
        A localisation with distance layers.
    level : float
        0 < level ≤ 1.

    Returns
    -------
    CredibleVolume
        Its threshold density and volume (see the module's docstring for the method).

    Raises
    ------
    ValueError
        The map has no distance layers, or *level* is out of range.
    """
    layers = _DistanceLayers(skymap)
    log_threshold = _log_threshold(layers, level)
    return CredibleVolume(level, math.exp(log_threshold), layers.volume(log_threshold))


def volume_density(skymap, ra, dec, distance):
    """The probability per unit volume of a 3-D localisation at given places.

    Parameters
    ----------
    skymap : Skymap
        A localisation with distance layers.
    ra, dec : array of float
        Directions, degrees.
    distance : array of float
        Luminosity distances, Mpc.

    Returns
    -------
    ndarray of float64
        dP/dV, Mpc⁻³: 0 outside the map or where it has no distance information.
    """
    layers = _DistanceLayers(skymap)
    ra, dec, distance = np.broadcast_arrays(*(np.asarray(values, dtype=np.float64)
                                              for values in (ra, dec, distance)))
    pixel = _finest_pixels(ra.ravel(), dec.ravel())
    order = np.argsort(pixel, kind="stable")
    density = np.zeros(pixel.size)
    index = _map_pixel_index(layers, pixel[order])
    known = index >= 0
    density[order[known]] = np.exp(layers.log_density(index[known],
                                                      distance.ravel()[order[known]]))
    return density.reshape(ra.shape)


def luminosity(apparent_magnitude, distance, source="the catalogue"):
    """Luminosity weights from apparent magnitudes and luminosity distances.

    Parameters
    ----------
    apparent_magnitude : array of float
        Apparent magnitudes; NaN where unknown.
    distance : array of float
        Luminosity distances, Mpc.
    source : str
        What the magnitudes are, for messages (file and column).

    Returns
    -------
    ndarray of float64
        10^(-0.4 M) with M = m - 5 log₁₀(d / 10 pc) (the luminosity in units of that of
        M = 0); the median of the others where the magnitude is unknown.

    Raises
    ------
    CatalogError
        No galaxy has a magnitude.
    """
    magnitude = np.asarray(apparent_magnitude, dtype=np.float64)
    known = np.isfinite(magnitude)
    if not known.any():
        raise CatalogError(f"{source}: no galaxy has a magnitude, so none can be weighted by "
                           "luminosity")
    if np.median(magnitude[known]) < BRIGHTEST_APPARENT_MAGNITUDE:
        LOGGER.warning("%s: median magnitude %.1f is negative: an absolute magnitude? It is "
                       "taken as apparent", source, np.median(magnitude[known]))
    distance_modulus = 5 * np.log10(np.asarray(distance, dtype=np.float64) * PARSECS_PER_MPC
                                    / ABSOLUTE_MAGNITUDE_DISTANCE_PC)
    weight = np.full(magnitude.shape, np.nan)
    weight[known] = 10 ** (MAGNITUDE_TO_LOG_FLUX * (magnitude[known] - distance_modulus[known]))
    if not known.all():
        LOGGER.info("%s: %d galaxies without a magnitude weigh the median luminosity",
                    source, int(np.count_nonzero(~known)))
    weight[~known] = np.median(weight[known])
    return weight


class _DistanceLayers:
    """A map's pixels that have distance information, as the arrays the volume needs.

    Attributes
    ----------
    map_index : ndarray of int64
        Each pixel's index among the map's pixels.
    start, stop : ndarray of int64
        The range of finest-order NESTED pixels each pixel covers, in increasing *start*.
    probability, mu, sigma, area : ndarray of float64
        Probability in the pixel, DISTMU and DISTSIGMA (Mpc), area (sr).
    log_peak : ndarray of float64
        ln cᵢ, the largest ln dP/dV in the pixel (at r = DISTMU), Mpc⁻³.
    radial_total : ndarray of float64
        ∫ r² N(r; μ, σ) dr over r > 0 (1 / DISTNORM, recomputed for consistency).
    """

    def __init__(self, skymap):
        if not skymap.has_distance:
            raise ValueError("this skymap has no distance layers (DISTMU, DISTSIGMA, DISTNORM):"
                             " galaxies cannot be ranked in 3-D; tile it instead")
        if int(skymap.level.max()) > FINEST_ORDER:
            raise ValueError(f"a map of order {int(skymap.level.max())}: at most "
                             f"{FINEST_ORDER} is supported")
        mu, sigma, norm = skymap.distance_layers
        valid = skymap.distance_known & (skymap.probdensity > 0)
        shift = 2 * (FINEST_ORDER - skymap.level[valid])
        start = skymap.ipix[valid] << shift
        order = np.argsort(start, kind="stable")
        self.map_index = np.flatnonzero(valid)[order]
        self.start = start[order]
        self.stop = (skymap.ipix[valid][order] + 1) << shift[order]
        self.probability = skymap.probability[self.map_index]
        self.area = self.probability / skymap.probdensity[self.map_index]
        self.mu, self.sigma = mu[self.map_index], sigma[self.map_index]
        self.log_peak = (np.log(skymap.probdensity[self.map_index]) + np.log(norm[self.map_index])
                         - np.log(self.sigma) - LOG_SQRT_2PI)
        self.radial_total = _radial_total(self.mu, self.sigma)

    def log_density(self, pixel, distance):
        """ln dP/dV at *distance* (Mpc) in each of the layers' *pixel* (indices)."""
        z = (distance - self.mu[pixel]) / self.sigma[pixel]
        return self.log_peak[pixel] - 0.5 * z * z

    def enclosed(self, log_threshold, pixels=None):
        """The probability (a share of the pixels' total) where ln dP/dV ≥ *log_threshold*,
        summed over *pixels* (indices; all by default)."""
        pixels = np.arange(self.mu.size) if pixels is None else pixels
        mu, sigma = self.mu[pixels], self.sigma[pixels]
        half_width = _half_width(self.log_peak[pixels], log_threshold)
        near = np.maximum(-half_width, -mu / sigma)
        mass = _radial_mass(mu, sigma, near, np.maximum(half_width, near))
        share = mass / self.radial_total[pixels]
        # Rounding can push a share a hair outside [0, 1] where μ ≪ 0 (see _radial_mass).
        share = np.clip(np.nan_to_num(share, nan=0.0), 0.0, 1.0)
        return float(np.dot(self.probability[pixels], share) / self.probability.sum())

    def volume(self, log_threshold):
        """The volume where ln dP/dV ≥ *log_threshold*, Mpc³."""
        half_width = _half_width(self.log_peak, log_threshold)
        far = np.maximum(self.mu + half_width * self.sigma, 0.0)
        near = np.clip(self.mu - half_width * self.sigma, 0.0, far)
        return float(np.sum(self.area * (far ** 3 - near ** 3)) / 3)


def _log_threshold(layers, level):
    """ln of the density threshold t at which the volume where dP/dV ≥ t holds *level*.

    The enclosed probability falls monotonically with ln t, from 1 (at a threshold
    :data:`TAIL_SIGMAS` down the Gaussian of the lowest peak) to 0 (at the highest peak): the
    root is bracketed and found by regula falsi with the Illinois modification (Dowell &
    Jarratt 1971), superlinear where bisection is linear. Pixels whose peak falls below the
    bracket hold nothing for any threshold left, and are dropped as it narrows.
    """
    if not 0 < level <= 1:
        raise ValueError(f"credible level {level}: between 0 and 1 expected")
    if layers.mu.size == 0:
        raise ValueError("no pixel of the map has distance information")
    if level == 1:
        return -math.inf
    low, high = float(layers.log_peak.min()) - TAIL_SIGMAS ** 2 / 2, float(layers.log_peak.max())
    excess_low, excess_high = 1 - level, -level     # enclosed - level at each end
    pixels, kept_end = np.arange(layers.mu.size), None
    for _ in range(MAX_THRESHOLD_STEPS):
        if high - low <= LOG_THRESHOLD_TOLERANCE * max(1.0, abs(low)):
            break
        middle = high - excess_high * (high - low) / (excess_high - excess_low)
        excess = layers.enclosed(middle, pixels) - level
        if abs(excess) <= PROBABILITY_TOLERANCE:
            return middle
        if excess > 0:
            low, excess_low = middle, excess
            pixels = pixels[layers.log_peak[pixels] > low]
            if kept_end == "high":          # the same end moved twice: halve the other's weight
                excess_high /= 2
            kept_end = "high"
        else:
            high, excess_high = middle, excess
            if kept_end == "low":
                excess_low /= 2
            kept_end = "low"
    return low


def _half_width(log_peak, log_threshold):
    """How many σ from μ the density stays at or above the threshold (0 where it never
    reaches it): √(2 ln(c / t))."""
    return np.sqrt(2 * np.maximum(log_peak - log_threshold, 0.0))


def _radial_mass(mu, sigma, near, far):
    """∫ r² N(r; μ, σ) dr from r = μ + σ·near to μ + σ·far (the module's closed form).

    The terms cancel where μ ≪ -σ (pixels of negligible probability, whose whole distance
    posterior lies far in the normal's tail): about 4 log₁₀|μ/σ| digits are lost."""
    return ((mu * mu + sigma * sigma) * _normal_interval(near, far)
            - sigma * (_normal_density(far) * (2 * mu + sigma * far)
                       - _normal_density(near) * (2 * mu + sigma * near)))


def _radial_total(mu, sigma):
    """∫ r² N(r; μ, σ) dr over r > 0: (μ² + σ²) Φ(μ/σ) + μσ φ(μ/σ), i.e. 1 / DISTNORM."""
    x = mu / sigma
    below = 0.5 * _erfc(-x / math.sqrt(2))                 # Φ(x)
    return (mu * mu + sigma * sigma) * below + mu * sigma * _normal_density(x)


def _normal_interval(near, far):
    """Φ(far) - Φ(near) for near ≤ far, accurate in either tail: the interval is reflected to
    lie mostly above 0, where both complementary error functions are small and exact."""
    flip = near + far < 0
    low, high = np.where(flip, -far, near), np.where(flip, -near, far)
    return 0.5 * (_erfc(low / math.sqrt(2)) - _erfc(high / math.sqrt(2)))


def _normal_density(z):
    """φ(z), the standard normal density."""
    return np.exp(-0.5 * z * z - LOG_SQRT_2PI)


#: erfc on arrays: numpy has none and scipy is not a dependency; math.erfc is exact to double
#: precision and costs about 80 ns a value (the bisection evaluates it on the map's pixels).
_erfc_objects = np.frompyfunc(math.erfc, 1, 1)


def _erfc(x):
    """The complementary error function of each value of *x*, as float64."""
    return np.asarray(_erfc_objects(np.asarray(x, dtype=np.float64)), dtype=np.float64)


# ----------------------------------------------------------------------------------- lookups
def _finest_pixels(ra, dec):
    """NESTED pixel of each direction at :data:`FINEST_ORDER` (int64)."""
    pixel = lonlat_to_healpix(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg,
                              2 ** FINEST_ORDER, order="nested")
    return np.asarray(pixel, dtype=np.int64)


def _map_pixel_index(layers, finest_pixels):
    """For each finest-order pixel, the index into the layers of the map pixel holding it,
    or -1 (outside the map, or a pixel without distance information). The map pixels' ranges
    are disjoint, so the holder is the last range starting at or before the pixel, if the
    pixel lies before that range's stop."""
    position = np.searchsorted(layers.start, finest_pixels, side="right") - 1
    clipped = np.maximum(position, 0)
    held = (position >= 0) & (finest_pixels < layers.stop[clipped])
    return np.where(held, clipped, -1)


def _usable_rows(ra, dec, distance):
    """Rows with a finite RA, a Dec within ±90° and a finite positive distance."""
    with np.errstate(invalid="ignore"):
        return (np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
                & np.isfinite(distance) & (distance > 0))


# ----------------------------------------------------------------------------------- reading
def _magnitude_column(path, weighting, columns):
    """The file's magnitude column for the weighting asked (None for ``"none"``)."""
    if weighting not in LUMINOSITY_COLUMNS:
        raise CatalogError(f"galaxy catalogue {path}: Luminosity Weight {weighting!r}: one of "
                           f"{', '.join(LUMINOSITY_COLUMNS)} expected")
    key = LUMINOSITY_COLUMNS[weighting]
    if key is not None and columns.get(key) is None:
        raise CatalogError(f"galaxy catalogue {path}: Luminosity Weight {weighting} needs the "
                           f"file's column of {key} (Columns → {key}), which is not set")
    return None if key is None else columns[key]


def _table_format(path):
    """astropy's format name for *path*, from its suffix (None: let astropy guess)."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    return SUFFIX_FORMATS.get(suffixes[-1]) if suffixes else None


#: The units the catalogue's columns are read in (converted from the file's own, if any).
COLUMN_UNITS = {"RA": u.deg, "Dec": u.deg, "Distance": u.Mpc}


def _read_table(path, wanted):
    """The file's table; for text formats only the *wanted* columns are parsed.

    Raises
    ------
    CatalogError
        The file cannot be read, or lacks one of the *wanted* columns (named, with the
        columns it has).
    """
    table_format = _table_format(path)
    # Text tables are parsed column by column: only those needed (a tenth of GLADE+'s).
    text = table_format is not None and table_format.startswith("ascii")
    options = {"include_names": list(wanted.values())} if text else {}
    try:
        table = Table.read(path, format=table_format, **options)
    except (OSError, ValueError, TypeError) as error:
        raise CatalogError(f"galaxy catalogue {path}: cannot be read as a table "
                           f"({table_format or 'format guessed'}): {error}") from error
    missing = [(key, name) for key, name in wanted.items() if name not in table.colnames]
    if missing:
        available = _column_names(path, table_format) if text else table.colnames
        key, name = missing[0]
        has = (f"the file's columns are: {', '.join(available)}" if available else
               "the file has no columns (is it empty?)")
        raise CatalogError(f"galaxy catalogue {path}: no column {name!r} (Columns → {key}); "
                           f"{has}")
    return table


def _column_names(path, table_format):
    """The columns of a text table, from its header (its first data row only is parsed)."""
    return Table.read(path, format=table_format, data_end=1).colnames


def _numbers(table, name, path, unit=None):
    """A column as float64, NaN where a value is missing; in *unit* when the file gives the
    column a unit (a FITS TUNIT, an ECSV unit: kpc, radians), which must convert to it."""
    column = table[name]
    try:
        values = np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise CatalogError(f"galaxy catalogue {path}: column {name!r} is not numeric "
                           f"({column.dtype}; degrees and Mpc as numbers expected)") from error
    given = getattr(column, "unit", None)
    if unit is not None and given is not None and given != unit:
        try:
            values = (values * given).to_value(unit)
        except (u.UnitConversionError, TypeError, ValueError) as error:
            raise CatalogError(f"galaxy catalogue {path}: column {name!r} is in {given}, which "
                               f"is no {unit} ({error})") from None
    mask = np.ma.getmaskarray(column) if hasattr(column, "mask") else None
    if mask is not None and mask.any():
        values = np.where(mask, np.nan, values)
    return values


def _names(table, name, path):
    """The galaxies' names: the column (missing values as ""), or ``<file stem> #<row>``
    (1-based) when no Name column is configured."""
    if name is None:
        return np.char.add(f"{path.stem} #", np.arange(1, len(table) + 1).astype(str))
    column = table[name]
    missing = np.ma.getmaskarray(column) if hasattr(column, "mask") else None
    if missing is None or not missing.any():
        return np.asarray(column)
    if column.dtype.kind == "S":
        return np.asarray(column.filled(b""))
    return np.where(missing, "", np.asarray(column.filled(column.dtype.type())).astype(str))


def _log_dropped(path, usable, wanted):
    """Log how many rows lack a usable position or distance."""
    dropped = int(np.count_nonzero(~usable))
    if dropped:
        LOGGER.warning("galaxy catalogue %s: %d of %d rows dropped: no usable %s, %s or %s",
                       path, dropped, usable.size, wanted["RA"], wanted["Dec"],
                       wanted["Distance"])
