"""Telling systemd how a daemon is (sd_notify(3)): ready, stopping, and alive, for the watchdog.

Under a unit of ``Type=notify`` systemd hands the daemon a socket in ``$NOTIFY_SOCKET``; with
``WatchdogSec=`` it also sets ``$WATCHDOG_USEC`` and expects ``WATCHDOG=1`` at least that often,
or it kills the daemon and restarts it (``Restart=on-failure``). Elsewhere (launchd, a
terminal) these variables are not set and nothing is sent.
"""

import logging
import os
import socket

log = logging.getLogger(__name__)

#: Seconds a notification may wait for room in the supervisor's socket: systemd reads it at
#: once, and the safety guard, which tells the watchdog, must not hang on it.
NOTIFY_TIMEOUT_SECONDS = 1.0


def notify_systemd(message):
    """Send *message* to systemd's notification socket, when started by systemd (``Type=notify``).

    See sd_notify(3): a datagram to the path in ``$NOTIFY_SOCKET`` (``@`` means the abstract
    namespace).
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        # (Not inherited by child processes, as every Python socket (PEP 446); SOCK_CLOEXEC,
        # which macOS lacks, would only say so again.)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as connection:
            connection.settimeout(NOTIFY_TIMEOUT_SECONDS)
            connection.connect(address)
            connection.sendall(message.encode())
    except OSError as error:
        # The supervisor has gone away; serving (or stopping) must not depend on telling it.
        log.warning("could not notify %s of %r: %s", os.environ["NOTIFY_SOCKET"], message, error)


def watchdog_interval():
    """Seconds between two ``WATCHDOG=1`` that systemd's watchdog expects of this process (half
    its ``WatchdogSec=``, as sd_watchdog_enabled(3) advises), or ``None`` when none watches it."""
    microseconds = os.environ.get("WATCHDOG_USEC")
    watched = os.environ.get("WATCHDOG_PID")
    if not microseconds or (watched and watched != str(os.getpid())):
        return None
    return int(microseconds) / 1e6 / 2


def tell_watchdog_alive():
    """``WATCHDOG=1``: this daemon still does what the watchdog watches."""
    notify_systemd("WATCHDOG=1")
