"""Benchmark: the scheduler's front desk under concurrent clients, beside a bare stdlib server
and the disk's own fsync rate, side by side in one run.

``--clients`` client *processes* (default 16; processes, so that the clients are not held by one
GIL) call ``front_desk`` over HTTP on 127.0.0.1 for ``--duration`` seconds against:

* **bare stdlib server**: a threaded :class:`xmlrpc.server.SimpleXMLRPCServer` in a process of
  its own whose ``front_desk`` returns a constant receipt: no validation, no journal, no log;
  HTTP/1.1, so that it keeps a connection its client keeps, as the daemons' server does.
* **our server, front_desk returning a constant**: the daemons' own
  :class:`~torosmanager.server.FrontDeskServer` (default ``Server`` settings) returning the
  same constant: what their HTTP and XML-RPC layer costs apart from the front desk's work.
* **scheduler, Observation orders**: the real ``toros-scheduler`` daemon, started as the tests
  start it (:func:`torosmanager.launcher.local_config`, :class:`DaemonProcess`, a simulated
  clock on the tests' evening at CTMO, ``Manage Dome: False``), its journal in a temporary
  directory on the disk (``--workdir``); every request a new, distinct, valid order, answered
  only after its journal commit (``synchronous=FULL``).
* **scheduler, order Status**: ``{"WOType": "Status", "ID": ...}`` of random orders accepted
  in the same repeat.
* **scheduler, health Status**: ``{"WOType": "Status"}``.
* **disk fsync**: write 64 bytes and ``os.fsync`` in a loop, in the same directory, in one
  thread, and in ``--clients`` threads (a file each).

Each client system is driven with keep-alive off (a new TCP connection per request, as issue 12
measured) and with keep-alive on (one persistent ``http.client.HTTPConnection`` per client,
which reconnects by itself when the server closes it: the table counts connections opened per
request). The systems are alternated within each of ``--repeat`` repeats; each repeat starts a
fresh scheduler with an empty journal. The table shows the median and the spread over repeats,
not the best. Linux only (``/proc``)::

    .venv/bin/python bench/front_desk.py                      # 3 repeats of 3 s each: about 2 min
    .venv/bin/python bench/front_desk.py --duration 5 --repeat 5 --clients 32
    .venv/bin/python bench/front_desk.py --profile 5          # also py-spy the scheduler 5 s
    .venv/bin/python bench/front_desk.py --profile 5 --update-docs   # and rewrite its part of
                                                                      # docs/benchmarks.md

bench/README.md explains the choices made to keep the comparison fair.
"""

import argparse
import collections
import http.client
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from array import array
from datetime import datetime, timezone
from urllib.parse import urlsplit

from cpu import Conditions, machine_line
from daemons import EVENING, idle_pool_thread, process_cpu, raw_stacks
from docs_section import DOCS, update_docs
from torosmanager.examples import MANUAL_OBSERVATION

DEFAULT_CLIENTS = 16
DEFAULT_DURATION = 3.0
DEFAULT_REPEAT = 3
DEFAULT_WORKDIR = "/var/tmp"
#: The issue's goal.
GOAL_ORDERS_PER_SECOND = 1000
GOAL_P99_MS = 50.0
GOAL_VS_BARE = 0.8
#: Bytes written before each fsync of the disk loop (an SQLite WAL frame is a page, 4 KiB,
#: plus a header; a small write is what the question "how many fsyncs a second" needs).
FSYNC_BYTES = 64
#: Seconds a client waits for an answer before counting an error.
CLIENT_TIMEOUT = 60.0
#: A fresh daemon counts as settled when it uses less than this share of a core over
#: IDLE_WINDOW seconds (waited for at most SETTLE_TIMEOUT seconds).
IDLE_CPU, IDLE_WINDOW, SETTLE_TIMEOUT = 0.05, 0.5, 30.0
#: A receipt like the scheduler's, which the bare server returns for every call.
BARE_RECEIPT = {"ID": "bench", "WOType": "Observation", "Status": "queued", "Priority": 5.0,
                "Message": "queued; waiting for the next plan", "Service": "bare"}

BARE = "bare stdlib server"
OURS = "our server, front_desk returning a constant"
ORDERS = "scheduler: Observation orders"
STATUS = "scheduler: Status of one order"
HEALTH = "scheduler: health Status"
FSYNC_1 = "disk: write + fsync, 1 thread"
FSYNC_N = "disk: write + fsync, {n} threads"


# --- the constant servers (processes of their own: `--bare-server PORT`, `--ours-server PORT`) --

def bare_server(port):
    """A threaded stdlib XML-RPC server whose front_desk returns a constant."""
    import socketserver
    from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

    from torosmanager.server import LISTEN_BACKLOG

    class BareServer(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
        daemon_threads = True
        allow_reuse_address = True
        # As ours: with the stdlib's backlog of 5, connections beyond it are dropped and
        # retried by the client's kernel after 1 s, which would measure the backlog only.
        request_queue_size = LISTEN_BACKLOG

    class BareHandler(SimpleXMLRPCRequestHandler):
        # As ours: a client keeping its connection (the keep-alive rows) keeps it here too;
        # "Connection: close" (the other rows) still closes it after the answer.
        protocol_version = "HTTP/1.1"

    server = BareServer(("127.0.0.1", port), requestHandler=BareHandler, logRequests=False,
                        allow_none=True)
    server.register_function(lambda work_order: BARE_RECEIPT, "front_desk")
    return server


def our_server(port):
    """The daemons' own server (:class:`~torosmanager.server.FrontDeskServer`, with the default
    ``Server`` settings) whose front_desk returns the bare server's constant: what the HTTP
    and XML-RPC layer of a daemon costs, without the work the front desk does."""
    from torosmanager.config import default_config
    from torosmanager.handler import Handler
    from torosmanager.server import FrontDeskServer

    config = default_config()
    settings = config["Server"]
    server = FrontDeskServer("bench", "127.0.0.1", port,
                             request_limit=Handler.request_limit(config),
                             request_timeout=settings["Request Timeout"],
                             max_connections=settings["Max Connections"],
                             concurrent_requests=settings["Concurrent Requests"])
    server.publish(lambda work_order: BARE_RECEIPT)
    return server


def serve_until_sigterm(server):
    """Say "ready" (the server listens), then serve until SIGTERM."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print("ready", flush=True)
    server.serve_forever()


def start_server(option, port):
    """``front_desk.py --bare-server PORT`` or ``--ours-server PORT``, once it listens."""
    process = subprocess.Popen([sys.executable, os.path.abspath(__file__), option, str(port)],
                               stdout=subprocess.PIPE, text=True)
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError(f"the server of {option} did not start")
    return process


# --- the scheduler ----------------------------------------------------------------------------

def start_scheduler(directory):
    """The real scheduler daemon with its journal in *directory*; returns (daemon, url)."""
    from torosmanager.config import address_key, load_config
    from torosmanager.launcher import DaemonProcess, local_config

    clock = {"Mode": "simulated", "Start": EVENING.isoformat(),
             "Anchor": datetime.now(timezone.utc).isoformat(), "Speed": 1.0}
    path = local_config(directory, {"Clock": clock, "Scheduler": {"Manage Dome": False}})
    daemon = DaemonProcess("scheduler", path).start()
    wait_idle(daemon.pid)
    return daemon, urlsplit(load_config(path)[address_key("scheduler")]["HTTP"]).port


def wait_idle(pid, timeout=SETTLE_TIMEOUT):
    """Wait until *pid* has finished starting (it reads its Earth-rotation table in a thread
    after READY=1, and its planning process starts): until it and its child processes use
    under IDLE_CPU of a core over IDLE_WINDOW seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = process_cpu(pid)
        time.sleep(IDLE_WINDOW)
        if process_cpu(pid) - before < IDLE_CPU * IDLE_WINDOW:
            return


def observation(order_id, rng):
    """A distinct, valid Observation order: the manual's, near its target (high that evening)."""
    order = dict(MANUAL_OBSERVATION)
    order.update({"ID": order_id, "RA": round(346.5 + rng.uniform(-5, 5), 6),
                  "Dec": round(13.2 + rng.uniform(-5, 5), 6)})
    return order


# --- the clients ------------------------------------------------------------------------------

class CountingConnection(http.client.HTTPConnection):
    """An HTTP connection that counts the TCP connections it opens."""

    opened = 0

    def connect(self):
        CountingConnection.opened += 1
        super().connect()


def client(kind, port, index, keep_alive, tag, known, ready, go, stop_at, results):
    """One client process: call front_desk in a loop from *go* until *stop_at*; put its
    latencies, counts and CPU time on *results*."""
    rng = random.Random(f"{tag}-{index}")
    latencies = array("d")
    errors = collections.Counter()
    accepted = 0
    connection = None
    headers = {"Content-Type": "text/xml"}
    if not keep_alive:
        headers["Connection"] = "close"
    ready.put(index)
    go.wait()
    before = os.times()
    deadline = stop_at.value
    last = time.monotonic()
    n = 0
    while time.monotonic() < deadline:
        if kind == "orders":
            order = observation(f"{tag}-{index}-{n}", rng)
        elif kind == "status":
            worker, count = rng.choice(known)
            order = {"WOType": "Status", "ID": f"{worker}-{rng.randrange(count)}"}
        elif kind == "health":
            order = {"WOType": "Status"}
        else:  # the bare server: the same order as the scheduler gets
            order = observation(f"{tag}-{index}-{n}", rng)
        n += 1
        body = xmlrpc.client.dumps((order,), "front_desk", allow_none=True).encode()
        began = time.monotonic()
        try:
            if connection is None:
                connection = CountingConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
            connection.request("POST", "/RPC2", body, headers)
            answer = connection.getresponse()
            data = answer.read()
            ended = time.monotonic()
            if not keep_alive:
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException) as error:
            errors[type(error).__name__] += 1
            if connection is not None:
                connection.close()
                connection = None
            continue
        last = ended
        if answer.status != 200:
            errors[f"HTTP {answer.status}"] += 1
            continue
        try:
            receipt = xmlrpc.client.loads(data)[0][0]
        except xmlrpc.client.Fault as fault:
            errors[f"Fault {fault.faultCode}"] += 1
            continue
        if kind == "orders" and receipt.get("Status") != "queued":
            errors[f"receipt {receipt.get('Status')}"] += 1
            continue
        accepted += kind == "orders"
        latencies.append(ended - began)
    after = os.times()
    if connection is not None:
        connection.close()
    results.put({"index": index, "latencies": latencies.tobytes(), "errors": dict(errors),
                 "last": last, "opened": CountingConnection.opened, "accepted": accepted,
                 "prefix": f"{tag}-{index}",
                 "cpu": (after.user - before.user) + (after.system - before.system)})


def drive(kind, port, server_pid, arguments, keep_alive, tag, known=None):
    """Run *arguments.clients* client processes against one server; one measurement."""
    context = multiprocessing.get_context("fork")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    stop_at = context.Value("d", 0.0)
    workers = [context.Process(target=client, args=(kind, port, i, keep_alive, tag, known, ready,
                                                    go, stop_at, results))
               for i in range(arguments.clients)]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=60)
    cpu_before = process_cpu(server_pid)
    started = time.monotonic()
    stop_at.value = started + arguments.duration
    go.set()
    answers = [results.get(timeout=arguments.duration + CLIENT_TIMEOUT + 30) for _ in workers]
    server_cpu = process_cpu(server_pid) - cpu_before
    for worker in workers:
        worker.join()
    latencies = array("d")
    errors = collections.Counter()
    for answer in answers:
        latencies.frombytes(answer["latencies"])
        errors.update(answer["errors"])
    elapsed = max(answer["last"] for answer in answers) - started
    count = len(latencies)
    return {"rate": count / elapsed, "count": count, **percentiles(latencies),
            "errors": sum(errors.values()), "error kinds": dict(errors),
            "connections": sum(a["opened"] for a in answers) / max(count + sum(errors.values()), 1),
            "server cpu": server_cpu / max(count, 1),
            "client cpu": sum(a["cpu"] for a in answers) / max(count, 1),
            "known": [(a["prefix"], a["accepted"]) for a in answers if a["accepted"]]}


def percentiles(seconds):
    """p50, p99 and max of *seconds*, in milliseconds (nearest rank)."""
    if not seconds:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(seconds)

    def rank(p):
        return ordered[min(len(ordered) - 1, max(0, int(round(p * len(ordered) + 0.5)) - 1))]
    return {"p50": rank(0.50) * 1e3, "p99": rank(0.99) * 1e3, "max": ordered[-1] * 1e3}


# --- the disk ---------------------------------------------------------------------------------

def fsync_loop(directory, threads, duration):
    """write + fsync of FSYNC_BYTES in a loop in *threads* threads, a file each."""
    latencies = [array("d") for _ in range(threads)]
    go = threading.Barrier(threads + 1)
    deadline = [0.0]

    def loop(number):
        path = os.path.join(directory, f"fsync-{number}")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        payload = b"x" * FSYNC_BYTES
        try:
            go.wait()
            while time.monotonic() < deadline[0]:
                began = time.monotonic()
                os.write(descriptor, payload)
                os.fsync(descriptor)
                latencies[number].append(time.monotonic() - began)
        finally:
            os.close(descriptor)
            os.unlink(path)

    workers = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    started = time.monotonic()
    deadline[0] = started + duration
    go.wait()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    every = array("d")
    for each in latencies:
        every.extend(each)
    return {"rate": len(every) / elapsed, "count": len(every), **percentiles(every),
            "errors": 0, "connections": None, "server cpu": None, "client cpu": None}


# --- py-spy -----------------------------------------------------------------------------------

def profile(arguments, workdir):
    """Orders (keep-alive off) into a fresh scheduler while py-spy samples it; a summary."""
    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.access(py_spy, os.X_OK):
        return "py-spy is not installed (`.venv/bin/pip install py-spy`): no profile."
    directory = tempfile.mkdtemp(prefix="profile-", dir=workdir)
    daemon, port = start_scheduler(directory)
    raw = os.path.join(directory, "py-spy.txt")
    try:
        spy = subprocess.Popen([py_spy, "record", "--pid", str(daemon.pid), "--duration",
                                str(int(arguments.profile)), "--rate", "100", "--format", "raw",
                                "--full-filenames", "--output", raw, "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        options = argparse.Namespace(**{**vars(arguments), "duration": arguments.profile})
        result = drive("orders", port, daemon.pid, options, False, "profile")
        spy.wait(timeout=60)
        with open(raw, encoding="utf-8") as stream:
            stacks = raw_stacks(stream)
    finally:
        daemon.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return summarize_profile(stacks, result)


#: The dispatcher's thread: everything in it counts as its own (its journal reads and writes,
#: planning, messages), whatever frame is innermost.
DISPATCHER = "/torosmanager/scheduler/dispatcher.py"
#: For the server's thread and its workers, where a sample is, by the innermost of these
#: frames it holds.
PROFILE_PARTS = (
    ("the journal (sqlite3, commits with fsync)", ("/torosmanager/journal.py",)),
    ("validation (workorders.py)", ("/torosmanager/workorders.py",)),
    ("logging", ("/logging/",)),
    ("XML-RPC parse and answer", ("/xmlrpc/", "/torosmanager/xmlrpc_call.py", "/xml/etree/")),
    ("HTTP and sockets (the server, the selector)", ("/torosmanager/server.py", "/http/",
                                                      "/email/", "/selectors.py",
                                                      "/socket.py")),
    ("the rest of ours (the front desk, the handler)", ("/torosmanager/",)),
)


def summarize_profile(stacks, result):
    """Samples by part (the innermost listed frame decides) and the top leaf functions."""
    total = idle = 0
    parts = collections.Counter()
    leaves = collections.Counter()
    for stack, count in stacks:
        count = int(count)
        if idle_pool_thread(stack):
            idle += count
            continue
        frames = stack.split(";")
        leaf = frames[-1]
        total += count
        for prefix in (os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       os.path.dirname(os.__file__)):
            leaf = leaf.replace(prefix + "/", "")
        leaves[leaf] += count
        part = "other"
        if any(DISPATCHER in frame for frame in frames):
            part = "dispatcher thread (journal reads and writes, planning, messages)"
            frames = []
        for frame in reversed(frames):
            found = next((name for name, marks in PROFILE_PARTS
                          if any(mark in frame for mark in marks)), None)
            if found:
                part = found
                break
        parts[part] += count
    lines = [f"py-spy, {total} samples of the scheduler's busy threads (100/s) while "
             f"{result['rate']:.0f} orders/s (p99 {result['p99']:.0f} ms) were accepted "
             f"(and {idle} of threads waiting, the server's in its selector or a worker for "
             "work, left out):", "",
             "| where (innermost frame of ours or the stdlib's) | share of samples |",
             "|---|---:|"]
    for name, count in parts.most_common():
        lines.append(f"| {name} | {100 * count / max(total, 1):.0f} % |")
    lines += ["", "| leaf function | share of samples |", "|---|---:|"]
    for frame, count in leaves.most_common(12):
        lines.append(f"| `{frame}` | {100 * count / max(total, 1):.1f} % |")
    return "\n".join(lines)


# --- the table --------------------------------------------------------------------------------

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fastest(rates, *systems):
    """The highest median rate among *systems* (any keep-alive setting): every ratio is taken
    against the fastest baseline in the table, or ``None`` when none was measured."""
    return max((rate for (system, _), rate in rates.items() if system in systems),
               default=None)


def table(runs, clients):
    """The Markdown table: medians over repeats, the spread of the rate, ratios from the
    medians shown."""
    header = ("system", "keep-alive", "requests/s (median)", "spread over repeats (min–max)",
              "p50 ms", "p99 ms", "max ms", "TCP connections per request", "errors",
              "server CPU ms/request", "clients' CPU ms/request",
              "÷ fastest bare server requests/s", "÷ fastest fsync/s")
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    # Whole requests a second, as shown: every ratio is of two numbers in the table.
    rates = {key: round(median([r["rate"] for r in values])) for key, values in runs.items()}
    bare, fsync_rate = fastest(rates, BARE), fastest(rates, FSYNC_1, FSYNC_N)
    for (system, keep_alive), values in runs.items():
        rate = rates[(system, keep_alive)]

        def cell(key, scale=1.0, digits=1):
            value = median([r[key] for r in values])
            return "—" if value is None else f"{value * scale:.{digits}f}"
        name = system.format(n=clients)
        lines.append("| " + " | ".join((
            name, "—" if keep_alive is None else ("on" if keep_alive else "off"),
            f"{rate:.0f}",
            f"{min(r['rate'] for r in values):.0f}–{max(r['rate'] for r in values):.0f}",
            cell("p50"), cell("p99"), f"{max(r['max'] for r in values):.0f}",
            cell("connections", digits=2),
            "—" if keep_alive is None else str(sum(r["errors"] for r in values)),
            cell("server cpu", 1e3, 2), cell("client cpu", 1e3, 2),
            f"{rate / bare:.2f}" if system != BARE and keep_alive is not None and bare else "—",
            f"{rate / fsync_rate:.2f}" if system == ORDERS and fsync_rate else "—")) + " |")
    return "\n".join(lines), rates


def verdict(runs, rates):
    """Whether the issue's goal is met, for each keep-alive setting, and by how much."""
    lines = []
    for keep_alive in (False, True):
        key = (ORDERS, keep_alive)
        if key not in runs:
            continue
        rate, bare = rates[key], fastest(rates, BARE)
        p99 = median([r["p99"] for r in runs[key]])
        checks = [
            (rate >= GOAL_ORDERS_PER_SECOND,
             f"{rate:.0f} orders/s against ≥ {GOAL_ORDERS_PER_SECOND} "
             f"({rate / GOAL_ORDERS_PER_SECOND:.2f}× the goal)"),
            (p99 < GOAL_P99_MS, f"p99 {p99:.0f} ms against < {GOAL_P99_MS:.0f} ms "
                                f"({p99 / GOAL_P99_MS:.1f}× the limit)"),
            (rate / bare >= GOAL_VS_BARE, f"{rate / bare:.2f}× the bare server's "
                                          f"{bare:.0f} requests/s against ≥ {GOAL_VS_BARE}×"),
        ]
        met = all(ok for ok, _ in checks)
        lines.append(f"- Keep-alive {'on' if keep_alive else 'off'}: goal "
                     f"{'MET' if met else 'NOT MET'}: " + "; ".join(
                         f"{text} ({'met' if ok else 'not met'})" for ok, text in checks) + ".")
    return "\n".join(lines)


def filesystem_of(path):
    """The device and file system type holding *path*, from /proc/mounts."""
    best = ("?", "?", "")
    try:
        with open("/proc/mounts", encoding="utf-8") as stream:
            for line in stream:
                device, mount, kind = line.split()[:3]
                if os.path.realpath(path).startswith(mount) and len(mount) > len(best[2]):
                    best = (device, kind, mount)
    except OSError:
        pass
    return f"{best[0]} ({best[1]})"


def machine(workdir):
    return f"{machine_line()}; work directory {workdir} on {filesystem_of(workdir)}"


# --- running it -------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS,
                        help="client processes, and threads of the second fsync loop "
                             "(default: %(default)s)")
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION, metavar="SECONDS",
                        help="of each measurement (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT,
                        help="repeats, each with a fresh scheduler (default: %(default)s)")
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR,
                        help="where the temporary directory of the journals and the fsync "
                             "loops is made, on the disk measured (default: %(default)s)")
    parser.add_argument("--keep-alive", choices=("both", "off", "on"), default="both",
                        help="keep-alive settings measured (default: %(default)s)")
    parser.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                        help="after the table, sample the scheduler with py-spy for SECONDS "
                             "while orders arrive (keep-alive off)")
    parser.add_argument("--update-docs", action="store_true",
                        help=f"also write the results into {DOCS.relative_to(DOCS.parents[1])}")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--ours-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.bare_server:
        serve_until_sigterm(bare_server(arguments.bare_server))
        return 0
    if arguments.ours_server:
        serve_until_sigterm(our_server(arguments.ours_server))
        return 0

    from torosmanager.launcher import free_port

    settings = {"both": (False, True), "off": (False,), "on": (True,)}[arguments.keep_alive]
    conditions = Conditions()
    began = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="toros-bench-front-desk-", dir=arguments.workdir)
    bare = start_server("--bare-server", free_port())
    ours = start_server("--ours-server", free_port())
    runs = collections.defaultdict(list)
    journal_orders = []
    try:
        for repeat in range(arguments.repeat):
            directory = os.path.join(workdir, f"repeat-{repeat}")
            os.makedirs(directory)
            daemon, port = start_scheduler(directory)
            try:
                # Alternate which keep-alive setting goes first: the second finds the first's
                # orders in the queue.
                order = settings if repeat % 2 == 0 else tuple(reversed(settings))
                for keep_alive in order:
                    tag = f"r{repeat}{'k' if keep_alive else 'c'}"
                    for system, server, letter in ((BARE, bare, "b"), (OURS, ours, "o")):
                        runs[(system, keep_alive)].append(
                            drive("bare", int(server.args[-1]), server.pid, arguments,
                                  keep_alive, tag + letter))
                    result = drive("orders", port, daemon.pid, arguments, keep_alive, tag)
                    runs[(ORDERS, keep_alive)].append(result)
                    if result["known"]:  # Status of orders accepted in this repeat
                        runs[(STATUS, keep_alive)].append(
                            drive("status", port, daemon.pid, arguments, keep_alive, tag + "s",
                                  result["known"]))
                    runs[(HEALTH, keep_alive)].append(
                        drive("health", port, daemon.pid, arguments, keep_alive, tag + "h"))
                    print(f"repeat {repeat + 1}, keep-alive {'on' if keep_alive else 'off'}: "
                          f"{result['rate']:.0f} orders/s", file=sys.stderr, flush=True)
                runs[(FSYNC_1, None)].append(fsync_loop(directory, 1, arguments.duration))
                runs[(FSYNC_N, None)].append(
                    fsync_loop(directory, arguments.clients, arguments.duration))
                health = xmlrpc.client.ServerProxy(
                    f"http://127.0.0.1:{port}/", allow_none=True).front_desk({"WOType": "Status"})
                journal_orders.append(sum(health["Queue"].values()))
            finally:
                daemon.stop()
        # Sorted for the table: the systems in a fixed order, keep-alive off first.
        names = (BARE, OURS, ORDERS, STATUS, HEALTH, FSYNC_1, FSYNC_N)
        runs = dict(sorted(runs.items(), key=lambda item: (
            item[0][1] is not None and item[0][1], names.index(item[0][0]))))
        text, rates = table(runs, arguments.clients)
        profile_text = profile(arguments, workdir) if arguments.profile else None
    finally:
        for server in (bare, ours):
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - began
    command = " ".join(["bench/front_desk.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Command: `.venv/bin/python "
        f"{command}`. Machine: {machine(arguments.workdir)}. {arguments.clients} client "
        f"processes, {arguments.duration:g} s per measurement, {arguments.repeat} repeats "
        f"alternated (a fresh scheduler each; orders in its journal at the end of each repeat: "
        f"{', '.join(map(str, journal_orders))}). Whole run {elapsed:.0f} s; "
        f"{conditions.text()}.",
        "", text, "",
        "requests/s: answers received ÷ time from the start to the last answer; p50, p99: "
        "median over repeats; max: the largest of any repeat; server CPU: the server's "
        "process and its children (the scheduler's planning process); the ratios: of the "
        "medians shown."]
    errors = collections.Counter()
    for values in runs.values():
        for r in values:
            errors.update(r.get("error kinds", {}))
    if errors:
        lines.append("Errors by kind: " + ", ".join(f"{kind} × {n}"
                                                    for kind, n in errors.items()))
    lines += ["", f"Goal (issue 12): ≥ {GOAL_ORDERS_PER_SECOND} durable orders/s with p99 < "
                  f"{GOAL_P99_MS:.0f} ms, and ≥ {GOAL_VS_BARE}× the bare stdlib server's "
                  "throughput:", verdict(runs, rates)]
    if profile_text:
        lines += ["", profile_text]
    report = "\n".join(lines)
    print(report)
    if arguments.update_docs:
        update_docs("front_desk.py", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
