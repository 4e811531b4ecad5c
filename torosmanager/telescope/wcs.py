"""A light frame's world coordinate system, from where the mount points and how the camera sits.

Every light frame gets a tangent-plane (``TAN``) WCS when the camera's pixel scale is configured
(``Telescope → Camera → Pixel Scale``): its reference point is the frame's centre, at the
mount's ICRS position, and its ``CD`` matrix turns the pixel scale (times the binning) by the
camera's ``Position Angle``. Tools that solve a field (astrometry.net, SCAMP) start from it, and
a person can tell what is where before any solution: it is as good as the mount's pointing.

The position angle is the angle from north, through east, of the frame's +y axis (rows
upwards) with the tube on the west side of the pier, looking east, or on a mount that does not
report its side; on the other side the frame is turned 180° (a German equatorial mount's
meridian flip). ``Mirrored`` is for optics with an odd number of reflections (a diagonal),
which show east right of north instead of left.

:func:`measured_orientation` reads them back from a frame a tool has solved (``toros
orientation FILE``), for the configuration.

Examples
--------
>>> orientation = SkyOrientation(pixel_scale=1.2)
>>> cards = orientation.cards(ra=10.68, dec=41.27, width=2048, height=2048, binning=2,
...                           pier_side=None)
>>> {key: value for key, value, _ in cards}["CD1_1"] * 3600
-2.4
"""

import math
import warnings
from dataclasses import dataclass

from ..devices.mount import frame_angle
from ..units import ARCSEC_PER_DEGREE


@dataclass(frozen=True)
class SkyOrientation:
    """How the camera's pixels lie on the sky.

    Attributes
    ----------
    pixel_scale : float
        Arcseconds per unbinned pixel.
    position_angle : float
        Degrees from north through east of the frame's +y axis, with the tube looking east.
    mirrored : bool
        East is right of north (an odd number of reflections) rather than left.
    """

    pixel_scale: float
    position_angle: float = 0.0
    mirrored: bool = False

    @classmethod
    def from_config(cls, camera_section):
        """The orientation ``Telescope → Camera`` describes, or ``None`` without a ``Pixel
        Scale`` (frames are then written without a WCS)."""
        if camera_section["Pixel Scale"] is None:
            return None
        return cls(camera_section["Pixel Scale"], camera_section["Position Angle"],
                   camera_section["Mirrored"])

    def cd_matrix(self, binning, pier_side):
        """The ``CD`` matrix, degrees per pixel: rows are (RA-ward, Dec-ward), columns (x, y).

        ``x`` grows west (east left) unless mirrored; ``y`` points at the frame's position
        angle from north (:func:`~torosmanager.devices.mount.frame_angle`).
        """
        scale = self.pixel_scale * binning / ARCSEC_PER_DEGREE
        theta = math.radians(frame_angle(self.position_angle, pier_side))
        cos, sin = math.cos(theta), math.sin(theta)
        handed = 1.0 if self.mirrored else -1.0
        return [[handed * scale * cos, scale * sin],
                [-handed * scale * sin, scale * cos]]

    def cards(self, ra, dec, width, height, binning, pier_side):
        """The WCS cards of a *width* × *height* frame centred on ICRS *ra*, *dec* (degrees):
        ``(key, value, comment)``, in the ``CD`` form astrometry.net and SCAMP write."""
        cd = self.cd_matrix(binning, pier_side)
        # FITS pixels count from 1 at the first pixel's centre: the middle is (n + 1) / 2.
        return [
            ("WCSAXES", 2, "number of WCS axes"),
            ("CTYPE1", "RA---TAN", "right ascension, gnomonic projection"),
            ("CTYPE2", "DEC--TAN", "declination, gnomonic projection"),
            ("CUNIT1", "deg", "unit of CRVAL1 and CD1_j"),
            ("CUNIT2", "deg", "unit of CRVAL2 and CD2_j"),
            ("CRPIX1", (width + 1) / 2.0, "reference pixel: the frame's centre"),
            ("CRPIX2", (height + 1) / 2.0, "reference pixel: the frame's centre"),
            ("CRVAL1", round(ra % 360.0, 6), "[deg] RA at the reference pixel (the mount's)"),
            ("CRVAL2", round(dec, 6), "[deg] Dec at the reference pixel (the mount's)"),
            ("CD1_1", cd[0][0], "[deg/pixel] RA-ward change along x"),
            ("CD1_2", cd[0][1], "[deg/pixel] RA-ward change along y"),
            ("CD2_1", cd[1][0], "[deg/pixel] Dec-ward change along x"),
            ("CD2_2", cd[1][1], "[deg/pixel] Dec-ward change along y"),
        ]


#: The cards of a WCS's scale, of celestial axes 1 and 2: the CD matrix (row-major), or the
#: increments of the PC form.
CD_KEYS = ("CD1_1", "CD1_2", "CD2_1", "CD2_2")
CDELT_KEYS = ("CDELT1", "CDELT2")


class NoCelestialWCS(ValueError):
    """A header without a celestial WCS to read an orientation from; the message says why."""


def _check_scale(header):
    """Refuse (:class:`NoCelestialWCS`) a WCS that says no pixel scale: without ``CDi_j`` or
    ``CDELTi`` astropy takes 1° a pixel (and an all-zero CD as none), and the frame would give
    a Pixel Scale of some 3600″ as if measured. The celestial axes are taken as 1 and 2, as
    in every frame the telescope and the solvers write."""
    cd = {key: header[key] for key in CD_KEYS if key in header}
    if cd:
        values = [float(cd.get(key, 0.0)) for key in CD_KEYS]
        if not all(math.isfinite(value) for value in values) or \
                values[0] * values[3] - values[1] * values[2] == 0.0:
            raise NoCelestialWCS(
                "its WCS has no pixel scale: the CD matrix ("
                + ", ".join(f"{key} = {cd.get(key, 0.0)!r}" for key in CD_KEYS)
                + ") is singular; allowed: a solved WCS, whose CD matrix turns pixels into "
                "degrees on the sky: solve it first, e.g. with astrometry.net's solve-field")
        return
    deltas = {key: header.get(key) for key in CDELT_KEYS}
    if any(value is None for value in deltas.values()):
        raise NoCelestialWCS(
            "its WCS has no pixel scale (no CD1_1…CD2_2, nor CDELT1 and CDELT2: only where it "
            "points); solve it first, e.g. with astrometry.net's solve-field")
    if not all(isinstance(value, (int, float)) and math.isfinite(value) and value != 0
               for value in deltas.values()):
        raise NoCelestialWCS(
            "its WCS has no pixel scale: "
            + ", ".join(f"{key} = {value!r}" for key, value in deltas.items())
            + "; allowed: degrees per pixel, not zero; solve it first, e.g. with "
            "astrometry.net's solve-field")


def measured_orientation(header):
    """The :class:`SkyOrientation` of the camera that took a frame whose *header* has a solved
    WCS (astrometry.net's, SCAMP's...), at the frame's middle: the pixel scale per unbinned
    pixel (``XBINNING``), and the position angle with the tube looking east (180° less for a
    frame whose ``PIERSIDE`` is ``EAST``).

    Raises
    ------
    NoCelestialWCS
        When the header has no celestial WCS astropy can read.
    """
    # Imported here: only this reading of a solved frame needs astropy's WCS.
    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)  # a solver's dates, mended or not
        try:
            wcs = WCS(header).celestial
        except (ValueError, KeyError, MemoryError) as error:
            raise NoCelestialWCS(f"its WCS cannot be read: {error}") from None
    if not wcs.has_celestial or wcs.naxis != 2:
        raise NoCelestialWCS("it has no celestial WCS (CTYPE1/CTYPE2 such as RA---TAN, "
                             "DEC--TAN): solve it first, e.g. with astrometry.net's solve-field")
    _check_scale(header)
    middle = ((header.get("NAXIS1", 1) - 1) / 2.0, (header.get("NAXIS2", 1) - 1) / 2.0)
    centre, up, right = wcs.pixel_to_world([middle[0], middle[0], middle[0] + 1],
                                           [middle[1], middle[1] + 1, middle[1]])
    up_angle = float(centre.position_angle(up).deg)
    # East left of north, +x lies 270° on from +y (from north through east); mirrored, 90°.
    mirrored = bool((float(centre.position_angle(right).deg) - up_angle) % 360.0 < 180.0)
    binning = header.get("XBINNING", 1) or 1
    # The frame's angle less the turn of its side of the pier (a half turn: its own inverse).
    looking_east = frame_angle(up_angle, str(header.get("PIERSIDE", "")).lower())
    scale = float(centre.separation(up).arcsec)
    return SkyOrientation(pixel_scale=scale / binning, position_angle=looking_east,
                          mirrored=mirrored)
