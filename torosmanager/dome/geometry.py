"""Where a dome's slit must be for the telescope to see out: the mount off the dome's centre.

A telescope at the centre of its dome looks out at its own azimuth. Most are not there. The
mount may stand off the centre (``Dome → Mount Offset North``, ``East``, ``Up``), and on a
German equatorial mount the tube hangs off the mount's axes, on one end of the declination
axis (``Dome → Axis Offset``), on one side of the pier or the other. In a dome of radius 2.5 m,
a tube 0.5 m off the axes pointing 40° up needs the slit some 15° from its own azimuth: more
than the slit's half-width on many domes, and the frames would be of the dome's wall.

The slit's azimuth is found as ASCOM's and INDI's dome slaving find it: the line of sight
starts at the tube's axis, not the dome's centre, and the slit must be where that line meets
the dome's sphere. In a frame at the dome's centre (north, east, up, metres):

- the line of sight is **v** = (cos alt cos az, cos alt sin az, sin alt);
- the mount's axes cross at **m**, the mount offsets;
- the declination axis runs along **p** × **v**, where **p** = (cos φ, 0, sin φ) is the polar
  axis at latitude φ; the tube is the axis offset along it, on the side the mount is on:
  **o** = **m** + s d (**p** × **v**) / |**p** × **v**|, with s = +1 for a telescope looking
  east (on the west side of the pier: ASCOM's and INDI's "pier west") and −1 looking west;
- the slit is at the azimuth of **o** + t **v** on the sphere |**x**| = R, t > 0.

A mount that does not say which side of the pier it is on (or ``Dome → Pier Side: hour
angle``) is taken to have its counterweight down, looking east at targets east of the
meridian (s = +1) and west at the others. Near the meridian, where a mount tracks on past it
before flipping, the side of the pier the mount reports is what tells the two apart.
"""

import math
from dataclasses import dataclass

from ..devices.dome import FULL_TURN
from ..devices.mount import LOOKING_EAST, LOOKING_WEST

#: The declination axis is undefined for a line of sight this close to the polar axis (the
#: norm of their cross product): the tube is then taken to be at the mount's axes.
POLE_CROSS_NORM = 1e-9


@dataclass(frozen=True)
class DomeGeometry:
    """Where the telescope stands in its dome.

    Attributes
    ----------
    radius : float
        The dome's radius, metres.
    north, east, up : float
        Where the mount's axes cross, metres from the dome's centre.
    axis_offset : float
        Metres from the mount's axes to the tube's optical axis, along the declination axis
        (a German equatorial mount); 0 for a fork or an alt-az mount.
    pier_side : str
        ``"mount"``: the side of the pier the mount reports, when it does; ``"hour angle"``:
        always by the hour angle (for a mount that reports it wrongly).
    """

    radius: float
    north: float = 0.0
    east: float = 0.0
    up: float = 0.0
    axis_offset: float = 0.0
    pier_side: str = "mount"

    @classmethod
    def from_settings(cls, dome):
        """The geometry of the ``Dome`` section *dome* of the configuration, or of what a dome
        daemon's Status reports (:meth:`report`)."""
        return cls(radius=dome["Radius"], north=dome["Mount Offset North"],
                   east=dome["Mount Offset East"], up=dome["Mount Offset Up"],
                   axis_offset=dome["Axis Offset"], pier_side=dome["Pier Side"])

    def report(self):
        """The geometry as the dome daemon's Status reports it (the configuration's names)."""
        return {"Radius": self.radius, "Mount Offset North": self.north,
                "Mount Offset East": self.east, "Mount Offset Up": self.up,
                "Axis Offset": self.axis_offset, "Pier Side": self.pier_side}

    @property
    def centred(self):
        """Whether the telescope looks out from the dome's centre (its azimuth is the
        slit's)."""
        return self.north == self.east == self.up == self.axis_offset == 0

    def slit_azimuth(self, altitude, azimuth, latitude, pier_side=None):
        """The dome azimuth (degrees, 0–360 from north through east) whose slit the telescope
        looks out of.

        Parameters
        ----------
        altitude, azimuth : float
            Where the telescope points, degrees.
        latitude : float
            The site's latitude, degrees north.
        pier_side : {"east", "west", None}
            The side of the pier the mount says it is on (``"west"``: looking east), or
            ``None`` when it does not say.

        Examples
        --------
        A mount 1 m east of the centre of a dome of radius 2 m, looking north at the horizon,
        needs the slit 30° east of north:

        >>> geometry = DomeGeometry(radius=2.0, east=1.0)
        >>> round(geometry.slit_azimuth(0.0, 0.0, latitude=26.0), 6)
        30.0
        """
        if self.centred:
            return azimuth % FULL_TURN
        alt, az, lat = (math.radians(angle) for angle in (altitude, azimuth, latitude))
        sight = (math.cos(alt) * math.cos(az), math.cos(alt) * math.sin(az), math.sin(alt))
        tube = [self.north, self.east, self.up]
        if self.axis_offset:
            axis = _cross((math.cos(lat), 0.0, math.sin(lat)), sight)
            norm = math.sqrt(_dot(axis, axis))
            if norm > POLE_CROSS_NORM:
                side = self._looking_east(sight, pier_side)
                tube = [t + side * self.axis_offset * a / norm for t, a in zip(tube, axis)]
        along = _dot(tube, sight)
        reach = along * along - (_dot(tube, tube) - self.radius ** 2)
        if reach < 0:  # the tube outside the dome: checked in the configuration
            raise ValueError(f"the telescope is outside the dome of radius {self.radius} m")
        distance = -along + math.sqrt(reach)
        north, east = (t + distance * s for t, s in zip(tube[:2], sight[:2]))
        if math.hypot(north, east) <= POLE_CROSS_NORM * self.radius:
            return azimuth % FULL_TURN  # straight up from the dome's centre: any slit will do
        return math.degrees(math.atan2(east, north)) % FULL_TURN

    def _looking_east(self, sight, pier_side):
        """+1 when the tube is on the west side of the pier (looking east), else −1."""
        if self.pier_side == "mount" and pier_side in (LOOKING_EAST, LOOKING_WEST):
            return 1 if pier_side == LOOKING_EAST else -1
        return 1 if sight[1] >= 0 else -1  # counterweight down: looking at the target's side


def _dot(first, second):
    return sum(a * b for a, b in zip(first, second))


def _cross(first, second):
    (a1, a2, a3), (b1, b2, b3) = first, second
    return (a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1)
