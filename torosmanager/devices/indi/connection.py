"""One INDI device on one server, reached through :mod:`indipyclient`, with bounded calls.

indipyclient is asyncio-based: its client keeps a TCP connection to ``indiserver``, learns the
device's properties as the server defines them, keeps their latest values, and sends new values.
:class:`IndiConnection` runs one such client in a background thread with an event loop of its
own, and gives the daemon's threads synchronous calls:

* every call is bounded by the device's ``Timeout`` setting;
* reading a property takes a copy of it inside the event loop (the client's dictionaries are
  only ever touched from there), so readers never see it half-updated;
* setting a property sends the new values and waits until the driver has handled them (see
  :meth:`IndiConnection.send`): no answer within ``Timeout`` (a server that hangs), a property
  state ``Alert`` (the driver refused) or a lost connection is a :class:`DeviceError` whose
  message names the device, the operation and the cause.

Each device has its own client, thread and TCP connection: a camera's image (a BLOB of
megabytes) then never holds back the mount's coordinates, and the client asks the server for
the properties of its own device only.

indipyclient reconnects by itself after a lost connection (every few seconds) and learns the
device again; when the device comes back disconnected (a restarted server), this connection
sends ``CONNECT`` again, so a daemon that connected once keeps working after the server returns.
"""

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from dataclasses import dataclass

import indipyclient

from ..base import DeviceError

logger = logging.getLogger(__name__)

#: The driver name in the configuration and in health reports.
DRIVER = "indi"

#: The standard connection property and its switches (INDI standard properties).
CONNECTION = "CONNECTION"
CONNECT = "CONNECT"

#: INDI property states.
IDLE, OK, BUSY, ALERT = "Idle", "Ok", "Busy", "Alert"
#: INDI switch values.
ON, OFF = "On", "Off"

#: How indipyclient's warnings begin when it cannot connect (it then retries every 5 s).
CONNECTION_FAILURES = ("Connection refused", "Connection Error")

#: Least seconds of indipyclient's vector timeout (it takes whole seconds, at least its minimum).
MIN_VECTOR_TIMEOUT = 2

#: How many of the device's latest messages are kept, to explain a refusal.
MESSAGES_KEPT = 5

#: Seconds the background thread may take to stop once asked.
STOP_TIMEOUT = 5.0

#: Seconds after connecting during which a property the device has not defined yet is waited
#: for before it is taken as absent: a driver defines its properties in a burst once
#: connected, the ones it cannot work without (waited for by :meth:`IndiConnection.connect`)
#: not always first. (The INDI Telescope Simulator defined TELESCOPE_PARK after
#: EQUATORIAL_EOD_COORD, and a park asked at once was refused as "not defined".)
DEFINITION_GRACE_SECONDS = 2.0

#: The setting that renames properties: standard name → the device's own name.
PROPERTIES_SETTING = "Properties"

#: indipyclient's event types (``event.eventtype``) that carry new values of a property.
VALUE_EVENTS = ("Define", "DefineBLOB", "Set", "SetBLOB")
#: Those that define a property (in answer to ``getProperties``).
DEFINITION_EVENTS = ("Define", "DefineBLOB")


@dataclass
class Reading:
    """A copy of one property, taken at one instant.

    Attributes
    ----------
    name : str
        The property's name on the device (after any renaming).
    state : str
        ``Idle``, ``Ok``, ``Busy`` or ``Alert``.
    values : dict
        Member name → value: a float for numbers, ``"On"``/``"Off"`` for switches, a state for
        lights, a string for texts.
    message : str
        The driver's last message about this property, or ``""``.
    limits : dict
        Member name → ``(min, max)`` for numbers; empty for other kinds.
    """

    name: str
    state: str
    values: dict
    message: str
    limits: dict

    def on(self):
        """The switches that are on."""
        return [member for member, value in self.values.items() if value == ON]


class _EndOfStreamReader:
    """A stream reader that raises :class:`ConnectionResetError` at the end of the stream.

    indipyclient 0.9.4 takes an empty read (the server closed the connection) for "no data yet"
    and keeps reading, so a server that is gone would only be noticed when its own answer
    timer runs out, tens of seconds later; with this, it is noticed at once.
    """

    def __init__(self, reader):
        self._reader = reader

    async def read(self, size):
        data = await self._reader.read(size)
        if not data:
            raise ConnectionResetError("the INDI server closed the connection")
        return data


class _Client(indipyclient.IPyClient):
    """An indipyclient client that asks for one device's properties and reports to its owner."""

    def __init__(self, owner, host, port):
        super().__init__(indihost=host, indiport=port)
        self.owner = owner
        # Only the camera wants BLOBs (images); everyone else is spared their traffic.
        self.enableBLOBdefault = "Also" if owner.blobs else "Never"
        self.last_warning = ""
        # A server that accepts but never answers is dropped (and retried) after 4 × this
        # without an answer; an idle connection is probed with getProperties after 2 ×.
        self.set_vector_timeouts(timeout_max=max(MIN_VECTOR_TIMEOUT, math.ceil(owner.timeout)))

    async def send_getProperties(self, devicename=None, vectorname=None):
        # indipyclient asks for every device on the server; this connection needs only one.
        await super().send_getProperties(devicename or self.owner.device_name, vectorname)

    async def warning(self, message):
        # indipyclient reports its connection's life here ("Attempting to connect...",
        # "Connection refused on ...") as warnings and as messages for a user interface. Only
        # the log is wanted, under this device's name; a failure also explains connect()'s error.
        if message.startswith(CONNECTION_FAILURES):
            self.last_warning = message
            self.owner.connection_failed()
            logger.warning("%s: %s", self.owner.label, message)
        else:
            logger.info("%s: %s", self.owner.label, message)

    async def report(self, message):
        # Its routine notes ("getProperties sent"), likewise.
        logger.debug("%s: %s", self.owner.label, message)

    async def rxevent(self, event):
        if event.eventtype == "ConnectionMade":
            self._reader = _EndOfStreamReader(self._reader)
        await self.owner.received(event)


class IndiConnection:
    """One INDI device, through its own indipyclient client in a background thread.

    Parameters
    ----------
    kind : str
        What TOROS calls the device, e.g. ``"mount"``.
    settings : dict
        The device's configuration: ``Host``, ``Port``, ``Device`` (the INDI device name),
        ``Properties`` (standard property name → the device's own name), ``Timeout``.
    blobs : bool
        Whether this device sends BLOBs that are wanted (a camera's images).
    """

    def __init__(self, kind, settings, blobs=False):
        self.kind = kind
        self.host = str(settings["Host"])
        self.port = int(settings["Port"])
        self.device_name = str(settings["Device"])
        self.timeout = float(settings["Timeout"])
        self.renames = dict(settings.get(PROPERTIES_SETTING) or {})
        self.blobs = blobs
        #: Whether :meth:`connect` succeeded (and :meth:`disconnect` has not been called since).
        self.connected = False
        #: How many times the device came back disconnected (a restarted server) and was
        #: connected again: a driver whose set-up the device forgot then does it again.
        self.reconnections = 0
        # True while connect() runs: its own requests are allowed before `connected`.
        self._connecting = False
        # time.monotonic() when connect() succeeded, or the device was connected again.
        self._connected_at = float("-inf")
        # Set from connecting the device again (a restarted server) until it says it is.
        self._reconnecting = False
        self._loop = None
        self._main_task = None
        self._thread = None
        self._client = None
        # Guards the counters below; notified whenever anything arrives from the server.
        self._changed = threading.Condition()
        self._server_connected = False
        # Set when a connection attempt failed (refused, no route): connect() need not wait on.
        self._failed = False
        self._generation = 0
        self._definitions = {}
        self._received_at = {}
        self._blob = {}
        # The device's messages (``<message>``, e.g. why it refused), newest last, numbered.
        self._messages = []
        self._message_count = 0

    # --- names and messages ---------------------------------------------------------------

    @property
    def address(self):
        """``host:port`` of the INDI server."""
        return f"{self.host}:{self.port}"

    @property
    def label(self):
        """How messages name this device, e.g. ``mount (INDI 'Telescope Simulator' at h:7624)``."""
        return f"{self.kind} (INDI device {self.device_name!r} at {self.address})"

    def error(self, operation, cause):
        """A :class:`DeviceError` about *operation* on this device, because of *cause* (text)."""
        return DeviceError(f"{self.label}: {operation} failed: {cause}")

    def property_name(self, standard):
        """The device's name for the standard property *standard* (``Properties`` renames)."""
        return self.renames.get(standard, standard)

    # --- life cycle -----------------------------------------------------------------------

    def connect(self, required=()):
        """Reach the server, connect the device and wait until it defines *required*.

        Parameters
        ----------
        required : iterable of str
            Standard names of the properties the driver cannot work without.
        """
        if self.connected:
            return
        operation = "connecting"
        self._connecting = True
        try:
            self._connect(operation, required)
        finally:
            self._connecting = False
        self.connected = True
        self._connected_at = time.monotonic()
        logger.info("%s: connected", self.label)

    def _connect(self, operation, required):
        if self._thread is None:
            self._start_client()
        self.wait(lambda: self._server_connected or self._failed)
        if not self._server_connected:
            cause = self._client.last_warning if self._client is not None else ""
            self._stop_client()
            raise self.error(operation, f"cannot reach the INDI server ({cause})" if cause
                             else f"cannot reach the INDI server within {self.timeout:g} s")
        try:
            self._connect_device(operation, required)
        except DeviceError:
            self._stop_client()
            raise

    def _connect_device(self, operation, required):
        if not self.wait(lambda: self._defined(CONNECTION)):
            raise self.error(operation, f"the server sent no {self.property_name(CONNECTION)} "
                                        f"of a device named {self.device_name!r} within "
                                        f"{self.timeout:g} s (no such device on the server, or "
                                        f"the server is not answering)")
        connection = self.read(CONNECTION, operation)
        if connection.values.get(CONNECT) != ON or connection.state != OK:
            self.send(CONNECTION, {CONNECT: ON}, operation)
            if not self.wait(self._device_connected):
                connection = self.read(CONNECTION, operation)
                why = f": {connection.message}" if connection.message else ""
                raise self.error(operation, f"the device is still not connected after "
                                            f"{self.timeout:g} s ({connection.state}{why})")
        missing = []
        for standard in required:
            if not self.wait(lambda name=standard: self._defined(name)):
                missing.append(self.property_name(standard))
        if missing:
            raise self.error(operation, f"the device did not define {', '.join(missing)} within "
                                        f"{self.timeout:g} s of connecting (rename them with "
                                        f"{PROPERTIES_SETTING} if the driver calls them otherwise)")

    def disconnect(self):
        """Close this connection to the server (idempotent; never raises).

        The device itself is left connected on the server: other INDI clients (KStars, a
        guider) may be using it, and INDI has no per-client connection.
        """
        self.connected = False
        self._stop_client()

    def _start_client(self):
        ready = threading.Event()
        self._server_connected = False
        self._failed = False

        def run():
            asyncio.run(self._main(ready))

        # Started by the caller's thread, so it is born in the caller's network namespace.
        self._thread = threading.Thread(target=run, daemon=True,
                                        name=f"indi-{self.kind.replace(' ', '-')}")
        self._thread.start()
        if not ready.wait(self.timeout):
            raise self.error("connecting", "the INDI client thread did not start")

    async def _main(self, ready):
        self._loop = asyncio.get_running_loop()
        self._main_task = asyncio.current_task()
        self._client = _Client(self, self.host, self.port)
        ready.set()
        try:
            await self._client.asyncrun()
        except asyncio.CancelledError:  # how _stop_client stops it
            pass

    def _stop_client(self):
        thread, task = self._thread, self._main_task
        self._thread = self._loop = self._main_task = None
        if thread is None:
            return
        if task is not None and not task.get_loop().is_closed():
            try:
                # Cancelled, not only told to stop (indipyclient's shutdown): between two
                # tries to reach the server, it looks at its stop flag only every 0.5 s.
                task.get_loop().call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop ended meanwhile: nothing left to stop
                pass
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            logger.warning("%s: the INDI client thread did not stop within %g s", self.label,
                           STOP_TIMEOUT)
        with self._changed:
            self._server_connected = False
            self._generation += 1
            self._changed.notify_all()

    # --- what the server sends (runs in the event loop) -----------------------------------

    async def received(self, event):
        """Record *event* from the client and wake the threads waiting on this connection."""
        kind = event.eventtype
        with self._changed:
            if kind == "ConnectionMade":
                self._server_connected = True
            elif kind == "ConnectionLost":
                self._server_connected = False
            elif kind == "Message" and event.devicename == self.device_name:
                self._message_count += 1
                self._messages = (self._messages + [event.message])[-MESSAGES_KEPT:]
            elif event.devicename == self.device_name and event.vectorname:
                name = event.vectorname
                if kind in DEFINITION_EVENTS:
                    self._definitions[name] = self._definitions.get(name, 0) + 1
                if kind in VALUE_EVENTS:
                    self._received_at[name] = time.monotonic()
                    if kind == "SetBLOB":
                        self._record_blob(event)
                    elif (self._reconnecting and name == self.property_name(CONNECTION)
                          and event.vector.get(CONNECT) == ON and event.vector.state == OK):
                        # Connected again: it defines its properties anew from now on.
                        self._reconnecting = False
                        self._connected_at = time.monotonic()
            self._generation += 1
            self._changed.notify_all()
        if (kind in ("Define", "Set") and event.devicename == self.device_name
                and event.vectorname == self.property_name(CONNECTION) and self.connected
                and event.vector.get(CONNECT) != ON
                and (kind == "Define" or not self._reconnecting)):
            # The device came back disconnected (a restarted server: Define), or another
            # client disconnected it (KStars, indi_setprop: Set), its properties deleted (this
            # client never does: see disconnect): connect it again. A Set that follows, the
            # driver's refusal, is not answered again (each answer would bring another).
            with self._changed:     # first: a reading from now on waits for the connection
                self.reconnections += 1
                self._reconnecting = True
            logger.warning("%s: the device is disconnected on the server%s; connecting it "
                           "again", self.label,
                           "" if kind == "Define" else " (by another client?)")
            await self._client.send_newVector(self.device_name, event.vectorname,
                                              members={CONNECT: ON})

    def connection_failed(self):
        """Note that an attempt to reach the server failed (called in the event loop)."""
        with self._changed:
            self._failed = True
            self._generation += 1
            self._changed.notify_all()

    def _record_blob(self, event):
        for member, content in event.items():
            if content:
                _, blob_format = event.sizeformat[member]
                count = self._blob.get(event.vectorname, (0,))[0] + 1
                self._blob[event.vectorname] = (count, member, bytes(content), blob_format)

    # --- reading --------------------------------------------------------------------------

    def wait(self, predicate, timeout=None):
        """Wait up to *timeout* (default ``Timeout``) for *predicate*; return whether it held.

        *predicate* is called outside the lock, so it may itself read properties; each arrival
        from the server bumps a generation counter, so no wake-up is missed between two calls.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            with self._changed:
                generation = self._generation
            if predicate():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait_for(lambda seen=generation: self._generation != seen,
                                       remaining)

    def _vector(self, standard):
        """The client's live vector for *standard*, or ``None`` (event-loop thread only)."""
        client = self._client
        if client is None or not client.connected:
            return None
        device = client.data.get(self.device_name)
        if device is None:
            return None
        vector = device.data.get(self.property_name(standard))
        if vector is None or not vector.enable:
            return None
        return vector

    def _defined(self, standard):
        """Whether the device has defined *standard* (read without the loop: a dict lookup)."""
        try:
            return self._vector(standard) is not None
        except RuntimeError:  # a dictionary changed while being read: ask again next time
            return False

    def _device_connected(self):
        try:
            vector = self._vector(CONNECTION)
            return vector is not None and vector.state == OK and vector[CONNECT] == ON
        except (RuntimeError, KeyError):
            return False

    def _in_loop(self, function, operation):
        """``function()`` run in the event loop; its result, within ``Timeout``."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise self.error(operation, "not connected (connect() first)")
        future = concurrent.futures.Future()

        def run():
            try:
                future.set_result(function())
            except Exception as error:  # noqa: BLE001 -- handed to the calling thread, raised
                future.set_exception(error)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError as error:
            raise self.error(operation, "the INDI client has stopped") from error
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError as error:
            raise self.error(operation, f"the INDI client did not answer within "
                                        f"{self.timeout:g} s") from error
        except DeviceError:
            raise
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            # A property not shaped as the standard says (a number that is not one...).
            raise self.error(operation, f"unexpected property contents ({type(error).__name__}: "
                                        f"{error})") from error

    def _copy(self, standard):
        """A :class:`Reading` of *standard*, or ``None`` if undefined (event-loop thread only)."""
        vector = self._vector(standard)
        if vector is None:
            return None
        values, limits = {}, {}
        for member in vector.members():
            if vector.vectortype == "NumberVector":
                values[member] = vector.getfloatvalue(member)
                number = vector.member(member)
                limits[member] = (indipyclient.getfloat(number.min),
                                  indipyclient.getfloat(number.max))
            elif vector.vectortype != "BLOBVector":
                values[member] = vector[member]
        return Reading(name=vector.name, state=vector.state, values=values,
                       message=vector.message or "", limits=limits)

    def _check_reachable(self, operation):
        if not self._connecting:
            self.require_connected(operation)
        if not self._server_connected:
            cause = self._client.last_warning if self._client is not None else ""
            raise self.error(operation, "lost the connection to the INDI server"
                                        + (f" ({cause})" if cause else ""))

    def optional(self, standard, operation=None):
        """A :class:`Reading` of *standard*, or ``None`` when the device does not define it
        (waited for while the device may still be defining its properties, see
        :data:`DEFINITION_GRACE_SECONDS`)."""
        operation = operation or f"reading {self.property_name(standard)}"
        self._check_reachable(operation)
        self._await_definition(standard)
        return self._in_loop(lambda: self._copy(standard), operation)

    def _await_definition(self, standard):
        """Wait while the device may still be defining *standard*: while it is being connected
        again after its server restarted (up to ``Timeout``), then for
        :data:`DEFINITION_GRACE_SECONDS` after it connected. (The first exposure asked after
        a restart failed with "the device does not define CCD_INFO" a moment before the
        camera defined it again.) A property the device deleted while connected is not waited
        for."""
        if self._defined(standard):
            return
        if self._reconnecting:
            self.wait(lambda: not self._reconnecting or self._defined(standard))
        grace = self._connected_at + DEFINITION_GRACE_SECONDS - time.monotonic()
        if grace > 0:
            self.wait(lambda: self._defined(standard), grace)

    def read(self, standard, operation=None):
        """A :class:`Reading` of the property *standard*; raises if the device lacks it."""
        name = self.property_name(standard)
        operation = operation or f"reading {name}"
        self._check_reachable(operation)
        self._await_definition(standard)
        reading = self._in_loop(lambda: self._copy(standard), operation)
        if reading is None:
            if not self._server_connected:
                raise self.error(operation, "lost the connection to the INDI server")
            raise self.error(operation, f"the device does not define {name}")
        return reading

    def value(self, reading, member, operation):
        """The value of *member* in *reading*; a :class:`DeviceError` if the property lacks it."""
        if member not in reading.values:
            raise self.error(operation, f"{reading.name} has no member {member} (it has "
                                        f"{', '.join(reading.values) or 'none'})")
        return reading.values[member]

    def age(self, standard):
        """Real seconds since the server last sent *standard*, or ``None`` if it never did."""
        with self._changed:
            received = self._received_at.get(self.property_name(standard))
        return None if received is None else time.monotonic() - received

    def blob(self, standard):
        """``(count, member, bytes, format)`` of the last BLOB of *standard*; count 0 if none."""
        with self._changed:
            return self._blob.get(self.property_name(standard), (0, "", b"", ""))

    def require_connected(self, operation):
        """Raise a :class:`DeviceError` about *operation* unless :meth:`connect` succeeded."""
        if not self.connected:
            raise self.error(operation, "not connected (connect() first)")

    # --- setting --------------------------------------------------------------------------

    def send(self, standard, members, operation):
        """Send new *members* of *standard* and wait for the driver to have handled them.

        INDI has no request identifiers, and drivers send some properties (a mount's
        coordinates, an exposure's countdown) unasked, so the first update after a request may
        have left before the driver saw it. So the request is followed by a ``getProperties``
        of the device: a driver handles its messages in order, so once its definition of the
        property arrives, it has answered the request, and the property's state says how:
        ``Busy`` (under way), ``Ok`` (done) or ``Alert`` (refused).

        Parameters
        ----------
        standard : str
            The standard property name (renamed through ``Properties``).
        members : dict
            Member name → value (``"On"``/``"Off"`` for switches, numbers, strings).
        operation : str
            What is being done, for messages.

        Returns
        -------
        Reading
            The property as the server answered (its state may be ``Busy``: the operation is
            under way).

        Raises
        ------
        DeviceError
            No answer within ``Timeout``, the state ``Alert`` (the driver refused), the property
            not defined, or the connection lost.
        """
        name = self.property_name(standard)
        self._check_reachable(operation)
        with self._changed:
            before = self._definitions.get(name, 0)
            messages_before = self._message_count

        async def request(values):
            await self._client.send_newVector(self.device_name, name, members=values)
            await self._client.send_getProperties(self.device_name, name)

        def start():
            if self._vector(standard) is None:
                return None
            values = {member: _format(value) for member, value in members.items()}
            return asyncio.ensure_future(request(values))

        if self._in_loop(start, operation) is None:
            raise self.error(operation, f"the device does not define {name}")
        logger.debug("%s: %s: sent %s %s", self.label, operation, name, members)
        answered = self.wait(lambda: self._definitions.get(name, 0) > before
                              or not self._server_connected)
        if not self._server_connected:
            raise self.error(operation, "lost the connection to the INDI server")
        if not answered:
            raise self.error(operation, f"no answer to {name} within {self.timeout:g} s")
        reading = self.read(standard, operation)
        if reading.state == ALERT:
            why = [reading.message] if reading.message else []
            with self._changed:
                # The driver may say why in a message of its own rather than with the property.
                new = min(self._message_count - messages_before, len(self._messages))
                why += self._messages[len(self._messages) - new:]
            raise self.error(operation, f"the driver refused {name}"
                                        + (f": {'; '.join(why)}" if why else ""))
        return reading

    def switch(self, standard, member, operation):
        """Turn the switch *member* of *standard* on (the driver turns the others off)."""
        return self.send(standard, {member: ON}, operation)

    # --- reports --------------------------------------------------------------------------

    def describe(self, fields):
        """A health report: driver, connection, address, and ``fields()`` while connected.

        Parameters
        ----------
        fields : callable
            Returns a dict of XML-RPC-safe values; may raise :class:`DeviceError`, which is
            reported under ``Error`` instead.
        """
        report = {"Driver": DRIVER, "Connected": False, "Address": self.address,
                  "Device": self.device_name}
        if not self.connected:
            return report
        try:
            report["Connected"] = bool(self._server_connected)
            report.update(fields())
        except DeviceError as error:
            report["Connected"] = False
            report["Error"] = str(error)
        return report


def _format(value):
    """A member value as INDI sends it."""
    if isinstance(value, bool):
        return ON if value else OFF
    if isinstance(value, float):
        return repr(value)
    return str(value)
