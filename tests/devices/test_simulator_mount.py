"""The simulated mount, as a specification: slews take distance / rate + settle of clock time,
end on the target with astropy's altitude and azimuth, track there, and refuse what a real
mount would (parked, below the horizon). The mount starts parked at the zenith.

Most tests step a clock by hand, so motion is checked at exact instants without waiting; one
runs a real simulated clock at speed 1000 to show the mount works with it.
"""

import xmlrpc.client
from datetime import datetime, timedelta, timezone

import pytest
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time

from torosmanager.clock import Clock
from torosmanager.config import default_config
from torosmanager.devices import DeviceError, wait_for
from torosmanager.devices.factory import telescope_devices
from torosmanager.devices.simulator import SimulatedMount
from torosmanager.devices.simulator.coords import angle_between, unit_vector

from stepped_clock import NIGHT, SteppedClock

#: A night instant at the default site (CTMO, 23:00 local time).
#: Never rises at the default site (latitude 26° N).
BELOW_HORIZON_DEC = -80.0
#: Degrees: positions the simulator computes exactly (same formulas, same instant).
EXACT = 1e-6
#: Seconds: a moment, to step past an instant that sums of steps may miss by a microsecond.
MOMENT = 0.001


@pytest.fixture
def config():
    return default_config()


@pytest.fixture
def clock():
    return SteppedClock()


@pytest.fixture
def mount(config, clock):
    made = SimulatedMount(config["Simulator"], config["Site"], clock)
    made.connect()
    return made


def astropy_altaz(site, ra, dec, when):
    location = EarthLocation.from_geodetic(site["Longitude"] * u.deg, site["Latitude"] * u.deg,
                                           site["Elevation"] * u.m)
    horizontal = SkyCoord(ra=ra * u.deg, dec=dec * u.deg).transform_to(
        AltAz(obstime=Time(when), location=location))
    return horizontal.alt.deg, horizontal.az.deg


def separation(ra1, dec1, ra2, dec2):
    return angle_between(unit_vector(ra1, dec1), unit_vector(ra2, dec2))


def a_target_above(mount, offset_ra=-30.0, dec=10.0):
    """A target well above the horizon: some way from the zenith."""
    zenith = mount.state()
    return (zenith.ra + offset_ra) % 360.0, dec


def test_starts_parked_at_the_zenith_and_not_tracking(mount):
    state = mount.state()
    assert state.parked and not state.tracking and not state.slewing
    assert state.altitude == pytest.approx(90.0)


def test_a_parked_mount_refuses_to_slew(mount):
    with pytest.raises(DeviceError, match="parked"):
        mount.start_slew(*a_target_above(mount))


def test_unpark_leaves_the_mount_at_the_zenith_not_tracking(mount):
    mount.unpark()
    state = mount.state()
    assert not state.parked and not state.tracking
    assert state.altitude == pytest.approx(90.0)


def start_a_slew(config, mount):
    """Unpark and slew to a target above the horizon: ``(ra, dec, travel, settle)``, the
    seconds the slew should take moving and settling."""
    rate, settle = config["Simulator"]["Slew Rate"], config["Simulator"]["Settle Time"]
    mount.unpark()
    start = mount.state()
    ra, dec = a_target_above(mount)
    travel = separation(start.ra, start.dec, ra, dec) / rate
    mount.start_slew(ra, dec)
    return ra, dec, travel, settle


def test_a_slew_takes_distance_over_rate_then_the_settle_time(config, clock, mount):
    ra, dec, travel, settle = start_a_slew(config, mount)
    rate = config["Simulator"]["Slew Rate"]
    assert mount.state().slewing

    clock.advance(travel / 2)
    halfway = mount.state()
    assert halfway.slewing
    assert separation(halfway.ra, halfway.dec, ra, dec) == pytest.approx(travel / 2 * rate,
                                                                        rel=1e-3)

    clock.advance(travel / 2 + settle / 2)
    settling = mount.state()
    assert settling.slewing, "still settling"
    assert settling.ra == pytest.approx(ra, abs=EXACT)
    assert settling.dec == pytest.approx(dec, abs=EXACT)

    clock.advance(settle / 2 + MOMENT)
    assert not mount.state().slewing


@pytest.mark.parametrize("hours", [-1, 1])
def test_a_slew_lasts_its_time_when_the_system_clock_is_set(config, clock, mount, hours):
    """The system clock set back or forward an hour mid-slew: the slew takes its own time and
    ends on its target, which the mount then tracks, placed in the sky of the clock's time."""
    ra, dec, travel, settle = start_a_slew(config, mount)
    clock.advance(travel / 2)
    clock.set_to(clock.now() + timedelta(hours=hours))
    assert mount.state().slewing
    clock.advance(travel / 2 + settle + MOMENT)
    there = mount.state()
    assert not there.slewing and there.tracking
    assert (there.ra, there.dec) == pytest.approx((ra, dec), abs=EXACT)
    altitude, _ = astropy_altaz(config["Site"], ra, dec, clock.now())
    assert there.altitude == pytest.approx(altitude, abs=EXACT)

def test_a_slew_ends_on_the_target_with_astropys_altitude_and_azimuth(config, clock, mount):
    mount.unpark()
    ra, dec = a_target_above(mount)
    mount.start_slew(ra, dec)
    clock.advance(600)
    state = mount.state()
    assert (state.ra, state.dec) == (pytest.approx(ra, abs=EXACT), pytest.approx(dec, abs=EXACT))
    altitude, azimuth = astropy_altaz(config["Site"], ra, dec, clock.now())
    assert state.altitude == pytest.approx(altitude, abs=EXACT)
    assert state.azimuth == pytest.approx(azimuth, abs=EXACT)


def test_after_a_slew_the_mount_tracks_its_target(clock, mount):
    mount.unpark()
    ra, dec = a_target_above(mount)
    mount.start_slew(ra, dec)
    clock.advance(600)
    before = mount.state()
    clock.advance(3600)
    after = mount.state()
    assert after.tracking
    assert (after.ra, after.dec) == (pytest.approx(ra, abs=EXACT), pytest.approx(dec, abs=EXACT))
    assert abs(after.azimuth - before.azimuth) > 1.0, "the sky turned under it"


def test_a_german_equatorial_mount_says_its_side_of_the_pier(config, clock, mount):
    """Looking east (the west side of the pier) at a target east of the meridian when it
    slewed there, and still so once it has tracked it across; slewed there again, looking
    west. A mount that is not one (the default) says no side."""
    config["Simulator"]["German Equatorial"] = True
    german = SimulatedMount(config["Simulator"], config["Site"], clock)
    german.connect()
    for each in (german, mount):
        each.unpark()
    assert german.state().pier_side is None  # no slew yet
    east = a_target_above(german, offset_ra=10.0)  # 10° of hour angle east of the meridian
    for each in (german, mount):
        each.start_slew(*east)
    clock.advance(600)
    assert german.state().pier_side == "west"
    clock.advance(3600)  # 15° of sidereal turn later: 5° west of the meridian
    assert german.state().pier_side == "west"
    german.start_slew(*east)
    clock.advance(600)
    assert german.state().pier_side == "east"
    assert mount.state().pier_side is None


def test_without_tracking_the_mount_holds_altitude_and_azimuth(clock, mount):
    mount.unpark()
    mount.start_slew(*a_target_above(mount))
    clock.advance(600)
    mount.set_tracking(False)
    before = mount.state()
    clock.advance(3600)
    after = mount.state()
    assert not after.tracking
    assert after.altitude == pytest.approx(before.altitude, abs=1e-4)
    assert after.azimuth == pytest.approx(before.azimuth, abs=1e-4)
    assert abs(after.ra - before.ra) > 10.0, "an hour of sidereal drift"


def test_a_target_below_the_horizon_is_refused(mount):
    mount.unpark()
    with pytest.raises(DeviceError, match="below the horizon"):
        mount.start_slew(0.0, BELOW_HORIZON_DEC)
    assert not mount.state().slewing


def test_a_declination_beyond_the_pole_is_refused(mount):
    mount.unpark()
    with pytest.raises(DeviceError, match="Dec"):
        mount.start_slew(10.0, 91.0)


def test_abort_stops_the_mount_where_it_is(config, clock, mount):
    mount.unpark()
    start = mount.state()
    ra, dec = a_target_above(mount)
    travel = separation(start.ra, start.dec, ra, dec) / config["Simulator"]["Slew Rate"]
    mount.start_slew(ra, dec)
    clock.advance(travel / 2)
    mount.abort()
    stopped = mount.state()
    clock.advance(travel)
    later = mount.state()
    assert not later.slewing and later.tracking
    assert (later.ra, later.dec) == (pytest.approx(stopped.ra, abs=EXACT),
                                     pytest.approx(stopped.dec, abs=EXACT))
    assert separation(later.ra, later.dec, ra, dec) > 1.0, "stopped short of the target"


def test_park_returns_to_the_zenith_and_stops_tracking(clock, mount):
    mount.unpark()
    mount.start_slew(*a_target_above(mount))
    clock.advance(600)
    mount.start_park()
    assert not mount.state().tracking
    assert not mount.state().parked, "parked only once there"
    clock.advance(600)
    state = mount.state()
    assert state.parked and not state.slewing and not state.tracking
    assert state.altitude == pytest.approx(90.0)


def test_a_new_slew_during_a_slew_starts_from_where_the_mount_is(clock, mount):
    mount.unpark()
    mount.start_slew(*a_target_above(mount, offset_ra=-40.0))
    clock.advance(5)
    ra, dec = a_target_above(mount, offset_ra=+20.0, dec=30.0)
    mount.start_slew(ra, dec)
    clock.advance(600)
    state = mount.state()
    assert (state.ra, state.dec) == (pytest.approx(ra, abs=EXACT), pytest.approx(dec, abs=EXACT))


def test_a_disconnected_mount_refuses_everything_but_describe(mount):
    mount.disconnect()
    mount.disconnect()  # idempotent
    with pytest.raises(DeviceError, match="not connected"):
        mount.state()
    with pytest.raises(DeviceError, match="not connected"):
        mount.unpark()
    assert mount.describe() == {"Driver": "simulator", "Connected": False, "Parked": True}


def test_describe_holds_only_xml_rpc_types(mount):
    description = mount.describe()
    assert description["Driver"] == "simulator" and description["Connected"] is True
    assert {"RA", "Dec", "Altitude", "Azimuth", "Slewing", "Parked", "Tracking"} <= set(
        description)
    xmlrpc.client.dumps((description,), allow_none=False)


def test_the_factory_builds_simulated_devices_sharing_the_mount(config, clock):
    mount, camera, filter_wheel, focuser = telescope_devices(config, clock)
    assert isinstance(mount, SimulatedMount)
    assert camera._mount is mount and camera._filter_wheel is filter_wheel
    assert focuser is None and camera._focuser is None  # Driver: none, the default
    config["Telescope"]["Focuser"]["Driver"] = "simulator"
    _, camera, _, focuser = telescope_devices(config, clock)
    assert camera._focuser is focuser  # its frames are as far out of focus as the focuser


def test_with_a_fast_real_clock_a_slew_is_over_in_a_fraction_of_a_second(config):
    clock = Clock(start=NIGHT, anchor=datetime.now(timezone.utc), speed=1000)
    mount = SimulatedMount(config["Simulator"], config["Site"], clock)
    mount.connect()
    mount.unpark()
    ra, dec = a_target_above(mount)
    mount.start_slew(ra, dec)
    wait_for(lambda: not mount.state().slewing, timeout=10, what="the slew",
             poll_interval=0.01)
    state = mount.state()
    assert (state.ra, state.dec) == (pytest.approx(ra, abs=EXACT), pytest.approx(dec, abs=EXACT))


@pytest.mark.parametrize("when", [NIGHT, datetime(2032, 6, 1, 4, 30, 15, tzinfo=timezone.utc)],
                         ids=["in the IERS table", "years past it"])
def test_the_horizon_converts_as_astropy_does_both_ways(config, when):
    """The simulator's horizon (ERFA, as under astropy) is astropy's ICRS <-> AltAz, at a date
    the IERS table covers and at one years past it (where both assume UT1 = UTC)."""
    import warnings

    import numpy as np
    from astropy.coordinates import ICRS

    from torosmanager.devices.simulator.coords import Horizon

    site = config["Site"]
    horizon = Horizon(site)
    location = EarthLocation.from_geodetic(site["Longitude"] * u.deg, site["Latitude"] * u.deg,
                                           site["Elevation"] * u.m)
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ERFA's and astropy's "dubious year" past the table
        frame = AltAz(obstime=Time(when), location=location)
        for ra, dec in zip(rng.uniform(0, 360, 10), rng.uniform(-40, 89, 10)):
            altitude, azimuth = astropy_altaz(site, ra, dec, when)
            assert horizon.altaz(ra, dec, when) == (pytest.approx(altitude, abs=EXACT),
                                                    pytest.approx(azimuth, abs=EXACT))
            sky = SkyCoord(alt=altitude * u.deg, az=azimuth * u.deg,
                           frame=frame).transform_to(ICRS())
            assert horizon.radec(altitude, azimuth, when) == (
                pytest.approx(sky.ra.deg % 360, abs=EXACT), pytest.approx(sky.dec.deg, abs=EXACT))
