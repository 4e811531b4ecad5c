"""The alpaca driver's mount against alpaca-simulators' telescopes (J2000 and topocentric)."""

import sys
import time
import xmlrpc.client
from pathlib import Path

import pytest

pytest.importorskip("alpaca", reason="alpyca is not installed (pip install alpyca)")

import astropy.units as u  # noqa: E402
from alpaca.telescope import EquatorialCoordinateType, PierSide, Telescope  # noqa: E402
from astropy.coordinates import TETE, EarthLocation, SkyCoord  # noqa: E402
from astropy.time import Time  # noqa: E402

from torosmanager.devices import DeviceError, wait_for  # noqa: E402
from torosmanager.devices.alpaca import AlpacaMount  # noqa: E402
from torosmanager.devices.alpaca.mount import icrs_to_mount, mount_to_icrs  # noqa: E402

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from alpaca_server import (  # noqa: E402,F401
    HOST, J2000_TELESCOPE, SITE, TOPOCENTRIC_TELESCOPE, alpaca_server, separation, simulators,
    sky_position,
)

POLL_INTERVAL = 0.1
DEGREES_PER_HOUR = 15.0
#: Seconds a slew may take (a few at the simulated telescopes' slew rate).
SLEW_TIMEOUT = 30.0
#: Where slews go: high in the south-east.
TARGET_ALTITUDE, TARGET_AZIMUTH = 60.0, 120.0
#: The position read back after a slew agrees with the target to this (degrees): 0.1".
READBACK_TOLERANCE = 0.1 / 3600
#: The simulator's own altitude uses a simplified sidereal time and no precession (degrees).
SIMULATOR_ALTITUDE_TOLERANCE = 1.0
#: A J2000 mount receives ICRS unchanged (degrees); a topocentric one, precessed coordinates:
#: a quarter-century of precession moves them by far more than this.
PRECESSION_AT_LEAST = 0.1
#: Seconds of a slew before it is aborted, and after, to see that it stays stopped.
ABORT_AFTER = 0.2
#: Degrees: an aborted slew stops at least this far from its target.
FAR_FROM_TARGET = 10.0
BOTH_SYSTEMS = pytest.mark.parametrize("device_number", [J2000_TELESCOPE, TOPOCENTRIC_TELESCOPE],
                                       ids=["J2000", "topocentric"])


#: A round trip through a mount's system returns to within this (degrees): 1 milliarcsecond.
ROUND_TRIP_TOLERANCE = 0.001 / 3600
#: (ICRS RA, Dec) degrees used for the round trips: near the equator, a pole and RA 0.
ROUND_TRIP_POSITIONS = [(10.0, 5.0), (250.0, 85.0), (359.9999, -60.0)]


@pytest.fixture
def make_mount(simulators):
    made = []

    def make(device_number=J2000_TELESCOPE):
        made.append(AlpacaMount(simulators.settings(device_number), SITE))
        made[-1].connect()
        return made[-1]

    yield make
    for each in made:
        each.disconnect()


def slew_done(mount):
    wait_for(lambda: not mount.state().slewing, SLEW_TIMEOUT, "the slew to end", POLL_INTERVAL)
    return mount.state()


@pytest.mark.parametrize("system", list(EquatorialCoordinateType), ids=lambda each: each.name)
def test_coordinates_survive_a_round_trip_through_every_system(system):
    location = EarthLocation.from_geodetic(lon=SITE["Longitude"] * u.deg,
                                           lat=SITE["Latitude"] * u.deg)
    now = Time.now()
    for ra, dec in ROUND_TRIP_POSITIONS:
        ra_hours, mount_dec = icrs_to_mount(ra, dec, system, location, now)
        assert 0 <= ra_hours < 24
        back_ra, back_dec = mount_to_icrs(ra_hours, mount_dec, system, location, now)
        assert separation(back_ra, back_dec, ra, dec) < ROUND_TRIP_TOLERANCE


def test_describe_before_and_after_connecting(simulators):
    mount = AlpacaMount(simulators.settings(TOPOCENTRIC_TELESCOPE), SITE)
    address = f"{HOST}:{simulators.port}/{TOPOCENTRIC_TELESCOPE}"
    assert mount.describe() == {"Driver": "alpaca", "Connected": False, "Address": address}
    mount.connect()
    report = mount.describe()
    assert report == {"Driver": "alpaca", "Connected": True, "Address": address, "Parked": True,
                      "Slewing": False, "Tracking": False,
                      "Equatorial System": "topocentric (JNow)"}
    xmlrpc.client.dumps((report,))  # XML-RPC-safe: no None, no numpy types
    mount.disconnect()
    assert mount.describe()["Connected"] is False


@BOTH_SYSTEMS
def test_a_slew_reaches_the_target_and_tracks(simulators, make_mount, device_number):
    mount = make_mount(device_number)
    assert mount.state().parked
    mount.unpark()
    assert not mount.state().parked
    ra, dec = sky_position(TARGET_ALTITUDE, TARGET_AZIMUTH)
    mount.start_slew(ra, dec)
    assert mount.state().slewing
    state = slew_done(mount)
    assert separation(state.ra, state.dec, ra, dec) < READBACK_TOLERANCE
    assert 0 <= state.ra < 360
    assert state.tracking and not state.parked
    assert abs(state.altitude - TARGET_ALTITUDE) < SIMULATOR_ALTITUDE_TOLERANCE

    # What the mount itself received, in its own equatorial system:
    raw = Telescope(f"{HOST}:{simulators.port}", device_number)
    raw_ra, raw_dec = raw.RightAscension * DEGREES_PER_HOUR, raw.Declination
    if device_number == J2000_TELESCOPE:
        assert separation(raw_ra, raw_dec, ra, dec) < READBACK_TOLERANCE
    else:
        location = EarthLocation.from_geodetic(lon=SITE["Longitude"] * u.deg,
                                               lat=SITE["Latitude"] * u.deg,
                                               height=SITE["Elevation"] * u.m)
        apparent = SkyCoord(ra * u.deg, dec * u.deg).transform_to(
            TETE(obstime=Time.now(), location=location))
        assert separation(raw_ra, raw_dec, apparent.ra.deg, apparent.dec.deg) < READBACK_TOLERANCE
        assert separation(raw_ra, raw_dec, ra, dec) > PRECESSION_AT_LEAST


def test_abort_stops_a_slew_short_of_its_target(make_mount):
    mount = make_mount()
    mount.unpark()
    # From the park position near the pole to low in the south: over 120° of slewing.
    ra, dec = sky_position(TARGET_ALTITUDE / 2, 180.0)
    mount.start_slew(ra, dec)
    assert mount.state().slewing
    time.sleep(ABORT_AFTER)
    mount.abort()
    stopped = mount.state()
    assert not stopped.slewing
    assert separation(stopped.ra, stopped.dec, ra, dec) > FAR_FROM_TARGET
    time.sleep(ABORT_AFTER)
    still = mount.state()
    assert separation(still.ra, still.dec, stopped.ra, stopped.dec) < READBACK_TOLERANCE


def test_park_then_unpark(make_mount):
    mount = make_mount()
    mount.unpark()
    mount.set_tracking(True)
    mount.start_park()
    wait_for(lambda: mount.state().parked, SLEW_TIMEOUT, "the mount to park", POLL_INTERVAL)
    state = mount.state()
    assert not state.slewing and not state.tracking
    mount.start_park()  # parking a parked mount is harmless
    mount.abort()  # and so is aborting: there is nothing to abort
    mount.unpark()
    assert not mount.state().parked
    mount.unpark()  # unparking an unparked mount too


def test_tracking_can_be_switched(make_mount):
    mount = make_mount()
    mount.unpark()
    mount.set_tracking(True)
    assert mount.state().tracking
    mount.set_tracking(False)
    assert not mount.state().tracking


def test_the_side_of_the_pier_is_reported_when_the_mount_knows_it(simulators, make_mount):
    """ASCOM's ``SideOfPier``: pierWest (the tube on the west side, looking east) is "west";
    pierUnknown, or a mount that does not implement it, is ``None``."""
    mount = make_mount()
    telescope = Telescope(f"{HOST}:{simulators.port}", J2000_TELESCOPE)
    for side, name in ((PierSide.pierWest, "west"), (PierSide.pierEast, "east"),
                       (PierSide.pierUnknown, None)):
        telescope.SideOfPier = side
        assert mount.state().pier_side == name


def test_a_parked_mount_refuses_to_slew(simulators, make_mount):
    mount = make_mount()
    with pytest.raises(DeviceError) as refused:
        mount.start_slew(*sky_position(TARGET_ALTITUDE, TARGET_AZIMUTH))
    message = str(refused.value)
    assert "parked" in message
    assert f"mount (Alpaca telescope 0 at {HOST}:{simulators.port})" in message
    assert mount.state().parked


def test_a_target_below_the_horizon_is_refused(make_mount):
    mount = make_mount()
    mount.unpark()
    with pytest.raises(DeviceError, match=r"below the horizon at CTMO \(altitude -30\.0°\)"):
        mount.start_slew(*sky_position(-30.0, TARGET_AZIMUTH))
    assert not mount.state().slewing


def test_operations_need_a_connection(simulators):
    mount = AlpacaMount(simulators.settings(), SITE)
    with pytest.raises(DeviceError, match="not connected"):
        mount.state()
