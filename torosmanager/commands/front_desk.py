"""A daemon's front desk, asked from the ``toros`` command: its answer, or why there is none
said on stderr.

A call that brings no answer is told apart by what came back: nothing (the daemon is down, or
too slow: :func:`unreachable`), a refusal of the credentials sent (HTTP 401), or an answer
that is not XML-RPC (another web server at that port); and, for an order, whether the request
had been sent whole before the answer failed to come (:func:`~torosmanager.client.sent_whole`): then the daemon
may have taken it.
"""

import http
import os
import sys
import xmlrpc.client
from xml.parsers.expat import ExpatError

from ..client import connect, describe, sent_whole
from ..config import address_key, resolve_path
from ..console import reason
from ..passwords import CredentialsError, is_hash
from .service_manager import status_command

#: What an answer that is not XML-RPC raises (another web server's page, sent with 200).
NOT_XML_RPC = (xmlrpc.client.ResponseError, ExpatError)
#: Every failure of a call that brings no answer of the daemon's: none came (OSError, its
#: timeouts too), an HTTP error, or an answer that is not XML-RPC.
NO_ANSWER = (OSError, xmlrpc.client.ProtocolError) + NOT_XML_RPC


def ask(config, service, query):
    """The *service* daemon's answer to *query*, or ``None`` (said why on stderr)."""
    return call(config, service, lambda daemon: daemon.front_desk(query))


def call(config, service, conversation):
    """``conversation(proxy)`` with the *service* daemon's front desk, or ``None`` when the
    daemon refused or did not answer (said why on stderr)."""
    try:
        return conversation(connect(config, service))
    except xmlrpc.client.Fault as refusal:
        print(f"toros: the {service} daemon refused: {refusal.faultString}", file=sys.stderr)
    except NO_ANSWER as error:
        print(failure(config, service, error), file=sys.stderr)
    return None


def failure(config, service, error):
    """The message for a call of the *service* daemon that brought no answer of its own
    (*error*, one of :data:`NO_ANSWER`), with what to check."""
    address = describe(config, service)
    if isinstance(error, CredentialsError):
        return f"toros: cannot call the {service} daemon: {error}"
    if isinstance(error, xmlrpc.client.ProtocolError) \
            and error.errcode == http.HTTPStatus.UNAUTHORIZED:
        return (f"toros: the {service} daemon at {address} refused the credentials sent "
                f"({reason(error)}): {credentials_source(config)}")
    if isinstance(error, NOT_XML_RPC):
        return (f"toros: what answers at {address} is not a TOROS daemon's answer (not "
                f"XML-RPC: {_not_xml_rpc(error)}): is {address_key(service)} → HTTP the "
                f"{service} daemon's address? (configuration: {configuration_source()})")
    if sent_whole(error):
        timeout = config["Server"]["Peer Timeout"]
        why = (f"no answer within {timeout:g} s (Server → Peer Timeout)"
               if isinstance(error, TimeoutError) else reason(error))
        return (f"toros: the {service} daemon at {address} was sent the request whole, but "
                f"brought no answer: {why}; it may have carried it out (busy, or stopped "
                f"meanwhile? `{status_command(service)}`; configuration: "
                f"{configuration_source()})")
    return unreachable(config, service, error)


def unreachable(config, service, error):
    """The message for a *service* daemon that did not answer (*error*), with what to check."""
    return (f"toros: the {service} daemon does not answer at "
            f"{config[address_key(service)]['HTTP']}: {reason(error)} "
            f"(is it running? `{status_command(service)}`; configuration: "
            f"{configuration_source()})")


def short_failure(error):
    """Why a call brought no answer, in a few words, for a table's cell."""
    if isinstance(error, xmlrpc.client.ProtocolError) \
            and error.errcode == http.HTTPStatus.UNAUTHORIZED:
        return f"the credentials sent were refused ({reason(error)})"
    if isinstance(error, NOT_XML_RPC):
        return "not a TOROS daemon's answer (not XML-RPC)"
    if isinstance(error, CredentialsError):
        return str(error)
    return reason(error)


def configuration_source():
    """The configuration file this command read, or that there is none."""
    path = resolve_path(None)
    return path if os.path.exists(path) else "none, the built-in defaults"


def credentials_source(config):
    """Where the credentials this command sends come from (never what they are), for a
    refusal of them: as :func:`torosmanager.passwords.client_credentials` reads them."""
    server = config["Server"]
    source = configuration_source()
    if server["Credentials File"]:
        return (f"they are the 'user:password' line of {server['Credentials File']} "
                f"(Server → Credentials File of {source}); the daemon's Server → Users must "
                "hold that user with that password (or its hash, from toros passwd)")
    for user, stored in (server["Users"] or {}).items():
        if not is_hash(stored):
            return (f"they are {user!r} with the plain password Server → Users holds for it in "
                    f"{source}; the daemon's Server → Users must hold the same")
    return (f"none were sent: {source} has no Server → Credentials File nor plain password in "
            "Server → Users, and the daemon requires them; name its configuration (or one "
            "with its credentials) with --config")


def _not_xml_rpc(error):
    if isinstance(error, ExpatError):
        return f"the XML cannot be read: {error}"
    return str(error) or "no XML-RPC methodResponse in it"
