"""Where alerts come from: the inputs ("sources") of the alerts daemon.

Why a layer of its own: GCN sends the same events over several channels (GCN Kafka, GCN
Classic's TCP socket, the VOEvent Transport Protocol), each with its own connection, heartbeat
and reconnection rules. A source deals with exactly that and nothing else: it receives raw
messages and hands each to the daemon's callback untouched, so that reading, journalling and
acting on an alert is done once, the same way, whatever brought it.

Every source follows one contract::

    source = SomeSource(settings, deliver)   # settings: its section of config["Alerts"]
    source.start()      # starts its own daemon thread(s) and returns at once
    source.stop()       # stops them and joins them within a few seconds
    source.health()     # {"Connected", "Messages", "Last Message", "Last Error", ...}

and for each message received calls ``deliver(format_name, payload, origin)``: *format_name*
one of :data:`torosmanager.alerts.formats.FORMATS`, *payload* the bytes as received, *origin*
where they came from (``"kafka:igwn.gwalert"``, ``"gcn-socket:127.0.0.1:40000"``). An exception
raised by *deliver* (the daemon stopping while its journal's disk is full, a refusal) is logged
with its traceback and the source goes on; :meth:`Source.hand_over` says whether the message
was delivered, so that a source that can have it sent again (Kafka, its offset) does not mark
it read.

The sources, by the title of their section under ``Alerts``:

- :mod:`.kafka`: GCN Kafka (``Kafka``; the optional ``gcn-kafka`` package);
- :mod:`.gcn_socket`: GCN Classic's 160-byte socket notices (``GCN Socket``; no dependency);
- :mod:`.vtp`: VOEvents over the VOEvent Transport Protocol (``VOEvent Transport``; the
  optional ``pygcn`` package).
"""

import importlib
import logging
import threading
from datetime import datetime, timezone

logger = logging.getLogger(__name__)

#: Seconds :meth:`Source.stop` waits for each of a source's threads.
JOIN_SECONDS = 3.0
#: ``Reconnect Delay`` and ``Max Reconnect Delay`` when a source's settings leave them out
#: (the configuration's defaults).
DEFAULT_RECONNECT_DELAY = 1.0
DEFAULT_MAX_RECONNECT_DELAY = 300.0
#: Section title under ``Alerts`` → (module of this package, class): see :func:`make_sources`.
SOURCE_CLASSES = {"Kafka": ("kafka", "KafkaSource"),
                  "GCN Socket": ("gcn_socket", "GcnSocketSource"),
                  "VOEvent Transport": ("vtp", "VoeventTransportSource")}


class MissingExtraError(RuntimeError):
    """An optional package a source needs is not installed.

    Parameters
    ----------
    package : str
        The package on PyPI, e.g. ``"gcn-kafka"``.
    extra : str
        The extra of toros-manager that installs it, e.g. ``"kafka"``.
    """

    def __init__(self, package, extra):
        self.package, self.extra = package, extra
        super().__init__(f"the {package} package is not installed: "
                         f"sudo make install (from the checkout) includes it, or "
                         f"pip install 'torosmanager[{extra}]' into the daemons' venv")


class Source:
    """What every source shares: counters, health, a safe hand-over and a stop flag.

    Parameters
    ----------
    settings : dict
        The source's section of ``config["Alerts"]``.
    deliver : callable
        ``deliver(format_name, payload, origin)``, called for each message received.
    """

    #: How the source names itself in logs and thread names.
    label = "source"

    def __init__(self, settings, deliver):
        self.settings = settings
        self._deliver = deliver
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = []
        self._connected = False
        self._messages = 0
        self._delivery_errors = 0
        self._last_message = None
        self._last_error = None

    def start(self):
        """Start the source's thread(s) and return at once."""
        raise NotImplementedError

    def stop(self):
        """Ask the source's threads to end and wait for them (at most a few seconds)."""
        self._stopping.set()
        self._interrupt()
        for thread in list(self._threads):
            thread.join(JOIN_SECONDS)
            if thread.is_alive():
                logger.warning("%s: thread %s did not end within %.0f s", self.label,
                               thread.name, JOIN_SECONDS)
        self._set_connected(False)

    def health(self):
        """A small dict for the daemon's health report.

        Returns
        -------
        dict
            ``Connected`` (bool), ``Messages`` (int, handed to the daemon), ``Last Message``
            (ISO 8601 UTC or None), ``Last Error`` (text or None), ``Delivery Errors`` (int,
            messages whose hand-over raised), plus what the source adds.
        """
        with self._lock:
            report = {"Connected": self._connected, "Messages": self._messages,
                      "Last Message": self._last_message, "Last Error": self._last_error,
                      "Delivery Errors": self._delivery_errors}
        report.update(self._more_health())
        return report

    def hand_over(self, format_name, payload, origin):
        """Give one message to the daemon; whether it took it. What *deliver* raises is
        logged, not propagated."""
        with self._lock:
            self._messages += 1
            self._last_message = utc_now_iso()
        try:
            self._deliver(format_name, payload, origin)
        except Exception:                   # the daemon's fault must not stop the source
            with self._lock:
                self._delivery_errors += 1
            logger.exception("%s: delivering a %s message from %s failed", self.label,
                             format_name, origin)
            return False
        return True

    def _spawn(self, target, *args, name=None):
        """Start a daemon thread running *target*, kept for :meth:`stop` to join."""
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=name or f"{self.label}-{target.__name__.strip('_')}")
        self._threads.append(thread)  # before it runs: stop() joins it whenever it comes
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: not one to join (join() would raise)
            self._threads.remove(thread)
            raise
        return thread

    def _interrupt(self):
        """Unblock the source's threads after the stop flag is set (a subclass closes what
        they wait on)."""

    def _more_health(self):
        """Entries a subclass adds to :meth:`health`."""
        return {}

    def _set_connected(self, connected):
        with self._lock:
            self._connected = connected

    def _record_error(self, text):
        """Keep *text* as the last error shown by :meth:`health`."""
        with self._lock:
            self._last_error = text


class Backoff:
    """The wait before a source connects again: ``Reconnect Delay`` first, doubled after each
    connection that failed, up to ``Max Reconnect Delay``; the first again once one works.

    Parameters
    ----------
    settings : dict
        The source's section of ``config["Alerts"]``.
    """

    def __init__(self, settings):
        self.first = float(settings.get("Reconnect Delay") or DEFAULT_RECONNECT_DELAY)
        self.most = max(self.first, float(settings.get("Max Reconnect Delay")
                                          or DEFAULT_MAX_RECONNECT_DELAY))
        self._delay = self.first

    def next(self):
        """The wait now; the next one doubled."""
        delay = self._delay
        self._delay = min(delay * 2, self.most)
        return delay

    def reset(self):
        """A connection works: the next wait is the first."""
        self._delay = self.first


def utc_now_iso():
    """Now, UTC, as ISO 8601 to the second (the times shown by :meth:`Source.health`)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def make_sources(alerts_settings, deliver):
    """The enabled sources of ``config["Alerts"]``, made but not started.

    Parameters
    ----------
    alerts_settings : dict
        ``config["Alerts"]``; each section of :data:`SOURCE_CLASSES` with ``Enabled: true``
        gives one source.
    deliver : callable
        ``deliver(format_name, payload, origin)``.

    Returns
    -------
    dict
        Section title → source.
    """
    sources = {}
    for title, (module_name, class_name) in SOURCE_CLASSES.items():
        settings = alerts_settings.get(title) or {}
        if settings.get("Enabled"):
            module = importlib.import_module(f"{__name__}.{module_name}")
            sources[title] = getattr(module, class_name)(settings, deliver)
    return sources
