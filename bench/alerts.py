"""Benchmark: the alerts daemon against issue 11's goals, measured side by side in one run.

Three tables, from one run:

* **Latency.** Real alerts (``bench/alert_data.py``: nine fixture alerts from the tests, among
  them S3456's 2.1 MB LVK JSON alert with a 3-D multi-order map, and a flat nside-1024 map made
  from gwcelery's BAYESTAR map) sent as Alert orders over XML-RPC to the real
  ``toros-alerts`` daemon, with the real ``toros-scheduler`` behind it (started as the tests
  start them: :func:`torosmanager.launcher.local_config`, :class:`DaemonProcess`, 127.0.0.1,
  a simulated clock at speed 1 on the tests' evening at CTMO, a synthetic catalogue of 10⁶
  galaxies loaded). Timed from the client: from sending the order until it is seen ended
  (the daemon's health polled every 10 ms); the daemon sets ``done`` only once the scheduler
  has accepted every Observation order of the alert. Beside it, **the baseline**: the same
  work in one Python process, without daemons: ``intake.alert_of`` + ``response.respond``
  with the same configuration and the catalogue loaded, its steps (parse, localise,
  candidates, pick) timed by wrappers around the functions ``respond`` calls.
* **Alert → slewing.** Scheduler, telescope, dome and alerts daemons with simulated devices,
  clock speed 1 (real time), the dome opened by the scheduler, a long Research observation
  exposing; an Einstein Probe alert (a small error circle, high that evening) is sent and timed
  until the telescope's Status of the target-of-opportunity order shows it slewing, with the
  parts read from each daemon's journal (Status histories).
* **Coverage.** For each fixture alert, the probability (or galaxy score) covered tonight by
  ``pick.pick`` and by the plain reference ``pick.reference_pick`` (heaviest first, ignoring
  visibility windows and slews) on the same candidates, with the same budget (the
  configuration's defaults), at the two TOROS sites (``bench/sites.py``) on two fixed nights.

Alerts are alternated (each repeat in another order, daemons and in-process in turn first),
each repeat with fresh daemons; the tables give the median and the spread (min–max) over
repeats, not the best run. Linux only (``/proc``)::

    .venv/bin/python bench/alerts.py                # 5 repeats, 5 ToOs, profiles: about 5 min
    .venv/bin/python bench/alerts.py --quick        # 2 repeats, 2 ToOs, no profiles: about 2.5 min
    .venv/bin/python bench/alerts.py --update-docs  # and rewrite its part of docs/benchmarks.md

bench/README.md explains the choices made to keep the comparison fair.
"""

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import alert_data
from cpu import Conditions, machine_line
from daemons import (EVENING, IDLE_WINDOW, LONG_ORDER, REOPEN_DELAY, SETTLE_TIMEOUT, Clock,
                     Site, history_time, idle_pool_thread, raw_stacks, start_observatory, status,
                     wait_exposing)
from docs_section import DOCS, update_docs
from sites import sites

log = logging.getLogger("bench.alerts")

ROOT = Path(__file__).resolve().parents[1]
#: A second night for the coverage table, in May: the other half of the sky (RA 8–20 h) is up.
MAY_NIGHT = datetime(2026, 5, 10, 4, 0, tzinfo=timezone.utc)
#: Real seconds between two polls of the client while it times something.
POLL_SECONDS = 0.01
#: Repeats (fresh daemons each) of the latency table, and targets of opportunity sent in the
#: slewing table (after one more, the first after the daemons start, reported apart).
DEFAULT_REPEAT, QUICK_REPEAT = 5, 2
DEFAULT_TOO, QUICK_TOO = 5, 2
#: Issue 11's goals, seconds.
GOAL_TWO_MB = 2.0
GOAL_FLAT = 5.0
GOAL_SLEWING = 5.0
#: Real seconds an alert may take to be done, and a target of opportunity to slew, before the
#: run stops with an error.
ALERT_TIMEOUT = 180.0
SLEWING_TIMEOUT = 60.0
#: States in which an order has ended.
FINAL = ("done", "failed", "cancelled")
#: Functions shown of the profile.
PROFILE_LINES = 14
#: The markers of this benchmark's results in docs/benchmarks.md (``--update-docs``).


# --- the in-process baseline --------------------------------------------------------------------

class InProcess:
    """``alert_of`` + ``respond`` in this process, with the daemons' configuration and the same
    galaxy catalogue loaded once: the work of the alerts daemon without daemons."""

    def __init__(self, config):
        from torosmanager.alerts.galaxies import GalaxyCatalog

        self.config = config
        began = time.perf_counter()
        self.catalog = GalaxyCatalog.load(config["Alerts"]["Galaxy Catalog"])
        self.catalog_seconds = time.perf_counter() - began

    def run(self, fixture, now):
        """Read and decide one alert; seconds taken in all and by step."""
        from torosmanager.alerts.intake import alert_of
        from torosmanager.alerts.response import respond

        steps = {"localise": 0.0, "candidates": 0.0, "pick": 0.0}
        with timed_steps(steps):
            began = time.perf_counter()
            alert = alert_of(fixture.order, now)
            parsed = time.perf_counter()
            response = respond(alert, self.config, now, self.catalog, id_prefix="in-process")
            ended = time.perf_counter()
        return {"total": ended - began, "parse": parsed - began, **steps,
                "targets": response.targets or ("ignored" if response.ignored else "—"),
                "orders": len(response.orders), "event": alert.event_id,
                "ignored": response.ignored}


@contextmanager
def timed_steps(steps):
    """Time the steps ``respond`` calls (in this process only): ``localisation`` and the
    credible area into ``localise``, ``candidates``, ``pick``; seconds are added to *steps*."""
    from torosmanager.alerts import response
    from torosmanager.alerts.skymap import Skymap

    def timing(function, step):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                steps[step] += time.perf_counter() - began
        return wrapper

    originals = (response.localisation, response.candidates, response.pick,
                 Skymap.credible_area)
    response.localisation = timing(originals[0], "localise")
    response.candidates = timing(originals[1], "candidates")
    response.pick = timing(originals[2], "pick")
    Skymap.credible_area = timing(originals[3], "localise")
    try:
        yield steps
    finally:
        (response.localisation, response.candidates, response.pick,
         Skymap.credible_area) = originals


# --- the latency table ------------------------------------------------------------------------

def latency_overrides(clock, catalogue):
    """Scheduler + alerts: the night's clock, test alerts acted on, the catalogue configured;
    no dome daemon (``Manage Dome: False``) and no telescope: the scheduler, which sends
    observations only while the dome answers open, sends none of these orders, and they stay
    queued."""
    return {"Clock": clock.settings(), "Scheduler": {"Manage Dome": False},
            "Alerts": {"Accept Test Alerts": True,
                       "Galaxy Catalog": alert_data.catalogue_settings(catalogue)}}


def through_daemons(site, fixture, order_id, clock):
    """Send one Alert order; seconds to its receipt and until the client sees it ended, and
    the parts read afterwards from the alerts daemon's and the scheduler's journals.

    The end is watched with the daemon's health (``{"WOType": "Status"}``, its journal's
    count of orders by state, about 1 ms of the daemon's CPU) every :data:`POLL_SECONDS`, the
    lightest query there is: polling every 10 ms must not slow the daemon measured. The order's
    Status (its history) is read once, after.
    """
    alerts = site.proxy("alerts")
    sent, began, receipt = send_and_wait(alerts, fixture, order_id, clock, ALERT_TIMEOUT)
    seen = time.perf_counter() - began
    answer = alerts.front_desk({"WOType": "Status", "ID": order_id})
    if answer["Status"] != "done":
        raise RuntimeError(f"{fixture.label}: {answer['Status']}: {answer['Message']}")
    result = {"seen": seen, "receipt": receipt, "first": None, "last": None, "orders": 0}
    for key in ("running", "done"):
        result[key] = clock.seconds_after(
            history_time(answer, lambda entry, state=key: entry["Status"] == state), sent)
    from torosmanager.alerts.intake import alert_of

    accepted = accepted_at_scheduler(site, order_id, alert_of(fixture.order, sent).event_id)
    if accepted:
        times = [clock.seconds_after(text, sent) for text in accepted]
        result.update(first=min(times), last=max(times), orders=len(times))
    return result


def send_and_wait(alerts, fixture, order_id, clock, timeout):
    """Send *fixture*'s Alert order as *order_id* and wait until the daemon's health shows one
    more order ended; the clock's instant of sending, the perf_counter then, and the seconds
    to the receipt."""
    order = dict(fixture.order, WOType="Alert", ID=order_id, User="bench")
    ended_before = ended_count(alerts)
    sent = clock.now()
    began = time.perf_counter()
    alerts.front_desk(order)
    receipt = time.perf_counter() - began
    while ended_count(alerts) == ended_before:
        if time.perf_counter() - began > timeout:
            raise RuntimeError(f"{fixture.label}: the alert order {order_id} has not ended "
                               f"after {timeout:g} s")
        time.sleep(POLL_SECONDS)
    return sent, began, receipt


def ended_count(proxy):
    """How many orders a daemon's journal holds in a final state (its health's Queue)."""
    queue = proxy.front_desk({"WOType": "Status"})["Queue"]
    return sum(queue.get(state, 0) for state in FINAL)


def accepted_at_scheduler(site, order_id, event_id):
    """The scheduler's journal times of accepting each Observation order of an alert order."""
    scheduler = site.proxy("scheduler")
    return [scheduler.front_desk({"WOType": "Status", "ID": planned})["History"][0]["Time"]
            for planned in submitted_orders(site, order_id, event_id)]


def submitted_orders(site, order_id, event_id):
    """The IDs of the orders alert order *order_id* submitted (its event's report)."""
    report = site.proxy("alerts").front_desk({"WOType": "Events", "Event ID": event_id})
    return [order["ID"] for order in report["Orders"]
            if order["Alert Order"] == order_id and order["Here"] != "refused"]


def measure_latency(arguments, workdir, fixtures, clock, catalogue, spy=False):
    """The latency table's measurements: per alert, lists of daemon and in-process runs, the
    in-process runner and, with *spy*, the py-spy summary taken on the last repeat's daemons
    (:func:`spy_daemons`) once its measurements are over."""
    from torosmanager.alerts.intake import alert_of

    daemon_runs = {fixture.label: [] for fixture in fixtures}
    local_runs = {fixture.label: [] for fixture in fixtures}
    local = spy_text = None
    warm_up = warm_up_alert(fixtures)
    for repeat in range(arguments.repeat):
        directory = workdir / f"latency-{repeat}"
        directory.mkdir()
        site = Site(directory, latency_overrides(clock, catalogue))
        try:
            site.start("scheduler", "alerts")
            if local is None:
                local = InProcess(site.config)
                local.run(warm_up, clock.now())  # imports, tonight's planner, as below
            # Both sides first read one alert untimed: the first pick after a start computes
            # the night (Sun, sidereal time) for the planner, about 0.5 s, once a night.
            through_daemons(site, warm_up, f"warm-up-{repeat}", clock)
            cancel_event(site, alert_of(warm_up.order, clock.now()).event_id)
            shift = repeat % len(fixtures)
            for fixture in fixtures[shift:] + fixtures[:shift]:
                daemons_first = repeat % 2 == 0
                for side in ("daemons", "in-process") if daemons_first else ("in-process",
                                                                              "daemons"):
                    site.wait_idle()
                    if side == "daemons":
                        run = through_daemons(site, fixture, f"r{repeat}-{fixtures.index(fixture)}",
                                              clock)
                        daemon_runs[fixture.label].append(run)
                        if run["orders"]:  # the next alert meets an empty queue
                            cancel_event(site, alert_of(fixture.order, clock.now()).event_id)
                    else:
                        local_runs[fixture.label].append(local.run(fixture, clock.now()))
                log.info("repeat %d, %s: daemons %.3f s, in-process %.3f s", repeat + 1,
                         fixture.label, daemon_runs[fixture.label][-1]["seen"],
                         local_runs[fixture.label][-1]["total"])
            if spy and repeat == arguments.repeat - 1:
                spy_text = spy_daemons(site, directory, fixtures, clock)
        finally:
            site.stop()
    return daemon_runs, local_runs, local, spy_text


def warm_up_alert(fixtures):
    """The Einstein Probe fixture under another event ID: read untimed by each fresh daemon."""
    fixture = next(f for f in fixtures if f.label.startswith("Einstein Probe"))
    return einstein_probe(fixture, "warm-up")


def einstein_probe(fixture, suffix):
    """The Einstein Probe fixture alert as another event (``id`` + *suffix*), so that the
    daemon does not take it for an alert it has read."""
    data = json.loads(fixture.order["Payload"])
    data["id"] = [f"{data['id'][0]}-{suffix}"]
    return alert_data.FixtureAlert(f"{fixture.label} ({suffix})", fixture.source,
                                   dict(fixture.order, Payload=json.dumps(data)), fixture.size)


def cancel_event(site, event_id):
    """Cancel an event's orders at the scheduler (they would pile up in its plan)."""
    site.proxy("scheduler").front_desk({"WOType": "Cancel", "Group ID": event_id,
                                        "User": "bench"})


# --- alert → slewing ----------------------------------------------------------------------------

#: The slewing table's rows: (label, key), in the order the work happens.
SLEWING_STEPS = (
    ("alert order running (alerts journal)", "running"),
    ("receipt from the alerts daemon (client)", "receipt"),
    ("ToO order accepted by the scheduler (scheduler journal)", "accepted"),
    ("alert order done (alerts journal)", "done"),
    ("ToO dispatched to the telescope (scheduler journal)", "dispatched"),
    ("long exposure interrupted (telescope journal)", "interrupted"),
    ("telescope slewing to the ToO (telescope journal)", "slewing"),
    ("slewing seen by the client (polls every 10 ms)", "seen"),
)


def measure_slewing(arguments, workdir, fixtures, clock):
    """Alert → slewing, ``arguments.too`` times after one first (cold) alert."""
    ep = next(f for f in fixtures if f.label.startswith("Einstein Probe"))
    directory = workdir / "slewing"
    directory.mkdir()
    overrides = {"Clock": clock.settings(), "Dome": {"Reopen Delay": REOPEN_DELAY},
                 "Alerts": {"Accept Test Alerts": True}}
    site = Site(directory, overrides)
    runs = []
    try:
        start_observatory(site, "alerts")
        for number in range(arguments.too + 1):
            wait_exposing(site)
            run = one_target_of_opportunity(site, einstein_probe(ep, f"too{number}"),
                                            f"too-{number}", clock)
            runs.append(run)
            log.info("target of opportunity %d: slewing %.3f s after the alert was sent",
                     number, run["seen"])
            site.proxy("scheduler").front_desk({"WOType": "Cancel", "ID": run["id"],
                                                "User": "bench"})
    finally:
        site.stop()
    return runs


def one_target_of_opportunity(site, fixture, order_id, clock):
    """Send the alert; seconds from sending to each step, until the telescope slews to it.

    The client watches the alerts daemon's health until the alert order has ended, reads the
    ID of the order it submitted from the event's report, then polls that order's Status at
    the telescope; the steps themselves are read afterwards from the journals.
    """
    from torosmanager.alerts.intake import alert_of

    alerts, telescope = site.proxy("alerts"), site.proxy("telescope")
    sent, began, receipt = send_and_wait(alerts, fixture, order_id, clock, SLEWING_TIMEOUT)
    submitted = submitted_orders(site, order_id, alert_of(fixture.order, sent).event_id)
    if len(submitted) != 1:
        state = alerts.front_desk({"WOType": "Status", "ID": order_id})
        raise RuntimeError(f"the alert order {order_id} submitted {len(submitted)} orders, not "
                           f"one: {state['Status']}: {state['Message']}")
    too_id = submitted[0]
    while True:
        answer = status(telescope, too_id)
        if answer is not None and answer["Progress"].get("Step", "").startswith("slewing"):
            break
        if time.perf_counter() - began > SLEWING_TIMEOUT:
            raise RuntimeError(f"{too_id}: no slew {SLEWING_TIMEOUT:g} s after the alert; at "
                               f"the telescope: {answer and answer['Message']}")
        time.sleep(POLL_SECONDS)
    seen = time.perf_counter() - began
    alert = alerts.front_desk({"WOType": "Status", "ID": order_id})
    at_scheduler = site.proxy("scheduler").front_desk({"WOType": "Status", "ID": too_id})
    long_order = status(telescope, LONG_ORDER["ID"])
    times = {
        "running": history_time(alert, lambda e: e["Status"] == "running"),
        "done": history_time(alert, lambda e: e["Status"] == "done"),
        "accepted": at_scheduler["History"][0]["Time"],
        "dispatched": history_time(at_scheduler, lambda e: e["Status"] == "dispatched"),
        "interrupted": history_time(long_order, lambda e: e["Status"] == "interrupted"
                                    and Clock.seconds_after(e["Time"], sent) >= 0),
        "slewing": history_time(answer, lambda e: e["Reason"].startswith("slewing")),
    }
    run = {"id": too_id, "receipt": receipt, "seen": seen}
    for key, text in times.items():
        run[key] = None if text is None else Clock.seconds_after(text, sent)
    return run


# --- coverage -----------------------------------------------------------------------------------

def measure_coverage(local, fixtures, nights, site_sections):
    """``pick`` against ``reference_pick`` on the same candidates, per alert, site and night
    (*site_sections*: ``{printed name: Site section}``)."""
    from torosmanager.alerts.intake import alert_of
    from torosmanager.alerts.pick import pick, reference_pick
    from torosmanager.alerts.policy import kind_settings, reason_to_ignore
    from torosmanager.alerts.targets import TargetError, candidates, localisation
    from torosmanager.scheduler.planner import duration_of

    config = local.config
    settings = config["Alerts"]
    rows = []
    for fixture in fixtures:
        alert = alert_of(fixture.order, nights[0])
        try:
            skymap = localisation(alert, settings["Skymap Download Timeout"],
                                  settings["Field of View"])
        except TargetError as error:
            rows.append({"alert": fixture.label, "problem": str(error)})
            continue
        area = None if skymap is None else skymap.credible_area(settings["Credible Level"])
        distance = None if skymap is None else skymap.header.get("DISTMEAN")
        ignored = reason_to_ignore(alert, settings, area, distance)
        kind, offered = candidates(alert, skymap, settings, local.catalog)
        duration = duration_of(kind_settings(alert, settings), config["Observing"])
        for site_name, site in site_sections.items():
            at_site = dict(config, Site=site)
            for night in nights:
                ours = pick(offered, night, at_site, duration)
                reference = reference_pick(offered, night, at_site, duration)
                rows.append({"alert": fixture.label, "site": site_name, "night": night,
                             "kind": kind, "candidates": len(offered), "ignored": ignored,
                             "ours": ours.covered, "ours n": len(ours.chosen),
                             "reference": reference.covered,
                             "reference n": len(reference.chosen),
                             "visible": ours.visible_tonight, "total": ours.total})
    return rows


# --- profile ------------------------------------------------------------------------------------

def profile(local, fixture, clock):
    """cProfile of one in-process ``alert_of`` + ``respond`` of *fixture*: the functions that
    take the most time of their own."""
    profiler = cProfile.Profile()
    profiler.enable()
    local.run(fixture, clock.now())
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    total = stats.total_tt
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:PROFILE_LINES]
    lines = [f"cProfile of `alert_of` + `respond` of the {fixture.label}, in this process "
             f"({total:.2f} s under the profiler): the functions with the most time of their "
             "own, and the time of all they called (cumulative).", "",
             "| function | own time (s) | share | cumulative (s) | calls |",
             "|---|---:|---:|---:|---:|"]
    for (filename, line, name), (calls, _, own, cumulative, _) in rows:
        where = filename
        for prefix in (str(ROOT) + "/", os.path.dirname(os.__file__) + "/"):
            where = where.replace(prefix, "")
        where = re.sub(r".*site-packages/", "", where)
        lines.append(f"| `{where}:{line}({name})` | {own:.3f} | {100 * own / total:.0f} % | "
                     f"{cumulative:.3f} | {calls} |")
    return "\n".join(lines)


#: py-spy: S3456 alerts sent (each as another superevent) while both daemons are sampled, the
#: samples a second, and the seconds sampled (enough for the alerts and the idle waits).
SPY_ALERTS = 3
SPY_RATE = 200
SPY_SECONDS = 8
#: How each daemon's samples are sorted: (label, marks), the first label whose marks all occur
#: in a sample's stack (its frames' file names and functions) takes it.
SPY_PARTS = {
    "alerts": (
        ("worker: submitting, XML-RPC calls to the scheduler", ("_ask_scheduler",)),
        ("reader and worker: events book (SQLite)", ("/alerts/events.py",)),
        ("worker: candidates, galaxies ranked", ("/alerts/galaxies.py",)),
        ("worker: candidates, tiles", ("/alerts/tiles.py",)),
        ("worker: pick (the planner's visibility and plan)", ("/alerts/pick.py",)),
        ("worker: localise (the skymap read)", ("/alerts/targets.py",)),
        ("reader: parse (alert_of)", ("/alerts/intake.py",)),
        ("journal (SQLite, commits)", ("/torosmanager/journal.py",)),
        ("server and its workers: HTTP, XML-RPC (the 2 MB order in, health polls)",
         ("/torosmanager/server.py",)),
        ("reader and worker: the rest of handler.py", ("/alerts/handler.py",)),
    ),
    "scheduler": (
        ("dispatcher thread: planning (the planner: Sun, Moon, altitudes, search)",
         ("/scheduler/dispatcher.py", "/scheduler/planner.py")),
        ("dispatcher thread: journal (SQLite, commits)",
         ("/scheduler/dispatcher.py", "/torosmanager/journal.py")),
        ("dispatcher thread: the rest (XML-RPC to the absent telescope...)",
         ("/scheduler/dispatcher.py",)),
        ("server and its workers: journal (SQLite, commits)", ("/torosmanager/journal.py",)),
        ("server and its workers: HTTP, XML-RPC, validation", ("/torosmanager/server.py",)),
    ),
}


def spy_daemons(site, directory, fixtures, clock):
    """py-spy both daemons of *site* while :data:`SPY_ALERTS` copies of the 2 MB alert go
    through; a Markdown summary of where their busy threads spent the time (or why there is
    none)."""
    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.access(py_spy, os.X_OK):
        return ("py-spy is not installed (`.venv/bin/pip install py-spy`): no profile of the "
                "daemons.")
    two_mb = next(f for f in fixtures if f.label == alert_data.TWO_MB_ALERT)
    runs = []
    site.wait_idle()
    spies = {}
    try:
        for service in SPY_PARTS:
            with open(directory / f"{service}.py-spy.err", "wb") as errors:
                spies[service] = subprocess.Popen(
                    [py_spy, "record", "--pid", str(site.daemons[service].pid), "--duration",
                     str(SPY_SECONDS), "--rate", str(SPY_RATE), "--format", "raw",
                     "--full-filenames", "--nonblocking", "--output",
                     str(directory / f"{service}.txt")],
                    stdout=subprocess.DEVNULL, stderr=errors)
        time.sleep(IDLE_WINDOW)  # py-spy attaches
        for number in range(SPY_ALERTS):
            data = json.loads(two_mb.order["Payload"])
            data["superevent_id"] = f"{data['superevent_id']}spy{number}"
            copy = alert_data.FixtureAlert(two_mb.label, two_mb.source,
                                           dict(two_mb.order, Payload=json.dumps(data)),
                                           two_mb.size)
            runs.append(through_daemons(site, copy, f"spy-{number}", clock))
            site.wait_idle()
    finally:
        for spy in spies.values():  # each ends after SPY_SECONDS; stopped by its PID if not
            try:
                spy.wait(timeout=SPY_SECONDS + SETTLE_TIMEOUT)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
    text = [f"py-spy of the two daemons ({SPY_RATE} samples/s of their busy threads, "
            f"{SPY_SECONDS} s) while {SPY_ALERTS} copies of the {two_mb.label} alert went "
            f"through (the last repeat's daemons), each done in "
            f"{spread([run['seen'] for run in runs])} s under the sampling; busy-thread seconds "
            "per alert, by where the sample was (the first matching row takes it):", "",
            "| daemon | where | share of its samples | busy-thread seconds per alert |",
            "|---|---|---:|---:|"]
    for service, parts in SPY_PARTS.items():
        path = directory / f"{service}.txt"
        if not path.exists():
            problem = (directory / f"{service}.py-spy.err").read_text(errors="replace")
            text.append(f"| {service} | py-spy wrote nothing: {problem[:200]} | | |")
            continue
        counts, total = spy_counts(path, parts)
        for label, count in counts:
            text.append(f"| {service} | {label} | {100 * count / max(total, 1):.0f} % | "
                        f"{count / SPY_RATE / SPY_ALERTS:.3f} |")
    return "\n".join(text)


def spy_counts(path, parts):
    """py-spy's raw samples of *path* sorted into *parts*: ((label, samples) ..., total); the
    samples of pool threads waiting for work are left out."""
    counts = dict.fromkeys([label for label, _ in parts] + ["other"], 0)
    total = 0
    with open(path, encoding="utf-8") as stream:
        for stack, count in raw_stacks(stream):
            if idle_pool_thread(stack):
                continue
            total += int(count)
            label = next((label for label, marks in parts
                          if all(mark in stack for mark in marks)), "other")
            counts[label] += int(count)
    return sorted(((label, n) for label, n in counts.items() if n), key=lambda c: -c[1]), total


# --- the tables ---------------------------------------------------------------------------------

def median(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def seconds(value, digits=3):
    return "—" if value is None else f"{value:.{digits}f}"


def ratio_of_shown(numerator, denominator):
    """The ratio of two numbers as the table shows them (so that it follows from its columns)."""
    return f"{float(numerator) / float(denominator):.2f}"


def spread(values, digits=3):
    values = [value for value in values if value is not None]
    return "—" if not values else f"{min(values):.{digits}f}–{max(values):.{digits}f}"


def goal_of(label):
    """The issue's goal for an alert of the table, seconds, or ``None``."""
    return {alert_data.TWO_MB_ALERT: GOAL_TWO_MB, alert_data.FLAT_ALERT: GOAL_FLAT}.get(label)


def latency_table(fixtures, daemon_runs, local_runs):
    """The latency table (Markdown) and, for the alerts with a goal, the verdicts."""
    header = ("alert", "bytes sent", "targets", "orders", "daemons: send → done seen (s)",
              "spread", "receipt", "send → reading", "reading → 1st order accepted",
              "1st → last order accepted", "last order → done seen",
              "in-process: alert_of + respond (s)", "spread", "parse", "localise",
              "candidates", "pick", "daemons ÷ in-process", "goal")
    lines = ["| " + " | ".join(header) + " |", "|---|---:|---|---:|" + "---:|" * 14 + "---|"]
    verdicts = []
    for fixture in fixtures:
        ours, local = daemon_runs[fixture.label], local_runs[fixture.label]
        seen, total = median([r["seen"] for r in ours]), median([r["total"] for r in local])
        submitted = [r for r in ours if r["first"] is not None]
        goal = goal_of(fixture.label)
        verdict = "—"
        if goal is not None:
            met = seen < goal
            verdict = f"< {goal:g} s: {'met' if met else '**NOT met**'}"
            verdicts.append((fixture.label, goal, seen, met, ours))
        lines.append("| " + " | ".join((
            fixture.label, f"{len(fixture.order['Payload']):,}", local[-1]["targets"],
            f"{median([r['orders'] for r in ours]):g}", seconds(seen),
            spread([r["seen"] for r in ours]), seconds(median([r["receipt"] for r in ours])),
            seconds(median([r["running"] for r in ours])),
            seconds(median([r["first"] - r["running"] for r in submitted])),
            seconds(median([r["last"] - r["first"] for r in submitted])),
            seconds(median([r["seen"] - r["last"] for r in submitted])),
            seconds(total), spread([r["total"] for r in local]),
            *(seconds(median([r[step] for r in local]))
              for step in ("parse", "localise", "candidates", "pick")),
            ratio_of_shown(seconds(seen), seconds(total)), verdict)) + " |")
    return "\n".join(lines), verdicts


def slewing_table(runs):
    cold, warm = runs[0], runs[1:]
    lines = ["| from sending the Alert order to | median (s) | spread (min–max) | part: since "
             "the row above, median (s) | first alert after the daemons start (s) |",
             "|---|---:|---:|---:|---:|"]
    previous = None
    for label, key in SLEWING_STEPS:
        values = [run[key] for run in warm]
        if previous is None:
            part = median(values)
        else:
            part = median([run[key] - run[previous] for run in warm
                           if run[key] is not None and run[previous] is not None])
        lines.append(f"| {label} | {seconds(median(values))} | {spread(values)} | "
                     f"{seconds(part)} | {seconds(cold[key])} |")
        previous = key
    return "\n".join(lines)


def coverage_table(rows):
    lines = ["| alert | site | night (UTC) | targets | candidates | ours: covered | ours: chosen "
             "| reference: covered | reference: chosen | visible tonight | total | ours ÷ "
             "reference | the daemon's policy |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        if "problem" in row:
            lines.append(f"| {row['alert']} | " + "— | " * 11 +
                         f"{row['problem']} |")
            continue
        ours, reference = f"{row['ours']:.4f}", f"{row['reference']:.4f}"
        if float(reference) > 0:
            ratio = ratio_of_shown(ours, reference)
        else:
            ratio = "— (reference 0)" if float(ours) > 0 else "— (both 0)"
        lines.append("| " + " | ".join((
            row["alert"], row["site"], f"{row['night']:%Y-%m-%d %H:%M}", row["kind"],
            str(row["candidates"]),
            ours, str(row["ours n"]), reference,
            str(row["reference n"]), f"{row['visible']:.4f}", f"{row['total']:.4f}", ratio,
            f"ignored: {row['ignored']}" if row["ignored"] else "acted on")) + " |")
    return "\n".join(lines)


def coverage_verdict(rows):
    measured = [row for row in rows if "problem" not in row]
    better = [row for row in measured if row["ours"] > row["reference"]]
    equal = [row for row in measured if row["ours"] == row["reference"]]
    worse = [row for row in measured if row["ours"] < row["reference"]]

    def named(row):
        return f"{row['alert']} at {row['site']} {row['night']:%Y-%m-%d}"

    ties = ", ".join(f"{named(row)}: both {row['ours']:.4f}" for row in equal)
    text = (f"Ours covers more than the reference in {len(better)} of {len(measured)} "
            f"alert-site-nights, as much in {len(equal)}{f' ({ties})' if ties else ''}, less "
            f"in {len(worse)}.")
    if worse:
        text += " Less: " + ", ".join(named(row) for row in worse)
    return text


def machine():
    import astropy
    import numpy

    return f"{machine_line()}, numpy {numpy.__version__}, astropy {astropy.__version__}"


# --- running it ---------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=None,
                        help=f"repeats of the latency table, fresh daemons each (default "
                             f"{DEFAULT_REPEAT}; --quick {QUICK_REPEAT})")
    parser.add_argument("--too", type=int, default=None,
                        help=f"targets of opportunity timed to slewing, after a first one "
                             f"reported apart (default {DEFAULT_TOO}; --quick {QUICK_TOO})")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats; no profiles (py-spy of the daemons on the 2 MB "
                             "alert, cProfile of the slowest alert in this process)")
    parser.add_argument("--skip-slewing", action="store_true",
                        help="leave out the alert → slewing table")
    parser.add_argument("--workdir", default="/var/tmp",
                        help="where the daemons' temporary directory is made (default: "
                             "%(default)s; removed at the end)")
    parser.add_argument("--update-docs", action="store_true",
                        help=f"also write the results into {DOCS.relative_to(ROOT)}")
    arguments = parser.parse_args(argv)
    arguments.repeat = arguments.repeat or (QUICK_REPEAT if arguments.quick else DEFAULT_REPEAT)
    arguments.too = arguments.too or (QUICK_TOO if arguments.quick else DEFAULT_TOO)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("torosmanager").setLevel(logging.WARNING)

    from torosmanager.earth_rotation import use_astropy_offline
    use_astropy_offline()

    conditions = Conditions()
    began = time.monotonic()
    catalogue = alert_data.galaxy_catalogue()
    fixtures = alert_data.fixture_alerts() + [alert_data.flat_alert()]
    workdir = Path(tempfile.mkdtemp(prefix="toros-bench-alerts-", dir=arguments.workdir))
    try:
        clock = Clock()
        daemon_runs, local_runs, local, spy_text = measure_latency(
            arguments, workdir, fixtures, clock, catalogue, spy=not arguments.quick)
        slewing = (None if arguments.skip_slewing
                   else measure_slewing(arguments, workdir, fixtures, Clock()))
        coverage = measure_coverage(local, fixtures[:-1], (EVENING, MAY_NIGHT), sites())
        slowest = max(fixtures, key=lambda f: median([r["total"] for r in local_runs[f.label]]))
        profile_text = None if arguments.quick else profile(local, slowest, clock)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - began

    latency, verdicts = latency_table(fixtures, daemon_runs, local_runs)
    command = " ".join(["bench/alerts.py", *(argv if argv is not None else sys.argv[1:])])
    out = [f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}. Command: "
           f"`.venv/bin/python {command}`; {arguments.repeat} "
           f"repeats (fresh daemons each), {arguments.too} targets of opportunity; whole run "
           f"{elapsed:.0f} s; {conditions.text()}.", "",
           "**Alert received → every Observation order accepted by the scheduler** "
           f"(catalogue of {alert_data.CATALOGUE_GALAXIES:,} galaxies loaded; the in-process "
           f"baseline loads it in {local.catalog_seconds:.2f} s):", "", latency, "",
           ("Seconds; medians over the repeats, spread min–max. The daemons' parts: *receipt* "
            "and *done seen* by the client; *reading* (the alert order running), *1st* and "
            "*last order accepted* from the alerts daemon's and the scheduler's journals (ms). "
            "The in-process steps: *parse* (`alert_of`), *localise* (the skymap read, or drawn, "
            "and its credible area), *candidates* (galaxies ranked or fields tiled), *pick*. "
            "Each part is a median of its own, so parts need not add up to the total. The "
            "ratio is of the two medians shown.")]
    for label, goal, seen, met, ours in verdicts:
        out.append(f"- {label}: {seen:.3f} s (spread {spread([r['seen'] for r in ours])}) "
                   f"against < {goal:g} s: {'met' if met else 'NOT met'}.")
    if slewing is not None:
        seen = median([run["seen"] for run in slewing[1:]])
        out += ["", f"**Alert → telescope slewing** (Einstein Probe alert, a long exposure "
                f"interrupted; {len(slewing) - 1} targets of opportunity, plus the first after "
                "the daemons start, apart):", "", slewing_table(slewing), "",
                f"- Goal < {GOAL_SLEWING:g} s: {seen:.3f} s (spread "
                f"{spread([run['seen'] for run in slewing[1:]])}; the first after the start "
                f"{slewing[0]['seen']:.3f} s): "
                f"{'met' if max(seen, slewing[0]['seen']) < GOAL_SLEWING else 'NOT met'}."]
    out += ["", "**Coverage tonight: our pick against the reference pick** (same candidates, "
            "the configuration's budget: Budget Hours and Max Targets):", "",
            coverage_table(coverage), "", coverage_verdict(coverage)]
    if spy_text:
        out += ["", spy_text]
    if profile_text:
        out += ["", profile_text]
    text = "\n".join(out)
    print(text)
    if arguments.update_docs:
        update_docs("alerts.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
