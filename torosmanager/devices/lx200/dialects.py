"""What differs between the LX200 dialects: status, park, unpark, tracking, ``:MS#`` replies,
the side of the pier.

=========  ====================  ==========  ==========  =====================  ===========
dialect    slewing / parked /    park        unpark      tracking on / off      ``:MS#``
           tracking from                                                        error reply
=========  ====================  ==========  ==========  =====================  ===========
meade      ``:D#`` bars; park    ``:hP#``    none        ``:AP#`` (or ``:AA#``  digit and
           remembered by the     (no reply)  (refused)   alt-az) / ``:AL#``;    ``msg#``
           driver; ACK (0x06)                            no reply
           alignment letter
onstep     ``:GU#`` letters      ``:hP#``    ``:hR#``    ``:Te#`` / ``:Td#``,   digit only
                                 → 0/1       → 0/1       → 0/1
10micron   ``:Gstat#`` number    ``:hP#``    ``:PO#``    ``:AP#`` / ``:AL#``,   digit and
                                 (no reply)  (no reply)  no reply               ``msg#``
=========  ====================  ==========  ==========  =====================  ===========

The side of the pier (a German equatorial mount's): OnStep's ``:Gm#`` (``E``, ``W``, or ``N``
on a fork or alt-az mount), 10micron's ``:pS#`` (``East``, ``West``); a Meade mount does not
say. ``West`` is the tube on the west side of the pier, looking east, as in ASCOM and INDI.

Classic Meade mounts have no park status and no unpark: after ``:hP#`` an Autostar or LX200GPS
stops and asks to be switched off. This driver remembers that it parked the mount (until the
next connect), reports it parked once the slew there has ended, and refuses to unpark with a
message saying what to do. The Meade tracking commands are the alignment-mode commands
(land mode ``L`` does not track), and ACK answers the current mode.
"""

import logging

from ..mount import LOOKING_EAST, LOOKING_WEST
from .protocol import (ACK, BOOLEAN, NO_REPLY, ONE_BYTE, TERMINATED, OnStepStatus,
                       ProtocolError, Reply, ReplyKind, TenMicronStatus,
                       meade_distance_bars_slewing, parse_boolean)

logger = logging.getLogger(__name__)

#: ACK's answer: the mount's alignment mode. Land mode does not track.
ALIGNMENT_MODES = {"A": "alt-az", "P": "polar", "G": "German polar", "L": "land",
                   "D": "downloader"}
LAND_MODE = "L"
#: Tracking on for an alt-az mount; :data:`POLAR_MODE_COMMAND` for every other.
ALT_AZ_MODE = "A"
ALT_AZ_MODE_COMMAND = ":AA#"
POLAR_MODE_COMMAND = ":AP#"
LAND_MODE_COMMAND = ":AL#"
PARK_COMMAND = ":hP#"
#: OnStep's ``:Gm#`` and 10micron's ``:pS#`` answers → :attr:`~..mount.MountState.pier_side`
#: (any other answer, such as OnStep's ``N``: none).
ONSTEP_PIER_SIDES = {"W": LOOKING_EAST, "E": LOOKING_WEST}
TEN_MICRON_PIER_SIDES = {"West": LOOKING_EAST, "East": LOOKING_WEST}


class Status:
    """What the mount is doing: ``slewing``, ``parked``, ``tracking`` (bools)."""

    def __init__(self, slewing, parked, tracking):
        self.slewing = slewing
        self.parked = parked
        self.tracking = tracking


class MeadeDialect:
    """The Meade command set (classic LX200, Autostar, LX200GPS).

    Parameters
    ----------
    connection : Lx200Connection
    """

    name = "meade"
    slew_reply = Reply(ReplyKind.SLEW, message_after_error=True)
    can_unpark = False

    def __init__(self, connection):
        self.connection = connection
        self._park_requested = False
        #: The tracking mode to restore: the mode ACK answered at connect unless that was land.
        self._tracking_mode_command = POLAR_MODE_COMMAND

    def on_connect(self):
        """Read the alignment mode; forget any park of an earlier connection."""
        self._park_requested = False
        mode = self._alignment()
        if mode == ALT_AZ_MODE:
            self._tracking_mode_command = ALT_AZ_MODE_COMMAND
        logger.info("%s: alignment mode %s", self.connection.label,
                    ALIGNMENT_MODES.get(mode, mode))

    def status(self):
        slewing = self.connection.ask(":D#", TERMINATED, meade_distance_bars_slewing,
                                      "reading the distance bars (slewing)")
        tracking = self._alignment() != LAND_MODE
        return Status(slewing=slewing, parked=self._park_requested and not slewing,
                      tracking=tracking and not self._park_requested)

    def start_park(self):
        self.connection.request(PARK_COMMAND, NO_REPLY, "parking")
        self._park_requested = True

    def unpark(self):
        raise self.connection.error(
            "unparking", "the Meade LX200 command set has no unpark: switch the mount off and "
                         "on, then reconnect (restart the telescope daemon)")

    def set_tracking(self, enabled):
        command = self._tracking_mode_command if enabled else LAND_MODE_COMMAND
        self.connection.request(command, NO_REPLY,
                                f"switching tracking {'on' if enabled else 'off'}")

    def pier_side(self):
        """``None``: a Meade mount does not say."""
        return None

    def _alignment(self):
        def parse(letter):
            if letter not in ALIGNMENT_MODES:
                raise ProtocolError(f"not an alignment mode: {letter!r}")
            return letter
        return self.connection.ask(ACK, ONE_BYTE, parse, "reading the alignment mode (ACK)")


class OnStepDialect:
    """OnStep (and OnStepX)."""

    name = "onstep"
    slew_reply = Reply(ReplyKind.SLEW, message_after_error=False)
    can_unpark = True

    def __init__(self, connection):
        self.connection = connection

    def on_connect(self):
        self.status()

    def status(self):
        status = self.connection.ask(":GU#", TERMINATED, OnStepStatus, "reading the status")
        return Status(slewing=status.slewing, parked=status.parked, tracking=status.tracking)

    def start_park(self):
        self._expect_accepted(PARK_COMMAND, "parking")

    def unpark(self):
        self._expect_accepted(":hR#", "unparking")

    def set_tracking(self, enabled):
        self._expect_accepted(":Te#" if enabled else ":Td#",
                              f"switching tracking {'on' if enabled else 'off'}")

    def pier_side(self):
        return self.connection.ask(":Gm#", TERMINATED, ONSTEP_PIER_SIDES.get,
                                   "reading the side of the pier")

    def _expect_accepted(self, command, operation):
        if not self.connection.ask(command, BOOLEAN, parse_boolean, operation):
            raise self.connection.error(operation, f"the mount refused {command!r} (answered 0)")


class TenMicronDialect:
    """10micron mounts (GM1000 … GM4000), LX200 emulation."""

    name = "10micron"
    slew_reply = Reply(ReplyKind.SLEW, message_after_error=True)
    can_unpark = True

    def __init__(self, connection):
        self.connection = connection

    def on_connect(self):
        self.status()

    def status(self):
        status = self.connection.ask(":Gstat#", TERMINATED, TenMicronStatus,
                                     "reading the status")
        return Status(slewing=status.slewing, parked=status.parked, tracking=status.tracking)

    def start_park(self):
        self.connection.request(PARK_COMMAND, NO_REPLY, "parking")

    def unpark(self):
        self.connection.request(":PO#", NO_REPLY, "unparking")

    def set_tracking(self, enabled):
        self.connection.request(POLAR_MODE_COMMAND if enabled else LAND_MODE_COMMAND, NO_REPLY,
                                f"switching tracking {'on' if enabled else 'off'}")

    def pier_side(self):
        return self.connection.ask(":pS#", TERMINATED, TEN_MICRON_PIER_SIDES.get,
                                   "reading the side of the pier")


#: The ``Dialect`` setting → its class.
DIALECTS = {dialect.name: dialect for dialect in (MeadeDialect, OnStepDialect, TenMicronDialect)}
