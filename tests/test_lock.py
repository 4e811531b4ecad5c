"""The lock file (requirements/install.txt) pins every package the installed daemons use, with
its sha256: `sudo make install` and `make test` install exactly those versions, and
`sudo make install WHEELHOUSE=DIR` does it from a folder with no network at all.

The offline install runs in a network namespace with no interface but a loopback that is down
(`unshare --net`, as root), and without this machine's pip configuration (its local package
mirrors), so that nothing but the wheelhouse can serve it.
"""
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers_install import (  # noqa: E402
    INSTALL_TIMEOUT_S, INSTALL_VENV, LOCK, REPO, describe, locked_pins as pins, make, normalized,
    staged_install,
)

OPTIONAL_PARTS = re.search(r"^LOCKED_EXTRAS := (.+)$", (REPO / "Makefile").read_text(),
                           re.MULTILINE).group(1).split()
# No pip configuration file at all: pip's documented meaning of PIP_CONFIG_FILE=/dev/null.
NO_PIP_CONFIG = {"PIP_CONFIG_FILE": os.devnull}


def test_every_package_is_pinned_to_one_version_with_its_sha256():
    locked = pins()
    assert len(locked) > 50
    requirement_lines = [line for line in LOCK.read_text().splitlines()
                         if line and not line.startswith((" ", "#"))]
    assert len(requirement_lines) == len(locked), "a line that is not name==version"
    assert all(hashes for _, hashes in locked.values()), \
        [name for name, (_, hashes) in locked.items() if not hashes]
    # Made by `make lock`, which the header names, and with no index of this machine in it.
    assert "#    make lock\n" in LOCK.read_text()
    assert not re.search(r"^--(extra-)?index-url|^--find-links", LOCK.read_text(), re.MULTILINE)


def test_the_lock_satisfies_every_requirement_of_setup_py_and_its_optional_parts():
    locked = pins()
    requirements = [Requirement(text) for text in importlib.metadata.requires("torosmanager")]
    checked = 0
    for requirement in requirements:
        wanted = (requirement.marker is None
                  or any(requirement.marker.evaluate({"extra": part}) for part in OPTIONAL_PARTS))
        if not wanted:
            continue  # test or bench only
        name = normalized(requirement.name)
        assert name in locked, f"{requirement} is not in {LOCK.name}: make lock"
        assert requirement.specifier.contains(locked[name][0], prereleases=True), \
            f"{LOCK.name} pins {name}=={locked[name][0]}, outside {requirement}: make lock"
        checked += 1
    assert checked >= 12


def test_the_tests_run_on_the_locked_versions():
    """`make test` installs the lock before the test tools: every locked package is here at
    its locked version."""
    differing = {}
    for name, (version, _) in pins().items():
        try:
            here = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            here = None
        if here != version:
            differing[name] = (version, here)
    assert not differing, f"locked (version, installed here): {differing}"


# ---------------------------------------------------------------------------
# make wheelhouse, then sudo make install WHEELHOUSE=DIR with no network
# ---------------------------------------------------------------------------

def skip_unless_network_namespaces():
    if os.geteuid() != 0:
        pytest.skip("needs root to cut the network with unshare --net")
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed (Debian package util-linux)")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheelhouse")
    result = make("wheelhouse", f"WHEELHOUSE={folder}",
                  f"BUILD={tmp_path_factory.mktemp('tools')}", timeout=INSTALL_TIMEOUT_S)
    assert result.returncode == 0, describe(result)
    return folder


def offline_install(tmp_path_factory, wheelhouse):
    """`make install DESTDIR=... WHEELHOUSE=...` under `unshare --net`; the CompletedProcess."""
    root = tmp_path_factory.mktemp("offline-destdir")
    build = tmp_path_factory.mktemp("offline-build")
    env = {key: value for key, value in os.environ.items()
           if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
           and not key.startswith("PIP_")}
    result = subprocess.run(
        ["unshare", "--net", "make", "--no-print-directory", "-C", str(REPO), "install",
         f"DESTDIR={root}", f"BUILD={build}", f"WHEELHOUSE={wheelhouse}"],
        capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, stdin=subprocess.DEVNULL,
        env={**env, **NO_PIP_CONFIG})
    return root, result


def test_the_wheelhouse_holds_one_checked_file_per_locked_package(wheelhouse):
    files = sorted(path.name for path in wheelhouse.iterdir())
    names = {normalized(re.match(r"(.+?)-\d", name).group(1)) for name in files}
    assert names == set(pins()), names ^ set(pins())
    assert len(files) == len(pins())


def test_install_from_the_wheelhouse_needs_no_network(tmp_path_factory, wheelhouse):
    skip_unless_network_namespaces()
    # The online install first: as root it gets Debian's python3-venv if the machine lacks it,
    # which an offline machine must already have.
    staged_install(tmp_path_factory)
    probe = subprocess.run(["unshare", "--net", sys.executable, "-c",
                            "import socket; socket.create_connection(('pypi.org', 443), 5)"],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0, "the namespace reached pypi.org"
    root, result = offline_install(tmp_path_factory, wheelhouse)
    assert result.returncode == 0, describe(result)
    assert "with no index" in result.stdout
    python = root / INSTALL_VENV.lstrip("/") / "bin" / "python"
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, timeout=120, check=True).stdout
    installed = dict(line.split("==") for line in listed.split())
    installed = {normalized(name): version for name, version in installed.items()}
    assert installed.pop("torosmanager") is not None
    installed.pop("pip")
    assert installed == {name: version for name, (version, _) in pins().items()}
    imported = subprocess.run([str(python), "-c", "import torosmanager.alerts.sources.kafka, gcn,"
                               " gcn_kafka, astroscrappy, dask.distributed"],
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr


def test_a_file_that_does_not_match_its_sha256_stops_the_install(tmp_path_factory, wheelhouse):
    skip_unless_network_namespaces()
    tampered = tmp_path_factory.mktemp("tampered-wheelhouse")
    for path in wheelhouse.iterdir():
        shutil.copy(path, tampered / path.name)
    six = next(tampered.glob("six-*.whl"))
    six.write_bytes(six.read_bytes() + b"\0")
    _, result = offline_install(tmp_path_factory, tampered)
    assert result.returncode != 0, describe(result)
    assert "DO NOT MATCH THE HASHES" in result.stderr, describe(result)
    assert "six" in result.stderr
