"""Running a daemon: the program behind ``toros-scheduler``, ``toros-telescope``, ...

``run(service, argv)`` parses the command line, loads and validates the configuration (a bad one
stops the program with one clear message and exit status 78, ``EX_CONFIG``, which the systemd
units do not restart on), binds the port, optionally detaches as a classic Unix daemon, opens the
journal, resumes unfinished work, tells systemd it is ready, and serves until SIGTERM or SIGINT.
SIGHUP reopens the log file.
"""

import argparse
import errno
import gc
import importlib
import logging
import os
import resource
import signal
import stat
import sys
import threading

from . import __version__
from .clock import Clock
from .config import (DEFAULT_PATH, ConfigError, address_key, load_config, resolve_path,
                     service_path)
from .disk_space import existing_ancestor, free_space_text
from .earth_rotation import EarthRotationTable, use_astropy_offline
from .frontdesk import FrontDesk
from .journal import Journal
from .journal_lock import JournalInUse, lock_journal
from .logs import open_log_file, setup_logging
from .passwords import CredentialsError, check_client_credentials, has_plain_passwords
from .pages import StatusPages
from .server import FrontDeskServer
from .systemd_notify import notify_systemd
from .workorders import format_utc

log = logging.getLogger(__name__)

#: Each daemon's handler: ``(module, class)``, imported only by the daemon that runs it (the
#: dome need not load ccdproc, nor the telescope the alerts' skymap code).
HANDLERS = {
    "scheduler": ("torosmanager.scheduler.handler", "SchedulerHandler"),
    "telescope": ("torosmanager.telescope.handler", "TelescopeHandler"),
    "dome": ("torosmanager.dome.handler", "DomeHandler"),
    "preprocessor": ("torosmanager.preprocessor.handler", "PreprocessorHandler"),
    "alerts": ("torosmanager.alerts.handler", "AlertsHandler"),
}


def handler_class(service):
    """The handler class of *service*, imported now."""
    module, name = HANDLERS[service]
    return getattr(importlib.import_module(module), name)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 78  # sysexits.h EX_CONFIG: a restart cannot help
#: Errors opening the journal that no restart mends (its permissions, a read-only file system,
#: a file where a directory belongs: EEXIST from makedirs, ENOTDIR): the daemon exits
#: :data:`EXIT_CONFIG`. Others (a full disk, an I/O error, a disk not mounted yet) exit
#: :data:`EXIT_FAILURE`: systemd tries again.
JOURNAL_SETUP_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
                                  errno.EEXIST})
#: Files a daemon may have open besides its connections: its journal (two connections, their
#: WAL and shared memory), log, lock, devices' sockets, workers' pipes, with room to spare.
FILES_BESIDES_CONNECTIONS = 128


def parse_arguments(service, argv):
    """The command line of ``toros-<service>``."""
    parser = argparse.ArgumentParser(
        prog=f"toros-{service}",
        description=f"The TOROS Manager {service} daemon. Runs in the foreground unless "
                    "--daemon is given.")
    parser.add_argument("--config", metavar="PATH",
                        help=f"configuration file (default: $TOROS_CONFIG, else {DEFAULT_PATH})")
    parser.add_argument("--daemon", action="store_true",
                        help="detach from the terminal as a classic Unix daemon (needs --pidfile)")
    parser.add_argument("--pidfile", metavar="PATH",
                        help="with --daemon, the file that holds the daemon's process ID")
    parser.add_argument("--check-config", action="store_true",
                        help="check the configuration as the daemon does at its start, say "
                             "whether it is accepted, and exit (0: accepted, 78: refused), "
                             "starting nothing: before a restart")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    arguments = parser.parse_args(argv)
    if arguments.daemon != bool(arguments.pidfile):
        parser.error("--daemon and --pidfile PATH go together")
    if arguments.check_config and arguments.daemon:
        parser.error("--check-config starts nothing: it does not go with --daemon")
    return arguments


def run(service, argv):
    """Run the *service* daemon until it is told to stop; return the exit status."""
    arguments = parse_arguments(service, argv)
    try:
        config = load_config(arguments.config)
        # Read at every call to another daemon: one that cannot be read, or that Users does
        # not take, would fail each (the scheduler's heartbeats, and the dome closes).
        check_client_credentials(config["Server"])
    except (ConfigError, CredentialsError) as error:
        print(f"toros-{service}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if arguments.check_config:
        # The log file is not opened: made by root (a package's postinst), the daemon's own
        # user could not write it. Nor is the daemon's environment checked: it is not this one.
        print(f"toros-{service}: {resolve_path(arguments.config)} is accepted")
        return EXIT_OK
    try:
        handler_class(service).check_environment(config)
        _allow_open_files(config["Server"]["Max Connections"])
    except ConfigError as error:
        print(f"toros-{service}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        # Before detaching, where the operator looks; a restart would not help.
        open_log_file(config, service).close()
    except OSError as error:
        print(f"toros-{service}: cannot write its log file (Logging → File): {error}",
              file=sys.stderr)
        return EXIT_CONFIG
    address = config[address_key(service)]
    server_settings = config["Server"]
    try:
        # Bind before detaching, so that a port in use is reported where the operator looks.
        server = FrontDeskServer(service, address["IP"], address["Port"],
                                 request_limit=handler_class(service).request_limit(config),
                                 request_timeout=server_settings["Request Timeout"],
                                 max_connections=server_settings["Max Connections"],
                                 concurrent_requests=server_settings["Concurrent Requests"],
                                 users=server_settings["Users"])
    except OSError as error:
        print(f"toros-{service}: cannot listen on {address['IP']} port {address['Port']} "
              f"({address_key(service)}): {error.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    if arguments.daemon:
        return _run_detached(service, config, server, arguments.pidfile, arguments.config)
    return serve(service, config, server, arguments.config)


def _allow_open_files(connections):
    """Make sure this process may open files for *connections* and its own
    (:data:`FILES_BESIDES_CONNECTIONS`), raising its soft limit up to the hard one if it must;
    else raise :class:`ConfigError`. Short of them, a connection that cannot be accepted is left
    waiting, and so is each one after it until one closes."""
    needed = connections + FILES_BESIDES_CONNECTIONS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard == resource.RLIM_INFINITY or hard >= needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
            return
        except (ValueError, OSError):  # macOS: beyond kern.maxfilesperproc, though unlimited
            hard = soft
    most = max(0, hard - FILES_BESIDES_CONNECTIONS)
    raise ConfigError(f"Server → Max Connections: {connections} is not allowed here; allowed: "
                      f"at most {most}, since this daemon may open {hard} files (its unit's "
                      f"LimitNOFILE, ulimit -n) and needs {FILES_BESIDES_CONNECTIONS} for its "
                      "journal, log, devices and workers")


def _run_detached(service, config, server, pidfile, config_path):
    """Detach, and serve; the command run waits until the daemon serves (exit status 0) or
    has ended, then prints the errors it logged and exits with its status: without it, a
    daemon that could not take its pidfile or its journal ended unseen, and the command said
    0."""
    import daemon
    import daemon.pidfile

    _remove_stale_pidfile(pidfile)
    reading, writing = os.pipe()
    detaching = os.fork()
    if detaching:
        os.close(writing)
        server.server_close()  # the daemon holds the port
        return _wait_for_start(service, reading, detaching)
    os.close(reading)
    report = StartReport(writing)
    context = daemon.DaemonContext(
        pidfile=daemon.pidfile.TimeoutPIDLockFile(os.path.abspath(pidfile), acquire_timeout=0),
        files_preserve=[server.fileno(), writing], umask=0o027)
    try:
        context.open()
    except Exception as error:  # lockfile raises its own classes; report any, then give up
        report.ended(EXIT_FAILURE, f"toros-{service}: cannot detach with pidfile {pidfile}: "
                                   f"{error}")
        return EXIT_FAILURE
    status = EXIT_FAILURE
    try:
        status = serve(service, config, server, config_path, report)
        return status
    finally:
        report.ended(status)
        context.close()


def _wait_for_start(service, reading, detaching):
    """In the command run: what the detached daemon said of its start (see
    :class:`StartReport`), and its exit status."""
    os.waitpid(detaching, 0)  # the first child, gone as the daemon detached
    with os.fdopen(reading, encoding="utf-8", errors="replace") as stream:
        lines = stream.read().splitlines()
    last = lines.pop() if lines else ""
    if last == StartReport.READY:
        return EXIT_OK
    for line in lines:
        print(line, file=sys.stderr)
    if last.startswith(StartReport.ENDED):
        return int(last[len(StartReport.ENDED):])
    print(f"toros-{service}: the daemon ended before it served (killed?); see its log "
          "(Logging → File)", file=sys.stderr)
    return EXIT_FAILURE


class StartReport(logging.Handler):
    """What a detached daemon tells the command that started it, through a pipe, until it
    serves: the errors it logs, then :data:`READY`, or :data:`ENDED` and its exit status."""

    READY, ENDED = "ready", "ended with status "

    def __init__(self, descriptor):
        super().__init__(logging.ERROR)
        self.setFormatter(logging.Formatter("%(name)s: %(levelname)s %(message)s"))
        self._descriptor = descriptor

    def emit(self, record):
        self._say(self.format(record))

    def ready(self):
        """The daemon serves: the command exits 0."""
        self._say(self.READY)
        self._close()

    def ended(self, status, message=None):
        """The daemon ends (before serving: the command says why, and exits *status*)."""
        if message is not None:
            self._say(message)
        self._say(f"{self.ENDED}{status}")
        self._close()

    def _say(self, line):
        if self._descriptor is None:
            return
        try:
            os.write(self._descriptor, (line.replace("\n", " ") + "\n").encode())
        except OSError:
            self._close()  # the command is gone (interrupted): the daemon goes on

    def _close(self):
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def _remove_stale_pidfile(path):
    """Remove a pidfile left by a daemon that is no longer running."""
    try:
        with open(path, encoding="ascii") as stream:
            pid = int(stream.read().strip() or 0)
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        os.unlink(path)
    except PermissionError:
        pass  # alive, under another user: the lock will refuse to start a second daemon


def serve(service, config, server, config_path=None, report=None):
    """Open the journal, build the daemon, and serve on *server* until SIGTERM or SIGINT;
    *report* (a :class:`StartReport`) hears the errors logged until it serves."""
    log_file, recent_lines = setup_logging(config, service)
    if report is not None:
        logging.getLogger().addHandler(report)
    _warn_if_passwords_are_readable(resolve_path(config_path), config["Server"])
    use_astropy_offline()
    clock = Clock.from_config(config)
    database = service_path(config["Database"]["File"], service)
    if os.path.isdir(database):
        # (Its lock file would be made beside it, and SQLite's error names no setting.)
        log.critical("the journal %s (Database → File) is a directory; allowed: a file, made "
                     "if missing; not starting", database)
        server.server_close()
        return EXIT_CONFIG
    try:
        held = lock_journal(database)
    except JournalInUse as error:
        log.critical("%s; not starting", error)
        server.server_close()
        return EXIT_CONFIG
    except OSError:
        held = None  # the journal's own opening, next, says what is wrong with its directory
    try:
        journal = Journal(database)
        journal.set_aside_damaged(format_utc(clock.now()))
    except Exception as error:  # sqlite3 and OS errors alike end here, with the file named
        setup = _journal_setup_error(database, error)
        log.critical("cannot open the journal %s (Database → File): %s (%s)%s", database, error,
                     free_space_text(database), "; not starting again until that is mended"
                     if setup else "")
        server.server_close()
        return EXIT_CONFIG if setup else EXIT_FAILURE
    handler = handler_class(service)(config, journal, clock)
    earth_rotation = EarthRotationTable(with_table=handler.transforms_coordinates)
    threading.Thread(target=_report_earth_rotation, args=(earth_rotation, clock),
                     name="iers-table", daemon=True).start()
    desk = FrontDesk(handler, journal, clock, config, earth_rotation)
    server.publish(desk.front_desk, StatusPages(desk, recent_lines), orders_at_once=desk)

    def stop(signum, frame):
        log.info("received %s; stopping", signal.Signals(signum).name)
        # Stopping already: another (Ctrl-C reaches a foreground daemon and whatever started
        # it, which stops it too) changes nothing, and in the interpreter's last moments,
        # its handler gone, it would kill the daemon as it ends.
        for each in (signal.SIGTERM, signal.SIGINT):
            signal.signal(each, signal.SIG_IGN)
        # shutdown() waits for serve_forever(), which runs in this very thread: ask from another.
        threading.Thread(target=server.shutdown, name="shutdown").start()

    def reopen_log(signum, frame):
        threading.Thread(target=log_file.reopen, name="reopen-log").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reopen_log)

    # What start-up made (modules, astropy's and numpy's tables) lives as long as the daemon:
    # frozen, the collector's full passes skip it, instead of pausing every thread for tens
    # of milliseconds to go through it again while orders arrive.
    gc.collect()
    gc.freeze()
    handler.start()
    log.info("%s daemon %s listening on %s (clock: %s; journal: %s)", service, __version__,
             config[address_key(service)]["HTTP"], clock.describe(), database)
    notify_systemd("READY=1\nSTATUS=accepting work orders")
    if report is not None:
        logging.getLogger().removeHandler(report)
        report.ready()
    try:
        server.serve_forever()
    finally:
        notify_systemd("STOPPING=1")
        server.server_close()  # waits for requests in progress
        handler.stop()
        journal.close()
        if held is not None:
            os.close(held)
        log.info("%s daemon stopped", service)
    return EXIT_OK


def _journal_setup_error(database, error):
    """Whether *error*, opening the journal *database*, is one no restart mends
    (:data:`JOURNAL_SETUP_ERRNOS`): SQLite's own errors name no errno, so its directory's
    permissions are looked at too."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno in JOURNAL_SETUP_ERRNOS
    if os.path.exists(database):
        return not os.access(database, os.W_OK)
    directory = existing_ancestor(os.path.dirname(os.path.abspath(database)))
    return os.path.isdir(directory) and not os.access(directory, os.W_OK)


def _warn_if_passwords_are_readable(path, server_settings):
    """Say so when the configuration holds plain passwords and anyone may read it."""
    try:
        readable = os.stat(path).st_mode & stat.S_IROTH
    except OSError:
        return  # built-in defaults: no file, no passwords
    if readable and has_plain_passwords(server_settings):
        log.warning("%s holds plain passwords (Server → Users) and every user of this machine "
                    "may read it: `chmod o-r %s`, or store hashes made by `toros passwd`",
                    path, path)


def _report_earth_rotation(table, clock):
    """Read the Earth-rotation table and say once in the log how old it is."""
    table.load()
    try:
        log.info("Earth rotation: %s", table.status(clock.now()).summary())
    except RuntimeError as error:
        log.error("%s; astropy will fail where it needs it", error)
