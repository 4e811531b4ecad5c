"""The telescope and dome daemons on real ASCOM Alpaca devices (alpaca-simulators).

The target, Dec +85°, is always between 21° and 31° above the horizon from the test site, so
these tests hold whatever the real time of day (the Alpaca mount follows the real sky) and on
the simulated evening the daemons' clock shows.
"""

import math
import os
import re
import sys
from datetime import datetime, timezone

import pytest
from astropy.io import fits

pytest.importorskip("alpaca", reason="alpyca is not installed (pip install alpyca)")

from alpaca.focuser import Focuser  # noqa: E402
from alpaca.telescope import PierSide, Telescope  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "devices"))

from alpaca_server import (CAMERA_HEIGHT, CAMERA_WIDTH, DEVICE_TIMEOUT,  # noqa: E402
                           FILTER_NAMES, FIXED_DOME, FOCUS_OFFSETS, FOCUSER_POSITION,
                           FOCUSER_TEMPERATURE, HOST, SITE, UNCOOLED_CAMERA, alpaca_server,
                           simulators)
from observatory import (ended, open_dome, settings, slit_and_wanted, status,  # noqa: E402
                         wait_until)
from torosmanager.ephemeris import apparent_sidereal_time, julian_dates  # noqa: E402
from torosmanager.devices.dome import azimuth_separation  # noqa: E402

__all__ = ["alpaca_server", "simulators"]  # fixtures, imported for pytest

TARGET = {"RA": 30.0, "Dec": 85.0}
FILTER = FILTER_NAMES[0]


def open_site(simulators, make_site, enclosure=0, camera=None, focuser=None,
              timeout=DEVICE_TIMEOUT, **dome):
    """The daemons on the Alpaca devices (the dome *enclosure*, *camera* and *focuser*
    settings, the devices' ``Timeout``, *dome* settings), the dome open."""
    def device(number):
        return simulators.settings(number, timeout=timeout)

    site = make_site(settings(
        speed=1, Clock={"Simulated With Devices": True},
        Telescope={"Mount": device(0), "Camera": camera or device(0), "Filter Wheel": device(0),
                   "Focuser": focuser or {"Driver": "none"}, "Poll Interval": 0.2},
        Observing={"Bias Frames": 1, "Dark Frames": 1, "Flat Frames": 1},
        Dome={"Enclosure": device(enclosure), "Safety Monitor": device(0),
              "Check Interval": 0.5, **dome}))
    simulators.catalogue.add_field(TARGET["RA"], TARGET["Dec"])
    site.start("preprocessor", "dome", "telescope", "scheduler")
    open_dome(site)
    return site


@pytest.fixture
def observatory(simulators, make_site):
    yield open_site(simulators, make_site)
    simulators.set_safe(True)


def at_hour_angle(simulators, hour_angle):
    """The target's declination at *hour_angle* degrees (west positive) from the test site
    now, in the real time the Alpaca mount follows, with stars around it."""
    utc1, utc2 = julian_dates(datetime.now(timezone.utc), 0.0)
    sidereal = math.degrees(apparent_sidereal_time(utc1, utc2, SITE["Longitude"]))
    target = {"RA": (sidereal - hour_angle) % 360, "Dec": TARGET["Dec"]}
    simulators.catalogue.add_field(target["RA"], target["Dec"])
    return target


def observe(site, order_id, **changes):
    order = {"ID": order_id, "WOType": "Observation", "Filter": FILTER, "Exposure Time": 1.0,
             "User": "test", **TARGET, **changes}
    site.proxy("telescope").front_desk(order)


def test_an_observation_slews_exposes_and_writes_fits(observatory):
    observe(observatory, "alpaca-1", **{"Number of Exposures": 2, "Calibration Frames": "Yes"})
    result = ended(observatory.proxy("telescope"), "alpaca-1", "done")
    files = result["Progress"]["Files"]
    assert len(files) == 5  # 2 lights, 1 bias, 1 dark, 1 flat
    kinds = []
    for path in files:
        with fits.open(path) as hdus:
            header, data = hdus[0].header, hdus[0].data
        assert data.shape == (CAMERA_HEIGHT, CAMERA_WIDTH)
        assert header["FILTER"] == FILTER and header["ORDERID"] == "alpaca-1"
        kinds.append(header["IMAGETYP"])
    assert sorted(kinds) == ["BIAS", "DARK", "FLAT", "LIGHT", "LIGHT"]
    pointing = observatory.proxy("telescope").front_desk({"WOType": "Status"})["Devices"][
        "Pointing"]
    assert pointing["Dec"] == pytest.approx(TARGET["Dec"], abs=0.05)


#: An azimuth the dome is turned to by hand, opposite the target (near north).
AWAY = 180.0


def test_no_frame_is_taken_before_the_dome_turns_its_slit_to_the_telescope(observatory):
    dome = observatory.proxy("dome")
    for number, change in enumerate(({"Follow Telescope": False}, {"Azimuth": AWAY},
                                     {"Follow Telescope": True})):
        dome.front_desk({"ID": f"by-hand-{number}", "WOType": "Dome", **change})
        ended(dome, f"by-hand-{number}", "done")
    observe(observatory, "alpaca-slit", **{"Calibration Frames": "No"})
    result = ended(observatory.proxy("telescope"), "alpaca-slit", "done")
    (waited,) = [entry["Reason"] for entry in result["History"]
                 if entry["Reason"].startswith("waiting for the dome's slit, ")]
    assert float(waited.split(", ")[-1].removesuffix("° away")) > 90
    pointing = observatory.proxy("telescope").front_desk({"WOType": "Status"})["Devices"][
        "Pointing"]
    devices = dome.front_desk({"WOType": "Status"})["Devices"]
    assert azimuth_separation(devices["Enclosure"]["Azimuth"], pointing["Azimuth"]) <= \
        devices["Follow Tolerance"]


#: A German equatorial mount off the centre of a small dome (see tests/test_dome.py).
OFF_CENTRE = {"Radius": 2.0, "Mount Offset North": 0.4, "Axis Offset": 0.8}
#: Degrees of hour angle of the target of the side-of-pier test: 11 h.
BELOW_THE_POLE_HOUR_ANGLE = 165.0


def test_the_slit_goes_to_the_side_of_the_pier_the_mount_reports(simulators, make_site):
    """An ASCOM mount that says which side of its pier it is on has its tube there, whatever
    the hour angle: the dome turns its slit there, and the frame is taken. The target is
    west of north, below the pole (hour angle 11 h, where the two sides need slits some 45°
    apart), and the mount says it is on the west side, looking east: its counterweight up,
    not the side the hour angle would give."""
    target = at_hour_angle(simulators, BELOW_THE_POLE_HOUR_ANGLE)
    Telescope(f"{HOST}:{simulators.port}", 0).SideOfPier = PierSide.pierWest
    site = open_site(simulators, make_site, **OFF_CENTRE)
    observe(site, "alpaca-gem", **target, **{"Calibration Frames": "No"})
    result = ended(site.proxy("telescope"), "alpaca-gem", "done")
    assert len(result["Progress"]["Files"]) == 1
    devices, pointing, (reported, by_hour_angle) = slit_and_wanted(site, "west", None)
    assert pointing["Pier Side"] == "west"
    tolerance = devices["Follow Tolerance"]
    assert azimuth_separation(devices["Enclosure"]["Azimuth"], reported) <= tolerance
    assert azimuth_separation(reported, by_hour_angle) > 10 * tolerance


#: Degrees of hour angle of the target of the meridian flip's test: 2 h west.
WEST_HOUR_ANGLE = 30.0


def test_a_mount_that_does_not_flip_is_asked_once(simulators, make_site):
    """The mount says it is on the west side of its pier, tracking a target 2 h past the
    meridian. Before the second frame the telescope slews to it again; the simulator stays
    on its side (it has no meridian limits), and the telescope says so once in its log and
    takes the other frames without asking again."""
    target = at_hour_angle(simulators, WEST_HOUR_ANGLE)
    Telescope(f"{HOST}:{simulators.port}", 0).SideOfPier = PierSide.pierWest
    site = open_site(simulators, make_site)
    observe(site, "alpaca-flip", **target,
            **{"Calibration Frames": "No", "Number of Exposures": 3})
    result = ended(site.proxy("telescope"), "alpaca-flip", "done")
    assert len(result["Progress"]["Files"]) == 3
    steps = [entry["Reason"] for entry in result["History"]]
    (flip,) = [step for step in steps if step.startswith("meridian flip: ")]
    assert steps[steps.index(flip) - 1] == "exposing 2/3"
    assert site.log("telescope").count("the mount did not flip") == 1


#: The devices' ``Timeout`` in the test below: each waits that long at its daemon's start.
SHORT_TIMEOUT = 2.0


def test_devices_that_did_not_answer_at_the_start_are_connected_once_they_do(simulators,
                                                                                make_site):
    """The device server did not answer when the telescope and dome daemons started
    (switched on later): every order failed, "not connected (connect() first)", and the dome
    stayed closed, its safety monitor unread, until the daemons were restarted. The
    telescope's devices are connected again before each order, the dome's every Check
    Interval, and until then the health Status says why each is not."""
    site = open_site(simulators, make_site, timeout=SHORT_TIMEOUT)
    site.daemons.pop("telescope").stop()
    site.daemons.pop("dome").stop()
    with simulators.paused():
        site.start("dome", "telescope")
        camera = site.proxy("telescope").front_desk({"WOType": "Status"})["Devices"]["Camera"]
        monitor = site.proxy("dome").front_desk({"WOType": "Status"})["Devices"][
            "Safety Monitor"]
    for report, name, kind in ((camera, "camera", "camera"),
                               (monitor, "safety monitor", "safetymonitor")):
        assert report["Connected"] is False
        assert report["Error"].startswith(f"cannot connect: {name} (Alpaca {kind} 0 at ")
        assert f"no answer within {SHORT_TIMEOUT:g} s" in report["Error"]
    telescope = site.proxy("telescope")

    # The scheduler opens the dome once its safety monitor answers.
    def dome_ready():
        devices = site.proxy("dome").front_desk({"WOType": "Status"})["Devices"]
        return devices["Safety"]["Safe"] and devices["Enclosure"]["Shutter"] == "open"

    wait_until(dome_ready, "the dome to be safe and open again")
    observe(site, "switched-on", **{"Calibration Frames": "No"})
    result = ended(telescope, "switched-on", "done")
    assert len(result["Progress"]["Files"]) == 1
    for service, devices in (("telescope", ("mount", "camera", "filter wheel")),
                             ("dome", ("dome", "safety monitor"))):
        for device in devices:
            assert f"the {device} answers now: connected" in site.log(service)
    camera = telescope.front_desk({"WOType": "Status"})["Devices"]["Camera"]
    assert camera["Connected"] is True and "Error" not in camera


def test_a_camera_that_cannot_set_its_temperature_is_not_waited_for(simulators, make_site):
    """A Cooling Setpoint for a camera whose CanSetCCDTemperature is false: said once, at the
    daemon's start, and the frames are taken at once."""
    camera = dict(simulators.settings(UNCOOLED_CAMERA), **{"Cooling Setpoint": -30.0})
    site = open_site(simulators, make_site, camera=camera)
    observe(site, "uncooled", **{"Calibration Frames": "No", "Number of Exposures": 2})
    result = ended(site.proxy("telescope"), "uncooled", "done")
    assert len(result["Progress"]["Files"]) == 2
    assert not [entry for entry in result["History"]
                if entry["Reason"].startswith("cooling the CCD")]
    log = site.log("telescope")
    assert log.count("cannot cool the CCD") == 1
    assert "CanSetCCDTemperature is false" in log


def test_a_dome_that_cannot_be_turned_is_no_longer_followed(simulators, make_site):
    """A dome that reports its azimuth but cannot be turned (CanSetAzimuth false): the dome
    daemon says so once and stops following it, and the telescope does not wait for a slit
    that will not come."""
    site = open_site(simulators, make_site, enclosure=FIXED_DOME)
    observe(site, "fixed", **{"Calibration Frames": "No"})
    result = ended(site.proxy("telescope"), "fixed", "done")
    assert len(result["Progress"]["Files"]) == 1
    devices = site.proxy("dome").front_desk({"WOType": "Status"})["Devices"]
    assert devices["Following Telescope"] is False
    assert devices["Enclosure"]["Azimuth"] == pytest.approx(180)
    assert site.log("dome").count("cannot turn the dome to the telescope") == 1
    assert "CanSetAzimuth is false" in site.log("dome")


#: Long enough for the unsafe signal to interrupt the first frame.
INTERRUPTED_EXPOSURE = 5.0


def test_an_unsafe_signal_closes_the_dome_and_interrupts_the_observation(observatory,
                                                                            simulators):
    observe(observatory, "alpaca-2", **{"Exposure Time": INTERRUPTED_EXPOSURE,
                                        "Number of Exposures": 20})
    telescope = observatory.proxy("telescope")
    wait_until(lambda: status(telescope, "alpaca-2")["Progress"].get("Step", "").startswith(
        "exposing"), "the first exposure")
    simulators.set_safe(False)

    def interrupted():
        answer = status(telescope, "alpaca-2")
        return answer if answer["Status"] == "interrupted" else None

    result = wait_until(interrupted, "the unsafe signal to interrupt the observation")
    assert "weather unsafe: IsSafe false reported by" in result["Message"]
    dome = observatory.proxy("dome").front_desk({"WOType": "Status"})["Devices"]
    assert dome["Enclosure"]["Shutter"] in ("closing", "closed")
    assert "weather unsafe" in dome["Enclosure"]["Closed By"]
    wait_until(lambda: telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"]["Parked"],
               "the mount to park")
    # The exposure the daemon aborted goes on in the server until its time is up.
    simulators.wait_for_aborted_exposure(INTERRUPTED_EXPOSURE + DEVICE_TIMEOUT)


#: A focus model 100 steps from the simulated camera's focus through Red (the focuser at
#: 10,000, where its stars are sharpest; the wheel's driver keeps Red's focus 100 steps lower,
#: and the configuration gives no Filter Offsets of its own), and a short run around it.
AUTOFOCUS = {"Best Position": FOCUSER_POSITION, "Autofocus": True, "Autofocus Step": 100,
             "Autofocus Points": 5, "Autofocus Minimum Points": 4, "Autofocus Exposure": 0.2}


def test_autofocus_finds_the_focus_of_the_alpaca_camera_s_stars(simulators, make_site):
    """alpaca-simulators renders its camera's stars wider the farther its focuser 0 is from
    10,000 steps: a focus run around the model's 9,900 through Red (its Best Position less
    the wheel's offset for Red) finds it, and the frame is taken there, the focuser moved
    through Alpaca."""
    focuser = dict(simulators.settings(0), **AUTOFOCUS)
    site = open_site(simulators, make_site, focuser=focuser)
    assert "focus offsets from the filter wheel (Telescope → Focuser → Filter Offsets gives " \
           "none): Red -100, Green -100, Blue +50, Clear +0, Luminance +100" in \
        site.log("telescope")
    observe(site, "alpaca-autofocus", **{"Calibration Frames": "No"})
    result = ended(site.proxy("telescope"), "alpaca-autofocus", "done")
    assert [entry["Reason"] for entry in result["History"]
            if entry["Reason"].startswith("autofocus")] == [
        f"autofocus: frame {number}/5 at {position}"
        for number, position in enumerate(range(9_700, 10_101, 100), start=1)]
    found = re.search(r"autofocus: best focus at (\d+) through "
                      rf"{FILTER} at {FOCUSER_TEMPERATURE:g} °C", site.log("telescope"))
    assert found and abs(int(found[1]) - FOCUSER_POSITION) <= 30
    header = fits.getheader(result["Progress"]["Files"][0])
    assert (header["FOCUSPOS"], header["FOCUSTEM"]) == (int(found[1]), FOCUSER_TEMPERATURE)
    assert Focuser(f"{HOST}:{simulators.port}", 0).Position == int(found[1])
    focus = site.proxy("telescope").front_desk({"WOType": "Status"})["Focus"]
    assert focus["Best Position"] == int(found[1]) + 100  # through a filter of offset 0
    assert focus["Filter Offsets"] == dict(zip(FILTER_NAMES, FOCUS_OFFSETS))
