"""How big the stars in a frame are: the half-flux diameter (HFD) an autofocus minimises.

The HFD of a star is the diameter of the circle, centred on the star, that holds half of its
flux. Unlike the FWHM it needs no model of the star's profile: it is as well defined for the
ring ("donut") a defocused star makes behind a central obstruction as for a sharp star, and it
grows steadily on both sides of focus, which is what a focus run fits (:mod:`.vcurve`). For a
Gaussian star the HFD equals the FWHM.

Detection and the enclosed-flux radius are photutils' (the Astropy-affiliated package): the
background is the sigma-clipped median of the frame, sources are groups of at least
``minimum_pixels`` connected pixels above ``detection_sigma`` times the background's noise, and
each source's radius holding half of its Kron flux is found by
:meth:`photutils.segmentation.SourceCatalog.flux_radius`.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from astropy.stats import sigma_clipped_stats

#: The fraction of a star's flux the half-flux diameter encloses.
HALF = 0.5


class NoStars(Exception):
    """No star in the frame could be measured (an empty, cloudy or badly defocused frame)."""


@dataclass(frozen=True)
class StarSize:
    """The size of the stars in one frame.

    Attributes
    ----------
    hfd : float
        The median of the stars' half-flux diameters, pixels.
    stars : int
        How many stars the median is of.
    """

    hfd: float
    stars: int


def load():
    """photutils' source detection and catalogue, imported on first use: it imports
    scipy.signal and astropy.table, two seconds that only a daemon making focus runs should
    spend (at its start, rather than in the night's first run)."""
    # photutils has no type information (no py.typed): its imports are not analysed.
    from photutils.segmentation import SourceCatalog, detect_sources  # type: ignore[import-untyped]
    from photutils.utils.exceptions import NoDetectionsWarning  # type: ignore[import-untyped]
    return SourceCatalog, detect_sources, NoDetectionsWarning


def measure_stars(image, detection_sigma: float, minimum_pixels: int,
                  maximum_stars: int) -> StarSize:
    """The median half-flux diameter of the brightest stars in *image*.

    Parameters
    ----------
    image : 2-D array
        The frame, as the camera gives it (uint16) or calibrated (float).
    detection_sigma : float
        How many standard deviations of the background's noise a pixel must stand above the
        background to belong to a star.
    minimum_pixels : int
        How many connected pixels (8-connected) above that threshold make a star: more than one
        keeps hot pixels and cosmic rays, a single pixel each, from being measured as stars.
    maximum_stars : int
        How many of the brightest stars (by the flux in their pixels) the median is of: faint
        stars' diameters are the noisiest.

    Returns
    -------
    StarSize

    Raises
    ------
    NoStars
        When no star is left to measure: none detected, or all of them touch the edge of the
        frame or have no positive flux or no finite half-flux diameter.
    ValueError
        When ``maximum_stars`` is less than 1.
    """
    SourceCatalog, detect_sources, NoDetectionsWarning = load()
    if maximum_stars < 1:
        raise ValueError(f"maximum_stars must be at least 1, not {maximum_stars}")
    data = np.asarray(image, dtype=float)
    # The sky is flat across a focus frame's small field: one sigma-clipped level and noise (the
    # stars are clipped out) rather than a background mesh.
    _, sky, noise = sigma_clipped_stats(data)
    data = data - sky
    threshold = detection_sigma * noise

    with warnings.catch_warnings():
        # An empty frame is reported by NoStars below, with the threshold; not as a warning too.
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segments = detect_sources(data, threshold, n_pixels=minimum_pixels)
    found = 0 if segments is None else segments.n_labels

    def no_stars(reason):
        return NoStars(f"no star measured: {found} source(s) of at least {minimum_pixels} pixels "
                       f"above {detection_sigma:g} σ of the background's noise "
                       f"({threshold:.4g} above a background of {sky:.6g}){reason}")

    if segments is None:
        raise no_stars("")
    # A star cut by the edge of the frame has lost part of its flux: its half-flux diameter
    # would be wrong.
    segments.remove_border_labels(border_width=1, partial_overlap=True)
    if segments.n_labels == 0:
        raise no_stars(", all of them on the edge of the frame")

    catalog = SourceCatalog(data, segments)
    # The brightest by the flux in their own pixels, which is cheap, before the Kron apertures
    # and the half-flux radii, which are not: a degree-wide field holds thousands of stars.
    brightest = np.argsort(np.atleast_1d(catalog.segment_flux))[::-1][:maximum_stars]
    catalog = catalog[brightest]
    diameters = 2 * np.atleast_1d(catalog.flux_radius(HALF).value)
    fluxes = np.atleast_1d(catalog.kron_flux)
    # The half-flux radius is a fraction of the Kron flux: without a positive flux (a knot in a
    # dark patch of a badly calibrated frame) it means nothing.
    measured = np.isfinite(diameters) & (fluxes > 0)
    if not measured.any():
        raise no_stars(f", none of the {len(brightest)} brightest off the edge with a positive "
                       "flux and a finite half-flux diameter")
    return StarSize(hfd=float(np.median(diameters[measured])), stars=int(measured.sum()))
