"""Whether the GCN Kafka source says it is connected, read from the real client: librdkafka
(confluent-kafka, under gcn-kafka) against a broker on loopback that goes away and comes back.

GCN Kafka is quiet for hours between alerts: ``Connected`` must follow the brokers, not wait
for the next message."""

import logging
import time

import pytest
from kafka_broker import TinyKafkaBroker

from torosmanager.alerts.sources.kafka import KafkaSource, brokers_up

confluent_kafka = pytest.importorskip("confluent_kafka",
                                      reason="confluent-kafka (the kafka extra) is not installed")

#: librdkafka backs off up to 10 s between connection attempts (reconnect.backoff.max.ms).
PATIENCE = 30.0


def eventually(condition, timeout=PATIENCE):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_connected_follows_the_broker_without_any_message(caplog):
    caplog.set_level(logging.INFO, logger="torosmanager.alerts.sources.kafka")
    broker = TinyKafkaBroker()
    port = broker.port

    def consumer_factory(client_id, client_secret, domain, config):
        # gcn-kafka's Consumer adds GCN's OAuth and brokers to *config*: here, the loopback one
        return confluent_kafka.Consumer({**config, "bootstrap.servers": f"127.0.0.1:{port}"})

    source = KafkaSource({"Enabled": True, "Topics": ["igwn.gwalert"],
                          "Connection Check Interval": 1.0}, lambda *message: None,
                         consumer_factory=consumer_factory)
    source.start()
    try:
        eventually(lambda: source.health()["Brokers Up"] == 1)
        assert source.health()["Connected"]

        broker.close()
        eventually(lambda: not source.health()["Connected"])
        assert source.health()["Brokers Up"] == 0
        # (librdkafka says "Connect to … failed" or "1/1 brokers are down", whichever first)
        assert source.health()["Last Error"].startswith("GCN Kafka: KafkaError{code=_")

        broker = TinyKafkaBroker(port)
        eventually(lambda: source.health()["Connected"])
        assert source.health()["Messages"] == 0
        assert "kafka: a broker answers again" in caplog.text
    finally:
        source.stop()
        broker.close()
    assert not source.health()["Connected"]


def test_each_broker_is_counted_once_and_up_while_it_learns_the_cluster():
    """librdkafka lists a broker under its bootstrap address, its node ID and the logical
    GroupCoordinator: counted as three, one broker read as "Brokers Up: 3"; and a broker
    learning the cluster anew (UPDATE) read as down."""
    statistics = {
        "gcn:9092/bootstrap": {"nodeid": -1, "source": "configured", "state": "UP"},
        "b-1.gcn:9092/1": {"nodeid": 1, "source": "learned", "state": "UPDATE"},
        "b-2.gcn:9092/2": {"nodeid": 2, "source": "learned", "state": "DOWN"},
        "GroupCoordinator": {"nodeid": 1, "source": "logical", "state": "UP"}}
    assert brokers_up(statistics) == 1
    del statistics["b-1.gcn:9092/1"], statistics["b-2.gcn:9092/2"]
    assert brokers_up(statistics) == 1      # before it has learned the cluster's brokers
