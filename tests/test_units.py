"""The install machinery: `make units` renders valid systemd units and launchd plists for the
installed daemons, and `make install DESTDIR=...` stages a complete, relocatable install.

The staged install runs pip once per session (tests/helpers_install.py); the rest is quick.
"""
import os
import plistlib
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers_install import (  # noqa: E402
    CONFIG_FILE, DATA_DIR, INSTALL_TIMEOUT_S, INSTALL_VENV, LOG_DIR, PREFIX, PROGRAMS, REPO,
    SERVICES, STATE_DIR, SYSTEMD_UNIT_DIR, describe, host_snapshot, make, staged_install,
)

VERIFY_TIMEOUT_S = 60
SYSTEMD_TRUE = {"yes", "true", "on", "1"}


def parse_unit(text):
    """A unit file as {section: {key: [values...]}}; keys may repeat, as systemd allows."""
    sections, current = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def single(section, key):
    """The one value of *key* (the last assignment wins in systemd)."""
    assert key in section, f"{key}= is missing"
    return section[key][-1]


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    return staged_install(tmp_path_factory)


@pytest.fixture(scope="module")
def units(staged):
    """The installed units, parsed: {service: {section: {key: [values]}}}."""
    return {service: parse_unit(staged.path(f"{SYSTEMD_UNIT_DIR}/{service}.service").read_text())
            for service in SERVICES}


@pytest.fixture(scope="module")
def units_for_verify(staged, tmp_path_factory):
    """Units rendered for the staged venv, whose executables exist here (verify checks them)."""
    build = tmp_path_factory.mktemp("verify")
    result = make("units", f"BUILD={build}", f"INSTALL_VENV={staged.path(INSTALL_VENV)}")
    assert result.returncode == 0, describe(result)
    return build / "systemd"


# --- systemd units -----------------------------------------------------------------------------

@pytest.mark.parametrize("service", SERVICES)
def test_unit_passes_systemd_analyze_verify_without_any_warning(units_for_verify, service):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    result = subprocess.run(["systemd-analyze", "verify", str(units_for_verify / f"{service}.service")],
                            capture_output=True, text=True, timeout=VERIFY_TIMEOUT_S)
    assert result.returncode == 0 and result.stderr == "", describe(result)


@pytest.mark.parametrize("service", SERVICES)
def test_unit_starts_the_installed_daemon_with_the_system_config(units, staged, service):
    executable = f"{INSTALL_VENV}/bin/toros-{service}"
    assert units[service]["Service"]["ExecStart"] == [f"{executable} --config {CONFIG_FILE}"]
    assert os.access(staged.path(executable), os.X_OK), f"{executable} is not in the staged install"


@pytest.mark.parametrize("service", SERVICES)
def test_unit_is_a_notify_service_running_as_the_toros_user(units, service):
    section = units[service]["Service"]
    assert single(section, "Type") == "notify"
    assert single(section, "User") == "toros"
    assert single(section, "Group") == "toros"


@pytest.mark.parametrize("service", SERVICES)
def test_unit_restarts_after_a_crash_but_not_after_a_bad_config(units, service):
    section = units[service]["Service"]
    assert single(section, "Restart") == "on-failure"
    assert "78" in " ".join(section["RestartPreventExitStatus"]).split()


@pytest.mark.parametrize("service", SERVICES)
def test_unit_is_sandboxed_with_only_state_and_log_directories_writable(units, service):
    section = units[service]["Service"]
    for flag in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "ProtectKernelTunables",
                 "ProtectControlGroups", "PrivateDevices"):
        assert single(section, flag) in SYSTEMD_TRUE, f"{flag}={single(section, flag)}"
    assert single(section, "ProtectSystem") == "strict"
    assert single(section, "StateDirectory") == "toros"
    assert single(section, "LogsDirectory") == "toros"
    assert single(section, "RestrictAddressFamilies").split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert single(section, "CapabilityBoundingSet") == ""


@pytest.mark.parametrize("service", SERVICES)
def test_unit_is_described_ordered_after_the_network_and_installable(units, service):
    unit = units[service]
    assert service in single(unit["Unit"], "Description")
    assert all(re.match(r"(https?|file|man|info):", uri)
               for value in unit["Unit"]["Documentation"] for uri in value.split())
    assert "network.target" in " ".join(unit["Unit"]["After"]).split()
    assert single(unit["Install"], "WantedBy") == "multi-user.target"


# --- launchd plists ----------------------------------------------------------------------------

@pytest.mark.parametrize("service", SERVICES)
def test_plist_runs_the_installed_daemon_at_load_and_keeps_it_alive(staged, service):
    path = staged.build / "launchd" / f"org.toros.{service}.plist"
    with open(path, "rb") as stream:
        plist = plistlib.load(stream)
    assert plist["Label"] == path.name.removesuffix(".plist") == f"org.toros.{service}"
    executable, *arguments = plist["ProgramArguments"]
    assert executable == f"{INSTALL_VENV}/bin/toros-{service}"
    assert os.access(staged.path(executable), os.X_OK), f"{executable} is not in the staged install"
    assert arguments == ["--config", CONFIG_FILE]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"]
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert plist[key].startswith(LOG_DIR + "/"), f"{key}={plist[key]}"


def test_launchd_install_puts_the_plists_in_library_launchagents(tmp_path):
    result = make("install-init", "INIT_SYSTEM=launchd", f"DESTDIR={tmp_path / 'root'}",
                  f"BUILD={tmp_path / 'build'}")
    assert result.returncode == 0, describe(result)
    installed = sorted(p.name for p in (tmp_path / "root/Library/LaunchAgents").iterdir())
    assert installed == sorted(f"org.toros.{service}.plist" for service in SERVICES)


# --- rendering refuses broken paths ------------------------------------------------------------

@pytest.mark.parametrize("setting, variable", [
    ("INSTALL_VENV=", "INSTALL_VENV"),
    ("PREFIX=", "PREFIX"),
    ("INSTALL_VENV=relative/venv", "INSTALL_VENV"),
])
def test_rendering_without_an_absolute_executable_path_stops_the_build(tmp_path, setting, variable):
    result = make("units", f"BUILD={tmp_path}", setting)
    assert result.returncode != 0, describe(result)
    assert f"error: {variable}=" in result.stderr
    assert not list(tmp_path.rglob("*.service"))


def test_rendering_a_template_without_execstart_stops_the_build(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REPO / "Makefile", source)
    shutil.copytree(REPO / "systemd", source / "systemd")
    shutil.copytree(REPO / "launchd", source / "launchd")
    template = source / "systemd" / "dome.service.in"
    template.write_text("".join(line for line in template.read_text().splitlines(keepends=True)
                                if not line.startswith("ExecStart=")))
    result = make("units", f"BUILD={tmp_path / 'build'}", cwd=source)
    assert result.returncode != 0, describe(result)
    assert "dome.service: ExecStart is missing" in result.stderr
    assert not (tmp_path / "build/systemd/dome.service").exists()


# --- a venv cannot be made without ensurepip (Debian without python3-venv) ---------------------

@pytest.fixture
def python_without_ensurepip(tmp_path):
    """An interpreter that behaves as Debian's python3 does without the python3-venv package."""
    fake = tmp_path / "python-without-venv"
    fake.write_text("#!/bin/sh\n"
                    'case "$*" in *ensurepip*) echo "No module named ensurepip" >&2; exit 1;; esac\n'
                    f'exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    return fake


def test_dev_venv_without_ensurepip_stops_with_the_package_to_install(tmp_path, python_without_ensurepip):
    result = make("dev", f"PYTHON={python_without_ensurepip}", f"VENV={tmp_path / 'venv'}")
    assert result.returncode != 0, describe(result)
    assert "apt-get install python3-venv" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_install_venv_without_ensurepip_stops_with_the_package_to_install(tmp_path, python_without_ensurepip):
    result = make("install-venv", f"INSTALL_PYTHON={python_without_ensurepip}",
                  f"DESTDIR={tmp_path / 'root'}")
    assert result.returncode != 0, describe(result)
    assert "apt-get install python3-venv" in result.stderr
    assert not (tmp_path / "root").exists()


# --- the staged install ------------------------------------------------------------------------

def test_staged_install_has_a_venv_with_the_package(staged, tmp_path):
    python = staged.path(f"{INSTALL_VENV}/bin/python")
    # Run away from the source tree, so that the installed copy is the one imported.
    result = subprocess.run([str(python), "-c", "import torosmanager; print(torosmanager.__file__)"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=VERIFY_TIMEOUT_S)
    assert result.returncode == 0, describe(result)
    assert result.stdout.startswith(str(staged.path(INSTALL_VENV)))


def test_staged_install_links_the_five_programs_into_prefix_bin(staged):
    for program in PROGRAMS:
        link = staged.path(f"{PREFIX}/bin/{program}")
        assert link.is_symlink(), f"{link} is not a symlink"
        target = os.readlink(link)
        assert target == f"{INSTALL_VENV}/bin/{program}"
        assert os.access(staged.path(target), os.X_OK)


def test_staged_scripts_name_the_final_interpreter_not_the_staging_directory(staged):
    venv_bin = staged.path(f"{INSTALL_VENV}/bin")
    for program in PROGRAMS:
        first_line = (venv_bin / program).read_text().splitlines()[0]
        assert re.fullmatch(rf"#!{re.escape(INSTALL_VENV)}/bin/python[0-9.]*", first_line), first_line
    texts = [path for path in venv_bin.iterdir() if path.is_file() and not path.is_symlink()]
    texts.append(staged.path(f"{INSTALL_VENV}/pyvenv.cfg"))
    mentioning_stage = [path.name for path in texts if str(staged.root).encode() in path.read_bytes()]
    assert mentioning_stage == []


def test_staged_install_puts_the_units_in_the_systemd_unit_directory(staged):
    installed = sorted(path.name for path in staged.path(SYSTEMD_UNIT_DIR).iterdir())
    assert installed == sorted(f"{service}.service" for service in SERVICES)


def test_staged_install_creates_the_data_and_log_directories(staged):
    for directory in (STATE_DIR, DATA_DIR, LOG_DIR):
        assert staged.path(directory).is_dir(), directory


def test_staged_install_copies_the_shipped_config_readable_by_owner_and_group_only(staged):
    config = staged.path(CONFIG_FILE)
    assert config.read_bytes() == (REPO / "etc/toros/toros.conf.yaml").read_bytes()
    assert stat.S_IMODE(config.stat().st_mode) == 0o640


def test_staged_install_changes_nothing_outside_destdir(staged):
    assert host_snapshot() == staged.host_before


def test_a_second_install_keeps_an_edited_config(staged):
    config = staged.path(CONFIG_FILE)
    shipped = config.read_text()
    edited = shipped + "# edited by the operator\n"
    config.write_text(edited)
    try:
        result = make(*staged.install_args(), timeout=INSTALL_TIMEOUT_S)
        assert result.returncode == 0, describe(result)
        assert config.read_text() == edited
        assert "not overwritten" in result.stdout
    finally:
        config.write_text(shipped)


def test_uninstall_removes_the_program_and_keeps_config_and_data_unless_purged(tmp_path):
    root, build = tmp_path / "root", tmp_path / "build"
    staging = (f"DESTDIR={root}", f"BUILD={build}")
    # Everything but the (slow) venv, which a stand-in replaces.
    result = make("install-links", "install-docs", "install-init", "install-dirs", "install-config", *staging)
    assert result.returncode == 0, describe(result)
    venv = root / INSTALL_VENV.lstrip("/")
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").touch()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")

    result = make("uninstall", *staging)
    assert result.returncode == 0, describe(result)
    assert not (root / INSTALL_VENV.lstrip("/")).exists()
    assert not any(os.path.lexists(root / PREFIX.lstrip("/") / "bin" / program) for program in PROGRAMS)
    assert not any((root / SYSTEMD_UNIT_DIR.lstrip("/")).iterdir())
    for kept in (CONFIG_FILE, DATA_DIR, LOG_DIR):
        assert (root / kept.lstrip("/")).exists(), f"{kept} was removed without PURGE=1"

    result = make("uninstall", "PURGE=1", *staging)
    assert result.returncode == 0, describe(result)
    for purged in ("/etc/toros", STATE_DIR, LOG_DIR):
        assert not (root / purged.lstrip("/")).exists(), f"{purged} survived PURGE=1"


def test_help_lists_the_targets():
    result = make("help")
    assert result.returncode == 0, describe(result)
    listed = set(re.findall(r"^  ([a-z-]+):", result.stdout, re.MULTILINE))
    assert {"all", "test", "demo", "units", "install", "uninstall", "clean", "distclean"} <= listed
