"""A GraceDB of the test's own: an HTTP server on 127.0.0.1 serving an LVK skymap file as
GraceDB serves the file a VOEvent links to, promptly or as badly as a test needs.

Examples
--------
>>> with gracedb(data) as server:                # doctest: +SKIP
...     server.answering.clear()                 # GraceDB slow: every answer held
...     alert = lvk_voevent(..., server.url("cwb.multiorder"), ...)
"""

import contextlib
import http.server
import threading
import time

from observatory import PATIENCE

#: Seconds between the bytes of a map sent ``"trickling"``: well within any socket timeout a
#: test sets, so that only a limit on the whole download ends it.
TRICKLE_INTERVAL = 0.05


class GraceDB:
    """Serves *data* (a skymap file's bytes) at :meth:`url` of any name; the name says how:
    ``"trickling"`` (a byte every :data:`TRICKLE_INTERVAL`, cut short after PATIENCE),
    ``"not-there-yet"`` (404 the first two times, then the map), ``"forbidden"`` (403), any
    other name the map at once.

    Attributes
    ----------
    asked : list of str
        The paths asked for, in order.
    answering : threading.Event
        Set; cleared, every answer is held until it is set again (or for PATIENCE).
    """

    def __init__(self, data):
        self.asked, self.answering = [], threading.Event()
        self.answering.set()
        closed = self._closed = threading.Event()
        asked, answering = self.asked, self.answering

        class Files(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                asked.append(self.path)
                answering.wait(timeout=PATIENCE)
                if self.path == "/forbidden.fits" or (self.path == "/not-there-yet.fits"
                                                      and asked.count(self.path) <= 2):
                    self.send_error(403 if self.path == "/forbidden.fits" else 404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    if self.path == "/trickling.fits":
                        given_up = time.monotonic() + PATIENCE  # then the map is cut short
                        for byte in data:
                            if closed.wait(TRICKLE_INTERVAL) or time.monotonic() > given_up:
                                return
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                    self.wfile.write(data)
                except ConnectionError:
                    pass  # the client stopped waiting

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name):
        """Where the map is served as *name* says."""
        return f"http://127.0.0.1:{self._server.server_port}/{name}.fits"

    def close(self):
        """Release every held answer and stop the server."""
        self._closed.set()
        self.answering.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=PATIENCE)


@contextlib.contextmanager
def gracedb(data):
    """A :class:`GraceDB` serving *data*, closed at the end."""
    server = GraceDB(data)
    try:
        yield server
    finally:
        server.close()
