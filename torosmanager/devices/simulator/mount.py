"""The simulated mount: great-circle slews at a fixed rate, settling, tracking and parking.

Motion is computed from the clock, never by sleeping: a slew started at ``t0`` over ``d``
degrees is under way until ``t0 + d / Slew Rate + Settle Time`` (clock seconds), and
:meth:`SimulatedMount.state` interpolates the position along the great circle in between.

Decisions
---------
* The mount starts **parked**, as a real one is at the start of a night: :meth:`unpark` first.
* The park position is the **zenith** (altitude 90°, azimuth reported as 0°): above the horizon
  at every site, so it needs no setting. Parked, the mount does not track, so its RA drifts
  with sidereal time while its altitude and azimuth stay put. A park has no settle time.
* After a slew the mount **tracks** (RA/Dec fixed). :meth:`unpark` leaves it at the park
  position, not tracking.
* :meth:`abort` stops the mount where it is. An aborted slew keeps the tracking it was going to
  have; an aborted park leaves the mount unparked and not tracking. :meth:`unpark` during a park
  stops it in the same way.
* A new slew or park during a slew starts from wherever the mount is at that instant.
* With ``Simulator → German Equatorial``, it says its side of the pier as a German equatorial
  mount would: at each slew, the west side (looking east) for a target east of the meridian
  then, the east side otherwise, kept while it tracks on (the meridian flip is the
  telescope's to ask for). Its motion is still the great circle.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from ...night import hour_angle_of
from ..base import DeviceError
from ..mount import LOOKING_EAST, LOOKING_WEST, Mount, MountState
from .common import SimulatedDevice, finite_number
from .coords import Horizon, angle_between, great_circle_point, longitude_latitude, unit_vector

#: Altitude of the park position, degrees: the zenith, above the horizon at any site.
PARK_ALTITUDE = 90.0
#: Azimuth of the park position, degrees (undefined at the zenith; reported as north).
PARK_AZIMUTH = 0.0
#: Targets below this altitude (degrees) are refused: the mount would point into the ground.
HORIZON_ALTITUDE = 0.0

#: A position held fixed on the sky (RA/Dec): the mount tracks.
SKY = "sky"
#: A position held fixed on the horizon (altitude/azimuth): the mount does not track.
HORIZONTAL = "horizontal"


@dataclass(frozen=True)
class _Moment:
    """One instant of the clock, read two ways: *when* (UTC) places the sky, *count* (its
    :meth:`~torosmanager.clock.Clock.elapsed`) times the motion (see
    :class:`~.common.SimulatedDevice`)."""

    when: datetime
    count: float

    def at(self, count):
        """The moment of the elapsed *count*, before or after this one."""
        return _Moment(self.when + timedelta(seconds=count - self.count), count)


@dataclass
class _Motion:
    """A slew or park under way: a great circle in one frame, then an optional settle.

    Attributes
    ----------
    frame : str
        :data:`SKY` for a slew (the path is fixed on the sky), :data:`HORIZONTAL` for a park.
    start, end : numpy.ndarray
        Unit vectors in *frame*.
    started : float
        When the motion began, a :meth:`~torosmanager.clock.Clock.elapsed` count (see
        :class:`~.common.SimulatedDevice`).
    travel, settle : float
        Clock seconds moving, then settling at *end*.
    tracking_after : bool
        Whether the mount tracks once there (``set_tracking`` during a slew changes it).
    parks : bool
        Whether the mount is parked once there.
    """

    frame: str
    start: np.ndarray
    end: np.ndarray
    started: float
    travel: float
    settle: float
    tracking_after: bool
    parks: bool

    @property
    def ends(self):
        """When the motion (settle included) is over, an elapsed count as :attr:`started`."""
        return self.started + self.travel + self.settle

    def vector_at(self, count):
        """Where the mount points at the elapsed *count*, a unit vector in :attr:`frame`."""
        elapsed = count - self.started
        fraction = 1.0 if self.travel <= 0 else min(max(elapsed / self.travel, 0.0), 1.0)
        return great_circle_point(self.start, self.end, fraction)


class SimulatedMount(SimulatedDevice, Mount):
    """A mount that slews at ``Slew Rate`` and settles for ``Settle Time``, in clock time.

    Parameters
    ----------
    simulator_settings : dict
        The ``Simulator`` section (``Slew Rate`` in degrees per second, ``Settle Time`` in s).
    site : dict
        The ``Site`` section, for altitude and azimuth.
    clock : torosmanager.clock.Clock
        The shared clock.

    Notes
    -----
    Internally the mount is at rest either in :data:`SKY` coordinates (tracking) or in
    :data:`HORIZONTAL` ones (not tracking), or moving along a :class:`_Motion`; ``state()``
    converts to the other frame with one astropy transformation.
    """

    def __init__(self, simulator_settings, site, clock):
        super().__init__(clock)
        self._rate = float(simulator_settings["Slew Rate"])
        self._german = simulator_settings["German Equatorial"]
        self._latitude = site["Latitude"]
        self._pier_side = None  # a German equatorial mount's, once it has slewed
        self._settle = float(simulator_settings["Settle Time"])
        self._horizon = Horizon(site)
        self._frame = HORIZONTAL
        self._vector = unit_vector(PARK_AZIMUTH, PARK_ALTITUDE)
        self._parked = True
        self._motion = None

    # -- the interface -------------------------------------------------------------------------

    def state(self):
        """The :class:`MountState` now.

        Raises
        ------
        DeviceError
            When not connected.
        """
        with self._lock:
            self._require_connected()
            moment = self._moment()
            self._finish_motion(moment)
            frame, vector = self._where(moment)
            if frame == SKY:
                ra, dec = longitude_latitude(vector)
                altitude, azimuth = self._horizon.altaz(ra, dec, moment.when)
            else:
                azimuth, altitude = longitude_latitude(vector)
                ra, dec = self._horizon.radec(altitude, azimuth, moment.when)
            moving = self._motion is not None
            tracking = self._motion.tracking_after if moving else frame == SKY
            return MountState(ra=ra, dec=dec, altitude=altitude, azimuth=azimuth,
                              slewing=moving, parked=self._parked, tracking=tracking,
                              pier_side=self._pier_side)

    def unpark(self):
        """Leave the park position (at once), not tracking; stops a park under way."""
        with self._lock:
            self._require_connected()
            moment = self._moment()
            self._finish_motion(moment)
            if self._motion is not None and self._motion.parks:
                self._stop(moment)
            self._parked = False

    def start_slew(self, ra, dec):
        """Start slewing to ICRS *ra*, *dec* (degrees); the mount tracks there once arrived.

        Raises
        ------
        DeviceError
            When not connected, parked, for a declination outside ±90°, or for a target below
            the horizon now.
        """
        ra = finite_number(ra, "RA") % 360.0
        dec = finite_number(dec, "Dec")
        if not -90.0 <= dec <= 90.0:
            raise DeviceError(f"Dec must be from -90 to 90 degrees, got {dec:g}")
        with self._lock:
            self._require_connected()
            moment = self._moment()
            self._finish_motion(moment)
            if self._parked:
                raise DeviceError("the mount is parked: unpark it before slewing")
            altitude, azimuth = self._horizon.altaz(ra, dec, moment.when)
            if altitude < HORIZON_ALTITUDE:
                raise DeviceError(f"RA {ra:.4f}, Dec {dec:.4f} is below the horizon "
                                  f"(altitude {altitude:.1f} degrees)")
            if self._german:
                east = hour_angle_of(self._latitude, altitude, azimuth) < 0
                self._pier_side = LOOKING_EAST if east else LOOKING_WEST
            start = self._vector_in(SKY, moment)
            end = unit_vector(ra, dec)
            self._motion = _Motion(SKY, start, end, moment.count,
                                   angle_between(start, end) / self._rate, self._settle,
                                   tracking_after=True, parks=False)

    def start_park(self):
        """Start moving to the zenith, where the mount parks; no-op when already parked."""
        with self._lock:
            self._require_connected()
            moment = self._moment()
            self._finish_motion(moment)
            if self._parked:
                return
            start = self._vector_in(HORIZONTAL, moment)
            end = unit_vector(PARK_AZIMUTH, PARK_ALTITUDE)
            self._motion = _Motion(HORIZONTAL, start, end, moment.count,
                                   angle_between(start, end) / self._rate, 0.0,
                                   tracking_after=False, parks=True)

    def abort(self):
        """Stop any slew or park at once, where the mount is (see the module notes)."""
        with self._lock:
            self._require_connected()
            moment = self._moment()
            self._finish_motion(moment)
            if self._motion is not None:
                self._stop(moment)

    def set_tracking(self, enabled):
        """Switch sidereal tracking on or off.

        During a slew this sets whether the mount tracks once there.

        Raises
        ------
        DeviceError
            When not connected, or switching tracking on while parked or parking.
        """
        enabled = bool(enabled)
        with self._lock:
            self._require_connected()
            moment = self._moment()
            self._finish_motion(moment)
            motion = self._motion
            if enabled and (self._parked or (motion is not None and motion.parks)):
                raise DeviceError("the mount cannot track while parked or parking")
            if motion is not None:
                # A park never ends tracking (switching on was refused above).
                motion.tracking_after = enabled
                return
            self._rest(self._frame, self._vector, enabled, moment)

    def describe(self):
        """``Driver``, ``Connected`` and, when connected, where the mount points."""
        with self._lock:
            if not self._connected:
                return self._describe({"Parked": self._parked})
            state = self.state()
            return self._describe({
                "RA": state.ra, "Dec": state.dec, "Altitude": state.altitude,
                "Azimuth": state.azimuth, "Slewing": state.slewing, "Parked": state.parked,
                "Tracking": state.tracking})

    # -- motion bookkeeping (all with the lock held) --------------------------------------------

    def _moment(self):
        """The clock read both ways: UTC for the sky, the elapsed count for the motion."""
        return _Moment(self._clock.now(), self._clock.elapsed())

    def _finish_motion(self, moment):
        """Bring a motion that is over at *moment* to rest at its end, as of when it ended."""
        motion = self._motion
        if motion is None or moment.count < motion.ends:
            return
        self._motion = None
        self._rest(motion.frame, motion.end, motion.tracking_after, moment.at(motion.ends))
        self._parked = motion.parks

    def _stop(self, moment):
        """Stop the motion under way at *moment*, where it is."""
        motion, self._motion = self._motion, None
        self._rest(motion.frame, motion.vector_at(moment.count), motion.tracking_after, moment)

    def _where(self, moment):
        """The (frame, unit vector) the mount points at *moment*."""
        if self._motion is not None:
            return self._motion.frame, self._motion.vector_at(moment.count)
        return self._frame, self._vector

    def _vector_in(self, frame, moment):
        """Where the mount points at *moment*, as a unit vector in *frame*."""
        current_frame, vector = self._where(moment)
        return self._convert(vector, current_frame, frame, moment.when)

    def _rest(self, frame, vector, tracking, moment):
        """Hold still at *vector* (in *frame*, at *moment*): fixed on the sky if *tracking*."""
        self._frame = SKY if tracking else HORIZONTAL
        self._vector = self._convert(vector, frame, self._frame, moment.when)

    def _convert(self, vector, source, target, when):
        """*vector* from frame *source* to frame *target* at *when*."""
        if source == target:
            return vector
        if source == SKY:
            altitude, azimuth = self._horizon.altaz(*longitude_latitude(vector), when)
            return unit_vector(azimuth, altitude)
        azimuth, altitude = longitude_latitude(vector)
        return unit_vector(*self._horizon.radec(altitude, azimuth, when))
