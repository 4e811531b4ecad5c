"""The slit follower: keeps a rotating dome's slit on the telescope while the shutter is open.

Every ``Dome → Follow Interval`` it asks the telescope daemon where the telescope points and,
when the slit lags by more than ``Dome → Turn Lag`` behind where the telescope looks out of
the dome (:mod:`.geometry`: the telescope's own azimuth when it stands at the dome's centre),
starts the dome turning there (the shortest way). It does so only while following
(``Dome → Follow Telescope``, or a Dome order's ``Follow Telescope`` until the daemon
restarts) and while the shutter is open: a closed dome stays where it was parked. A dome that
reports no azimuth (a roll-off roof) is left alone; one that says it cannot be turned (ASCOM's
``CanSetAzimuth`` false) stops being followed, with an error in the log.

The telescope daemon, once pointed and before each later light frame, waits until the slit is
within ``Dome → Follow Tolerance`` (for at most ``Telescope → Slit Timeout``), so that no frame
is taken of the inside of the dome. The turn lag is smaller (by default half the tolerance):
as the telescope tracks, the slit is turned before a frame has to wait for it.
"""

import logging
import threading
import xmlrpc.client

from ..client import connect
from ..devices import DeviceError, ShutterState
from ..devices.base import NotCapable
from ..devices.dome import azimuth_separation
from ..logs import Outage
from .geometry import DomeGeometry

log = logging.getLogger(__name__)

#: Shortest real pause between two looks at the telescope. A simulated clock fast enough to
#: ask more often than this would only load both daemons (each look is the telescope's whole
#: Status): at 100× speed, 20 looks a second took a tenth of a core.
MIN_REAL_FOLLOW_SECONDS = 0.25


class SlitFollower:
    """Turns the dome's slit to where the telescope looks out, in a thread of its own.

    Parameters
    ----------
    config : dict
        The configuration (its ``Dome`` section, and the telescope daemon's address).
    clock : Clock
        The shared clock.
    enclosure : Dome
        The dome's driver.
    motion : threading.Lock
        Held while the dome is told to move (by an order or the safety guard), so that the
        follower neither turns a dome starting to close nor overrides an order's turn.
    """

    def __init__(self, config, clock, enclosure, motion):
        self.config = config
        self.settings = config["Dome"]
        self.clock = clock
        self.latitude = config["Site"]["Latitude"]
        #: Where the telescope stands in the dome.
        self.geometry = DomeGeometry.from_settings(self.settings)
        self.enclosure = enclosure
        self._motion = motion
        #: Whether the slit is kept on the telescope (a Dome order may change it).
        self.following = self.settings["Follow Telescope"]
        self._outage = Outage(log)  # the telescope daemon not saying where it points
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dome-follower")

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self):
        interval = max(self.clock.real_seconds(self.settings["Follow Interval"]),
                       MIN_REAL_FOLLOW_SECONDS)
        while not self._stop.wait(interval):
            try:
                self.follow()
            except Exception:  # the follower must outlive a bug; the guard keeps the dome safe
                log.exception("following the telescope failed; trying again")

    def follow(self):
        """When following and open, turn the slit to the telescope if it lags too far."""
        if not self.following:
            return
        try:
            asked = self._turn_to_the_telescope()
        except NotCapable as error:
            # Waiting for a slit that never comes would stop every observation.
            self.following = False
            log.error("cannot turn the dome to the telescope (%s): no longer following it, and "
                      "the telescope no longer waits for the slit. Set Dome → Follow "
                      "Telescope: false for a dome turned some other way", error)
            return
        except (OSError, KeyError, xmlrpc.client.Error, DeviceError) as error:
            self._outage.failed("cannot follow the telescope: %s", error)
            return
        if asked:  # (a closed dome asks the telescope nothing: its silence is not over)
            self._outage.answered("following the telescope again")

    def _turn_to_the_telescope(self):
        """Turn the slit to the telescope if it lags; whether the telescope was asked where
        it points (not while the shutter is not open)."""
        state = self.enclosure.state()
        if state.shutter != ShutterState.OPEN or state.azimuth is None:
            return False
        pointing = connect(self.config, "telescope").front_desk(
            {"WOType": "Status"})["Devices"]["Pointing"]
        if "Error" in pointing:     # the telescope daemon cannot read its mount
            raise DeviceError(f"the telescope does not know where it points: "
                              f"{pointing['Error']}")
        with self._motion:
            state = self.enclosure.state()
            if state.shutter != ShutterState.OPEN or state.slewing:
                return True
            slit = self.geometry.slit_azimuth(pointing["Altitude"], pointing["Azimuth"],
                                              self.latitude, pointing.get("Pier Side"))
            if azimuth_separation(slit, state.azimuth) > self.settings["Turn Lag"]:
                self.enclosure.start_slew(slit)
        return True
