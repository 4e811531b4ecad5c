"""`make deb` builds a Debian package that installs, upgrades, removes and purges as an
astronomer expects: checked with dpkg-deb, and with apt and a real systemd in a throwaway
container (this machine's system, writable on a tmpfs overlay; nothing of it reaches the host).

The package holds the locked venv (requirements/install.txt, the exact versions) made from
Debian's own Python, the units in /lib/systemd/system, the configuration as a conffile, and the
maintainer scripts of packaging/deb/: postinst makes the user toros, the directories and the
configuration's mode (dpkg-statoverride) and reloads systemd; prerm stops the daemons; postrm
purges what postinst made.

Needs root, dpkg-deb, systemd-nspawn and overlayfs (Debian 12 with systemd-container, which
.ci/run installs); otherwise the tests skip, saying why.
"""
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers_container import (  # noqa: E402
    POLL_INTERVAL_S, boot_container, overlay_root, skip_unless_containers_possible,
)
from helpers_install import (  # noqa: E402
    INSTALL_TIMEOUT_S, REPO, SERVICES, STRICT_UMASK, describe, locked_pins, make, normalized,
    not_as_umask_022_makes_it,
)

import torosmanager  # noqa: E402

# Where the package puts things (the Makefile's deb target).
VENV = "/usr/lib/toros-manager/venv"
CONFIG = "/etc/toros/toros.conf.yaml"
UNIT_DIR = "/lib/systemd/system"
DIST_IN_CONTAINER = "/srv/dist"
APT_TIMEOUT_S = 300         # apt installing or removing the 600 MB package
START_TIMEOUT_S = 120       # the five daemons to start (each imports astropy)
STOP_TIMEOUT_S = 60
LINTIAN_TIMEOUT_S = 1800    # 2-4 min here for 17,000 files; it passed 10 min on a loaded CI machine


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """`make deb` into a temporary DIST and BUILD, with gzip -1 (much faster to build than xz),
    by someone whose umask is strict (:data:`STRICT_UMASK`)."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed (Debian package dpkg)")
    dist = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("deb-build")
    result = make("deb", f"DIST={dist}", f"BUILD={build}", "DEB_COMPRESSION=gzip", "DEB_COMPRESSION_LEVEL=1",
                  timeout=INSTALL_TIMEOUT_S, umask=STRICT_UMASK)
    assert result.returncode == 0, "make deb failed:\n" + describe(result)
    packages = list(dist.glob("*.deb"))
    assert len(packages) == 1, packages
    return {"path": packages[0], "root": build / "deb" / "root", "log": result.stdout}


def dpkg_deb(*args):
    result = subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, timeout=120,
                            check=True)
    return result.stdout


def control_fields(deb_path):
    fields = {}
    for line in dpkg_deb("--field", str(deb_path)).splitlines():
        if line and not line.startswith(" ") and ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


def test_the_package_is_named_for_its_version_and_architecture(deb):
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert deb["path"].name == f"toros-manager_{torosmanager.__version__}_{arch}.deb"
    fields = control_fields(deb["path"])
    assert fields["Package"] == "toros-manager"
    assert fields["Version"] == torosmanager.__version__
    assert fields["Architecture"] == arch
    # The command to install it, as apt needs it: a path (DIST is absolute here).
    assert f"sudo apt install {deb['path']}\n" in deb["log"]


def test_it_depends_on_the_debian_python_its_venv_was_made_from(deb):
    cfg = (deb["root"] / VENV.lstrip("/") / "pyvenv.cfg").read_text()
    assert re.search(r"^home = /usr/bin$", cfg, re.MULTILINE), cfg
    minor = re.search(r"^version = (\d+\.\d+)", cfg, re.MULTILINE).group(1)
    depends = [part.strip() for part in control_fields(deb["path"])["Depends"].split(",")]
    assert f"python{minor}" in depends
    # It runs that very Python, not whatever /usr/bin/python3 is (python3-minimal, which the
    # package does not depend on, may be absent, or of a newer release after an upgrade).
    links = {path.name: os.readlink(path)
             for path in (deb["root"] / VENV.lstrip("/") / "bin").glob("python*")}
    assert {target for target in links.values() if target.startswith("/")} == {
        f"/usr/bin/python{minor}"}, links


def test_the_configuration_is_a_conffile_and_the_units_are_systemds(deb):
    listing = dpkg_deb("--contents", str(deb["path"]))
    for service in SERVICES:
        line = next(line for line in listing.splitlines()
                    if line.endswith(f".{UNIT_DIR}/{service}.service"))
        assert line.startswith("-rw-r--r-- root/root"), line
        unit = (deb["root"] / UNIT_DIR.lstrip("/") / f"{service}.service").read_text()
        assert f"ExecStart={VENV}/bin/toros-{service} --config {CONFIG}" in unit
    assert f".{UNIT_DIR}/toros.target" in listing
    assert f".{CONFIG}" in listing
    assert "./usr/bin/toros -> ../lib/toros-manager/venv/bin/toros" in listing
    assert "./usr/share/doc/toros-manager/copyright" in listing
    conffiles = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb["path"])],
                               capture_output=True, check=True, timeout=60).stdout
    with tarfile.open(fileobj=io.BytesIO(conffiles)) as control:
        members = {member.name.lstrip("./"): member for member in control.getmembers()}
        assert control.extractfile(members["conffiles"]).read().decode().split() == [CONFIG]
        for script in ("postinst", "prerm", "postrm"):
            assert members[script].mode & 0o111, f"{script} is not executable"


def test_built_under_a_strict_umask_every_file_is_readable_by_all_but_the_configuration(deb):
    """The daemons (user toros) read the venv and the units, whatever the builder's umask."""
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb["path"])],
                          capture_output=True, check=True, timeout=300).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tree:
        modes = {member.name.removeprefix("."): (member.mode, member.isdir())
                 for member in tree.getmembers() if not member.issym()}
    assert modes.pop(CONFIG) == (0o640, False)
    wrong = [f"{mode:o} {name}" for name, (mode, is_dir) in modes.items()
             if not_as_umask_022_makes_it(mode, is_dir)]
    assert wrong == [], f"{len(wrong)} of {len(modes)} hidden from others or writable, e.g. {wrong[:5]}"


@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_maintainer_scripts_are_valid_posix_shell(script):
    path = REPO / "packaging" / "deb" / script
    result = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert path.read_text().startswith("#!/bin/sh\n")
    assert "\nset -e\n" in path.read_text()


def test_the_venv_holds_exactly_the_locked_versions(deb):
    site = next((deb["root"] / VENV.lstrip("/") / "lib").glob("python3*/site-packages"))
    installed = {}
    for info in site.glob("*.dist-info"):
        metadata = (info / "METADATA").read_text(errors="replace")
        name = re.search(r"^Name: (.+)$", metadata, re.MULTILINE).group(1).strip()
        version = re.search(r"^Version: (.+)$", metadata, re.MULTILINE).group(1).strip()
        installed[normalized(name)] = version
    assert installed.pop("torosmanager") == torosmanager.__version__
    installed.pop("pip")  # the venv's own, from Debian's ensurepip
    assert installed == {name: version for name, (version, _) in locked_pins().items()}


def test_every_library_its_programs_load_is_in_it_or_in_a_package_it_depends_on(deb):
    """The wheels' compiled modules link to the system's C and C++ run-time and zlib (what the
    manylinux policy lets them leave out): each such library belongs to a package the
    package depends on, so that apt installs it; none is missing."""
    depends = {part.split()[0] for part in control_fields(deb["path"])["Depends"].split(",")}
    root = deb["root"].resolve()
    libraries = [path for path in root.rglob("*.so*") if path.is_file()
                 and not path.is_symlink() and path.read_bytes()[:4] == b"\x7fELF"]
    # A wheel's library may name another of the wheel's without a path to it (scipy's
    # libgfortran its libquadmath): the modules that load them load both from the wheel.
    in_package = {path.name for path in libraries}
    needed, missing = {}, []
    for path in libraries:
        shown = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=60)
        for line in shown.stdout.splitlines():
            if "not found" in line:
                if line.split()[0] not in in_package:
                    missing.append(f"{path.relative_to(root)}: {line.strip()}")
            elif "=> /" in line:
                library = os.path.realpath(line.split("=> ")[1].split(" (")[0])
                if not Path(library).is_relative_to(root):
                    needed.setdefault(library, path.relative_to(root))
    assert missing == []
    assert needed, "no library of the system found: is ldd reading the venv's modules?"
    owners = {library: dpkg_owner(library) for library in needed}
    undeclared = {library: owner for library, owner in owners.items() if owner not in depends}
    assert undeclared == {}, f"Depends: {sorted(depends)}; needed by e.g. {needed}"


def dpkg_owner(path):
    """The package (without its architecture) that installed *path*, under its /usr-merged
    name or the other."""
    for name in dict.fromkeys([path, path.removeprefix("/usr"), "/usr" + path]):
        found = subprocess.run(["dpkg-query", "-S", name], capture_output=True, text=True,
                               timeout=60)
        if found.returncode == 0:
            return found.stdout.split(":")[0]
    return f"no package owns {path}"


def test_no_path_of_the_build_leaks_into_the_package(deb):
    """The venv's scripts and bytecode name /usr/lib/toros-manager/venv, not the staging tree."""
    staged = str(deb["root"].resolve())
    leaked = subprocess.run(["grep", "-rlF", "--exclude-dir=DEBIAN", staged, str(deb["root"])],
                            capture_output=True, text=True, timeout=300)
    assert leaked.returncode == 1, f"files naming {staged}:\n{leaked.stdout[:3000]}"
    # Nor the temporary copy of the source pip installed from (PEP 610's record).
    assert not list(deb["root"].glob(VENV.lstrip("/") + "/lib/python3*/site-packages/"
                                     "torosmanager-*.dist-info/direct_url.json"))


def test_lintian_finds_nothing_but_what_the_overrides_explain(deb, tmp_path):
    """Lintian's errors and warnings, with packaging/deb/lintian-overrides: those that come from
    shipping PyPI's wheels unchanged in the venv are overridden there, each with its reason,
    and none that no longer applies.

    Two checks are left out, which took 150 of lintian's 350 s on this package's 17,000 files:
    ``binaries/spelling``, whose one tag is at level info (it cannot fail this test), reads
    every string of the venv's 288 shared libraries; ``languages/javascript/embedded`` looks
    for known JavaScript libraries by file name, and the package's own files have no
    JavaScript at all (checked here), only PyPI's wheels do.
    """
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (Debian package lintian; .ci/run installs it)")
    site_packages = next(deb["root"].glob(VENV.lstrip("/") + "/lib/python3*/site-packages"))
    own_javascript = [path for path in deb["root"].rglob("*.js")
                      if not path.is_relative_to(site_packages)
                      or path.is_relative_to(site_packages / "torosmanager")]
    assert not own_javascript
    # Its own TMPDIR: lintian leaves a file there (mldbm-elf-XXXXXXXX) at every run.
    result = subprocess.run(["lintian", "--fail-on", "error,warning", "--display-info",
                             "--dont-check-part",
                             "binaries/spelling,languages/javascript/embedded", str(deb["path"])],
                            capture_output=True, text=True, timeout=LINTIAN_TIMEOUT_S,
                            env=dict(os.environ, TMPDIR=str(tmp_path)))
    findings = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")
                or " unused-override " in line]  # an override left after its reason went
    assert result.returncode == 0 and not findings, "\n".join(findings) + result.stderr


# ---------------------------------------------------------------------------
# Installed by apt in a container with a real systemd
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def container(deb, tmp_path_factory):
    skip_unless_containers_possible()
    workdir = tmp_path_factory.mktemp("deb-container")
    with overlay_root(workdir) as root:
        booted = boot_container(workdir, [f"--bind-ro={deb['path'].parent}:{DIST_IN_CONTAINER}"],
                                volatile=None, directory=str(root),
                                machine=f"toros-deb-{os.getpid()}")
        try:
            # A Docker image's policy-rc.d forbids maintainer scripts to start or stop services
            # (deb-systemd-invoke obeys it); a Debian system has none. Removed from the overlay.
            assert booted.run("rm", "-f", "/usr/sbin/policy-rc.d").returncode == 0
            yield booted
        finally:
            booted.teardown()


def apt(container, *args):
    result = container.run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q", *args,
                           timeout=APT_TIMEOUT_S)
    assert result.returncode == 0, f"apt-get {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def reinstall(container, deb):
    """``apt install --reinstall`` of the package (the upgrade path); what apt and the
    maintainer scripts said (apt shows the scripts' stderr on its stdout)."""
    return apt(container, "install", "--reinstall", f"{DIST_IN_CONTAINER}/{deb['path'].name}")


@pytest.fixture(scope="module")
def installed(container, deb):
    """`apt install ./toros-manager_*.deb`, with no network (the container has none)."""
    output = apt(container, "install", f"{DIST_IN_CONTAINER}/{deb['path'].name}")
    return {"container": container, "output": output}


def stat(container, path):
    """(owner, group, octal mode) of *path* in the container."""
    owner, group, mode = container.output("stat", "-c", "%U %G %a", path).split()
    return owner, group, mode


def answering_services(container):
    """The services `toros services` shows answering, as the operator runs it (as root)."""
    shown = container.run("toros", "services")
    return {line.split()[0] for line in shown.stdout.splitlines()
            if len(line.split()) > 2 and line.split()[2] == "yes"}


def wait_until(check, what, timeout, container):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, \
            f"gave up after {timeout} s waiting for {what}\n{container.diagnostics(*SERVICES)}"
        time.sleep(POLL_INTERVAL_S)


def main_pids(container):
    return {service: container.output("systemctl", "show", "-p", "MainPID", "--value",
                                      f"{service}.service") for service in SERVICES}


def test_install_makes_the_user_directories_and_a_private_configuration(installed):
    container = installed["container"]
    assert "sudo systemctl enable --now toros.target" in installed["output"]
    entry = container.output("getent", "passwd", "toros").split(":")
    assert int(entry[2]) < 1000 and entry[5] == "/var/lib/toros" and entry[6] == "/usr/sbin/nologin"
    assert stat(container, CONFIG) == ("root", "toros", "640")
    for directory in ("/var/lib/toros", "/var/lib/toros/data", "/var/log/toros"):
        assert stat(container, directory) == ("toros", "toros", "750"), directory
    assert container.run("systemctl", "cat", "toros.target").returncode == 0


def test_dpkg_verify_finds_the_files_as_packaged_and_names_one_changed(installed):
    container = installed["container"]
    verified = container.run("dpkg", "--verify", "toros-manager")
    assert verified.returncode == 0 and verified.stdout == "", verified.stdout + verified.stderr
    changed = "/usr/share/doc/toros-manager/copyright"
    assert container.run("cp", "-p", changed, "/root/copyright").returncode == 0
    try:
        assert container.run("sh", "-c", f"echo changed >> {changed}").returncode == 0
        verified = container.run("dpkg", "--verify", "toros-manager")
        assert re.fullmatch(rf"\?\?5\?{{6}} +{changed}\n", verified.stdout), verified.stdout
    finally:
        assert container.run("cp", "-p", "/root/copyright", changed).returncode == 0


def start_the_target(container):
    """``systemctl enable --now toros.target``, as the package tells the operator; return
    once the five daemons answer (a test of an upgrade needs them running, whichever ran
    before it)."""
    result = container.run("systemctl", "enable", "--now", "toros.target", timeout=START_TIMEOUT_S)
    assert result.returncode == 0, result.stderr + container.diagnostics(*SERVICES)
    wait_until(lambda: answering_services(container) == set(SERVICES),
               "the five daemons to answer", START_TIMEOUT_S, container)


def test_the_target_starts_the_five_installed_daemons(installed):
    container = installed["container"]
    start_the_target(container)
    users = {container.output("ps", "-o", "user=", "-p", pid) for pid in main_pids(container).values()}
    assert users == {"toros"}


def test_an_upgrade_keeps_the_edited_configuration_and_restarts_the_daemons(installed, deb):
    container = installed["container"]
    start_the_target(container)
    before = main_pids(container)
    edit = container.run("sed", "-i", "s/^# TOROS Manager/# TOROS Manager (edited at this site)/",
                         CONFIG)
    assert edit.returncode == 0
    edited = container.output("cat", CONFIG)
    assert "(edited at this site)" in edited
    # Installing the package again runs the upgrade path: prerm upgrade, postinst configure 0.2.0.
    said = reinstall(container, deb)
    assert "refuses the configuration" not in said and "did not start again" not in said, said
    assert container.output("cat", CONFIG) == edited
    assert stat(container, CONFIG) == ("root", "toros", "640")
    after = main_pids(container)
    assert all(after[service] not in ("0", before[service]) for service in SERVICES), (before, after)
    wait_until(lambda: answering_services(container) == set(SERVICES),
               "the five daemons to answer after the upgrade", START_TIMEOUT_S, container)


def test_an_upgrade_whose_configuration_the_new_version_refuses_leaves_the_daemons_running(
        installed, deb):
    """postinst asks the new code first (``toros-scheduler --check-config``): restarted with a
    configuration it refuses, the daemons would stop for good, the dome's closing it, for the
    night. They go on with the version before, and the operator is told why and what to do."""
    container = installed["container"]
    start_the_target(container)
    before = main_pids(container)
    assert container.run("sed", "-i", "s/^  Log Level: INFO/  Log Level: LOUD/",
                         CONFIG).returncode == 0
    try:
        said = reinstall(container, deb)
        assert "warning: the new version refuses the configuration" in said, said
        assert "Logging → Log Level: 'LOUD' is not allowed" in said, said
        assert "then: sudo systemctl restart toros.target" in said, said
        assert container.output("dpkg-query", "-W", "-f", "${Status}", "toros-manager") == \
            "install ok installed"
        assert main_pids(container) == before
    finally:
        assert container.run("sed", "-i", "s/^  Log Level: LOUD/  Log Level: INFO/",
                             CONFIG).returncode == 0
    # (`toros services` reads the configuration too: asked once it is accepted again.)
    assert answering_services(container) == set(SERVICES)
    checked = container.run("toros-scheduler", "--check-config", "--config", CONFIG)
    assert checked.returncode == 0 and f"{CONFIG} is accepted" in checked.stdout, checked.stderr


def test_an_upgrade_whose_daemon_does_not_start_again_leaves_the_package_configured(
        installed, deb):
    """deb-systemd-invoke fails when a restart does: the upgrade failed in apt, the package
    (and every one upgraded with it) left unconfigured. Here the configuration is accepted,
    and a drop-in makes the scheduler's start fail."""
    container = installed["container"]
    start_the_target(container)
    drop_in = "/etc/systemd/system/scheduler.service.d/fail-to-start.conf"
    assert container.run("sh", "-c", f"mkdir -p {os.path.dirname(drop_in)} && "
                         f"printf '[Service]\\nExecStartPre=/bin/false\\n' > {drop_in}"
                         ).returncode == 0
    try:
        said = reinstall(container, deb)
        assert "warning: a TOROS daemon did not start again after the upgrade" in said, said
        assert container.output("dpkg-query", "-W", "-f", "${Status}", "toros-manager") == \
            "install ok installed"
    finally:
        assert container.run("rm", "-f", drop_in).returncode == 0
        assert container.run("systemctl", "daemon-reload").returncode == 0
    result = container.run("systemctl", "restart", "toros.target", timeout=START_TIMEOUT_S)
    assert result.returncode == 0, result.stderr + container.diagnostics(*SERVICES)


def test_remove_stops_the_daemons_and_keeps_configuration_data_and_user(installed):
    container = installed["container"]
    container.run("touch", "/var/lib/toros/data/frame.fits")
    # A service enabled on its own: its link must not be left pointing at nothing.
    assert container.run("systemctl", "enable", "dome.service").returncode == 0
    apt(container, "remove", "toros-manager")
    assert container.run("test", "-L", "/etc/systemd/system/multi-user.target.wants/"
                                       "dome.service").returncode == 1
    states = {service: container.output("systemctl", "is-active", f"{service}.service")
              for service in SERVICES}
    assert set(states.values()) <= {"inactive", "failed"}, states
    assert container.run("test", "-e", f"{UNIT_DIR}/scheduler.service").returncode == 1
    assert container.run("test", "-e", VENV).returncode == 1
    assert container.run("test", "-e", "/usr/bin/toros").returncode == 1
    assert container.run("test", "-f", CONFIG).returncode == 0
    assert container.run("test", "-f", "/var/lib/toros/data/frame.fits").returncode == 0
    assert container.run("getent", "passwd", "toros").returncode == 0


def test_installed_again_after_a_removal_it_says_how_to_start_the_daemons(installed, deb):
    """After a removal (which took toros.target out of the boot) dpkg calls it an upgrade."""
    container = installed["container"]
    apt(container, "remove", "toros-manager")  # (none to remove when the test before did)
    output = apt(container, "install", f"{DIST_IN_CONTAINER}/{deb['path'].name}")
    assert "sudo systemctl enable --now toros.target" in output


def test_purge_removes_configuration_data_logs_and_the_user(installed):
    container = installed["container"]
    apt(container, "purge", "toros-manager")
    for path in ("/etc/toros", "/var/lib/toros", "/var/log/toros"):
        assert container.run("test", "-e", path).returncode == 1, path
    assert container.run("getent", "passwd", "toros").returncode == 2
    assert container.run("getent", "group", "toros").returncode == 2
    assert CONFIG not in container.output("dpkg-statoverride", "--list")
    status = container.run("dpkg-query", "-W", "-f", "${Status}", "toros-manager")
    assert status.returncode == 1 or "not-installed" in status.stdout, status.stdout
