"""Each daemon's status page, ``GET /`` on its port (XML-RPC stays at ``POST /`` and ``/RPC2``).

A small HTML page, refreshed every :data:`REFRESH_SECONDS`, with the daemon's health, the orders
it is working on or has just finished, its devices, anything of its own (the telescope shows its
latest frame and that frame's FITS header), and its last log lines. Each order has a page of
its own, ``/orders/<ID>.html`` (its state, the work order, its progress and history: what
``toros status ID`` prints), and its Status as JSON at ``/orders/<ID>.json``. Self-contained: no
scripts, no outside resources, so it works on an observatory's offline network.
"""

import html
import json
import urllib.parse

from .workorders import WorkOrderError

#: Seconds between automatic reloads of the page.
REFRESH_SECONDS = 10
#: Orders shown, the most recently changed first.
RECENT_ORDERS = 25
#: Where each order has a page of its own (``<ID>.html``) and its Status as JSON (``.json``).
ORDERS_PATH = "/orders/"
#: The columns of an order's history.
HISTORY_COLUMNS = ("Time", "Status", "Reason")

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 2px 8px;
text-align: left; vertical-align: top; font-size: 0.9em; }
pre { background: #f4f4f4; padding: 0.5em; font-size: 0.8em; overflow-x: auto; }
.state-done { color: #070; } .state-failed, .state-interrupted { color: #b00; }
"""


class StatusPages:
    """Renders one daemon's page.

    Parameters
    ----------
    desk : FrontDesk
        The daemon's front desk (health, journal, handler).
    recent : RecentLines
        The daemon's last log lines.
    """

    def __init__(self, desk, recent):
        self.desk = desk
        self.recent = recent

    def index(self):
        """The page, as HTML text."""
        health = self.desk.health()
        service = health["Service"]
        parts = [page_head(f"TOROS {service}"),
                 f"<h1>TOROS Manager — {_e(service)} daemon</h1>",
                 f"<p id='summary'>{_e(health['Message'])}</p>",
                 "<h2>Health</h2>",
                 _table([(key, health[key]) for key in
                         ("Status", "Version", "Address", "Started", "Clock", "Now")]
                        + [("Uptime", f"{health['Uptime']:.0f} s"),
                           ("Earth Rotation", health["Earth Rotation"]["Message"]),
                           ("Queue", ", ".join(f"{n} {state}" for state, n in
                                               sorted(health["Queue"].items())) or "empty"),
                           ("Journal", f"{health['Journal']['File']} "
                                       f"({health['Journal']['Free MB']:,.1f} MB free on its "
                                       "disk)")],
                        table_id="health"),
                 "<h2>Orders</h2>", self._orders()]
        for title, fragment in self.desk.handler.page_sections():
            parts += [f"<h2>{_e(title)}</h2>", fragment]
        parts += ["<h2>Devices</h2>", _nested(health["Devices"]),
                  "<h2>Log</h2>", f"<pre id='log'>{_e(chr(10).join(self.recent.snapshot()))}"
                                  "</pre>",
                  "</body></html>"]
        return "".join(parts)

    def asset(self, path):
        """``(content type, bytes)`` for another path of the page (an order's own page, the
        telescope's preview), or ``None``."""
        if path.startswith(ORDERS_PATH):
            return self._order(urllib.parse.unquote(path[len(ORDERS_PATH):]))
        return self.desk.handler.page_asset(path)

    def _order(self, name):
        """An order's page (``<ID>.html``) or its Status (``<ID>.json``), or ``None``."""
        order_id, _, suffix = name.rpartition(".")
        if suffix not in ("html", "json"):
            return None
        try:
            status = self.desk.status(order_id)
        except WorkOrderError:
            return None  # no such order: not found
        if suffix == "json":
            return "application/json", json.dumps(status, indent=1, default=str).encode()
        return "text/html; charset=utf-8", order_html(status).encode()

    def _orders(self):
        records = self.desk.journal.recent(RECENT_ORDERS)
        if not records:
            return "<p>No orders yet.</p>"
        rows = ["<table id='orders'><tr><th>ID</th><th>WOType</th><th>Status</th>"
                "<th>Priority</th><th>Message</th><th>Updated</th></tr>"]
        for record in records:
            rows.append(f"<tr><td>{order_link(record.id)}</td><td>{_e(record.wotype)}</td>"
                        f"<td class='state-{_e(record.state)}'>{_e(record.state)}</td>"
                        f"<td>{record.priority:g}</td><td>{_e(record.message)}</td>"
                        f"<td>{_e(record.updated)}</td></tr>")
        return "".join(rows) + "</table>"


def page_head(title, refresh=True):
    """The start of a page, to its ``<body>``: *title*, the shared style and, if *refresh*,
    a reload every :data:`REFRESH_SECONDS`."""
    reload = f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>" if refresh else ""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{reload}"
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>")


def order_path(order_id, suffix="html"):
    """Where *order_id*'s page (``html``) or Status (``json``) is, its ID percent-encoded."""
    return f"{ORDERS_PATH}{urllib.parse.quote(order_id, safe='')}.{suffix}"


def order_link(order_id):
    """*order_id* as a link to its page."""
    return f"<a href='{order_path(order_id)}'>{_e(order_id)}</a>"


def order_html(status):
    """An order's page, from its Status answer: its state, the work order, its progress (an
    observation's frames, a calibration's notes and skipped files) and its history."""
    service = status["Service"]
    return "".join([
        page_head(f"{status['ID']} — TOROS {service}"),
        f"<p><a href='/'>← the {_e(service)} daemon</a> · "
        f"<a href='{order_path(status['ID'], 'json')}'>this order's Status as JSON</a></p>",
        f"<h1>{_e(status['WOType'])} {_e(status['ID'])}: "
        f"<span class='state-{_e(status['Status'])}'>{_e(status['Status'])}</span></h1>",
        f"<p id='message'>{_e(status['Message'])}</p>",
        _table([("Priority", f"{status['Priority']:g} ({status['Priority Reason']})"),
                ("Created", status["Created"]), ("Updated", status["Updated"])],
               table_id="order"),
        "<h2>Work order</h2>", _nested(status["Work Order"]),
        "<h2>Progress</h2>", _nested(status["Progress"]),
        "<h2>History</h2>", rows_table(status["History"], HISTORY_COLUMNS, table_id="history"),
        "</body></html>"])


def _e(value):
    return html.escape(str(value))


def _table(pairs, table_id=None):
    identity = f" id='{table_id}'" if table_id else ""
    return (f"<table{identity}>" + "".join(f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>"
                                           for key, value in pairs) + "</table>")


def rows_table(rows, columns, table_id=None):
    """Dicts as an HTML table: a header of *columns*, a row of their values per dict."""
    identity = f" id='{table_id}'" if table_id else ""
    head = "".join(f"<th>{_e(column)}</th>" for column in columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(row[column])}</td>" for column in columns)
                   + "</tr>" for row in rows)
    return f"<table{identity}><tr>{head}</tr>{body}</table>"


def _nested(mapping):
    """A dict of dicts as nested tables."""
    rows = []
    for key, value in mapping.items():
        cell = _nested(value) if isinstance(value, dict) else _e(value)
        if isinstance(value, list):
            cell = "<br>".join(_e(item) for item in value) or "none"
        rows.append(f"<tr><th>{_e(key)}</th><td>{cell}</td></tr>")
    return "<table>" + "".join(rows) + "</table>" if rows else "<p>none</p>"


def header_table(header):
    """A FITS header as an HTML table (the telescope's latest frame)."""
    return _table([(card.keyword, f"{card.value}  / {card.comment}" if card.comment
                    else card.value) for card in header.cards if card.keyword],
                  table_id="fits-header")
