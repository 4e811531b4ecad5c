"""Calling a daemon's front desk, from another daemon or from the ``toros`` command.

Examples
--------
>>> from torosmanager.config import default_config
>>> proxy = connect(default_config(), "dome")         # doctest: +SKIP
>>> proxy.front_desk({"WOType": "Status"})["Service"]  # doctest: +SKIP
'dome'
"""

import base64
import xmlrpc.client
from collections.abc import Mapping
from typing import Any, cast

from .config import address_key
from .passwords import client_credentials
from .units import Seconds
from .workorders import FaultCode


#: The attribute set on a failure of a call whose request had been sent whole (see
#: :func:`sent_whole`).
_SENT_WHOLE = "toros_sent_whole"


class _SocketTimeout:
    """Gives a stdlib transport a socket timeout, so a dead peer cannot hang the caller, and
    marks a failure that came after the request was sent whole (:func:`sent_whole`)."""

    # Not annotated: a mixin of either transport, whose signatures differ in their types.
    def __init__(self, timeout, headers=()):
        super().__init__(use_builtin_types=True, headers=headers)
        self._timeout = timeout
        self._sent = False

    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection

    def request(self, host, handler, request_body, verbose=False):
        # The stdlib tries once more on a connection dropped (a kept connection the server
        # closed): the failure of that second try (refused) no longer shows the first's.
        self._sent = False
        try:
            return super().request(host, handler, request_body, verbose)
        except OSError as error:
            if self._sent:
                setattr(error, _SENT_WHOLE, True)
            raise

    def send_request(self, host, handler, request_body, debug):
        connection = super().send_request(host, handler, request_body, debug)
        self._sent = True
        return connection


class _TimeoutTransport(_SocketTimeout, xmlrpc.client.Transport):
    """http:// addresses."""


class _SafeTimeoutTransport(_SocketTimeout, xmlrpc.client.SafeTransport):
    """https:// addresses."""


def connect(config: Mapping[str, Any], service: str,
            timeout: Seconds | None = None) -> xmlrpc.client.ServerProxy:
    """An :class:`xmlrpc.client.ServerProxy` for *service* (``"dome"``, ...).

    The credentials (:func:`~torosmanager.passwords.client_credentials`) travel in an
    Authorization header, not in the URL, so that no error message, which quotes the URL,
    ever shows the password.

    Parameters
    ----------
    config : dict
        The loaded configuration: addresses, credentials and ``Server → Peer Timeout``.
    service : str
        One of :data:`torosmanager.config.SERVICES`.
    timeout : float, optional
        Seconds to wait for an answer; default ``Server → Peer Timeout``.

    Raises
    ------
    CredentialsError
        When ``Server → Credentials File`` cannot be read (an :class:`OSError`, like any
        other failure to reach the daemon).
    """
    url = describe(config, service)
    timeout = config["Server"]["Peer Timeout"] if timeout is None else timeout
    headers = []
    credentials = client_credentials(config["Server"])
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        headers.append(("Authorization", f"Basic {token}"))
    transport_class = _SafeTimeoutTransport if url.startswith("https://") else _TimeoutTransport
    return xmlrpc.client.ServerProxy(url, transport=transport_class(timeout, headers),
                                     allow_none=True, use_builtin_types=True)


def sent_whole(error: BaseException) -> bool:
    """Whether *error*, a call's failure, came after its request had been sent whole: the
    daemon may have received it and acted (too slow to answer within ``Server → Peer
    Timeout``, or stopped while it answered)."""
    return bool(getattr(error, _SENT_WHOLE, False))


def status_of(proxy: xmlrpc.client.ServerProxy, order_id: str) -> dict[str, Any] | None:
    """*order_id*'s Status at the daemon behind *proxy*, or ``None`` when the daemon does not
    know it (yet: an order being handed over).

    Raises
    ------
    xmlrpc.client.Fault
        For any other refusal.
    OSError
        When the daemon does not answer.
    """
    try:
        # A front desk's Status answer is a struct.
        return cast(dict[str, Any], proxy.front_desk({"WOType": "Status", "ID": order_id}))
    except xmlrpc.client.Fault as fault:
        if fault.faultCode == FaultCode.NOT_FOUND:
            return None
        raise


def unavailable(error: BaseException) -> bool:
    """Whether *error*, from a call of a daemon's front desk, says it cannot take the order
    now (Fault UNAVAILABLE: its disk is full): to be sent again later, as to a daemon that did
    not answer, rather than taken as a refusal."""
    return isinstance(error, xmlrpc.client.Fault) and error.faultCode == FaultCode.UNAVAILABLE


def describe(config: Mapping[str, Any], service: str) -> str:
    """*service*'s address without credentials, for messages."""
    return config[address_key(service)]["HTTP"]
