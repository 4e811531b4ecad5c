"""A Kafka broker that does the least a real client needs to call it up: it answers the
ApiVersions request (the first thing librdkafka sends on a connection) and nothing else.

Why: librdkafka reports a broker "UP" once that handshake is done, and the alerts daemon's Kafka
source says it is connected from librdkafka's own statistics; no real Kafka broker (a JVM) is
to be had on a test machine. Messages are tested with a fake consumer (test_alert_sources.py).
"""

import socket
import struct
import threading

#: Kafka's ApiVersions request key, and the APIs this broker says it has: (key, min, max).
API_VERSIONS = 18
ADVERTISED = ((API_VERSIONS, 0, 3), (3, 0, 1))     # 3: Metadata
#: ApiVersions v3 and later use Kafka's "flexible" encoding (compact arrays, tagged fields).
FIRST_FLEXIBLE_VERSION = 3
NO_TAGS = b"\0"


class TinyKafkaBroker:
    """Listens on 127.0.0.1:*port* (0: any free port) in a thread until :meth:`close`."""

    def __init__(self, port=0):
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", port))
        self._server.listen()
        self.port = self._server.getsockname()[1]
        self._connections = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        """Stop listening and drop every connection, as a broker that went away."""
        with self._lock:
            for sock in [self._server, *self._connections]:
                try:    # wakes the thread blocked on it (close() alone would not) and the client
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:         # already closed
                    pass
                sock.close()

    def _accept(self):
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:         # closed
                return
            with self._lock:
                self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection):
        try:
            while True:
                size, = struct.unpack(">i", _receive(connection, 4))
                request = _receive(connection, size)
                key, version, correlation = struct.unpack(">hhi", request[:8])
                if key == API_VERSIONS:
                    body = _api_versions(correlation, version)
                    connection.sendall(struct.pack(">i", len(body)) + body)
        except (EOFError, OSError):
            connection.close()


def _api_versions(correlation, version):
    """The ApiVersions response to a request of *version*, no error, :data:`ADVERTISED`."""
    if version >= FIRST_FLEXIBLE_VERSION:
        entries = b"".join(struct.pack(">hhh", *api) + NO_TAGS for api in ADVERTISED)
        return (struct.pack(">ih", correlation, 0) + bytes([len(ADVERTISED) + 1]) + entries
                + struct.pack(">i", 0) + NO_TAGS)       # throttle time, tags
    entries = b"".join(struct.pack(">hhh", *api) for api in ADVERTISED)
    return struct.pack(">ihi", correlation, 0, len(ADVERTISED)) + entries


def _receive(connection, size):
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
