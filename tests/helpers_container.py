"""A throwaway container booted by a real systemd: `systemd-nspawn --directory=/ --boot`, this
machine's own system under a volatile root, with a private network. Shared by the tests that
run the installed services for real (tests/test_systemd_container.py, tests/test_deb_package.py).
"""
import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers_install import LOG_DIR

BOOT_TIMEOUT_S = 60        # until the container's systemd has finished booting
INIT_APPEAR_TIMEOUT_S = 15  # until nspawn has started the container's PID 1
COMMAND_TIMEOUT_S = 60     # one command inside the container
TEARDOWN_TIMEOUT_S = 30    # the container to power off after SIGTERM, before it is killed
POLL_INTERVAL_S = 0.2
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Units that would wait for a network or a console that the container does not have.
MASKED_UNITS = ("systemd-firstboot.service", "systemd-networkd-wait-online.service",
                "console-getty.service")


def container_init_pid(nspawn, deadline):
    """The PID (on this host) of the container's systemd: the child of systemd-nspawn."""
    while time.monotonic() < deadline and nspawn.poll() is None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                lines = (entry / "status").read_text().splitlines()
                status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
            except OSError:
                continue  # it ended meanwhile
            if (status.get("PPid", "").strip() == str(nspawn.pid)
                    and status.get("Name", "").strip() == "systemd"):
                return int(entry.name)
        time.sleep(POLL_INTERVAL_S)
    return None


class Container:
    """A booted container; commands run in it with nsenter."""

    def __init__(self, nspawn, init_pid, console_log):
        self.nspawn = nspawn
        self.init_pid = init_pid
        self.console_log = console_log

    def run(self, *command, timeout=COMMAND_TIMEOUT_S):
        """Run *command* inside the container, in a clean environment; return the CompletedProcess."""
        return subprocess.run(
            ["nsenter", "--target", str(self.init_pid), "--all",
             "env", "-i", f"PATH={CONTAINER_PATH}", "LANG=C.UTF-8", "HOME=/root", *command],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def output(self, *command):
        """The stripped stdout of *command*, whatever its exit status."""
        return self.run(*command).stdout.strip()

    def diagnostics(self, *services):
        """What an operator would look at when a service misbehaves."""
        parts = []
        for service in services:
            unit = f"{service}.service"
            parts.append(self.run("systemctl", "status", "--no-pager", "--full", unit).stdout)
            parts.append(self.run("journalctl", "--no-pager", "-n", "40", "-u", unit).stdout)
            log = self.run("tail", "-n", "20", f"{LOG_DIR}/{service}.log")
            parts.append(f"--- {LOG_DIR}/{service}.log\n{log.stdout}{log.stderr}")
        return "\n".join(parts)

    def teardown(self):
        """Power the container off (SIGTERM to nspawn); kill it, by its own PIDs, if it hangs."""
        if self.nspawn.poll() is None:
            self.nspawn.terminate()
        try:
            self.nspawn.wait(timeout=TEARDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for pid in (self.init_pid, self.nspawn.pid):
                try:
                    os.kill(pid, signal.SIGKILL)  # the container's PID 1 takes its namespace along
                except ProcessLookupError:
                    pass
            self.nspawn.wait(timeout=TEARDOWN_TIMEOUT_S)


def skip_unless_containers_possible():
    if os.geteuid() != 0:
        pytest.skip("needs root to boot a systemd-nspawn container")
    for tool, package in (("systemd-nspawn", "systemd-container"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian package {package}; .ci/run installs it)")
    if not Path("/usr/lib/systemd/systemd").exists():
        pytest.skip("systemd is not installed (Debian package systemd)")


def boot_container(workdir, binds, volatile="yes", directory="/", machine=None):
    """Boot this machine's system in a container; skip if this machine cannot.

    Parameters
    ----------
    workdir : pathlib.Path
        Where the console log goes.
    binds : list of str
        nspawn's --bind= and --bind-ro= options.
    volatile : str or None
        nspawn's --volatile=: ``yes`` (an empty tmpfs root with this machine's /usr read-only),
        or None for a root of the container's own.
    directory : str
        The container's root: this machine's (with *volatile*), or a writable copy of it
        such as :func:`overlay_root` mounts.
    machine : str, optional
        The container's name; by default one made from this process's PID.
    """
    machine = machine or f"toros-test-{os.getpid()}"
    console_log = workdir / "console.log"
    command = [
        "systemd-nspawn", "--quiet", *([f"--volatile={volatile}"] if volatile else []),
        f"--directory={directory}", "--boot",
        "--private-network", "--register=no", "--keep-unit", "--console=read-only",
        # The container's systemd filters IPAddressDeny=/IPAddressAllow= with BPF programs on the
        # units' cgroups: let it load them (nspawn's seccomp filter refuses bpf() otherwise).
        # The dome daemon asks the kernel whether a time service keeps the clock (adjtimex,
        # changing nothing), which nspawn's filter refuses too, as a machine's systemd does not;
        # without CAP_SYS_TIME the container still cannot set the clock.
        "--system-call-filter=bpf adjtimex clock_adjtime clock_adjtime64",
        f"--machine={machine}", *binds,
        # Arguments after the options go to the container's systemd.
        "systemd.unit=multi-user.target", *(f"systemd.mask={unit}" for unit in MASKED_UNITS),
    ]
    with open(console_log, "wb") as console:
        nspawn = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=console,
                                  stderr=subprocess.STDOUT)
    init_pid = container_init_pid(nspawn, time.monotonic() + INIT_APPEAR_TIMEOUT_S)
    if init_pid is None:
        if nspawn.poll() is None:
            nspawn.kill()
        nspawn.wait()
        pytest.skip("systemd-nspawn could not start a container here:\n"
                    + console_log.read_text()[-2000:])
    container = Container(nspawn, init_pid, console_log)
    # Until its systemd listens, systemctl fails at once: retry until the boot is over.
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        try:
            state = container.run("systemctl", "is-system-running", "--wait",
                                  timeout=max(1.0, deadline - time.monotonic())).stdout.strip()
        except subprocess.TimeoutExpired:
            break
        if state in ("running", "degraded"):
            return container
        time.sleep(POLL_INTERVAL_S)
    failed = container.output("systemctl", "--failed", "--no-pager")
    container.teardown()
    pytest.fail(f"the container did not finish booting in {BOOT_TIMEOUT_S} s (state {state!r}):\n"
                f"{failed}\n{console_log.read_text()[-3000:]}")


@contextlib.contextmanager
def overlay_root(workdir):
    """This machine's whole system, writable, for a container: an overlay of / with its changes
    in a tmpfs, so that a package can be installed and purged in it (dpkg, users, units) and
    nothing of it reaches this machine. Yields the merged directory; unmounts both at the end.

    nspawn's own --volatile=overlay refuses the root directory, hence this.
    """
    changes, merged = workdir / "changes", workdir / "merged"
    changes.mkdir()
    merged.mkdir()
    mounted = []
    try:
        for command in (["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(changes)],
                        # The container's / takes the upper directory's mode: 0755, whatever
                        # the umask of whoever runs the tests (0700 left it unbootable).
                        ["mkdir", "-m", "0755", str(changes / "upper"), str(changes / "work")],
                        ["mount", "-t", "overlay", "overlay", "-o",
                         f"lowerdir=/,upperdir={changes / 'upper'},workdir={changes / 'work'}",
                         str(merged)]):
            result = subprocess.run(command, capture_output=True, text=True,
                                    timeout=COMMAND_TIMEOUT_S)
            if result.returncode != 0:
                pytest.skip(f"cannot make an overlay of / here ({' '.join(command)}): "
                            f"{result.stderr.strip()}")
            if command[0] == "mount":
                mounted.append(command[-1])
        yield merged
    finally:
        for mount_point in reversed(mounted):
            subprocess.run(["umount", "--lazy", mount_point], timeout=COMMAND_TIMEOUT_S,
                           check=False)
