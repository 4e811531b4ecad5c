"""One Alpaca device on one server: request timeouts, and every failure as a :class:`DeviceError`.

alpyca sends each request with a fixed 5 s timeout and has no setting for it, and its errors are
a dozen unrelated exception classes plus whatever :mod:`requests` raises. :class:`AlpacaConnection`
wraps one alpyca device object so that

* every HTTP request (connect and read) is bounded by the configured ``Timeout``, through a
  :class:`requests.adapters.HTTPAdapter` mounted on the device's session that replaces alpyca's
  timeout with ours;
* every failure becomes a :class:`DeviceError` whose message names the device (kind, Alpaca
  device type and number, ``host:port``), the operation and the cause;
* a device that does not answer delays only its own requests. alpyca (3.1.3) holds one lock,
  shared by every device of the process (``alpaca.device.Device._ctid_lock``), across each
  HTTP request, though it guards only the count of client transaction IDs: a hung camera held
  the mount's park back by 26 s, and the telescope daemon's Status by a minute.
  :func:`_requests_per_device` puts in its place a lock per device, around its session.
"""

import logging
import threading

import requests
from alpaca import device as alpaca_device
from alpaca import exceptions as alpaca_exceptions

from ...workorders import shorten
from ..base import DeviceError, NotCapable

logger = logging.getLogger(__name__)

#: The driver name in the configuration and in health reports.
DRIVER = "alpaca"

#: What alpyca raises when an Alpaca server answers with an error.
ALPACA_ERRORS = (
    alpaca_exceptions.ActionNotImplementedException,
    alpaca_exceptions.AlpacaRequestException,
    alpaca_exceptions.DriverException,
    alpaca_exceptions.InvalidOperationException,
    alpaca_exceptions.InvalidValueException,
    alpaca_exceptions.NotConnectedException,
    alpaca_exceptions.NotImplementedException,
    alpaca_exceptions.OperationCancelledException,
    alpaca_exceptions.ParkedException,
    alpaca_exceptions.SlavedException,
    alpaca_exceptions.ValueNotSetException,
)

#: What a server that is not a well-behaved Alpaca server makes alpyca raise: a body that is not
#: JSON (``ValueError``), JSON without ``Value`` (``KeyError``), or a value outside an ASCOM
#: enumeration (``ValueError`` from the enum).
MALFORMED_ANSWER_ERRORS = (ValueError, KeyError, TypeError)

#: What the network makes :mod:`requests` raise (timeouts included).
NETWORK_ERRORS = (requests.exceptions.RequestException,)

#: Everything a request to an Alpaca device can raise; each becomes a :class:`DeviceError`.
REQUEST_ERRORS = ALPACA_ERRORS + NETWORK_ERRORS + MALFORMED_ANSWER_ERRORS


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    """An adapter that sends every request with one timeout, whatever the caller asked for,
    one request at a time (a device's threads share its session).

    Parameters
    ----------
    timeout : float
        Seconds to wait for the connection and, once connected, between bytes of the answer.
    """

    def __init__(self, timeout):
        # No retries: a retry would multiply the time a dead server takes to report.
        super().__init__(max_retries=0)
        self.timeout = timeout
        self._lock = threading.Lock()

    def send(self, request, **kwargs):
        kwargs["timeout"] = self.timeout
        with self._lock:
            return super().send(request, **kwargs)


class _TransactionCount:
    """Stands in for alpyca's process-wide request lock: takes nothing, so that devices'
    requests do not wait for one another. Two requests may then carry the same client
    transaction ID, which Alpaca servers only log."""

    def acquire(self, *args, **kwargs):
        return True

    def release(self):
        pass


def _requests_per_device():
    """Let each device's requests wait only for that device's (see the module's docstring)."""
    if not isinstance(alpaca_device.Device._ctid_lock, _TransactionCount):
        alpaca_device.Device._ctid_lock = _TransactionCount()


class AlpacaConnection:
    """An alpyca device object with bounded requests and translated errors.

    Parameters
    ----------
    kind : str
        What TOROS calls the device, e.g. ``"mount"``.
    device_class : type
        The alpyca class, e.g. :class:`alpaca.telescope.Telescope`.
    settings : dict
        The device's configuration: ``Host``, ``Port``, ``Device Number``, ``Timeout``.
    """

    def __init__(self, kind, device_class, settings):
        self.kind = kind
        self.host = str(settings["Host"])
        self.port = int(settings["Port"])
        self.number = int(settings["Device Number"])
        self.timeout = float(settings["Timeout"])
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        #: ``host:port``, as alpyca and the messages want it.
        self.address = f"{host}:{self.port}"
        self.device = device_class(self.address, self.number)
        #: The Alpaca device type, e.g. ``"telescope"``.
        self.device_type = self.device.device_type
        _requests_per_device()
        session = self.device.rqs
        # Device traffic goes straight to the device: a proxy from the environment would only add
        # a place for requests to hang or be refused.
        session.trust_env = False
        adapter = _TimeoutAdapter(self.timeout)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        #: Whether :meth:`connect` succeeded (and :meth:`disconnect` has not been called since).
        self.connected = False
        self._attempted = False
        self._not_implemented = set()
        self._reconnecting = threading.Lock()  # one thread connects again, the others fail
        self._reconnecting_now = False

    @property
    def label(self):
        """How messages name this device, e.g. ``mount (Alpaca telescope 0 at 10.0.0.5:11111)``."""
        return f"{self.kind} (Alpaca {self.device_type} {self.number} at {self.address})"

    def error(self, operation, cause):
        """A :class:`DeviceError` about *operation* on this device, because of *cause* (text)."""
        return DeviceError(f"{self.label}: {operation} failed: {cause}")

    def call(self, operation, function, *args):
        """``function(*args)`` with any failure raised as a :class:`DeviceError`.

        Parameters
        ----------
        operation : str
            What is being done, for the message, e.g. ``"reading Slewing"``.
        function : callable
            Usually a bound method or property access of :attr:`device`.
        """
        try:
            return self._asked(function, args)
        except REQUEST_ERRORS as error:
            raise self.error(operation, describe_error(error, self.timeout)) from error

    def _asked(self, function, args):
        """``function(*args)``; once more after connecting the device again if its server
        says it is not connected although it was (the server, or its driver, restarted)."""
        try:
            return function(*args)
        except alpaca_exceptions.NotConnectedException:
            if not self._connect_again():
                raise
        return function(*args)

    def _connect_again(self):
        """Set ``Connected`` again on a device connected before that its server says is not;
        whether that was done. Without it, a server restarted in the night would refuse every
        request until the daemon was restarted: a dome left open."""
        with self._reconnecting:
            if not self.connected or self._reconnecting_now:
                return False
            self._reconnecting_now = True
        try:
            logger.warning("%s: its server says it is not connected (the server or its driver "
                           "restarted?): connecting it again", self.label)
            self.device.Connected = True
        except REQUEST_ERRORS as error:
            logger.warning("%s: connecting it again failed: %s", self.label,
                           describe_error(error, self.timeout))
            return False
        finally:
            with self._reconnecting:
                self._reconnecting_now = False
        return True

    def get(self, name):
        """Read the Alpaca property *name*."""
        return self.call(f"reading {name}", getattr, self.device, name)

    def set(self, name, value):
        """Write the Alpaca property *name*."""
        self.call(f"setting {name} to {value!r}", setattr, self.device, name, value)

    def run(self, method, *args, operation=None):
        """Call the Alpaca method *method* with *args*; *operation* overrides its description."""
        if operation is None:
            operation = f"{method}({', '.join(format_argument(arg) for arg in args)})"
        return self.call(operation, getattr(self.device, method), *args)

    def start(self, operation, function, *args):
        """Start a long operation that the caller then follows by polling.

        Like :meth:`call`, except that a request which reached the device but got no answer
        within the timeout counts as started (with a warning): drivers written before the
        asynchronous methods were specified still park, open the shutter or turn the filter
        wheel before answering. The caller's polling (itself bounded) then follows the operation,
        and reports a device that is really gone.
        """
        try:
            return self._asked(function, args)
        except requests.exceptions.ReadTimeout:
            logger.warning("%s: %s: no answer within %g s; assuming the device is doing it "
                           "before answering, and following it by polling",
                           self.label, operation, self.timeout)
            return None
        except REQUEST_ERRORS as error:
            raise self.error(operation, describe_error(error, self.timeout)) from error

    def require_connected(self, operation):
        """Raise a :class:`DeviceError` about *operation* unless :meth:`connect` succeeded."""
        if not self.connected:
            raise self.error(operation, "not connected (connect() first)")

    def optional(self, name, default=None, also=()):
        """Read a property that not every device implements.

        Parameters
        ----------
        name : str
            The Alpaca property.
        default : object
            Returned when the device does not implement it; it is not asked again until
            :meth:`connect`.
        also : tuple of exception classes
            alpyca exceptions that also mean "no value now" (e.g. ``InvalidOperationException``
            for ``PercentCompleted`` between exposures); *default* is returned for them too, but
            the property is asked again next time.
        """
        if name in self._not_implemented:
            return default
        try:
            return self._asked(getattr, (self.device, name))
        except alpaca_exceptions.NotImplementedException:
            logger.info("%s does not implement %s; using %r", self.label, name, default)
            self._not_implemented.add(name)
            return default
        except also:
            return default
        except REQUEST_ERRORS as error:
            raise self.error(f"reading {name}", describe_error(error, self.timeout)) from error

    def flag(self, name, default=None):
        """Read the boolean property *name*: :meth:`get`, or :meth:`optional` with a *default*.

        A :class:`DeviceError` names an answer that is no boolean: ``bool("false")`` is true,
        so a server answering text would read as the opposite of what it means.
        """
        value = self.get(name) if default is None else self.optional(name, default)
        if not isinstance(value, bool):
            raise self.error(f"reading {name}", f"it answered {shorten(value)}, not true or false")
        return value

    def capable(self, name, operation):
        """Raise :class:`NotCapable` about *operation* unless the property *name* is true."""
        if not self.flag(name, default=False):
            raise NotCapable(f"{self.label}: {operation} failed: the device cannot do it ({name} "
                             "is false)")

    def connect(self):
        """Set ``Connected`` and check that the device says it is connected."""
        self._not_implemented.clear()
        self._attempted = True
        self.set("Connected", True)
        if not self.flag("Connected"):
            raise self.error("connecting", "Connected is still false after setting it")
        self.connected = True
        logger.info("%s: connected", self.label)

    def disconnect(self):
        """Clear ``Connected`` if :meth:`connect` was tried; a failure is logged, not raised.

        A device this object never tried to connect is left alone: another program may be using
        it.
        """
        was_connected, self.connected = self.connected, False
        if not self._attempted:
            return
        self._attempted = False
        try:
            self.set("Connected", False)
        except DeviceError as error:
            logger.warning("%s (ignored: disconnecting)", error)
        else:
            if was_connected:
                logger.info("%s: disconnected", self.label)

    def describe(self, fields):
        """A health report: driver, connection, address, and ``fields()`` while connected.

        Parameters
        ----------
        fields : callable
            Returns a dict of XML-RPC-safe values; may raise :class:`DeviceError`, which is
            reported under ``Error`` instead.
        """
        report = {"Driver": DRIVER, "Connected": False, "Address": f"{self.address}/{self.number}"}
        if not self.connected:
            return report
        try:
            report["Connected"] = self.flag("Connected")
            if report["Connected"]:
                report.update(fields())
        except DeviceError as error:
            report["Connected"] = False
            report["Error"] = str(error)
        return report


def describe_error(error, timeout):
    """A short, readable cause for an exception raised by alpyca or :mod:`requests`."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return f"no connection within {timeout:g} s"
    if isinstance(error, requests.exceptions.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(error, requests.exceptions.ConnectionError):
        return f"cannot reach the server ({_root_cause(error)})"
    if isinstance(error, requests.exceptions.InvalidJSONError):
        return f"not a valid Alpaca answer (the body is not JSON: {error})"
    if isinstance(error, requests.exceptions.RequestException):
        return f"HTTP failure ({_root_cause(error)})"
    if isinstance(error, alpaca_exceptions.AlpacaRequestException):
        return f"the server refused the request: HTTP {error.number}: {error.message}"
    if isinstance(error, ALPACA_ERRORS):
        return f"{type(error).__name__}: {error.message} (Alpaca error 0x{error.number:X})"
    return f"not a valid Alpaca answer ({type(error).__name__}: {error})"


def _root_cause(error):
    """The innermost system error behind a :mod:`requests` error, e.g. "Connection refused"."""
    seen = set()
    found = None
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            found = current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(current.args)
        pending.extend(each for each in linked if isinstance(each, BaseException))
    if found is not None:
        return found.strerror
    return str(error)


def format_argument(value):
    """An argument of an Alpaca call, short enough for a message."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)
