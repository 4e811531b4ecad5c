"""One LX200 mount on a serial line or a TCP socket: one request at a time, each bounded in time.

The port is opened by pyserial's :func:`serial.serial_for_url`, so the ``URL`` setting may be a
serial device (``/dev/ttyUSB0``) or ``socket://HOST:PORT`` (a mount, or a serial-to-network
bridge, reached over TCP). :class:`Lx200Connection`

* sends one command and reads its whole reply under a lock, so that the replies of two threads
  never interleave;
* reads each reply in its known shape (:class:`~.protocol.Reply`): up to ``#``, a fixed number
  of bytes for the replies that have no terminator, or nothing;
* bounds each request, and the opening of the port, by the ``Timeout`` setting;
* turns silence, a closed connection and garbage into :class:`DeviceError` naming the device,
  the command and the cause. After a failure the port is closed and a request opens it again,
  so a mount that comes back is used again without a reconnect from outside;
* while the mount does not answer, asks it again at most once per ``Timeout``: the requests
  in between (a health Status, which other daemons read every few seconds, a poll) fail at
  once with the last error, rather than each waiting ``Timeout`` in turn (36 s for one Status
  of a silent mount). A request waits at most twice ``Timeout`` for another's to end. The failure
  is logged once, and the mount's answering again.
"""

import logging
import threading
import time

import serial

from ...logs import Outage
from ..base import DeviceError
from .protocol import SLEW_STARTED, TERMINATOR, ProtocolError, ReplyKind

logger = logging.getLogger(__name__)

#: The driver name in the configuration and in health reports.
DRIVER = "lx200"

#: Seconds one low-level read waits at most; the request's own deadline is checked between
#: reads, so a request lasts at most ``Timeout`` plus this.
READ_POLL_SECONDS = 0.05

#: The longest reply any command here has (``:D#`` of a classic LX200 is 33 bytes); more bytes
#: without a terminator are garbage, not a slow mount.
MAX_REPLY_LENGTH = 256

#: The command set is ASCII; a byte outside it is shown escaped in messages.
ENCODING = "latin-1"

#: What pyserial and the operating system raise for a port that is gone or cannot be opened.
PORT_ERRORS = (serial.SerialException, OSError)


class Lx200Connection:
    """A serial or TCP connection to an LX200 mount.

    Parameters
    ----------
    kind : str
        What TOROS calls the device, e.g. ``"mount"``.
    settings : dict
        ``URL``, ``Baud Rate``, ``Dialect``, ``Timeout`` (seconds per request).
    """

    def __init__(self, kind, settings):
        self.kind = kind
        self.url = str(settings["URL"])
        self.baud_rate = int(settings["Baud Rate"])
        self.dialect = str(settings["Dialect"])
        self.timeout = float(settings["Timeout"])
        #: Whether :meth:`open` succeeded (and :meth:`close` has not been called since).
        self.connected = False
        self._port = None
        self._lock = threading.Lock()
        # The last failure, and when (monotonic): requests until Timeout after it fail with it.
        self._failure = None
        self._failed_at = None
        self._failing = Outage(logger)

    @property
    def label(self):
        """How messages name this device, e.g. ``mount (LX200 onstep at socket://h:9999)``."""
        return f"{self.kind} (LX200 {self.dialect} at {self.url})"

    def error(self, operation, cause):
        """A :class:`DeviceError` about *operation* on this device, because of *cause* (text)."""
        return DeviceError(f"{self.label}: {operation} failed: {cause}")

    def require_connected(self, operation):
        """Raise a :class:`DeviceError` about *operation* unless :meth:`open` succeeded."""
        if not self.connected:
            raise self.error(operation, "not connected (connect() first)")

    def open(self):
        """Open the port (idempotent). Raises :class:`DeviceError`."""
        with self._lock:
            if self._port is None:
                self._port = self._open_port("connecting")
            self.connected = True
            self._failure = None
        logger.info("%s: port open", self.label)

    def close(self):
        """Close the port (idempotent); never raises."""
        with self._lock:
            self.connected = False
            self._drop_port()

    def request(self, command, reply, operation=None):
        """Send *command* and read its *reply*; return the reply's text.

        Parameters
        ----------
        command : str
            The whole command, e.g. ``":GR#"``, or the ACK byte.
        reply : Reply
            Its reply's shape.
        operation : str, optional
            What is being done, for messages; default ``sending <command>``.

        Returns
        -------
        str or tuple or None
            The text before ``#`` (terminated), the bytes read (fixed), ``None`` (no reply), or
            for ``:MS#`` ``(digit, message)``.

        Raises
        ------
        DeviceError
            Silence within ``Timeout``, a closed or unopenable port, or bytes that do not fit
            the reply's shape.
        """
        operation = operation or f"sending {command!r}"
        # The request under way may take two Timeouts (opening the port again, its reply).
        if not self._lock.acquire(timeout=2 * self.timeout):
            raise self.error(operation, f"busy: another request has not ended within "
                                        f"{2 * self.timeout:g} s")
        try:
            if not self.connected:
                raise self.error(operation, "not connected (connect() first)")
            self._fail_fast(operation)
            try:
                answer = self._exchange(command, reply, operation)
            except DeviceError as error:
                self._failure, self._failed_at = error, time.monotonic()
                self._failing.failed("%s (asked again at most every %g s; said once it "
                                     "answers)", error, self.timeout)
                raise
            self._failure = None
            self._failing.answered("%s: answers again", self.label)
            return answer
        finally:
            self._lock.release()

    def _fail_fast(self, operation):
        """Raise the last failure again if it is less than ``Timeout`` old."""
        if self._failure is None or time.monotonic() - self._failed_at >= self.timeout:
            return
        last = str(self._failure).removeprefix(f"{self.label}: ")
        raise self.error(operation, f"not answering ({time.monotonic() - self._failed_at:.1f} s "
                                    f"ago, {last}); asked again at most every "
                                    f"{self.timeout:g} s")

    def _exchange(self, command, reply, operation):
        """Send *command* and read its *reply* (the port opened first if it is closed)."""
        if self._port is None:
            logger.debug("%s: opening the port again", self.label)
            self._port = self._open_port(operation)
        deadline = time.monotonic() + self.timeout
        try:
            # Bytes left over from an earlier request that timed out are not this reply.
            self._port.reset_input_buffer()
            self._port.write(command.encode(ENCODING))
            return self._read_reply(reply, deadline)
        except PORT_ERRORS as error:
            self._drop_port()
            raise self.error(operation, f"the connection failed ({error})") from error
        except _BadReply as cause:
            self._drop_port()
            raise self.error(operation, f"{cause} (command {command!r})") from None

    def ask(self, command, reply, parse, operation=None):
        """:meth:`request`, then ``parse(text)``; a :class:`ProtocolError` becomes a
        :class:`DeviceError` naming the command and what the mount said."""
        text = self.request(command, reply, operation)
        try:
            return parse(text)
        except ProtocolError as error:
            raise self.error(operation or f"sending {command!r}",
                             f"unexpected answer to {command!r}: {error}") from error

    # --- Reading ------------------------------------------------------------------------

    def _read_reply(self, reply, deadline):
        if reply.kind is ReplyKind.NONE:
            return None
        if reply.kind is ReplyKind.TERMINATED:
            return self._read_terminated(deadline)
        if reply.kind is ReplyKind.FIXED:
            return self._read_fixed(reply.length, deadline)
        code = self._read_fixed(1, deadline)
        if code == SLEW_STARTED or not reply.message_after_error:
            return code, ""
        try:
            return code, self._read_terminated(deadline)
        except _BadReply as cause:
            # The refusal itself arrived; a missing message should not hide it.
            logger.warning("%s: no message after :MS# refusal %r: %s", self.label, code, cause)
            return code, ""

    def _read_byte(self, deadline, received):
        """One byte, or :class:`_BadReply` when *deadline* passes first."""
        while True:
            byte = self._port.read(1)
            if byte:
                return byte.decode(ENCODING)
            if time.monotonic() >= deadline:
                so_far = f" (only {received!r})" if received else ""
                raise _BadReply(f"no complete answer within {self.timeout:g} s{so_far}")

    def _read_fixed(self, length, deadline):
        received = ""
        while len(received) < length:
            received += self._read_byte(deadline, received)
        return received

    def _read_terminated(self, deadline):
        received = ""
        while True:
            byte = self._read_byte(deadline, received)
            if byte == TERMINATOR:
                return received
            received += byte
            if len(received) > MAX_REPLY_LENGTH:
                raise _BadReply(f"garbage: {MAX_REPLY_LENGTH} bytes without '#' "
                                f"(starting {received[:40]!r})")

    # --- The port -----------------------------------------------------------------------

    def _open_port(self, operation):
        """Open the port within ``Timeout`` (pyserial's own TCP connect waits 5 s)."""
        outcome = {}
        finished = threading.Event()
        abandoned = threading.Event()

        def open_in_background():
            try:
                port = serial.serial_for_url(self.url, baudrate=self.baud_rate,
                                             timeout=READ_POLL_SECONDS,
                                             write_timeout=self.timeout)
            except (PORT_ERRORS + (ValueError,)) as error:
                outcome["error"] = error
            else:
                outcome["port"] = port
                if abandoned.is_set():
                    port.close()
            finished.set()

        opener = threading.Thread(target=open_in_background, daemon=True,
                                  name=f"lx200-open {self.url}")
        opener.start()
        if not finished.wait(self.timeout):
            abandoned.set()
            if "port" in outcome:  # it opened between the wait's end and the flag
                outcome["port"].close()
            raise self.error(operation, f"cannot open {self.url} within {self.timeout:g} s")
        if "error" in outcome:
            raise self.error(operation, f"cannot open {self.url} ({outcome['error']})")
        return outcome["port"]

    def _drop_port(self):
        if self._port is None:
            return
        port, self._port = self._port, None
        try:
            port.close()
        except PORT_ERRORS as error:
            logger.warning("%s: closing the port: %s (ignored)", self.label, error)


class _BadReply(Exception):
    """Silence or garbage where a reply was due; :meth:`Lx200Connection.request` names the
    command."""
