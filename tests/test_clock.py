"""The clock: real or simulated time that separate processes agree on; astropy offline."""

import os
import shutil
import subprocess
import sys
import math
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from torosmanager.clock import Clock
from torosmanager.config import default_config


def test_real_time_by_default():
    clock = Clock.from_config(default_config())
    assert not clock.simulated
    assert abs(clock.now() - datetime.now(timezone.utc)) < timedelta(seconds=1)
    assert clock.real_seconds(5) == 5


def bracketed(clock, start, anchor, speed):
    """*clock*'s now, read between two real instants, and the simulated instants those two
    give by ``Start + Speed × (real − Anchor)``: the reading must lie between them, however
    slowly the machine runs."""
    before = datetime.now(timezone.utc)
    reading = clock.now()
    after = datetime.now(timezone.utc)
    return start + (before - anchor) * speed, reading, start + (after - anchor) * speed


def test_simulated_time_runs_from_its_anchor_at_its_speed():
    start = datetime(2026, 11, 22, 0, 30, tzinfo=timezone.utc)
    anchor = datetime.now(timezone.utc) - timedelta(seconds=10)
    clock = Clock(start, anchor, speed=60)
    earliest, reading, latest = bracketed(clock, start, anchor, 60)
    assert earliest <= reading <= latest
    assert reading - start >= timedelta(minutes=10)  # the 10 real seconds since the anchor
    assert clock.real_seconds(120) == 2


def test_two_clocks_from_the_same_settings_agree():
    """Separate processes agree because each computes the same formula from the same settings:
    two clocks built from one configuration both follow it, each read at its own instant."""
    start = datetime(2026, 11, 22, 0, 30, tzinfo=timezone.utc)
    anchor = datetime.now(timezone.utc)
    config = default_config()
    config["Clock"] = {"Mode": "simulated", "Start": start, "Anchor": anchor, "Speed": 100}
    first, second = Clock.from_config(config), Clock.from_config(config)
    assert first.simulated and second.simulated
    for clock in (first, second):
        earliest, reading, latest = bracketed(clock, start, anchor, 100)
        assert earliest <= reading <= latest


def test_a_simulated_clock_describes_itself_as_every_time_is_shown():
    start = datetime(2026, 11, 22, 0, 30, tzinfo=timezone.utc)
    anchor = datetime(2026, 11, 21, 18, 0, 5, 123456, tzinfo=timezone.utc)
    clock = Clock(start=start, anchor=anchor, speed=200)
    assert clock.describe() == ("simulated, 200× real time, from 2026-11-22T00:30:00.000Z at "
                                "real 2026-11-21T18:00:05.123Z")


#: Simulated seconds waited at :data:`WAIT_SPEED`: 0.2 real seconds, against 20 in real time.
WAITED_SECONDS = 20
WAIT_SPEED = 100


def test_waiting_is_in_clock_time():
    clock = Clock(datetime(2026, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc),
                  WAIT_SPEED)
    real = WAITED_SECONDS / WAIT_SPEED
    began = time.monotonic()
    assert clock.wait(threading.Event(), WAITED_SECONDS) is False  # waited in vain, to the end
    waited = time.monotonic() - began
    # At least the whole wait, and far less than WAITED_SECONDS taken as real seconds.
    assert real <= waited < WAITED_SECONDS / 2


def test_a_wait_ends_as_soon_as_the_event_is_set():
    clock = Clock(datetime(2026, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc), 1)
    event = threading.Event()
    setter = threading.Timer(0.05, event.set)
    setter.start()
    began = time.monotonic()
    try:
        assert clock.wait(event, WAITED_SECONDS) is True
    finally:
        setter.cancel()
    assert time.monotonic() - began < WAITED_SECONDS / 2


@pytest.mark.parametrize("start, anchor, speed", [(datetime.now(timezone.utc), None, 1),
                                                  (None, None, 0)])
def test_inconsistent_settings_are_refused(start, anchor, speed):
    with pytest.raises(ValueError):
        Clock(start, anchor, speed)


OFFLINE_CHECK = """
import socket, warnings
def refuse(*args, **kwargs):
    raise AssertionError("tried to reach the network")
socket.socket.connect = refuse
from torosmanager.earth_rotation import use_astropy_offline
use_astropy_offline()
import astropy.units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_sun
from astropy.time import Time
site = EarthLocation(lat={latitude} * u.deg, lon={longitude} * u.deg, height=12 * u.m)
# Years past the bundled IERS-A table: astropy would download or raise without the set-up.
when = Time("{when}")
frame = AltAz(obstime=when, location=site)
print(SkyCoord({ra} * u.deg, {dec} * u.deg).transform_to(frame).alt.deg,
      get_sun(when).transform_to(frame).alt.deg)
"""


#: The offline check's site (CTMO), instant (past the bundled IERS-A table) and star (J2000).
LATITUDE, LONGITUDE = 25.9958, -97.5690
WHEN = datetime(2031, 6, 1, 3, 0, tzinfo=timezone.utc)
STAR_RA, STAR_DEC = 23.1, 13.2
#: Degrees astropy may differ from the textbook formulas below for the star: they leave out
#: precession since J2000 (0.4° by 2031), nutation and aberration; and for the Sun, whose
#: formulas are good to 0.01°. A wrong Earth rotation, time scale or frame is off by far more
#: (the Sun moves 0.1° in altitude in half a minute).
STAR_TOLERANCE = 1.0
SUN_TOLERANCE = 0.1
J2000_JULIAN_DATE = 2451545.0
UNIX_EPOCH_JULIAN_DATE = 2440587.5
SECONDS_PER_DAY = 86400.0


def textbook_altitude(ra, dec, instant, latitude=LATITUDE, longitude=LONGITUDE):
    """Altitude (degrees) of (*ra*, *dec*) at *instant*, from mean sidereal time (IAU 1982,
    linear term) and spherical trigonometry: independent of astropy."""
    days = instant.timestamp() / SECONDS_PER_DAY + UNIX_EPOCH_JULIAN_DATE - J2000_JULIAN_DATE
    sidereal = (280.46061837 + 360.98564736629 * days + longitude) % 360
    hour_angle, phi, delta = map(math.radians, (sidereal - ra, latitude, dec))
    return math.degrees(math.asin(math.sin(phi) * math.sin(delta)
                                  + math.cos(phi) * math.cos(delta) * math.cos(hour_angle)))


def textbook_sun(instant):
    """The Sun's RA and Dec (degrees) at *instant*, to 0.01° (the Astronomical Almanac's
    low-precision formulas)."""
    days = instant.timestamp() / SECONDS_PER_DAY + UNIX_EPOCH_JULIAN_DATE - J2000_JULIAN_DATE
    mean_longitude = 280.460 + 0.9856474 * days
    anomaly = math.radians(357.528 + 0.9856003 * days)
    longitude = math.radians(mean_longitude + 1.915 * math.sin(anomaly)
                             + 0.020 * math.sin(2 * anomaly))
    obliquity = math.radians(23.439 - 0.0000004 * days)
    ra = math.degrees(math.atan2(math.cos(obliquity) * math.sin(longitude),
                                 math.cos(longitude)))
    return ra % 360, math.degrees(math.asin(math.sin(obliquity) * math.sin(longitude)))


def test_astropy_works_offline_with_stale_tables():
    """Run in a fresh interpreter whose sockets refuse to connect, in a network namespace
    without any network where the machine allows one; its altitudes are the textbook's."""
    program = OFFLINE_CHECK.format(when=WHEN.strftime("%Y-%m-%dT%H:%M:%S"), latitude=LATITUDE,
                                   longitude=LONGITUDE, ra=STAR_RA, dec=STAR_DEC)
    command = [sys.executable, "-c", program]
    if os.geteuid() == 0 and shutil.which("unshare"):
        command = ["unshare", "--net"] + command
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    altitude, sun = map(float, result.stdout.split())
    assert altitude == pytest.approx(textbook_altitude(STAR_RA, STAR_DEC, WHEN),
                                     abs=STAR_TOLERANCE)
    assert sun == pytest.approx(textbook_altitude(*textbook_sun(WHEN), WHEN),
                                abs=SUN_TOLERANCE)
