"""The ``text-tcp`` driver: a mount computer speaking plain text over one TCP connection.

The protocol is the MMT mount computer's (TCP port 5240, ASCII lines; ``OK``/``ERR`` for set and
action commands, ``tag value`` lines ending with ``.EOF`` for queries; one connection per client;
about one command per second at most). :class:`~.connection.TextTcpConnection` keeps to those
rules and bounds every read by the device's ``Timeout``; :class:`TextTcpMount` is the
:class:`~torosmanager.devices.Mount` on top. See ``docs/devices/text-tcp.md``.
"""

from .mount import TextTcpMount

__all__ = ["TextTcpMount"]
