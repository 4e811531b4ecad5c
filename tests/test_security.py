"""Secure by default: loopback, credentials, size limits, and no client stalls the others."""

import base64
import http.client
import socket
import subprocess
import time
import xmlrpc.client

import pytest

from observatory import ended, settings, wait_until
from test_front_desk import observation
from torosmanager.client import status_of
from torosmanager.launcher import daemon_command

USERS = {"toros": "s3cret-pass", "observer": "other"}


def post(site, service, body, headers=None):
    connection = http.client.HTTPConnection(
        "127.0.0.1", site.config[f"{service.capitalize()} Address"]["Port"], timeout=30)
    connection.request("POST", "/", body, {"Content-Type": "text/xml", **(headers or {})})
    response = connection.getresponse()
    return response.status, response.read(), response


def status_body():
    return xmlrpc.client.dumps(({"WOType": "Status"},), "front_desk")


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class TestCredentials:
    @pytest.fixture
    def guarded(self, make_site):
        return make_site(settings(Server={"Users": USERS}, Scheduler={"Manage Dome": False})
                         ).start("scheduler", "telescope")

    def test_without_credentials_the_answer_is_401(self, guarded):
        status, body, response = post(guarded, "telescope", status_body())
        assert status == 401
        assert response.getheader("WWW-Authenticate") == 'Basic realm="TOROS telescope"'
        assert b"credentials required" in body

    @pytest.mark.parametrize("user, password", [("toros", "wrong"), ("nobody", "s3cret-pass"),
                                                ("toros", "")])
    def test_wrong_credentials_are_401(self, guarded, user, password):
        assert post(guarded, "telescope", status_body(), basic(user, password))[0] == 401

    def test_right_credentials_work_and_daemons_use_them_between_themselves(self, guarded):
        assert post(guarded, "telescope", status_body(), basic("observer", "other"))[0] == 200

        def signed_in(service):
            return xmlrpc.client.ServerProxy(
                guarded.url(service).replace("http://", "http://toros:s3cret-pass@"),
                allow_none=True)

        guarded.start("dome")
        dome = signed_in("dome")
        # The scheduler's heartbeat reaches the dome with the credentials: it may open.
        wait_until(lambda: dome.front_desk({"WOType": "Status"})["Devices"]["Safety"][
            "May Open"], "the scheduler's heartbeat to reach the dome")
        dome.front_desk({"ID": "open", "WOType": "Dome", "Shutter": "Open"})
        ended(dome, "open", "done")
        signed_in("scheduler").front_desk(observation("with-auth"))
        # The scheduler saw the dome open and handed the order over with the credentials.
        wait_until(lambda: status_of(signed_in("telescope"), "with-auth"),
                   "the order to reach the telescope")


def test_a_non_loopback_address_without_credentials_does_not_start(tmp_path):
    config = tmp_path / "toros.conf.yaml"
    config.write_text("Telescope Address:\n  IP: 0.0.0.0\n")
    result = subprocess.run([*daemon_command("telescope"), "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert "not a loopback address, so the daemon needs credentials" in result.stderr


class TestRequestLimits:
    @pytest.fixture
    def small(self, make_site):
        return make_site({"Server": {"Max Request Bytes": 2000, "Request Timeout": 1.0}}).start(
            "dome")

    def test_a_body_over_the_limit_is_refused_with_413(self, small):
        big = xmlrpc.client.dumps(({"WOType": "Dome", "Park": True, "User": "x" * 5000},),
                                  "front_desk")
        status, body, _ = post(small, "dome", big)
        assert status == 413 and b"the limit is 2000 bytes" in body
        assert post(small, "dome", status_body())[0] == 200

    def test_a_python_client_sending_a_large_body_gets_the_413_not_a_broken_pipe(self, small):
        # xmlrpc.client sends the whole body before it reads: the server reads it to its end
        # (dropping it), then answers.
        dome = xmlrpc.client.ServerProxy(small.url("dome"), allow_none=True)
        with pytest.raises(xmlrpc.client.ProtocolError) as refused:
            dome.front_desk({"WOType": "Dome", "Park": True, "User": "x" * 30_000_000})
        assert refused.value.errcode == 413 and refused.value.errmsg == "Payload Too Large"
        assert dome.front_desk({"WOType": "Status"})["Service"] == "dome"

    def test_a_kept_connections_next_request_has_its_own_time_to_arrive(self, small):
        # Sent at the edge of the idle connection's deadline (Request Timeout, 1 s here) in two
        # parts, the second after it: served, not answered 408 half-read.
        port = small.config["Dome Address"]["Port"]
        body = status_body().encode()
        request = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(request)
            first = raw.recv(65536)
            assert first.startswith(b"HTTP/1.1 200")
            time.sleep(0.8)
            raw.sendall(request[:40])
            time.sleep(0.5)
            raw.sendall(request[40:])
            assert raw.recv(65536).startswith(b"HTTP/1.1 200")

    def test_a_request_without_a_length_is_refused(self, small):
        port = small.config["Dome Address"]["Port"]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 411")  # answered in the request's HTTP

    def test_malformed_xml_gets_a_fault_and_the_daemon_carries_on(self, small):
        status, body, _ = post(small, "dome", "<methodCall><oops>")
        assert status == 200 and b"<fault>" in body
        assert post(small, "dome", status_body())[0] == 200

    def test_a_stalled_client_does_not_stall_the_others_and_is_cut_off(self, small):
        port = small.config["Dome Address"]["Port"]
        stalled = socket.create_connection(("127.0.0.1", port), timeout=10)
        stalled.sendall(b"POST / HTTP/1.1\r\nContent-Length: 500\r\n\r\n<methodCall>")
        try:
            # Others are served while it holds its connection open...
            for _ in range(5):
                assert post(small, "dome", status_body())[0] == 200
            # ...and the server drops it after Server → Request Timeout (1 s here).
            stalled.settimeout(10)  # socket.timeout here would mean it was never cut off
            answer = stalled.recv(1000)
            assert answer.startswith(b"HTTP/1.1 408") and b"Request Timeout" in answer
        finally:
            stalled.close()
