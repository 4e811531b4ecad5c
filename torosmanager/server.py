"""The threaded XML-RPC server every daemon runs.

It publishes one application method, ``front_desk(work_order)``, plus the standard
``system.listMethods``, ``system.methodHelp``, ``system.methodSignature`` and
``system.multicall``, at ``POST /`` and ``POST /RPC2``, and the daemon's status page at
``GET /``. Around the stdlib's :class:`xmlrpc.server.SimpleXMLRPCServer` it adds what a
networked observatory needs: a few requests served at once, first come, first served, by
threads kept for later connections, and more threads only while some wait for slow clients (up
to a limit of connections, 503 beyond it); a deadline for each whole request (a slow client
stalls only itself, and not for long), a limit on request size, and HTTP Basic
authentication.
"""

import base64
import binascii
import collections
import contextlib
import io
import logging
import select
import socket
import threading
import time
from xmlrpc.client import Fault, dumps, gzip_decode, loads
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from .passwords import Authenticator
from .workorders import FaultCode, clip, shorten

log = logging.getLogger(__name__)

#: Connections waiting to be accepted (listen(2) backlog); socketserver's default is 5.
LISTEN_BACKLOG = 128
#: Seconds a client refused for too many connections is asked to wait (Retry-After).
RETRY_AFTER_SECONDS = 1
#: Seconds the busy answer may take to send: it is written by the thread that accepts.
BUSY_ANSWER_TIMEOUT = 0.5
#: Answers up to this size are sent without counting as a wait for the client when the
#: socket has room: the kernel's send buffer (16 KB or more by default) takes them at once.
SEND_AT_ONCE_BYTES = 4096


class _ConnectionThreads:
    """The threads that serve connections, first come, first served.

    At most *serving* of them work at once (``Server → Concurrent Requests``): more would only
    take turns at the one processor Python gives a process, each request slower, and the last
    ones much slower, and parsing takes memory. A thread that waits for its client's bytes
    gives up its turn: another starts in its place, up to *most* threads (``Server → Max
    Connections``), so that a slow client holds up no one but itself. Back from its client, a
    thread waits for a turn again, ahead of connections not yet begun. Threads are kept for
    later connections.

    Parameters
    ----------
    serving : int
        Threads at work at once.
    most : int
        Threads in all.
    name : str
        The threads' name prefix, for the logs.
    """

    def __init__(self, serving, most, name):
        self._serving = serving
        self._most = most
        self._name = name
        self._queue = collections.deque()
        lock = threading.Lock()
        self._changed = threading.Condition(lock)  # idle threads, and shutdown(), wait on it
        self._turn_free = threading.Condition(lock)  # threads back from their clients wait on it
        self._threads = set()
        self._idle = 0
        self._waiting = 0  # for their clients' bytes
        self._returning = 0  # back from their clients, waiting for a turn
        self._started = 0
        self._closed = False

    def submit(self, function, *args):
        """Call ``function(*args)`` in a thread, in turn."""
        with self._changed:
            if self._closed:
                raise RuntimeError("the server is closed")
            self._queue.append((function, args))
            self._take_up()

    @contextlib.contextmanager
    def waiting_for_client(self):
        """The calling thread waits for its client, not for the processor, meanwhile; then
        for a turn."""
        with self._changed:
            self._waiting += 1
            self._take_up()
        try:
            yield
        finally:
            with self._changed:
                self._waiting -= 1
                self._returning += 1
                while self._working() >= self._serving:
                    self._turn_free.wait()
                self._returning -= 1

    def shutdown(self):
        """Serve what was submitted, then end the threads; return once they have ended."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            while self._threads:
                self._changed.wait()

    def _working(self):
        return len(self._threads) - self._idle - self._waiting - self._returning

    def _take_up(self):
        """(Holding the lock.) Give a free turn to a thread back from its client or, failing
        that, to queued work: an idle thread or a new one."""
        if self._working() >= self._serving:
            return
        if self._returning:
            self._turn_free.notify()
        elif not self._queue:
            return
        elif self._idle:
            self._changed.notify()
        elif len(self._threads) < self._most:
            self._started += 1
            thread = threading.Thread(target=self._run, daemon=True,
                                      name=f"{self._name}_{self._started}")
            self._threads.add(thread)
            thread.start()

    def _run(self):
        with self._changed:
            try:
                while self._queue or not self._closed:
                    # This thread counts as working: it may start if the others leave a turn.
                    if self._queue and not self._returning and self._working() <= self._serving:
                        function, args = self._queue.popleft()
                        self._changed.release()
                        try:
                            function(*args)
                        finally:
                            self._changed.acquire()
                    else:
                        self._idle += 1
                        self._take_up()  # this thread's turn to another
                        self._changed.wait()
                        self._idle -= 1
            finally:
                self._threads.discard(threading.current_thread())
                self._take_up()
                self._changed.notify_all()  # shutdown() waits for this


class _Readiness:
    """Whether a connection can be read from, or written to, at once, without waiting.

    ``poll`` where Python has it (Linux, most macOS builds), ``select`` where it has not:
    descriptors stay under select's limit of 1024 under the units' LimitNOFILE.
    """

    def __init__(self, connection):
        self.connection = connection
        self._poll = None
        if hasattr(select, "poll"):
            self._poll = select.poll()
            self._poll.register(connection, select.POLLIN | select.POLLOUT)

    def readable(self):
        """Whether the client's bytes are there to be read."""
        return self._ready(select.POLLIN, reading=True)

    def writable(self):
        """Whether the connection has room for an answer."""
        return self._ready(select.POLLOUT, reading=False)

    def _ready(self, event, reading):
        if self._poll is not None:
            return any(mask & event for _, mask in self._poll.poll(0))
        watched = [self.connection]
        readable, writable, _ = select.select(watched if reading else [],
                                              [] if reading else watched, [], 0)
        return bool(readable or writable)


class _DeadlineReader(io.RawIOBase):
    """The reading side of a connection, with one deadline for a whole request.

    A socket timeout bounds each read, so a client sending a byte every few seconds would never
    be cut off; here each read may only take the time left until :attr:`deadline`. A read
    that must wait for the client's bytes lets another thread serve meanwhile
    (:class:`_ConnectionThreads`).
    """

    def __init__(self, connection, readiness, waiting_for_client):
        super().__init__()
        self.connection = connection
        self.deadline = None
        self.expired = False
        self._readiness = readiness
        self._waiting_for_client = waiting_for_client

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.expired = True
                raise TimeoutError("the request did not arrive in time")
            self.connection.settimeout(left)
        try:
            if self._readiness.readable():
                return self.connection.recv_into(buffer)
            with self._waiting_for_client():
                return self.connection.recv_into(buffer)
        except TimeoutError:
            self.expired = self.deadline is not None
            raise


class _AnswerWriter(io.BufferedIOBase):
    """The writing side of a connection: a client slow to take its answer is waited for as
    one slow to send its request is (see :class:`_DeadlineReader`)."""

    def __init__(self, connection, readiness, waiting_for_client):
        super().__init__()
        self.connection = connection
        self._readiness = readiness
        self._waiting_for_client = waiting_for_client

    def writable(self):
        return True

    def write(self, data):
        with memoryview(data) as view:
            if view.nbytes <= SEND_AT_ONCE_BYTES and self._readiness.writable():
                self.connection.sendall(view)
            else:
                with self._waiting_for_client():
                    self.connection.sendall(view)
            return view.nbytes


class FrontDeskRequestHandler(SimpleXMLRPCRequestHandler):
    """One HTTP connection: checks size and credentials before reading the body."""

    rpc_paths = ("/", "/RPC2")

    def setup(self):
        # StreamRequestHandler applies self.timeout to the socket (it bounds writing the
        # answer); reading a request is bounded as a whole by the deadline reader.
        self.timeout = self.server.request_timeout
        super().setup()
        self.rfile.close()
        readiness = _Readiness(self.connection)
        waiting = self.server.connection_threads.waiting_for_client
        self.reader = _DeadlineReader(self.connection, readiness, waiting)
        self.rfile = io.BufferedReader(self.reader)
        self.wfile = _AnswerWriter(self.connection, readiness, waiting)

    def handle_one_request(self):
        # From now (waiting for the request on a kept-alive connection included) the request
        # must have arrived within Server → Request Timeout.
        self.reader.deadline = time.monotonic() + self.server.request_timeout
        self.reader.expired = False
        # What a 408 answer needs, should the request line itself not arrive.
        self.request_version, self.requestline, self.command = "HTTP/1.0", "", ""
        super().handle_one_request()  # a timeout ends it, and the connection
        if self.reader.expired:
            try:
                self._refuse(408, "Request Timeout", f"the request did not arrive within "
                             f"{self.server.request_timeout:g} s (Server → Request Timeout)")
            except OSError:
                pass  # the client has gone: nobody to tell

    def _request_read(self):
        """The whole request is in: no deadline for the rest (the answer has its timeout)."""
        self.reader.deadline = None
        self.connection.settimeout(self.server.request_timeout)

    def do_POST(self):
        if not self.is_rpc_path_valid():
            self.report_404()
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self._refuse(411, "Length Required", "send a Content-Length header")
            return
        if int(length) > self.server.max_request_bytes:
            self._refuse(413, "Payload Too Large",
                         f"request body of {int(length)} bytes; the limit is "
                         f"{self.server.max_request_bytes} bytes ({self.server.limit_setting})")
            return
        if not self._authorized():
            self._refuse(401, "Unauthorized", "HTTP Basic credentials required",
                         {"WWW-Authenticate": f'Basic realm="TOROS {self.server.service}"'})
            return
        body = self.rfile.read(int(length))  # a timeout here is answered 408 (above)
        self._request_read()
        # The stdlib handler reads the body itself: give it the bytes already read, then put
        # the connection's stream back for the next request on this connection.
        connection_stream, self.rfile = self.rfile, io.BytesIO(body)
        try:
            super().do_POST()
        finally:
            self.rfile = connection_stream

    def do_GET(self):
        """The daemon's status page at ``/`` (and what it links to): HTML for a browser."""
        self._request_read()
        if not self._authorized():
            self._refuse(401, "Unauthorized", "HTTP Basic credentials required",
                         {"WWW-Authenticate": f'Basic realm="TOROS {self.server.service}"'})
            return
        pages = self.server.pages
        path = self.path.split("?", 1)[0]
        found = None
        if pages is not None:
            found = ("text/html; charset=utf-8", pages.index().encode()) if path == "/" else \
                pages.asset(path)
        if found is None:
            self.report_404()
            return
        content_type, body = found
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # Only this page's own resources: no scripts, no frames, nothing from elsewhere.
        self.send_header("Content-Security-Policy", "default-src 'none'; img-src 'self'; "
                                                    "style-src 'unsafe-inline'")
        self.end_headers()
        self.wfile.write(body)

    def decode_request_content(self, data):
        encoding = self.headers.get("content-encoding", "identity").lower()
        if encoding == "identity":
            return data
        if encoding != "gzip":
            self._refuse(415, "Unsupported Media Type", f"Content-Encoding {shorten(encoding)} "
                         "is not supported; send the body as it is, or gzip")
            return None
        # A gzip body may expand far beyond Content-Length: hold it to the same limit.
        try:
            return gzip_decode(data, max_decode=self.server.max_request_bytes)
        except ValueError as error:
            if "exceeded" in str(error):
                self._refuse(413, "Payload Too Large", "decompressed body exceeds the limit")
            else:
                self._refuse(400, "Bad Request", "Content-Encoding gzip, but the body is not "
                             "gzip data")
            return None

    def _authorized(self):
        if self.server.authenticator is None:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(token.strip(), validate=True).decode(
                "utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.server.authenticator.check(user, password)

    def _refuse(self, code, title, detail, headers=None):
        body = f"{code} {title}: {detail}\n".encode()
        log.warning("refused a request from %s: %s %s", self.client_address[0], code, detail)
        self.send_response(code, title)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 (the stdlib's signature)
        log.debug("%s %s", self.client_address[0], format % args)


class FrontDeskServer(SimpleXMLRPCServer):
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
        Seconds a client may take to send its request.
    max_connections : int
        Connections open at once, a thread each at most; more are answered 503.
    concurrent_requests : int
        Requests parsed and answered at once, in the order they came; the others wait.
        A connection waiting for its client does not count (see :class:`_ConnectionThreads`).
    users : dict, optional
        User name to password or hash; when given every request needs HTTP Basic
        credentials.
    """

    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, service, host, port, *, request_limit, request_timeout,
                 max_connections, concurrent_requests, users=None):
        self.service = service
        self.max_request_bytes, self.limit_setting = request_limit
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self._connection_slots = threading.BoundedSemaphore(max_connections)
        # A few connections served at once, in turn; more only while some wait for their
        # clients. Parsing a request can also take many times its size in memory.
        self.connection_threads = _ConnectionThreads(concurrent_requests, max_connections,
                                                     f"{service}-request")
        self._busy_since = None  # when the connection limit was last reached, for the log
        # Constant-time checks of plain passwords and scrypt hashes alike.
        self.authenticator = Authenticator(users) if users else None
        self.pages = None
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), requestHandler=FrontDeskRequestHandler, logRequests=False,
                         allow_none=True, use_builtin_types=True)

    def publish(self, front_desk, pages=None):
        """Serve *front_desk* as ``front_desk``, with the ``system.*`` methods, and *pages*
        (a :class:`~torosmanager.pages.StatusPages`) at ``GET /``.

        The function's docstring is what ``system.methodHelp("front_desk")`` returns.
        """
        self.pages = pages
        self.register_function(front_desk, "front_desk")
        self.register_introspection_functions()
        self.register_multicall_functions()

    def process_request(self, request, client_address):
        """A thread for the connection, or, beyond ``Server → Max Connections``, a 503."""
        if not self._connection_slots.acquire(blocking=False):
            self._refuse_busy(request, client_address)
            return
        if self._busy_since is not None:
            log.info("connections below Server → Max Connections (%d) again",
                     self.max_connections)
            self._busy_since = None
        try:
            self.connection_threads.submit(self._serve_connection, request, client_address)
        except BaseException:
            self._connection_slots.release()
            raise

    def _serve_connection(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - logged; the other connections go on
            log.exception("error while serving a connection from %s", client_address[0])
        finally:
            self.shutdown_request(request)
            self._connection_slots.release()

    def server_close(self):
        """Close the socket, then wait for the requests in progress (each bounded by the
        request timeout): no receipt is cut off, and nothing writes to a closed journal."""
        super().server_close()
        self.connection_threads.shutdown()

    def _refuse_busy(self, request, client_address):
        if self._busy_since is None:  # once while busy, not for every refused connection
            self._busy_since = time.monotonic()
            log.warning("%d connections open (Server → Max Connections): answering 503 to new "
                        "ones, such as %s", self.max_connections, client_address[0])
        body = (f"503 Service Unavailable: {self.max_connections} connections are open "
                "(Server → Max Connections); try again\n").encode()
        head = (f"HTTP/1.0 503 Service Unavailable\r\nRetry-After: {RETRY_AFTER_SECONDS}\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        try:
            request.settimeout(BUSY_ANSWER_TIMEOUT)
            request.sendall(head + body)
        except OSError:
            pass  # the client has gone, or does not read: it is closed all the same
        finally:
            self.shutdown_request(request)

    def _marshaled_dispatch(self, data, dispatch_method=None, path=None):
        """The stdlib's, with the parser's own errors said plainly: "malformed XML-RPC request:
        ..." rather than "<class 'ValueError'>:...", unexpected errors logged, and at most
        ``Server → Concurrent Requests`` parsed and answered at once (see
        :class:`_ConnectionThreads`)."""
        try:
            params, method = loads(data, use_builtin_types=self.use_builtin_types)
        except Exception as error:  # noqa: BLE001 - expat's and the unmarshaller's many kinds
            return self._answer(Fault(int(FaultCode.INVALID), "malformed XML-RPC request: "
                                      f"{clip(str(error))}"))
        try:
            result = (dispatch_method or self._dispatch)(method, params)
            return self._answer((result,), methodresponse=True)
        except Fault as fault:
            return self._answer(fault)
        except Exception as error:  # noqa: BLE001 - answered as a Fault, and logged
            log.exception("internal error in %s", shorten(method))
            return self._answer(Fault(int(FaultCode.INTERNAL), f"internal error in the "
                                      f"{self.service} daemon ({type(error).__name__}: "
                                      f"{clip(str(error))}); its log has the details"))

    def _answer(self, response, methodresponse=None):
        return dumps(response, methodresponse=methodresponse, allow_none=self.allow_none,
                     encoding=self.encoding).encode(self.encoding, "xmlcharrefreplace")

    @property
    def port(self):
        """The port actually bound (useful when 0 asked for any free port)."""
        return self.server_address[1]
