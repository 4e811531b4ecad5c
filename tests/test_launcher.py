"""The ports the demo's and the tests' daemons get: free, distinct, and never ones an outgoing
connection can take before the daemon binds them."""

import itertools
import socket

import pytest

from torosmanager import launcher
from torosmanager.config import SERVICES, address_key, load_config
from torosmanager.launcher import LOOPBACK, LOWEST_PORT, ephemeral_ports_start, free_port


def test_ports_lie_below_the_kernels_ephemeral_range():
    ports = [free_port() for _ in range(200)]
    assert all(LOWEST_PORT <= port < ephemeral_ports_start() for port in ports)


def test_ports_handed_out_are_distinct():
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)


def test_a_port_something_listens_on_is_passed_over(monkeypatch):
    with socket.socket() as busy:
        busy.bind((LOOPBACK, free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        free = free_port()
        monkeypatch.setattr(launcher, "_port_walk", lambda: (2, itertools.cycle([taken, free])))
        assert free_port() == free


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
