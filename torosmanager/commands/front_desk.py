"""A daemon's front desk, asked from the ``toros`` command: its answer, or why there is none
said on stderr."""

import os
import sys
import xmlrpc.client

from ..client import connect
from ..config import address_key, resolve_path
from ..console import reason
from .service_manager import status_command


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
    except (OSError, xmlrpc.client.ProtocolError) as error:
        print(unreachable(config, service, error), file=sys.stderr)
    return None


def unreachable(config, service, error):
    """The message for a *service* daemon that did not answer (*error*), with what to check."""
    path = resolve_path(None)
    source = path if os.path.exists(path) else "none, the built-in defaults"
    return (f"toros: the {service} daemon does not answer at "
            f"{config[address_key(service)]['HTTP']}: {reason(error)} "
            f"(is it running? `{status_command(service)}`; configuration: {source})")
