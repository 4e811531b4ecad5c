"""The `toros` command when a daemon gives no answer of its own: down, too slow, another web
server at its port, or refusing the credentials sent. Each is said as what it is, with what to
check, and the orders of a list are each accounted for."""

import contextlib
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading

import yaml

from observatory import settings
from torosmanager.config import address_key
from torosmanager.launcher import DaemonProcess

TOROS = os.path.join(os.path.dirname(sys.executable), "toros")
#: Seconds `toros` waits for an answer (Server → Peer Timeout) in the test of a slow daemon.
PEER_TIMEOUT = 2
#: Seconds any `toros` run of these tests may take.
RUN_LIMIT = 60
#: The page another web server answers with, status 200.
PAGE = b"<html><body>Welcome to nginx</body></html>"
PASSWORD, OTHER_PASSWORD = "right-horse-battery", "other-staple-correct"


def toros(config_path, *arguments, stdin=None):
    return subprocess.run([TOROS, "--config", str(config_path), *arguments], input=stdin,
                          capture_output=True, text=True, timeout=RUN_LIMIT)


def dome_order(order_id):
    return {"ID": order_id, "WOType": "Dome", "Blink01": True}


def rows_by_id(stdout):
    """The receipt table's rows, by the order ID their line begins with."""
    return {line.split()[0]: line for line in stdout.splitlines()[2:]}


def test_a_list_with_an_order_for_a_daemon_that_is_down_accounts_for_every_order(make_site,
                                                                                  tmp_path):
    """One order for a daemon that was down ended `toros submit`: the receipts of the orders
    already taken were not printed, and the orders after it were not sent, without a word.
    Each order now gets its row, and each goes to its own daemon."""
    site = make_site(settings()).start("scheduler")
    observation = {"ID": "mixed-1", "WOType": "Observation", "RA": 23.1, "Dec": 13.2,
                   "Filter": "I", "Exposure Time": 30}
    park = {"ID": "mixed-2", "WOType": "Park"}  # for the telescope daemon, down
    orders = [observation, park, dict(observation, ID="mixed-3"), dict(park, ID="mixed-4")]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(orders))
    result = toros(site.config_path, "submit", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    rows = rows_by_id(result.stdout)
    assert list(rows) == ["mixed-1", "mixed-2", "mixed-3", "mixed-4"], result.stdout
    for taken in ("mixed-1", "mixed-3"):
        assert rows[taken].split()[2] in ("queued", "planned"), result.stdout
    assert re.search(r"^mixed-2 +Park +not sent +not sent: Connection refused$", rows["mixed-2"])
    # The telescope daemon is not waited for again.
    assert ("not sent: the telescope daemon brought no answer to an order before (Connection "
            "refused)") in rows["mixed-4"]
    assert result.stderr.count("the telescope daemon does not answer at") == 1
    scheduler = site.proxy("scheduler")
    for order_id in ("mixed-1", "mixed-3"):
        assert scheduler.front_desk({"WOType": "Status", "ID": order_id})["ID"] == order_id


def test_an_order_sent_to_a_daemon_too_slow_to_answer_may_have_been_taken(make_site,
                                                                          tmp_path):
    """A daemon that received the order but answered after Peer Timeout was said as one that
    "does not answer … (is it running?)": the operator took the order for lost, while the
    daemon had it. Now the row says that it may have been received, how to check, and that
    submitting it again is safe (the front desk takes an unchanged resubmission with its ID as
    the order it has: checked here)."""
    site = make_site(settings(Server={"Peer Timeout": PEER_TIMEOUT})).start("dome")
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(dome_order("slow-1")))
    os.kill(site.daemons["dome"].pid, signal.SIGSTOP)
    try:
        result = toros(site.config_path, "submit", str(path), "--to", "dome")
    finally:
        os.kill(site.daemons["dome"].pid, signal.SIGCONT)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    row = rows_by_id(result.stdout)["slow-1"]
    assert re.match(r"slow-1 +Dome +no answer +sent, ", row), row
    assert (f"sent, no answer within {PEER_TIMEOUT} s (Server → Peer Timeout): it "
            "may have been received; check with `toros status slow-1 --to dome`; submitting "
            "it again is safe") in row, result.stdout
    assert "not sent" not in row
    assert "is it running" not in result.stderr
    assert result.stderr.startswith(f"toros: the dome daemon at {site.url('dome')} was sent the "
                                    "request whole, but brought no answer: no answer within "
                                    f"{PEER_TIMEOUT} s (Server → Peer Timeout); it may have "
                                    "carried it out"), result.stderr
    shown = toros(site.config_path, "status", "slow-1", "--to", "dome")
    assert shown.returncode == 0 and "slow-1" in shown.stdout, shown.stderr
    again = toros(site.config_path, "submit", str(path), "--to", "dome")
    assert again.returncode == 0 and "already received at" in again.stdout, again.stdout


@contextlib.contextmanager
def another_web_server(port):
    """An HTTP server on 127.0.0.1:*port* answering every request with a page, status 200, as
    a proxy or another web service at a daemon's port would; stopped at the end."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *arguments):
            """Quiet: the test's output is pytest's."""

    server = http.server.HTTPServer(("127.0.0.1", port), Page)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_another_web_server_at_a_daemons_port_is_said_to_be_no_daemon(make_site, tmp_path):
    """A page of another web server (HTML, status 200) at the scheduler's port made `toros
    services`, `toros status` and `toros submit` end in a traceback (ResponseError,
    ExpatError); `toros services` printed no table."""
    site = make_site(settings()).start("dome")
    url = site.url("scheduler")
    with another_web_server(site.config[address_key("scheduler")]["Port"]):
        services = toros(site.config_path, "services")
        status = toros(site.config_path, "status")
        submitted = toros(site.config_path, "submit", "-",
                          stdin=json.dumps({"ID": "junk-1", "WOType": "Observation"}))
    for result in (services, status, submitted):
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = {line.split()[0]: line for line in services.stdout.splitlines()[2:]}
    assert "no: not a TOROS daemon's answer (not XML-RPC)" in lines["scheduler"]
    assert " yes " in lines["dome"]
    assert status.stderr.startswith(f"toros: what answers at {url} is not a TOROS daemon's "
                                    "answer (not XML-RPC: "), status.stderr
    assert "is Scheduler Address → HTTP the scheduler daemon's address?" in status.stderr
    assert "not sent: not a TOROS daemon's answer" in rows_by_id(submitted.stdout)["junk-1"]


def test_credentials_refused_are_said_as_such_naming_where_they_come_from(make_site,
                                                                          tmp_path):
    """A daemon that refused the credentials sent (HTTP 401) was said as one that "does not
    answer … (is it running? …)"."""
    site = make_site(settings(Server={"Users": {"toros": PASSWORD}}))
    daemon_config = yaml.safe_load(open(site.config_path, encoding="utf-8"))
    daemon_config["Server"]["Users"] = {"toros": OTHER_PASSWORD}
    (site.directory / "dome.yaml").write_text(yaml.safe_dump(daemon_config))
    site.daemons["dome"] = DaemonProcess("dome", str(site.directory / "dome.yaml")).launch()
    site.daemons["dome"].wait_ready()
    url = site.url("dome")
    plain = toros(site.config_path, "status", "--to", "dome")
    assert plain.returncode == 1 and "is it running" not in plain.stderr
    assert plain.stderr == (
        f"toros: the dome daemon at {url} refused the credentials sent (HTTP 401 "
        f"Unauthorized): they are 'toros' with the plain password Server → Users holds for it "
        f"in {site.config_path}; the daemon's Server → Users must hold the same\n")
    # From a credentials file: the file is named.
    credentials = tmp_path / "credentials"
    credentials.write_text(f"toros:{PASSWORD}\n")
    with_file = dict(daemon_config, Server={"Users": None, "Credentials File": str(credentials)})
    (tmp_path / "with-file.yaml").write_text(yaml.safe_dump(with_file))
    named = toros(tmp_path / "with-file.yaml", "status", "--to", "dome")
    assert named.returncode == 1
    assert (f"refused the credentials sent (HTTP 401 Unauthorized): they are the "
            f"'user:password' line of {credentials} (Server → Credentials File of "
            f"{tmp_path / 'with-file.yaml'})") in named.stderr
    for result in (plain, named):
        assert PASSWORD not in result.stderr and OTHER_PASSWORD not in result.stderr
    services = toros(site.config_path, "services")
    line = next(line for line in services.stdout.splitlines() if line.startswith("dome"))
    assert "no: the credentials sent were refused (HTTP 401 Unauthorized)" in line


def test_a_json_file_that_begins_with_a_byte_order_mark_is_read(make_site, tmp_path):
    """A JSON order saved by Windows' Notepad (UTF-8 with a byte order mark) was refused as
    "not valid JSON: Unexpected UTF-8 BOM", while the same bytes named .yaml were taken."""
    site = make_site(settings()).start("dome")
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(dome_order("bom-1")).encode())
    result = toros(site.config_path, "submit", str(path), "--to", "dome")
    assert result.returncode == 0, result.stderr
    piped = toros(site.config_path, "submit", "-", "--to", "dome",
                  stdin="\ufeff" + json.dumps(dome_order("bom-2")))
    assert piped.returncode == 0, piped.stderr
    for order_id in ("bom-1", "bom-2"):
        assert site.proxy("dome").front_desk({"WOType": "Status", "ID": order_id})


def test_an_order_read_whole_by_a_daemon_that_then_stopped_may_have_been_taken(make_site,
                                                                              tmp_path):
    """The daemon read the whole order, then stopped before it answered (its listening socket
    closed, the connection dropped). Python's XML-RPC client tries once more on a dropped
    connection; that try, refused, hid the first, and the row said "not sent" of an order the
    daemon may have journaled."""
    import socket

    site = make_site(settings())
    port = site.config[address_key("dome")]["Port"]
    listener = socket.create_server(("127.0.0.1", port))
    received = []

    def read_then_stop():
        connection, _ = listener.accept()
        with connection:
            data = b""
            while b"</methodCall>" not in data:
                data += connection.recv(65536)
            received.append(data)
            listener.close()        # stopped: the client's second try is refused
        # (the connection closes here, no answer sent)

    thread = threading.Thread(target=read_then_stop)
    thread.start()
    path = tmp_path / "dropped.json"
    path.write_text(json.dumps(dome_order("dropped-1")))
    result = toros(site.config_path, "submit", str(path), "--to", "dome")
    thread.join()
    assert received and b"dropped-1" in received[0]
    row = rows_by_id(result.stdout)["dropped-1"]
    assert "not sent" not in row and "may have been received" in row, result.stdout
    assert result.returncode == 1 and "Traceback" not in result.stderr
