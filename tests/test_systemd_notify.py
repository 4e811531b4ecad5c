"""A daemon tells its supervisor it is ready (sd_notify(3)): a datagram to ``$NOTIFY_SOCKET``,
which the demo's and the tests' launcher sets on every system, not only under systemd."""

import os
import socket

import pytest

from torosmanager.systemd_notify import notify_systemd


@pytest.fixture
def supervisor(monkeypatch):
    """A datagram socket in the abstract namespace, named in ``$NOTIFY_SOCKET``."""
    name = f"toros-test-notify-{os.getpid()}-{os.urandom(4).hex()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        yield listener


def test_ready_reaches_the_supervisor(supervisor):
    notify_systemd("READY=1")
    assert supervisor.recv(64) == b"READY=1"


def test_ready_reaches_it_where_sockets_have_no_sock_cloexec(supervisor, monkeypatch):
    """macOS's socket module has no SOCK_CLOEXEC: asking for it raised AttributeError, which
    nothing caught, so no daemon ever said it was ready and `make demo` stopped after 60 s."""
    monkeypatch.delattr(socket, "SOCK_CLOEXEC")
    notify_systemd("READY=1")
    assert supervisor.recv(64) == b"READY=1"


def test_a_supervisor_gone_away_is_a_warning_not_an_error(supervisor, caplog):
    """Serving (or stopping) must not depend on telling the supervisor."""
    supervisor.close()
    notify_systemd("STOPPING=1")
    assert "could not notify @toros-test-notify-" in caplog.text and "'STOPPING=1'" in caplog.text
