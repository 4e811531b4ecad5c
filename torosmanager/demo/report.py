"""The night report: one HTML page with the plan chart, a calibrated frame, and what happened."""

import html
import os

from ..pages import page_head, rows_table
from ..telescope.preview import preview_png

#: The report's page, in its directory, and the alert's map beside it.
PAGE = "index.html"
EVENT_MAP = "event.png"


def write(directory, title, summary, events, plan, site, calibrated_frame, event_map=None):
    """Write :data:`PAGE` (and its pictures) into *directory*; return its path.

    Parameters
    ----------
    summary : list of dict
        The summary table's rows.
    events : list of str
        The night, one line per event.
    plan : dict or None
        The scheduler's plan (its Status ``Plan``), drawn as altitude against time.
    site : dict
        The configuration's ``Site``.
    calibrated_frame : str or None
        A calibrated FITS frame to show.
    event_map : bytes or None
        The night's alert's localisation with its targets (PNG), as the alerts daemon draws
        it.
    """
    os.makedirs(directory, exist_ok=True)
    parts = [page_head(title, refresh=False), f"<h1>{html.escape(title)}</h1>",
             "<h2>Orders</h2>", _table(summary)]
    if plan and plan.get("Entries"):
        from ..scheduler.chart import draw
        draw(plan, site, os.path.join(directory, "plan.png"))
        parts += ["<h2>The plan</h2>", "<p>Altitude of every planned target through the night, "
                  "its planned slot highlighted; twilights shaded.</p>",
                  "<img src='plan.png' alt='the plan' style='max-width: 100%'>"]
    if calibrated_frame:
        with open(os.path.join(directory, "calibrated.png"), "wb") as stream:
            stream.write(preview_png(calibrated_frame))
        parts += ["<h2>A calibrated frame</h2>",
                  f"<p>{html.escape(calibrated_frame)}</p>",
                  "<img src='calibrated.png' alt='a calibrated frame'>"]
    if event_map:
        with open(os.path.join(directory, EVENT_MAP), "wb") as stream:
            stream.write(event_map)
        parts += ["<h2>The alert</h2>", "<p>The localisation of the night's gravitational-wave "
                  "event and the fields its orders took, as the alerts daemon's report of the "
                  "event draws them.</p>",
                  f"<img src='{EVENT_MAP}' alt='the event and its targets'>"]
    parts += ["<h2>The night</h2>", f"<pre>{html.escape(chr(10).join(events))}</pre>",
              "</body></html>"]
    path = os.path.join(directory, PAGE)
    with open(path, "w", encoding="utf-8") as stream:
        stream.write("".join(parts))
    return path


def _table(rows):
    return rows_table(rows, list(rows[0])) if rows else "<p>none</p>"
