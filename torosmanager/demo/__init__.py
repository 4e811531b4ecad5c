"""``make demo`` / ``toros demo``: a whole night at CTMO, simulated, in a few minutes.

Everything runs from a new temporary directory on free loopback ports, with simulated devices and
a simulated clock (tonight at CTMO, from shortly before astronomical dusk to dawn, at
:data:`~.scenario.SPEED` times real time): no root; the network only once, to fetch the real
alert it replays (:mod:`.alert`). The five daemons start; the orders of :mod:`.scenario` arrive;
the scheduler opens the dome at dusk, plans and dispatches; a real LVK alert reaches the alerts
daemon, whose targets interrupt the night; a storm closes the dome for a while; frames are
calibrated as they come. One line per event is printed as it happens, then a summary table; a
night report (HTML, with the plan chart and a calibrated frame) is written, and every daemon is
stopped. The report and the daemons' logs are kept in :data:`~.workspace.REPORT_DIRECTORY`; the
temporary directory, with the journals and the FITS frames, is removed (:mod:`.workspace`).
"""

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import urllib.request
import xmlrpc.client
from datetime import datetime, timedelta, timezone

from ..alerts.published import FOLLOWUP_ADVOCATE, data_file
from ..client import connect
from ..clock import Clock
from ..config import address_key, default_config, load_config
from ..console import table
from ..earth_rotation import use_astropy_offline
from ..launcher import DaemonProcess, local_config
from ..night import Night, local_night_date
from ..scheduler import plan_command
from . import alert as demo_alert, report, scenario, workspace
from .watch import FINAL, SUMMARY_COLUMNS, Watcher

#: Real seconds between two looks at the daemons.
POLL_SECONDS = 0.25
#: Real seconds to wait, after dawn, for the last calibrations.
PATIENCE = 120
#: Real seconds between two looks for the night's first plan (it is made within a second), and
#: how long to look before the report goes without it.
PLAN_POLL_SECONDS = 0.05
FIRST_PLAN_PATIENCE = 30
#: Where the target of opportunity may be put: hour angles and declination offsets (degrees)
#: from the zenith; the one farthest from the Moon is chosen.
TOO_HOUR_ANGLES = (-30.0, -15.0, 0.0, 15.0, 30.0)
TOO_DEC_OFFSETS = (-20.0, 0.0, 20.0)
#: Real seconds to wait for the event's map from the alerts daemon, for the report.
PICTURE_TIMEOUT = 30
#: The exit status of a process ended by a signal, less the signal's number (as shells say),
#: and the signals that end the demo cleanly (see _stopping_on_signals).
SIGNAL_EXIT_BASE = 128
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_demo(speed=scenario.SPEED, report_directory=workspace.REPORT_DIRECTORY):
    """Run the demo night; return 0 when it ran to its end.

    Parameters
    ----------
    speed : float
        How many times faster than real time the simulated night runs (the tests run it faster).
    report_directory : str
        Where the night report and the daemons' logs are kept.
    """
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A line per event as it happens into a pipe too (make demo | tee demo.log), where
        # Python would hold the lines back until some kilobytes or the end.
        sys.stdout.reconfigure(line_buffering=True)
    use_astropy_offline()
    defaults = default_config()
    now = datetime.now(timezone.utc)
    # Started during the night, the demo replays that night from its dusk: what is left of it
    # may be too short for the manual's example, whose target may have set.
    window = Night(defaults["Site"]).window(now, defaults["Observing"]["Sun Altitude"],
                                            whole=True)
    if window is None:
        print("The demo needs a night at the site in the coming day and a half.")
        return 1
    night = scenario.timetable(window, speed)
    galaxies = scenario.galaxies_for(Night(defaults["Site"]), window,
                                     _moon(defaults["Site"], night.at(0.5)))
    try:
        data_file(demo_alert.ALERT, FOLLOWUP_ADVOCATE, demo_alert.CACHE)
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        print(f"The demo needs the LVK alert it replays, from PyPI (ligo-followup-advocate "
              f"{FOLLOWUP_ADVOCATE.version}), once: {error}")
        return 1
    with _stopping_on_signals() as stop, workspace.workspace() as directory:
        overrides = scenario.settings(night, directory)
        # The simulated night begins once the daemons are up, not while they start.
        overrides["Clock"]["Anchor"] = (now + timedelta(seconds=scenario.STARTUP_SECONDS)
                                        ).isoformat()
        config = load_config(local_config(directory, overrides))
        print(f"TOROS Manager demo: a night at {config['Site']['Name']} (latitude "
              f"{config['Site']['Latitude']}, longitude {config['Site']['Longitude']}), dark "
              f"from {night.dusk:%Y-%m-%d %H:%M} to {night.dawn:%H:%M} UTC, simulated at "
              f"{night.speed:g}× real time: about {scenario.real_seconds(night) / 60:.0f} "
              f"minutes.\nEverything is in {directory} until the demo ends.\n")
        try:
            result = _run(config, night, directory, galaxies, stop)
        except SystemExit as stopped:  # by a signal, its daemons stopped: the rest as usual
            result = stopped.code
        finally:
            # Even when the demo failed or was interrupted: the logs then say why.
            try:
                kept = workspace.keep(directory, report_directory)
            except OSError as error:
                print(f"\nThe report and logs could not be kept in {report_directory}: {error}")
                kept, result = None, 1
    if kept is not None:
        page = os.path.join(kept, report.PAGE)
        if os.path.exists(page):
            print(f"\nNight report: {page}")
        print(f"The daemons' logs are in {kept}.")
    print(f"The journals and FITS files were removed with {directory}.")
    return result


@contextlib.contextmanager
def _stopping_on_signals():
    """Within: Ctrl-C (SIGINT), SIGTERM (``kill``, ``timeout``, a service manager) or SIGHUP
    (its terminal closed) ends the demo with its daemons stopped, its report kept and its
    workspace removed, and says so. SIGTERM and SIGHUP ended the demo alone and left its
    daemons running (a daemon takes SIGHUP as a cue to reopen its log); Ctrl-C ended it with
    a traceback. Each is ignored from then on, while it cleans up.

    Yields the :class:`StopRequest` that says which signal came, if one did."""
    request = StopRequest()

    def stop(signum, frame):
        for each in STOP_SIGNALS:
            signal.signal(each, signal.SIG_IGN)
        request.signum = signum
        with contextlib.suppress(OSError):  # its terminal may be gone: it stops all the same
            print(f"\nThe demo was asked to stop ({signal.Signals(signum).name}): stopping "
                  "its daemons.")
        raise SystemExit(SIGNAL_EXIT_BASE + signum)

    previous = {each: signal.signal(each, stop) for each in STOP_SIGNALS}
    try:
        yield request
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)


class StopRequest:
    """The signal that asked the demo to stop (:attr:`signum`), ``None`` while none has."""

    def __init__(self):
        self.signum = None


def _run(config, night, directory, galaxies, stop):
    """Start the daemons, run the night, stop them; return the demo's exit status (*stop*: a
    :class:`StopRequest`)."""
    daemons = []
    result = 1
    try:
        for wave in scenario.START_WAVES:
            launched = [DaemonProcess(service, f"{directory}/toros.conf.yaml").launch()
                        for service in wave]
            daemons += launched  # kept as soon as launched, to be stopped whatever happens
            for daemon in launched:
                daemon.wait_ready()
                print(f"started {daemon.service:12} pid {daemon.pid:<7} "
                      f"{config[address_key(daemon.service)]['HTTP']}  (status page: open it "
                      "in a browser)")
        result = _night(config, Clock.from_config(config), night, directory, galaxies)
    except (OSError, RuntimeError, xmlrpc.client.Error) as error:
        if stop.signum is None:
            print(f"\nThe demo failed: {error}")
        else:
            # Asked to stop, and a daemon stopped by the same Ctrl-C (its process group's)
            # refused a call the night made: a stop, not a failure. (Once, after "asked to
            # stop", the handler's SystemExit did not end the night, and the next call's
            # "Connection refused" made the demo say it failed and exit 1.)
            result = SIGNAL_EXIT_BASE + stop.signum
    finally:
        # Every daemon stopped before any is reported: a terminal gone (SIGHUP) fails the
        # printing, not the stopping.
        stopped = [(daemon.service, daemon.stop()) for daemon in reversed(daemons)]
        for service, status in stopped:
            print(f"stopped {service:12} exit status {status}")
    return result


def _title(night, site):
    """The report's title: the night named by its evening's local date, as its frames'
    directory is (a night at CTMO begins after midnight UTC)."""
    evening = datetime.strptime(local_night_date(night.dusk, site["Longitude"]), "%Y%m%d")
    return (f"The night of {evening:%Y-%m-%d} at {site['Name']} (dusk "
            f"{night.dusk:%Y-%m-%d %H:%M} UTC)")


def _night(config, clock, night, directory, galaxies):
    scheduler = connect(config, "scheduler")
    watcher = Watcher(config, print, clock)
    refused = {}
    print("\nThe evening's orders arrive at the scheduler:")
    rows = []
    for order in scenario.evening_orders(galaxies):
        try:
            receipt = scheduler.front_desk(order)
        except xmlrpc.client.Fault as fault:
            refused[order["ID"]] = fault.faultString
            rows.append({"ID": order["ID"], "Status": "refused", "Message": fault.faultString})
            continue
        watcher.follow(receipt["ID"])
        rows.append(receipt)
    print(table(rows, ("ID", "Status", "Priority", "Message")))
    print("\nThe night (simulated UTC):")
    # The night's first plan, for the report: on a fast clock its entries are dispatched, and
    # the plan shrinks, within moments of its making.
    plan = _first_plan(scheduler)
    storm_ends = None
    alert = Alert(config, watcher)
    weather = scenario.weather_file(directory)
    while clock.now() < night.end:
        watcher.poll()
        plan = _fullest(plan, plan_command.fetch(scheduler))
        now, running = clock.now(), watcher.running()
        if alert.order_id is None and now >= night.at(scenario.TOO_AT) and running:
            alert.send(*_overhead(config["Site"], now), now)
        alert.follow()
        alert.tell_observed()
        if storm_ends is None and alert.over() and now >= night.at(
                scenario.STORM_FROM) and (running or now >= night.at(scenario.STORM_LATEST)):
            with open(weather, "w", encoding="utf-8") as stream:
                stream.write(scenario.STORM_WEATHER)
            storm_ends = now + (night.dawn - night.dusk) * scenario.STORM_LENGTH
            watcher.event(None, f"{'weather':10} {'storm':11} a thunderstorm reaches the site "
                                f"(until about {storm_ends:%H:%M})")
        if storm_ends is not None and now >= storm_ends and os.path.exists(weather):
            os.unlink(weather)
            watcher.event(None, f"{'weather':10} {'clear':11} the storm has passed")
        if clock.now() > night.dawn and not watcher.busy():
            break
        time.sleep(POLL_SECONDS)
    deadline = time.monotonic() + PATIENCE
    while watcher.busy() and time.monotonic() < deadline:
        watcher.poll()
        time.sleep(POLL_SECONDS)
    summary = watcher.summary(refused)
    print("\nThe night's orders:")
    print(table(summary, SUMMARY_COLUMNS))
    calibrated = next((path for _, status in watcher.preprocessing.values() if status
                       for path in status.get("Progress", {}).get("Products", [])), None)
    report.write(os.path.join(directory, workspace.REPORT),
                 _title(night, config["Site"]), summary,
                 watcher.events, plan, config["Site"], calibrated, alert.picture())
    return 0


class Alert:
    """The night's LVK alert: sent to the alerts daemon, then its orders followed."""

    def __init__(self, config, watcher):
        self.config, self.watcher = config, watcher
        self.order_id = None
        self.orders = None  # the Observation orders it made, once the alerts daemon is done
        self.told = False  # whether what they observed has been said

    def send(self, ra, dec, now):
        payload = demo_alert.overhead_alert(ra, dec, now, demo_alert.CACHE)
        receipt = connect(self.config, "alerts").front_desk(
            {"WOType": "Alert", "Format": "lvk_json", "Payload": payload,
             "User": "GCN Kafka (replayed)"})
        self.order_id = receipt["ID"]
        self.watcher.event(None, f"{demo_alert.EVENT:10} {'alert':11} an LVK alert arrives at "
                                 "the alerts daemon: a neutron star–black hole merger")

    def follow(self):
        """Once the alerts daemon has answered, follow the orders it submitted."""
        if self.order_id is None or self.orders is not None:
            return
        alerts = connect(self.config, "alerts")
        status = alerts.front_desk({"WOType": "Status", "ID": self.order_id})
        if status["Status"] not in FINAL:
            return
        self.watcher.event(status["Updated"], f"{demo_alert.EVENT:10} "
                                              f"{status['Status']:11} {status['Message']}")
        event = alerts.front_desk({"WOType": "Events", "Event ID": demo_alert.EVENT})
        self.orders = [order["ID"] for order in event["Orders"] if order["Here"] == "submitted"]
        for order_id in self.orders:
            self.watcher.follow(order_id)

    def over(self):
        """Whether the alert's orders have all ended (or it made none)."""
        return self.orders is not None and all(self.watcher.ended(order_id)
                                               for order_id in self.orders)

    def tell_observed(self):
        """Once its orders have all ended, say what they observed of the localisation, as
        the event's report at the alerts daemon counts it."""
        if self.told or not self.orders or not self.over():
            return
        self.told = True
        event = connect(self.config, "alerts").front_desk({"WOType": "Events",
                                                          "Event ID": demo_alert.EVENT})
        coverage = event["Coverage"]
        self.watcher.event(None, f"{demo_alert.EVENT:10} {'observed':11} "
                                 f"{coverage['Observed']:.1%} of its localisation observed "
                                 f"(planned {coverage['Planned']:.1%}); its report: "
                                 f"{self._page()}.html")

    def picture(self):
        """The event's map with its targets, as the alerts daemon draws it (PNG bytes), or
        ``None`` when no alert was sent or the daemon does not answer."""
        if self.order_id is None:
            return None
        try:
            with urllib.request.urlopen(f"{self._page()}.png",
                                        timeout=PICTURE_TIMEOUT) as answer:
                return answer.read()
        except OSError as error:  # (urllib's errors are OSErrors)
            print(f"The event's map could not be had from the alerts daemon: {error}")
            return None

    def _page(self):
        """The event's report at the alerts daemon, without its suffix."""
        return f"{self.config[address_key('alerts')]['HTTP']}events/{demo_alert.EVENT}"


def _first_plan(scheduler):
    """The scheduler's plan once it holds entries (``None`` if none within
    FIRST_PLAN_PATIENCE s)."""
    deadline = time.monotonic() + FIRST_PLAN_PATIENCE
    while time.monotonic() < deadline:
        plan = plan_command.fetch(scheduler)
        if plan.get("Entries"):
            return plan
        time.sleep(PLAN_POLL_SECONDS)
    return None


def _fullest(kept, plan):
    """The plan with the most entries seen so far: the night as first planned."""
    if kept is None or len(plan.get("Entries", [])) > len(kept.get("Entries", [])):
        return plan
    return kept


def _moon(site, instant):
    """The Moon seen from *site* at *instant* (GCRS, ICRS axes)."""
    import astropy.units as u
    from astropy.coordinates import EarthLocation, get_body
    from astropy.time import Time

    location = EarthLocation(lat=site["Latitude"] * u.deg, lon=site["Longitude"] * u.deg,
                             height=site["Elevation"] * u.m)
    return get_body("moon", Time(instant), location)


def _overhead(site, instant):
    """An ICRS position high in the sky at *site* and *instant*, and far from the Moon: where a
    kilonova candidate worth interrupting the night for would be."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astropy.time import Time

    when = Time(instant)
    sidereal = float(when.sidereal_time("apparent", longitude=site["Longitude"] * u.deg).deg)
    moon = _moon(site, instant)
    candidates = [(round((sidereal + hour_angle) % 360, 4), site["Latitude"] + offset)
                  for hour_angle in TOO_HOUR_ANGLES for offset in TOO_DEC_OFFSETS]
    # Compared in the Moon's own frame (GCRS at the site): astropy warns otherwise.
    separations = [moon.separation(SkyCoord(ra, dec, unit="deg").transform_to(moon.frame)).deg
                   for ra, dec in candidates]
    return candidates[max(range(len(candidates)), key=separations.__getitem__)]
