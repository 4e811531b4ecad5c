"""The VOEvent Transport source (pygcn) against a broker that misbehaves: a malformed iamalive,
a frame announced longer than memory, a broker that accepts and closes at once or sends frames
that are no XML. The source must keep listening, with a back-off between connections, without
filling the memory or the log, its health saying what goes on.

The broker is a real one on loopback (:class:`FakeBroker`), speaking VTP's framing: a 4-byte
big-endian length, then the XML.
"""

import logging
import resource
import socket
import struct
import threading
import time
import types

import pytest
from alert_fixtures import alert_file

from torosmanager.alerts.sources.vtp import (UnsupportedClient, VoeventTransportSource,
                                             bound_frames)

pytest.importorskip("gcn", reason="pygcn (the vtp extra) is not installed")

LOOPBACK = "127.0.0.1"
#: Longest wait for something a source's thread or a daemon does.
PATIENCE = 10.0
VOEVENT = alert_file("fermi_grb_gcn.xml").read_bytes()
TRANSPORT = (b"<?xml version='1.0' encoding='UTF-8'?><trn:Transport role=\"iamalive\" "
             b"version=\"1.0\" xmlns:trn=\"http://telescope-networks.org/schema/Transport/"
             b"v1.1\">%s<TimeStamp>2026-11-10T02:00:00</TimeStamp></trn:Transport>")
IAMALIVE = TRANSPORT % b"<Origin>ivo://toros/test-broker</Origin>"
#: An iamalive without its Origin: pygcn 1.1.3 raises AttributeError on it.
IAMALIVE_WITHOUT_ORIGIN = TRANSPORT % b""
#: A frame that is no XML (pygcn logged it whole, in base64).
NOT_XML = b"\x00\x01 not xml " * 500


def frame(payload):
    return struct.pack("!I", len(payload)) + payload


def eventually(condition, what, timeout=PATIENCE):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class FakeBroker:
    """A VTP broker on loopback. Connection *i* is served by ``scripts[i]`` (the last one for
    every later connection): it sends that script's bytes, then reads the client's answers until
    the client closes (or, with ``hold=False``, closes at once after sending)."""

    def __init__(self, *scripts):
        self.scripts = scripts
        self.accepted = []          # monotonic time of each connection
        self.closed_by_client = []  # monotonic time each connection was closed by the client
        self.answers = []           # (connection index, XML) of each client's message
        self.go = threading.Event()
        self.go.set()
        self._stop = threading.Event()
        self._connections = []
        self.server = socket.create_server((LOOPBACK, 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            index = len(self.accepted)
            self.accepted.append(time.monotonic())
            self._connections.append(connection)
            thread = threading.Thread(target=self._serve, args=(connection, index), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, connection, index):
        script = self.scripts[min(index, len(self.scripts) - 1)]
        with connection:
            try:
                if script.get("wait_for_go"):
                    self.go.wait(PATIENCE)
                connection.sendall(script.get("send", b""))
                if not script.get("hold", True):
                    return
                connection.settimeout(PATIENCE)
                buffer = b""
                while not self._stop.is_set():
                    data = connection.recv(65536)
                    if not data:
                        self.closed_by_client.append(time.monotonic())
                        return
                    buffer += data
                    while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack(
                            "!I", buffer[:4])[0]:
                        length = struct.unpack("!I", buffer[:4])[0]
                        self.answers.append((index, buffer[4:4 + length]))
                        buffer = buffer[4 + length:]
            except OSError:
                pass

    def close(self):
        self._stop.set()
        self.go.set()
        for connection in self._connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(PATIENCE)
        self.server.close()


@pytest.fixture
def brokers():
    made = []

    def make(*scripts):
        made.append(FakeBroker(*scripts))
        return made[-1]

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def sources():
    made = []

    def make(broker, deliveries, **settings):
        source = VoeventTransportSource(dict({"Host": LOOPBACK, "Port": broker.port,
                                              "Reconnect Delay": 0.05}, **settings),
                                        lambda *message: deliveries.append(message))
        made.append(source)
        source.start()
        return source

    yield make
    for source in made:
        source.stop()
        for thread in source._threads:
            thread.join(PATIENCE)


def vtp_records(caplog, level=logging.DEBUG):
    return [record for record in caplog.records
            if record.name.startswith("torosmanager.alerts.sources.vtp")
            and record.levelno >= level]


def test_a_malformed_iamalive_is_logged_once_and_the_source_listens_again(brokers, sources,
                                                                            caplog):
    caplog.set_level(logging.DEBUG, logger="torosmanager.alerts.sources.vtp")
    bad = {"send": frame(IAMALIVE_WITHOUT_ORIGIN)}
    broker = brokers(bad, bad, bad, {"send": frame(VOEVENT)})
    deliveries = []
    source = sources(broker, deliveries, **{"Reconnect Delay": 0.2})
    eventually(lambda: len(broker.accepted) >= 2, "a second connection")
    health = source.health()
    assert "'NoneType' object has no attribute 'text'" in health["Last Error"], health
    assert "connecting again" in health["Last Error"], health
    assert health["Reconnecting"] is True
    eventually(lambda: deliveries, "the VOEvent of the fourth connection")
    assert deliveries == [("voevent", VOEVENT, f"vtp:{LOOPBACK}:{broker.port}")]
    eventually(lambda: broker.answers, "its ack")
    assert [index for index, answer in broker.answers] == [3]
    health = source.health()
    assert health["Reconnecting"] is False and health["Connected"] is True, health
    assert health["Failed Attempts"] == 0 and health["Reconnections"] == 3, health
    # One line for the outage (with pygcn's traceback: a bug of its), one when it works again.
    warnings = vtp_records(caplog, logging.WARNING)
    assert len(warnings) == 1, [record.getMessage() for record in warnings]
    assert "'NoneType' object has no attribute 'text'" in warnings[0].getMessage()
    assert any("again, after 3 failed attempt(s)" in record.getMessage()
               for record in vtp_records(caplog, logging.INFO))


def test_a_frame_longer_than_max_frame_bytes_closes_the_connection_unread(brokers, sources,
                                                                           caplog):
    # 2 MB announced, 10 kB allowed: the connection is closed at once (the old source waited
    # 150 s for the 2 MB, its buffer made).
    broker = brokers({"send": struct.pack("!I", 2_000_000) + b"<"}, {"send": frame(VOEVENT)})
    deliveries = []
    source = sources(broker, deliveries, **{"Max Frame Bytes": 10_000})
    eventually(lambda: deliveries, "the VOEvent of the second connection")
    eventually(lambda: broker.closed_by_client, "the first connection closed by the source")
    said = [record.getMessage() for record in vtp_records(caplog, logging.WARNING)]
    assert any("a frame of 2000000 bytes, more than VOEvent Transport → Max Frame Bytes (10000)"
               in text for text in said), said
    assert source.health()["Max Frame Bytes"] == 10_000


def test_a_broker_that_closes_at_once_is_connected_to_less_and_less_often(brokers, sources,
                                                                          caplog):
    caplog.set_level(logging.INFO)
    broker = brokers(*[{"hold": False}] * 6, {"send": frame(VOEVENT), "hold": False},
                     {"hold": False})
    deliveries = []
    source = sources(broker, deliveries, **{"Max Reconnect Delay": 3.0})
    eventually(lambda: len(broker.accepted) >= 5, "five connections")
    time.sleep(0.2)                 # the fifth closed, the source waits 0.8 s
    health = source.health()
    assert health["Connected"] is False and health["Reconnecting"] is True, health
    assert health["Failed Attempts"] >= 3
    eventually(lambda: deliveries, "the VOEvent of the seventh connection")
    eventually(lambda: len(broker.accepted) >= 8, "a connection after it")
    gaps = [later - earlier for earlier, later in zip(broker.accepted, broker.accepted[1:])]
    # 0.05 s, doubled after each failed connection (the last, 1.6 s)...
    assert gaps[5] >= 1.2 and sum(gaps[:6]) >= 2.6, gaps
    # ...and 0.05 s again after the connection that brought a VOEvent (well under 1.6 s).
    assert gaps[6] < 1.0, gaps
    # A line when the outage begins, one when it ends, none with a traceback.
    records = [record.getMessage() for record in vtp_records(caplog, logging.INFO)]
    again = [index for index, text in enumerate(records)
             if "again, after 6 failed attempt(s)" in text]
    assert len(again) == 1, records
    assert sum("connection to" in text and "ended: connection closed by peer" in text
               for text in records[:again[0]]) == 1, records
    assert not any(record.exc_info for record in vtp_records(caplog, logging.INFO))


def test_without_the_closed_socket_record_the_wait_holds_all_the_same(brokers, sources,
                                                                      monkeypatch):
    # A pygcn whose log says it otherwise: the source sees it read from a new socket.
    monkeypatch.setattr("torosmanager.alerts.sources.vtp.CLOSED_MESSAGE", "(never said)")
    broker = brokers({"hold": False})
    source = sources(broker, [], **{"Reconnect Delay": 0.25, "Max Reconnect Delay": 0.25})
    time.sleep(1.0)
    assert 2 <= len(broker.accepted) <= 24, len(broker.accepted)
    assert source.health()["Failed Attempts"] >= 2


def test_frames_that_are_no_xml_are_said_once_by_their_length(brokers, sources, caplog):
    caplog.set_level(logging.DEBUG)
    broker = brokers({"send": frame(NOT_XML)})
    source = sources(broker, [])
    eventually(lambda: source.health()["Failed Attempts"] >= 4, "four frames refused")
    health = source.health()
    assert health["Reconnecting"] is True and health["Failed Attempts"] >= 4, health
    assert f"a frame of {len(NOT_XML)} bytes that is no XML" in health["Last Error"], health
    records = vtp_records(caplog, logging.WARNING)
    assert len(records) == 1, [record.getMessage() for record in records]
    assert f"a frame of {len(NOT_XML)} bytes that is no XML" in records[0].getMessage()
    assert not records[0].exc_info
    assert len(vtp_records(caplog, logging.INFO)) <= 2     # and "connected" at first
    assert all(len(record.getMessage()) < 600 for record in caplog.records
               if record.name.startswith("torosmanager")), "a frame logged whole"


def test_stop_ends_the_connection_and_the_thread(brokers, sources):
    broker = brokers({"send": frame(IAMALIVE)})
    source = sources(broker, [])
    eventually(lambda: broker.answers, "the iamalive answered")
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 1.0
    eventually(lambda: not source._threads[0].is_alive(), "pygcn's thread to end", 2.0)
    eventually(lambda: broker.closed_by_client, "the connection closed", 2.0)
    assert len(broker.accepted) == 1


def test_a_pygcn_without_the_receive_function_it_bounds_is_refused():
    with pytest.raises(UnsupportedClient, match="Max Frame Bytes"):
        bound_frames(types.ModuleType("gcn.voeventclient"))


def test_the_alerts_daemon_survives_a_frame_of_four_gigabytes(brokers, make_site):
    # The broker announces 0xFFFFFFF0 bytes once the daemon's address space is bounded to what
    # it uses and 1 GB more (the old daemon made a 4 GB buffer: killed by the kernel under
    # MemoryMax, here a MemoryError that ended its source for good).
    broker = brokers({"send": struct.pack("!I", 0xFFFFFFF0), "wait_for_go": True},
                     {"send": frame(VOEVENT)})
    broker.go.clear()
    site = make_site({"Alerts": {"VOEvent Transport": {
        "Enabled": True, "Host": LOOPBACK, "Port": broker.port, "Reconnect Delay": 0.05}}})
    site.start("alerts")
    daemon = site.daemons["alerts"]
    with open(f"/proc/{daemon.pid}/status") as status:
        used = next(int(line.split()[1]) * 1024 for line in status
                    if line.startswith("VmSize:"))
    resource.prlimit(daemon.pid, resource.RLIMIT_AS, (used + 2**30, resource.RLIM_INFINITY))
    broker.go.set()
    eventually(lambda: broker.answers, "the VOEvent acknowledged on the second connection")
    proxy = site.proxy("alerts")

    def source_health():
        return proxy.front_desk({"WOType": "Status"})["Sources"]["VOEvent Transport"]

    eventually(lambda: source_health()["Messages"] == 1, "the VOEvent handed over")
    assert daemon.process.poll() is None
    eventually(lambda: broker.closed_by_client, "the first connection closed by the daemon")
    assert "a frame of 4294967280 bytes, more than VOEvent Transport → Max Frame Bytes " \
        "(10000000)" in site.log("alerts")
