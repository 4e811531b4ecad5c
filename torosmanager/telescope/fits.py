"""Writing one exposure as a FITS file, with complete headers, atomically.

The file is written under a temporary name in the same directory, flushed to the disk, and only
then renamed to its final name: a reader (the preprocessor, an astronomer's script) never sees a
half-written frame under a final name, even after a power cut.
"""

import hashlib
import logging
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from astropy.io import fits

from .. import __version__
from ..devices.camera import FrameType
from ..disk_sync import write_durably
from ..ephemeris import apparent_sidereal_time, julian_dates, modified_julian_dates
from ..fits_text import fits_card
from ..night import local_night_date
from ..sexagesimal import format_dec, format_ra
from ..units import DEGREES_PER_HOUR, HOURS_PER_DAY
from ..workorders import format_utc

log = logging.getLogger(__name__)

#: A night's directory (the local evening's date), and a frame's temporary name in it
#: (:func:`write_frame`).
_NIGHT = re.compile(r"\d{8}")
_PARTIAL = re.compile(r"\..+\.fits\.part")

#: Work-order keys copied into the header when the order has them: what ties a frame to its
#: group (an alert's event) and to the kind of work it was taken for.
ORDER_CARDS = (("GROUPID", "Group ID", "work order's group (an alert: its event)"),
               ("JOBTYPE", "Type of job", "work order's type of job (ToO: target of opportunity)"))

#: Characters allowed in file names made from work-order IDs and filter names.
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._+-]")
#: Hexadecimal digits of the digest that follows a name part whose characters were replaced
#: (:func:`_name_part`): 48 bits, so that two IDs of one second never share a name.
NAME_DIGEST_DIGITS = 12


@dataclass
class Exposure:
    """What is known about one frame when it is written.

    Attributes
    ----------
    start : datetime
        When the shutter opened (UTC).
    seconds : float
        Exposure time.
    frame_type : str
        ``IMAGETYP``: LIGHT, BIAS, DARK or FLAT.
    filter_name : str
    target : str
        ``OBJECT``.
    ra, dec : float
        Where the telescope pointed, ICRS degrees.
    altitude : float
        Altitude at the start, degrees (for ``AIRMASS``).
    order : dict
        The work order (its ``ID``, ``User``, and ``Group ID`` and ``Type of job`` when it has
        them, go into the header).
    number : int
        The frame's number within its kind in the order (1, 2, ...).
    ccd_temperature : float or None
        The CCD's temperature at the start, °C, when the camera reports it.
    pier_side : str or None
        A German equatorial mount's side of the pier at the start (``"west"``: looking east),
        when it says: ``PIERSIDE``. After a meridian flip the frame is turned 180° on the sky.
    focus_position : int or None
        The focuser's position at the start, steps, when there is one: ``FOCUSPOS``.
    focus_temperature : float or None
        The focuser's temperature at the start, °C, when it reads one: ``FOCUSTEM``.
    azimuth : float or None
        The mount's azimuth at the start, degrees from north through east: ``AZIMUTH``.
    """

    start: datetime
    seconds: float
    frame_type: str
    filter_name: str
    target: str
    ra: float
    dec: float
    altitude: float
    airmass: float
    order: dict
    number: int
    ccd_temperature: float | None = None
    pier_side: str | None = None
    focus_position: int | None = None
    focus_temperature: float | None = None
    azimuth: float | None = None


def night_directory(data_directory, instant, longitude):
    """``<data>/<YYYYMMDD of the local evening>/raw``."""
    return os.path.join(data_directory, local_night_date(instant, longitude), "raw")


def remove_partial_frames(data_directory):
    """Delete the frames left under their temporary names in the latest night's directory (the
    only one written to) by a daemon stopped while writing them, or by writes a read-only disk
    refused. Only one telescope daemon writes to a data directory (its journal is locked)."""
    try:
        nights = [name for name in os.listdir(data_directory) if _NIGHT.fullmatch(name)]
        raw = os.path.join(data_directory, max(nights), "raw")
        partial = [name for name in os.listdir(raw) if _PARTIAL.fullmatch(name)]
    except (FileNotFoundError, ValueError):  # no night yet, or none with frames
        return
    for name in partial:
        os.unlink(os.path.join(raw, name))
        log.warning("deleted %s, a frame left half written in %s", name, raw)


def file_name(exposure):
    """A unique, sortable name: ``<UTC start>_<ID>_<IMAGETYP>_<filter>_<NNN>.fits``."""
    stamp = exposure.start.strftime("%Y%m%dT%H%M%S")
    parts = (stamp, str(exposure.order["ID"]), exposure.frame_type, exposure.filter_name,
             f"{exposure.number:03d}")
    return "_".join(_name_part(part) for part in parts) + ".fits"


def _name_part(text):
    """*text* with each character a file name does not take made ``-``; if any was, a digest
    of *text* follows: the IDs ``M31/1``, ``M31:1`` and ``M31-1`` would otherwise name their
    frames alike, and the second frame replace the first."""
    safe = _UNSAFE_CHARACTERS.sub("-", text)
    if safe == text:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{safe}-{digest[:NAME_DIGEST_DIGITS]}"


def header(exposure, camera, site, telescope_name, orientation=None, shape=None):
    """The FITS header of *exposure*.

    Times follow the FITS standard's time keywords (UTC; the end and the middle are the start
    plus the exposure time asked, and half of it); ``OBJCTRA`` and ``OBJCTDEC`` are the
    pointing again as sexagesimal text, as many observatory programs write and read them.
    Names (the site, the filter, the target...) are written as their closest ASCII
    (:func:`~torosmanager.fits_text.fits_card`). A number a device reported as NaN or infinite
    (a mount's position, a camera's gain or temperature) leaves its card out, logged: FITS
    has no such number, and the frame is worth more than the card.

    Parameters
    ----------
    camera : CameraInfo
    site : dict
        The configuration's ``Site`` section.
    telescope_name : str
    orientation : SkyOrientation or None
        How the camera lies on the sky: a light frame gets a WCS (:mod:`.wcs`) centred where
        the mount points. ``None``: no WCS.
    shape : tuple of int, optional
        The image's ``(rows, columns)``, whose middle the WCS is centred on; default the
        camera's frame.
    """
    seconds = float(exposure.seconds)
    start_mjd, middle_mjd, end_mjd = modified_julian_dates(exposure.start,
                                                           [0.0, seconds / 2, seconds])
    lst = math.degrees(float(apparent_sidereal_time(*julian_dates(exposure.start, 0.0),
                                                    float(site["Longitude"])))) / DEGREES_PER_HOUR
    hour_angle = (lst - float(exposure.ra) / DEGREES_PER_HOUR + HOURS_PER_DAY / 2) \
        % HOURS_PER_DAY - HOURS_PER_DAY / 2
    cards = [
        ("DATE-OBS", format_utc(exposure.start)[:-1], "UTC start of exposure"),
        ("DATE-AVG", format_utc(exposure.start + timedelta(seconds=seconds / 2))[:-1],
         "UTC middle of exposure"),
        ("DATE-END", format_utc(exposure.start + timedelta(seconds=seconds))[:-1],
         "UTC end of exposure"),
        ("TIMESYS", "UTC", "time scale of the DATE and MJD cards"),
        ("MJD-OBS", round(float(start_mjd), 8), "[d] MJD at start of exposure"),
        ("MJD-AVG", round(float(middle_mjd), 8), "[d] MJD at middle of exposure"),
        ("MJD-END", round(float(end_mjd), 8), "[d] MJD at end of exposure"),
        ("EXPTIME", seconds, "[s] exposure time"),
        ("IMAGETYP", exposure.frame_type, "LIGHT, BIAS, DARK or FLAT"),
        ("FILTER", exposure.filter_name, "filter in the beam"),
        ("OBJECT", exposure.target, "target name"),
        ("RA", round(float(exposure.ra), 6), "[deg] pointing right ascension (ICRS)"),
        ("DEC", round(float(exposure.dec), 6), "[deg] pointing declination (ICRS)"),
        ("OBJCTRA", _sexagesimal(format_ra, exposure.ra / DEGREES_PER_HOUR),
         "[h m s] RA as sexagesimal text"),
        ("OBJCTDEC", _sexagesimal(format_dec, exposure.dec), "[d m s] DEC as sexagesimal text"),
        ("RADESYS", "ICRS", "coordinate frame of RA and DEC"),
        ("EQUINOX", 2000.0, "equinox of RA and DEC"),
        ("ALTITUDE", round(float(exposure.altitude), 4), "[deg] altitude at start"),
        ("AIRMASS", round(float(exposure.airmass), 4), "airmass at start"),
        ("LST", _sexagesimal(format_ra, lst), "[h m s] local apparent sidereal time at start"),
        ("HA", round(hour_angle, 5), "[h] hour angle at start, LST - RA"),
        ("TELESCOP", telescope_name, "telescope"),
        ("INSTRUME", camera.name, "camera"),
        ("OBSERVAT", site["Name"], "observatory"),
        ("SITELAT", float(site["Latitude"]), "[deg] site latitude, north positive"),
        ("SITELONG", float(site["Longitude"]), "[deg] site longitude, east positive"),
        ("SITEELEV", float(site["Elevation"]), "[m] site elevation"),
        ("GAIN", float(camera.gain), "[e-/ADU] detector gain"),
        ("RDNOISE", float(camera.read_noise), "[e-] read noise"),
        ("XBINNING", int(camera.binning), "binning along columns"),
        ("YBINNING", int(camera.binning), "binning along rows"),
        ("XPIXSZ", float(camera.pixel_size) * camera.binning, "[um] pixel size, binned"),
        ("SATURATE", int(camera.max_adu), "[ADU] saturation level"),
    ]
    if orientation is not None and exposure.frame_type == FrameType.LIGHT.value:
        cards += _wcs_cards(exposure, camera, orientation,
                            shape or (camera.height, camera.width))
    if exposure.azimuth is not None:
        cards.append(("AZIMUTH", round(float(exposure.azimuth), 4),
                      "[deg] azimuth at start, north through east"))
    if exposure.ccd_temperature is not None:
        cards.append(("CCD-TEMP", round(float(exposure.ccd_temperature), 2),
                      "[C] CCD temperature at start"))
    if exposure.pier_side is not None:
        cards.append(("PIERSIDE", exposure.pier_side.upper(),
                      "side of the pier the tube is on (WEST: looking east)"))
    if exposure.focus_position is not None:
        cards.append(("FOCUSPOS", int(exposure.focus_position), "[step] focuser position"))
    if exposure.focus_temperature is not None:
        cards.append(("FOCUSTEM", round(float(exposure.focus_temperature), 2),
                      "[C] focuser temperature"))
    cards += [
        ("ORDERID", str(exposure.order["ID"]), "TOROS work order ID"),
        ("OBSERVER", str(exposure.order.get("User", "unknown")), "who submitted the order"),
    ]
    cards += [(card, str(exposure.order[key]), comment) for card, key, comment in ORDER_CARDS
              if exposure.order.get(key) is not None]
    cards += [
        ("FRAMENO", int(exposure.number), "frame number of this type in the order"),
        ("SOFTWARE", f"TOROS Manager {__version__}", "acquisition software"),
    ]
    return fits.Header([fits_card(key, value, comment) for key, value, comment in cards
                        if _kept(key, value)])


def _wcs_cards(exposure, camera, orientation, shape):
    """*exposure*'s WCS cards for an image of *shape*; none, logged, when the mount gave no
    finite position."""
    if not (math.isfinite(exposure.ra) and math.isfinite(exposure.dec)):
        log.warning("the frame has no WCS: the mount reported RA %r, Dec %r", exposure.ra,
                    exposure.dec)
        return []
    height, width = shape
    return orientation.cards(exposure.ra, exposure.dec, width, height, camera.binning,
                             exposure.pier_side)


def _sexagesimal(format_angle, angle):
    """*angle* as *format_angle* writes it, with a space between fields; itself if it is not
    finite (the card is then left out, as a number's)."""
    return format_angle(angle, " ") if math.isfinite(angle) else angle


def _kept(key, value):
    """Whether the card *key* = *value* is written: not for a NaN or an infinity (logged)."""
    if isinstance(value, float) and not math.isfinite(value):
        log.warning("the frame's %s card is left out: a device reported %r", key, value)
        return False
    return True


def write_frame(directory, exposure, data, camera, site, telescope_name, orientation=None):
    """Write one frame atomically; return its path.

    A write that fails leaves no temporary file behind (unless the disk cannot even delete
    it: read-only, see :func:`remove_partial_frames`) and raises an :class:`OSError` with the
    system's errno and strerror (``ENOSPC``: "No space left on device") and the frame's
    path as its filename (:func:`~torosmanager.disk_sync.write_durably`).

    Parameters
    ----------
    directory : str
        Created if missing.
    data : numpy.ndarray
        The image, ``[y, x]``, unsigned ADU (uint16 is stored with ``BZERO = 32768``, the
        FITS convention for unsigned 16-bit data).
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, file_name(exposure))
    temporary = os.path.join(directory, "." + os.path.basename(path) + ".part")  # (_PARTIAL)
    hdu = fits.PrimaryHDU(data=data, header=header(exposure, camera, site, telescope_name,
                                                   orientation, data.shape))
    write_durably(path, temporary, hdu.writeto)
    return path
