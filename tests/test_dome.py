"""The dome daemon executes Dome orders, and keeps the instrument safe by itself."""

import itertools
import os
import time
import xmlrpc.client
from datetime import datetime, timedelta

import pytest

from conftest import EVENING
from observatory import (PATIENCE, dome_safety, ended, open_dome, refusal, settings,
                         slit_and_wanted, status, step, wait_until)
from torosmanager.client import status_of
from torosmanager.devices.dome import azimuth_separation
from torosmanager.examples import MANUAL_DOME
from torosmanager.workorders import FaultCode, format_utc

#: Simulated seconds of Dome → Reopen Delay (6 real seconds at the tests' 100×).
REOPEN_DELAY = 600
#: Simulated seconds of Dome → Heartbeat Timeout (1.2 real seconds at 100×).
HEARTBEAT_TIMEOUT = 120
#: systemd's watchdog period for the dome daemon in the watchdog's test (WATCHDOG_USEC): the
#: guard says it is alive every 0.1 real second (its Check Interval at 100×), half of this at most.
WATCHDOG_USEC = 400_000
#: Real seconds the watchdog's test listens: at least five Check Intervals.
LISTEN_SECONDS = 1.0
#: Real seconds a daemon is left without another it asks, in the tests of outages said once:
#: some ten of its checks at 100× (Check Interval is 10 s of the clock; the slit follower looks
#: every 0.05 real second, its shortest).
DAEMON_ABSENT_SECONDS = 1.0
#: Real seconds for some five of the dome guard's checks at 100× (Check Interval 10 s).
SOME_CHECKS_SECONDS = 0.5


def heartbeat(site):
    return site.proxy("dome").front_desk({"WOType": "Heartbeat", "User": "scheduler"})


def enclosure(site):
    return site.proxy("dome").front_desk({"WOType": "Status"})["Devices"]["Enclosure"]


def ended_now(proxy, order_id, state):
    """Whether *order_id* is in *state* at *proxy*'s daemon now (not waiting: see ``ended``)."""
    answer = status_of(proxy, order_id)
    if answer is not None and answer["Status"] in ("failed", "cancelled"):
        raise AssertionError(f"order {order_id} ended {answer['Status']}: {answer['Message']}")
    return answer is not None and answer["Status"] == state


def instant(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_it_starts_closed_and_refuses_to_open_without_the_schedulers_heartbeat(make_site):
    site = make_site(settings()).start("dome")
    assert enclosure(site)["Shutter"] == "closed"
    fault = refusal(site.proxy("dome").front_desk, {"WOType": "Dome", "Shutter": "open"})
    assert fault.faultCode == FaultCode.UNSAFE
    assert fault.faultString.startswith("'Shutter': the dome refuses to open now: ")
    assert "no heartbeat from the scheduler yet" in fault.faultString


def test_orders_move_the_dome(make_site):
    site = make_site(settings()).start("dome")
    heartbeat(site)
    open_dome(site, "open-1")
    assert enclosure(site)["Shutter"] == "open"
    dome = site.proxy("dome")
    dome.front_desk({"ID": "turn", "WOType": "Dome", "Azimuth": 120})
    assert ended(dome, "turn", "done")["Message"] == (
        "at azimuth 120°; the dome follows the telescope and turns back to it while the "
        "shutter is open ('Follow Telescope': false keeps it here)")
    assert enclosure(site)["Azimuth"] == pytest.approx(120, abs=0.5)
    dome.front_desk({"ID": "stay", "WOType": "Dome", "Azimuth": 200, "Follow Telescope": False})
    assert ended(dome, "stay", "done")["Message"] == ("no longer following the telescope; at "
                                                      "azimuth 200°")
    assert enclosure(site)["Azimuth"] == pytest.approx(200, abs=0.5)
    dome.front_desk(dict(MANUAL_DOME, ID="blink"))
    assert ended(dome, "blink", "done")["Message"] == "warning light blinking"
    # Every output the dome has (Dome → Auxiliary Outputs, 8), those never switched off.
    assert dome.front_desk({"WOType": "Status"})["Devices"]["Outputs"] == {
        "01": True, **{f"{number:02d}": False for number in range(2, 9)}}
    dome.front_desk({"ID": "close", "WOType": "Dome", "Shutter": "Close", "Park": True})
    assert ended(dome, "close", "done")["Message"] == "shutter closed; parked"
    assert enclosure(site)["Shutter"] == "closed" and enclosure(site)["Parked"]
    dome.front_desk({"ID": "nothing", "WOType": "Dome", "Park": False})
    assert ended(dome, "nothing", "done")["Message"] == "nothing asked: 'Park' is false"


def test_an_open_dome_keeps_the_slit_on_the_telescope(make_site):
    """Nobody asks: following is the default (Dome → Follow Telescope)."""
    site = make_site(settings(Dome={"Follow Tolerance": 2.0})).start("dome", "telescope",
                                                                        "scheduler")
    open_dome(site)
    assert site.proxy("dome").front_desk({"WOType": "Status"})["Devices"]["Following Telescope"]
    site.proxy("telescope").front_desk({"ID": "point", "WOType": "Observation", "RA": 23.1,
                                        "Dec": 13.2, "Filter": "V", "Exposure Time": 600})
    telescope = site.proxy("telescope")

    def aligned():
        pointing = telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"]
        state = enclosure(site)
        lag = abs((pointing["Azimuth"] - state["Azimuth"] + 180) % 360 - 180)
        return pointing["Tracking"] and not state["Slewing"] and lag <= 2.0 + 1.0

    wait_until(aligned, "the slit to follow the telescope")
    # Turned away by hand, told to stay: it stays, until told to follow again.
    away = (enclosure(site)["Azimuth"] + 90) % 360
    dome = site.proxy("dome")
    dome.front_desk({"ID": "away", "WOType": "Dome", "Azimuth": away, "Follow Telescope": False})
    ended(dome, "away", "done")
    time.sleep(SOME_CHECKS_SECONDS)  # some ten of the slit follower's looks
    assert enclosure(site)["Azimuth"] == pytest.approx(away, abs=0.5)
    dome.front_desk({"ID": "back", "WOType": "Dome", "Follow Telescope": True})
    ended(dome, "back", "done")
    wait_until(aligned, "the slit to follow the telescope again")
    # The telescope daemon goes away a while: said once, not at every look. (The scheduler
    # may have opened the dome before the telescope daemon listened: said once then too.)
    said_before = site.log("dome").count("cannot follow the telescope")
    assert site.daemons["telescope"].stop() == 0
    wait_until(lambda: site.log("dome").count("cannot follow the telescope") > said_before,
               "the dome to find the telescope daemon gone")
    time.sleep(DAEMON_ABSENT_SECONDS)
    assert site.log("dome").count("cannot follow the telescope") == said_before + 1, \
        site.log("dome")
    site.start("telescope")
    wait_until(lambda: "following the telescope again" in site.log("dome"),
               "the dome to follow the telescope again")


#: A German equatorial mount in a small dome: the tube 0.8 m off the mount's axes, which stand
#: 0.4 m north of the centre of a dome of radius 2 m. Its slit is tens of degrees from the
#: telescope's own azimuth.
OFF_CENTRE = {"Radius": 2.0, "Mount Offset North": 0.4, "Axis Offset": 0.8}


def test_an_off_centre_telescope_is_followed_where_it_looks_out(make_site):
    """The slit goes where the line of sight from the tube meets the dome (Dome → Radius,
    Mount Offset, Axis Offset), not to the telescope's azimuth, and the telescope waits for
    it there. The target is near the meridian, where the tube is off the axes sideways."""
    site = make_site(settings(Dome={"Follow Tolerance": 2.0, **OFF_CENTRE})).start(
        "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk({"ID": "gem", "WOType": "Observation", "RA": 345.0, "Dec": -10.0,
                          "Filter": "V", "Exposure Time": 30, "Calibration Frames": "No"})
    result = ended(telescope, "gem", "done")
    assert len(result["Progress"]["Files"]) == 1
    devices, pointing, (slit,) = slit_and_wanted(site, None)
    assert devices["Geometry"] == {**devices["Geometry"], **OFF_CENTRE}
    assert azimuth_separation(devices["Enclosure"]["Azimuth"], slit) <= 2.0
    assert azimuth_separation(slit, pointing["Azimuth"]) > 10 * 2.0


#: A target two hours east of the meridian when the tests' night starts: the off-centre tube's
#: slit moves there some 0.02° a second as the telescope tracks, four times the telescope's own
#: azimuth.
FAST_SLIT_TARGET = {"RA": 12.0, "Dec": 20.0}
#: Slower than the other tests', so that the follower looks every few simulated seconds.
TRACKING_SPEED = 50
#: A light frame waits for a slit lagging more than the Follow Tolerance (3°, the default).
TURN_LAG = 0.5
#: Real seconds between two looks at the slit's lag while the telescope tracks.
SAMPLE_SECONDS = 0.05


def test_a_tracking_telescope_does_not_wait_for_the_slit(make_site):
    """The follower turns the slit once it lags by ``Dome → Turn Lag``, less than the
    ``Follow Tolerance`` a frame waits for: as the telescope tracks, its slit moves on and is
    turned again long before a frame would have to wait for it."""
    site = make_site(settings(speed=TRACKING_SPEED,
                              Dome={"Turn Lag": TURN_LAG, **OFF_CENTRE})).start(
        "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk({"ID": "track", "WOType": "Observation", **FAST_SLIT_TARGET,
                          "Filter": "V", "Exposure Time": 30, "Number of Exposures": 12,
                          "Calibration Frames": "No"})
    wait_until(lambda: step(telescope, "track").startswith("exposing"), "the first frame")
    lags, slits = [], []
    while status(telescope, "track")["Status"] == "running":
        devices, pointing, (slit,) = slit_and_wanted(site, None)
        if not devices["Enclosure"]["Slewing"]:
            lags.append(azimuth_separation(devices["Enclosure"]["Azimuth"], slit))
        slits.append(slit)
        time.sleep(SAMPLE_SECONDS)
    result = ended(telescope, "track", "done")
    assert azimuth_separation(slits[0], slits[-1]) > 2 * devices["Follow Tolerance"]
    assert max(lags) < (TURN_LAG + devices["Follow Tolerance"]) / 2, lags
    steps = [entry["Reason"] for entry in result["History"]]
    first_frame = steps.index("exposing 1/12")
    waits = [reason for reason in steps[first_frame:]
             if reason.startswith("waiting for the dome's slit")]
    assert waits == [], steps


def test_a_closed_dome_is_not_turned_to_the_telescope(make_site):
    """The slit follows only while the shutter is open: a dome closed by hand stays where it
    was when the telescope parks."""
    site = make_site(settings(Scheduler={"Manage Dome": False})).start("dome", "telescope",
                                                                      "scheduler")
    open_dome(site)
    telescope, dome = site.proxy("telescope"), site.proxy("dome")
    telescope.front_desk({"ID": "point", "WOType": "Observation", "RA": 23.1, "Dec": 13.2,
                          "Filter": "V", "Exposure Time": 30})
    ended(telescope, "point", "done")
    dome.front_desk({"ID": "close", "WOType": "Dome", "Shutter": "Close"})
    ended(dome, "close", "done")
    turned_to = enclosure(site)["Azimuth"]
    assert turned_to > 10  # followed the telescope away from north, where both park
    telescope.front_desk({"ID": "park", "WOType": "Park"})
    ended(telescope, "park", "done")
    time.sleep(SOME_CHECKS_SECONDS)  # some ten of the slit follower's looks
    assert enclosure(site)["Azimuth"] == turned_to
    assert telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"]["Azimuth"] == 0


def test_a_dome_told_not_to_follow_stays_where_it_is(make_site):
    """``Dome → Follow Telescope: false`` (a dome someone else steers): the slit stays, and
    the telescope does not wait for it."""
    site = make_site(settings(Dome={"Follow Telescope": False})).start("dome", "telescope",
                                                                        "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk({"ID": "point", "WOType": "Observation", "RA": 23.1, "Dec": 13.2,
                          "Filter": "V", "Exposure Time": 30, "Calibration Frames": "No"})
    result = ended(telescope, "point", "done")
    assert not any("slit" in entry["Reason"] for entry in result["History"])
    assert enclosure(site)["Azimuth"] == 0 and enclosure(site)["Parked"]
    assert site.proxy("dome").front_desk({"WOType": "Status"})["Devices"][
        "Following Telescope"] is False


def test_an_output_the_dome_does_not_have_is_refused_by_the_dome_and_the_scheduler(make_site):
    # The scheduler learns the count from the dome's Status, which it asks as it keeps the
    # dome: it refuses the order on arrival, rather than accept it and see it fail there.
    site = make_site(settings(Dome={"Auxiliary Outputs": 2})).start("dome", "scheduler")
    expected = ("'Blink03': received True; allowed: Blink01 to Blink02: this dome has 2 "
                "auxiliary outputs (Dome → Auxiliary Outputs)")
    fault = refusal(site.proxy("dome").front_desk, {"WOType": "Dome", "Blink03": True})
    assert (fault.faultCode, fault.faultString) == (FaultCode.INVALID, expected)
    tries = itertools.count()

    def refused_by_the_scheduler():
        try:  # (one sent before the scheduler has asked is accepted, and fails at the dome)
            site.proxy("scheduler").front_desk({"ID": f"blink-{next(tries)}", "WOType": "Dome",
                                                "Blink03": True})
        except xmlrpc.client.Fault as fault:
            return fault
        return None

    fault = wait_until(refused_by_the_scheduler, "the scheduler to know the dome's outputs")
    assert (fault.faultCode, fault.faultString) == (FaultCode.INVALID, expected)
    assert site.proxy("scheduler").front_desk({"ID": "second", "WOType": "Dome",
                                               "Blink02": True})["Status"] == "queued"


def test_it_reopens_only_after_conditions_have_been_good_for_the_reopen_delay(make_site):
    site = make_site(settings(Dome={"Reopen Delay": REOPEN_DELAY,
                                    "Heartbeat Timeout": 3600})).start("dome")
    heartbeat(site)
    good_since = instant(wait_until(lambda: dome_safety(site).get("Good Since"),
                                    "safe conditions"))
    ready = good_since + timedelta(seconds=REOPEN_DELAY)
    # Asked at once, within the delay's REOPEN_DELAY / SPEED real seconds.
    fault = refusal(site.proxy("dome").front_desk, {"WOType": "Dome", "Shutter": "Open"})
    assert fault.faultCode == FaultCode.UNSAFE
    assert f"the dome may open from {format_utc(ready)} (Dome → Reopen Delay)" in \
        fault.faultString
    heartbeat(site)
    opened = open_dome(site)  # waits for May Open, then opens
    # By the dome's own clock, whenever this test got to ask: not before the delay was over.
    assert instant(opened["History"][0]["Time"]) >= ready


def test_a_restart_of_the_dome_daemon_keeps_what_it_knew_of_the_conditions(make_site):
    """Stopped and started again on a clear night, the dome starts closed and waits for the
    scheduler's heartbeat, but not for Reopen Delay all over again: conditions found good for
    longer than that before the restart still count. The scheduler then opens it."""
    site = make_site(settings(Dome={"Reopen Delay": REOPEN_DELAY, "Heartbeat Timeout": 3600,
                                    # the restart's seconds at 100×, whatever the machine
                                    "Weather Max Age": 3600})).start("scheduler", "dome")
    good_since = instant(wait_until(lambda: dome_safety(site).get("Good Since"),
                                    "safe conditions"))
    wait_until(lambda: dome_safety(site)["May Open"], "the Reopen Delay to pass")
    time.sleep(SOME_CHECKS_SECONDS)  # the last check written down is past the delay too
    assert site.daemons.pop("dome").stop() == 0
    site.start("dome")
    safety = wait_until(lambda: (lambda answer: answer if answer["Safe"] else None)(
        dome_safety(site)), "the heartbeat after the restart")
    # At once: a new REOPEN_DELAY would take REOPEN_DELAY / 100 real seconds.
    assert safety["May Open"], (safety, site.log("dome"))
    # The time the daemon was down does not count: good since a little later than before.
    assert instant(safety["Good Since"]) > good_since
    assert "before the restart, the time it took not counted" in site.log("dome")
    wait_until(lambda: enclosure(site)["Shutter"] == "open", "the scheduler to open the dome")


def test_a_dome_daemon_that_has_heard_no_heartbeat_yet_is_sent_one_at_once(make_site):
    """Started after the scheduler, or again, the dome daemon keeps the dome closed until
    the scheduler's first heartbeat: the scheduler, seeing it has heard none, sends one rather
    than waiting for its Heartbeat Interval (here longer than this test waits)."""
    # Ten times PATIENCE at 100× (and a timeout longer still, as the configuration requires).
    site = make_site(settings(Scheduler={"Heartbeat Interval": 1000 * PATIENCE},
                              Dome={"Heartbeat Timeout": 86400}))
    site.start("scheduler")

    def heard():
        safety = dome_safety(site)
        return safety if safety["Last Heartbeat"] != "never" else None

    site.start("dome")
    assert wait_until(heard, "a heartbeat to the dome started after the scheduler")[
        "Last Heartbeat"].endswith(" from scheduler")
    site.daemons.pop("dome").stop()
    site.start("dome")
    wait_until(heard, "a heartbeat to the dome started again")
    assert site.log("scheduler").count("the dome daemon has heard no heartbeat yet: sending "
                                       "one now") >= 2


def test_a_heartbeat_clears_the_verdict_at_once_not_at_the_next_check(make_site):
    # Checks an hour apart (36 real seconds): the heartbeat's own arrival has them check.
    site = make_site(settings(Dome={"Check Interval": 3600, "Heartbeat Timeout": 7200}))
    site.start("dome")
    assert "no heartbeat from the scheduler yet" in dome_safety(site)["Reason"]
    heartbeat(site)
    wait_until(lambda: "heartbeat" not in dome_safety(site)["Reason"],
               "the verdict to forget the heartbeat it waited for", patience=5)


def test_daylight_is_unsafe(make_site):
    noon = EVENING.replace(hour=18)  # local noon at CTMO
    site = make_site(settings(start=noon)).start("dome")
    heartbeat(site)
    wait_until(lambda: "daylight: Sun at" in dome_safety(site)["Reason"], "the daylight verdict")
    assert not dome_safety(site)["May Open"]


def test_a_silent_scheduler_closes_the_dome_and_parks_the_telescope(make_site):
    site = make_site(settings(Dome={"Heartbeat Timeout": HEARTBEAT_TIMEOUT})).start(
        "telescope", "dome")
    heartbeat(site)
    wait_until(lambda: dome_safety(site)["May Open"], "the dome to be allowed to open")
    dome = site.proxy("dome")
    dome.front_desk({"ID": "open", "WOType": "Dome", "Shutter": "Open"})
    # The scheduler's heartbeats go on while the dome opens, however slowly this machine runs
    # (the timeout is HEARTBEAT_TIMEOUT / SPEED real seconds).
    wait_until(lambda: heartbeat(site) and ended_now(dome, "open", "done"), "the dome to open")
    # No more heartbeats: HEARTBEAT_TIMEOUT simulated seconds later the dome closes by itself.
    wait_until(lambda: enclosure(site)["Shutter"] in ("closing", "closed"), "the dome to close")
    closed_by = enclosure(site)["Closed By"]
    assert "no heartbeat from the scheduler since" in closed_by
    last = instant(dome_safety(site)["Last Heartbeat"].split(" from ", 1)[0])
    closed_at = instant(closed_by.rsplit(", at ", 1)[1])
    assert closed_at - last >= timedelta(seconds=HEARTBEAT_TIMEOUT)
    # The Park order follows the close: wait for it rather than read the log at once.
    wait_until(lambda: "parked (dome closing: no heartbeat" in site.log("telescope"),
               "the telescope's Park order to be done")


def test_bad_weather_interrupts_the_observation_and_the_dome_closes_itself(make_site, tmp_path):
    weather = tmp_path / "weather"
    site = make_site(settings(Simulator={"Weather File": str(weather)}))
    site.start("preprocessor", "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk({"ID": "storm", "WOType": "Observation", "RA": 23.1, "Dec": 13.2,
                          "Filter": "R", "Exposure Time": 120, "Number of Exposures": 30})
    wait_until(lambda: status(telescope, "storm")["Progress"].get("Step", "").startswith(
        "exposing"), "the observation to expose")
    weather.write_text("unsafe: rain on the weather station")  # the storm comes

    def interrupted():
        answer = status(telescope, "storm")
        return answer if answer["Status"] == "interrupted" else None

    result = wait_until(interrupted, "the storm to interrupt the observation")
    assert "dome closing: weather unsafe: rain on the weather station" in result["Message"]
    assert "weather unsafe" in enclosure(site)["Closed By"]
    wait_until(lambda: telescope.front_desk({"WOType": "Status"})["Devices"]["Pointing"]["Parked"],
               "the mount to park")
    assert not dome_safety(site)["May Open"]
    weather.unlink()  # the storm passes: conditions are good again and the dome may reopen
    wait_until(lambda: dome_safety(site)["May Open"], "the end of the storm")


def test_a_dome_daemon_not_answering_is_said_once_and_its_return_too(make_site):
    site = make_site(settings())
    site.start("scheduler")  # and no dome daemon: the scheduler asks it every tick
    wait_until(lambda: "cannot ask the dome daemon how the dome is" in site.log("scheduler"),
               "the scheduler to find the dome daemon absent")
    time.sleep(DAEMON_ABSENT_SECONDS)
    log = site.log("scheduler")
    assert log.count("cannot ask the dome daemon how the dome is") == 1, log
    assert log.count("cannot send the heartbeat to the dome daemon") <= 1, log
    site.start("dome")
    wait_until(lambda: "the dome daemon answers again" in site.log("scheduler"),
               "the scheduler to say the dome daemon answers")


def test_the_guard_tells_systemds_watchdog_it_is_alive_and_falls_silent_if_it_hangs(
        make_site, tmp_path, monkeypatch):
    """Under WatchdogSec= the guard's own thread says WATCHDOG=1 between its checks; a check
    that never returns (here, reading a weather file that is a FIFO nobody writes) silences it,
    while the front desk still answers, so that systemd kills and restarts the daemon."""
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))  # as systemd sets it
    weather = tmp_path / "weather"
    site = make_site(settings(Simulator={"Weather File": str(weather)})).start("dome")
    dome = site.daemons["dome"]
    assert dome.notifications(LISTEN_SECONDS).count("WATCHDOG=1") >= 5

    os.mkfifo(weather)  # the next check blocks opening it
    try:
        dome.notifications(LISTEN_SECONDS / 2)  # what it said before it hung
        assert dome.notifications(LISTEN_SECONDS) == []
        assert "Status" in heartbeat(site)  # the front desk answers
    finally:
        release(weather)  # the guard reads it, and goes on (and the daemon can stop)
    assert "WATCHDOG=1" in dome.notifications(LISTEN_SECONDS)


def release(fifo):
    """Let a reader blocked opening *fifo* go on, reading 'fine'; then remove it."""
    try:
        descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: nobody is opening it
        pass
    else:
        os.write(descriptor, b"fine\n")
        os.close(descriptor)
    os.remove(fifo)
