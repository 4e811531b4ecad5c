"""A daemon's devices, connected at its start and, those that did not answer, again later.

A device whose server was off when the daemon started (switched on later, or restarting) used
to stay unconnected until the daemon was restarted: every order failed with "not connected".
:class:`Connections` connects every device at start, keeps those that could not be, and
:meth:`Connections.connect_missing` tries them again: the telescope daemon before each order,
the dome daemon every ``Dome → Check Interval``. Once connected, a device is its driver's to
keep (each driver follows a lost connection its own way).
"""

import logging
import threading

from ..logs import Outage
from .base import DeviceError

log = logging.getLogger(__name__)


class Connections:
    """The devices of a daemon, and why those not connected are not.

    Parameters
    ----------
    devices : list of (str, Device)
        Each device with the label its daemon's health report gives it (``"Camera"``).
    """

    def __init__(self, devices):
        self._unconnected = list(devices)
        self._errors = {}  # label -> why it last failed to connect
        self._outages = {label: Outage(log) for label, _ in devices}
        self._connecting = threading.Lock()  # one connect_missing at a time
        self._lock = threading.Lock()        # the lists, never held while a device is asked

    def connect_missing(self, only=None):
        """Connect each device not connected yet; said once when one cannot be, and once
        when it is.

        Parameters
        ----------
        only : Device, optional
            Connect that device alone, if it is not connected (a mount to park: the others
            may take their whole Timeout).

        Returns
        -------
        dict
            For each device still unconnected, what keeps it from connecting, naming it, e.g.
            ``"cannot connect the camera: …"``.
        """
        failures = {}
        with self._connecting:
            with self._lock:
                pending = [(label, device) for label, device in self._unconnected
                           if only is None or device is only]
            for label, device in pending:
                try:
                    device.connect()
                except DeviceError as error:
                    with self._lock:
                        self._errors[label] = f"cannot connect: {error}"
                    failures[device] = f"cannot connect the {device.name}: {error}"
                    self._outages[label].failed("cannot connect the %s: %s (tried again until "
                                                "it answers)", device.name, error)
                else:
                    with self._lock:
                        self._unconnected.remove((label, device))
                        self._errors.pop(label, None)
                    self._outages[label].answered("the %s answers now: connected", device.name)
        return failures

    def connected(self, device):
        """Whether *device* has connected."""
        with self._lock:
            return all(each is not device for _, each in self._unconnected)

    def add_errors(self, report):
        """Give each device of *report* (label -> its health report) not connected yet the
        reason, as ``Error``, unless its report has one."""
        with self._lock:
            errors = dict(self._errors)
        for label, error in errors.items():
            if label in report:
                report[label].setdefault("Error", error)
