"""The demo's alert: a real LVK alert, replayed during the night, its sky moved overhead.

The alert is ligo-followup-advocate 2.2.0's ``S3456-1-initial.json`` (a mock neutron star–black
hole merger with a 3-D map, see :mod:`torosmanager.alerts.published`). Its sky would be up
tonight only by chance, so its localisation is turned, as a rigid rotation of the sphere, until
its most probable point is where the demo wants it (high in the sky, away from the Moon), and
sent as a flat HEALPix map (2-D: the rotation keeps shapes and probabilities, the distances are
left out). Everything else is the alert as published.
"""

import base64
import json

import astropy.units as u
import numpy as np
from astropy_healpix import healpix_to_lonlat, lonlat_to_healpix

from ..alerts.published import FOLLOWUP_ADVOCATE, data_file
from ..alerts.skymap import Skymap, flat_fits
from ..night import unit_vectors
from ..workorders import format_utc

#: The published alert the demo replays, and its event.
ALERT = "S3456/files/S3456-1-initial.json"
EVENT = "S3456"
#: Where the published alert's wheel is kept, in the directory the demo runs in (beside its
#: report, build/demo-report): fetched once.
CACHE = "build/alert-data"
#: The rotated map's resolution: nside 256 (0.23° pixels), finer than the demo's 1° field.
NSIDE = 256


def overhead_alert(ra, dec, instant, cache):
    """The demo's LVK alert (JSON text) with its most probable point moved to (*ra*, *dec*),
    issued at *instant*."""
    data = json.loads(data_file(ALERT, FOLLOWUP_ADVOCATE, cache).read_text())
    skymap = Skymap.read(base64.b64decode(data["event"]["skymap"]))
    probability = rotated(skymap.flat(NSIDE), ra, dec)
    fits_bytes = flat_fits(probability, OBJECT="S3456 (moved for the demo)")
    data["event"]["skymap"] = base64.b64encode(fits_bytes).decode("ascii")
    data["time_created"] = format_utc(instant)
    data["event"]["time"] = format_utc(instant)
    return json.dumps(data)


def rotated(probability, ra, dec):
    """A flat NESTED map turned rigidly so that its most probable pixel lands on (*ra*, *dec*).

    Each new pixel takes the probability of the pixel that the inverse rotation brings it from
    (Rodrigues' formula), then the map is normalised again.
    """
    nside = int(round(np.sqrt(probability.size / 12)))
    lon, lat = healpix_to_lonlat(np.arange(probability.size), nside, order="nested")
    peak_lon, peak_lat = healpix_to_lonlat(int(np.argmax(probability)), nside, order="nested")
    source = _rotate(unit_vectors(lon.to_value(u.deg), lat.to_value(u.deg)),
                     unit_vectors(ra, dec),
                     unit_vectors(peak_lon.to_value(u.deg), peak_lat.to_value(u.deg)))
    source_lon = np.arctan2(source[1], source[0]) % (2 * np.pi)
    source_lat = np.arcsin(np.clip(source[2], -1, 1))
    pixels = lonlat_to_healpix(source_lon * u.rad, source_lat * u.rad, nside, order="nested")
    moved = probability[pixels]
    return moved / moved.sum()


def _rotate(vectors, frm, to):
    """*vectors* turned by the rotation that takes unit vector *frm* to *to*."""
    axis = np.cross(frm, to)
    sine, cosine = np.linalg.norm(axis), float(np.dot(frm, to))
    if sine == 0:
        return vectors if cosine > 0 else -vectors
    axis = axis / sine
    angle = np.arctan2(sine, cosine)
    return (vectors * np.cos(angle) + np.cross(axis, vectors, axis=0) * np.sin(angle)
            + axis[:, None] * (axis @ vectors) * (1 - np.cos(angle)))
