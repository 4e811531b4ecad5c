"""What to point at for one alert: galaxies, tiled fields or a single pointing.

:func:`localisation` gives the alert's skymap: the one it carries, the one it links to
(downloaded with a time limit), or, for an error circle wider than the camera's field, a
Gaussian map built from the circle. :func:`candidates` then chooses the kind of targets:

- a 3-D map (distance layers) and a galaxy catalogue → galaxies, by 3-D probability and
  luminosity (:mod:`.galaxies`);
- a 2-D map, or a 3-D map without a catalogue, or an error region wider than the field →
  camera fields tiled over the map, by enclosed probability (:mod:`.tiles`);
- an error circle that fits in the field → one pointing at its centre.

Each candidate's weight is the probability (or galaxy score) it covers; :mod:`.pick` then
chooses those observable tonight within the budget.
"""

import concurrent.futures
import http.client
import logging
import math
import os
import ssl
import threading
import time
import urllib.error
import urllib.request

import astropy.units as u
import certifi
import numpy as np
from astropy_healpix import healpix_to_lonlat, level_to_nside, nside_to_pixel_area

from .formats import MAX_PAYLOAD
from .pick import Candidate
from .skymap import Skymap, angular_separation, order_for_resolution
from .tiles import enclosed, in_field, pointing, tiles

log = logging.getLogger(__name__)

#: Candidates offered to the pick per target the budget allows: enough to choose among those
#: visible tonight, few enough that the pick stays fast.
CANDIDATES_PER_TARGET = 5
#: At most this many candidates whatever the budget (the pick's cost grows with them).
MAX_CANDIDATES = 300
#: Containment probability of an error radius whose sender does not say (GCN's usual 90 %).
DEFAULT_CONTAINMENT = 0.9
#: Pixels across a Gaussian error region's σ when it is drawn as a map.
PIXELS_PER_SIGMA = 4
#: The finest order of such a map (nside 512, 7′): error circles wider than the field are
#: at least tens of arcminutes.
MAX_CIRCLE_ORDER = 9
#: The map extends to this many σ (beyond, the Gaussian holds under 1e-11).
CIRCLE_EXTENT_SIGMAS = 7
#: Seconds between looks at the daemon's stop flag while a skymap is fetched: how soon a
#: daemon stops while a server is slow to send a map.
STOP_LOOK_INTERVAL = 0.1
#: Seconds before a skymap that could not be fetched is tried again, and the longest such
#: wait (doubling from the first), all within ``Alerts → Skymap Download Timeout``.
RETRY_FIRST_WAIT = 1.0
RETRY_LONGEST_WAIT = 8.0
#: What limits a skymap's download, as a message names it.
DOWNLOAD_LIMIT = "Alerts → Skymap Download Timeout"
#: HTTP answers below 500 that may pass: the file not there yet, too many requests.
RETRIED_HTTP_CODES = frozenset((404, 429))


class TargetError(Exception):
    """The alert's targets cannot be worked out (e.g. its skymap cannot be fetched); the
    message says why."""


class Stopping(Exception):
    """The daemon is stopping: the skymap being fetched was not waited for."""


def localisation(alert, download_timeout, field_of_view, stopping=None, retry=True,
                 limit=DOWNLOAD_LIMIT, max_bytes=None):
    """The skymap of *alert*, or ``None`` when a single pointing covers it.

    Parameters
    ----------
    alert : Alert
    download_timeout : float
        Seconds allowed to fetch a skymap the alert only links to.
    field_of_view : float
        The camera field's side, degrees: an error circle fitting in it needs no map.
    stopping : threading.Event, optional
        The daemon's stop flag: once set, a skymap being fetched is not waited for.
    retry : bool, optional
        Whether a linked skymap that cannot be fetched yet is tried again while
        *download_timeout* lasts (``False``: one try, for a page that a person waits for).
        An alert with an error region to fall back on tries once in any case.
    limit : str, optional
        What sets *download_timeout*, for the message of a map not fetched in time.
    max_bytes : int, optional
        The most a gzipped map may decompress to (``Alerts → Max Skymap Bytes``).

    Raises
    ------
    TargetError
        The map cannot be fetched or read.
    Stopping
        *stopping* was set while the map was fetched.
    """
    if alert.skymap is not None:
        return _read(alert.skymap, "the alert's skymap", max_bytes)
    if alert.skymap_url is not None:
        try:
            # With an error region to fall back on (a neutrino, a GRB), one try: no waiting.
            return _read(_download(alert.skymap_url, download_timeout, stopping,
                                   retry=retry and alert.waits_for_its_map, limit=limit),
                         f"the skymap at {alert.skymap_url}", max_bytes)
        except TargetError as error:
            if alert.ra is None:
                raise
            # A neutrino or GRB notice links a map but states its error region as well.
            log.warning("[%s] %s; using the alert's error circle", alert.event_id, error)
    if alert.ra is None:
        raise TargetError("the alert has neither a skymap nor a position")
    radius = alert.error_radius or 0.0
    if radius <= field_of_view / 2:
        return None
    containment = alert.properties.get("containment_probability") or DEFAULT_CONTAINMENT
    return circle_skymap(alert.ra, alert.dec, radius, containment)


def candidates(alert, skymap, settings, catalog=None, observed=()):
    """The targets to choose from, each weighted by what it covers.

    Parameters
    ----------
    alert : Alert
    skymap : Skymap or None
        From :func:`localisation`; ``None`` for a single pointing.
    settings : dict
        The configuration's ``Alerts`` section.
    catalog : GalaxyCatalog, optional
        Loaded once at start; used for 3-D maps.
    observed : sequence of (float, float)
        Centres (RA, Dec, degrees) of the event's fields observed already: the galaxies in
        them are left out, and the probability they enclose counts for no field. A single
        pointing is offered all the same (an afterglow's later frames are worth having).

    Returns
    -------
    (str, list of Candidate)
        The kind of targets (``"galaxies"``, ``"fields"`` or ``"pointing"``) and the
        candidates, best first.
    """
    fov = settings["Field of View"]
    count = min(MAX_CANDIDATES, CANDIDATES_PER_TARGET * settings["Max Targets"])
    if skymap is None:
        containment = alert.properties.get("containment_probability") or DEFAULT_CONTAINMENT
        tile = pointing(alert.ra, alert.dec, alert.error_radius or 0.0, fov)
        return "pointing", [Candidate(alert.event_id, tile.ra, tile.dec, containment)]
    level = settings["Credible Level"]
    if catalog is not None and skymap.has_distance:
        # Galaxies are ranked in the pixels whose distance is known: those must hold the
        # credible level, or the volume would be made of the map's tail.
        known = float(skymap.probability[skymap.distance_known].sum())
        if known < level:
            log.info("[%s] the pixels whose distance the map gives hold %.1f %% of its "
                     "probability, less than the %.0f %% credible level: tiling the map "
                     "instead of ranking galaxies", alert.event_id, 100 * known, 100 * level)
        else:
            galaxies = catalog.rank(skymap, level, count, _in_fields(observed, fov))
            # None left but for those observed: nothing more to observe, not a map to tile.
            if galaxies or (observed and catalog.rank(skymap, level, 1)):
                return "galaxies", [Candidate(galaxy.name, galaxy.ra, galaxy.dec,
                                              galaxy.score) for galaxy in galaxies]
            log.info("[%s] no catalogue galaxy in the %.0f %% volume: tiling the map instead",
                     alert.event_id, 100 * level)
    fields = tiles(skymap, fov, count, observed)
    return "fields", [Candidate(f"{alert.event_id} field {number}", tile.ra, tile.dec,
                                tile.probability)
                      for number, tile in enumerate(fields, start=1)]


def observed_weight(targets, skymap, settings, catalog, observed):
    """What the fields observed already cover of *skymap*: its probability in them (fields),
    or the galaxy score of the volume's galaxies in them (galaxies), as :func:`candidates`
    weighs its candidates; 0 for a single pointing or none observed.

    Parameters
    ----------
    targets : str
        The kind of targets :func:`candidates` chose.
    skymap, settings, catalog, observed
        As for :func:`candidates`.
    """
    if not len(observed) or targets == "pointing":
        return 0.0
    fov = settings["Field of View"]
    if targets == "galaxies":
        return catalog.share(skymap, settings["Credible Level"], _in_fields(observed, fov))
    return enclosed(skymap, observed, fov)


def _in_fields(centres, fov):
    """A test of directions for :meth:`GalaxyCatalog.rank` (``exclude``) and
    :meth:`GalaxyCatalog.share` (``where``): ``test(ra, dec)``, whether each is in any of the
    fields of side *fov* centred on *centres*; ``None`` without centres."""
    if not len(centres):
        return None

    def exclude(ra, dec):
        inside = np.zeros(np.shape(ra), dtype=bool)
        for ra0, dec0 in centres:
            inside |= in_field(ra0, dec0, ra, dec, fov)
        return inside
    return exclude


def circle_skymap(ra, dec, radius, containment):
    """A map of a circular Gaussian error region: *containment* of the probability within
    *radius* degrees of (*ra*, *dec*).

    A 2-D Gaussian holds ``1 − exp(−r² / 2σ²)`` within r, so σ = r / √(−2 ln(1 − p)).
    """
    sigma = radius / math.sqrt(-2 * math.log(1 - min(containment, 1 - 1e-9)))
    order = min(MAX_CIRCLE_ORDER, order_for_resolution(sigma / PIXELS_PER_SIGMA))
    nside = int(level_to_nside(order))
    ipix = np.arange(12 * nside ** 2, dtype=np.int64)
    lon, lat = healpix_to_lonlat(ipix, nside, order="nested")
    separation = angular_separation(ra, dec, lon.to_value(u.deg), lat.to_value(u.deg))
    weight = np.where(separation <= CIRCLE_EXTENT_SIGMAS * sigma,
                      np.exp(-0.5 * (separation / sigma) ** 2), 0.0)
    probability = weight / weight.sum()
    density = probability / nside_to_pixel_area(nside).to_value(u.sr)
    return Skymap(4 * nside ** 2 + ipix, density)


def _read(data, what, max_bytes):
    try:
        return Skymap.read(data, max_bytes)
    except (ValueError, OSError) as error:
        raise TargetError(f"{what} cannot be read: {error}") from None


def _download(url, timeout, stopping=None, retry=True, limit=DOWNLOAD_LIMIT):
    """The bytes at *url* (at most :data:`~.formats.MAX_PAYLOAD`) fetched within *timeout*
    seconds, or :class:`TargetError`; :class:`Stopping` as soon as *stopping* is set.

    Each try runs in a thread of its own: a server sending a byte now and then is given
    *timeout* in all, not for each byte, and a daemon asked to stop need not wait for it
    (systemd and launchd kill a daemon slow to stop). A try given up on ends by itself (the
    socket's own timeout), its bytes dropped. With *retry*, a failure that may pass (no
    connection, no answer, HTTP 404, 429 or 5xx: GraceDB may announce a file a moment before
    it serves it) is tried again, after :data:`RETRY_FIRST_WAIT` seconds, then twice as long
    each time up to :data:`RETRY_LONGEST_WAIT`, while *timeout* lasts. *limit* names what
    sets *timeout*.
    """
    if not url.startswith(("https://", "http://")):
        raise TargetError(f"the skymap URL {url!r} is not http(s)")
    started = time.monotonic()
    deadline = started + timeout
    wait, tries = RETRY_FIRST_WAIT, 0
    while True:
        tries += 1
        try:
            return _try(url, timeout, deadline, stopping, limit)
        except _Unreachable as error:
            if not (retry and error.may_pass) or time.monotonic() + wait >= deadline:
                elapsed = time.monotonic() - started
                said = "" if tries == 1 else \
                    f" ({tries} tries in {elapsed:.1f} s; {limit}: {timeout:g} s)"
                raise TargetError(f"the skymap at {url} cannot be reached: {error}{said}") \
                    from None
            log.info("the skymap at %s cannot be reached yet (%s): trying again in %g s", url,
                     error, wait)
        if _stopped_within(stopping, wait):
            raise Stopping(f"stopping: the skymap at {url} was not waited for")
        wait = min(2 * wait, RETRY_LONGEST_WAIT)


def _try(url, timeout, deadline, stopping, limit):
    """One try at fetching *url*, in a thread, by *deadline* (:func:`time.monotonic`): its
    bytes, or :class:`_Unreachable`, :class:`TargetError` (too large, or not fetched by the
    deadline, *timeout* set by *limit*), :class:`Stopping`."""
    fetched = concurrent.futures.Future()

    def fetch(seconds):
        try:
            fetched.set_result(_fetch(url, seconds))
        except Exception as error:  # raised in the waiting thread, as without this one
            fetched.set_exception(error)

    left = deadline - time.monotonic()
    if left > 0:
        threading.Thread(target=fetch, args=(left,), name="skymap-download",
                         daemon=True).start()
    while left > 0:
        if stopping is not None and stopping.is_set():
            raise Stopping(f"stopping: the skymap at {url} was not waited for")
        try:
            return fetched.result(timeout=min(left, STOP_LOOK_INTERVAL))
        except concurrent.futures.TimeoutError:
            left = deadline - time.monotonic()
    raise TargetError(f"the skymap at {url} was not fetched within {timeout:g} s ({limit})")


def _stopped_within(stopping, seconds):
    """Wait *seconds*; whether *stopping* (if any) was set meanwhile."""
    if stopping is None:
        time.sleep(seconds)
        return False
    return stopping.wait(seconds)


class _Unreachable(Exception):
    """A try that failed; *may_pass*: whether trying again may succeed."""

    def __init__(self, reason, may_pass):
        super().__init__(reason)
        self.may_pass = may_pass


def tls_context():
    """The certificates an HTTPS skymap server is checked against: the system's (``None``,
    urllib's default), or certifi's where Python finds none. python.org's Python on macOS has
    none until its "Install Certificates" step: every download failed there with
    CERTIFICATE_VERIFY_FAILED, and alerts with only a skymap URL planned nothing."""
    paths = ssl.get_default_verify_paths()
    if paths.cafile or (paths.capath and os.listdir(paths.capath)):
        return None
    return ssl.create_default_context(cafile=certifi.where())


def _fetch(url, timeout):
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=tls_context()) as response:
            data = response.read(MAX_PAYLOAD + 1)
    except urllib.error.HTTPError as error:
        raise _Unreachable(error, error.code in RETRIED_HTTP_CODES or error.code >= 500) \
            from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise _Unreachable(getattr(error, "reason", error), True) from None
    except ValueError as error:  # a URL urllib cannot use
        raise _Unreachable(error, False) from None
    if len(data) > MAX_PAYLOAD:
        raise TargetError(f"the skymap at {url} is larger than {MAX_PAYLOAD:,} bytes")
    return data
