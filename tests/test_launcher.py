"""The ports the demo's and the tests' daemons get: free, distinct, and never ones an outgoing
connection can take before the daemon binds them; and the daemons start whatever TMPDIR is."""

import collections
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from torosmanager import launcher
from torosmanager.config import SERVICES, address_key, load_config
from torosmanager.launcher import (LOOPBACK, LOWEST_PORT, DaemonProcess, ephemeral_ports_start,
                                   free_port)
from torosmanager.unix_sockets import UNIX_SOCKET_PATH_MAX

REPO = Path(__file__).resolve().parent.parent
#: Seconds for a pip install into a new venv, from a copy of the package's sources.
PIP_INSTALL_TIMEOUT_S = 120
#: Seconds for a small Python process to end once told.
PROCESS_EXIT_TIMEOUT_S = 30


def test_ports_lie_below_the_kernels_ephemeral_range():
    ports = [free_port() for _ in range(200)]
    assert all(LOWEST_PORT <= port < ephemeral_ports_start() for port in ports)


def test_ports_handed_out_are_distinct():
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)


def test_a_port_something_listens_on_is_passed_over(monkeypatch):
    # Ports not held once handed out: free_port may give this one again.
    monkeypatch.setattr(launcher, "_reservations", collections.deque())
    monkeypatch.setattr(launcher, "PORT_RESERVATION_SECONDS", 0)
    with socket.socket() as busy:
        busy.bind((LOOPBACK, free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        free = free_port()
        monkeypatch.setattr(launcher, "_port_walk", lambda: (2, itertools.cycle([taken, free])))
        assert free_port() == free


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="ports are held in Linux's abstract socket namespace")
def test_a_port_another_process_handed_out_is_passed_over_though_nothing_listens_yet(
        monkeypatch):
    # Two test processes each start daemons: a port one has handed out, whose daemon has not
    # bound it yet, is not handed out by the other.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from torosmanager.launcher import free_port\n"
         "print(free_port(), flush=True)\n"
         "sys.stdin.read()"],   # until the test closes its stdin
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        held = int(holder.stdout.readline())
        with socket.socket() as probe:
            probe.bind((LOOPBACK, held))  # nothing listens on it: only the hold keeps it
        monkeypatch.setattr(launcher, "_port_walk",
                            lambda: (2, itertools.cycle([held, held + 1])))
        assert free_port() == held + 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=PROCESS_EXIT_TIMEOUT_S)
    # The kernel lets go of the hold with the process.
    monkeypatch.setattr(launcher, "_port_walk", lambda: (1, itertools.cycle([held])))
    assert free_port() == held


def test_a_process_holds_a_bounded_number_of_ports(monkeypatch):
    monkeypatch.setattr(launcher, "_reservations", collections.deque())
    monkeypatch.setattr(launcher, "PORT_RESERVATIONS_HELD", 3)
    for _ in range(10):
        free_port()
    assert len(launcher._reservations) <= 3


def test_no_free_port_is_an_error_not_a_hang(monkeypatch):
    with socket.socket() as busy:
        busy.bind((LOOPBACK, free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setattr(launcher, "_port_walk", lambda: (1, itertools.cycle([taken])))
        with pytest.raises(RuntimeError, match="no free TCP port on 127.0.0.1"):
            free_port()


def test_a_local_configuration_gives_each_daemon_its_own_loopback_port(tmp_path):
    config = load_config(launcher.local_config(str(tmp_path)))
    addresses = [config[address_key(service)] for service in SERVICES]
    assert {address["IP"] for address in addresses} == {LOOPBACK}
    assert len({address["Port"] for address in addresses}) == len(SERVICES)


def test_a_daemon_starts_under_a_temporary_directory_too_long_for_its_notify_socket(
        tmp_path, monkeypatch):
    # Its NOTIFY_SOCKET goes in TMPDIR/toros-notify-XXXXXXXX/notify: here past any Unix socket's
    # limit, as under a deep TMPDIR (the demo's inside a test's in /var/tmp once was).
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    assert len(str(deep)) > UNIX_SOCKET_PATH_MAX
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    config_path = launcher.local_config(str(tmp_path))
    daemon = DaemonProcess("dome", config_path).start()
    try:
        notify_directory = os.path.dirname(daemon._listener.getsockname())
        assert os.path.isdir(notify_directory)
    finally:
        status = daemon.stop()
    assert status == 0, daemon.stderr_tail()
    assert list(deep.iterdir()) == []  # nothing left in TMPDIR
    assert not os.path.exists(notify_directory)  # nor where the socket went instead


def test_a_daemon_starts_from_a_venv_whose_path_has_a_space(tmp_path):
    # As for a checkout in "My Projects": pip writes the daemon programs' #! line naming the venv's
    # Python as it is, space and all, which the kernel cannot run (`make demo` failed so).
    venv = tmp_path / "My Projects" / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=PIP_INSTALL_TIMEOUT_S)
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    # What the package needs (astropy, numpy...) comes from the venv running these tests.
    (site_packages / "dependencies.pth").write_text(
        "".join(f"{path}\n" for path in sys.path if path.endswith("site-packages")))
    sources = tmp_path / "sources"  # pip builds in the tree it installs: not in this checkout
    sources.mkdir()
    for name in ("setup.py", "README.md"):  # (setup.py reads the README)
        shutil.copy(REPO / name, sources)
    for folder in ("services", "torosmanager"):
        shutil.copytree(REPO / folder, sources / folder, ignore=shutil.ignore_patterns("__pycache__"))
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--no-deps", "--no-build-isolation", "--no-index", str(sources)],
        capture_output=True, text=True, timeout=PIP_INSTALL_TIMEOUT_S)
    assert installed.returncode == 0, installed.stderr
    assert " " in (venv / "bin" / "toros-dome").read_text().splitlines()[0]

    config_path = launcher.local_config(str(tmp_path))
    started = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sys; from torosmanager.launcher import DaemonProcess; "
         "daemon = DaemonProcess('dome', sys.argv[1]).start(); "
         "sys.exit(daemon.stop())", config_path],
        capture_output=True, text=True, timeout=PIP_INSTALL_TIMEOUT_S)
    assert started.returncode == 0, started.stderr + (tmp_path / "dome.stderr").read_text()
