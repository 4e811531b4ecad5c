"""GCN Classic's socket notices as an alert source: the site is the TCP server GCN connects to.

Why: the 160-byte socket notice is GCN's fastest channel for GRB positions (seconds after the
spacecraft's message), and what many robotic observatories registered with GCN decades ago
(see the user's reference, robotic-observatory-protocols.txt, section 5.1). GCN is the
*client*: it connects to the IP and port registered for the site and sends notices, among them
an "imalive" packet about once a minute.

The protocol, as GCN's socket_demo.c implements it:

- read exactly 160 bytes per notice (a notice may arrive in pieces, or two in one read);
- echo every packet back at once, so that GCN can see the site received it and time the round
  trip; the one exception is KILL_SOCKET (type 4), GCN's request to close the connection,
  which is not echoed: the connection is closed and GCN connects again later;
- an imalive (type 3) is echoed and counted (``Imalive Packets``, ``Last Imalive`` in the
  health report), not handed over: it is not an alert.

Every other packet is handed over as ``("gcn_socket", packet, "gcn-socket:<GCN's IP>:<port>")``;
the daemon reads it with :mod:`torosmanager.alerts.formats.gcn_socket`, even when its echo
cannot be sent (GCN closed the connection right after sending). Connections are served each in
its own thread, so a new connection from GCN is answered even while a dead one times out; at
most ``Max Connections`` of them (a new one closes the oldest, which a network fault may have
left half open), each closed after ``Idle Timeout`` seconds without a packet, so that idle
connections cannot take the daemon's threads and files.
"""

import logging
import socket
import time

from torosmanager.alerts.formats.gcn_socket import (IMALIVE, KILL_SOCKET, PACKET_BYTES,
                                                    packet_type, type_name)
from torosmanager.alerts.sources import Source, utc_now_iso
from torosmanager.logs import Outage

logger = logging.getLogger(__name__)

#: Where the server listens when the settings say nothing (the configuration's default IP).
DEFAULT_IP = "127.0.0.1"
#: The port when the settings say nothing (TAROT's, the example of the user's reference).
DEFAULT_PORT = 5134
#: Seconds a blocking accept or read waits before looking at the stop flag again.
POLL_SECONDS = 0.2
#: Seconds between attempts to listen when the port cannot be bound (taken by another program).
BIND_RETRY_SECONDS = 5.0
#: Connections waiting to be accepted: GCN opens one at a time.
BACKLOG = 4
#: The settings' defaults (the configuration's), when they say nothing.
DEFAULT_MAX_CONNECTIONS = 4
DEFAULT_IDLE_TIMEOUT = 180.0


class ConnectionEnded(Exception):
    """GCN closed the connection, or asked to (KILL_SOCKET)."""


class GcnSocketSource(Source):
    """A TCP server receiving GCN's 160-byte notices; see the module docstring.

    Parameters
    ----------
    settings : dict
        ``config["Alerts"]["GCN Socket"]``: ``IP`` (default 127.0.0.1), ``Port`` (0 picks a
        free port: see :attr:`address`).
    deliver : callable
        ``deliver("gcn_socket", packet, origin)``.
    """

    label = "gcn-socket"

    def __init__(self, settings, deliver):
        super().__init__(settings, deliver)
        self.ip = settings.get("IP") or DEFAULT_IP
        port = settings.get("Port")
        self.port = DEFAULT_PORT if port is None else int(port)
        self.max_connections = int(settings.get("Max Connections") or DEFAULT_MAX_CONNECTIONS)
        self.idle_timeout = float(settings.get("Idle Timeout") or DEFAULT_IDLE_TIMEOUT)
        self.address = None
        self._server = None
        self._connections = {}  # open connection → None, oldest first
        self._imalives = 0
        self._last_imalive = None
        self._accept_failing = Outage(logger, logging.ERROR)  # said once, not every 0.2 s

    def start(self):
        """Listen (at once, so that :attr:`address` is known) and accept in a daemon thread."""
        self._listen()
        self._spawn(self._accept_loop)

    def _more_health(self):
        """Where the server listens, GCN's open connections, the imalives received."""
        with self._lock:
            return {"Address": f"{self.ip}:{self.port}" if self.address is None
                    else f"{self.address[0]}:{self.address[1]}",
                    "Connections": len(self._connections), "Imalive Packets": self._imalives,
                    "Last Imalive": self._last_imalive}

    def _interrupt(self):
        """Wake the threads: shut the connections down (their reads end at once)."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)

    def _listen(self):
        """Bind the server socket; on failure record it (the accept loop retries)."""
        try:
            server = socket.create_server((self.ip, self.port), backlog=BACKLOG)
        except OSError as error:
            self._record_error(f"cannot listen on {self.ip}:{self.port}: {error}")
            logger.error("gcn-socket: cannot listen on %s:%d: %s (retrying every %.0f s)",
                         self.ip, self.port, error, BIND_RETRY_SECONDS)
            return
        server.settimeout(POLL_SECONDS)
        self._server = server
        self.address = server.getsockname()[:2]
        logger.info("gcn-socket: listening on %s:%d for GCN", *self.address)

    def _accept_loop(self):
        """Accept GCN's connections until stopped, each served by a thread of its own."""
        try:
            while not self._stopping.is_set():
                if self._server is None:
                    if self._stopping.wait(BIND_RETRY_SECONDS):
                        return
                    self._listen()
                    continue
                self._accept_one()
        finally:
            if self._server is not None:
                self._server.close()

    def _accept_one(self):
        """Wait (at most :data:`POLL_SECONDS`) for GCN to connect; serve it in a thread."""
        try:
            connection, peer = self._server.accept()
        except TimeoutError:
            return
        except OSError as error:        # e.g. too many open files: note it and go on
            self._record_error(f"accept failed: {error}")
            self._accept_failing.failed("gcn-socket: accept failed: %s (tried again)", error)
            self._stopping.wait(POLL_SECONDS)
            return
        self._accept_failing.answered("gcn-socket: connections are accepted again")
        self._close_oldest_beyond(self.max_connections - 1)
        # A connection that stops answering (a peer gone without a word) is found by TCP.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._register(connection, True)  # here, not in its thread: counted at the next accept
        try:
            self._spawn(self._serve, connection, peer, name=f"gcn-socket-{peer[0]}:{peer[1]}")
        except RuntimeError as error:   # no thread to be had (the unit's TasksMax)
            self._register(connection, False)
            connection.close()
            self._record_error(f"cannot serve {peer[0]}:{peer[1]}: {error}")
            logger.error("gcn-socket: cannot serve the connection from %s:%d: %s", *peer[:2],
                         error)

    def _close_oldest_beyond(self, kept):
        """Shut the oldest connections down until *kept* are left (their threads end)."""
        with self._lock:
            oldest = list(self._connections)[:max(0, len(self._connections) - kept)]
        for connection in oldest:
            logger.info("gcn-socket: closing the oldest connection, %s (Alerts → GCN Socket → "
                        "Max Connections: %d): a new one came", _peer(connection),
                        self.max_connections)
            _shut(connection)

    def _serve(self, connection, peer):
        """Read, echo and hand over the packets of one connection until it ends."""
        origin = f"gcn-socket:{peer[0]}:{peer[1]}"
        connection.settimeout(POLL_SECONDS)
        logger.info("gcn-socket: GCN connected from %s:%d", *peer[:2])
        pending = bytearray()
        echoing, last = True, time.monotonic()
        try:
            while not self._stopping.is_set():
                packet = _receive_packet(connection, pending)
                if packet is not None:
                    echoing, last = self._on_packet(connection, packet, origin, echoing), \
                        time.monotonic()
                elif time.monotonic() - last > self.idle_timeout:
                    raise ConnectionEnded(f"no packet for {self.idle_timeout:g} s (Alerts → GCN "
                                          "Socket → Idle Timeout): closed, for GCN to connect "
                                          "again")
        except ConnectionEnded as reason:
            if not self._stopping.is_set():     # else it is stop() that shut it down
                logger.info("gcn-socket: connection from %s:%d ended: %s", *peer[:2], reason)
        except OSError as error:
            if not self._stopping.is_set():
                self._record_error(f"connection from {peer[0]}:{peer[1]} failed: {error}")
                logger.warning("gcn-socket: connection from %s:%d failed: %s", *peer[:2],
                               error)
        finally:
            self._register(connection, False)
            connection.close()

    def _on_packet(self, connection, packet, origin, echoing):
        """Echo the packet (not a KILL_SOCKET) while *echoing*, count an imalive, hand over
        anything else; whether echoes can still be sent. A packet received is handed over even
        when its echo cannot be sent: GCN closed the connection right after sending it."""
        number = packet_type(packet)
        if number == KILL_SOCKET:
            raise ConnectionEnded(f"GCN sent {type_name(number)}")
        if echoing:
            try:
                connection.sendall(packet)
            except OSError as error:
                echoing = False
                logger.info("gcn-socket: %s: cannot echo (%s); what it sent is read all the "
                            "same", origin, error)
        if number == IMALIVE:
            with self._lock:
                self._imalives += 1
                self._last_imalive = utc_now_iso()
            return echoing
        self.hand_over("gcn_socket", packet, origin)
        return echoing

    def _register(self, connection, active):
        """Keep the set of open connections (for stop and for Connected)."""
        with self._lock:
            if active:
                self._connections[connection] = None
            else:
                self._connections.pop(connection, None)
            self._connected = bool(self._connections)


def _receive_packet(connection, pending):
    """The next 160-byte packet, or None when the read timed out first.

    Bytes read before a timeout stay in *pending* (a bytearray) for the next call, so a packet
    arriving in pieces is put back together.

    Raises
    ------
    ConnectionEnded
        GCN closed the connection.
    """
    while len(pending) < PACKET_BYTES:
        try:
            chunk = connection.recv(PACKET_BYTES - len(pending))
        except TimeoutError:
            return None
        if not chunk:
            raise ConnectionEnded("closed by GCN" if not pending else
                                  f"closed by GCN in the middle of a packet "
                                  f"({len(pending)} of {PACKET_BYTES} bytes)")
        pending += chunk
    packet = bytes(pending[:PACKET_BYTES])
    del pending[:PACKET_BYTES]
    return packet


def _peer(connection):
    """``host:port`` of *connection*'s peer, or why it is not known."""
    try:
        return "{}:{}".format(*connection.getpeername()[:2])
    except OSError as error:
        return f"a peer no longer known ({error.strerror or error})"


def _shut(connection):
    """Shut *connection* down both ways, whatever its state."""
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:                     # already closed or never connected: nothing to do
        pass
