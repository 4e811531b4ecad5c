"""A skymap an alert only links to (an LVK VOEvent's, on GraceDB) is fetched within
``Alerts → Skymap Download Timeout`` in all, and not waited for once the daemon stops.

An HTTP server on 127.0.0.1, started by each test, serves the map of LVK alert S2498
(ligo-followup-advocate 2.2.0) as GraceDB would, or slowly.
"""

import base64
import http.server
import json
import threading
import time
from datetime import datetime, timezone

import pytest

from alert_fixtures import FOLLOWUP_ADVOCATE, alert_file
from observatory import PATIENCE, wait_until
from torosmanager.alerts.event import Alert
from torosmanager.alerts.skymap import Skymap
from torosmanager.alerts.targets import Stopping, TargetError, localisation
from torosmanager.launcher import free_port

#: A camera field (degrees): a skymap is needed whatever it is.
FIELD_OF_VIEW = 1.0
#: Seconds between the bytes of a server that trickles them: well within any socket timeout
#: below, so only a limit on the whole download ends it.
TRICKLE_INTERVAL = 0.05


@pytest.fixture(scope="module")
def skymap_bytes():
    alert = json.loads(alert_file("S2469/files/S2469-1-initial.json", FOLLOWUP_ADVOCATE)
                       .read_text())
    return base64.b64decode(alert["event"]["skymap"])


@pytest.fixture
def gracedb(skymap_bytes):
    """Serve the map: ``serve(how)`` gives its URL, *how* being ``"at once"``,
    ``"trickling"`` (a byte every :data:`TRICKLE_INTERVAL`) or ``"held"`` (nothing until the
    test ends); the requests come to ``asked``."""
    asked, ended = [], threading.Event()

    class Files(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(skymap_bytes)))
            self.end_headers()
            try:
                if self.path == "/held.fits":
                    ended.wait(PATIENCE)
                elif self.path == "/trickling.fits":
                    given_up = time.monotonic() + PATIENCE  # then the map is cut short
                    for byte in skymap_bytes:
                        if ended.wait(TRICKLE_INTERVAL) or time.monotonic() > given_up:
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                self.wfile.write(skymap_bytes)
            except ConnectionError:
                pass  # the client stopped waiting

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield lambda how: (f"http://127.0.0.1:{server.server_port}/"
                           f"{how.replace(' ', '-')}.fits"), asked
    finally:
        ended.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=PATIENCE)


def linking(url):
    """An LVK alert that links its map at *url*, as a VOEvent does."""
    return Alert("S2498", "gw", "INITIAL", 1, datetime(2023, 4, 30, 18, 55, tzinfo=timezone.utc),
                 "cwb", test=True, skymap_url=url)


def test_a_linked_skymap_is_the_map_at_its_url(gracedb, skymap_bytes):
    serve, asked = gracedb
    skymap = localisation(linking(serve("at once")), PATIENCE, FIELD_OF_VIEW)
    assert skymap.digest == Skymap.read(skymap_bytes).digest
    assert asked == ["/at-once.fits"]


def test_a_server_sending_a_byte_now_and_then_is_given_the_timeout_in_all(gracedb):
    """Each byte comes well within the socket's timeout: only the limit on the whole download
    ends it, and says which setting that is."""
    serve, _ = gracedb
    timeout = 20 * TRICKLE_INTERVAL
    with pytest.raises(TargetError, match=rf"the skymap at {serve('trickling')} was not "
                       rf"fetched within {timeout:g} s \(Alerts → Skymap Download Timeout\)"):
        localisation(linking(serve("trickling")), timeout, FIELD_OF_VIEW)


def test_a_map_being_fetched_is_not_waited_for_once_the_daemon_stops(gracedb):
    serve, asked = gracedb
    stopping = threading.Event()
    outcome = []

    def fetch():
        try:
            outcome.append(localisation(linking(serve("held")), PATIENCE, FIELD_OF_VIEW,
                                        stopping))
        except Stopping as stopped:
            outcome.append(stopped)

    worker = threading.Thread(target=fetch)
    worker.start()
    wait_until(lambda: asked, "the map to be asked for")
    stopping.set()
    worker.join(timeout=PATIENCE / 2)  # the server holds the map for PATIENCE
    assert not worker.is_alive()
    (stopped,) = outcome
    assert isinstance(stopped, Stopping)
    assert str(stopped) == f"stopping: the skymap at {serve('held')} was not waited for"


def test_a_server_that_cannot_be_reached_is_named_with_the_reason():
    url = f"http://127.0.0.1:{free_port()}/cwb.fits"  # nothing listens
    with pytest.raises(TargetError, match=rf"the skymap at {url} cannot be reached: "
                       r"\[Errno \d+\] Connection refused"):
        localisation(linking(url), PATIENCE, FIELD_OF_VIEW)


def test_only_http_and_https_urls_are_fetched():
    with pytest.raises(TargetError, match=r"the skymap URL 'file:///etc/passwd' is not "
                       r"http\(s\)"):
        localisation(linking("file:///etc/passwd"), PATIENCE, FIELD_OF_VIEW)
