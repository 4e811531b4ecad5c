"""VOEvents over the VOEvent Transport Protocol (VTP) as an alert source, through pygcn.

Why: VTP is how GCN Classic (and other brokers) push VOEvents to anyone who connects, without
an account: the site connects to the broker (``Host``, ``Port``), the broker sends each VOEvent
as a 4-byte big-endian length and the XML, the client acknowledges it with a ``Transport``
message, and both exchange "iamalive" messages to know the link is up.

The client is NASA's ``pygcn`` (``gcn.listen(host, port, handler=..., log=...)``), an optional
extra (``torosmanager[vtp]``) that ``sudo make install`` includes. It is imported only when the source starts; missing,
the source says so in its health and log and does nothing else. pygcn answers the broker,
reconnects with its own back-off, and calls the handler with each VOEvent's bytes, handed over
here as ``("voevent", payload, "vtp:<host>:<port>")``.

pygcn's ``listen`` never returns and offers no way to stop it, so it runs in a daemon thread and
:meth:`VoeventTransportSource.stop` only *detaches*: from then on nothing more is handed over,
and the thread (still connected, or reconnecting) ends with the process. Starting a second
source for the same broker in one process therefore leaves the first connection open.

"Connected" comes from pygcn's own log: the source gives ``listen`` a logger of its own (level
INFO, so that pygcn's "connected" record exists whatever the root level) and watches its
"connected" and "closed socket" records and its errors.
"""

import itertools
import logging

from torosmanager.alerts.sources import MissingExtraError, Source

logger = logging.getLogger(__name__)

#: GCN Classic's VTP broker and port (pygcn's first default broker).
DEFAULT_HOST = "45.58.43.186"
DEFAULT_PORT = 8099
#: The message pygcn logs once connected, and once its socket is closed (pygcn 1.1.3,
#: gcn/voeventclient.py).
CONNECTED_MESSAGE = "connected to %s:%d"
CLOSED_MESSAGE = "closed socket"
#: A level above every record: a detached pygcn thread's reconnection attempts are not news.
SILENT = logging.CRITICAL + 1
#: Numbers the sources' pygcn loggers, so that a detached thread's records never reach a later
#: source of the same broker.
_instances = itertools.count(1)


def default_listen():
    """pygcn's ``gcn.listen``.

    Raises
    ------
    MissingExtraError
        pygcn is not installed.
    """
    try:
        from gcn import listen
    except ImportError as error:
        raise MissingExtraError("pygcn", "vtp") from error
    return listen


class _ConnectionWatch(logging.Filter):
    """Reads the source's connection state from the records of pygcn's logger.

    It lets every record through: pygcn's messages stay in the log.
    """

    def __init__(self, source):
        super().__init__()
        self.source = source

    def filter(self, record):
        if record.msg == CONNECTED_MESSAGE:
            self.source._set_connected(True)
        elif record.msg == CLOSED_MESSAGE:
            self.source._set_connected(False)
        elif record.levelno >= logging.ERROR:
            self.source._record_error(f"pygcn: {record.getMessage()}")
        return True


class VoeventTransportSource(Source):
    """VOEvents from a VTP broker, each handed to *deliver* as ``"voevent"``.

    Parameters
    ----------
    settings : dict
        ``config["Alerts"]["VOEvent Transport"]``: ``Host``, ``Port``.
    deliver : callable
        ``deliver("voevent", payload, origin)``.
    listen : callable, optional
        pygcn's ``listen`` or a stand-in with its keywords (``host``, ``port``, ``handler``,
        ``log``). Default: :func:`default_listen`, imported when the source starts.
    """

    label = "vtp"

    def __init__(self, settings, deliver, listen=None):
        super().__init__(settings, deliver)
        self.host = settings.get("Host") or DEFAULT_HOST
        self.port = int(settings.get("Port") or DEFAULT_PORT)
        self.origin = f"vtp:{self.host}:{self.port}"
        self._listen = listen
        self._client_log = logging.getLogger(f"{__name__}.pygcn.{next(_instances)}")
        # pygcn says "connected" at INFO: a record the watch must see whatever the root level.
        self._client_log.setLevel(logging.INFO)
        self._watch = _ConnectionWatch(self)

    def start(self):
        """Run pygcn's listen in a daemon thread and return at once (nothing without pygcn)."""
        try:
            listen = self._listen or default_listen()
        except MissingExtraError as error:
            self._record_error(str(error))
            logger.error("vtp: %s", error)
            return
        self._client_log.addFilter(self._watch)
        self._spawn(self._run, listen)

    def stop(self):
        """Detach: hand nothing more over (pygcn's thread cannot be stopped; see the module
        docstring)."""
        self._stopping.set()
        self._client_log.removeFilter(self._watch)
        self._client_log.setLevel(SILENT)
        self._set_connected(False)
        if any(thread.is_alive() for thread in self._threads):
            logger.info("vtp: detached from %s:%d (pygcn's thread ends with the process)",
                        self.host, self.port)

    def _more_health(self):
        """The broker, and whether the source is detached."""
        return {"Broker": f"{self.host}:{self.port}", "Detached": self._stopping.is_set()}

    def _run(self, listen):
        """pygcn's loop (it returns only if pygcn raises)."""
        try:
            listen(host=self.host, port=self.port, handler=self._on_voevent,
                   log=self._client_log)
        except Exception as error:      # pygcn gave up: say so in the health report
            self._set_connected(False)
            self._record_error(f"pygcn stopped: {error}")
            logger.exception("vtp: pygcn's listen stopped")

    def _on_voevent(self, payload, root=None):
        """pygcn's handler: one VOEvent (its bytes; *root*, pygcn's parsed tree, is unused)."""
        if self._stopping.is_set():
            return
        self.hand_over("voevent", payload, self.origin)
