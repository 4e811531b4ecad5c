"""One TCP connection to a mount computer that speaks plain text, at a bounded rate.

The protocol (the MMT mount computer's, see ``docs/devices/text-tcp.md``): one ASCII command per
line; a command that sets a value or starts an action is answered ``OK`` or ``ERR``; a query is
answered by lines ``tag value``, one per line, ending with ``.EOF``, to be read by tag and not by
position. The server wants one connection per client and no more than about one command per
second.

:class:`TextTcpConnection` therefore

* keeps ONE connection, and opens it again once when it is lost (then gives up with a
  :class:`DeviceError`);
* sends one command at a time, first come first served (the telescope daemon calls from
  several threads), and never sooner than ``Command Interval`` seconds after the previous
  exchange *ended*: measured from the answer, the spacing cannot shrink on its way to the
  server;
* answers a query asked again within ``Command Interval`` from the last answer, without asking
  (any set or action command forgets these answers, since it changes them);
* bounds every read by ``Timeout``: a silent server is a :class:`DeviceError`, and the connection
  is closed so that a late answer cannot be taken for the answer to a later command; requests
  that were queued behind the unanswered one fail at once instead of each waiting a timeout.
"""

import contextlib
import logging
import socket
import threading
import time

from ..base import DeviceError

logger = logging.getLogger(__name__)

#: The driver name in the configuration and in health reports.
DRIVER = "text-tcp"

#: The acknowledgements of a set or action command.
OK = "OK"
ERR = "ERR"
#: The last line of the answer to a query.
END_OF_ANSWER = ".EOF"

#: Commands and answers are ASCII; a line ends with LF (a CR before it is ignored).
ENCODING = "ascii"
LINE_END = b"\n"

#: The most ``Timeout`` periods one request can take: opening the connection, finding it lost,
#: opening it again and reading the answer (a silent server fails the first read instead).
TIMEOUTS_PER_REQUEST = 3

#: Bytes read from the socket at a time.
RECEIVE_SIZE = 4096
#: A longer line, or an answer with more lines, is not from a mount computer (and would
#: otherwise let a broken server fill the memory).
MAX_LINE_BYTES = 4096
MAX_ANSWER_LINES = 200


class ConnectionLost(Exception):
    """The server closed or reset the connection (the connection may be opened again)."""


class TextTcpConnection:
    """The connection to one mount computer.

    Parameters
    ----------
    kind : str
        What TOROS calls the device, e.g. ``"mount"``.
    settings : dict
        The device's configuration: ``Host``, ``Port``, ``Timeout`` (seconds per request),
        ``Command Interval`` (least seconds between two commands).
    """

    def __init__(self, kind, settings):
        self.kind = kind
        self.host = str(settings["Host"])
        self.port = int(settings["Port"])
        self.timeout = float(settings["Timeout"])
        self.interval = float(settings["Command Interval"])
        host = f"[{self.host}]" if ":" in self.host else self.host
        #: ``host:port``, for messages and health reports.
        self.address = f"{host}:{self.port}"
        #: Whether :meth:`connect` succeeded (and :meth:`disconnect` has not been called since).
        self.connected = False
        #: Commands sent since this object was made (health reports, tests).
        self.commands_sent = 0
        # Requests take their turn first come, first served (a plain lock would let one thread
        # starve behind the others, each holding it for an interval).
        self._queue = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._abandoned = set()  # tickets whose request gave up waiting
        self._silent_since = None  # time.monotonic() of the latest request left unanswered
        self._silence = ""  # its cause
        self._socket = None
        self._buffer = b""
        self._last_exchange = None  # time.monotonic() when the previous exchange ended
        self._answers = {}  # query → (time.monotonic() of the answer, {tag: value})

    @property
    def label(self):
        """How messages name this device, e.g. ``mount (text-tcp at 10.0.0.5:5240)``."""
        return f"{self.kind} ({DRIVER} at {self.address})"

    def error(self, operation, cause):
        """A :class:`DeviceError` about *operation* on this device, because of *cause* (text)."""
        return DeviceError(f"{self.label}: {operation} failed: {cause}")

    def connect(self):
        """Open the connection (idempotent)."""
        with self._turn("connecting"):
            if self._socket is None:
                self._open("connecting")
            self.connected = True

    def disconnect(self):
        """Close the connection (idempotent; never raises)."""
        try:
            with self._turn("disconnecting", after_silence=True):
                self._forget_connection()
        except DeviceError as error:
            # A request is stuck on a silent server: close under it (it fails at once).
            logger.warning("%s; closing the connection anyway", error)
            self._forget_connection()

    def _forget_connection(self):
        self.connected = False
        self._close()
        self._answers.clear()

    def query(self, command):
        """Send the query *command* (e.g. ``"get all"``); return its answer as ``{tag: value}``.

        The same query answered less than ``Command Interval`` ago is not sent again: the earlier
        answer (the same dict; do not change it) is returned.
        """
        with self._turn(repr(command)):
            answered = self._answers.get(command)
            if answered is not None and time.monotonic() - answered[0] < self.interval:
                return answered[1]
            answer = self._exchange(command, self._read_tagged)
            self._answers[command] = (time.monotonic(), answer)
            return answer

    def command(self, command):
        """Send the set or action *command* (e.g. ``"slew"``); return when it is acknowledged.

        Raises
        ------
        DeviceError
            When the mount computer answers ``ERR``, or fails to answer.
        """
        with self._turn(repr(command)):
            # Whatever it sets or starts changes what the queries would answer.
            self._answers.clear()
            self._exchange(command, self._read_acknowledgement)

    def describe(self):
        """The driver's part of a health report."""
        return {"Driver": DRIVER, "Connected": self.connected, "Address": self.address,
                "Command Interval": self.interval, "Commands Sent": self.commands_sent}

    @property
    def _request_bound(self):
        """The longest one request may hold its turn: wait for the interval, open a connection,
        lose it, open it again and read the answer, each bounded by ``Timeout``."""
        return self.interval + TIMEOUTS_PER_REQUEST * self.timeout

    @contextlib.contextmanager
    def _turn(self, operation, after_silence=False):
        """Wait for this request's turn (first come, first served), and give it up at the end.

        A request that waited while an earlier one was left unanswered fails at once (unless
        *after_silence*): the mount computer has stopped answering, and each request in the
        queue would otherwise wait its own ``Timeout`` in turn.
        """
        with self._queue:
            ticket = self._next_ticket
            self._next_ticket += 1
            queued_at = time.monotonic()
            patience = (ticket - self._serving + 1) * self._request_bound
            if not self._queue.wait_for(lambda: self._serving == ticket, timeout=patience):
                self._abandoned.add(ticket)
                raise self.error(operation, f"the requests before it have not finished within "
                                            f"{patience:g} s")
            if (not after_silence and self._silent_since is not None
                    and self._silent_since > queued_at):
                self._next_turn()
                raise self.error(operation, f"not sent: the mount computer left an earlier "
                                            f"request unanswered ({self._silence})")
        try:
            yield
        finally:
            with self._queue:
                self._next_turn()

    def _next_turn(self):
        """Pass the turn on, past the requests that gave up waiting (the queue lock held)."""
        self._serving += 1
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1
        self._queue.notify_all()

    def _exchange(self, command, read_answer):
        """Send *command* and read its answer with *read_answer*; reconnect once if lost."""
        operation = repr(command)
        if not self.connected:
            raise self.error(operation, "not connected (connect() first)")
        lost = None
        for _attempt in ("first", "after reconnecting"):
            if not self.connected:  # disconnect() gave up waiting for this request
                raise self.error(operation, "disconnected meanwhile")
            if self._socket is None:
                cause = self._try_open()
                if cause is not None and lost is not None:
                    cause = f"the connection was lost ({lost}) and reconnecting failed: {cause}"
                if cause is not None:
                    raise self.error(operation, cause)
            self._wait_for_turn()
            try:
                self._send(command)
                return read_answer(command)
            except ConnectionLost as error:
                self._close()
                if lost is not None:
                    raise self.error(operation, f"the connection was lost again after "
                                                f"reconnecting: {error}") from error
                lost = error
                logger.warning("%s: %s: the connection was lost (%s); reconnecting once",
                               self.label, operation, error)
            except TimeoutError as error:
                # The answer may still come: never let it be read as a later command's.
                self._close()
                self._silent_since = time.monotonic()
                self._silence = f"{operation}: no answer within {self.timeout:g} s"
                raise self.error(operation, f"no answer within {self.timeout:g} s") from error
            finally:
                self._last_exchange = time.monotonic()
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _wait_for_turn(self):
        """Sleep until ``Command Interval`` has passed since the previous exchange ended."""
        if self._last_exchange is None:
            return
        wait = self._last_exchange + self.interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _open(self, operation):
        cause = self._try_open()
        if cause is not None:
            raise self.error(operation, cause)

    def _try_open(self):
        """Open the socket; return ``None``, or why it could not be opened."""
        try:
            self._socket = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except TimeoutError:
            self._silent_since = time.monotonic()
            self._silence = f"no connection within {self.timeout:g} s"
            return self._silence
        except OSError as error:
            return f"cannot reach the mount computer ({error.strerror or error})"
        self._buffer = b""
        logger.info("%s: connected", self.label)
        return None

    def _close(self):
        sock, self._socket = self._socket, None
        self._buffer = b""
        if sock is not None:
            sock.close()

    def _send(self, command):
        self.commands_sent += 1
        logger.debug("%s <- %s", self.label, command)
        try:
            self._socket.settimeout(self.timeout)
            self._socket.sendall(command.encode(ENCODING) + LINE_END)
        except TimeoutError:
            raise
        except OSError as error:
            raise ConnectionLost(error.strerror or str(error)) from error

    def _read_line(self, command, deadline):
        """The next line of the answer, without its line end; bounded by *deadline*."""
        while LINE_END not in self._buffer:
            if len(self._buffer) > MAX_LINE_BYTES:
                self._close()
                raise self.error(repr(command), f"an answer line longer than "
                                                f"{MAX_LINE_BYTES} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                self._socket.settimeout(remaining)
                data = self._socket.recv(RECEIVE_SIZE)
            except TimeoutError:
                raise
            except OSError as error:
                raise ConnectionLost(error.strerror or str(error)) from error
            if not data:
                raise ConnectionLost("the mount computer closed the connection")
            self._buffer += data
        line, self._buffer = self._buffer.split(LINE_END, 1)
        try:
            text = line.decode(ENCODING).rstrip("\r")
        except UnicodeDecodeError as error:
            self._close()
            raise self.error(repr(command), f"an answer that is not ASCII: {line[:80]!r}") \
                from error
        logger.debug("%s -> %s", self.label, text)
        return text

    def _refused(self, command, line):
        return self.error(repr(command), f"the mount computer answered {line!r}")

    def _read_acknowledgement(self, command):
        line = self._read_line(command, time.monotonic() + self.timeout)
        if line == OK:
            return
        if line == ERR or line.startswith(ERR + " "):
            raise self._refused(command, line)
        self._close()  # out of step with the server: start afresh
        raise self.error(repr(command), f"expected {OK} or {ERR}, got {line!r}")

    def _read_tagged(self, command):
        """Read ``tag value`` lines up to ``.EOF`` into a dict."""
        deadline = time.monotonic() + self.timeout
        answer = {}
        for number in range(MAX_ANSWER_LINES):
            line = self._read_line(command, deadline)
            if line == END_OF_ANSWER:
                return answer
            if number == 0 and (line == ERR or line.startswith(ERR + " ")):
                raise self._refused(command, line)
            tag, _, value = line.strip().partition(" ")
            if not tag:
                continue  # a blank line carries nothing
            answer[tag] = value.strip()
        self._close()
        raise self.error(repr(command), f"no {END_OF_ANSWER} within {MAX_ANSWER_LINES} lines")
