"""What a person sees of the alerts: each event's state, orders and coverage.

- :func:`events` lists the events (``toros alerts``, the status page);
- :func:`event_report` is one event: its alerts, each planned order with its state at the
  scheduler (asked at the scheduler's front desk: the alerts daemon reads no other database),
  and the probability planned, observed so far and visible tonight;
- the status page links each event's report as JSON (``/events/<ID>.json``), HTML
  (``/events/<ID>.html``) and its map with the chosen targets (``/events/<ID>.png``).
"""

import html
import io
import json
import logging
import urllib.parse
import xmlrpc.client
from datetime import datetime

import astropy.units as u
import numpy as np
from astropy_healpix import lonlat_to_healpix

from ..client import connect
from ..journal import DONE as ORDER_DONE, DamagedRow
from ..pages import page_head
from ..workorders import format_utc
from .coverage import coverage_text, to_the_minute, to_the_second
from .events import REFUSED, STANDING, SUBMITTED
from .formats import AlertFormatError
from .intake import alert_of
from .targets import DOWNLOAD_LIMIT, TargetError, localisation, observed_weight

log = logging.getLogger(__name__)

#: Events listed on the status page, the most recent first.
PAGE_EVENTS = 20
#: The map's grid, degrees per cell (the PNG is drawn from it), and the HEALPix resolution it
#: samples (nside 64: 0.9° pixels).
MAP_CELL_DEGREES = 1.0
MAP_NSIDE = 64
#: The map's figure size (inches) and resolution (dots per inch).
MAP_FIGURE_SIZE = (9.0, 5.0)
MAP_DPI = 90
#: Maps kept drawn, by event and latest alert (drawing one reads its skymap again), skymaps
#: kept as fetched for alerts that only link theirs, by alert order, and events' Observed.
MAP_CACHE_SIZE = 8
#: Seconds to wait for the scheduler's answer about one order on a report.
STATUS_TIMEOUT = 2.0
#: Seconds a report waits, at most, for a map its alert links to (after a restart): a person,
#: or ``toros alerts``, waits for it. GraceDB sends a 2 MB map in well under that.
REPORT_DOWNLOAD_TIMEOUT = 5.0


def events(handler, limit=None):
    """The events, the most recent first (only the first *limit* when given): a list of dicts
    (ID, Kind, State, Alerts, Latest Alert, Orders, Planned, Updated)."""
    listed = []
    for event_id in handler.book.recent_events(limit):
        rows = handler.book.alerts(event_id)
        if not rows:
            continue  # its only alerts' rows cannot be read (the book logged them)
        latest = _current(rows)
        orders = handler.book.orders(event_id=event_id, states=STANDING + (REFUSED,))
        standing = [order for order in orders if order.state in STANDING]
        refused = [order for order in orders if order.state == REFUSED]
        coverage = _latest_coverage(rows)
        listed.append({"ID": event_id, "Kind": latest.kind,
                       "State": _state(rows, standing, handler.clock.now(), refused),
                       "Alerts": len(rows), "Latest Alert": latest.name,
                       "Orders": len(standing), "Planned": coverage.get("Planned", 0.0),
                       "Updated": latest.received, "Test": latest.test})
    return listed


def event_report(handler, event_id):
    """One event's report (a dict), or ``None`` for an event never seen."""
    rows = handler.book.alerts(event_id)
    if not rows:
        return None
    planned = handler.book.orders(event_id=event_id)
    orders, done = [], []
    for order in planned:  # in the order planned: a later alert's after an earlier's
        at_scheduler = _scheduler_status(handler.config, order) if order.state == SUBMITTED \
            else None
        if at_scheduler == ORDER_DONE:
            done.append(order)
        orders.append({"ID": order.id, "Object Name": order.work_order.get("Object Name"),
                       "RA": order.work_order["RA"], "Dec": order.work_order["Dec"],
                       "Probability": order.work_order.get("Probability"),
                       "Not Before": order.work_order.get("Not Before"),
                       "Not After": order.work_order.get("Not After"),
                       "Alert Order": order.alert_order_id, "Here": order.state,
                       "Scheduler": at_scheduler, "Message": order.message})
    standing = [order for order in planned if order.state in STANDING]
    refused = [order for order in planned if order.state == REFUSED]
    coverage = _latest_coverage(rows)
    coverage["Observed"] = round(_observed(handler, rows, done), 6)
    return {"Event": event_id, "Kind": rows[-1].kind,
            "State": _state(rows, standing, handler.clock.now(), refused),
            "Coverage": coverage,
            "Alerts": [{"Alert Order": row.order_id, "Alert Type": row.alert_type,
                        "Serial": row.serial,
                        "Issued": format_utc(datetime.fromisoformat(row.issued)),
                        "Received": row.received,
                        "Test": row.test,
                        "Summary": row.outcome.get("Summary") or _message(handler, row),
                        "Targets": row.outcome.get("Targets"),
                        "Area": row.outcome.get("Area"),
                        "Observed Orders": row.outcome.get("Observed Orders", []),
                        "Skymap SHA-256": row.outcome.get("Skymap SHA-256"),
                        "Plan Ends": row.outcome.get("Plan Ends"),
                        "Same As": row.outcome.get("Same As")}
                       for row in rows],
            "Orders": orders}


def _message(handler, row):
    """What came of an alert that left no summary in the book (being read, failed, read
    before, cancelled): its alert order's message."""
    try:
        record = handler.journal.get(row.order_id)
    except DamagedRow:  # (its journal row damaged: the report goes on without it)
        return None
    return None if record is None else record.message


def _observed(handler, rows, done):
    """What the event's orders *done* (at the scheduler) have covered of its localisation.

    Of the latest map (the alert the event's plan comes from): its probability, or galaxy
    score, in the union of the fields taken (each pixel counted once however many nights or
    alerts took its field), as an update's pick counts the fields observed tonight. Fields
    taken for an earlier alert count at what they cover of the latest map, not of theirs.
    The event's single pointing (an afterglow's later frames, maybe at a refined position,
    cover nothing more) counts once, at its ``Probability``; so does each field should the
    latest map be out of reach now (a linked map, its server down).
    """
    if not done:
        return 0.0
    latest = _planning(rows)
    targets = latest.outcome["Targets"] if latest is not None else None
    if targets == "fields" or (targets == "galaxies" and handler.catalog is not None):
        centres = tuple(sorted({(order.work_order["RA"], order.work_order["Dec"])
                                for order in done}))
        # Kept: reading the map again for every report of an event is 70 ms of a 1.4 MB alert.
        key = (latest.order_id, centres)
        weight = handler.observed_weights.get(key)
        if weight is None:
            skymap = event_skymap(handler, latest.order_id)
            if skymap is not None:
                weight = observed_weight(targets, skymap, handler.settings, handler.catalog,
                                         centres)
                keep_recent(handler.observed_weights, key, weight)
        if weight is not None:
            return weight
    kinds = {row.order_id: row.outcome.get("Targets") for row in rows}
    taken = {}
    for order in done:  # in the order planned: the latest alert's probability stays
        place = "pointing" if kinds.get(order.alert_order_id) == "pointing" else \
            (order.work_order["RA"], order.work_order["Dec"])
        taken[place] = order.work_order.get("Probability", 0.0)
    return sum(taken.values())


def page_sections(handler):
    """The status page's Events section."""
    listed = events(handler, PAGE_EVENTS)
    if not listed:
        return [("Events", "<p>No alerts yet.</p>")]
    total = handler.book.event_count()
    shown = (f"<p>The {len(listed)} most recent of {total:,} events (<code>toros alerts "
             "--all</code> lists every one).</p>" if total > len(listed) else "")
    rows = ["<table id='events'><tr><th>Event</th><th>Kind</th><th>State</th><th>Latest "
            "alert</th><th>Orders</th><th>Planned</th><th>Report</th></tr>"]
    for event in listed:
        quoted = urllib.parse.quote(event["ID"], safe="")
        rows.append(f"<tr><td>{_e(event['ID'])}</td><td>{_e(event['Kind'])}</td>"
                    f"<td>{_e(event['State'])}</td><td>{_e(event['Latest Alert'])}</td>"
                    f"<td>{event['Orders']}</td><td>{event['Planned']:.1%}</td>"
                    f"<td><a href='/events/{quoted}.html'>HTML</a> "
                    f"<a href='/events/{quoted}.json'>JSON</a></td></tr>")
    return [("Events", shown + "".join(rows) + "</table>")]


def page_asset(handler, path):
    """``/events/<ID>.json``, ``.html`` or ``.png``: ``(content type, bytes)`` or ``None``."""
    if not path.startswith("/events/"):
        return None
    name, _, suffix = urllib.parse.unquote(path[len("/events/"):]).rpartition(".")
    if not name:
        return None  # (no event has an empty ID: the book would read it as every event)
    if suffix == "png":  # the map alone: not each order's state at the scheduler
        picture = event_map(handler, name)
        return None if picture is None else ("image/png", picture)
    if suffix not in ("json", "html"):
        return None
    report = event_report(handler, name)
    if report is None:
        return None
    if suffix == "json":
        return "application/json", json.dumps(report, indent=1, default=str).encode()
    return "text/html; charset=utf-8", event_html(report).encode()


def event_html(report):
    """A report (from :func:`event_report`) as a self-contained HTML page, styled and
    refreshed as the daemon's status page is, with a link back to it."""
    quoted = urllib.parse.quote(report["Event"], safe="")
    coverage = report["Coverage"]
    parts = [page_head(report["Event"]) + "<p><a href='/'>← the alerts daemon</a></p>"
             f"<h1>{_e(report['Event'])} ({_e(report['Kind'])}): {_e(report['State'])}</h1>",
             f"<p id='coverage'>{_e(coverage_text(coverage))}</p>",
             f"<img src='/events/{quoted}.png' alt='the localisation and the targets'>",
             "<h2>Alerts</h2><table id='alerts'><tr><th>Alert order</th><th>Type</th>"
             "<th>Issued (UTC)</th><th>Received (UTC)</th><th>What came of it</th></tr>"]
    for alert in report["Alerts"]:
        parts.append(f"<tr><td>{_e(alert['Alert Order'])}</td><td>{_e(alert['Alert Type'])}"
                     f"</td><td>{to_the_second(alert['Issued'])}</td>"
                     f"<td>{to_the_second(alert['Received'])}</td>"
                     f"<td>{_e(alert['Summary'] or '')}</td></tr>")
    parts.append("</table><h2>Orders</h2><table id='orders'><tr><th>ID</th><th>Target</th>"
                 "<th>RA (°)</th><th>Dec (°)</th><th>Probability</th><th>Window (UTC)</th>"
                 "<th>Here</th><th>Scheduler</th></tr>")
    for order in report["Orders"]:
        parts.append(f"<tr><td>{_e(order['ID'])}</td><td>{_e(order['Object Name'])}</td>"
                     f"<td>{order['RA']:.4f}</td><td>{order['Dec']:.4f}</td>"
                     f"<td>{order['Probability'] or 0:.2%}</td><td>{_e(_window(order))}</td>"
                     f"<td>{_e(order['Here'])}</td>"
                     f"<td>{_e(order['Scheduler'] or '')}</td></tr>")
    parts.append("</table></body></html>")
    return "".join(parts)


def _window(order):
    """When an order may be observed, for people: ``2026-12-06 01:10 – 10:32``."""
    start, end = order["Not Before"], order["Not After"]
    if end is None:
        return "" if start is None else f"from {to_the_minute(start)}"
    end = to_the_minute(end)
    if start is None:
        return f"until {end}"
    start = to_the_minute(start)
    return f"{start} – {end[11:] if end[:10] == start[:10] else end}"


def event_map(handler, event_id):
    """A PNG of the event's latest localisation with its standing targets, or ``None``."""
    latest = _planning(handler.book.alerts(event_id))
    if latest is None:
        return None
    key = (event_id, latest.order_id)
    picture = handler.drawn_maps.get(key)
    if picture is None:
        alert = _alert(handler, latest.order_id)
        if alert is None:
            return None
        targets = [order.work_order for order in
                   handler.book.orders(event_id=event_id, states=STANDING)]
        picture = draw_map(alert, targets, event_skymap(handler, latest.order_id))
        keep_recent(handler.drawn_maps, key, picture)
    return picture


def event_skymap(handler, order_id):
    """The skymap of alert order *order_id* for a report: the one its planning had if the
    alert links it and it is still kept (:attr:`.AlertsHandler.fetched_maps`), else
    :func:`report_skymap` of the alert; ``None`` for a single pointing's error circle or a map
    out of reach."""
    skymap = handler.fetched_maps.get(order_id)
    if skymap is None:
        alert = _alert(handler, order_id)
        if alert is None:
            return None
        skymap = report_skymap(alert, handler.settings)
        if alert.skymap_url is not None and skymap is not None:
            keep_recent(handler.fetched_maps, order_id, skymap)
    return skymap


def report_skymap(alert, settings):
    """*alert*'s skymap for a report, ``None`` for a single pointing's error circle or a map
    out of reach (logged): one try at a linked map, of :data:`REPORT_DOWNLOAD_TIMEOUT` at
    most, since a person waits for the page."""
    timeout, limit = settings["Skymap Download Timeout"], DOWNLOAD_LIMIT
    if timeout > REPORT_DOWNLOAD_TIMEOUT:
        timeout, limit = REPORT_DOWNLOAD_TIMEOUT, "a report's limit"
    try:
        return localisation(alert, timeout, settings["Field of View"], retry=False,
                            limit=limit, max_bytes=settings["Max Skymap Bytes"])
    except TargetError as error:
        log.warning("%s: no map for the report: %s", alert.event_id, error)
        return None


def keep_recent(maps, key, value):
    """``maps[key] = value``, keeping only the latest :data:`MAP_CACHE_SIZE` entries: the
    maps drawn, the skymaps fetched for alerts that only link theirs (so that a report need
    not fetch its map again), and what the events' fields observed cover of them. Safe from
    several threads at once."""
    maps[key] = value
    for oldest in list(maps)[:-MAP_CACHE_SIZE]:
        maps.pop(oldest, None)


def _alert(handler, order_id):
    """The alert of alert order *order_id*, read again from the journal; ``None`` when its
    row cannot be read (edited by hand, or damaged on its disk: logged), lest it stop the
    event's report."""
    try:
        return alert_of(handler.journal.get(order_id).work_order, handler.clock.now())
    except (DamagedRow, AlertFormatError) as error:
        log.warning("alert order %s cannot be read again for its event's report: %s",
                    order_id, error)
        return None


def draw_map(alert, orders, skymap):
    """The localisation (*skymap*, else the alert's error circle, if any) and the orders'
    fields, as PNG bytes.

    matplotlib's object interface with the Agg renderer: no display, no global state.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    figure = Figure(figsize=MAP_FIGURE_SIZE, dpi=MAP_DPI)
    axes = figure.add_subplot(projection="mollweide")
    if skymap is not None:
        ra = np.arange(-180, 180, MAP_CELL_DEGREES) + MAP_CELL_DEGREES / 2
        dec = np.arange(-90, 90, MAP_CELL_DEGREES) + MAP_CELL_DEGREES / 2
        grid_ra, grid_dec = np.meshgrid(ra, dec)
        flat = skymap.flat(MAP_NSIDE)
        density = flat[lonlat_to_healpix((grid_ra % 360) * u.deg, grid_dec * u.deg, MAP_NSIDE,
                                         order="nested")]
        axes.pcolormesh(np.radians(-grid_ra), np.radians(grid_dec), density, cmap="Blues",
                        shading="auto")
    elif alert.ra is not None:
        axes.add_patch(Circle((np.radians(-_wrap(alert.ra)), np.radians(alert.dec)),
                              np.radians(max(alert.error_radius or 0, MAP_CELL_DEGREES)),
                              fill=False, color="tab:blue"))
    for order in orders:
        axes.plot(np.radians(-_wrap(order["RA"])), np.radians(order["Dec"]), marker="s",
                  markersize=4, color="tab:red", linestyle="none")
    axes.set_xticklabels([f"{(-tick) % 360:.0f}°" for tick in range(-150, 180, 30)])
    axes.grid(True, linewidth=0.3)
    axes.set_title(f"{alert.event_id} {alert.alert_type}: {len(orders)} target(s)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _scheduler_status(config, order):
    try:
        answer = connect(config, "scheduler", timeout=STATUS_TIMEOUT).front_desk(
            {"WOType": "Status", "ID": order.id})
    except (OSError, xmlrpc.client.Error) as error:
        log.debug("no status of %s from the scheduler: %s", order.id, error)
        return "unknown (the scheduler did not answer)"
    return answer.get("Status")


def _latest_coverage(rows):
    """The coverage of the event's latest plan; once retracted, nothing is planned any more
    (what was observed is counted apart, as ``Observed``)."""
    coverage = next((dict(row.outcome["Coverage"]) for row in reversed(rows)
                     if "Coverage" in row.outcome), {})
    if coverage and _retracted(rows):
        coverage["Planned"] = 0.0
        coverage.pop("Later Nights", None)
    return coverage


def _retracted(rows):
    return any(row.alert_type == "RETRACTION" for row in rows)


def _state(rows, standing, now, refused=()):
    """An event's state in a few words: retracted, observing, nights over (its orders' last
    window, to the dawn of their night, closed before *now*), ignored, failed, refused by
    the scheduler (the latest plan's orders, *refused*: a filter the telescope lacks)..."""
    if _retracted(rows):
        return "retracted"
    if standing:
        if all(order.night_over(now) for order in standing):
            return "nights over"
        return "observing"
    current = _current(rows)
    latest = current.outcome
    if latest.get("Ignored"):
        return "ignored"
    if any(order.alert_order_id == current.order_id for order in refused):
        return "refused by the scheduler"  # (its alert order failed, saying so)
    if latest.get("Problem"):
        return "failed"
    return "nothing observable" if latest.get("Targets") else "received"


def _planning(rows):
    """The alert an event's targets come from: the last of *rows* that planned some (one
    passed over, repeating another, ignored or a retraction planned none), or ``None``."""
    return next((row for row in reversed(rows) if row.outcome.get("Targets")), None)


def _current(rows):
    """The alert an event's plan comes from: the last of *rows* (in the order read) that was
    not passed over for one issued later, nor repeated one read before."""
    return next((row for row in reversed(rows)
                 if "Issued Later" not in row.outcome and "Same As" not in row.outcome),
                rows[-1])


def _wrap(ra):
    """RA in degrees as −180…180 (the Mollweide axes' longitude)."""
    return (ra + 180) % 360 - 180


def _e(value):
    return html.escape(str(value))
