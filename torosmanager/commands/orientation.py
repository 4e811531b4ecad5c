"""``toros orientation FILE``: the camera's Pixel Scale, Position Angle and Mirrored, from a
frame a tool has solved.

::

    solve-field 20261121T031204_M31_LIGHT_R_001.fits      # astrometry.net: writes ….new
    toros orientation 20261121T031204_M31_LIGHT_R_001.new

prints the three ``Telescope → Camera`` settings (:mod:`torosmanager.telescope.wcs`) to copy
into the configuration, so that every light frame then gets a WCS as good as the mount's
pointing. The frame's own ``XBINNING`` and ``PIERSIDE`` are read: the scale is per unbinned
pixel, and the angle is the one with the tube looking east.
"""

import os
import sys

from ..console import EXIT_FAILED, EXIT_OK
from ..telescope.wcs import NoCelestialWCS, measured_orientation

#: Decimals printed: a thousandth of an arcsecond per pixel, a hundredth of a degree.
SCALE_DECIMALS, ANGLE_DECIMALS = 4, 2


def add_arguments(parser):
    """The argument of ``toros orientation``."""
    parser.add_argument("file", metavar="FILE",
                        help="a FITS frame with a solved WCS (astrometry.net's .new, a "
                             "SCAMP-solved frame...)")


def run(config, arguments):
    """Print the settings for the frame *arguments.file*; 1 if it has no WCS to read."""
    # Here, not above: astropy takes most of a second to import, and `toros` imports every
    # command to list them (`toros status` waited for it).
    from astropy.io import fits

    path = arguments.file
    try:
        header = fits.getheader(path)
        orientation = measured_orientation(header)
    except (OSError, ValueError) as error:
        if isinstance(error, NoCelestialWCS):
            reason = str(error)
        elif isinstance(error, OSError) and error.strerror:  # missing, unreadable
            reason = f"cannot read it: {error.strerror}"
        else:
            reason = f"not a FITS file: {error}"
        print(f"toros: {path}: {reason}", file=sys.stderr)
        return EXIT_FAILED
    side = str(header.get("PIERSIDE", "")).upper()
    print(f"# {os.path.basename(path)}: binning {header.get('XBINNING', 1)}, "
          + ("taken looking west (PIERSIDE EAST): 180° taken off its angle"
             if side == "EAST" else "taken looking east" if side == "WEST"
             else "no PIERSIDE (taken as looking east)"))
    print("Telescope:\n  Camera:")
    print(f"    Pixel Scale: {orientation.pixel_scale:.{SCALE_DECIMALS}f}")
    # 359.9999° is 0.00, not 360.00:
    angle = round(orientation.position_angle, ANGLE_DECIMALS) % 360.0
    print(f"    Position Angle: {angle:.{ANGLE_DECIMALS}f}")
    print(f"    Mirrored: {'true' if orientation.mirrored else 'false'}")
    return EXIT_OK
