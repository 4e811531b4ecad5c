"""The alert inputs of the alerts daemon: GCN Kafka (a fake consumer replaying real alerts, with
a broker that fails), GCN Classic's socket (a real loopback connection) and VOEvent Transport
(pygcn against a tiny broker on loopback). Every message must reach the daemon once, in order,
with its format; a failure must never stop a source; stop() must be quick."""

import logging
import socket
import struct
import sys
import threading
import time
import types
import xml.etree.ElementTree as ElementTree
import xmlrpc.client

import pytest
from alert_fixtures import FOLLOWUP_ADVOCATE, alert_file

from torosmanager.alerts.formats import read
from torosmanager.alerts.sources import make_sources
from torosmanager.alerts.sources.gcn_socket import GcnSocketSource
from torosmanager.alerts.sources.kafka import (MASK, KafkaSource, default_consumer_factory,
                                               format_for_topic)
from torosmanager.alerts.sources.vtp import VoeventTransportSource
from torosmanager.workorders import FaultCode

#: Longest wait for something a source's thread does.
PATIENCE = 5.0
#: stop() must return within this.
QUICK_STOP = 1.0
LOOPBACK = "127.0.0.1"
SECRET = "s3cr3t-never-logged"


def eventually(condition, timeout=PATIENCE):
    """Wait until condition() is true; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class Deliveries:
    """A deliver callback that remembers what it got, and may fail on chosen calls."""

    def __init__(self, fail_on=()):
        self.received = []
        self.fail_on = set(fail_on)
        self.calls = 0

    def __call__(self, format_name, payload, origin):
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError("the daemon choked on this one")
        self.received.append((format_name, bytes(payload), origin))


def notice(**fields):
    """A 160-byte GCN notice with the named fields set (indices of sock_pkt_def_doc)."""
    indices = {"pkt_type": 0, "pkt_sernum": 1, "pkt_sod": 3, "trig_obs_num": 4, "burst_tjd": 5,
               "burst_sod": 6, "burst_ra": 7, "burst_dec": 8, "burst_error": 11}
    values = [0] * 40
    values[39] = 10
    for name, value in fields.items():
        values[indices[name]] = value
    return struct.pack(">40i", *values)


SWIFT_PACKET = notice(pkt_type=61, pkt_sernum=1, pkt_sod=5074000, trig_obs_num=1123129,
                      burst_tjd=19829, burst_sod=5072576, burst_ra=2688700, burst_dec=-203153,
                      burst_error=500)
FERMI_PACKET = notice(pkt_type=111, pkt_sernum=15, pkt_sod=6694500, trig_obs_num=548848711,
                      burst_tjd=18262, burst_sod=3590631, burst_ra=1400500, burst_dec=-390499,
                      burst_error=56000)
IMALIVE_PACKET = notice(pkt_type=3, pkt_sod=6000000)
KILL_PACKET = notice(pkt_type=4)


# --- GCN Kafka -----------------------------------------------------------------------------------

class FakeMessage:
    """confluent_kafka.Message's interface: topic(), value(), error(), offset()."""

    def __init__(self, topic, value, offset, error=None):
        self._topic, self._value, self._offset, self._error = topic, value, offset, error

    def topic(self):
        return self._topic

    def value(self):
        return self._value

    def offset(self):
        return self._offset

    def error(self):
        return self._error


class FakeBroker:
    """Recorded messages, replayed one per consume() to the consumers it makes.

    A consumer's Nth consume() (counted over all consumers) in *fail_consume* raises, as
    confluent-kafka does when the broker is lost; the connection attempts in *fail_connect*
    (counted from 1) raise in the factory. The group's position survives reconnections, as a
    committed offset does.
    """

    def __init__(self, records, fail_consume=(), fail_connect=()):
        self.messages = [FakeMessage(topic, value, offset, error)
                         for offset, (topic, value, error) in enumerate(records)]
        self.position = 0
        self.consume_calls = 0
        self.idle_polls = 0   # consume() calls that found nothing more to give
        self.connections = 0
        self.fail_consume, self.fail_connect = set(fail_consume), set(fail_connect)
        self.factory_options = []
        self.closed = 0
        self.stored = []   # offsets the source marked read, in order

    def factory(self, **options):
        self.connections += 1
        self.factory_options.append(options)
        if self.connections in self.fail_connect:
            raise ConnectionError(f"authentication failed for secret {SECRET}")
        return FakeConsumer(self)

    @property
    def drained(self):
        return self.position >= len(self.messages)


class FakeConsumer:
    """confluent_kafka.Consumer's interface: subscribe, consume(num_messages, timeout), close."""

    def __init__(self, broker):
        self.broker = broker
        self.topics = None

    def subscribe(self, topics):
        self.topics = list(topics)

    def consume(self, num_messages=1, timeout=-1):
        broker = self.broker
        broker.consume_calls += 1
        if broker.consume_calls in broker.fail_consume:
            raise RuntimeError("KafkaError: broker transport failure")
        if broker.drained:
            broker.idle_polls += 1
            time.sleep(min(timeout, 0.01))
            return []
        batch = broker.messages[broker.position:broker.position + 1]
        broker.position += len(batch)
        return batch

    def store_offsets(self, message):
        self.broker.stored.append(message.offset())

    def close(self):
        self.broker.closed += 1


class RecordedWaits:
    """An injectable wait: records each delay, never sleeps, never says 'stopping'."""

    def __init__(self):
        self.delays = []

    def __call__(self, seconds):
        self.delays.append(seconds)
        return False


def fixture_bytes(name, package=None):
    return alert_file(name, *(package,) if package else ()).read_bytes()


def kafka_settings(**changes):
    settings = {"Enabled": True, "Client ID": "toros-client", "Client Secret": SECRET,
                "Domain": "test.gcn.nasa.gov", "Topics": ["igwn.gwalert"],
                "Reconnect Delay": 1.0, "Max Reconnect Delay": 4.0}
    settings.update(changes)
    return settings


@pytest.fixture
def recorded_alerts():
    """(topic, payload) of real alerts, in the order a broker would replay them."""
    return [("igwn.gwalert", fixture_bytes("S1234/files/S1234-2-initial.json",
                                           FOLLOWUP_ADVOCATE)),
            ("gcn.notices.icecube.lvk_nu_track_search",
             fixture_bytes("kafka_alert_icecube_gold.json")),
            ("gcn.notices.einstein_probe.wxt.alert",
             fixture_bytes("kafka_alert_einteinprobe.json")),
            ("gcn.classic.voevent.FERMI_GBM_FLT_POS", fixture_bytes("fermi_grb_gcn.xml")),
            ("gcn.classic.binary.SWIFT_BAT_GRB_POS_ACK", SWIFT_PACKET)]


def run_until_drained(source, broker):
    source.start()
    # Stopped once a consumer has found nothing more: not at a consume() that fails after the
    # last message, before the source has made its next consumer.
    eventually(lambda: broker.idle_polls > 0)
    started = time.monotonic()
    source.stop()
    return time.monotonic() - started


def test_kafka_hands_over_every_message_once_in_order_through_reconnections(
        recorded_alerts, caplog):
    caplog.set_level(logging.DEBUG)
    text_notice = ("gcn.classic.text.FERMI_GBM_FIN_POS", b"TITLE: GCN/FERMI NOTICE", None)
    records = [(topic, value, None) for topic, value in recorded_alerts[:2]]
    records += [text_notice, ("igwn.gwalert", None, "_TRANSPORT: broker is down")]
    records += [(topic, value, None) for topic, value in recorded_alerts[2:]]
    # consume() #2 fails, the next three connections fail, then a message arrives (back-off
    # reset), and consume() #9 fails again.
    broker = FakeBroker(records, fail_consume={2, 9}, fail_connect={2, 3, 4})
    deliveries, waits = Deliveries(), RecordedWaits()
    source = KafkaSource(kafka_settings(Topics=["igwn.gwalert", "gcn.notices.icecube.*"]),
                         deliveries, consumer_factory=broker.factory, wait=waits)

    stop_seconds = run_until_drained(source, broker)

    expected_formats = ["lvk_json", "gcn_json", "gcn_json", "voevent", "gcn_socket"]
    assert deliveries.received == [
        (format_name, value, f"kafka:{topic}")
        for format_name, (topic, value) in zip(expected_formats, recorded_alerts, strict=True)]
    assert waits.delays == [1.0, 2.0, 4.0, 4.0, 1.0]      # doubled, capped, reset by a message
    assert broker.closed == 2 + 1                           # each failed consumer, then stop's
    assert stop_seconds < QUICK_STOP
    health = source.health()
    assert (health["Connected"], health["Messages"], health["Reconnections"]) == (False, 5, 5)
    assert health["Skipped Topics"] == ["gcn.classic.text.FERMI_GBM_FIN_POS"]
    assert health["Last Message"] is not None
    skips = [record for record in caplog.records if "FERMI_GBM_FIN_POS" in record.getMessage()]
    assert len(skips) == 1                                   # logged once
    assert any("broker is down" in record.getMessage() for record in caplog.records)
    for alert_payload in deliveries.received:                # each one reads as an alert
        assert read(alert_payload[0], alert_payload[1]).event_id


def test_kafka_gives_gcn_kafka_its_credentials_and_never_logs_the_secret(caplog):
    caplog.set_level(logging.DEBUG)
    broker = FakeBroker([("igwn.gwalert", b"{}", None)], fail_connect={1})
    source = KafkaSource(kafka_settings(), Deliveries(), consumer_factory=broker.factory,
                         wait=RecordedWaits())
    run_until_drained(source, broker)
    options = broker.factory_options[0]
    assert (options["client_id"], options["client_secret"], options["domain"]) == (
        "toros-client", SECRET, "test.gcn.nasa.gov")
    assert options["config"]["group.id"].startswith("toros-manager-")
    # The same consumer group after a reconnection: Kafka resumes where the source was.
    assert broker.factory_options[1]["config"] == options["config"]
    assert any("authentication failed" in record.getMessage() for record in caplog.records)
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in (record.exc_text or "")
    assert SECRET not in repr(source.health())


def test_kafka_credentials_come_from_the_environment_when_not_configured(monkeypatch):
    monkeypatch.setenv("GCN_KAFKA_CLIENT_ID", "from-env")
    monkeypatch.setenv("GCN_KAFKA_CLIENT_SECRET", "env-secret")
    broker = FakeBroker([("igwn.gwalert", b"{}", None)])
    settings = kafka_settings()
    del settings["Client ID"], settings["Client Secret"]
    run_until_drained(KafkaSource(settings, Deliveries(), consumer_factory=broker.factory),
                      broker)
    assert (broker.factory_options[0]["client_id"],
            broker.factory_options[0]["client_secret"]) == ("from-env", "env-secret")


def test_an_exception_in_deliver_is_logged_and_the_source_goes_on(recorded_alerts, caplog):
    broker = FakeBroker([(topic, value, None) for topic, value in recorded_alerts[:3]])
    deliveries = Deliveries(fail_on={1})
    source = KafkaSource(kafka_settings(), deliveries, consumer_factory=broker.factory)
    run_until_drained(source, broker)
    assert [origin for _, _, origin in deliveries.received] == [
        "kafka:gcn.notices.icecube.lvk_nu_track_search",
        "kafka:gcn.notices.einstein_probe.wxt.alert"]
    failures = [record for record in caplog.records if "delivering" in record.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert source.health()["Delivery Errors"] == 1


def test_without_gcn_kafka_the_source_says_how_to_install_it(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "gcn_kafka", None)      # import gcn_kafka fails
    source = KafkaSource(kafka_settings(), Deliveries())
    source.start()
    eventually(lambda: source.health()["Last Error"] is not None)
    source.stop()
    assert "pip install 'torosmanager[kafka]'" in source.health()["Last Error"]
    assert source.health()["Connected"] is False
    assert any("pip install 'torosmanager[kafka]'" in record.getMessage()
               and record.levelno == logging.ERROR for record in caplog.records)
    assert not any(thread.is_alive() for thread in source._threads)


def test_kafka_without_topics_says_so_and_does_not_connect():
    broker = FakeBroker([])
    source = KafkaSource(kafka_settings(Topics=[]), Deliveries(),
                         consumer_factory=broker.factory)
    source.start()
    source.stop()
    assert source.health()["Last Error"] == "no Topics to subscribe to"
    assert broker.connections == 0


def test_the_default_factory_calls_gcn_kafka_consumer_as_documented(monkeypatch):
    made = []

    class Consumer:                    # gcn_kafka.Consumer(config, client_id, client_secret,
        def __init__(self, config=None, client_id=None, client_secret=None, domain=None):
            made.append((config, client_id, client_secret, domain))    # domain, **kwargs)

    monkeypatch.setitem(sys.modules, "gcn_kafka", types.SimpleNamespace(Consumer=Consumer))
    consumer = default_consumer_factory(client_id="id", client_secret="secret",
                                        domain="gcn.nasa.gov", config={"group.id": "g"})
    assert isinstance(consumer, Consumer)
    assert made == [({"group.id": "g"}, "id", "secret", "gcn.nasa.gov")]


@pytest.mark.parametrize("topic, format_name", [
    ("igwn.gwalert", "lvk_json"),
    ("gcn.classic.voevent.FERMI_GBM_GND_POS", "voevent"),
    ("gcn.classic.binary.SWIFT_BAT_GRB_POS_ACK", "gcn_socket"),
    ("gcn.notices.icecube.lvk_nu_track_search", "gcn_json"),
    ("gcn.notices.swift.bat.guano", "gcn_json"),
    ("gcn.notices.svom.voevent.eclairs", "voevent"),
    ("gcn.classic.text.FERMI_GBM_FIN_POS", None),
    ("gcn.heartbeat", None),
])
def test_a_topics_format_comes_from_its_name(topic, format_name):
    assert format_for_topic(topic) == format_name


# --- GCN Classic socket ------------------------------------------------------------------------

@pytest.fixture
def gcn_socket_source():
    deliveries = Deliveries()
    source = GcnSocketSource({"Enabled": True, "IP": LOOPBACK, "Port": 0}, deliveries)
    source.start()
    yield source, deliveries
    source.stop()


def connect_as_gcn(source):
    client = socket.create_connection(source.address, timeout=PATIENCE)
    return client


def receive_exactly(client, size):
    data = bytearray()
    while len(data) < size:
        chunk = client.recv(size - len(data))
        assert chunk, f"connection closed after {len(data)} of {size} bytes"
        data += chunk
    return bytes(data)


def test_gcn_socket_echoes_every_packet_and_hands_over_alerts(gcn_socket_source):
    source, deliveries = gcn_socket_source
    assert source.address[0] == LOOPBACK and source.address[1] > 0
    with connect_as_gcn(source) as gcn:
        for start, end in ((0, 7), (7, 100), (100, 160)):   # a packet in three pieces
            gcn.sendall(SWIFT_PACKET[start:end])
            time.sleep(0.05)
        gcn.sendall(IMALIVE_PACKET)
        gcn.sendall(FERMI_PACKET)
        echoes = receive_exactly(gcn, 3 * 160)
        origin = "gcn-socket:{}:{}".format(*gcn.getsockname())
        eventually(lambda: len(deliveries.received) == 2)
        health = source.health()
    assert echoes == SWIFT_PACKET + IMALIVE_PACKET + FERMI_PACKET
    assert deliveries.received == [("gcn_socket", SWIFT_PACKET, origin),
                                   ("gcn_socket", FERMI_PACKET, origin)]
    assert (health["Connected"], health["Messages"], health["Imalive Packets"]) == (True, 2, 1)
    assert health["Last Imalive"] is not None
    assert read(*deliveries.received[0][:2]).event_id == "Swift-1123129"


def test_two_packets_in_one_read_are_both_handed_over(gcn_socket_source):
    source, deliveries = gcn_socket_source
    with connect_as_gcn(source) as gcn:
        gcn.sendall(FERMI_PACKET + SWIFT_PACKET)
        assert receive_exactly(gcn, 320) == FERMI_PACKET + SWIFT_PACKET
        eventually(lambda: len(deliveries.received) == 2)
    assert [payload for _, payload, _ in deliveries.received] == [FERMI_PACKET, SWIFT_PACKET]


def test_kill_socket_closes_the_connection_without_an_echo(gcn_socket_source):
    source, deliveries = gcn_socket_source
    with connect_as_gcn(source) as gcn:
        gcn.sendall(KILL_PACKET)
        assert gcn.recv(160) == b""                      # closed, nothing echoed
    eventually(lambda: source.health()["Connected"] is False)
    with connect_as_gcn(source) as gcn:                  # GCN may connect again
        gcn.sendall(SWIFT_PACKET)
        assert receive_exactly(gcn, 160) == SWIFT_PACKET   # echoed before it is handed over
        eventually(lambda: deliveries.received)
    assert [payload for _, payload, _ in deliveries.received] == [SWIFT_PACKET]


def test_gcn_socket_stops_within_a_second_even_with_gcn_connected():
    source = GcnSocketSource({"IP": LOOPBACK, "Port": 0}, Deliveries())
    source.start()
    address = source.address
    with connect_as_gcn(source) as gcn:
        eventually(lambda: source.health()["Connected"])
        started = time.monotonic()
        source.stop()
        assert time.monotonic() - started < QUICK_STOP
        assert gcn.recv(160) == b""
    assert not any(thread.is_alive() for thread in source._threads)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=PATIENCE)


def test_a_port_in_use_is_reported_not_raised():
    with socket.create_server((LOOPBACK, 0)) as taken:
        source = GcnSocketSource({"IP": LOOPBACK, "Port": taken.getsockname()[1]},
                                 Deliveries())
        source.start()
        try:
            assert "cannot listen" in source.health()["Last Error"]
            assert source.health()["Connected"] is False
        finally:
            started = time.monotonic()
            source.stop()
            assert time.monotonic() - started < QUICK_STOP


# --- VOEvent Transport ---------------------------------------------------------------------------

def test_without_pygcn_the_source_says_how_to_install_it(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "gcn", None)            # import gcn fails
    source = VoeventTransportSource({"Host": LOOPBACK, "Port": 8099}, Deliveries())
    source.start()
    assert "pip install 'torosmanager[vtp]'" in source.health()["Last Error"]
    assert source._threads == []
    assert any("pip install 'torosmanager[vtp]'" in record.getMessage()
               for record in caplog.records)
    source.stop()


def test_vtp_hands_over_what_pygcn_receives_until_detached():
    calls, release = [], threading.Event()

    def listen(host, port, handler, log):              # pygcn's keywords
        calls.append((host, port))
        log.info("connected to %s:%d", host, port)
        handler(b"<voe:VOEvent first/>", None)
        release.wait(PATIENCE)
        handler(b"<voe:VOEvent after-stop/>", None)

    deliveries = Deliveries()
    source = VoeventTransportSource({"Host": "broker.example", "Port": 8099}, deliveries,
                                    listen=listen)
    source.start()
    eventually(lambda: deliveries.received)
    assert source.health()["Connected"] is True
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < QUICK_STOP
    release.set()
    source._threads[0].join(PATIENCE)
    assert calls == [("broker.example", 8099)]
    assert deliveries.received == [("voevent", b"<voe:VOEvent first/>",
                                    "vtp:broker.example:8099")]
    assert source.health()["Detached"] is True


class TinyVtpBroker:
    """A VOEvent Transport Protocol broker on loopback for one client: sends a VOEvent, then an
    iamalive, and keeps the client's two answers (each message: a 4-byte big-endian length,
    then the XML)."""

    IAMALIVE = (b"<?xml version='1.0' encoding='UTF-8'?><trn:Transport role=\"iamalive\" "
                b"version=\"1.0\" xmlns:trn=\"http://telescope-networks.org/schema/Transport/"
                b"v1.1\"><Origin>ivo://toros/test-broker</Origin><TimeStamp>"
                b"2026-11-10T02:00:00</TimeStamp></trn:Transport>")

    def __init__(self, voevent):
        self.voevent = voevent
        self.answers = []
        self.server = socket.create_server((LOOPBACK, 0))
        self.server.settimeout(PATIENCE)
        self.port = self.server.getsockname()[1]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        connection, _ = self.server.accept()
        with connection:
            connection.settimeout(PATIENCE)
            for message in (self.voevent, self.IAMALIVE):
                connection.sendall(struct.pack("!I", len(message)) + message)
                (length,) = struct.unpack("!I", receive_exactly(connection, 4))
                self.answers.append(receive_exactly(connection, length))
            self.done.wait(PATIENCE)

    def close(self):
        self.done.set()
        self.thread.join(PATIENCE)
        self.server.close()


def test_vtp_through_pygcn_acknowledges_and_hands_over_a_voevent():
    pytest.importorskip("gcn", reason="pygcn (the vtp extra) is not installed")
    voevent = fixture_bytes("fermi_grb_gcn.xml")
    broker = TinyVtpBroker(voevent)
    deliveries = Deliveries()
    source = VoeventTransportSource({"Host": LOOPBACK, "Port": broker.port}, deliveries)
    try:
        source.start()
        eventually(lambda: len(broker.answers) == 2)
        eventually(lambda: deliveries.received)
        eventually(lambda: source.health()["Frames"] == 2)     # the VOEvent and the iamalive
        health = source.health()
        assert health["Connected"] is True and health["Messages"] == 1
        assert health["Last Frame"] is not None
    finally:
        source.stop()
        broker.close()
    assert deliveries.received == [("voevent", voevent, f"vtp:{LOOPBACK}:{broker.port}")]
    ack, iamalive = (ElementTree.fromstring(answer) for answer in broker.answers)
    assert ack.tag.endswith("}Transport") and ack.get("role") == "ack"
    assert ack.findtext("Origin") == read("voevent", voevent).properties["ivorn"]
    assert iamalive.get("role") == "iamalive"
    assert iamalive.findtext("Origin") == "ivo://toros/test-broker"


# --- all of them ---------------------------------------------------------------------------------

def test_make_sources_makes_the_enabled_sources_only():
    alerts = {"Kafka": kafka_settings(Enabled=False),
              "GCN Socket": {"Enabled": True, "IP": LOOPBACK, "Port": 0},
              "VOEvent Transport": {"Enabled": True, "Host": LOOPBACK, "Port": 8099}}
    sources = make_sources(alerts, Deliveries())
    assert set(sources) == {"GCN Socket", "VOEvent Transport"}
    assert isinstance(sources["GCN Socket"], GcnSocketSource)
    assert isinstance(sources["VOEvent Transport"], VoeventTransportSource)
    assert set(sources["GCN Socket"].health()) >= {"Connected", "Messages", "Last Message",
                                                   "Last Error"}


def test_kafka_client_errors_in_the_background_show_in_the_health_report(caplog):
    """librdkafka reports some failures (an OAuth token refused, every broker down) through
    the error_cb it is given, not by raising: the source is then not connected, and says why."""
    broker = FakeBroker([])
    source = KafkaSource({"Enabled": True, "Topics": ["igwn.gwalert"], "Client ID": "id",
                          "Client Secret": SECRET}, Deliveries(), consumer_factory=broker.factory)
    source.start()
    try:
        eventually(lambda: source.health()["Connected"])
        config = broker.factory_options[0]["config"]
        config["error_cb"](f"OIDC token refused for client id, secret {SECRET}")
        health = source.health()
        assert not health["Connected"]
        assert health["Last Error"] == ("GCN Kafka: OIDC token refused for client id, secret "
                                        + MASK)
        assert config["logger"].name == "torosmanager.alerts.sources.kafka"
        # librdkafka says so again at each of its reconnections, and logs a line: said once.
        for attempt in range(3):
            config["error_cb"](f"all brokers down ({attempt})")
            config["logger"].log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1",
                                 f"Connect to 127.0.0.1:9092 failed ({attempt})")
        assert source.health()["Last Error"] == "GCN Kafka: all brokers down (2)"
    finally:
        source.stop()
    assert SECRET not in caplog.text
    assert caplog.text.count("kafka: GCN Kafka:") == 1
    assert "Connect to 127.0.0.1:9092 failed" not in caplog.text


def test_kafka_marks_each_message_read_once_the_daemon_has_it_in_a_stable_group(monkeypatch):
    """A restarted daemon resumes where it stopped reading: the consumer group is the same
    (the configured one, or toros-manager-<host name>), and an offset is stored only after
    the message was handed over (automatic storing is off)."""
    monkeypatch.setattr("socket.gethostname", lambda: "ctmo")
    records = [("igwn.gwalert", b"{}", None), ("gcn.heartbeat", b"beat", None),
               ("igwn.gwalert", b"{}", None)]
    broker = FakeBroker(records)
    handed = []

    def deliver(format_name, payload, origin):
        handed.append(len(broker.stored))  # how many were marked read when this one came
    source = KafkaSource({"Enabled": True, "Topics": ["igwn.gwalert"]}, deliver,
                         consumer_factory=broker.factory)
    source.start()
    try:
        eventually(lambda: len(broker.stored) == len(records))
    finally:
        source.stop()
    assert broker.stored == [0, 1, 2]   # the skipped heartbeat too, so it is not read again
    assert handed == [0, 2]             # each stored only after it was handed over
    config = broker.factory_options[0]["config"]
    assert config["group.id"] == "toros-manager-ctmo"
    assert config["enable.auto.offset.store"] is False
    named = FakeBroker([])
    other = KafkaSource({"Enabled": True, "Topics": ["igwn.gwalert"],
                         "Consumer Group": "toros-cordon-macon"}, Deliveries(),
                        consumer_factory=named.factory)
    other.start()
    try:
        eventually(lambda: named.factory_options)
    finally:
        other.stop()
    assert named.factory_options[0]["config"]["group.id"] == "toros-cordon-macon"


def test_kafka_does_not_mark_read_a_message_the_daemon_did_not_take():
    """The daemon stopped while its journal's disk was full, the alert held: its offset was
    stored all the same, and the restarted daemon never read it again."""
    records = [("igwn.gwalert", b"kept", None), ("igwn.gwalert", b"held", None)]
    broker = FakeBroker(records)

    def deliver(format_name, payload, origin):
        if payload == b"held":  # as the daemon's deliver raises when it stops meanwhile
            raise xmlrpc.client.Fault(FaultCode.UNAVAILABLE, "the journal cannot keep it")
    source = KafkaSource({"Enabled": True, "Topics": ["igwn.gwalert"]}, deliver,
                         consumer_factory=broker.factory)
    source.start()
    try:
        eventually(lambda: source.health()["Delivery Errors"] == 1)
    finally:
        source.stop()
    assert broker.stored == [0]


def test_packets_whose_echo_cannot_be_sent_are_handed_over_all_the_same(gcn_socket_source):
    """GCN sends three notices and closes without reading the echoes: the second echo found
    the connection gone (Broken pipe), and that notice and the one after it were lost."""
    source, deliveries = gcn_socket_source
    second = SWIFT_PACKET[:4] + struct.pack(">i", 1) + SWIFT_PACKET[8:]  # another serial
    gcn = connect_as_gcn(source)
    gcn.sendall(SWIFT_PACKET + FERMI_PACKET + second)
    gcn.close()
    eventually(lambda: len(deliveries.received) == 3)
    assert [payload for _, payload, _ in deliveries.received] == [SWIFT_PACKET, FERMI_PACKET,
                                                                   second]


def test_idle_connections_are_closed_and_the_newest_served_beyond_the_most(caplog):
    """Connections that send nothing (half open after a network fault, or anyone's) each took
    a thread for good: at the unit's TasksMax the listener died, silently. At most Max
    Connections are served, the oldest closed for a new one; one idle for Idle Timeout is
    closed."""
    caplog.set_level(logging.INFO, logger="torosmanager.alerts.sources.gcn_socket")
    deliveries = Deliveries()
    source = GcnSocketSource({"IP": LOOPBACK, "Port": 0, "Max Connections": 2,
                              "Idle Timeout": 1.0}, deliveries)
    source.start()
    try:
        idle = [connect_as_gcn(source) for _ in range(3)]
        assert idle[0].recv(160) == b""  # the oldest, closed for the third
        eventually(lambda: source.health()["Connections"] == 2)
        for connection in idle[1:]:      # idle for a second: closed
            assert connection.recv(160) == b""
        eventually(lambda: source.health()["Connections"] == 0)
        with connect_as_gcn(source) as gcn:  # GCN is served as ever
            gcn.sendall(SWIFT_PACKET)
            assert receive_exactly(gcn, 160) == SWIFT_PACKET
        eventually(lambda: deliveries.received)
    finally:
        source.stop()
        for connection in idle:
            connection.close()
    assert "(Alerts → GCN Socket → Max Connections: 2): a new one came" in caplog.text
    assert "no packet for 1 s (Alerts → GCN Socket → Idle Timeout)" in caplog.text
