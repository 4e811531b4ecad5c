"""One alert, whatever format it came in: :class:`Alert`.

The readers of :mod:`torosmanager.alerts.formats` turn an LVK JSON alert, a VOEvent or a GCN
JSON notice into an :class:`Alert`; everything downstream (journal, skymap, targets) reads only
this class.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime

#: The alert types, in the LVK's words; GRB and neutrino notices are mapped onto them.
ALERT_TYPES = ("EARLYWARNING", "PRELIMINARY", "INITIAL", "UPDATE", "RETRACTION")


def alert_label(alert_type, serial):
    """How an alert is named among its event's: ``INITIAL #3``, or ``INITIAL`` without a
    serial (0)."""
    return f"{alert_type} #{serial}" if serial else alert_type


@dataclass(frozen=True)
class Alert:
    """An alert as it arrived: what happened, where to look and how sure the sender is.

    Parameters
    ----------
    event_id : str
        The event the alert is about, the same in all its alerts: an LVK superevent
        (``"S230518h"``, ``"G298048"``), a GRB trigger number after its mission
        (``"Fermi-524666471"``, see :func:`~torosmanager.alerts.formats.event_id`), an IceCube
        event name (``"IceCube-230416A"``), an Einstein Probe id.
    kind : str
        What was seen: ``"gw"``, ``"grb"``, ``"neutrino"``, ``"x-ray"`` or ``"other"``.
    alert_type : str
        One of :data:`ALERT_TYPES`: ``"EARLYWARNING"``, ``"PRELIMINARY"``, ``"INITIAL"``,
        ``"UPDATE"`` or ``"RETRACTION"``.
    serial : int
        The alert's number in its event's sequence (VOEvent ``Pkt_Ser_Num``, GCN
        ``record_number``); 0 when the format carries none (LVK JSON): order those by *issued*.
    issued : datetime
        When the alert was written, timezone-aware UTC.
    source : str
        Who found the event: a pipeline (``"gstlal"``, ``"SGNL"``) or mission and instrument
        (``"IceCube IC86"``, ``"Fermi Satellite, GBM Instrument"``).
    test : bool
        True for a test, mock or injected alert, never to be followed up as a real event.
    ra, dec : float or None
        Position, ICRS (J2000) degrees; both or neither.
    error_radius : float or None
        Radius of the error circle around (*ra*, *dec*) in degrees, as the sender gives it
        (its containment probability, when known, is ``properties["containment_probability"]``).
    skymap : bytes or None
        A HEALPix localisation as FITS bytes (flat or multi-order), when the alert carries one.
    skymap_url : str or None
        Where the HEALPix localisation can be downloaded (not fetched by the readers).
    properties : dict
        Everything else, under the same names whatever the format when there is one:
        ``"far"`` (Hz), ``"classification"`` (dict), ``"HasNS"``, ``"HasRemnant"``,
        ``"HasMassGap"``, ``"event_time"`` (datetime of the trigger or merger), ``"instruments"``,
        ``"containment_probability"``, ``"distance"``, ... plus the format's own fields.
    """

    event_id: str
    kind: str
    alert_type: str
    serial: int
    issued: datetime
    source: str
    test: bool = False
    ra: float | None = None
    dec: float | None = None
    error_radius: float | None = None
    skymap: bytes | None = field(default=None, repr=False)
    skymap_url: str | None = None
    properties: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        if not isinstance(self.event_id, str) or not self.event_id:
            raise ValueError(f"Alert: event_id must be a non-empty string, not {self.event_id!r}")
        if self.alert_type not in ALERT_TYPES:
            raise ValueError(f"Alert: alert_type {self.alert_type!r} is not one of {ALERT_TYPES}")
        if isinstance(self.serial, bool) or not isinstance(self.serial, int) or self.serial < 0:
            raise ValueError(f"Alert: serial must be an integer >= 0, not {self.serial!r}")
        if not isinstance(self.issued, datetime) or self.issued.utcoffset() is None:
            raise ValueError(f"Alert: issued must be a timezone-aware datetime, "
                             f"not {self.issued!r}")
        if (self.ra is None) != (self.dec is None):
            raise ValueError(f"Alert: ra and dec go together (ra={self.ra!r}, dec={self.dec!r})")
        if self.ra is not None:
            if not (math.isfinite(self.ra) and 0 <= self.ra <= 360):
                raise ValueError(f"Alert: ra must be within [0, 360] degrees, not {self.ra!r}")
            if not (math.isfinite(self.dec) and -90 <= self.dec <= 90):
                raise ValueError(f"Alert: dec must be within [-90, 90] degrees, not {self.dec!r}")
        if self.error_radius is not None:
            if self.ra is None:
                raise ValueError("Alert: error_radius needs a position (ra, dec)")
            if not (math.isfinite(self.error_radius) and 0 <= self.error_radius <= 180):
                raise ValueError(f"Alert: error_radius must be within [0, 180] degrees, "
                                 f"not {self.error_radius!r}")
        if self.skymap is not None and not isinstance(self.skymap, bytes):
            raise ValueError(f"Alert: skymap must be bytes, not {type(self.skymap).__name__}")

    @property
    def is_retraction(self):
        """True if the alert withdraws its event."""
        return self.alert_type == "RETRACTION"

    @property
    def waits_for_its_map(self):
        """True if its localisation must be fetched, with nothing to fall back on: it links
        its skymap (an LVK VOEvent), carries none, and gives no position."""
        return self.skymap is None and self.skymap_url is not None and self.ra is None

    @property
    def has_location(self):
        """True if the alert says where to look: a position, a skymap or a skymap URL."""
        return self.ra is not None or self.skymap is not None or self.skymap_url is not None
