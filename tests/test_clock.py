"""The clock: real or simulated time that separate processes agree on; astropy offline."""

import os
import shutil
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest

from torosmanager.clock import Clock
from torosmanager.config import default_config


def test_real_time_by_default():
    clock = Clock.from_config(default_config())
    assert not clock.simulated
    assert abs(clock.now() - datetime.now(timezone.utc)) < timedelta(seconds=1)
    assert clock.real_seconds(5) == 5


def test_simulated_time_runs_from_its_anchor_at_its_speed():
    start = datetime(2026, 11, 22, 0, 30, tzinfo=timezone.utc)
    anchor = datetime.now(timezone.utc) - timedelta(seconds=10)
    clock = Clock(start, anchor, speed=60)
    elapsed = clock.now() - start
    assert timedelta(minutes=10) <= elapsed < timedelta(minutes=10, seconds=30)
    assert clock.real_seconds(120) == 2


def test_two_clocks_from_the_same_settings_agree():
    start = datetime(2026, 11, 22, 0, 30, tzinfo=timezone.utc)
    anchor = datetime.now(timezone.utc)
    first, second = Clock(start, anchor, 100), Clock(start, anchor, 100)
    assert abs(first.now() - second.now()) < timedelta(seconds=1)


def test_waiting_is_in_clock_time():
    clock = Clock(datetime(2026, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc), 1000)
    event = threading.Event()
    assert clock.wait(event, 10) is False  # 10 simulated seconds: 10 ms


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
site = EarthLocation(lat=25.9958 * u.deg, lon=-97.5690 * u.deg, height=12 * u.m)
# Years past the bundled IERS-A table: astropy would download or raise without the set-up.
when = Time("2031-06-01T03:00:00")
frame = AltAz(obstime=when, location=site)
print(SkyCoord(23.1 * u.deg, 13.2 * u.deg).transform_to(frame).alt.deg,
      get_sun(when).transform_to(frame).alt.deg)
"""


def test_astropy_works_offline_with_stale_tables():
    """Run in a fresh interpreter whose sockets refuse to connect, in a network namespace
    without any network where the machine allows one."""
    command = [sys.executable, "-c", OFFLINE_CHECK]
    if os.geteuid() == 0 and shutil.which("unshare"):
        command = ["unshare", "--net"] + command
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    altitude, sun = map(float, result.stdout.split())
    assert -90 <= altitude <= 90 and -90 <= sun <= 90
