"""A skymap an alert only links to (an LVK VOEvent's, on GraceDB) is fetched within
``Alerts → Skymap Download Timeout`` in all, tried again while a failure may pass, and not
waited for once the daemon stops.

An HTTP server on 127.0.0.1, started by each test, serves the map of LVK alert S2498
(ligo-followup-advocate 2.2.0) as GraceDB would, or slowly.
"""

import base64
import json
import logging
import math
import ssl
import threading
import time
from datetime import datetime, timezone

import pytest

from alert_fixtures import FOLLOWUP_ADVOCATE, alert_file
from helpers_gracedb import TRICKLE_INTERVAL, gracedb
from observatory import PATIENCE, wait_until
from torosmanager.alerts.event import Alert
from torosmanager.alerts.report import REPORT_DOWNLOAD_TIMEOUT, draw_map, report_skymap
from torosmanager.alerts.skymap import Skymap
from torosmanager.alerts.targets import (RETRY_FIRST_WAIT, Stopping, TargetError,
                                        localisation)
from torosmanager.config import default_config
from torosmanager.launcher import free_port

#: A camera field (degrees): a skymap is needed whatever it is.
FIELD_OF_VIEW = 1.0
@pytest.fixture(scope="module")
def skymap_bytes():
    alert = json.loads(alert_file("S2469/files/S2469-1-initial.json", FOLLOWUP_ADVOCATE)
                       .read_text())
    return base64.b64decode(alert["event"]["skymap"])


@pytest.fixture
def server(skymap_bytes):
    with gracedb(skymap_bytes) as serving:
        yield serving


def linking(url):
    """An LVK alert that links its map at *url*, as a VOEvent does."""
    return Alert("S2498", "gw", "INITIAL", 1, datetime(2023, 4, 30, 18, 55, tzinfo=timezone.utc),
                 "cwb", test=True, skymap_url=url)


def test_a_linked_skymap_is_the_map_at_its_url(server, skymap_bytes):
    skymap = localisation(linking(server.url("at-once")), PATIENCE, FIELD_OF_VIEW)
    assert skymap.digest == Skymap.read(skymap_bytes).digest
    assert server.asked == ["/at-once.fits"]


def test_a_server_sending_a_byte_now_and_then_is_given_the_timeout_in_all(server):
    """Each byte comes well within the socket's timeout: only the limit on the whole download
    ends it, and says which setting that is."""
    timeout = 20 * TRICKLE_INTERVAL
    with pytest.raises(TargetError, match=rf"the skymap at {server.url('trickling')} was not "
                       rf"fetched within {timeout:g} s \(Alerts → Skymap Download Timeout\)"):
        localisation(linking(server.url("trickling")), timeout, FIELD_OF_VIEW)


def test_a_map_being_fetched_is_not_waited_for_once_the_daemon_stops(server):
    stopping = threading.Event()
    outcome = []
    server.answering.clear()  # for PATIENCE, or until the test ends

    def fetch():
        try:
            outcome.append(localisation(linking(server.url("held")), PATIENCE, FIELD_OF_VIEW,
                                        stopping))
        except Stopping as stopped:
            outcome.append(stopped)

    worker = threading.Thread(target=fetch)
    worker.start()
    wait_until(lambda: server.asked, "the map to be asked for")
    stopping.set()
    worker.join(timeout=PATIENCE / 2)  # the server holds the map longer
    assert not worker.is_alive()
    (stopped,) = outcome
    assert isinstance(stopped, Stopping)
    assert str(stopped) == f"stopping: the skymap at {server.url('held')} was not waited for"


def test_a_map_not_there_yet_is_asked_for_again_until_it_is(server, skymap_bytes, caplog):
    """GraceDB may announce a file a moment before it serves it: 404 is tried again, after
    RETRY_FIRST_WAIT seconds, then twice as long."""
    with caplog.at_level(logging.INFO, logger="torosmanager.alerts.targets"):
        skymap = localisation(linking(server.url("not-there-yet")), PATIENCE, FIELD_OF_VIEW)
    assert skymap.digest == Skymap.read(skymap_bytes).digest
    assert server.asked == ["/not-there-yet.fits"] * 3
    assert caplog.messages == [
        f"the skymap at {server.url('not-there-yet')} cannot be reached yet (HTTP Error 404: Not "
        f"Found): trying again in {wait:g} s" for wait in (RETRY_FIRST_WAIT,
                                                          2 * RETRY_FIRST_WAIT)]


def test_a_refusal_is_not_asked_again(server):
    with pytest.raises(TargetError, match=rf"^the skymap at {server.url('forbidden')} cannot be "
                       r"reached: HTTP Error 403: Forbidden$"):
        localisation(linking(server.url("forbidden")), PATIENCE, FIELD_OF_VIEW)
    assert server.asked == ["/forbidden.fits"]


def test_a_server_that_cannot_be_reached_is_tried_while_the_timeout_lasts():
    url = f"http://127.0.0.1:{free_port()}/cwb.fits"  # nothing listens
    timeout = 2.5 * RETRY_FIRST_WAIT  # a try at once, one after the first wait: no time left
    with pytest.raises(TargetError, match=rf"^the skymap at {url} cannot be reached: "
                       rf"\[Errno \d+\] Connection refused \(2 tries in 1\.\d s; Alerts → "
                       rf"Skymap Download Timeout: {timeout:g} s\)$"):
        localisation(linking(url), timeout, FIELD_OF_VIEW)


def test_a_stop_ends_the_wait_between_tries():
    stopping = threading.Event()
    url = f"http://127.0.0.1:{free_port()}/cwb.fits"
    stopper = threading.Timer(RETRY_FIRST_WAIT / 2, stopping.set)  # in the first wait
    stopper.start()
    try:
        with pytest.raises(Stopping):
            localisation(linking(url), PATIENCE, FIELD_OF_VIEW, stopping)
    finally:
        stopper.cancel()


def test_an_alert_with_an_error_region_tries_its_map_once_then_uses_the_region(server):
    """A neutrino or a GRB: its error region is there to fall back on, with no waiting."""
    alert = Alert("IceCube-230416A", "neutrino", "INITIAL", 1,
                  datetime(2023, 4, 16, 8, 0, tzinfo=timezone.utc), "IceCube", ra=120.0,
                  dec=-30.0, error_radius=3.0, skymap_url=server.url("not-there-yet"))
    skymap = localisation(alert, PATIENCE, FIELD_OF_VIEW)
    assert server.asked == ["/not-there-yet.fits"]
    assert skymap.credible_area(0.9) == pytest.approx(math.pi * 3.0 ** 2, rel=0.05)


def test_only_http_and_https_urls_are_fetched():
    with pytest.raises(TargetError, match=r"the skymap URL 'file:///etc/passwd' is not "
                       r"http\(s\)"):
        localisation(linking("file:///etc/passwd"), PATIENCE, FIELD_OF_VIEW)


def test_a_report_waits_for_a_linked_map_a_few_seconds_at_most(server, caplog):
    """A person, or ``toros alerts``, waits for a report: not the whole time an alert's
    planning gives its map (30 s by default)."""
    settings = default_config()["Alerts"]
    assert settings["Skymap Download Timeout"] > REPORT_DOWNLOAD_TIMEOUT
    started = time.monotonic()
    assert report_skymap(linking(server.url("trickling")), settings) is None
    assert time.monotonic() - started < settings["Skymap Download Timeout"]
    assert (f"no map for the report: the skymap at {server.url('trickling')} was not fetched "
            f"within {REPORT_DOWNLOAD_TIMEOUT:g} s (a report's limit)") in caplog.text


def test_a_report_tries_a_linked_map_once(server):
    """A person waits for the page: the report and its picture go without the map rather than
    after the tries an alert's planning makes."""
    alert = linking(server.url("not-there-yet"))
    assert report_skymap(alert, default_config()["Alerts"]) is None
    assert draw_map(alert, [], None).startswith(b"\x89PNG\r\n\x1a\n")
    assert server.asked == ["/not-there-yet.fits"]


def test_without_system_certificates_https_is_checked_against_certifis(monkeypatch, tmp_path):
    """python.org's Python on macOS finds no certificates until its "Install Certificates"
    step: every HTTPS skymap download failed there with CERTIFICATE_VERIFY_FAILED."""
    from torosmanager.alerts.targets import tls_context

    assert tls_context() is None  # this system's own: urllib's default context
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-file.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))  # empty
    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 100  # Mozilla's, as certifi ships them
