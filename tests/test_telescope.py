"""The telescope daemon executes Observation orders end to end on the simulated observatory."""

import os
import re
import socket
import time
from datetime import datetime, timedelta, timezone

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from observatory import (ended, open_dome, refusal, settings, slit_and_wanted, status, step,
                         wait_until)
from conftest import EVENING
from torosmanager.devices.dome import azimuth_separation
from torosmanager.devices.simulator.camera import CCD_TEMPERATURE
from torosmanager.devices.simulator.frames import FrameModel
from torosmanager.examples import MANUAL_OBSERVATION
from torosmanager.launcher import free_port
from torosmanager.night import Night
from torosmanager.workorders import FaultCode

REQUIRED_HEADERS = ("DATE-OBS", "DATE-END", "TIMESYS", "MJD-OBS", "MJD-AVG", "EXPTIME",
                    "IMAGETYP", "FILTER", "OBJECT", "RA", "DEC", "OBJCTRA", "OBJCTDEC", "AIRMASS",
                    "TELESCOP", "INSTRUME", "OBSERVAT", "SITELAT", "SITELONG", "SITEELEV", "GAIN",
                    "RDNOISE", "XBINNING", "YBINNING", "CCD-TEMP", "ORDERID", "OBSERVER",
                    "JOBTYPE")


@pytest.fixture(scope="module")
def observatory(tmp_path_factory):
    from conftest import Site
    site = Site(tmp_path_factory.mktemp("observatory"), settings()).start(
        "preprocessor", "dome", "telescope", "scheduler")
    open_dome(site)
    yield site
    site.stop()


#: Simulated minutes ahead of the clock an order's Not Before is sent: 12 real seconds at 100×.
NOT_BEFORE_AHEAD_MINUTES = 20


def observation(order_id, **changes):
    order = {"ID": order_id, "WOType": "Observation", "RA": 23.1, "Dec": 13.2, "Filter": "V",
             "Exposure Time": 30.0, "User": "test"}
    order.update(changes)
    return order


@pytest.fixture(scope="module")
def result(observatory):
    """The manual's example, submitted to the scheduler, with calibration frames and analysis."""
    observatory.proxy("scheduler").front_desk(MANUAL_OBSERVATION)
    return ended(observatory.proxy("telescope"), "1", "done")


class TestTheManualsObservation:

    def test_it_takes_the_light_then_bias_and_darks(self, result):
        steps = [entry["Reason"] for entry in result["History"]]
        for expected in ("slewing to RA 23.1000° Dec +13.2000°", "filter I", "exposing 1/1",
                         "bias 1/2", "bias 2/2", "dark 1/2", "dark 2/2", "flat 1/1"):
            assert expected in steps
        assert steps.index("exposing 1/1") < steps.index("bias 1/2") < steps.index("dark 1/2")
        assert result["Progress"]["Frames Done"] == 1
        assert len(result["Progress"]["Files"]) == 6

    def test_frames_are_in_the_night_directory_with_complete_headers(self, observatory, result):
        night = observatory.directory / "data" / "20261109" / "raw"  # the evening of Nov 9
        files = result["Progress"]["Files"]
        assert sorted(os.listdir(night)) == sorted(os.path.basename(path) for path in files)
        kinds = []
        for path in files:
            with fits.open(path) as hdus:
                header, data = hdus[0].header, hdus[0].data
            missing = [key for key in REQUIRED_HEADERS if key not in header]
            assert not missing, f"{path} lacks {missing}"
            assert data.shape == (256, 256) and data.dtype == np.uint16
            assert header["ORDERID"] == "1" and header["OBSERVER"] == "Main Module"
            assert header["TELESCOP"] == "CTMO" and header["OBSERVAT"] == "CTMO"
            assert header["FILTER"] == "I"
            assert header["SITELAT"] == pytest.approx(25.9958)
            assert header["RA"] == pytest.approx(23.1, abs=1e-3)
            assert header["DEC"] == pytest.approx(13.2, abs=1e-3)
            assert header["AIRMASS"] >= 1.0
            start = datetime.fromisoformat(header["DATE-OBS"])
            assert EVENING - timedelta(minutes=1) <= start.replace(tzinfo=EVENING.tzinfo)
            end = datetime.fromisoformat(header["DATE-END"])
            assert (end - start).total_seconds() == pytest.approx(header["EXPTIME"])
            assert header["MJD-OBS"] == pytest.approx(Time(start, scale="utc").mjd, abs=1e-7)
            assert (header["MJD-AVG"] - header["MJD-OBS"]) * 86400 == pytest.approx(
                header["EXPTIME"] / 2, abs=0.01)
            assert Angle(header["OBJCTRA"], unit="hourangle").degree == pytest.approx(
                header["RA"], abs=1e-4)
            assert Angle(header["OBJCTDEC"], unit="deg").degree == pytest.approx(
                header["DEC"], abs=1e-4)
            assert header["CCD-TEMP"] == CCD_TEMPERATURE
            assert header["JOBTYPE"] == "Research" and "GROUPID" not in header
            assert "FOCUSPOS" not in header  # no focuser by default
            kinds.append((header["IMAGETYP"], header["EXPTIME"]))
        assert sorted(kinds) == sorted([("LIGHT", 30.0), ("BIAS", 0.0), ("BIAS", 0.0),
                                        ("DARK", 30.0), ("DARK", 30.0), ("FLAT", 2.0)])

    def test_the_frames_look_like_their_kind(self, result):
        images = {}
        for path in result["Progress"]["Files"]:
            with fits.open(path) as hdus:
                images.setdefault(hdus[0].header["IMAGETYP"], []).append(
                    hdus[0].data.astype(float))
        bias, dark, light, flat = (np.median(images[kind][0])
                                   for kind in ("BIAS", "DARK", "LIGHT", "FLAT"))
        assert bias < dark < light < flat  # dark current, then sky; a flat is bright

    def test_no_half_written_file_is_left(self, observatory, result):
        night = observatory.directory / "data" / "20261109" / "raw"
        assert not [name for name in os.listdir(night) if name.endswith(".part")]

    def test_the_frames_are_handed_to_the_preprocessor(self, observatory, result):
        handed = result["Progress"]["Preprocessing ID"]
        order = status(observatory.proxy("preprocessor"), handed)
        assert order["Work Order"]["File Location"] == result["Progress"]["Files"]
        assert "handed to the preprocessor" in result["Message"]
        # At the observation's priority: a target of opportunity's frames go first.
        assert order["Priority"] == result["Priority"] == MANUAL_OBSERVATION["Priority"]


class TestRefusals:
    @pytest.mark.parametrize("changes, message", [
        ({"Telescope Name": "Macon"}, "'Telescope Name': received 'Macon'; allowed: 'CTMO'"),
        ({"Filter": "Z"}, "'Filter': received 'Z'; allowed: one of 'U', 'B', 'V', 'R', 'I'"),
        ({"Exposure Time": 3601}, "'Exposure Time': received 3601.0; allowed: at most 3600 seconds"),
        ({"Number of Exposures": 501}, "'Number of Exposures': received 501; allowed: at most 500"),
        ({"Dec": -85.0}, "allowed: a target that rises above 20° (Observing → Minimum Altitude)"),
    ])
    def test_at_the_front_desk(self, observatory, changes, message):
        fault = refusal(observatory.proxy("telescope").front_desk,
                        observation("refused", **changes))
        assert fault.faultCode == FaultCode.INVALID
        assert message in fault.faultString


def test_progress_is_visible_and_cancel_aborts_and_parks(observatory):
    telescope = observatory.proxy("telescope")
    telescope.front_desk(observation("long", **{"Exposure Time": 600,
                                                "Number of Exposures": 3}))
    wait_until(lambda: status(telescope, "long")["Progress"].get("Step") == "exposing 1/3",
               "the first exposure")
    receipt = telescope.front_desk({"WOType": "Cancel", "ID": "long", "User": "operator"})
    assert receipt["Status"] == "cancelled"
    wait_until(lambda: telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"]["Parked"],
               "the mount to park")
    final = status(telescope, "long")
    assert final["Status"] == "cancelled" and final["Progress"]["Frames Done"] == 0
    assert final["Progress"]["Files"] == []


def simulated_now(site):
    """The site's simulated clock's time now, as its daemons read it."""
    clock = site.config["Clock"]
    return clock["Start"] + (datetime.now(timezone.utc) - clock["Anchor"]) * clock["Speed"]


def test_a_window_ended_or_a_later_night_is_refused_and_a_not_before_tonight_waited_for(
        observatory):
    telescope = observatory.proxy("telescope")
    now = simulated_now(observatory)
    ended_at = (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    late = refusal(telescope.front_desk, observation("late", **{"Not After": ended_at}))
    assert late.faultCode == FaultCode.INVALID
    assert late.faultString.startswith(f"'Not After': received '{ended_at}.000Z'; allowed: an "
                                       "instant still to come")
    tomorrow = (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    early = refusal(telescope.front_desk, observation("tomorrow", **{"Not Before": tomorrow}))
    assert "allowed: an instant before tonight's end" in early.faultString
    # Sent ahead of its start: it waits in the queue until Not Before Lead (5 min) before it,
    # and an order ready now, sent after it, runs meanwhile.
    start = (now + timedelta(minutes=NOT_BEFORE_AHEAD_MINUTES)).replace(microsecond=0)
    telescope.front_desk(observation("waits", **{
        "Not Before": start.strftime("%Y-%m-%dT%H:%M:%S"), "Exposure Time": 1.0}))
    telescope.front_desk(observation("ready", **{"Exposure Time": 1.0,
                                                 "Calibration Frames": "No"}))
    ended(telescope, "ready", "done")
    assert telescope.front_desk({"WOType": "Status", "ID": "waits"})["Status"] == "queued"
    done = ended(telescope, "waits", "done")
    steps = [entry["Reason"] for entry in done["History"]]
    assert f"waiting for its Not Before, {start:%Y-%m-%dT%H:%M:%S}.000Z" in steps
    header = fits.getheader(done["Progress"]["Files"][0])
    assert Time(header["DATE-OBS"], scale="utc") >= Time(start)


def test_a_target_of_opportunity_with_a_later_not_before_interrupts_once_taken_up(
        observatory):
    """Not at its arrival: the order under way runs until the target of opportunity is taken
    up, Not Before Lead (5 min) before its Not Before."""
    telescope = observatory.proxy("telescope")
    telescope.front_desk(observation("lesser", **{"Exposure Time": 1200.0,
                                                  "Calibration Frames": "No"}))
    wait_until(lambda: status(telescope, "lesser")["Progress"].get("Step") == "exposing 1/1",
               "the long exposure")
    start = (simulated_now(observatory) + timedelta(minutes=8)).replace(microsecond=0)
    telescope.front_desk(observation("too-later", **{
        "Priority": 10.0, "Exposure Time": 1.0, "Calibration Frames": "No",
        "Not Before": f"{start:%Y-%m-%dT%H:%M:%S}"}))
    time.sleep(0.6)  # 60 simulated seconds, of the 180 before it is taken up
    assert status(telescope, "lesser")["Status"] == "running"
    interrupted = ended(telescope, "lesser", "interrupted")
    assert interrupted["Message"].startswith("interrupted by target of opportunity too-later")
    done = ended(telescope, "too-later", "done")
    assert Time(fits.getheader(done["Progress"]["Files"][0])["DATE-OBS"]) >= Time(start)


def test_no_frame_starts_that_would_end_after_the_orders_not_after(observatory):
    # 600 s frames (and 10 s readouts), a window of 25 min: two frames, then done, saying so.
    telescope = observatory.proxy("telescope")
    deadline = (simulated_now(observatory) + timedelta(minutes=25)).replace(microsecond=0)
    telescope.front_desk(observation("window", **{
        "Exposure Time": 600.0, "Number of Exposures": 5,
        "Not After": deadline.strftime("%Y-%m-%dT%H:%M:%S")}))
    done = ended(telescope, "window", "done")
    assert done["Progress"]["Frames Done"] == 2 and len(done["Progress"]["Files"]) == 2
    assert done["Message"].endswith(f"; 2 of 5 light frame(s), and no calibration frame: its "
                                    f"window ended at {deadline:%Y-%m-%dT%H:%M:%S}.000Z "
                                    "(Not After)")
    last = fits.getheader(done["Progress"]["Files"][-1])
    assert Time(last["DATE-OBS"]) + 600 * u.s <= Time(deadline)


def rising_target(site, low, high, at=None):
    """The RA of a target on the equator rising through *low*–*high* degrees of altitude
    now (or *at*)."""
    night, at = Night(site.config["Site"]), at or simulated_now(site)
    for ra in np.arange(0.0, 360.0, 0.05):
        altitude = night.altitude_at(at, ra, 0.0)
        if low <= altitude <= high and night.altitude_at(at + timedelta(minutes=10), ra,
                                                         0.0) > altitude:
            return float(ra)
    raise AssertionError(f"no target rising through {low}–{high}°")


def test_a_target_below_the_minimum_altitude_is_not_slewed_to(observatory):
    # Rising, and up later tonight (so accepted): the slew waits, and the order is
    # interrupted for the scheduler to try later, saying when.
    telescope = observatory.proxy("telescope")
    telescope.front_desk(observation("low", RA=rising_target(observatory, 5.0, 10.0),
                                     Dec=0.0))
    result = ended(telescope, "low", "interrupted")
    assert re.fullmatch(r"not started: the target is at \d+\.\d° of altitude, below Observing "
                        r"→ Minimum Altitude \(20°\); it is above it from \d\d:\d\d UTC",
                        result["Message"]), result["Message"]
    assert not any(entry["Reason"].startswith("slewing") for entry in result["History"])


def test_a_target_not_up_yet_waits_for_its_not_before_before_the_slew(observatory):
    # Taken up Not Before Lead (5 min) ahead, when the target is still below the Minimum
    # Altitude (20°), which it passes, rising some 0.2° a minute, before its Not Before.
    telescope = observatory.proxy("telescope")
    start = (simulated_now(observatory) + timedelta(minutes=8)).replace(microsecond=0)
    ra = rising_target(observatory, 19.0, 19.5, at=start - timedelta(minutes=5))
    assert Night(observatory.config["Site"]).altitude_at(start, ra, 0.0) >= 20.2
    telescope.front_desk(observation("rises", RA=ra, Dec=0.0, **{
        "Calibration Frames": "No", "Not Before": f"{start:%Y-%m-%dT%H:%M:%S}"}))
    done = ended(telescope, "rises", "done")
    steps = [entry["Reason"] for entry in done["History"]]
    waited = steps.index(f"waiting for its Not Before, {start:%Y-%m-%dT%H:%M:%S}.000Z")
    assert waited < next(index for index, step in enumerate(steps)
                         if step.startswith("slewing"))
    assert fits.getheader(done["Progress"]["Files"][0])["ALTITUDE"] >= 20.0


def test_an_order_whose_window_ends_while_it_waits_its_turn_expires(observatory):
    telescope = observatory.proxy("telescope")
    telescope.front_desk(observation("before-it", **{"Exposure Time": 1200.0}))
    deadline = simulated_now(observatory) + timedelta(minutes=5)
    telescope.front_desk(observation("expires", **{
        "Not After": deadline.strftime("%Y-%m-%dT%H:%M:%S")}))
    expired = ended(telescope, "expires", "failed")
    assert expired["Message"] == (f"expired: its window ended at "
                                  f"{deadline:%Y-%m-%dT%H:%M:%S}.000Z")
    assert expired["Progress"].get("Files", []) == []
    # It was found expired at its turn, once the order before it had ended.
    assert status(telescope, "before-it")["Status"] == "done"


def test_a_closed_dome_interrupts_instead_of_exposing(make_site):
    site = make_site(settings()).start("dome", "telescope")  # no scheduler: no heartbeat
    site.proxy("telescope").front_desk(observation("blind"))
    result = ended(site.proxy("telescope"), "blind", "interrupted")
    assert result["Message"].startswith("not started: the dome reports unsafe conditions")
    assert "no heartbeat from the scheduler yet" in result["Message"]


def test_a_focuser_that_does_not_answer_does_not_fail_the_observations(make_site):
    """An optional focuser whose server is off (no focus model uses it): the devices not
    connected at start are tried again before each order, and every observation failed
    "cannot connect the focuser". Only the mount, camera and filter wheel are needed."""
    focuser = {"Driver": "alpaca", "Host": "127.0.0.1", "Port": free_port(),
               "Device Number": 0, "Timeout": 1.0}
    site = make_site(settings(Telescope={"Focuser": focuser}))
    site.start("dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("unfocused"))
    assert len(ended(telescope, "unfocused", "done")["Progress"]["Files"]) == 1
    report = telescope.front_desk({"WOType": "Status"})["Devices"]["Focuser"]
    assert report["Connected"] is False
    assert report["Error"].startswith("cannot connect: focuser (Alpaca focuser 0 at ")


#: The ``Timeout`` of a camera that never answers, in the test below: long beside a park.
HUNG_CAMERA_TIMEOUT = 5.0


def test_a_park_does_not_wait_for_a_camera_that_never_answered(make_site):
    """The camera's server accepts connections and never answers: every Park first tried to
    connect it again, and waited its whole Timeout before the mount moved (the dome's Park as
    it closes for rain). A Park tries the mount alone, and aborts no device that never
    connected."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        camera = {"Driver": "alpaca", "Host": "127.0.0.1", "Port": hung.getsockname()[1],
                  "Device Number": 0, "Timeout": HUNG_CAMERA_TIMEOUT}
        site = make_site(settings(Telescope={"Camera": camera})).start("telescope")
        telescope = site.proxy("telescope")
        started = time.monotonic()
        telescope.front_desk({"ID": "stow", "WOType": "Park", "Reason": "test", "User": "test"})
        ended(telescope, "stow", "done")
        assert time.monotonic() - started < HUNG_CAMERA_TIMEOUT / 2
        assert "could not abort the camera" not in site.log("telescope")
        site.stop()


def test_a_dome_closed_between_frames_stops_the_order_after_the_frames_taken(make_site):
    site = make_site(settings(Scheduler={"Manage Dome": False})).start(
        "dome", "telescope", "scheduler")  # the scheduler's heartbeat keeps the dome safe
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("closed", **{"Exposure Time": 600,
                                                  "Number of Exposures": 3}))
    wait_until(lambda: status(telescope, "closed")["Progress"].get("Step") == "exposing 1/3",
               "the first exposure")
    wait_until(lambda: status(telescope, "closed")["Progress"]["Frames Done"] == 1,
               "the first frame")
    site.proxy("dome").front_desk({"ID": "close", "WOType": "Dome", "Shutter": "Close",
                                   "User": "operator"})
    ended(site.proxy("dome"), "close", "done")
    # Closed by hand as for safety: the telescope is told to park, and the frame under way is
    # aborted, not written as if the shutter had stayed open. (On a loaded machine the
    # telescope may see the shutter closing itself, before the dome's Park order reaches it.)
    result = ended(telescope, "closed", "interrupted")
    assert result["Message"].startswith((
        "dome closing: Dome order close from operator (Park order ",
        "stopped after 1 frame(s): the dome shutter is closing")), result["Message"]
    assert len(result["Progress"]["Files"]) == 1


#: Degrees per simulated second a slow dome turns in the tests below (the simulator's default
#: is 5): the turn of some 100° to the target takes minutes of the clock, seconds of the test.
SLOW_DOME_RATE = 0.5


def test_no_light_frame_is_taken_before_the_slit_reaches_the_telescope(make_site):
    site = make_site(settings(Scheduler={"Manage Dome": False},
                              Simulator={"Dome Rotation Rate": SLOW_DOME_RATE})).start(
        "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("slit", **{"Calibration Frames": "No"}))
    result = ended(telescope, "slit", "done")
    history = [(entry["Reason"], datetime.fromisoformat(entry["Time"].replace("Z", "+00:00")))
               for entry in result["History"]]
    ((waiting, since),) = [(reason, time) for reason, time in history if "slit" in reason]
    lag = float(waiting.split(", ")[-1].removesuffix("° away"))
    assert waiting.startswith("waiting for the dome's slit, ") and lag > 3
    steps = [reason for reason, _ in history]
    assert steps.index("filter V") < steps.index(waiting) < steps.index("exposing 1/1")
    (exposing,) = [time for reason, time in history if reason == "exposing 1/1"]
    # The dome turns the lag, less the tolerance it may lag by, before the frame starts.
    assert (exposing - since).total_seconds() >= (lag - 3 - 1) / SLOW_DOME_RATE
    with fits.open(result["Progress"]["Files"][0]) as frame:
        assert Time(frame[0].header["DATE-OBS"]).datetime >= exposing.replace(tzinfo=None)


def test_a_slit_that_does_not_come_interrupts_the_order(make_site):
    site = make_site(settings(Scheduler={"Manage Dome": False},
                              Simulator={"Dome Rotation Rate": SLOW_DOME_RATE},
                              Telescope={"Slit Timeout": 20})).start(
        "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("no-slit"))
    result = ended(telescope, "no-slit", "interrupted")
    assert re.fullmatch(r"not started: the dome's slit did not come within 3° of the telescope "
                        r"in 20 s \(Telescope → Slit Timeout\): still \d+\.\d° away",
                        result["Message"]), result["Message"]
    assert result["Progress"]["Files"] == []


#: °C the CCD is cooled to in the tests below, from the simulated camera's −20 °C.
SETPOINT = -30.0


def test_frames_wait_for_the_ccd_to_reach_its_setpoint(make_site):
    """The telescope daemon starts the cooler at its start; the first frame waits until the
    CCD is within Cooling Tolerance of the setpoint (10 °C at 1 °C per minute: some ten
    minutes of the clock, from the daemon's start), the wait shown again at each degree."""
    site = make_site(settings(Scheduler={"Manage Dome": False},
                              Simulator={"Cooling Rate": 1.0},
                              Telescope={"Camera": {"Cooling Setpoint": SETPOINT}})).start(
        "dome", "telescope", "scheduler")
    assert "cooling the CCD to -30 °C (Telescope → Camera → Cooling Setpoint)" in \
        site.log("telescope")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("cold", **{"Calibration Frames": "No"}))
    result = ended(telescope, "cold", "done")
    steps = [entry["Reason"] for entry in result["History"]]
    cooling = [step for step in steps if step.startswith("cooling the CCD")]
    shown = [float(re.fullmatch(r"cooling the CCD to -30 °C, now (-2\d\.\d) °C", step)[1])
             for step in cooling]
    # Shown again at each degree, colder each time, then the frame.
    assert shown == sorted(shown, reverse=True) and shown[0] - shown[-1] >= len(shown) - 1
    assert steps[steps.index(cooling[-1]) + 1] == "exposing 1/1"
    header = fits.getheader(result["Progress"]["Files"][0])
    assert abs(header["CCD-TEMP"] - SETPOINT) <= 1.0


def test_a_ccd_that_does_not_cool_in_time_is_said_once_and_the_frames_are_taken(make_site):
    site = make_site(settings(Scheduler={"Manage Dome": False},
                              Simulator={"Cooling Rate": 0.1},
                              Telescope={"Camera": {"Cooling Setpoint": SETPOINT,
                                                    "Cooling Timeout": 60.0}})).start(
        "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("warm", **{"Calibration Frames": "Yes",
                                                "Number of Exposures": 2}))
    result = ended(telescope, "warm", "done")
    assert len(result["Progress"]["Files"]) == 2 + 2 + 2 + 1  # lights, bias, dark, flat
    steps = [entry["Reason"] for entry in result["History"]]
    assert len([step for step in steps if step.startswith("cooling the CCD")]) == 1
    log = site.log("telescope")
    assert log.count("taking the frames anyway") == 1
    assert re.search(r"the CCD is at -2\d\.\d °C, not within 1 °C of its setpoint -30 °C after "
                     r"60 s \(Telescope → Camera → Cooling Timeout\)", log)
    temperatures = [fits.getheader(path)["CCD-TEMP"] for path in result["Progress"]["Files"]]
    assert all(-30 < temperature < -20 for temperature in temperatures)


#: A German equatorial mount off the centre of a small dome (as in tests/test_dome.py): the
#: two sides of the pier need slits tens of degrees apart near the meridian.
OFF_CENTRE = {"Radius": 2.0, "Mount Offset North": 0.4, "Axis Offset": 0.8}


def assert_the_wcs_finds_the_stars(path, simulator):
    """The five brightest unsaturated stars well inside the frame at *path*, none other near,
    are where its WCS puts them (their centroids within half a pixel: a position angle a
    third of a degree off would move them farther), the sky's stars being
    those the *simulator* settings make."""
    header, image = fits.getheader(path), fits.getdata(path).astype(float)
    stars = FrameModel(simulator).field_stars(header["RA"], header["DEC"])
    x, y = WCS(header).world_to_pixel_values(stars.ra, stars.dec)
    margin, half = 20, 4
    height, width = image.shape
    nearest = np.hypot(x[:, None] - x, y[:, None] - y) + np.diag(np.full(len(x), np.inf))
    inside = np.flatnonzero((x > margin) & (x < width - margin) & (y > margin)
                            & (y < height - margin) & (nearest.min(axis=1) > 4 * half))
    checked = 0
    for star in inside[np.argsort(stars.rate[inside])[::-1]]:
        row, column = int(round(y[star])), int(round(x[star]))
        box = np.s_[row - half:row + half + 1, column - half:column + half + 1]
        if image[box].max() >= header["SATURATE"] * 0.9:
            continue
        signal = image[box] - np.median(image[row - 3 * half:row + 3 * half,
                                              column - 3 * half:column + 3 * half])
        rows, columns = np.mgrid[box]
        assert (signal * columns).sum() / signal.sum() == pytest.approx(x[star], abs=0.5)
        assert (signal * rows).sum() / signal.sum() == pytest.approx(y[star], abs=0.5)
        checked += 1
        if checked == 5:
            return
    raise AssertionError(f"fewer than 5 unsaturated stars to check on {path}")


def test_a_german_mount_flips_between_frames_once_past_the_meridian(make_site):
    """The target 1° (4 min) east of the meridian, six 2-minute frames, a flip due 2 min past
    it: once, between two frames, the telescope slews to the target again, the mount goes
    over to the east side of its pier, the dome turns its slit there, and every frame is
    taken, its PIERSIDE saying which side it was taken from and its WCS, turned 180° after
    the flip, where the stars are."""
    orientation = {"Pixel Scale": 1.0, "Position Angle": 30.0}
    # Ten times the default density of stars: a 256² frame of 1" pixels has some 100.
    site = make_site(settings(Scheduler={"Manage Dome": False},
                              Simulator=dict(orientation, **{"German Equatorial": True,
                                                             "Star Density": 20_000.0}),
                              Telescope={"Meridian Flip After": 2.0, "Camera": orientation},
                              Dome=OFF_CENTRE)).start("dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    zenith = telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"]  # parked
    telescope.front_desk(observation("flip", RA=(zenith["RA"] + 1.0) % 360, Dec=-10.0,
                                     **{"Exposure Time": 120, "Number of Exposures": 6,
                                        "Calibration Frames": "No"}))
    result = ended(telescope, "flip", "done")
    assert len(result["Progress"]["Files"]) == 6
    steps = [entry["Reason"] for entry in result["History"]]
    (flip,) = [step for step in steps if step.startswith("meridian flip: ")]
    assert flip.endswith(" min past the meridian, the tube on the west side of the pier")
    assert float(flip.split()[2]) >= 2.0
    # Between two frames: after the first, and the next frame's step journaled again after.
    at = steps.index(flip)
    assert steps[at - 1].startswith("exposing ") and steps[at - 1] != "exposing 1/6"
    assert steps[at - 1] in steps[at + 1:]
    assert "now on the east side of the pier" in site.log("telescope")
    sides = [fits.getheader(path)["PIERSIDE"] for path in result["Progress"]["Files"]]
    flipped_at = sides.index("EAST")
    assert 0 < flipped_at and sides == ["WEST"] * flipped_at + ["EAST"] * (6 - flipped_at)
    for path in (result["Progress"]["Files"][0], result["Progress"]["Files"][flipped_at]):
        assert_the_wcs_finds_the_stars(path, site.config["Simulator"])
    devices, pointing, (looking_west, looking_east) = slit_and_wanted(site, "east", "west")
    assert pointing["Pier Side"] == "east"
    assert azimuth_separation(devices["Enclosure"]["Azimuth"], looking_west) <= \
        devices["Follow Tolerance"]
    assert azimuth_separation(looking_west, looking_east) > 10 * devices["Follow Tolerance"]


#: The focus model of the test below: the focus moves 20 steps outward per °C the tube cools,
#: and 40 steps outward through V.
FOCUS_MODEL = {"Driver": "simulator", "Best Position": 50_000, "Reference Temperature": 12.0,
               "Temperature Coefficient": -20.0, "Filter Offsets": {"V": 40, "B": 70},
               "Tolerance": 5}
#: °C an hour the simulated tube cools: 2 °C over the test's night of 12 minutes.
FAST_COOLING = 10.0


def test_the_focus_follows_the_filter_and_the_tube_s_temperature(make_site):
    """The focuser goes where the focus model wants it once the filter is set, and again
    between frames as the tube cools; every frame's header says where it was and how warm."""
    site = make_site(settings(Scheduler={"Manage Dome": False},
                              Simulator={"Tube Temperature": 12.0,
                                         "Tube Cooling Rate": FAST_COOLING},
                              Telescope={"Focuser": FOCUS_MODEL})).start(
        "dome", "telescope", "scheduler")
    assert "focus model: Best Position 50000, the focuser at 50000 of 0–100000" in \
        site.log("telescope")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("focus", **{"Exposure Time": 120, "Number of Exposures": 6,
                                                 "Calibration Frames": "No"}))
    result = ended(telescope, "focus", "done")
    steps = [entry["Reason"] for entry in result["History"]]
    focusing = [step for step in steps if step.startswith("focusing: ")]
    first = re.fullmatch(r"focusing: 50000 → (\d+) \(best 50000, filter V \+40, ([\d.]+) °C: "
                         r"\+(\d+)\)", focusing[0])
    assert first, focusing[0]
    drift = round(-20.0 * (float(first[2]) - 12.0))
    assert (int(first[1]), int(first[3])) == (50_000 + 40 + drift, drift)
    assert steps.index(focusing[0]) == steps.index("filter V") + 1
    assert len(focusing) >= 3  # again between frames, as the tube cooled
    positions, temperatures = [], []
    for path in result["Progress"]["Files"]:
        header = fits.getheader(path)
        positions.append(header["FOCUSPOS"])
        temperatures.append(header["FOCUSTEM"])
        wanted = 50_000 + 40 - 20.0 * (header["FOCUSTEM"] - 12.0)
        assert abs(header["FOCUSPOS"] - wanted) <= FOCUS_MODEL["Tolerance"] + 1
    assert temperatures[0] - temperatures[-1] > 1.0
    assert positions == sorted(positions) and positions[-1] - positions[0] > 20
    focuser = telescope.front_desk({"WOType": "Status"})["Devices"]["Focuser"]
    assert (focuser["Driver"], focuser["Position"]) == ("simulator", positions[-1])


#: A focus model 1,500 steps from the simulator's focus (its Best Focus, 50,000 at the Tube
#: Temperature, 12 °C): stars 3" wide instead of 2", which an autofocus must find and correct.
WRONG_FOCUS_MODEL = dict(FOCUS_MODEL, **{"Best Position": 48_500, "Filter Offsets": {},
                                         "Autofocus": True, "Autofocus Exposure": 30.0})


def test_autofocus_finds_the_focus_the_model_missed(make_site):
    """A focus run on the target's field before the night's first light frame (but a target
    of opportunity's): nine frames 500 steps apart around where the model puts focus, each
    frame's stars measured, the V-curve fitted. The frames are then taken at the focus
    found, which the model follows on."""
    site = make_site(settings(Scheduler={"Manage Dome": False},
                              Simulator={"Tube Temperature": 12.0, "Tube Cooling Rate": 0.0,
                                         "Width": 512, "Height": 512,
                                         "Focus Temperature Coefficient": -20.0},
                              Telescope={"Focuser": WRONG_FOCUS_MODEL})).start(
        "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    # A target of opportunity does not wait for the run: the next order makes it.
    telescope.front_desk(observation("too", Priority=10.0, **{"Calibration Frames": "No"}))
    too = ended(telescope, "too", "done")
    assert not [entry for entry in too["History"] if entry["Reason"].startswith("autofocus")]
    assert "[WO too] autofocus is due, but a target of opportunity does not wait for it" in \
        site.log("telescope")
    telescope.front_desk(observation("autofocus", **{"Number of Exposures": 2,
                                                     "Calibration Frames": "No"}))
    result = ended(telescope, "autofocus", "done")
    steps = [entry["Reason"] for entry in result["History"]]
    runs = [step for step in steps if step.startswith("autofocus: frame ")]
    assert runs == [f"autofocus: frame {number}/9 at {48_500 + 500 * (number - 5)}"
                    for number in range(1, 10)]
    found = re.search(r"autofocus: best focus at (\d+) through V at 12 °C \(46500: ([\d.]+) px",
                      site.log("telescope"))
    assert found, site.log("telescope")
    assert abs(int(found[1]) - 50_000) <= 150
    positions = {fits.getheader(path)["FOCUSPOS"] for path in result["Progress"]["Files"]}
    assert positions == {int(found[1])}
    assert telescope.front_desk({"WOType": "Status"})["Focus"] == {
        "Best Position": int(found[1]), "Reference Temperature": 12.0,
        "Last Autofocus": f"20261109: {found[1]} at 12 °C", "Filter Offsets": {}}
    # Once a night: the next order goes to the focus found, without a run, and so does the
    # next after a restart of the telescope daemon.
    telescope.front_desk(observation("after", **{"Calibration Frames": "No"}))
    after = ended(telescope, "after", "done")
    assert not [entry for entry in after["History"]
                if entry["Reason"].startswith("autofocus")]
    assert site.daemons["telescope"].stop() == 0
    site.start("telescope")
    telescope = site.proxy("telescope")
    assert f"the last focus run (20261109: {found[1]} at 12 °C) is carried over the restart: " \
           f"Best Position {found[1]}, Reference Temperature 12.0" in site.log("telescope")
    assert telescope.front_desk({"WOType": "Status"})["Focus"]["Best Position"] == \
        int(found[1])
    telescope.front_desk(observation("restarted", **{"Calibration Frames": "No"}))
    restarted = ended(telescope, "restarted", "done")
    assert not [entry for entry in restarted["History"]
                if entry["Reason"].startswith("autofocus")]
    assert fits.getheader(restarted["Progress"]["Files"][0])["FOCUSPOS"] == int(found[1])


def test_a_focus_run_that_finds_no_focus_keeps_the_model_and_the_order_goes_on(make_site):
    """The model 10,000 steps off: the whole run is far out of focus, its stars too wide to
    tell where focus is. Said in the log; the frames are taken where the model says."""
    lost = dict(FOCUS_MODEL, **{"Best Position": 40_000, "Autofocus": True})
    site = make_site(settings(Scheduler={"Manage Dome": False},
                              Simulator={"Tube Temperature": 12.0, "Tube Cooling Rate": 0.0},
                              Telescope={"Focuser": lost})).start(
        "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("lost", **{"Calibration Frames": "No"}))
    result = ended(telescope, "lost", "done")
    assert "[WO lost] autofocus found no focus, the focus model is kept: no best focus from " \
           "the run (position: HFD) 38040: " in site.log("telescope")
    assert telescope.front_desk({"WOType": "Status"})["Focus"] == {
        "Best Position": 40_000, "Reference Temperature": 12.0,
        "Last Autofocus": "20261109: no focus found", "Filter Offsets": {"V": 40, "B": 70}}
    assert fits.getheader(result["Progress"]["Files"][0])["FOCUSPOS"] == 40_040


def test_without_a_model_a_run_that_finds_no_focus_puts_the_focuser_back(make_site):
    """No Best Position: the run is centred where the focuser stands (half-way, 50,000); the
    simulator's focus is 30,000 steps away, so the run finds none, and the focuser goes back
    to where it stood rather than staying at the run's last frame."""
    site = make_site(settings(Scheduler={"Manage Dome": False},
                              Simulator={"Best Focus": 80_000},
                              Telescope={"Focuser": {"Driver": "simulator",
                                                     "Autofocus": True}})).start(
        "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("unfocused", **{"Calibration Frames": "No"}))
    result = ended(telescope, "unfocused", "done")
    assert "autofocus: frame 9/9 at 52000" in [entry["Reason"] for entry in result["History"]]
    assert "[WO unfocused] autofocus found no focus" in site.log("telescope")
    assert fits.getheader(result["Progress"]["Files"][0])["FOCUSPOS"] == 50_000


def test_a_focus_model_beyond_the_focuser_s_range_fails_the_order_saying_so(make_site):
    site = make_site(settings(Scheduler={"Manage Dome": False},
                              Telescope={"Focuser": dict(FOCUS_MODEL,
                                                         **{"Best Position": 99_990})})).start(
        "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("too-far", **{"Calibration Frames": "No"}))
    message = ended(telescope, "too-far", "failed")["Message"]
    assert message.startswith("filter V: the focus model wants the focuser at 100030 (best "
                              "99990, filter V +40")
    assert "allowed: 0 to 100000, the focuser's range. Check Telescope → Focuser → " in message


#: Degrees per simulated second the mount slews in the test below: slow enough that the
#: 22° slew (220 s simulated, 2.2 s real) outlasts the dome's answer on a loaded machine;
#: and the simulated seconds a slew may then take.
SLOW_SLEW_RATE = 0.1
SLOW_SLEW_TIMEOUT = 3600
#: Where its target of opportunity is.
TOO_RA = 45.0


def test_a_mount_out_of_park_slews_while_it_asks_the_dome(make_site):
    """A telescope already observing starts the slew to a target of opportunity before the
    dome daemon answers; a dome found not ready (here its daemon gone, killed: it parked
    nothing) then stops the slew, and no frame is taken."""
    site = make_site(settings(Scheduler={"Manage Dome": False},
                              Simulator={"Slew Rate": SLOW_SLEW_RATE},
                              Telescope={"Slew Timeout": SLOW_SLEW_TIMEOUT})).start(
        "dome", "telescope", "scheduler")  # the scheduler's heartbeat keeps the dome safe
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("long", **{"Exposure Time": 600}))
    wait_until(lambda: status(telescope, "long")["Progress"].get("Step") == "exposing 1/1",
               "the long exposure")
    site.daemons.pop("dome").kill()

    # Up from the test's evening on (29° at 02:00 UTC): RA 60° rose through the Minimum
    # Altitude at 02:19, which a fast machine reached first, and the order was not started.
    telescope.front_desk(observation("too", RA=TOO_RA, **{"Type of job": "ToO"}))
    result = ended(telescope, "too", "interrupted")
    steps = [entry["Reason"] for entry in result["History"]]
    assert f"slewing to RA {TOO_RA:.4f}° Dec +13.2000°" in steps
    assert result["Message"].startswith("not started: the dome daemon does not answer: ")
    assert result["Progress"]["Files"] == []
    pointing = telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"]
    assert not pointing["Slewing"] and not pointing["Parked"]
    assert abs(pointing["RA"] - TOO_RA) > 1.0  # stopped on the way


def test_a_data_directory_that_cannot_be_written_is_said_at_start_and_in_each_refusal(
        make_site):
    """Not 'no room: 0.0 MB free' (the free space of /proc): the directory cannot be
    written, and why."""
    site = make_site(settings(Telescope={"Data Directory": "/proc/toros-data"})).start(
        "telescope")
    refused = refusal(site.proxy("telescope").front_desk, observation("nowhere"))
    assert refused.faultCode == FaultCode.UNAVAILABLE
    assert refused.faultString.startswith("the data directory /proc/toros-data (Telescope → "
                                          "Data Directory) cannot be written: ")
    assert "observations are refused until it can" in site.log("telescope")


def test_names_in_any_language_reach_the_header_as_their_closest_ascii(make_site):
    """FITS cards hold printable ASCII only; a site, a filter and a target named in Spanish,
    Greek or Portuguese still give frames, their names spelled without accents."""
    site = make_site(settings(Site={"Name": "Cordón Macón"},
                              Simulator={"Filters": ["V", "Hα"]})).start(
        "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    target = "Galáxia de Andrômeda, campo norte do halo, segunda noite"  # 57 characters
    telescope.front_desk(observation("hα", Filter="Hα",
                                     **{"Object Name": target, "User": "José",
                                        "Calibration Frames": "No"}))
    result = ended(telescope, "hα", "done")
    (path,) = result["Progress"]["Files"]
    with fits.open(path) as hdus:
        header = hdus[0].header
    assert (header["OBSERVAT"], header["FILTER"], header["OBJECT"], header["OBSERVER"],
            header["ORDERID"]) == ("Cordon Macon", "Halpha",
                                   "Galaxia de Andromeda, campo norte do halo, segunda noite",
                                   "Jose", "halpha")
    # The long name left its card little room for a comment: shortened, not warned about.
    assert "VerifyWarning" not in site.log("telescope")


def test_a_park_under_way_cannot_be_cancelled_and_ends_parked(make_site):
    # Cancelled, it was said cancelled while the mount went on parking, unsaid.
    site = make_site(settings(Scheduler={"Manage Dome": False},
                              Simulator={"Slew Rate": SLOW_SLEW_RATE},
                              Telescope={"Slew Timeout": SLOW_SLEW_TIMEOUT})).start(
        "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("pointed", **{"Exposure Time": 600}))
    wait_until(lambda: step(telescope, "pointed") == "exposing 1/1", "the exposure")
    telescope.front_desk({"ID": "park", "WOType": "Park", "Reason": "operator"})
    refused = refusal(telescope.front_desk, {"WOType": "Cancel", "ID": "park"})
    assert refused.faultCode == FaultCode.NOT_CANCELLABLE
    assert refused.faultString == (
        "'ID': received 'park', a Park order running, which cannot be cancelled: a mount is "
        "not stopped halfway to its park position (the Park ends in a moment; then send an "
        "Observation to point it elsewhere)")
    assert ended(telescope, "park", "done")["Message"] == "parked (operator)"


def test_a_frame_left_half_written_when_the_daemon_stopped_is_deleted_at_its_start(make_site):
    """Killed while writing a frame, the telescope daemon left it under its hidden temporary
    name in the night's directory, for good; finished frames are left alone."""
    site = make_site(settings())
    night = os.path.join(site.config["Telescope"]["Data Directory"], "20261109", "raw")
    os.makedirs(night)
    partial = os.path.join(night, ".20261110T020620_A_LIGHT_I_001.fits.part")
    finished = os.path.join(night, "20261110T020500_A_LIGHT_I_001.fits")
    for path in (partial, finished):
        with open(path, "wb") as stream:
            stream.write(b"SIMPLE")
    site.start("telescope")
    assert not os.path.exists(partial) and os.path.exists(finished)
    assert (f"deleted .20261110T020620_A_LIGHT_I_001.fits.part, a frame left half written in "
            f"{night}") in site.log("telescope")
