"""Starting daemons as child processes on this machine: for the demo and the tests.

:class:`DaemonProcess` starts ``toros-<service>`` and waits for it the way systemd does, on a
``NOTIFY_SOCKET`` datagram saying ``READY=1``; it stops the daemon by its own PID.
:func:`local_config` writes a configuration for a set of daemons on free loopback ports.
"""

import collections
import functools
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import yaml

from .config import SERVICES, address_key
from .unix_sockets import socket_temporary_directory

#: Seconds to wait for a daemon's READY=1 (astropy's first import dominates).
START_TIMEOUT = 60.0
#: Seconds a daemon gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 30.0
LOOPBACK = "127.0.0.1"
#: The lowest port :func:`free_port` hands out (above the well-known and most registered ones).
LOWEST_PORT = 10000
#: The kernel's first ephemeral port where it does not say: IANA's dynamic range, which is also
#: macOS's default (``sysctl net.inet.ip.portrange.first``).
DYNAMIC_PORTS_START = 49152
#: Linux's ephemeral port range: "first last".
EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
#: The directory (made by ``mkdtemp``, a random suffix of 8) and name of a daemon's
#: ``NOTIFY_SOCKET``, below the temporary directory.
NOTIFY_DIRECTORY_PREFIX = "toros-notify-"
NOTIFY_SOCKET_NAME = "notify"
#: The longest notification read (sd_notify's are a few short lines).
NOTIFICATION_BYTES = 4096
NOTIFY_SOCKET_SUFFIX = len(f"/{NOTIFY_DIRECTORY_PREFIX}XXXXXXXX/{NOTIFY_SOCKET_NAME}")
#: The name, in Linux's abstract socket namespace, by which a process holds a port it handed
#: out against :func:`free_port` in the other processes on the machine (``{}``: the port).
PORT_RESERVATION_NAME = "\0toros-port-{}"
#: Seconds a port handed out stays held: longer than a daemon takes to start and bind it.
PORT_RESERVATION_SECONDS = 2 * START_TIMEOUT
#: The most ports a process holds at once (a file descriptor each); the oldest goes first.
PORT_RESERVATIONS_HELD = 256

_reservations: collections.deque[tuple[float, socket.socket]] = collections.deque()  # oldest first
_reservations_lock = threading.Lock()


def ephemeral_ports_start():
    """The first port of the range the kernel gives outgoing connections (and ``bind`` to 0)."""
    try:
        with open(EPHEMERAL_RANGE_FILE, encoding="ascii") as stream:
            return int(stream.read().split()[0])
    except (OSError, ValueError, IndexError):
        return DYNAMIC_PORTS_START


@functools.cache
def _port_walk():
    """The ports from LOWEST_PORT up to the ephemeral range, endlessly, from a random start:
    distinct ports within this process, and unlikely to meet another process's walk.

    Returns
    -------
    (int, iterator)
        How many ports there are, and the walk.
    """
    first, end = LOWEST_PORT, max(ephemeral_ports_start(), LOWEST_PORT + 1)
    start = random.randrange(first, end)
    return end - first, itertools.cycle(itertools.chain(range(start, end), range(first, start)))


def free_port():
    """A TCP port on the loopback interface that nothing listens on now.

    The port lies below the kernel's ephemeral range. A port from that range (what binding to
    port 0 gives) can be taken as the source port of any outgoing connection between this call
    and the daemon's own ``bind``, which then fails with "Address already in use". Below the
    range, only an explicit ``bind`` takes a port.

    Another process calling this function between the two (another test process) could find
    the same port free. On Linux, the port is therefore held for a while by a socket in the
    abstract namespace, which other processes' calls pass over and the kernel releases when the
    process ends, however it ends.
    """
    count, walk = _port_walk()
    with _reservations_lock:
        _release_lapsed_reservations()
        for port in itertools.islice(walk, count):
            if _bindable(port) and _reserve(port):
                return port
    raise RuntimeError(f"no free TCP port on {LOOPBACK} from {LOWEST_PORT} up to the "
                       "ephemeral range")


def _bindable(port):
    """Whether nothing listens on *port* of the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the daemons bind: a port left in TIME_WAIT by an earlier daemon is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _reserve(port):
    """Hold *port* against other processes' :func:`free_port`; False if one holds it already.

    Elsewhere than on Linux (no abstract namespace) nothing is held, as before.
    """
    if not sys.platform.startswith("linux"):
        return True
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        holder.bind(PORT_RESERVATION_NAME.format(port))
    except OSError:
        holder.close()
        return False
    _reservations.append((time.monotonic() + PORT_RESERVATION_SECONDS, holder))
    return True


def _release_lapsed_reservations():
    """Let go of the ports held past PORT_RESERVATION_SECONDS, and of the oldest beyond
    PORT_RESERVATIONS_HELD − 1 (one more is about to be held)."""
    now = time.monotonic()
    while _reservations and (_reservations[0][0] <= now
                             or len(_reservations) >= PORT_RESERVATIONS_HELD):
        _reservations.popleft()[1].close()


def local_config(directory, overrides=None):
    """Write a configuration for daemons on loopback, keeping all their files in *directory*.

    Parameters
    ----------
    directory : str
        Holds the journals, the logs, the data and the configuration file itself.
    overrides : dict, optional
        Sections to merge over the generated ones, e.g. ``{"Clock": {...}}``.

    Returns
    -------
    str
        The path of the configuration file.
    """
    data_directory = os.path.join(directory, "data")
    os.makedirs(data_directory, exist_ok=True)
    config = {address_key(service): {"IP": LOOPBACK, "Port": free_port()} for service in SERVICES}
    config.update({
        "Logging": {"File": os.path.join(directory, "{service}.log")},
        "Database": {"File": os.path.join(directory, "{service}.sqlite3")},
        "Telescope": {"Data Directory": data_directory},
        "Preprocessor": {"Allowed Directories": [data_directory],
                         "Master Library": os.path.join(directory, "masters")},
    })
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    path = os.path.join(directory, "toros.conf.yaml")
    with open(path, "w", encoding="utf-8") as stream:
        yaml.safe_dump(config, stream, sort_keys=False)
    return path


def daemon_command(service):
    """The command (a list) that runs ``toros-<service>``.

    The program installed beside this Python is run by this Python, which its ``#!`` line names
    too; but a ``#!`` line cannot name a path with a space in it (a checkout in "My Projects"),
    and pip writes it as it is. Otherwise, the program found on ``PATH``.
    """
    name = f"toros-{service}"
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(beside):
        return [sys.executable, beside]
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (run `make` or `pip install .`)")
    return [found]


class DaemonProcess:
    """One daemon running as a child process.

    Parameters
    ----------
    service : str
        Which daemon.
    config_path : str
        Its configuration file.
    log_path : str, optional
        Where its stderr goes; default ``<config dir>/<service>.stderr``.
    """

    def __init__(self, service, config_path, log_path=None):
        self.service = service
        self.config_path = config_path
        self.log_path = log_path or os.path.join(os.path.dirname(config_path),
                                                 f"{service}.stderr")
        self.process = None
        self._notify_directory = None
        self._listener = None

    @property
    def pid(self):
        """The daemon's process ID."""
        return self.process.pid

    def start(self, timeout=START_TIMEOUT):
        """Start the daemon and wait for its ``READY=1``; return ``self``.

        Raises
        ------
        RuntimeError
            If it exits or is not ready within *timeout* seconds; the message holds the end of
            its stderr.
        """
        return self.launch().wait_ready(timeout)

    def launch(self):
        """Start the daemon without waiting (see :meth:`wait_ready`); return ``self``."""
        # Kept until stop(): the daemon also reports STOPPING=1 there, as it would to systemd.
        self._notify_directory = tempfile.mkdtemp(
            prefix=NOTIFY_DIRECTORY_PREFIX, dir=socket_temporary_directory(NOTIFY_SOCKET_SUFFIX))
        address = os.path.join(self._notify_directory, NOTIFY_SOCKET_NAME)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._listener.bind(address)
        environment = dict(os.environ, NOTIFY_SOCKET=address)
        with open(self.log_path, "ab") as stderr:
            self.process = subprocess.Popen(
                [*daemon_command(self.service), "--config", self.config_path],
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, env=environment)
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        """Wait for the launched daemon's ``READY=1``; return ``self``."""
        try:
            self._wait_ready(self._listener, timeout)
        except RuntimeError:
            self._close_listener()
            raise
        return self

    def _wait_ready(self, listener, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"toros-{self.service} exited with status "
                                   f"{self.process.returncode}: {self.stderr_tail()}")
            listener.settimeout(min(0.2, max(deadline - time.monotonic(), 0.01)))
            try:
                message = listener.recv(NOTIFICATION_BYTES).decode()
            except socket.timeout:
                continue
            if "READY=1" in message.split("\n"):
                return
        self.kill()
        raise RuntimeError(f"toros-{self.service} was not ready within {timeout:g} s: "
                           f"{self.stderr_tail()}")

    def notifications(self, seconds):
        """The messages the daemon sends its supervisor (sd_notify, as systemd would receive
        them) over the next *seconds*, in order; those sent since the last call come first."""
        received = []
        deadline = time.monotonic() + seconds
        while True:
            self._listener.settimeout(max(deadline - time.monotonic(), 0.0))
            try:
                received.append(self._listener.recv(NOTIFICATION_BYTES).decode())
            except (socket.timeout, BlockingIOError):
                return received

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM the daemon and wait; kill it if it has not stopped in time.

        Returns
        -------
        int
            Its exit status (negative: killed by that signal).
        """
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_listener()
        return self.process.returncode

    def kill(self):
        """SIGKILL the daemon (as a power cut would stop it) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_listener()

    def _close_listener(self):
        if self._listener is not None:
            self._listener.close()
            shutil.rmtree(self._notify_directory, ignore_errors=True)
            self._listener = None

    def stderr_tail(self, lines=20):
        """The last *lines* lines the daemon wrote to stderr."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as stream:
                return "".join(stream.readlines()[-lines:])
        except OSError:
            return ""
