"""The indi driver's mount against INDI's telescope simulator (JNow coordinates, real sky)."""

import sys
import time
from pathlib import Path

import astropy.units as u
import pytest
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.time import Time

from torosmanager.devices import DeviceError, wait_for
from torosmanager.devices.indi import IndiMount
from torosmanager.devices.coordinates import apparent_to_icrs, icrs_to_apparent

# The helpers sit beside this file; make them importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from indi_server import SITE, TARGET, indi_server, make_device, sky_position  # noqa: E402,F401

POLL_INTERVAL = 0.1
#: Seconds a slew or a park may take on the simulator (a few degrees a second).
SLEW_TIMEOUT = 30.0
#: The position read back after a slew agrees with the target to this (degrees): the simulator
#: moves its axes in steps, once a poll (about a second, later on a busy machine), and a second
#: of time is 1.3" at Dec 85°; 8 s of time (10.5") have been seen with two cores fully loaded.
READBACK_TOLERANCE = 30 / 3600
#: Degrees: coordinates of date differ from ICRS by a quarter-century of precession, far more.
PRECESSION_AT_LEAST = 0.1
#: Seconds of a slew before it is aborted, and after, to see that it stays stopped.
ABORT_AFTER = 0.5
#: Degrees: an aborted slew towards the southern sky stops at least this far from its target.
FAR_FROM_TARGET = 10.0


def separation(ra1, dec1, ra2, dec2):
    return float(SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(
        SkyCoord(ra2 * u.deg, dec2 * u.deg)).deg)


@pytest.fixture
def mount(make_device):
    """A connected, unparked mount."""
    made = make_device(lambda settings: IndiMount(settings, SITE), "mount")
    if made.state().parked:
        made.unpark()
    return made


def settle(mount, what="the slew to end"):
    """Wait until the mount stops moving; its state then."""
    def still():
        state = mount.state()
        return None if state.slewing else state
    return wait_for(still, SLEW_TIMEOUT, what, POLL_INTERVAL)


def test_coordinates_of_date_round_trip_and_differ_from_icrs():
    location = EarthLocation.from_geodetic(lon=SITE["Longitude"] * u.deg,
                                           lat=SITE["Latitude"] * u.deg,
                                           height=SITE["Elevation"] * u.m)
    now = Time.now()
    ra_hours, dec = icrs_to_apparent(*TARGET, location, now)
    assert separation(ra_hours * 15, dec, *TARGET) > PRECESSION_AT_LEAST
    ra, back_dec = apparent_to_icrs(ra_hours, dec, location, now)
    assert separation(ra, back_dec, *TARGET) < 1e-6


def test_connecting_reports_the_driver_the_address_and_the_state(mount, indi_server):
    report = mount.describe()
    assert report["Driver"] == "indi" and report["Connected"] is True
    assert report["Device"] == "Telescope Simulator"
    assert report["Address"] == f"127.0.0.1:{indi_server.port}"
    assert report["Parked"] is False


def test_a_slew_goes_to_the_icrs_target_and_tracks_there(mount, indi_server):
    mount.start_slew(*TARGET)
    # The server acknowledged the slew before start_slew returned.
    assert mount.state().slewing or indi_server.get("mount", "EQUATORIAL_EOD_COORD",
                                                    "_STATE") == "Ok"
    state = settle(mount)
    assert separation(state.ra, state.dec, *TARGET) < READBACK_TOLERANCE
    assert state.tracking and not state.parked
    # The mount itself was sent coordinates of date, not ICRS.
    dec_of_date = float(indi_server.get("mount", "EQUATORIAL_EOD_COORD", "DEC"))
    assert abs(dec_of_date - TARGET[1]) > PRECESSION_AT_LEAST / 2
    # Altitude and azimuth are computed for the site (the simulator defines no HORIZONTAL_COORD).
    expected_ra, expected_dec = sky_position(state.altitude, state.azimuth)
    assert separation(expected_ra, expected_dec, state.ra, state.dec) < 0.01


def test_the_side_of_the_pier_is_the_one_the_mount_reports(mount, indi_server):
    """``TELESCOPE_PIER_SIDE``: PIER_WEST (the tube on the west side, looking east) is "west",
    PIER_EAST "east" (the simulator is a German equatorial mount)."""
    reported = {switch: indi_server.get("mount", "TELESCOPE_PIER_SIDE", switch)
                for switch in ("PIER_WEST", "PIER_EAST")}
    assert sorted(reported.values()) == ["Off", "On"]
    assert mount.state().pier_side == ("west" if reported["PIER_WEST"] == "On" else "east")


def test_a_target_below_the_horizon_is_refused_before_the_mount_moves(mount):
    below = sky_position(-20.0, 180.0)
    with pytest.raises(DeviceError, match=r"mount \(INDI device 'Telescope Simulator' at .*"
                                          r"below the horizon at CTMO"):
        mount.start_slew(*below)
    assert not mount.state().slewing


def test_tracking_switches_off_and_on(mount):
    mount.set_tracking(False)
    assert not mount.state().tracking
    mount.set_tracking(True)
    assert mount.state().tracking


def test_a_parked_mount_refuses_to_slew_until_unparked(mount):
    mount.start_park()
    def parked():
        state = mount.state()
        return state if state.parked else None
    state = wait_for(parked, SLEW_TIMEOUT, "the mount to park", POLL_INTERVAL)
    assert not state.tracking
    with pytest.raises(DeviceError, match="parked"):
        mount.start_slew(*TARGET)
    mount.unpark()
    assert not mount.state().parked


def test_renamed_properties_are_read_under_the_device_s_own_names(mount, make_device):
    mount.start_slew(*TARGET)
    settle(mount)
    # Read the target (TARGET_EOD_COORD) where the standard position property is expected.
    renamed = make_device(lambda settings: IndiMount(settings, SITE), "mount",
                          Properties={"EQUATORIAL_EOD_COORD": "TARGET_EOD_COORD"})
    state = renamed.state()
    assert separation(state.ra, state.dec, *TARGET) < READBACK_TOLERANCE


def test_a_property_renamed_to_one_the_device_lacks_fails_the_connection(make_device):
    with pytest.raises(DeviceError, match="did not define MOUNT_POSITION"):
        make_device(lambda settings: IndiMount(settings, SITE), "mount",
                    Properties={"EQUATORIAL_EOD_COORD": "MOUNT_POSITION"}, Timeout=1.0)


def test_abort_stops_a_slew_short_of_its_target(mount):
    far = sky_position(30.0, 180.0)
    mount.start_slew(*far)
    time.sleep(ABORT_AFTER)
    mount.abort()
    stopped = settle(mount, "the aborted slew to stop")
    time.sleep(ABORT_AFTER)
    still = mount.state()
    assert not still.slewing
    assert separation(stopped.ra, stopped.dec, *far) > FAR_FROM_TARGET
    assert separation(still.ra, still.dec, stopped.ra, stopped.dec) < 0.1
