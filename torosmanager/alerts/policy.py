"""Which alerts to act on: the ``Alerts`` section of the configuration, applied to one alert.

:func:`reason_to_ignore` returns ``None`` for an alert to observe, or the sentence that says
why not (it is journaled with the alert and shown on the event's report). A retraction is
never ignored: it cancels what its event started. Of those reasons, the ones that
:func:`rules_out` gives come from what the alert says of its event (its false-alarm rate, its
chance of a neutron star or a remnant, its distance, its area): an update that says so stands
its event down.

Examples
--------
>>> reason_to_ignore(alert, config["Alerts"])                      # doctest: +SKIP
'a test alert (Alerts → Accept Test Alerts is false)'
"""

from ..config import ALERT_KINDS

#: The classification keys of the astrophysical sources that contain a neutron star.
NEUTRON_STAR_CLASSES = ("BNS", "NSBH")
#: The classification's other keys (its probabilities add up to 1 over all of them).
OTHER_CLASSES = ("BBH", "Terrestrial")
#: A classification's probabilities are given to two or three decimals: what they leave of 1
#: below this is rounding, not a class.
CLASSIFICATION_ROUNDING = 0.01


def kind_settings(alert, settings):
    """The ``Alerts`` subsection for *alert*'s kind (filter, exposures, priority), or ``None``
    for a kind no section covers."""
    title = ALERT_KINDS.get(alert.kind)
    return None if title is None else settings[title]


def issued_too_late(alert, now, settings):
    """Why *alert* cannot be taken as issued when it says, or ``None``: an issue time more
    than ``Max Issued Ahead`` after *now* (the clock's). Such an alert, kept, would have its
    event's real alerts passed over as issued before it; a retraction is checked too, as it
    would be kept as the event's latest word."""
    ahead = (alert.issued - now).total_seconds()
    limit = settings["Max Issued Ahead"]
    if ahead <= limit:
        return None
    return (f"issued at {alert.issued:%Y-%m-%d %H:%M:%S} UTC, {ahead:,.0f} s after this "
            f"daemon's clock ({now:%Y-%m-%d %H:%M:%S} UTC), more than Alerts → Max Issued "
            f"Ahead ({limit:g} s): a sender's clock off, or a date made up; not acted on")


def reason_to_ignore(alert, settings, area=None, distance=None):
    """Why *alert* is not to be observed, or ``None`` to observe it.

    Parameters
    ----------
    alert : Alert
    settings : dict
        The configuration's ``Alerts`` section.
    area : float, optional
        The localisation's credible area (at ``Credible Level``), square degrees, once known.
    distance : float, optional
        The source's mean distance, Mpc, once known (a 3-D skymap's ``DISTMEAN``).

    Returns
    -------
    str or None
    """
    return verdict(alert, settings, area, distance)[0]


def verdict(alert, settings, area=None, distance=None):
    """:func:`reason_to_ignore`'s reason, and whether it is what the alert says of its event
    (:func:`rules_out`): ``(str or None, bool)``."""
    if alert.is_retraction:
        return None, False
    if alert.test and not settings["Accept Test Alerts"]:
        return "a test alert (Alerts → Accept Test Alerts is false)", False
    kind = kind_settings(alert, settings)
    if kind is None:
        return f"kind {alert.kind!r}: no section of Alerts covers it", False
    if not kind["Act"]:
        return f"{ALERT_KINDS[alert.kind]} → Act is false", False
    if alert.alert_type not in settings["Alert Types"]:
        return (f"alert type {alert.alert_type} is not in Alerts → Alert Types ("
                + ", ".join(settings["Alert Types"]) + ")"), False
    if not alert.has_location:
        return "the alert says nothing of where to look", False
    reason = rules_out(alert, settings, area, distance)
    return reason, reason is not None


def rules_out(alert, settings, area=None, distance=None):
    """Why what *alert* says of its event rules the event out under the ``Alerts`` settings
    (its false-alarm rate, its chance of a neutron star or a remnant, its distance, its
    *area*), or ``None``. The other reasons to ignore an alert (a test, a kind or type not
    acted on, no location) say nothing of the event: an earlier alert's plan stands."""
    if alert.kind == "gw":
        reason = _gravitational_wave_reason(alert.properties, settings, distance)
        if reason:
            return reason
    if area is not None and area > settings["Max Area"]:
        return (f"its {settings['Credible Level']:.0%} area is {area:,.0f} deg², over "
                f"Alerts → Max Area ({settings['Max Area']:,.0f} deg²)")
    return None


def _gravitational_wave_reason(properties, settings, distance):
    far = properties.get("far")
    if far is not None and far > settings["Max False Alarm Rate"]:
        return (f"false-alarm rate {far:.3g} Hz (one per {_period(far)}) is over Alerts → Max "
                f"False Alarm Rate ({settings['Max False Alarm Rate']:.3g} Hz)")
    least_ns = settings["Min Probability of Neutron Star"]
    if least_ns > 0:
        has_ns = neutron_star_probability(properties)
        if has_ns is None or has_ns < least_ns:
            return (f"probability of a neutron star {_fraction(has_ns)} is under Alerts → Min "
                    f"Probability of Neutron Star ({least_ns:g})")
    least_remnant = settings["Min Probability of Remnant"]
    if least_remnant > 0:
        remnant = properties.get("HasRemnant")
        if remnant is None or remnant < least_remnant:
            return (f"HasRemnant {_fraction(remnant)} is under Alerts → Min Probability of "
                    f"Remnant ({least_remnant:g})")
    if distance is not None and distance > settings["Max Distance"]:
        return (f"mean distance {distance:,.0f} Mpc is over Alerts → Max Distance "
                f"({settings['Max Distance']:,.0f} Mpc)")
    return None


def neutron_star_probability(properties):
    """HasNS, or else the BNS + NSBH share of the classification; ``None`` when neither is
    given, or when a class left out of the classification (unknown: not given, or not a
    probability) may hold any of it.

    The classes' probabilities add up to 1: what the given ones leave is the missing classes'
    share. It goes to the neutron-star share when the other classes are all given, and is
    nothing when it is below :data:`CLASSIFICATION_ROUNDING`.
    """
    if properties.get("HasNS") is not None:
        return float(properties["HasNS"])
    classification = properties.get("classification")
    if not isinstance(classification, dict):
        return None
    given = float(sum(classification.get(name, 0.0) for name in NEUTRON_STAR_CLASSES))
    if all(name in classification for name in NEUTRON_STAR_CLASSES):
        return given
    left = 1.0 - float(sum(classification.values()))
    if left < CLASSIFICATION_ROUNDING:
        return given
    if all(name in classification for name in OTHER_CLASSES):
        return given + left
    return None


def _fraction(value):
    return "unknown" if value is None else f"{value:.2f}"


#: Units a false alarm's period is given in, each from where it reads best: (seconds, name).
_PERIOD_UNITS = ((365.25 * 86400, "years"), (86400, "days"), (3600, "hours"), (60, "minutes"))


def _period(rate):
    """The mean time between false alarms at *rate* (Hz, > 0), e.g. '1.2 days', '10 s'."""
    seconds = 1 / rate
    for length, name in _PERIOD_UNITS:
        if seconds >= length:
            return f"{seconds / length:,.1f} {name}"
    return f"{seconds:.2g} s"
