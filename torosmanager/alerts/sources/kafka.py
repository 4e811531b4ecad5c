"""GCN Kafka as an alert source: every message of the subscribed topics, handed to the daemon.

Why: GCN Kafka is where GCN publishes everything today (the LVK's ``igwn.gwalert``, GCN's JSON
notices, and every GCN Classic notice as VOEvent, binary and text), over one authenticated
connection the site opens itself (no port to open in a firewall).

The client is NASA's ``gcn-kafka`` (``gcn_kafka.Consumer``, a thin wrapper of confluent-kafka
that sets up GCN's OpenID Connect authentication and brokers from ``domain``), an optional extra
(``torosmanager[kafka]``) that ``sudo make install`` includes. It is imported only when the source connects; missing, the
source says so in its health and log and does nothing else.

A topic's format comes from its name (:func:`format_for_topic`): ``igwn.gwalert*`` LVK JSON,
``gcn.classic.voevent.*`` VOEvent, ``gcn.classic.binary.*`` GCN socket notices,
``gcn.notices.*`` GCN JSON (but ``gcn.notices.*.voevent.*``, as SVOM's, VOEvent). A message of any
other topic (``gcn.classic.text.*``, ``gcn.heartbeat``, ...) is skipped, logged once per topic.

``Connected`` in the health report is what librdkafka says of the brokers: true while one is
up (connected and, with GCN, authenticated), read from its statistics every ``Connection Check
Interval`` seconds; an error it reports in the background (a broker lost, a token refused) makes
it false until the next reading says a broker is up again, or a message comes. GCN Kafka is
quiet for hours between alerts: a flag that waited for a message would stay false all that time.

When the consumer fails (broker lost, authentication refused), it is closed and the source
waits, then connects again: ``Reconnect Delay`` seconds at first, doubled after each failure up
to ``Max Reconnect Delay``, back to the first delay once a broker is up. The wait ends at once
on :meth:`KafkaSource.stop`, as does the consumer's poll (:data:`POLL_SECONDS`). The consumer
group (``Consumer Group``, by default ``toros-manager-<host name>``) is the same across
reconnections and restarts, and a message's offset is stored only once the daemon has it
(journaled by its front desk, or refused): a daemon stopped or restarted during an event resumes
where it stopped reading, and no alert sent meanwhile is missed. A message may come twice after a
crash; the daemon recognises the duplicate. A new group starts from the newest messages.

The client secret is never logged: it is masked in every error message the source keeps or logs.
"""

import json
import logging
import os
import socket

from torosmanager.alerts.sources import Backoff, MissingExtraError, Source
from torosmanager.logs import Outage

logger = logging.getLogger(__name__)

#: Environment variables read when the settings leave the credentials out.
CLIENT_ID_VARIABLE = "GCN_KAFKA_CLIENT_ID"
CLIENT_SECRET_VARIABLE = "GCN_KAFKA_CLIENT_SECRET"


def credentials(settings):
    """(client id, client secret) of the ``Alerts → Kafka`` *settings*, else the
    environment's; ``None`` for one given by neither."""
    client_id = settings.get("Client ID") or os.environ.get(CLIENT_ID_VARIABLE)
    secret = settings.get("Client Secret") or os.environ.get(CLIENT_SECRET_VARIABLE)
    return client_id, secret
#: GCN's production domain (gcn-kafka's default).
DEFAULT_DOMAIN = "gcn.nasa.gov"
#: Seconds one poll of the broker may wait: how long :meth:`KafkaSource.stop` may take to notice.
POLL_SECONDS = 0.5
#: Most messages taken from the client per poll.
BATCH_MESSAGES = 100
#: ``Connection Check Interval`` when the settings leave it out (the configuration's default).
DEFAULT_CHECK_SECONDS = 15.0
#: librdkafka's states of a broker it is connected to (and authenticated with): UPDATE is UP
#: while it learns the cluster's brokers anew.
BROKER_UP = ("UP", "UPDATE")
#: The consumer group's name starts with this; a random part makes it unique per source.
GROUP_PREFIX = "toros-manager"
#: What replaces the client secret in any text the source logs or keeps.
MASK = "********"
#: Topic name prefixes → format (the first that matches wins).
TOPIC_FORMATS = (("igwn.gwalert", "lvk_json"),
                 ("gcn.classic.voevent.", "voevent"),
                 ("gcn.classic.binary.", "gcn_socket"),
                 ("gcn.notices.", "gcn_json"))
#: Under ``gcn.notices.``, a topic with this part carries VOEvents (SVOM's, for instance).
VOEVENT_PART = ".voevent."


def format_for_topic(topic):
    """The format of *topic*'s messages, or None for a topic whose messages are not alerts read
    here.

    Examples
    --------
    >>> format_for_topic("gcn.classic.binary.SWIFT_BAT_GRB_POS_ACK")
    'gcn_socket'
    >>> format_for_topic("gcn.classic.text.FERMI_GBM_FIN_POS") is None
    True
    """
    if topic.startswith("gcn.notices.") and VOEVENT_PART in topic:
        return "voevent"
    for prefix, format_name in TOPIC_FORMATS:
        if topic.startswith(prefix):
            return format_name
    return None


class _ClientLog(logging.LoggerAdapter):
    """librdkafka's log lines, in this module's log; silent while its errors are an outage
    said once (each of its reconnections to a broker down logs a line: 1,187 in 30 s)."""

    def __init__(self, outage):
        super().__init__(logger, {})
        self._outage = outage

    def log(self, level, msg, *args, **kwargs):
        if not self._outage.ongoing:
            super().log(level, msg, *args, **kwargs)


def brokers_up(brokers):
    """How many of librdkafka's *brokers* (its statistics' ``brokers``) are up: the cluster's
    own (``nodeid`` 0 and more), once it has learned them, else those it was given to begin
    with; not its logical ones (``GroupCoordinator``), which are a broker counted again.

    Examples
    --------
    >>> brokers_up({"b:9092/bootstrap": {"nodeid": -1, "source": "configured", "state": "UP"},
    ...             "b1:9092/1": {"nodeid": 1, "source": "learned", "state": "UP"},
    ...             "GroupCoordinator": {"nodeid": 1, "source": "logical", "state": "UP"}})
    1
    """
    real = [broker for broker in brokers.values() if broker.get("source") != "logical"]
    learned = [broker for broker in real if broker.get("nodeid", -1) >= 0]
    return sum(1 for broker in learned or real if broker.get("state") in BROKER_UP)


def default_consumer_factory(**options):
    """A ``gcn_kafka.Consumer`` made with *options* (``client_id``, ``client_secret``,
    ``domain``, ``config``).

    Raises
    ------
    MissingExtraError
        gcn-kafka is not installed.
    """
    try:
        from gcn_kafka import Consumer
    except ImportError as error:
        raise MissingExtraError("gcn-kafka", "kafka") from error
    return Consumer(**options)


class KafkaSource(Source):
    """Messages of GCN Kafka topics, each handed to *deliver* with its topic's format.

    Parameters
    ----------
    settings : dict
        ``config["Alerts"]["Kafka"]``: ``Client ID``, ``Client Secret``, ``Domain``,
        ``Topics``, ``Reconnect Delay``, ``Max Reconnect Delay``, ``Connection Check
        Interval``.
    deliver : callable
        ``deliver(format_name, payload, origin)``; *origin* is ``"kafka:<topic>"``.
    consumer_factory : callable, optional
        Makes a consumer from keyword arguments ``client_id``, ``client_secret``, ``domain`` and
        ``config`` (a dict of librdkafka settings); the consumer has confluent-kafka's
        ``subscribe(topics)``, ``consume(num_messages, timeout)`` and ``close()``. Default:
        :func:`default_consumer_factory`.
    wait : callable, optional
        ``wait(seconds)`` before a reconnection, returning True when the source is stopping.
        Default: wait on the stop flag.
    """

    label = "kafka"

    def __init__(self, settings, deliver, consumer_factory=None, wait=None):
        super().__init__(settings, deliver)
        self.topics = list(settings.get("Topics") or [])
        self._factory = consumer_factory or default_consumer_factory
        self._wait = wait or self._stopping.wait
        self._backoff = Backoff(settings)
        self._group_id = (settings.get("Consumer Group")
                          or f"{GROUP_PREFIX}-{socket.gethostname()}")
        self._skipped_topics = set()
        self._reconnections = 0
        self._brokers_up = 0
        # librdkafka reports a broker down at each of its own reconnections: said once.
        self._client_failing = Outage(logger)
        self._client_log = _ClientLog(self._client_failing)

    def start(self):
        """Connect and consume in a daemon thread; return at once (nothing without topics)."""
        if not self.topics:
            self._record_error("no Topics to subscribe to")
            logger.error("kafka: no Topics to subscribe to (Alerts/Kafka/Topics)")
            return
        if not self._credentials()[0]:
            logger.warning("kafka: no client id (set Alerts/Kafka/Client ID or $%s); GCN "
                           "Kafka will refuse the connection", CLIENT_ID_VARIABLE)
        self._spawn(self._run)

    def _more_health(self):
        """The topics, the brokers up, how often the source reconnected, the topics it skips."""
        with self._lock:
            brokers_up = self._brokers_up
        return {"Topics": list(self.topics), "Brokers Up": brokers_up,
                "Reconnections": self._reconnections,
                "Skipped Topics": sorted(self._skipped_topics)}

    def _credentials(self):
        return credentials(self.settings)

    def _masked(self, text):
        """*text* with the client secret replaced by :data:`MASK`."""
        secret = self._credentials()[1]
        return text.replace(secret, MASK) if secret else text

    def _run(self):
        """Connect, consume until failure or stop, back off, again."""
        while not self._stopping.is_set():
            try:
                consumer = self._connect()
            except MissingExtraError as error:
                self._fail(str(error))
                return                  # installing the extra needs a restart anyway
            if consumer is not None:
                self._pump(consumer)
                self._close(consumer)
            if self._stopping.is_set() or self._back_off():
                return

    def _connect(self):
        """A subscribed consumer, or None after a failure (recorded and logged)."""
        client_id, secret = self._credentials()
        check_seconds = float(self.settings.get("Connection Check Interval")
                              or DEFAULT_CHECK_SECONDS)
        consumer = None
        try:
            consumer = self._factory(client_id=client_id, client_secret=secret,
                                     domain=self.settings.get("Domain") or DEFAULT_DOMAIN,
                                     config={"group.id": self._group_id,
                                             # stored by _take once the daemon has the alert
                                             "enable.auto.offset.store": False,
                                             # librdkafka's own errors (an OAuth token refused,
                                             # every broker unreachable) and log lines, into
                                             # the health report and the daemon's log.
                                             "error_cb": self._client_error,
                                             "logger": self._client_log,
                                             # the brokers' states, for Connected
                                             "statistics.interval.ms":
                                                 round(check_seconds * 1000),
                                             "stats_cb": self._client_statistics})
            consumer.subscribe(self.topics)
        except MissingExtraError:
            raise
        except Exception as error:      # anything the client raises: retried after a delay
            self._fail(f"cannot connect to GCN Kafka: {error}")
            if consumer is not None:
                self._close(consumer)
            return None
        self._set_connected(True)
        logger.info("kafka: subscribed to %s", ", ".join(self.topics))
        return consumer

    def _pump(self, consumer):
        """Hand over messages until the consumer fails or the source stops."""
        while not self._stopping.is_set():
            try:
                messages = consumer.consume(num_messages=BATCH_MESSAGES, timeout=POLL_SECONDS)
            except Exception as error:  # the broker is lost, or the client is broken
                self._fail(f"GCN Kafka consumer failed: {error}")
                return
            for message in messages:
                self._take(consumer, message)

    def _client_error(self, error):
        """An error librdkafka reports in the background: not connected until its statistics
        say a broker is up, or a message comes."""
        text = self._masked(f"GCN Kafka: {error}")
        with self._lock:
            self._brokers_up = 0        # until the next statistics say which are up
        self._set_connected(False)
        self._record_error(text)
        self._client_failing.failed("kafka: %s (its next errors are in the health Status, "
                                    "until a broker is up again)", text)

    def _client_statistics(self, text):
        """librdkafka's statistics (JSON): connected while one of its brokers is up."""
        try:
            up = brokers_up(json.loads(text).get("brokers") or {})
        except (ValueError, AttributeError) as error:    # not the JSON librdkafka documents
            logger.warning("kafka: unreadable statistics from librdkafka: %s", error)
            return
        with self._lock:
            self._brokers_up = up
        if up:
            self._working()
        else:
            self._set_connected(False)

    def _take(self, consumer, message):
        """One message: an error is logged, an unknown topic skipped, an alert handed over."""
        error = message.error()
        if error is not None:
            text = self._masked(f"GCN Kafka message error: {error}")
            self._record_error(text)
            logger.warning("kafka: %s", text)
            return
        self._working()
        topic = message.topic()
        format_name = format_for_topic(topic)
        if format_name is None:
            self._skip(topic)
            self._store(consumer, message)
            return
        # Not marked read unless the daemon took it (kept in its journal, or refused): one
        # held while the journal's disk was full when the daemon stopped is read again.
        if self.hand_over(format_name, message.value(), f"kafka:{topic}"):
            self._store(consumer, message)

    def _working(self):
        """A broker is up or a message came: connected, and the back-off starts afresh."""
        self._backoff.reset()
        self._set_connected(True)
        self._client_failing.answered("kafka: a broker answers again")

    def _store(self, consumer, message):
        """Mark *message* read for the group (committed with the next automatic commit)."""
        try:
            consumer.store_offsets(message=message)
        except Exception as error:      # read again after a restart: a duplicate, recognised
            logger.warning("kafka: storing the offset of %s failed: %s", message.topic(),
                           self._masked(str(error)))

    def _skip(self, topic):
        """Drop a message of *topic*, saying so the first time only."""
        if topic not in self._skipped_topics:
            self._skipped_topics.add(topic)
            logger.warning("kafka: messages of topic %s are skipped: no alert format is known "
                           "for it", topic)

    def _back_off(self):
        """Wait before reconnecting; True if the source is stopping."""
        self._reconnections += 1
        delay = self._backoff.next()
        logger.info("kafka: reconnecting in %.3g s", delay)
        return self._wait(delay)

    def _fail(self, text):
        """Note a failure: disconnected, *text* (secret masked) kept and logged."""
        text = self._masked(text)
        self._set_connected(False)
        self._record_error(text)
        logger.error("kafka: %s", text)

    def _close(self, consumer):
        """Close *consumer*; a client that fails to close is dropped all the same."""
        try:
            consumer.close()
        except Exception as error:      # a broken client may fail to close: it is dropped
            logger.warning("kafka: closing the consumer failed: %s", self._masked(str(error)))
        with self._lock:
            self._brokers_up = 0
        self._set_connected(False)
