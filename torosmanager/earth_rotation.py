"""Earth-rotation data (IERS) for an observatory that may stay offline for months.

astropy needs UT1−UTC and the polar motion to turn sky coordinates into altitudes and hour
angles. It reads them from the IERS-A table that ships in the ``astropy-iers-data`` package and,
by default, downloads a newer one whenever that table's predictions are more than 30 days old,
raising an error when it cannot. An observatory computer often has no route to the IERS
servers, so every TOROS program, and every program the tests start, runs astropy with the one
set of settings below: never download, and keep working on the bundled table however old it
is. What that costs is reported instead of failing: :func:`table_status` says how old the
table is and how large an error its age implies, and ``toros iers --update`` brings a newer
table when a network is there.

The error estimates are the standard deviations IERS Bulletin A gives for its own predictions,
*d* days after the last measured value:

    σ(UT1−UTC) = 0.00025 s · d^0.75        σ(x, y) = 0.00068″ · d^0.80

One second of UT1 is 15″ of hour angle on the equator, so the pointing error is about
``hypot(15″/s · σ(UT1−UTC), σ(x, y))``. Bulletin A gives these formulae for one year of
predictions; past the table's end astropy holds its last values, and the estimate is a lower
bound.
"""

import logging
import math
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

#: astropy's settings for every process: applied in this one by :func:`use_astropy_offline`,
#: written as an astropy configuration file for others by :func:`offline_environment`.
#: ``auto_max_age`` infinite: a table of any age is used (with a warning), never refused.
ASTROPY_SETTINGS = {
    "utils.data": {"allow_internet": False},
    "utils.iers.iers": {"auto_download": False, "auto_max_age": math.inf,
                        "iers_degraded_accuracy": "warn"},
}

#: IERS Bulletin A's prediction errors: coefficient and exponent of days since the last
#: measured value; UT1−UTC in seconds, polar motion in arcseconds.
UT1_ERROR_COEFFICIENT = 0.00025
UT1_ERROR_EXPONENT = 0.75
POLAR_MOTION_ERROR_COEFFICIENT = 0.00068
POLAR_MOTION_ERROR_EXPONENT = 0.80
#: Arcseconds of hour angle per second of time (360° in 86400 s).
ARCSEC_PER_SECOND_OF_TIME = 15.0
#: The package that ships the table, upgraded by ``toros iers --update``.
IERS_DATA_PACKAGE = "astropy-iers-data"

log = logging.getLogger(__name__)

_MJD_EPOCH = datetime(1858, 11, 17, tzinfo=timezone.utc)
_setup_lock = threading.Lock()
_table_lock = threading.Lock()


def use_astropy_offline():
    """Make astropy work without the network in this process (idempotent, thread-safe).

    Never download, use the bundled tables whatever their age, and warn (once in the log, not
    for every transformation) rather than raise beyond their end.

    The settings are written into astropy's configuration, as ``conf.name = value`` would write
    them, without importing the modules they belong to: those modules read them whenever they
    are imported, and a daemon that never transforms coordinates (the dome, the scheduler)
    never imports ``astropy.utils.iers``, which brings ``astropy.table`` and its readers (two
    seconds of CPU and 30 MB).
    """
    from astropy.config import get_config

    with _setup_lock:
        for section, settings in ASTROPY_SETTINGS.items():
            configuration = get_config(f"astropy.{section}")
            for name, value in settings.items():
                configuration[name] = value
    warnings.filterwarnings("once", module="astropy.utils.iers")
    warnings.filterwarnings("once", message=".*(IERS|leap-second).*")
    # Once the leap-second list has expired, astropy's attempt to update it computes with NaN
    # on its way to giving up (and says so in one warning): the NaN warnings add nothing.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="astropy.time.utils")


def iers_table():
    """astropy's Earth-rotation table (``IERS_Auto``) for this process, read once.

    astropy reads the table on first use, in whichever thread needs it, without a lock: threads
    starting together (a daemon's start-up read and its first health report, say) would each
    spend seconds reading it, side by side on the same cores. Code that needs the table calls
    this first, and waits for the one reading under way instead. Once read, it is astropy's
    own cache (``IERS_Auto.iers_table``) that answers, without the lock or the set-up.

    The first call in a process loads the table from this user's cache
    (:mod:`torosmanager.earth_rotation_cache`) when it was made from the same files, and
    otherwise parses astropy's files (a second or more of CPU) and caches the result.
    """
    from astropy.utils import iers

    table = iers.IERS_Auto.iers_table
    if table is None:
        use_astropy_offline()
        with _table_lock:
            table = iers.IERS_Auto.iers_table
            if table is None:
                table = _open_table()
    return table


def _open_table():
    """Read astropy's table from this user's cache, or parse it and cache it; astropy's
    ``IERS_Auto`` (and so every transformation) then uses it."""
    from astropy.utils import iers

    from . import earth_rotation_cache

    started = time.monotonic()
    directory = earth_rotation_cache.cache_directory()
    table = path = None
    if directory is not None:
        key = earth_rotation_cache.source_key()
        path = directory / earth_rotation_cache.CACHE_FILE_NAME
        table = earth_rotation_cache.load(path, key)
    if table is not None:
        log.info("Earth-rotation table loaded from %s in %.2f s", path,
                 time.monotonic() - started)
    else:
        table = iers.IERS_Auto.open()
        log.info("Earth-rotation table read from %s in %.1f s",
                 table.meta.get("data_path", "astropy's files"), time.monotonic() - started)
        if path is not None:
            earth_rotation_cache.save(table, table_facts(table), path, key)
    iers.IERS_Auto.iers_table = table
    return table


def _cached_facts():
    """The facts of the table this process would read, from this user's cache; ``None`` when
    the cache has none made from the same files."""
    from . import earth_rotation_cache

    directory = earth_rotation_cache.cache_directory()
    if directory is None:
        return None
    path = directory / earth_rotation_cache.CACHE_FILE_NAME
    facts = earth_rotation_cache.load_facts(path, earth_rotation_cache.source_key())
    if facts is not None:
        log.info("Earth-rotation table's age read from its cache %s", path)
    return facts


def table_facts(table):
    """What :class:`TableStatus` says of astropy's *table*, as JSON values: the file it was read
    from, the MJD of its last measured day and of its last row, and when the leap-second list
    astropy uses expires (ISO 8601, ``None`` when it does not say)."""
    from astropy.utils import iers

    with warnings.catch_warnings():
        # An expired list warns; its expiry date is what is reported.
        warnings.simplefilter("ignore")
        expires = iers.LeapSeconds.auto_open().expires
    return {"Source": str(table.meta.get("data_path", "")),
            "Last Measured MJD": float(table.meta["predictive_mjd"]),
            "Table End MJD": float(table["MJD"][-1].value),
            "Leap Seconds Expire": (expires.utc.to_datetime(timezone=timezone.utc).isoformat()
                                    if expires else None)}


def astropy_config_text():
    """:data:`ASTROPY_SETTINGS` as an ``astropy.cfg`` file."""
    lines = []
    for section, settings in ASTROPY_SETTINGS.items():
        lines.append(f"[{section}]")
        lines += [f"{name} = {value}" for name, value in settings.items()]
    return "\n".join(lines) + "\n"


def offline_environment(directory):
    """Environment variables that give another process (a third-party server, say) the same
    astropy settings: an ``astropy.cfg`` written below *directory*.

    astropy ≥ 7.1 reads ``ASTROPY_CONFIG_DIR``; older versions ``$XDG_CONFIG_HOME/astropy``.
    """
    config_dir = Path(directory) / "astropy"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "astropy.cfg").write_text(astropy_config_text(), encoding="utf-8")
    return {"ASTROPY_CONFIG_DIR": str(config_dir), "XDG_CONFIG_HOME": str(directory)}


@dataclass(frozen=True)
class TableStatus:
    """How old the Earth-rotation table is at a given instant, and what that costs.

    Attributes
    ----------
    source : str
        The file the table was read from.
    package_version : str
        The version of ``astropy-iers-data`` installed (empty when unknown).
    last_measured : datetime
        The first day the table only predicts.
    table_end : datetime
        The last day the table covers; astropy holds the values of that day after it.
    age_days : float
        Days from *last_measured* to the instant asked about (0 when it is measured).
    ut1_utc_error : float
        Estimated error of UT1−UTC, seconds.
    polar_motion_error : float
        Estimated error of the pole's position, arcseconds.
    leap_seconds_expire : datetime or None
        When the leap-second list stops being known to be complete.
    at : datetime
        The instant the status is for.
    """

    source: str
    package_version: str
    last_measured: datetime
    table_end: datetime
    age_days: float
    ut1_utc_error: float
    polar_motion_error: float
    leap_seconds_expire: datetime | None
    at: datetime

    @property
    def pointing_error(self):
        """Estimated pointing error, arcseconds (UT1 on the equator and the pole together)."""
        return math.hypot(ARCSEC_PER_SECOND_OF_TIME * self.ut1_utc_error,
                          self.polar_motion_error)

    @property
    def beyond_table(self):
        """Whether the instant is after the last day of the table."""
        return self.at > self.table_end

    def summary(self):
        """One sentence for a log line, a status page or ``toros iers``."""
        text = (f"IERS-A table ({self.package_version or self.source}) measured until "
                f"{self.last_measured:%Y-%m-%d}, {self.age_days:.0f} d before "
                f"{self.at:%Y-%m-%d}: UT1−UTC ±{self.ut1_utc_error * 1000:.0f} ms, pole "
                f"±{self.polar_motion_error:.3f}″, pointing ±{self.pointing_error:.2f}″")
        if self.beyond_table:
            text += (f"; past the table's end ({self.table_end:%Y-%m-%d}), so the error is "
                     "larger than this estimate")
        if self.leap_seconds_expire is not None and self.at > self.leap_seconds_expire:
            text += (f"; leap-second list expired {self.leap_seconds_expire:%Y-%m-%d} "
                     "(a leap second announced since would be missed)")
        return text

    def as_dict(self):
        """The status as a health-report field (XML-RPC types only)."""
        return {
            "Table": self.source,
            "Package Version": self.package_version,
            "Last Measured": self.last_measured.date().isoformat(),
            "Table End": self.table_end.date().isoformat(),
            "Age": round(self.age_days, 1),
            "UT1-UTC Error": round(self.ut1_utc_error, 4),
            "Polar Motion Error": round(self.polar_motion_error, 4),
            "Pointing Error": round(self.pointing_error, 3),
            "Leap Seconds Expire": (self.leap_seconds_expire.date().isoformat()
                                    if self.leap_seconds_expire else ""),
            "Message": self.summary(),
        }


def prediction_errors(days):
    """Bulletin A's error estimates *days* after the last measured value.

    Returns
    -------
    tuple of float
        σ(UT1−UTC) in seconds and σ(x, y) in arcseconds; both 0 for a measured day.
    """
    days = max(days, 0.0)
    return (UT1_ERROR_COEFFICIENT * days ** UT1_ERROR_EXPONENT,
            POLAR_MOTION_ERROR_COEFFICIENT * days ** POLAR_MOTION_ERROR_EXPONENT)


def _from_mjd(mjd):
    return _MJD_EPOCH + timedelta(days=float(mjd))


class EarthRotationTable:
    """The Earth-rotation table astropy uses in this process: how old it is, read once.

    Reading it takes seconds, so a daemon reads it in a thread of its own at start-up, and its
    health report says so until it is read.

    Parameters
    ----------
    with_table : bool
        Whether :meth:`load` also makes astropy's table ready in this process (:func:`iers_table`),
        for a program that transforms coordinates. Otherwise only the facts are read, from this
        user's cache when it has them (milliseconds, without importing astropy's tables), and
        the table is read only when the cache has no facts made from the same files.
    """

    def __init__(self, with_table=True):
        self.with_table = with_table
        self._loaded = threading.Event()
        self._lock = threading.Lock()
        self._facts = self._package_version = None
        self._error = None

    def load(self):
        """Read the table (in this thread); the facts :meth:`status` needs are kept."""
        with self._lock:
            if self._loaded.is_set():
                return
            try:
                facts = None if self.with_table else _cached_facts()
                self._facts = facts if facts is not None else table_facts(iers_table())
                self._package_version = tables_version()
            except Exception as error:  # noqa: BLE001 - reported in the health, never fatal
                self._error = f"{type(error).__name__}: {error}"
            self._loaded.set()

    def status(self, at):
        """The :class:`TableStatus` at *at*, or ``None`` while the table is being read.

        Raises
        ------
        RuntimeError
            When the table could not be read (the message says why).
        """
        if not self._loaded.is_set():
            return None
        if self._error is not None:
            raise RuntimeError(f"the Earth-rotation table could not be read: {self._error}")
        facts = self._facts
        last_measured = _from_mjd(facts["Last Measured MJD"])
        leap_expiry = facts["Leap Seconds Expire"]
        age = max((at - last_measured).total_seconds() / 86400.0, 0.0)
        ut1_error, pole_error = prediction_errors(age)
        return TableStatus(source=facts["Source"], package_version=self._package_version,
                           last_measured=last_measured,
                           table_end=_from_mjd(facts["Table End MJD"]), age_days=age,
                           ut1_utc_error=ut1_error, polar_motion_error=pole_error,
                           leap_seconds_expire=(datetime.fromisoformat(leap_expiry)
                                                if leap_expiry else None),
                           at=at)

    def health(self, at):
        """The ``Earth Rotation`` field of a health report at *at*."""
        try:
            status = self.status(at)
        except RuntimeError as error:
            return {"Message": str(error)}
        if status is None:
            return {"Message": "reading the IERS-A table"}
        return status.as_dict()


def tables_version():
    """The installed version of :data:`IERS_DATA_PACKAGE` (empty when unknown)."""
    from importlib import metadata

    try:
        return metadata.version(IERS_DATA_PACKAGE)
    except metadata.PackageNotFoundError:
        return ""
