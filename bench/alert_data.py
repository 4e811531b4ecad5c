"""The alerts, skymaps and galaxy catalogue of ``bench/alerts.py``.

* **Fixture alerts.** Real alerts from the tests' fixtures (``tests/alert_fixtures.py``: data
  files of the gwcelery 3.0.0 and ligo-followup-advocate 2.2.0 wheels, fetched once and checked
  by sha256): three LVK JSON alerts (S3456's, 2.07 MB with a 3-D multi-order map, is the issue's
  "2 MB multi-order LVK alert"), gwcelery's BAYESTAR multi-order map ``MS220722v`` sent as a bare
  skymap, and GCN JSON and VOEvent notices of Einstein Probe, IceCube, Swift and Fermi.
* **A flat nside-1024 map** (:func:`flat_nside_1024`): the MS220722v map resampled to one flat
  NESTED grid of nside 1024 (12,582,912 pixels, a ``PROB`` column of float64 probability per
  pixel, ``ORDERING = NESTED``, ``NSIDE = 1024``, its header's ``OBJECT`` and ``DISTMEAN``; no
  distance layers, so it is tiled), written with astropy.io.fits and gzip-compressed, as LVK's
  ``bayestar.fits.gz`` files were.
* **A synthetic galaxy catalogue** (:func:`galaxy_catalogue`): 10⁶ galaxies uniform on the sky,
  uniform in Euclidean volume between 1 and 500 Mpc, with apparent B magnitudes from absolute
  magnitudes drawn about M_B = −19 (σ 1.5 mag); a FITS table with the configuration's default
  column names plus ``B``.

Everything generated is cached in ``build/bench-alerts/`` of the checkout (made again when
missing).
"""

import base64
import gzip
import io
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from alert_fixtures import FOLLOWUP_ADVOCATE, GWCELERY, alert_file  # after tests/ is on the path

log = logging.getLogger(__name__)

#: Where the generated files are kept between runs.
CACHE = ROOT / "build" / "bench-alerts"
#: The catalogue's size (the issue's 10⁶ galaxies) and its seed.
CATALOGUE_GALAXIES = 1_000_000
CATALOGUE_SEED = 2026
#: Galaxies lie between these luminosity distances, Mpc (uniform in Euclidean volume).
NEAREST_MPC, FARTHEST_MPC = 1.0, 500.0
#: Absolute B magnitudes: a normal distribution of this mean and spread (a crude luminosity
#: function; only the weights' spread matters to the ranking's cost).
MEAN_ABSOLUTE_B, SPREAD_ABSOLUTE_B = -19.0, 1.5
#: Parsecs in a megaparsec, and the distance modulus's reference distance (pc).
PARSECS_PER_MPC, MODULUS_DISTANCE_PC = 1e6, 10.0
#: The flat map's resolution (the issue's "flat nside-1024 map").
FLAT_NSIDE = 1024
#: The real multi-order map the flat map is made from (gwcelery's BAYESTAR test map).
BAYESTAR_MAP = "MS220722v_bayestar.multiorder.fits"
#: Its event ID, sent with it as an Alert order's ``Event ID`` (a bare skymap names none).
BAYESTAR_EVENT = "MS220722v"
#: The event ID the flat map is sent under (another event, so it is not a duplicate).
FLAT_EVENT = "MS220722v-flat1024"


@dataclass(frozen=True)
class FixtureAlert:
    """One alert to send: an Alert work order's keys and where it came from.

    Attributes
    ----------
    label : str
        Short name for the tables.
    source : str
        The file (and package) it comes from, for the text under the tables.
    order : dict
        ``Format``, ``Payload`` and, for a bare skymap, ``Event ID``.
    size : int
        The file's size, bytes (before any base64).
    """

    label: str
    source: str
    order: dict = field(hash=False)
    size: int


#: The fixture alerts: (label, file, package). LVK files are ligo-followup-advocate's, the
#: others gwcelery's.
FIXTURES = (
    ("LVK S1234 (3-D, 1.0 MB)", "S1234/files/S1234-2-initial.json", FOLLOWUP_ADVOCATE),
    ("LVK S2498 (2-D cWB, 1.4 MB)", "S2469/files/S2469-1-initial.json", FOLLOWUP_ADVOCATE),
    ("LVK S3456 (3-D, 2.1 MB)", "S3456/files/S3456-1-initial.json", FOLLOWUP_ADVOCATE),
    ("MS220722v skymap (3-D, 0.8 MB)", BAYESTAR_MAP, GWCELERY),
    ("Einstein Probe (GCN JSON)", "kafka_alert_einteinprobe.json", GWCELERY),
    ("IceCube gold (GCN JSON)", "kafka_alert_icecube_gold.json", GWCELERY),
    ("Swift BAT GRB (VOEvent)", "swift_grb_gcn.xml", GWCELERY),
    ("Fermi GBM GRB (VOEvent)", "fermi_grb_gcn.xml", GWCELERY),
    ("External trigger (VOEvent)", "externaltrigger_original_data.xml", GWCELERY),
)
#: The label of the issue's "2 MB multi-order LVK alert".
TWO_MB_ALERT = FIXTURES[2][0]
#: The label of the flat map.
FLAT_ALERT = "flat nside-1024 map (gzip FITS)"


def fixture_alerts():
    """The fixture alerts, as :class:`FixtureAlert`, in :data:`FIXTURES` order."""
    from torosmanager.alerts.intake import guess_format, payload_of

    made = []
    for label, name, package in FIXTURES:
        data = alert_file(name, package).read_bytes()
        format_name = guess_format(data)
        order = {"Format": format_name, "Payload": payload_of(data, format_name)}
        if format_name == "skymap":
            order["Event ID"] = BAYESTAR_EVENT
        made.append(FixtureAlert(label, f"{package.name} {package.version}: {name}", order,
                                 len(data)))
    return made


def flat_alert():
    """The flat nside-1024 map as a bare-skymap :class:`FixtureAlert` (made once)."""
    path = flat_nside_1024()
    data = path.read_bytes()
    order = {"Format": "skymap", "Payload": base64.b64encode(data).decode("ascii"),
             "Event ID": FLAT_EVENT}
    return FixtureAlert(FLAT_ALERT, f"{BAYESTAR_MAP} resampled (bench/alert_data.py)", order,
                        len(data))


def flat_nside_1024(nside=FLAT_NSIDE):
    """The path of the MS220722v map resampled to a flat NESTED map of *nside*, gzip FITS.

    The multi-order map's probability is spread equally over the finer pixels each of its
    pixels holds (``Skymap.flat``); the distance layers are left out (a 2-D map, tiled).
    """
    from torosmanager.alerts.skymap import Skymap, flat_fits

    path = CACHE / f"{BAYESTAR_EVENT}_flat_nside{nside}.fits.gz"
    if path.exists():
        return path
    skymap = Skymap.read(str(alert_file(BAYESTAR_MAP, GWCELERY)))
    data = flat_fits(np.asarray(skymap.flat(nside), dtype=np.float64), OBJECT=FLAT_EVENT,
                     DISTMEAN=skymap.header["DISTMEAN"])
    _write(path, gzip.compress(data, compresslevel=6))
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return path


def galaxy_catalogue(count=CATALOGUE_GALAXIES, seed=CATALOGUE_SEED):
    """The path of a synthetic catalogue of *count* galaxies, a FITS table (made once).

    Columns ``Name``, ``RA``, ``Dec`` (degrees), ``Distance`` (Mpc) and ``B`` (apparent
    magnitude): the configuration's defaults, with ``Columns → B Magnitude: B``.
    """
    from astropy.table import Table

    path = CACHE / f"galaxies-{count}-seed{seed}.fits"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, count)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, count)))
    distance = np.cbrt(rng.uniform(NEAREST_MPC ** 3, FARTHEST_MPC ** 3, count))
    absolute = rng.normal(MEAN_ABSOLUTE_B, SPREAD_ABSOLUTE_B, count)
    apparent = absolute + 5 * np.log10(distance * PARSECS_PER_MPC / MODULUS_DISTANCE_PC)
    names = np.char.add("BENCH", np.char.zfill(np.arange(count).astype(str),
                                                int(math.log10(count)) + 1))
    table = Table({"Name": names, "RA": ra, "Dec": dec, "Distance": distance,
                   "B": apparent.astype(np.float32)})
    buffer = io.BytesIO()
    table.write(buffer, format="fits")
    _write(path, buffer.getvalue())
    log.info("wrote %s (%d galaxies)", path, count)
    return path


def catalogue_settings(path):
    """``Alerts → Galaxy Catalog`` for the catalogue at *path*, weighted by B luminosity."""
    return {"File": str(path), "Luminosity Weight": "B",
            "Columns": {"B Magnitude": "B"}}


def _write(path, data):
    """Write *data* to *path* atomically (the cache never holds half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_bytes(data)
    partial.replace(path)

