"""Where the dome's slit must be for a telescope off the dome's centre (dome/geometry.py)."""

import math

import numpy as np
import pytest
import yaml

from torosmanager.config import ConfigError, load_config
from torosmanager.devices.dome import azimuth_separation
from torosmanager.dome.geometry import DomeGeometry

#: CTMO's latitude, and Cordón Macón's (the south).
LATITUDES = (25.9958, -24.62)
#: Halvings of the walk out along the line of sight in the check below (to 2⁻⁶⁰ of its length).
HALVINGS = 60


def walked_out(geometry, altitude, azimuth, latitude, looking_east):
    """The slit's azimuth found the slow way, for the check: where the line of sight from the
    tube leaves the dome's sphere, by halving the distance out along it.

    The tube is put by hand where a German equatorial mount holds it: off the mount's axes
    along the declination axis, perpendicular to the polar axis and the line of sight, above
    the axes for a telescope looking east at a target east of the meridian.
    """
    alt, az, lat = np.radians([altitude, azimuth, latitude])
    sight = np.array([np.cos(alt) * np.cos(az), np.cos(alt) * np.sin(az), np.sin(alt)])
    declination_axis = np.cross([np.cos(lat), 0, np.sin(lat)], sight)
    declination_axis /= np.linalg.norm(declination_axis)
    side = 1 if looking_east else -1
    point = (np.array([geometry.north, geometry.east, geometry.up])
             + side * geometry.axis_offset * declination_axis)
    inside, outside = 0.0, 2 * geometry.radius
    for _ in range(HALVINGS):
        middle = (inside + outside) / 2
        if np.linalg.norm(point + middle * sight) < geometry.radius:
            inside = middle
        else:
            outside = middle
    point = point + inside * sight
    return math.degrees(math.atan2(point[1], point[0])) % 360


def test_a_telescope_at_the_centre_looks_out_at_its_own_azimuth():
    geometry = DomeGeometry(radius=2.5)
    for altitude, azimuth in ((0, 0), (45, 123.4), (89.9, 359.9), (90, 200)):
        assert geometry.slit_azimuth(altitude, azimuth, LATITUDES[0], "east") == azimuth


def test_a_mount_east_of_the_centre_looking_north_needs_the_slit_east_of_north():
    # From (0, 1, 0) north along the horizon, the sphere of radius 2 is met at (√3, 1, 0).
    geometry = DomeGeometry(radius=2.0, east=1.0)
    assert geometry.slit_azimuth(0, 0, LATITUDES[0]) == pytest.approx(30)
    # Looking east, the same mount needs the slit due east.
    assert geometry.slit_azimuth(0, 90, LATITUDES[0]) == pytest.approx(90)


def test_a_german_mount_at_the_zenith_needs_the_slit_over_its_side_of_the_pier():
    """At the zenith the declination axis runs east–west: a tube on the west side of the pier
    (looking east) sees out of the west half of the slit, the other from the east."""
    geometry = DomeGeometry(radius=2.5, axis_offset=0.5)
    assert geometry.slit_azimuth(90, 0, LATITUDES[0], "west") == pytest.approx(270)
    assert geometry.slit_azimuth(90, 0, LATITUDES[0], "east") == pytest.approx(90)


@pytest.mark.parametrize("latitude", LATITUDES)
@pytest.mark.parametrize("seed", range(4))
def test_the_slit_is_where_the_line_of_sight_meets_the_dome(latitude, seed):
    rng = np.random.default_rng(seed)
    geometry = DomeGeometry(radius=rng.uniform(1.5, 3.0), north=rng.uniform(-0.3, 0.3),
                            east=rng.uniform(-0.3, 0.3), up=rng.uniform(-0.3, 0.3),
                            axis_offset=rng.uniform(0.2, 0.6))
    for _ in range(10):
        altitude, azimuth = rng.uniform(15, 85), rng.uniform(0, 360)
        for pier_side, looking_east in (("west", True), ("east", False)):
            expected = walked_out(geometry, altitude, azimuth, latitude, looking_east)
            found = geometry.slit_azimuth(altitude, azimuth, latitude, pier_side)
            assert azimuth_separation(found, expected) < 0.01, (altitude, azimuth, pier_side)


def test_a_mount_that_does_not_say_has_its_counterweight_down():
    """Without the side of the pier, a telescope looks east at a target east of the meridian
    and west at one west of it; ``Pier Side: hour angle`` ignores what the mount says."""
    geometry = DomeGeometry(radius=2.5, axis_offset=0.5)
    east, west = (0, 60, LATITUDES[0]), (0, 300, LATITUDES[0])
    assert geometry.slit_azimuth(*east) == geometry.slit_azimuth(*east, "west")
    assert geometry.slit_azimuth(*west) == geometry.slit_azimuth(*west, "east")
    assert geometry.slit_azimuth(*east) != geometry.slit_azimuth(*east, "east")
    by_hour_angle = DomeGeometry(radius=2.5, axis_offset=0.5, pier_side="hour angle")
    assert by_hour_angle.slit_azimuth(*east, "east") == geometry.slit_azimuth(*east, "west")


def test_the_offset_matters_most_near_the_meridian():
    """The module's figure: a tube 0.5 m off the axes, pointing south 40° up in a dome of
    radius 2.5 m, needs the slit some 15° from its azimuth, towards its side of the pier."""
    geometry = DomeGeometry(radius=2.5, axis_offset=0.5)
    assert geometry.slit_azimuth(40, 180, LATITUDES[0], "west") == pytest.approx(194.9, abs=0.05)
    assert geometry.slit_azimuth(40, 180, LATITUDES[0], "east") == pytest.approx(165.1, abs=0.05)


def test_at_the_pole_the_tube_is_taken_at_the_mount_axes():
    """Pointing along the polar axis the declination axis is undefined: the slit is then where
    the mount's axes look out."""
    geometry = DomeGeometry(radius=2.0, east=0.5, axis_offset=0.5)
    at_the_axes = DomeGeometry(radius=2.0, east=0.5)
    pole = (LATITUDES[0], 0.0, LATITUDES[0])
    assert geometry.slit_azimuth(*pole, "west") == at_the_axes.slit_azimuth(*pole)


def test_a_telescope_outside_its_dome_is_refused(tmp_path):
    path = tmp_path / "toros.conf.yaml"
    path.write_text(yaml.safe_dump({"Dome": {"Radius": 1.0, "Mount Offset East": 0.6,
                                             "Axis Offset": 0.5}}))
    with pytest.raises(ConfigError, match=r"Dome → Radius: 1\.0 m is not allowed with these "
                                          r"offsets; allowed: more than 1\.1 m"):
        load_config(str(path))
