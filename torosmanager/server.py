"""The XML-RPC server every daemon runs.

It publishes one application method, ``front_desk(work_order)``, plus the standard
``system.listMethods``, ``system.methodHelp``, ``system.methodSignature`` and
``system.multicall``, at ``POST /`` and ``POST /RPC2``, and the daemon's status page at
``GET /``. HTTP/1.1 connections are kept for the client's next request (HTTP/1.0 ones are
closed after the answer).

One thread, the server's own, does the networking of every connection: it never waits for a
client (non-blocking sockets and a selector), so a client slow to send its request or to take
its answer holds up no one. It also serves the new work orders itself: those whose requests
came in together are checked one after the other, journaled in one commit, and answered once
it is on the disk (:meth:`FrontDesk.front_desks <torosmanager.frontdesk.FrontDesk.front_desks>`).
Threads would only take turns at the one processor Python gives a process, and each hand-off
costs about as much as the work. What may wait for something else (Status and Cancel queries,
which may ask the devices, the status pages, ``system.*`` calls, a password not checked before)
is served by ``Server → Concurrent Requests`` worker threads, in the order it came, so that it
holds up no new order.

Around this it adds what a networked observatory needs: a limit on connections open at once
(503 beyond it), a deadline for each whole request (408), a limit on request size (413), and
HTTP Basic authentication (401).
"""

import base64
import binascii
import collections
import errno
import inspect
import logging
import math
import re
import selectors
import socket
import threading
import time
from email.utils import formatdate
from xmlrpc.client import Fault, dumps, gzip_decode, gzip_encode
from xmlrpc.server import SimpleXMLRPCDispatcher

from . import __version__
from .handler import Workers
from .passwords import Authenticator
from .printable import printable
from .workorders import FaultCode, clip, shorten
from .xmlrpc_call import TREE_MAX_BYTES, parse_call

log = logging.getLogger(__name__)

#: Connections waiting to be accepted (listen(2) backlog); socketserver's default is 5.
LISTEN_BACKLOG = 128
#: Seconds a client refused for too many connections is asked to wait (Retry-After).
RETRY_AFTER_SECONDS = 1
#: Seconds new connections wait while the process has no file descriptor left for them: the
#: listening socket, still readable, made the loop spin (40,000 warnings in 10 s, a Status
#: answered in 17 s, the dome's safety checks starved).
ACCEPT_PAUSE_SECONDS = 0.1
#: accept(2)'s errors that mean the process or the system is out of what a connection takes.
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Bytes read from a connection at a time.
RECEIVE_BYTES = 65536
#: The request line and headers, at most: the stdlib's limit for one line
#: (``http.client._MAXLINE``), which is larger than any real request's whole head.
MAX_HEAD_BYTES = 65536
#: Header lines in a request, at most (the stdlib's ``http.client._MAXHEADERS``).
MAX_HEADERS = 100
#: A body refused for its size (413) is still read, and dropped, up to this many bytes: a
#: client that sends its whole body before it reads the answer (Python's ``xmlrpc.client``)
#: would otherwise meet a closed connection (a broken pipe) instead of the 413. A larger one
#: is cut off at once.
MAX_DROPPED_BYTES = 64 * 2 ** 20
#: Answers larger than this are compressed for a client that accepts gzip: the stdlib
#: server's threshold (``SimpleXMLRPCRequestHandler.encode_threshold``, a common MTU).
GZIP_ABOVE_BYTES = 1400
#: Where XML-RPC calls are taken.
RPC_PATHS = ("/", "/RPC2")

#: The end of a request's head: the first empty line (bare LF line ends accepted, as the
#: stdlib does).
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_HTTP_VERSION = re.compile(r"HTTP/(\d+)\.(\d+)")
_GZIP_ACCEPTED = re.compile(r"\s*gzip\s*(;\s*q\s*=\s*([0-9.]+))?\s*$", re.IGNORECASE)

_READING, _SERVING, _WRITING = "reading", "serving", "writing"


class _Connection:
    """One client's connection: the request being read, served or answered, and, kept alive,
    the bytes of the next."""

    __slots__ = ("socket", "host", "state", "watched", "received", "head_end", "body_length",
                 "method", "path", "version", "headers", "keep_alive", "served", "deadline",
                 "unsent", "refused", "dropping")

    def __init__(self, sock, host, deadline):
        self.socket = sock
        self.host = host
        self.state = _READING
        self.watched = False  # registered with the selector
        self.received = bytearray()
        self.head_end = None  # where the body begins, once the head has come
        self.body_length = 0
        self.method = self.path = self.headers = None
        self.version = "HTTP/1.0"  # the request's, once its line has come; the answer's
        self.keep_alive = False  # kept for the next request after this one's answer
        self.served = 0  # requests answered on this connection
        self.deadline = deadline  # monotonic seconds; None while the request is served
        self.unsent = None  # the rest of the answer, while the client takes it
        self.refused = None  # the answer refusing a body too large, sent once it has come
        self.dropping = 0  # bytes of that body still to come (and be dropped)

    def next_request(self, deadline):
        """Forget the request answered; the bytes after it (a request sent before the answer
        came) stay."""
        del self.received[:self.head_end + self.body_length]
        self.head_end, self.body_length = None, 0
        self.method = self.path = self.headers = self.unsent = None
        self.version, self.keep_alive = "HTTP/1.0", False
        self.state, self.deadline = _READING, deadline
        self.served += 1

    @property
    def body(self):
        return bytes(self.received[self.head_end:self.head_end + self.body_length])


class FrontDeskServer(SimpleXMLRPCDispatcher):
    """The XML-RPC server of one daemon.

    Parameters
    ----------
    service : str
        The daemon's name, for logs and the authentication realm.
    host, port : str, int
        Where to listen.
    request_limit : (int, str)
        Larger request bodies are refused with HTTP 413, naming the setting (the second item)
        that sets the limit (see :meth:`Handler.request_limit
        <torosmanager.handler.Handler.request_limit>`).
    request_timeout : float
        Seconds a client may take to send its whole request, and to take its answer; a kept
        connection idle this long is closed.
    max_connections : int
        Connections open at once; beyond it, a kept connection idle since its last answer, or
        else the one silent longest since it was opened, is closed to make room, or else the
        new one is answered 503.
    concurrent_requests : int
        Worker threads: requests other than new work orders served at once, in the order
        they came; the others wait.
    users : dict, optional
        User name to password or hash; when given every request needs HTTP Basic
        credentials.
    """

    def __init__(self, service, host, port, *, request_limit, request_timeout,
                 max_connections, concurrent_requests, users=None):
        super().__init__(allow_none=True, encoding="utf-8", use_builtin_types=True)
        self.service = service
        self.max_request_bytes, self.limit_setting = request_limit
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        # Constant-time checks of plain passwords and scrypt hashes alike.
        self.authenticator = Authenticator(users) if users else None
        self.pages = None
        self._orders_at_once = None
        # Served in the order they came; by the time the server closes, all have been.
        self._workers = Workers(f"{service}-request", concurrent_requests)
        self._connections = set()
        self._orders = []  # (connection, work order) read in this turn of the loop
        self._finished = collections.deque()  # (connection, answer) from the workers
        self._next_deadline = math.inf
        self._busy_since = None  # when the connection limit was last reached, for the log
        self._accept_again_at = math.inf  # while out of file descriptors (see _accept)
        self._out_of_descriptors = False  # said once until a connection is accepted again
        self._stopping = False
        self._stopped = threading.Event()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
            self.socket.listen(LISTEN_BACKLOG)
        except OSError:
            self.socket.close()
            raise
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        # Made in serve_forever: a daemon detaching closes every descriptor but the socket's.
        self._selector = None
        self._wake_reader = self._wake_writer = None  # the workers wake the loop through them
        self._signatures = {}  # each method's, read once

    def publish(self, front_desk, pages=None, orders_at_once=None):
        """Serve *front_desk* as ``front_desk``, with the ``system.*`` methods, and *pages*
        (a :class:`~torosmanager.pages.StatusPages`) at ``GET /``.

        The function's docstring is what ``system.methodHelp("front_desk")`` returns. With
        *orders_at_once* (a :class:`~torosmanager.frontdesk.FrontDesk`), the calls of
        ``front_desk`` it ``serves_at_once`` are served by the server's own thread, those
        that came together in one call of its ``front_desks``; every other call, by a worker.
        """
        self.pages = pages
        self._orders_at_once = orders_at_once
        self.register_function(front_desk, "front_desk")
        self.register_introspection_functions()
        self.register_multicall_functions()

    @property
    def port(self):
        """The port actually bound (useful when 0 asked for any free port)."""
        return self.server_address[1]

    def fileno(self):
        """The listening socket's file descriptor."""
        return self.socket.fileno()

    # --- the loop -------------------------------------------------------------------------

    def serve_forever(self):
        """Serve until :meth:`shutdown`, then finish the requests under way and return."""
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        try:
            while True:
                if self._stopping:
                    self._stop_accepting()
                    if not self._connections:
                        break
                timeout = None
                wake_at = min(self._next_deadline, self._accept_again_at)
                if wake_at < math.inf:
                    timeout = max(0.0, wake_at - time.monotonic())
                for key, events in self._selector.select(timeout):
                    if key.fileobj is self.socket:
                        self._accept()
                    elif key.fileobj is self._wake_reader:
                        self._take_finished()
                    elif events & selectors.EVENT_WRITE:
                        self._write(key.data)
                    else:
                        self._read(key.data)
                if self._orders:
                    self._serve_orders()
                if time.monotonic() >= self._next_deadline:
                    self._expire()
                if time.monotonic() >= self._accept_again_at and not self._stopping:
                    self._accept_again_at = math.inf
                    self._selector.register(self.socket, selectors.EVENT_READ)
        finally:
            self._stopped.set()

    def shutdown(self):
        """Stop accepting connections, and return once the requests under way are answered
        and :meth:`serve_forever` has returned."""
        self._stopping = True
        self._wake()
        self._stopped.wait()

    def server_close(self):
        """Close the sockets and end the worker threads (serve_forever has answered all)."""
        self._stop_accepting()
        self._workers.stop()
        for resource in (self._selector, self._wake_reader, self._wake_writer):
            if resource is not None:
                resource.close()

    def _stop_accepting(self):
        if self.socket.fileno() < 0:
            return
        if self._selector is not None and self._accept_again_at == math.inf:
            self._selector.unregister(self.socket)  # (serve_forever ran, accepting)
        self._accept_again_at = math.inf  # (no wake-up left set to accept again)
        self.socket.close()
        # Requests not all come yet are owed nothing: nothing of them was accepted.
        for connection in [c for c in self._connections if c.state == _READING]:
            self._close(connection)

    def _accept(self):
        while True:
            try:
                sock, address = self.socket.accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in OUT_OF_RESOURCES:
                    self._pause_accepting(error)
                else:  # (a client gone before it was accepted: ECONNABORTED)
                    log.warning("cannot accept a connection: %s", error)
                return
            if self._out_of_descriptors:
                log.info("accepting connections again")
                self._out_of_descriptors = False
            if len(self._connections) >= self.max_connections and not self._make_room():
                self._refuse_busy(sock, address[0])
                continue
            if self._busy_since is not None:
                log.info("connections below Server → Max Connections (%d) again",
                         self.max_connections)
                self._busy_since = None
            sock.setblocking(False)
            connection = _Connection(sock, address[0], self._deadline())
            self._connections.add(connection)
            self._watch(connection, selectors.EVENT_READ)

    def _pause_accepting(self, error):
        """Leave new connections waiting in the backlog for :data:`ACCEPT_PAUSE_SECONDS`: a
        connection that cannot be accepted now (no file descriptor left) stays readable."""
        if not self._out_of_descriptors:
            self._out_of_descriptors = True
            log.warning("cannot accept connections: %s (%d open); new ones wait until there is "
                        "room", error, len(self._connections))
        self._selector.unregister(self.socket)
        self._accept_again_at = time.monotonic() + ACCEPT_PAUSE_SECONDS

    def _make_room(self):
        """Close a connection to make room for a new one, without a word: one kept alive and
        idle since its last answer, else the one silent longest since it was opened (a client
        sends its request at once: connections that send nothing, opened until every place
        was taken, turned away every other client, the scheduler's heartbeat included, for as
        long as they were kept open); whether there was one."""
        idle = next((connection for connection in self._connections if _idle(connection)), None)
        if idle is None:
            unread = sorted((connection for connection in self._connections
                             if connection.state == _READING and not connection.received),
                            key=lambda connection: connection.deadline)
            # (Not one whose request is in, not read yet: accepted with others in one turn.)
            idle = next((connection for connection in unread if _silent(connection)), None)
        if idle is not None:
            self._close(idle)
        return idle is not None

    def _deadline(self):
        deadline = time.monotonic() + self.request_timeout
        self._next_deadline = min(self._next_deadline, deadline)
        return deadline

    def _expire(self):
        """Cut off the connections past their deadline: 408 to a request not all come."""
        now = time.monotonic()
        self._next_deadline = math.inf
        for connection in list(self._connections):
            if connection.deadline is None:
                continue
            if connection.deadline > now:
                self._next_deadline = min(self._next_deadline, connection.deadline)
            elif _idle(connection):
                self._close(connection)  # kept alive, and idle since: closed without a word
            elif connection.state == _READING:
                answer = connection.refused or self._refusal(
                    connection, 408, "Request Timeout", f"the request did not arrive within "
                    f"{self.request_timeout:g} s (Server → Request Timeout)")
                try:
                    connection.socket.send(answer)  # all it takes at once; then closed
                except OSError:
                    pass  # the client has gone: nobody to tell
                self._close(connection)
            else:
                log.warning("closed the connection of %s: it did not take its answer within "
                            "%g s (Server → Request Timeout)", connection.host,
                            self.request_timeout)
                self._close(connection)

    def _watch(self, connection, events):
        self._selector.register(connection.socket, events, connection)
        connection.watched = True

    def _unwatch(self, connection):
        if connection.watched:
            self._selector.unregister(connection.socket)
            connection.watched = False

    def _close(self, connection):
        self._unwatch(connection)
        try:
            connection.socket.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the client has gone
        connection.socket.close()
        self._connections.discard(connection)

    def _refuse_busy(self, sock, host):
        if self._busy_since is None:  # once while busy, not for every refused connection
            self._busy_since = time.monotonic()
            log.warning("%d connections open (Server → Max Connections): answering 503 to new "
                        "ones, such as %s", self.max_connections, host)
        body = (f"503 Service Unavailable: {self.max_connections} connections are open "
                "(Server → Max Connections); try again\n").encode()
        answer = _http_answer("HTTP/1.0", 503, "Service Unavailable",
                              [("Retry-After", str(RETRY_AFTER_SECONDS)),
                               ("Content-Type", "text/plain; charset=utf-8"),
                               ("Connection", "close")], body)
        try:
            sock.setblocking(False)
            sock.send(answer)  # what the socket takes at once: this thread waits for no one
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the client has gone, or does not read: it is closed all the same
        finally:
            sock.close()

    # --- reading a request ------------------------------------------------------------------

    def _read(self, connection):
        try:
            data = connection.socket.recv(RECEIVE_BYTES)
        except BlockingIOError:
            return
        except OSError:
            self._close(connection)
            return
        if not data:  # the client has closed its side: no request will come whole
            self._close(connection)
            return
        if connection.refused is not None:
            connection.dropping -= len(data)
            if connection.dropping <= 0:
                self._answer(connection, connection.refused)
            return
        if connection.served and not connection.received:
            # A kept connection's next request: it has its own Request Timeout, from its first
            # byte (its first bytes at the idle deadline were answered 408, the rest to come).
            connection.deadline = self._deadline()
        connection.received += data
        self._parse_received(connection)

    def _parse_received(self, connection):
        """Serve the request once all of it has come; refuse it as soon as its head says."""
        if connection.head_end is None:
            end = _END_OF_HEAD.search(connection.received)
            if end is None:
                if len(connection.received) > MAX_HEAD_BYTES:
                    self._answer(connection, self._refusal(
                        connection, 431, "Request Header Fields Too Large",
                        f"the request line and headers exceed {MAX_HEAD_BYTES} bytes"))
                return
            refusal = self._read_head(connection, end.end())
            if refusal is not None:
                self._answer(connection, refusal)
                return
            if connection.refused is not None:
                return
            if (connection.headers.get("expect", "").lower() == "100-continue"
                    and connection.version == "HTTP/1.1"
                    and len(connection.received) < end.end() + connection.body_length):
                try:  # the client waits for this before it sends the body (curl does)
                    connection.socket.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                except OSError:
                    pass  # the client goes on after its own wait, or has gone
        if len(connection.received) >= connection.head_end + connection.body_length:
            self._request_read(connection)

    def _read_head(self, connection, end):
        """Parse the request line and headers; the refusal, or None."""
        head = bytes(connection.received[:end])
        request_line, _, header_lines = head.partition(b"\n")
        request_line = request_line.rstrip(b"\r").decode("iso-8859-1")
        connection.head_end = end
        words = request_line.split()
        if len(words) != 3:
            return self._refusal(connection, 400, "Bad Request",
                                 f"request line {shorten(request_line)} is not 'METHOD PATH "
                                 "HTTP/1.x'")
        connection.method, connection.path, version = words
        matched = _HTTP_VERSION.fullmatch(version)
        if matched is None:
            return self._refusal(connection, 400, "Bad Request",
                                 f"bad HTTP version {shorten(version)}")
        if matched.group(1) != "1":
            return self._refusal(connection, 505, "HTTP Version Not Supported",
                                 f"{shorten(version)}; this server speaks HTTP/1.0 and 1.1")
        if matched.group(2) != "0":
            connection.version = "HTTP/1.1"
        try:
            connection.headers = _parse_headers(header_lines)
        except ValueError as error:
            return self._refusal(connection, 400, "Bad Request", str(error))
        if len(connection.headers) > MAX_HEADERS:
            return self._refusal(connection, 431, "Request Header Fields Too Large",
                                 f"more than {MAX_HEADERS} headers")
        # HTTP/1.1 keeps the connection unless the client says close (RFC 9112, 9.3).
        connection.keep_alive = (connection.version == "HTTP/1.1" and "close" not in
                                 connection.headers.get("connection", "").lower())
        if "transfer-encoding" in connection.headers:
            return self._refusal(connection, 501, "Not Implemented",
                                 "Transfer-Encoding is not supported; send the body with a "
                                 "Content-Length")
        if connection.method == "GET":
            # A body, which a GET should not have, is not read: nothing after it is either.
            connection.keep_alive &= connection.headers.get("content-length", "0") == "0"
            return None
        if connection.method != "POST":
            return self._refusal(connection, 501, "Not Implemented",
                                 f"method {shorten(connection.method)}; use POST for XML-RPC "
                                 "calls, GET for the status page")
        if connection.path not in RPC_PATHS:
            connection.keep_alive = False  # its body is not read
            return self._not_found(connection, connection.path)
        length = connection.headers.get("content-length")
        if length is None or not length.strip().isdigit():
            return self._refusal(connection, 411, "Length Required",
                                 "send a Content-Length header")
        if int(length) > self.max_request_bytes:
            refusal = self._refusal(connection, 413, "Payload Too Large",
                                    f"request body of {int(length)} bytes; the limit is "
                                    f"{self.max_request_bytes} bytes ({self.limit_setting})")
            still_to_come = int(length) - (len(connection.received) - end)
            if (still_to_come <= 0 or still_to_come > MAX_DROPPED_BYTES
                    or connection.headers.get("expect", "").lower() == "100-continue"):
                return refusal  # a client that waits for 100 Continue sends no body
            connection.refused, connection.dropping = refusal, still_to_come
            del connection.received[end:]
            return None
        connection.body_length = int(length)
        return None

    def _request_read(self, connection):
        """The whole request is in: serve it."""
        self._unwatch(connection)
        connection.state = _SERVING
        connection.deadline = None
        if self.authenticator is not None:
            credentials = _credentials(connection.headers)
            if credentials is None:
                self._answer(connection, self._unauthorized(connection))
                return
            if not self.authenticator.remembers(*credentials):
                # Checking a hash takes tens of milliseconds: not in this thread.
                self._workers.submit(self._work, connection, self._serve_checked, connection,
                                     credentials)
                return
        if connection.method == "GET":
            self._workers.submit(self._work, connection, self._page, connection)
            return
        if (connection.body_length > TREE_MAX_BYTES
                or connection.headers.get("content-encoding", "identity").lower() != "identity"):
            # Reading a large body (an alert's skymap, megabytes) takes up to seconds: not in
            # this thread, which answers everyone.
            self._workers.submit(self._work, connection, self._serve_call, connection)
            return
        call, answer = self._rpc_call(connection)
        if answer is not None:  # refused, or not XML-RPC
            self._answer(connection, answer)
            return
        method, params = call
        if (method == "front_desk" and len(params) == 1 and self._orders_at_once is not None
                and self._orders_at_once.serves_at_once(params[0])):
            self._orders.append((connection, params[0]))
        else:
            self._workers.submit(self._work, connection, self._call, connection, method,
                                 params)

    def _rpc_call(self, connection):
        """``((method, params), None)``; or ``(None, answer)``, the HTTP answer to a body
        that is not an XML-RPC call."""
        body, refusal = self._decoded_body(connection)
        if refusal is not None:
            return None, refusal
        try:
            params, method = parse_call(body)
        except Exception as error:  # noqa: BLE001 - expat's and the unmarshaller's many kinds
            return None, self._xml_answer(connection, Fault(int(FaultCode.INVALID),
                                                            f"malformed XML-RPC request: "
                                                            f"{clip(str(error))}"))
        return (method, params), None

    def _decoded_body(self, connection):
        """``(body, None)``, the body decompressed if it came gzipped; or ``(None, refusal)``,
        an HTTP answer."""
        body = connection.body
        encoding = connection.headers.get("content-encoding", "identity").lower()
        if encoding == "identity":
            return body, None
        if encoding != "gzip":
            return None, self._refusal(connection, 415, "Unsupported Media Type",
                                       f"Content-Encoding {shorten(encoding)} is not supported; "
                                       "send the body as it is, or gzip")
        # A gzip body may expand far beyond Content-Length: hold it to the same limit.
        try:
            return gzip_decode(body, max_decode=self.max_request_bytes), None
        except ValueError as error:
            if "exceeded" in str(error):
                return None, self._refusal(connection, 413, "Payload Too Large",
                                           "decompressed body exceeds the limit")
            return None, self._refusal(connection, 400, "Bad Request",
                                       "Content-Encoding gzip, but the body is not gzip data")

    # --- serving ------------------------------------------------------------------------------

    def _serve_orders(self):
        """Serve the new work orders read in this turn of the loop, in one call (and one
        journal commit)."""
        orders, self._orders = self._orders, []
        try:
            answers = self._orders_at_once.front_desks([order for _, order in orders])
        except Exception as error:  # noqa: BLE001 - answered as a Fault, and logged
            log.exception("internal error in front_desk")
            answers = [self._internal_fault("front_desk", error)] * len(orders)
        for (connection, _), answer in zip(orders, answers):
            self._answer(connection, self._xml_answer(connection, answer))

    def _work(self, connection, function, *args):
        """(In a worker.) Answer *connection* with ``function(*args)``: its HTTP answer."""
        try:
            answer = function(*args)
        except Exception:  # noqa: BLE001 - logged; the client gets a 500, the others go on
            log.exception("error while serving a request from %s", connection.host)
            connection.keep_alive = False
            answer = _http_answer(connection.version, 500, "Internal Server Error",
                                  [("Content-Type", "text/plain; charset=utf-8"),
                                   ("Connection", "close")],
                                  f"500 Internal Server Error: the {self.service} daemon's log "
                                  "has the details\n".encode())
        self._finished.append((connection, answer))
        self._wake()

    def _serve_checked(self, connection, credentials):
        """(In a worker.) Serve a request once its credentials are checked."""
        if not self.authenticator.check(*credentials):
            return self._unauthorized(connection)
        if connection.method == "GET":
            return self._page(connection)
        return self._serve_call(connection)

    def _serve_call(self, connection):
        """(In a worker.) Read the XML-RPC call in the request's body and answer it."""
        call, answer = self._rpc_call(connection)
        return answer if answer is not None else self._call(connection, *call)

    def _call(self, connection, method, params):
        """(In a worker.) The answer to an XML-RPC call."""
        try:
            result = self._dispatch(method, params)
        except Fault as fault:
            result = fault
        except Exception as error:  # noqa: BLE001 - answered as a Fault, and logged
            log.exception("internal error in %s", shorten(method))
            result = self._internal_fault(method, error)
        return self._xml_answer(connection, result)

    def _dispatch(self, method, params):
        """Call *method* with *params*, as the stdlib does; a call no method here can take (an
        unknown method, the wrong number of parameters) is the client's mistake, a Fault
        INVALID that says what is served, not an internal error."""
        function = self.funcs.get(method)
        if function is None:
            raise Fault(int(FaultCode.INVALID),
                        f"no method {shorten(method)}; this daemon serves "
                        f"{', '.join(sorted(self.funcs))}")
        try:
            self._signature(method).bind(*params)
        except TypeError:
            raise Fault(int(FaultCode.INVALID),
                        f"{method} takes {self._parameters(method)}; received "
                        f"{len(params)} parameter{'' if len(params) == 1 else 's'}") from None
        return function(*params)

    def _signature(self, method):
        if method not in self._signatures:
            self._signatures[method] = inspect.signature(self.funcs[method])
        return self._signatures[method]

    def _parameters(self, method):
        names = list(self._signature(method).parameters)
        return f"({', '.join(names)})" if names else "no parameters"

    def system_multicall(self, call_list):
        """``system.multicall``: the answer to each call of *call_list*, in order, a
        ``[result]`` or a fault struct. A call that is not a struct of ``methodName`` (text)
        and ``params`` (an array) gets its own Fault INVALID; the others are made."""
        if not isinstance(call_list, list):
            raise Fault(int(FaultCode.INVALID), "system.multicall takes an array of calls; "
                                                f"received {shorten(call_list)}")
        results = []
        for number, call in enumerate(call_list, start=1):
            try:
                if not (isinstance(call, dict) and isinstance(call.get("methodName"), str)
                        and isinstance(call.get("params"), list)):
                    raise Fault(int(FaultCode.INVALID),
                                f"system.multicall: call {number} is no struct of methodName "
                                f"(text) and params (an array); received {shorten(call)}")
                results.append([self._dispatch(call["methodName"], call["params"])])
            except Fault as fault:
                results.append({"faultCode": fault.faultCode, "faultString": fault.faultString})
            except Exception as error:  # noqa: BLE001 - answered as its Fault, and logged
                log.exception("internal error in %s", shorten(call["methodName"]))
                internal = self._internal_fault(call["methodName"], error)
                results.append({"faultCode": internal.faultCode,
                                "faultString": internal.faultString})
        return results

    def _internal_fault(self, method, error):
        return Fault(int(FaultCode.INTERNAL), f"internal error in the {self.service} daemon "
                                              f"({type(error).__name__} in {shorten(method)}: "
                                              f"{clip(str(error))}); its log has the details")

    def _page(self, connection):
        """(In a worker.) The status page the request asks for, or what it links to."""
        path = connection.path.split("?", 1)[0]
        found = None
        if self.pages is not None:
            if path == "/":
                found = ("text/html; charset=utf-8", printable(self.pages.index()).encode())
            else:
                found = self.pages.asset(path)
        if found is None:
            return self._not_found(connection, path)
        content_type, body = found
        # Only this page's own resources: no scripts, no frames, nothing from elsewhere.
        return self._http(connection, 200, "OK", [("Content-Type", content_type),
                                        ("Cache-Control", "no-store"),
                                        ("Content-Security-Policy",
                                         "default-src 'none'; img-src 'self'; "
                                         "style-src 'unsafe-inline'")], body)

    # --- answering ----------------------------------------------------------------------------

    def _take_finished(self):
        try:
            while self._wake_reader.recv(RECEIVE_BYTES):
                pass
        except BlockingIOError:
            pass
        while self._finished:
            self._answer(*self._finished.popleft())

    def _wake(self):
        if self._wake_writer is None:
            return  # serve_forever has not begun: nothing to wake
        try:
            self._wake_writer.send(b"\0")
        except OSError:
            pass  # already woken (its buffer is full), or closed: the loop has ended

    def _answer(self, connection, answer):
        """Send *answer*: what the socket takes now, the rest as the client takes it."""
        self._unwatch(connection)
        connection.state = _WRITING
        try:
            sent = connection.socket.send(answer)
        except BlockingIOError:
            sent = 0
        except OSError:  # the client has gone
            self._close(connection)
            return
        if sent == len(answer):
            self._answered(connection)
            return
        connection.unsent = memoryview(answer)[sent:]
        connection.deadline = self._deadline()
        self._watch(connection, selectors.EVENT_WRITE)

    def _write(self, connection):
        try:
            sent = connection.socket.send(connection.unsent)
        except BlockingIOError:
            return
        except OSError:
            self._close(connection)
            return
        connection.unsent = connection.unsent[sent:]
        if not connection.unsent:
            self._answered(connection)

    def _answered(self, connection):
        """The whole answer has gone: close the connection, or wait for its next request."""
        if not connection.keep_alive or self._stopping:
            self._close(connection)
            return
        self._unwatch(connection)
        connection.next_request(self._deadline())
        self._watch(connection, selectors.EVENT_READ)
        if connection.received:  # sent before this answer came
            self._parse_received(connection)

    def _xml_answer(self, connection, result):
        """The HTTP answer carrying *result* (a value, or a Fault)."""
        try:
            if isinstance(result, Fault):
                text = dumps(result, allow_none=True)
            else:
                text = dumps((result,), methodresponse=True, allow_none=True)
        except Exception as error:  # noqa: BLE001 - a value XML-RPC cannot carry
            log.exception("cannot marshal the answer to %s", connection.host)
            text = dumps(self._internal_fault("front_desk", error), allow_none=True)
        body = printable(text).encode("utf-8")
        headers = [("Content-Type", "text/xml")]
        if len(body) > GZIP_ABOVE_BYTES and _accepts_gzip(connection.headers):
            body = gzip_encode(body)
            headers.append(("Content-Encoding", "gzip"))
        return self._http(connection, 200, "OK", headers, body)

    def _http(self, connection, code, title, headers, body):
        """An answer to *connection*'s request, saying so if the connection ends with it."""
        if connection.version == "HTTP/1.1" and (not connection.keep_alive or self._stopping):
            headers = [*headers, ("Connection", "close")]
        return _http_answer(connection.version, code, title, headers, body)

    def _refusal(self, connection, code, title, detail, headers=()):
        log.warning("refused a request from %s: %s %s", connection.host, code, detail)
        connection.keep_alive = False  # what follows in the connection may not be a request
        return _http_answer(connection.version, code, title,
                            [*headers, ("Content-Type", "text/plain; charset=utf-8"),
                             ("Connection", "close")], f"{code} {title}: {detail}\n".encode())

    def _unauthorized(self, connection):
        return self._refusal(connection, 401, "Unauthorized", "HTTP Basic credentials required",
                             [("WWW-Authenticate", f'Basic realm="TOROS {self.service}"')])

    def _not_found(self, connection, path):
        # Not logged: browsers ask for /favicon.ico and the like.
        return self._http(connection, 404, "Not Found", [("Content-Type", "text/plain; charset=utf-8")],
                            f"404 Not Found: nothing at {shorten(path)}\n".encode())


def _silent(connection):
    """Whether *connection*'s client has sent nothing this server has not read yet."""
    try:
        return not connection.socket.recv(1, socket.MSG_PEEK)
    except OSError:  # nothing to read now (BlockingIOError), or reset by the client
        return True


def _idle(connection):
    """Whether *connection* is kept alive after an answer, with nothing of a new request."""
    return connection.state == _READING and connection.served and not connection.received


def _http_answer(version, code, title, headers, body):
    """An HTTP answer, as bytes."""
    lines = [f"{version} {code} {title}", f"Server: TOROS-Manager/{__version__}",
             f"Date: {formatdate(usegmt=True)}",
             *(f"{name}: {value}" for name, value in headers),
             f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("iso-8859-1") + body


def _parse_headers(lines):
    """A request's header lines (bytes, up to the empty line) as a dict of lower-case name
    to value; the first of a repeated name. Raises ValueError for a line that is not a header.
    """
    headers = {}
    for line in lines.decode("iso-8859-1").splitlines():
        if not line:
            break
        name, colon, value = line.partition(":")
        # No space before the colon, and no continuation lines (RFC 9112, 5.1 and 5.2).
        if not colon or not name or name != name.strip():
            raise ValueError(f"header line {shorten(line)} is not 'Name: value'")
        name, value = name.lower(), value.strip()
        if name == "content-length" and headers.get(name, value) != value:
            raise ValueError("two different Content-Length headers")  # which body is it?
        headers.setdefault(name, value)
    return headers


def _credentials(headers):
    """The (user, password) of an HTTP Basic ``Authorization`` header, or None."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(token.strip(), validate=True).decode(
            "utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _accepts_gzip(headers):
    for coding in headers.get("accept-encoding", "").split(","):
        matched = _GZIP_ACCEPTED.match(coding)
        if matched:
            quality = matched.group(2)
            try:
                return quality is None or float(quality) > 0
            except ValueError:
                return False
    return False
