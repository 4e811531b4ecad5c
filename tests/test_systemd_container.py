"""Under a real systemd, in a throwaway container: the installed units start the five daemons
(Type=notify, sandboxed, as user toros), and toros.target starts them together, dome first and
scheduler last, and stops them together; the daemons answer work orders on loopback, reach each
other, write FITS frames into /var/lib/toros/data on a simulated night, reopen their log file on
`systemctl reload` without /bin/kill (procps, which a minimal Debian lacks, is hidden), stop
cleanly with status 0, and are not restarted after a bad config (status 78). Operators added by
`make install-operators OPERATORS=...` use `toros` and `journalctl` without sudo.

The container is `systemd-nspawn --volatile=yes -D /`: this machine's own /usr, read-only, on an
empty tmpfs root, booted with its own systemd and a private network. Read-only into it go the
staged install's /usr/local (`make install DESTDIR=...`: the venv, the program links) and this
source tree; inside it, `make install-user install-dirs install-config install-init` does the
root-only steps of `sudo make install` for real (useradd, chown, daemon-reload). Nothing of it
outlives the container.

The units' resource limits are checked as systemd applies them (`systemctl show`, and the open-file
limit in the daemon's /proc/<pid>/limits), and `make install-loopback-only` for real: the daemons
still serve and reach each other on 127.0.0.1, and a connection from another address of the
container (192.0.2.1, added to its loopback interface) is dropped.

Needs root and systemd-nspawn (Debian package systemd-container, which .ci/run installs);
otherwise every test skips, saying why.
"""
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers_install import (  # noqa: E402
    CONFIG_FILE, INSTALL_VENV, LOG_DIR, PREFIX, REPO, SERVICES, STATE_DIR, STRICT_UMASK,
    staged_install,
)
from helpers_container import (  # noqa: E402
    COMMAND_TIMEOUT_S, POLL_INTERVAL_S, boot_container, skip_unless_containers_possible,
)
from torosmanager.clock_sync import system_clock_sync  # noqa: E402

START_TIMEOUT_S = 120      # all five daemons to start (each imports astropy) and send READY=1
# WatchdogSec= (and TimeoutAbortSec=) in the watchdog's test; the time systemd then takes to
# kill the hung daemon, wait RestartSec=5 and start a new one that is ready.
WATCHDOG_TEST_SECONDS = 2
WATCHDOG_RESTART_TIMEOUT_S = 60

SOURCE_IN_CONTAINER = "/srv/toros-source"
# An address of the container that is not loopback (TEST-NET-1, RFC 5737), put on its loopback
# interface: a client bound to it reaches 127.0.0.1 as a client on the network would.
OTHER_ADDRESS = "192.0.2.1"
CONNECT_TIMEOUT_S = 2      # a dropped SYN is retried after 1 s: 2 s tells dropped from accepted
# The scores of `systemd-analyze security` the units must keep (issue 10).
MAX_EXPOSURE = 1.4
# procps's kill(1), hidden in the container: a minimal Debian 12 has no procps (issue 13).
# The container has this machine's /usr only, so a /bin/kill outside it is not there anyway.
KILL = os.path.realpath("/bin/kill")
# The target that starts and stops the five services together, and their start order.
TARGET = "toros.target"
# Ordinary users made in the container, who become operators with `make install-operators`.
OPERATORS = ("alice", "bob")
SHIPPED_CONFIG = yaml.safe_load((REPO / "etc/toros/toros.conf.yaml").read_text())
# The manual's example of a dome work order.
MANUAL_DOME_ORDER = {"ID": "1", "WOType": "Dome", "Priority": 2,
                     "Datetime": "2019-03-05T14:34:54.234", "User": "John Doe", "Blink01": True}
# The manual's example of an observation, under an ID of its own (the dome example has "1").
OBSERVATION_ORDER = {"ID": "101", "WOType": "Observation", "Priority": 1.3,
                     "Datetime": "2019-03-05T14:34:54.234", "User": "Main Module",
                     "Telescope Name": "CTMO", "RA": 23.1, "Dec": 13.2, "Filter": "I",
                     "Exposure Time": 30.0, "Number of Exposures": 1, "Type of job": "Research",
                     "Type of object": "Galaxy", "Calibration Frames": "Yes", "Output": "Analysis"}
RECEIPT_KEYS = {"ID", "Status", "Priority", "Message"}
DISPATCH_TIMEOUT_S = 30    # the scheduler to hand an order to the telescope daemon
STOP_TIMEOUT_S = 30        # a daemon to stop after SIGTERM (it finishes requests, closes the dome)
NIGHT_TIMEOUT_S = 60       # the dome to open, then the observation to be taken, on the fast clock
# A simulated night, as tests/observatory.py runs one: dark at CTMO, 100 simulated s per real s,
# so that the manual's 30 s exposure and its calibration frames take about a second.
NIGHT_SETTINGS = {
    # The tests' evening (conftest.EVENING): the Moon is down, far from the manual's target.
    "Clock": {"Mode": "simulated", "Start": "2026-11-10T02:00:00+00:00", "Speed": 100},
    "Dome": {"Reopen Delay": 0, "Heartbeat Timeout": 3600},
    # Every plan made in the scheduler's planning process, under the unit's sandbox.
    "Scheduler": {"Heartbeat Interval": 30, "Planning Process From": 1},
    "Observing": {"Bias Frames": 2, "Dark Frames": 2},
    "Simulator": {"Width": 256, "Height": 256},
}


def address(service):
    """(IP, port) of *service* in the shipped config."""
    entry = SHIPPED_CONFIG[f"{service.capitalize()} Address"]
    return entry["IP"], entry["Port"]


def boot(staged, workdir):
    """Boot the container with the staged install; skip if this machine cannot."""
    binds = [f"--bind-ro={staged.path(PREFIX)}:{PREFIX}",
             f"--bind-ro={REPO}:{SOURCE_IN_CONTAINER}"]
    # The venv links to its base interpreter; outside /usr (which the container has) bind it too.
    python = staged.path(f"{INSTALL_VENV}/bin/python")
    base_prefix = subprocess.run([str(python), "-c", "import sys; print(sys.base_prefix)"],
                                 capture_output=True, text=True, check=True,
                                 timeout=COMMAND_TIMEOUT_S).stdout.strip()
    if not (base_prefix == "/usr" or base_prefix.startswith("/usr/")):
        binds.append(f"--bind-ro={base_prefix}")
    if os.path.exists(KILL) and KILL.startswith("/usr/"):
        # An empty file that nobody may read or run, over it (as nspawn's --inaccessible=, which
        # needs the host's systemd to be running).
        hidden = workdir / "no-kill"
        hidden.touch(mode=0o000)
        binds.append(f"--bind-ro={hidden}:{KILL}")
    return boot_container(workdir, binds)


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    skip_unless_containers_possible()
    staged = staged_install(tmp_path_factory)
    booted = boot(staged, tmp_path_factory.mktemp("container"))
    try:
        yield booted
    finally:
        booted.teardown()


@pytest.fixture(scope="module")
def installed(container):
    """`make install`'s root-only steps, run inside the container as root with a strict umask
    (as the staged install was): the services must start all the same."""
    make_steps = shlex.join(["make", "--no-print-directory", "-C", SOURCE_IN_CONTAINER,
                             "install-user", "install-dirs", "install-config", "install-init",
                             "BUILD=/tmp/toros-build", f"PREFIX={PREFIX}"])
    result = container.run("sh", "-c", f"umask {STRICT_UMASK:03o} && exec {make_steps}")
    assert result.returncode == 0, f"make install steps failed:\n{result.stdout}\n{result.stderr}"
    return container


@pytest.fixture(scope="module")
def started(installed):
    """The five services started by toros.target, enabled, as `make install` tells the operator
    to (`systemctl enable --now toros.target`).

    Starting a Type=notify unit waits for the daemon's READY=1, and the target waits for the
    five. Wanted by the enabled target, a unit also stays loaded once stopped, so that its exit
    status can be read.
    """
    result = installed.run("systemctl", "enable", "--now", TARGET, timeout=START_TIMEOUT_S)
    assert result.returncode == 0, \
        f"systemctl enable --now {TARGET} failed: {result.stderr}\n{installed.diagnostics(*SERVICES)}"
    return installed


def call_front_desk(container, service, work_order):
    """Send *work_order* to *service*'s front_desk over XML-RPC, from inside the container.

    Returns the answer, or {"Fault": code, "Message": text} when the daemon refuses.
    """
    ip, port = address(service)
    script = ("import json, sys, xmlrpc.client\n"
              f"proxy = xmlrpc.client.ServerProxy('http://{ip}:{port}/', allow_none=True)\n"
              "try:\n"
              "    answer = proxy.front_desk(json.loads(sys.argv[1]))\n"
              "except xmlrpc.client.Fault as fault:\n"
              "    answer = {'Fault': fault.faultCode, 'Message': fault.faultString}\n"
              "print(json.dumps(answer, default=str))\n")
    result = container.run(f"{INSTALL_VENV}/bin/python", "-c", script, json.dumps(work_order))
    assert result.returncode == 0, f"{result.stderr}\n{container.diagnostics(service)}"
    return json.loads(result.stdout)


def wait_for(check, what, timeout, diagnostics):
    """Poll *check* until it returns a true value; fail naming *what* after *timeout* s."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, \
            f"gave up after {timeout} s waiting for {what}\n{diagnostics()}"
        time.sleep(POLL_INTERVAL_S)
    return result


def unit_properties(container, unit, *names):
    """{name: value} of `systemctl show` properties of *unit*."""
    shown = container.output("systemctl", "show", "-p", ",".join(names), unit)
    return dict(line.split("=", 1) for line in shown.splitlines())


def timestamps(container, service, *names):
    """{name: int} of monotonic timestamps (µs) of *service*'s unit, such as
    ActiveEnterTimestampMonotonic (ready) or ExecMainStartTimestampMonotonic (started)."""
    return {name: int(value) for name, value in
            unit_properties(container, f"{service}.service", *names).items()}


def assert_started_in_order(container):
    """Each service started (ExecMainStart) only once those it is ordered after were ready
    (ActiveEnter): dome before telescope, the scheduler after the three others, the alerts
    daemon after the scheduler."""
    times = {service: timestamps(container, service, "ExecMainStartTimestampMonotonic",
                                 "ActiveEnterTimestampMonotonic") for service in SERVICES}
    ready = {service: times[service]["ActiveEnterTimestampMonotonic"] for service in SERVICES}
    started = {service: times[service]["ExecMainStartTimestampMonotonic"] for service in SERVICES}
    assert all(ready.values()) and all(started.values()), times
    assert ready["dome"] <= started["telescope"], times
    for service in ("dome", "telescope", "preprocessor"):
        assert ready[service] <= started["scheduler"], (service, times)
    assert ready["scheduler"] <= started["alerts"], times


def main_pids(container):
    """{service: MainPID} (0 when it does not run)."""
    return {service: unit_properties(container, f"{service}.service", "MainPID")["MainPID"]
            for service in SERVICES}


def unit_template_setting(service, key):
    """The value of *key* in systemd/<service>.service.in (the last assignment wins)."""
    values = re.findall(rf"^{key}=(.*)$", (REPO / "systemd" / f"{service}.service.in").read_text(),
                        re.MULTILINE)
    assert values, f"{service}.service.in has no {key}="
    return values[-1].strip()


def systemd_bytes(value):
    """A size as systemd reads it (K, M, G, T: powers of 1024), in bytes."""
    match = re.fullmatch(r"(\d+)([KMGT]?)", value)
    assert match, f"{value!r} is not a size in bytes, K, M, G or T"
    return int(match[1]) * 1024 ** " KMGT".index(match[2] or " ")


# Connects to 127.0.0.1:<port> from <source> (or any source: -) for each port; prints, per port,
# "accepted" or "dropped" (no answer in time) or the error.
CONNECT_SCRIPT = (
    "import json, socket, sys\n"
    "source, timeout, ports = sys.argv[1], float(sys.argv[2]), sys.argv[3:]\n"
    "results = {}\n"
    "for port in ports:\n"
    "    with socket.socket() as client:\n"
    "        client.settimeout(timeout)\n"
    "        if source != '-':\n"
    "            client.bind((source, 0))\n"
    "        try:\n"
    "            client.connect(('127.0.0.1', int(port)))\n"
    "            results[port] = 'accepted'\n"
    "        except TimeoutError:\n"
    "            results[port] = 'dropped'\n"
    "        except OSError as error:\n"
    "            results[port] = f'{type(error).__name__}: {error}'\n"
    "print(json.dumps(results))\n")


def connections_from(container, source, services):
    """{service: "accepted" | "dropped" | error} for a TCP connection from *source* to each
    service's address (127.0.0.1 in the shipped config)."""
    ports = [str(address(service)[1]) for service in services]
    result = container.run("python3", "-c", CONNECT_SCRIPT, source, str(CONNECT_TIMEOUT_S), *ports,
                           timeout=COMMAND_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    by_port = json.loads(result.stdout)
    return {service: by_port[port] for service, port in zip(services, ports)}


# Exits 0 when its own connection to itself on 127.0.0.1 is dropped, 3 when it is accepted.
FIREWALL_PROBE = (
    "import socket, sys\n"
    "server = socket.create_server(('127.0.0.1', 0))\n"
    "client = socket.socket()\n"
    f"client.settimeout({CONNECT_TIMEOUT_S})\n"
    "try:\n"
    "    client.connect(server.getsockname())\n"
    "except TimeoutError:\n"
    "    sys.exit(0)\n"
    "sys.exit(3)\n")


def ip_firewall_enforced(container):
    """Whether this container's systemd enforces IPAddressDeny= (cgroup BPF): a transient unit
    denied every address must not reach even itself."""
    result = container.run("systemd-run", "--wait", "--quiet", "-p", "IPAddressDeny=any",
                           "python3", "-c", FIREWALL_PROBE)
    return result.returncode == 0


def listening_sockets(pid):
    """(IP, port) of every TCP socket listening in the network namespace of *pid*."""
    listen_state = "0A"
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state != listen_state:
                continue
            hex_ip, hex_port = local.split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc shows addresses as native-endian 32-bit words.
            words = [raw[i:i + 4] for i in range(0, len(raw), 4)]
            packed = b"".join(word[::-1] if sys.byteorder == "little" else word for word in words)
            ip = ".".join(str(b) for b in packed) if len(packed) == 4 else packed.hex(":", 2)
            found.add((ip, int(hex_port, 16)))
    return found


# --- the install's root-only steps -------------------------------------------------------------

def test_install_creates_the_toros_system_user(installed):
    entry = installed.output("getent", "passwd", "toros").split(":")
    assert entry[0] == "toros" and entry[5] == STATE_DIR and entry[6] == "/usr/sbin/nologin", entry


def test_install_makes_the_config_readable_by_root_and_the_toros_group_only(installed):
    assert installed.output("stat", "-c", "%a %U %G", CONFIG_FILE) == "640 root toros"


def test_install_gives_the_data_and_log_directories_to_toros(installed):
    for directory in (STATE_DIR, f"{STATE_DIR}/data", LOG_DIR):
        assert installed.output("stat", "-c", "%U %G", directory) == "toros toros", directory


# --- the services under systemd ----------------------------------------------------------------

@pytest.mark.parametrize("service", SERVICES)
def test_service_is_active_after_start_and_runs_as_toros(started, service):
    unit = f"{service}.service"
    assert started.output("systemctl", "is-active", unit) == "active", started.diagnostics(service)
    main_pid = started.output("systemctl", "show", "--value", "-p", "MainPID", unit)
    assert started.output("ps", "-o", "user=", "-p", main_pid) == "toros"


@pytest.mark.parametrize("service", SERVICES)
def test_service_runs_with_the_units_memory_task_and_open_file_limits(started, service):
    unit = f"{service}.service"
    limit = unit_template_setting(service, "LimitNOFILE")
    shown = unit_properties(started, unit, "MemoryMax", "TasksMax", "LimitNOFILE", "LimitNOFILESoft")
    assert shown == {"MemoryMax": str(systemd_bytes(unit_template_setting(service, "MemoryMax"))),
                     "TasksMax": unit_template_setting(service, "TasksMax"),
                     "LimitNOFILE": limit, "LimitNOFILESoft": limit}, started.diagnostics(service)
    # The kernel's own view of the running daemon: soft and hard limit alike.
    main_pid = started.output("systemctl", "show", "--value", "-p", "MainPID", unit)
    limits = started.output("cat", f"/proc/{main_pid}/limits")
    open_files = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert open_files.split()[3:5] == [limit, limit], limits


def test_state_and_log_directories_stay_private_to_toros(started):
    for directory in (STATE_DIR, LOG_DIR):
        assert started.output("stat", "-c", "%a %U", directory) == "750 toros", directory


def test_daemons_listen_on_loopback_only(started):
    listening = listening_sockets(started.init_pid)
    for service in SERVICES:
        ip, port = address(service)
        assert ip == "127.0.0.1", f"the shipped config has {service} listen on {ip}"
        assert {entry for entry in listening if entry[1] == port} == {(ip, port)}, listening


@pytest.mark.parametrize("service", SERVICES)
def test_daemon_answers_a_status_work_order(started, service):
    health = call_front_desk(started, service, {"WOType": "Status"})
    assert health["Service"] == service
    assert health["Status"] == "running"


def test_the_dome_asks_the_kernel_whether_a_time_service_keeps_the_clock(started):
    """Under its unit's sandbox the dome daemon reads the kernel's word on the clock (this
    machine's kernel: the container shares it) and stays closed while no time service keeps
    it; under ProtectClock=yes, which the dome's unit leaves out, the same question is refused,
    and said so."""
    kernel = system_clock_sync()
    safety = call_front_desk(started, "dome", {"WOType": "Status"})["Devices"]["Safety"]
    assert safety["Clock"].startswith("synchronized" if kernel.synchronized
                                      else "NOT synchronized"), safety
    assert ("system clock not synchronized" in safety["Reason"]) == (not kernel.synchronized), \
        safety
    asked = ("from torosmanager.clock_sync import system_clock_sync\n"
             "print(system_clock_sync().describe())\n")
    refused = started.output("systemd-run", "--wait", "--pipe", "--quiet", "-p", "User=toros",
                             "-p", "ProtectClock=yes", f"{INSTALL_VENV}/bin/python", "-c", asked)
    assert refused.startswith("not known whether synchronized: adjtimex refused: Operation "
                              "not permitted"), refused


def test_dome_accepts_the_manuals_work_order(started):
    receipt = call_front_desk(started, "dome", MANUAL_DOME_ORDER)
    assert RECEIPT_KEYS <= receipt.keys(), receipt
    assert receipt["ID"] == MANUAL_DOME_ORDER["ID"]


def test_scheduler_hands_a_dome_order_to_the_dome_daemon(started):
    """The sandboxed daemons reach each other on loopback. (A Dome order is handed over at
    once; an Observation waits for its planned time tonight: the simulated night below.)"""
    order = {"ID": "handed-over", "WOType": "Dome", "User": "test", "Blink02": True}
    receipt = call_front_desk(started, "scheduler", order)
    assert RECEIPT_KEYS <= receipt.keys(), receipt
    query = {"WOType": "Status", "ID": order["ID"]}

    def known_to_the_dome():
        answer = call_front_desk(started, "dome", query)
        return "Fault" not in answer and answer

    at_dome = wait_for(known_to_the_dome, "the order to reach the dome daemon",
                       DISPATCH_TIMEOUT_S, lambda: started.diagnostics("scheduler", "dome"))
    assert at_dome["ID"] == order["ID"]


def test_the_container_has_no_kill_program_as_a_minimal_debian(container):
    for path in ("/bin/kill", "/usr/bin/kill"):
        assert container.run("test", "-x", path).returncode != 0, f"{path} is there"


def test_reload_reopens_the_log_in_the_same_process_without_bin_kill(started):
    """As after logrotate: the log file is moved away, `systemctl reload` makes the daemon open
    a new one under its name (issue 13: ExecReload=/bin/kill failed with 203/EXEC)."""
    unit, log = "dome.service", f"{LOG_DIR}/dome.log"
    before = started.output("systemctl", "show", "--value", "-p", "MainPID", unit)
    assert started.run("mv", log, f"{log}.1").returncode == 0
    result = started.run("systemctl", "reload", unit)
    assert result.returncode == 0, f"{result.stderr}\n{started.diagnostics('dome')}"
    assert started.output("systemctl", "is-active", unit) == "active", started.diagnostics("dome")
    assert started.output("systemctl", "show", "--value", "-p", "MainPID", unit) == before
    wait_for(lambda: started.run("test", "-f", log).returncode == 0, f"the dome daemon to reopen {log}",
             DISPATCH_TIMEOUT_S, lambda: started.diagnostics("dome"))
    assert started.output("stat", "-c", "%U", log) == "toros"


def test_the_target_started_the_five_dome_first_and_alerts_last(started):
    """Issue 13: `systemctl start scheduler telescope dome preprocessor` started the scheduler
    first, whose heartbeat then found no dome daemon ('Connection refused')."""
    assert started.output("systemctl", "is-active", TARGET) == "active"
    assert started.output("systemctl", "is-enabled", TARGET) == "enabled"
    assert_started_in_order(started)


def test_the_target_stops_the_five_scheduler_first_and_starts_and_restarts_them(started):
    """`systemctl stop toros.target` returns once the target is down; the five then stop (the
    target is ordered after them, so it stops first), while `start` and `restart` return once
    the five are ready."""
    result = started.run("systemctl", "stop", TARGET, timeout=START_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    for service in SERVICES:
        unit = f"{service}.service"
        wait_for(lambda: started.output("systemctl", "is-active", unit) == "inactive",
                 f"{unit} to stop", STOP_TIMEOUT_S, lambda: started.diagnostics(service))
        shown = unit_properties(started, unit, "Result", "ExecMainStatus")
        assert shown == {"Result": "success", "ExecMainStatus": "0"}, started.diagnostics(service)
    # The scheduler (ordered after the others) is stopped before the dome begins to stop.
    assert timestamps(started, "scheduler", "InactiveEnterTimestampMonotonic")["InactiveEnterTimestampMonotonic"] \
        <= timestamps(started, "dome", "ActiveExitTimestampMonotonic")["ActiveExitTimestampMonotonic"]

    result = started.run("systemctl", "start", TARGET, timeout=START_TIMEOUT_S)
    assert result.returncode == 0, f"{result.stderr}\n{started.diagnostics(*SERVICES)}"
    assert [started.output("systemctl", "is-active", f"{s}.service") for s in SERVICES] == \
        ["active"] * len(SERVICES), started.diagnostics(*SERVICES)
    assert_started_in_order(started)

    before = main_pids(started)
    result = started.run("systemctl", "restart", TARGET, timeout=START_TIMEOUT_S)
    assert result.returncode == 0, f"{result.stderr}\n{started.diagnostics(*SERVICES)}"
    after = main_pids(started)
    assert all(after[s] != "0" and after[s] != before[s] for s in SERVICES), (before, after)
    assert_started_in_order(started)


def test_restarted_daemons_load_the_earth_rotation_table_from_the_toros_users_cache(started):
    """The sandbox (ProtectSystem=strict, ProtectHome=yes) leaves the toros user its cache below
    its home, the state directory: the daemons save astropy's parsed table there once, and
    daemons started again load it instead of parsing astropy's files: the telescope the table,
    the others, which only report its age, the age. (The whole target is restarted, which
    keeps the five's start order for the tests that check it.)"""
    cache = f"{STATE_DIR}/.cache/toros/iers-table.npz"
    wait_for(lambda: started.run("test", "-f", cache).returncode == 0, f"{cache} to be written",
             START_TIMEOUT_S, lambda: started.diagnostics(*SERVICES))
    assert started.output("stat", "-c", "%U %a", cache) == "toros 600"
    result = started.run("systemctl", "restart", TARGET, timeout=START_TIMEOUT_S)
    assert result.returncode == 0, f"{result.stderr}\n{started.diagnostics(*SERVICES)}"
    for service, pid in main_pids(started).items():
        loaded = (f"[{pid}] INFO Earth-rotation table loaded from {cache}"
                  if service == "telescope" else
                  f"[{pid}] INFO Earth-rotation table's age read from its cache {cache}")
        wait_for(lambda: loaded in started.output("cat", f"{LOG_DIR}/{service}.log"),
                 f"the {service} daemon to log {loaded!r}", START_TIMEOUT_S,
                 lambda: started.diagnostics(service))


def test_operators_use_toros_and_journalctl_without_sudo(started):
    """`make install-operators OPERATORS=...` (what `sudo make install OPERATORS=...` runs): the
    users join the groups toros and systemd-journal, and in a new session (setpriv reads their
    groups afresh, as a login does) read the configuration and the daemons' journal."""
    for user in OPERATORS:
        assert started.run("useradd", "--create-home", "--user-group", user).returncode == 0
    alice = OPERATORS[0]
    as_alice = ("setpriv", f"--reuid={alice}", f"--regid={alice}", "--init-groups", "--",
                "env", f"HOME=/home/{alice}")
    status = (*as_alice, f"{PREFIX}/bin/toros", "status", "--to", "dome")
    refused = started.run(*status)
    assert refused.returncode != 0 and "toros group" in refused.stderr, refused

    make_operators = ("make", "--no-print-directory", "-C", SOURCE_IN_CONTAINER, f"PREFIX={PREFIX}",
                      "install-operators")
    result = started.run(*make_operators, f"OPERATORS={alice} no-such-user")
    assert result.returncode != 0 and "no user 'no-such-user'" in result.stderr, result
    assert "toros" not in started.output("id", "-nG", alice).split()

    result = started.run(*make_operators, f"OPERATORS={' '.join(OPERATORS)}")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    for user in OPERATORS:
        assert {"toros", "systemd-journal"} <= set(started.output("id", "-nG", user).split())
        assert f"added {user}" in result.stdout and "next login" in result.stdout

    answered = started.run(*status)
    assert answered.returncode == 0, answered
    journal = started.run(*as_alice, "journalctl", "--no-pager", "-n", "20", "-u", "dome.service")
    assert journal.returncode == 0 and "toros-dome" in journal.stdout, journal


@pytest.mark.parametrize("service", SERVICES)
def test_service_stops_cleanly_with_exit_status_0(started, service):
    unit = f"{service}.service"
    result = started.run("systemctl", "stop", unit)
    assert result.returncode == 0, result.stderr
    assert started.output("systemctl", "is-active", unit) == "inactive", started.diagnostics(service)
    shown = unit_properties(started, unit, "Result", "ExecMainCode", "ExecMainStatus")
    # ExecMainCode 1 is CLD_EXITED: the daemon exited by itself on SIGTERM, not killed by it.
    assert shown == {"Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0"}, \
        started.diagnostics(service)


def test_a_bad_config_fails_with_status_78_and_is_not_restarted(started):
    """RestartPreventExitStatus=78: systemd must not restart a daemon whose config is unusable."""
    unit = "dome.service"
    drop_in = f"/run/systemd/system/{unit}.d/bad-config.conf"
    bad_config = "/run/toros-bad.conf.yaml"
    exec_start = f"{INSTALL_VENV}/bin/toros-dome --config {bad_config}"
    setup = (f"printf 'No Such Setting: 1\\n' > {bad_config} && chmod 0644 {bad_config} && "
             f"mkdir -p $(dirname {drop_in}) && "
             f"printf '[Service]\\nExecStart=\\nExecStart={exec_start}\\n' > {drop_in} && "
             "systemctl daemon-reload")
    assert started.run("sh", "-c", setup).returncode == 0
    try:
        # restart, not start: a dome still running from the target would make start a no-op
        # (the test failed so when run alone).
        assert started.run("systemctl", "restart", unit).returncode != 0
        shown = unit_properties(started, unit, "ActiveState", "SubState", "ExecMainStatus", "NRestarts")
        # A restart would show SubState=auto-restart (waiting RestartSec) and then NRestarts > 0.
        assert shown == {"ActiveState": "failed", "SubState": "failed", "ExecMainStatus": "78",
                         "NRestarts": "0"}, started.diagnostics("dome")
    finally:
        started.run("sh", "-c", f"rm -f {drop_in} {bad_config} && systemctl daemon-reload "
                                f"&& systemctl reset-failed {unit}")


def test_systemds_watchdog_restarts_a_dome_daemon_that_hangs(started):
    """WatchdogSec=: under its sandbox the dome daemon tells the watchdog it is alive, often
    enough not to be killed; stopped (SIGSTOP), it is killed and started again by systemd."""
    unit = "dome.service"
    assert unit_properties(started, unit, "WatchdogUSec") == {"WatchdogUSec": "2min"}
    drop_in = f"/run/systemd/system/{unit}.d/watchdog-test.conf"
    try:
        started.run("sh", "-c", f"mkdir -p {os.path.dirname(drop_in)} && printf "
                                f"'[Service]\\nWatchdogSec={WATCHDOG_TEST_SECONDS}\\n"
                                f"TimeoutAbortSec={WATCHDOG_TEST_SECONDS}\\n' > {drop_in} "
                                "&& systemctl daemon-reload")
        result = started.run("systemctl", "restart", unit, timeout=START_TIMEOUT_S)
        assert result.returncode == 0, f"{result.stderr}\n{started.diagnostics('dome')}"
        time.sleep(3 * WATCHDOG_TEST_SECONDS)
        shown = unit_properties(started, unit, "ActiveState", "NRestarts", "MainPID")
        assert shown["ActiveState"] == "active" and shown["NRestarts"] == "0", \
            started.diagnostics("dome")
        hung = shown["MainPID"]
        started.run(f"{INSTALL_VENV}/bin/python", "-c",
                    f"import os, signal; os.kill({hung}, signal.SIGSTOP)")
        wait_for(lambda: _restarted(started, unit, hung),
                 "systemd to restart the hung dome daemon", WATCHDOG_RESTART_TIMEOUT_S,
                 lambda: started.diagnostics("dome"))
        log = started.output("journalctl", "--no-pager", "-u", unit)
        assert "Watchdog timeout" in log, log[-3000:]
    finally:
        started.run("sh", "-c", f"rm -f {drop_in} && systemctl daemon-reload && "
                                f"systemctl reset-failed {unit}; systemctl restart {unit}",
                    timeout=START_TIMEOUT_S)


def _restarted(container, unit, old_pid):
    """Whether *unit* runs again, in a new process, after one restart."""
    shown = unit_properties(container, unit, "ActiveState", "NRestarts", "MainPID")
    return (shown["ActiveState"] == "active" and shown["NRestarts"] == "1"
            and shown["MainPID"] not in ("0", old_pid))


def test_a_simulated_night_writes_fits_frames_into_the_data_directory(started):
    """The whole chain under the sandbox: scheduler, dome, telescope writing FITS into
    /var/lib/toros/data (the only writable data path), and the hand-over to the preprocessor."""
    # The operator edits the installed config (in place: it stays 0640 root:toros).
    reconfigure = ("import json, sys, yaml\n"
                   "from datetime import datetime, timezone\n"
                   "path, settings = sys.argv[1], json.loads(sys.argv[2])\n"
                   "settings['Clock']['Anchor'] = datetime.now(timezone.utc).isoformat()\n"
                   "config = yaml.safe_load(open(path))\n"
                   "for section, values in settings.items():\n"
                   "    config.setdefault(section, {}).update(values)\n"
                   "yaml.safe_dump(config, open(path, 'w'), sort_keys=False)\n")
    result = started.run(f"{INSTALL_VENV}/bin/python", "-c", reconfigure, CONFIG_FILE,
                         json.dumps(NIGHT_SETTINGS))
    assert result.returncode == 0, result.stderr
    units = [f"{service}.service" for service in SERVICES]
    result = started.run("systemctl", "restart", *units, timeout=START_TIMEOUT_S)
    assert result.returncode == 0, f"{result.stderr}\n{started.diagnostics(*SERVICES)}"

    def diagnostics():
        return started.diagnostics("dome", "telescope")

    def status(service, order_id=None):
        query = {"WOType": "Status"} if order_id is None else {"WOType": "Status", "ID": order_id}
        return call_front_desk(started, service, query)

    wait_for(lambda: status("dome")["Devices"]["Safety"]["May Open"],
             "the dome to be allowed to open", NIGHT_TIMEOUT_S, diagnostics)
    call_front_desk(started, "dome", {"ID": "open", "WOType": "Dome", "Shutter": "Open"})
    wait_for(lambda: status("dome", "open").get("Status") == "done",
             "the dome to open", NIGHT_TIMEOUT_S, diagnostics)

    order = dict(OBSERVATION_ORDER, ID="201")
    call_front_desk(started, "scheduler", order)
    taken = wait_for(lambda: (answer := status("telescope", order["ID"])).get("Status") == "done" and answer,
                     "the telescope to take the observation", NIGHT_TIMEOUT_S, diagnostics)

    files = taken["Progress"]["Files"]
    assert files and all(path.startswith(f"{STATE_DIR}/data/") for path in files), files
    assert started.output("stat", "-c", "%U %a", *files).splitlines() == ["toros 640"] * len(files)
    handed = status("preprocessor", taken["Progress"]["Preprocessing ID"])
    assert handed["Work Order"]["File Location"] == files, handed
    # Planned in the child process, not in the daemon after the child failed.
    log = started.output("journalctl", "--no-pager", "-u", "scheduler.service")
    assert "starting the planning process" in log, log[-3000:]
    assert "planning each alone" not in log and "ended unexpectedly" not in log, log[-3000:]


def test_loopback_only_drop_in_keeps_the_daemons_on_loopback_and_drops_other_addresses(started):
    """`make install-loopback-only` (IPAddressDeny=any, IPAddressAllow=localhost): every daemon
    still answers on 127.0.0.1 and reaches the others, while a connection from another address
    of the machine goes unanswered; `make uninstall-loopback-only` takes it away again."""
    units = [f"{service}.service" for service in SERVICES]
    make_in_container = ("make", "--no-print-directory", "-C", SOURCE_IN_CONTAINER, f"PREFIX={PREFIX}")
    result = started.run("ip", "address", "add", f"{OTHER_ADDRESS}/32", "dev", "lo")
    assert result.returncode == 0, result.stderr
    try:
        result = started.run("systemctl", "start", *units, timeout=START_TIMEOUT_S)
        assert result.returncode == 0, f"{result.stderr}\n{started.diagnostics(*SERVICES)}"
        # Without the drop-in, the other address gets through: what follows is the drop-in's doing.
        assert connections_from(started, OTHER_ADDRESS, SERVICES) == dict.fromkeys(SERVICES, "accepted")

        result = started.run(*make_in_container, "install-loopback-only")
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        result = started.run("systemctl", "restart", *units, timeout=START_TIMEOUT_S)
        assert result.returncode == 0, f"{result.stderr}\n{started.diagnostics(*SERVICES)}"

        for unit in units:
            shown = unit_properties(started, unit, "IPAddressDeny", "IPAddressAllow", "DropInPaths")
            # (systemd lists the prefixes in no fixed order)
            assert set(shown["IPAddressDeny"].split()) == {"0.0.0.0/0", "::/0"}, shown
            assert set(shown["IPAddressAllow"].split()) == {"127.0.0.0/8", "::1/128"}, shown
            assert shown["DropInPaths"] == f"/etc/systemd/system/{unit}.d/loopback-only.conf", shown
            security = started.output("systemd-analyze", "security", "--no-pager", unit)
            score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security)
            assert score and float(score[1]) < MAX_EXPOSURE, security

        for service in SERVICES:
            health = call_front_desk(started, service, {"WOType": "Status"})
            assert health["Service"] == service and health["Status"] == "running", health
        assert connections_from(started, "-", SERVICES) == dict.fromkeys(SERVICES, "accepted")
        # The daemons reach each other: the scheduler hands a Dome order to the dome daemon.
        order = {"ID": "handed-over-on-loopback", "WOType": "Dome", "User": "test", "Blink03": True}
        receipt = call_front_desk(started, "scheduler", order)
        assert RECEIPT_KEYS <= receipt.keys(), receipt
        wait_for(lambda: "Fault" not in call_front_desk(started, "dome", {"WOType": "Status",
                                                                          "ID": order["ID"]}),
                 "the order to reach the dome daemon", DISPATCH_TIMEOUT_S,
                 lambda: started.diagnostics("scheduler", "dome"))

        from_other = connections_from(started, OTHER_ADDRESS, SERVICES)
        if from_other != dict.fromkeys(SERVICES, "dropped") and not ip_firewall_enforced(started):
            pytest.skip("this machine's systemd cannot filter IP addresses (no cgroup BPF): the "
                        f"drop-in's properties are set, but not enforced: {from_other}")
        assert from_other == dict.fromkeys(SERVICES, "dropped")
    finally:
        result = started.run(*make_in_container, "uninstall-loopback-only")
        started.run("systemctl", "restart", *units, timeout=START_TIMEOUT_S)
        started.run("ip", "address", "del", f"{OTHER_ADDRESS}/32", "dev", "lo")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    for unit in units:
        assert unit_properties(started, unit, "IPAddressDeny", "DropInPaths") == \
            {"IPAddressDeny": "", "DropInPaths": ""}

