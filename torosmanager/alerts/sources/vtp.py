"""VOEvents over the VOEvent Transport Protocol (VTP) as an alert source, through pygcn.

Why: VTP is how GCN Classic (and other brokers) push VOEvents to anyone who connects, without
an account: the site connects to the broker (``Host``, ``Port``), the broker sends each VOEvent
as a 4-byte big-endian length and the XML, the client acknowledges it with a ``Transport``
message, and both exchange "iamalive" messages to know the link is up.

The client is NASA's ``pygcn`` (``gcn.listen(host, port, handler=..., log=...)``), an optional
extra (``torosmanager[vtp]``) that ``sudo make install`` includes. It is imported only when the source starts; missing,
the source says so in its health and log and does nothing else. pygcn answers the broker and
calls the handler with each VOEvent's bytes, handed over here as
``("voevent", payload, "vtp:<host>:<port>")``.

One call of pygcn's ``listen`` is one connection here. pygcn's own loop reconnects at once
after a connection that ends (a broker that accepts and closes had it connect thousands of times
a second) and gives up on a message it cannot read (an iamalive without ``Origin``); so the
source watches pygcn's log (:class:`_ConnectionWatch`, on a logger of the source's own given
to ``listen``) and, when pygcn says it closed its socket, ends that ``listen`` call by raising
from the log call. The source then waits and calls ``listen`` again, until it is stopped,
whatever ended the connection (an exception of pygcn's included): ``Reconnect Delay`` seconds
after a connection that worked (it carried a message: a VOEvent, or one pygcn read and came
back for the next), doubled after each connection that did not, up to ``Max Reconnect Delay``.
The log says an outage once, when it begins (again only if its cause changes), and once when a
connection works again; the health report shows ``Reconnecting``, the failed attempts and the
last error. pygcn's records about a connection (connected, socket error, timed out, XML not
read, closed) are read for the cause, not logged: pygcn logs a frame that is no XML whole, in
base64, with a traceback. Its other records are logged on one line, shortened, those of
warning and above at most once a minute each.

A frame's length is bounded by ``Max Frame Bytes``: pygcn reads a frame into a buffer of the
length the broker announces (``bytearray(n)`` in ``gcn.voeventclient._recvall``), so a length
of 0xFFFFFFF0 made it fill 4 GB and the alerts daemon was killed for it. pygcn has no setting
for it; :func:`bound_frames` wraps ``_recvall`` (the one function through which pygcn reads
from its socket: its name and arguments the same from pygcn 0.1.1 to 1.1.3 and pygcn's main
branch) in the source's thread only, and a larger frame ends the connection as a socket error
does, said in the log. A pygcn without that function is refused (the source says so and does
not connect) rather than run unbounded. The same wrapper notices a pygcn that connects again
by itself (a pygcn whose log says "closed socket" otherwise) and ends that ``listen`` call too.

:meth:`VoeventTransportSource.stop` wakes a wait to reconnect and shuts the connection's socket:
pygcn's thread ends at once, unless it is still connecting (until its connection attempt ends,
150 s at most); nothing more is handed over after it.
"""

import base64
import functools
import inspect
import itertools
import logging
import socket
import threading
import time

from torosmanager.alerts.sources import Backoff, MissingExtraError, Source, utc_now_iso
from torosmanager.printable import printable

logger = logging.getLogger(__name__)

#: GCN Classic's VTP broker and port (pygcn's first default broker).
DEFAULT_HOST = "45.58.43.186"
DEFAULT_PORT = 8099
#: The configuration's defaults, for settings that leave them out.
DEFAULT_MAX_FRAME_BYTES = 10_000_000
#: pygcn's log messages (pygcn 1.1.3, gcn/voeventclient.py): once connected, once its socket is
#: closed (after a failed connection too), a connection that failed...
CONNECTED_MESSAGE = "connected to %s:%d"
CLOSED_MESSAGE = "closed socket"
CONNECT_FAILED_PREFIX = "could not connect to "
#: ...the reasons it ends one (the record's exception, else the text given here)...
ENDING_MESSAGES = {"socket error": None, "timed out": "no message from the broker for 150 s",
                   "XML syntax error": None}
#: ...what goes with them, not worth a line of its own...
QUIET_MESSAGES = {"opened socket", "could not shut down socket", "could not close socket"}
#: ...and a frame that is no XML, followed by its whole content in base64.
NOT_XML_PREFIX = "failed to parse XML"
#: The longest of pygcn's other messages logged (characters), and how often each of its
#: warnings and errors is logged at most (seconds).
MAX_LOGGED_CHARACTERS = 300
RATE_SECONDS = 60.0
#: Numbers the sources' pygcn loggers, so that a detached thread's records never reach a later
#: source of the same broker.
_instances = itertools.count(1)
#: The source whose thread this is, for the wrapped receive function (see :func:`bound_frames`).
_current = threading.local()
_bounding = threading.Lock()


class FrameTooLarge(OSError):
    """A broker announced a frame longer than ``Max Frame Bytes``.

    An :class:`OSError`, that is a ``socket.error``: pygcn ends the connection as for a lost one.
    """


class UnsupportedClient(RuntimeError):
    """The pygcn installed lacks the receive function whose reads are bounded."""


class _ConnectionEnded(Exception):
    """Raised from pygcn's "closed socket" record: ends the ``listen`` call of a connection."""


def default_listen():
    """pygcn's ``gcn.listen``, its frames bounded (:func:`bound_frames`).

    Raises
    ------
    MissingExtraError
        pygcn is not installed.
    UnsupportedClient
        pygcn has no ``gcn.voeventclient._recvall(sock, n)`` to bound.
    """
    try:
        from gcn import listen, voeventclient
    except ImportError as error:
        raise MissingExtraError("pygcn", "vtp") from error
    bound_frames(voeventclient)
    return listen


def bound_frames(module):
    """Wrap *module*'s ``_recvall(sock, n)`` (pygcn's ``gcn.voeventclient``) once, so that in a
    source's thread a read longer than its ``Max Frame Bytes`` raises :class:`FrameTooLarge`
    before any buffer is made. Other threads' reads are left as they were.

    Raises
    ------
    UnsupportedClient
        *module* has no such function (a pygcn this was not made for).
    """
    with _bounding:
        receive = getattr(module, "_recvall", None)
        if getattr(receive, "toros_bounded", False):
            return
        try:
            parameters = list(inspect.signature(receive).parameters)
        except (TypeError, ValueError):     # None, or not a function
            parameters = None
        if parameters != ["sock", "n"]:
            raise UnsupportedClient(
                f"pygcn {_version()} has no _recvall(sock, n) in gcn.voeventclient, through "
                "which the VTP source bounds a frame's length (VOEvent Transport → Max Frame "
                "Bytes): not connecting; install the pygcn of requirements/install.txt")

        @functools.wraps(receive)
        def bounded(sock, n):
            source = getattr(_current, "source", None)
            if source is not None:
                source._receiving(sock, n)
            return receive(sock, n)

        bounded.toros_bounded = True
        module._recvall = bounded


def _version():
    try:
        from importlib.metadata import version
        return version("pygcn")
    except Exception:           # noqa: BLE001 - only for a message
        return "(version unknown)"


def _one_line(text):
    """*text* on one line, printable, at most :data:`MAX_LOGGED_CHARACTERS` long."""
    text = printable(" ".join(str(text).split()))
    if len(text) > MAX_LOGGED_CHARACTERS:
        text = text[:MAX_LOGGED_CHARACTERS] + f"... ({len(text)} characters)"
    return text


def _described(error):
    """An exception in a few words: its text, or its type when the text is empty."""
    if isinstance(error, OSError) and not isinstance(error, FrameTooLarge):
        return _one_line(str(error) or type(error).__name__)
    if isinstance(error, FrameTooLarge):
        return str(error)
    if type(error).__name__ == "XMLSyntaxError":
        return _one_line(f"a message that is no XML ({error})")
    return _one_line(f"pygcn failed on a message from the broker: {type(error).__name__}: "
                     f"{error}")


class _ConnectionWatch(logging.Filter):
    """Reads a connection's state and end from the records of pygcn's logger, ends the ``listen``
    call when pygcn closes its socket, and keeps pygcn's other records short and rare."""

    def __init__(self, source):
        super().__init__()
        self.source = source
        self._last_logged = {}      # message → (monotonic time, records left out since)

    def filter(self, record):
        source, message = self.source, record.msg
        if not isinstance(message, str):
            return not source._stopping.is_set()
        if message == CLOSED_MESSAGE or message.startswith(CONNECT_FAILED_PREFIX):
            if record.exc_info and record.exc_info[1] is not None:
                source._note_end(_described(record.exc_info[1]))
            raise _ConnectionEnded()
        if message == CONNECTED_MESSAGE:
            source._on_connected()
            return False
        if message in ENDING_MESSAGES:
            error = record.exc_info[1] if record.exc_info else None
            source._note_end(_described(error) if error is not None
                             else ENDING_MESSAGES[message] or message)
            return False
        if message.startswith(NOT_XML_PREFIX):
            source._note_end(f"a frame of {self._frame_length(record)} bytes that is no XML")
            return False
        if message in QUIET_MESSAGES or source._stopping.is_set():
            return False
        return self._shortened(record)

    @staticmethod
    def _frame_length(record):
        try:
            return len(base64.b64decode(record.args[0]))
        except Exception:       # noqa: BLE001 - another pygcn's arguments
            return "?"

    def _shortened(self, record):
        """Log *record* on one line, without traceback; a warning or error once a minute."""
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            text = f"{text}: {type(error).__name__}: {error}"
        text = _one_line(text)
        if record.levelno >= logging.ERROR:
            self.source._record_error(f"pygcn: {text}")
        if record.levelno >= logging.WARNING:
            now = time.monotonic()
            last, left_out = self._last_logged.get(record.msg, (None, 0))
            if last is not None and now - last < RATE_SECONDS:
                self._last_logged[record.msg] = (last, left_out + 1)
                return False
            self._last_logged[record.msg] = (now, 0)
            if left_out:
                text += f" ({left_out} more like it in the last minute, not logged)"
        record.msg, record.args = "pygcn: %s", (text,)
        record.exc_info = record.exc_text = None
        return True


class VoeventTransportSource(Source):
    """VOEvents from a VTP broker, each handed to *deliver* as ``"voevent"``.

    Parameters
    ----------
    settings : dict
        ``config["Alerts"]["VOEvent Transport"]``: ``Host``, ``Port``, ``Reconnect Delay``,
        ``Max Reconnect Delay``, ``Max Frame Bytes``.
    deliver : callable
        ``deliver("voevent", payload, origin)``.
    listen : callable, optional
        pygcn's ``listen`` or a stand-in with its keywords (``host``, ``port``, ``handler``,
        ``log``), called once per connection. Default: :func:`default_listen`, imported when
        the source starts.
    """

    label = "vtp"

    def __init__(self, settings, deliver, listen=None):
        super().__init__(settings, deliver)
        self.host = settings.get("Host") or DEFAULT_HOST
        self.port = int(settings.get("Port") or DEFAULT_PORT)
        self.origin = f"vtp:{self.host}:{self.port}"
        self.max_frame_bytes = int(settings.get("Max Frame Bytes") or DEFAULT_MAX_FRAME_BYTES)
        self._backoff = Backoff(settings)
        self._listen = listen
        self._client_log = logging.getLogger(f"{__name__}.pygcn.{next(_instances)}")
        # pygcn says "connected" and "closed socket" at INFO: records the watch must see
        # whatever the root level.
        self._client_log.setLevel(logging.INFO)
        self._watch = _ConnectionWatch(self)
        # The connection under way (pygcn's thread writes these, stop() reads the socket).
        self._socket = None
        self._reads = 0
        self._worked = False
        self._end = None
        # The outage under way: failed connections since the last that worked.
        self._failures = 0
        self._reconnections = 0
        self._logged_end = None
        self._waiting = False
        # Every frame the broker sent (iamalives too: about one a minute from GCN).
        self._frames = 0
        self._last_frame = None

    def start(self):
        """Run pygcn's listen in a daemon thread and return at once (nothing without pygcn)."""
        try:
            listen = self._listen or default_listen()
        except (MissingExtraError, UnsupportedClient) as error:
            self._record_error(str(error))
            logger.error("vtp: %s", error)
            return
        self._client_log.addFilter(self._watch)
        self._spawn(self._run, listen)

    def stop(self):
        """Hand nothing more over, wake a wait to reconnect and shut the connection's socket:
        pygcn's thread ends (unless still connecting; see the module docstring)."""
        self._stopping.set()
        sock = self._socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:             # closed meanwhile
                pass
        self._set_connected(False)
        if any(thread.is_alive() for thread in self._threads):
            logger.info("vtp: detached from %s:%d", self.host, self.port)

    def _more_health(self):
        """The broker, whether the source is detached, how its reconnections go, and the
        frames it sent (its iamalives too: the link's heartbeat, where ``Messages`` counts the
        VOEvents only)."""
        with self._lock:
            return {"Broker": f"{self.host}:{self.port}", "Detached": self._stopping.is_set(),
                    "Reconnecting": self._failures > 0 and not self._stopping.is_set(),
                    "Failed Attempts": self._failures, "Reconnections": self._reconnections,
                    "Frames": self._frames, "Last Frame": self._last_frame,
                    "Max Frame Bytes": self.max_frame_bytes}

    # --- pygcn's thread ------------------------------------------------------------------
    def _run(self, listen):
        """One ``listen`` call per connection, a wait between two, until stopped."""
        _current.source = self
        try:
            while not self._stopping.is_set():
                with self._lock:
                    self._socket, self._reads, self._worked, self._end = None, 0, False, None
                error = None
                try:
                    listen(host=self.host, port=self.port, handler=self._on_voevent,
                           log=self._client_log)
                    ended = "pygcn's listen returned"
                except _ConnectionEnded as closed:
                    error = closed.__context__
                    ended = self._end or (_described(error) if error is not None
                                          else "the broker closed the connection")
                except Exception as failure:    # pygcn raised: the connection is over
                    error = failure
                    ended = self._end or _described(failure)
                self._socket = None
                self._set_connected(False)
                if self._stopping.is_set() or self._wait_after(ended, error):
                    break
        finally:
            _current.source = None

    def _wait_after(self, ended, error):
        """Say a connection ended, once per outage, and wait; True if the source is stopping."""
        with self._lock:
            if self._worked:        # a connection that worked: a new outage, if any, begins
                self._failures, self._logged_end = 0, None
                self._backoff.reset()
            self._failures += 1
            self._reconnections += 1
            delay, failures = self._backoff.next(), self._failures
            news = ended != self._logged_end
            self._logged_end = ended
            self._last_error = f"{ended}; connecting again in {delay:.3g} s"
        unexpected = error is not None and not isinstance(error, OSError) and \
            type(error).__name__ != "XMLSyntaxError"
        if news:
            logger.warning("vtp: the connection to %s:%d ended: %s; connecting again in %.3g s, "
                           "then less often while it fails (at most every %.3g s; said again "
                           "once it works)", self.host, self.port, ended, delay, self._backoff.most,
                           exc_info=error if unexpected else None)
        else:
            logger.debug("vtp: %s:%d, attempt %d failed: %s; next in %.3g s", self.host,
                         self.port, failures, ended, delay)
        return self._stopping.wait(delay)

    def _note_end(self, text):
        """What ended the connection under way (the first reason pygcn gives)."""
        with self._lock:
            if self._end is None:
                self._end = text

    def _on_connected(self):
        self._set_connected(True)
        if self._failures == 0 and self._reconnections == 0:
            logger.info("vtp: connected to %s:%d", self.host, self.port)

    def _worked_now(self):
        """The connection carries messages: the back-off starts afresh."""
        with self._lock:
            if self._worked:
                return
            self._worked = True
            failures, self._failures, self._logged_end = self._failures, 0, None
            self._backoff.reset()
        self._set_connected(True)
        if failures:
            logger.info("vtp: connected to %s:%d again, after %d failed attempt(s)", self.host,
                        self.port, failures)

    def _receiving(self, sock, n):
        """pygcn is about to read *n* bytes from *sock* (see :func:`bound_frames`)."""
        if self._socket is not None and sock is not self._socket:
            # pygcn connected again by itself: not without the wait (see the module docstring)
            raise _ConnectionEnded()
        self._socket = sock
        if self._stopping.is_set():
            raise OSError("the source is stopping")
        self._reads += 1
        if self._reads >= 3 and self._reads % 2:    # a length, a frame, and pygcn wants the next
            with self._lock:
                self._frames += 1
                self._last_frame = utc_now_iso()
        if self._reads == 3:
            self._worked_now()
        if n > self.max_frame_bytes:
            raise FrameTooLarge(f"the broker announced a frame of {n} bytes, more than VOEvent "
                                f"Transport → Max Frame Bytes ({self.max_frame_bytes}): "
                                "connection closed")

    def _on_voevent(self, payload, root=None):
        """pygcn's handler: one VOEvent (its bytes; *root*, pygcn's parsed tree, is unused)."""
        if self._stopping.is_set():
            return
        self._worked_now()
        self.hand_over("voevent", payload, self.origin)
