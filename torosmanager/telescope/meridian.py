"""The meridian flip: a German equatorial mount tracking a target across the meridian.

A German equatorial mount follows a target rising in the east with its tube on the west side
of the pier (looking east), its counterweight down. Once the target has crossed the meridian,
the counterweight rises as the mount tracks on, and at the mount's own limit the tube would
meet the pier: the mount stops tracking, and later frames are trails. So between two light
frames of an observation, once the target is ``Telescope → Meridian Flip After`` minutes past
the meridian and the mount still says it is on the west side, the telescope slews to the
target again: the mount then goes over to the east side (it chooses the side of a slew by
the hour angle). The dome turns its slit to the tube's new place, and the next frame waits
for it.

Only a mount that says which side of its pier it is on (ASCOM's ``SideOfPier``, INDI's
``TELESCOPE_PIER_SIDE``, OnStep's ``:Gm#``, 10micron's ``:pS#``) is flipped; a fork, an alt-az
mount, or one that does not say, never.
A mount that is still on the west side after the slew (its own limits let it track on) is
told once, in the log, and not asked again during that attempt at the order.
"""

from ..devices.mount import LOOKING_EAST
from ..night import hour_angle_of

#: Minutes of hour angle per degree.
MINUTES_PER_DEGREE = 4.0


def minutes_past_the_meridian(state, latitude):
    """Minutes of hour angle the mount's target is west of the meridian (negative: east),
    from the horizontal coordinates of the :class:`~..devices.MountState` *state*."""
    return hour_angle_of(latitude, state.altitude, state.azimuth) * MINUTES_PER_DEGREE


def flip_due(state, latitude, after):
    """Whether the mount of :class:`~..devices.MountState` *state* should flip: on the west
    side of its pier, tracking a target *after* minutes past the meridian or more."""
    if state.pier_side != LOOKING_EAST:
        return False
    return minutes_past_the_meridian(state, latitude) >= after
