"""An event's coverage in words, for its report, its HTML page and ``toros alerts EVENT``.

The coverage itself is :meth:`.response.Response.coverage`: ``Planned``, ``Visible Tonight``
and ``Total`` (probability or galaxy score), ``Observed`` in a report, and ``Later Nights`` for
an event followed for more than tonight (``Alerts → Nights``).
"""

from datetime import timezone

from ..workorders import parse_utc


def to_the_minute(instant):
    """An ISO 8601 UTC instant as text (``2026-12-03T01:00:00.000Z``) for people:
    ``2026-12-03 01:00``."""
    return instant[:16].replace("T", " ")


def to_the_second(instant):
    """An ISO 8601 instant as text (``2026-12-03T01:00:05.250000+00:00``, or ending in ``Z``)
    for people, in UTC: ``2026-12-03 01:00:05``."""
    return f"{parse_utc(instant).astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}"


def night_from(dusk):
    """A later night named by its dusk (ISO 8601 UTC text): ``the night from 2026-12-03 01:00
    UTC``."""
    return f"the night from {to_the_minute(dusk)} UTC"


def coverage_text(coverage):
    """*coverage* in a line: ``Planned: 41.0%, ...; the night from 2026-12-03 01:00 UTC:
    planned 38.2%, visible 52.0%``."""
    tonight = ", ".join(f"{key}: {value:.1%}" for key, value in coverage.items()
                        if key != "Later Nights")
    return tonight + "".join(f"; {night_from(night['Night'])}: planned {night['Planned']:.1%}, "
                             f"visible {night['Visible']:.1%}"
                             for night in coverage.get("Later Nights", ()))
