"""The dome daemon keeps the dome safe when its devices, its orders or its own stop go wrong.

Each test runs the dome daemon as a real process. Those about an Alpaca dome run it on
:mod:`fake_alpaca_dome`, an Alpaca server of its own process that holds its devices to being
connected, as real drivers do, and fails as the test says: restarted in the night, its shutter
jammed while it closes, its ``ShutterStatus`` unreadable.
"""

import os
import re
import sys
import threading
import time
from urllib.parse import urlsplit
from xmlrpc.server import SimpleXMLRPCServer

import pytest

from observatory import dome_safety, ended, open_dome, refusal, settings, status, wait_until
from torosmanager.launcher import free_port
from torosmanager.workorders import FaultCode

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "devices"))
from fake_alpaca_dome import CLOSED, OPEN, FakeAlpacaDome  # noqa: E402

#: Seconds per request to the fake server.
DEVICE_TIMEOUT = 2.0
#: Real seconds between two of the guard's checks (the clock runs at 1×).
CHECK_INTERVAL = 0.3
#: Checks a test lets pass to see that something is not done again at each.
SOME_CHECKS = 5
#: Simulated seconds the simulator's shutter takes to move, and the dome's Shutter Timeout,
#: in the tests of a slow shutter (at the tests' 100×: 20 and 30 real seconds).
SLOW_SHUTTER = 2000
SLOW_SHUTTER_TIMEOUT = 3000
#: Simulated seconds the shutter takes to move in the test of Cancel (3 real seconds at 100×).
SHUTTER = 300
#: Real seconds for some ten of the slit follower's looks (Dome → Follow Interval at 100×).
FOLLOWER_LOOKS_SECONDS = 1.0


def heartbeat(site):
    site.proxy("dome").front_desk({"WOType": "Heartbeat", "User": "scheduler"})


def enclosure(site):
    return site.proxy("dome").front_desk({"WOType": "Status"})["Devices"]["Enclosure"]


@pytest.fixture
def fake_dome():
    server = FakeAlpacaDome(free_port()).start()
    yield server
    server.stop()


def on_fake_dome(make_site, server, **dome):
    """The dome daemon on *server*'s dome and safety monitor, the dome open."""
    site = make_site(settings(
        speed=1, Clock={"Simulated With Devices": True},
        Dome={"Enclosure": server.settings(DEVICE_TIMEOUT),
              "Safety Monitor": server.settings(DEVICE_TIMEOUT),
              "Check Interval": CHECK_INTERVAL, **dome}))
    site.start("dome")
    heartbeat(site)
    open_dome(site)
    return site


def close_calls(server):
    return server.state()["calls"].count("dome.closeshutter")


def test_a_server_restarted_in_the_night_is_connected_again_and_the_dome_closes(make_site,
                                                                                fake_dome):
    """The server restarts, the shutter still open, and forgets that the daemon connected its
    devices: every request answers NotConnected. The dome is connected again at the next
    request, and closes when the weather turns, as before."""
    site = on_fake_dome(make_site, fake_dome)
    fake_dome.stop()
    fake_dome.start(shutter=OPEN)
    fake_dome.control(is_safe=False)
    wait_until(lambda: close_calls(fake_dome), "the dome to be told to close")
    wait_until(lambda: enclosure(site)["Shutter"] == "closed", "the dome to close")
    log = site.log("dome")
    assert re.search(r"WARNING .*safety monitor \(Alpaca safetymonitor 0 at 127\.0\.0\.1:\d+\): "
                     r"its server says it is not connected \(the server or its driver "
                     r"restarted\?\): connecting it again", log)
    # (said as the close that failed while the server was away ending: once, not twice)
    assert re.search(r"(WARNING .*closing the dome|INFO .*the dome was told to close): weather "
                     r"unsafe: IsSafe false reported by", log)


def test_a_close_that_stalls_is_sent_again_and_said(make_site, fake_dome):
    site = on_fake_dome(make_site, fake_dome, **{"Shutter Timeout": 1.0})
    fake_dome.control(jammed=True, is_safe=False)
    wait_until(lambda: close_calls(fake_dome) >= 2, "the close to be sent again")
    assert enclosure(site)["Shutter"] == "closing"
    assert re.search(r"CRITICAL .*the shutter is still not closed \d+ s after it was told to close "
                     r"\(Dome → Shutter Timeout: 1 s\): telling it to close again \(weather "
                     r"unsafe: IsSafe false reported by", site.log("dome"))
    fake_dome.control(jammed=False)  # freed: the next close closes it
    wait_until(lambda: enclosure(site)["Shutter"] == "closed", "the dome to close")


def test_a_shutter_whose_state_cannot_be_read_is_closed_all_the_same_once(make_site,
                                                                          fake_dome):
    """Told to close, and not again at every check (nor the telescope told to park), until
    Shutter Timeout has passed: as a shutter that says it is closing."""
    site = on_fake_dome(make_site, fake_dome)
    fake_dome.control(unreadable=5, is_safe=False)  # ASCOM has no ShutterStatus 5
    wait_until(lambda: close_calls(fake_dome), "the dome to be told to close")
    assert fake_dome.state()["shutter_status"] == CLOSED
    time.sleep(SOME_CHECKS * CHECK_INTERVAL)
    assert close_calls(fake_dome) == 1
    log = site.log("dome")
    assert re.search(r"ERROR .*cannot read the shutter \(weather unsafe: IsSafe false reported "
                     r"by .*\); closing it all the same: ", log)
    assert log.count("cannot read the shutter") == 1
    assert log.count("could not tell the telescope to park") == 1


def opening(make_site, order_id, travel, timeout):
    """The dome daemon on the simulator, its shutter taking *travel* simulated seconds to move
    (*timeout*: Dome → Shutter Timeout), told to open by Dome order *order_id*, opening."""
    site = make_site(settings(Simulator={"Shutter Travel Time": travel},
                              Dome={"Shutter Timeout": timeout}))
    site.start("dome")
    heartbeat(site)
    wait_until(lambda: dome_safety(site)["May Open"], "the dome to be allowed to open")
    site.proxy("dome").front_desk({"ID": order_id, "WOType": "Dome", "Shutter": "Open"})
    wait_until(lambda: enclosure(site)["Shutter"] == "opening", "the shutter to open")
    return site


def test_a_daemon_stopped_while_the_shutter_opens_slowly_closes_it_at_once(make_site):
    site = opening(make_site, "slow", SLOW_SHUTTER, SLOW_SHUTTER_TIMEOUT)
    started = time.monotonic()
    assert site.daemons["dome"].stop() == 0
    # Not the shutter's 30 real seconds, nor its timeout's 60: systemd would kill it first.
    assert time.monotonic() - started < SLOW_SHUTTER / 100 / 2
    log = site.log("dome")
    assert "closing the dome: the dome daemon is stopping" in log
    assert "stopped while waiting for the shutter to open" in log


def test_an_open_cancelled_while_the_shutter_opens_closes_it_and_a_close_is_not_cancelled(
        make_site):
    site = opening(make_site, "opening", SHUTTER, 2 * SHUTTER)
    dome = site.proxy("dome")
    time.sleep(SHUTTER / 100 / 3)  # a third of the way
    assert dome.front_desk({"WOType": "Cancel", "ID": "opening"})["Status"] == "cancelled"
    wait_until(lambda: enclosure(site)["Shutter"] == "closing", "the shutter to close again")
    assert "Dome order opening cancelled while the shutter opened" in enclosure(site)["Closed By"]
    wait_until(lambda: enclosure(site)["Shutter"] == "closed", "the shutter to close")
    assert status(dome, "opening")["Status"] == "cancelled"
    open_dome(site)
    dome.front_desk({"ID": "closing", "WOType": "Dome", "Shutter": "Close"})
    wait_until(lambda: status(dome, "closing")["Status"] == "running", "the Close to run")
    fault = refusal(dome.front_desk, {"WOType": "Cancel", "ID": "closing"})
    assert fault.faultCode == FaultCode.NOT_CANCELLABLE
    assert "the shutter is closing, which is always safe and is not stopped" in fault.faultString
    ended(dome, "closing", "done")


def test_a_weather_file_that_cannot_be_read_is_unsafe_and_the_status_still_answers(make_site,
                                                                                  tmp_path):
    weather = tmp_path / "weather"
    site = make_site(settings(Simulator={"Weather File": str(weather)}))
    site.start("dome")
    heartbeat(site)
    open_dome(site)
    weather.write_bytes(b"\xff\xfe not text")
    wait_until(lambda: not dome_safety(site)["Safe"], "the guard to find it unsafe")
    devices = site.proxy("dome").front_desk({"WOType": "Status"})["Devices"]
    assert "cannot read the weather file" in devices["Safety"]["Reason"]
    assert "cannot read the weather file" in devices["Safety Monitor"]["Error"]
    wait_until(lambda: enclosure(site)["Shutter"] in ("closing", "closed"), "the dome to close")
    weather.write_text("\ufeffunsafe: rain", encoding="utf-8")  # a byte-order mark first
    wait_until(lambda: dome_safety(site)["Reason"] == "weather unsafe: rain",
               "the weather file's reason")


def test_a_dome_closed_while_the_telescope_is_away_does_not_say_it_follows_it_again(make_site):
    """The slit follower asks a closed dome's telescope nothing: the end of its silence is
    said when the telescope answers, not when the shutter closes."""
    site = make_site(settings()).start("telescope", "dome")
    heartbeat(site)
    open_dome(site)
    assert site.daemons["telescope"].stop() == 0
    wait_until(lambda: "cannot follow the telescope" in site.log("dome"),
               "the dome to find the telescope daemon gone")
    site.proxy("dome").front_desk({"ID": "close", "WOType": "Dome", "Shutter": "Close"})
    ended(site.proxy("dome"), "close", "done")
    time.sleep(FOLLOWER_LOOKS_SECONDS)
    assert "following the telescope again" not in site.log("dome")


@pytest.mark.parametrize("closed_by", ["weather", "order"])
def test_a_telescope_daemon_away_when_the_dome_closes_is_told_to_park_once_it_is_back(
        make_site, fake_dome, closed_by):
    """The Park went with the close only: a telescope daemon restarting at that moment was
    never told, and its mount stayed pointed at the sky under a closed dome; whether the
    weather closed it, or an operator's Dome order in good weather."""
    site = make_site(settings(
        speed=1, Clock={"Simulated With Devices": True},
        Dome={"Enclosure": fake_dome.settings(DEVICE_TIMEOUT),
              "Safety Monitor": fake_dome.settings(DEVICE_TIMEOUT),
              "Check Interval": CHECK_INTERVAL})).start("telescope", "dome")
    heartbeat(site)
    open_dome(site)
    assert site.daemons["telescope"].stop() == 0
    if closed_by == "weather":
        fake_dome.control(is_safe=False)
    else:
        site.proxy("dome").front_desk({"ID": "close-op", "WOType": "Dome", "Shutter": "Close",
                                       "User": "alice"})
    wait_until(lambda: "could not tell the telescope to park" in site.log("dome"),
               "the dome to find the telescope daemon away")
    wait_until(lambda: fake_dome.state()["shutter_status"] == CLOSED, "the shutter to close")
    site.start("telescope")
    why = "weather unsafe" if closed_by == "weather" else "Dome order close-op from alice"
    wait_until(lambda: f"parked (dome closing: {why}" in site.log("telescope"),
               "the telescope's Park order to be done")
    time.sleep(SOME_CHECKS * CHECK_INTERVAL)
    log = site.log("dome")
    assert log.count("could not tell the telescope to park") == 1
    assert log.count("the telescope daemon answers again: told to park") == 1
    assert site.log("telescope").count("parked (dome closing:") == 1


def test_a_dome_that_cannot_be_told_to_close_is_said_once_not_at_every_check(make_site,
                                                                             fake_dome):
    """Its server gone, the dome is told to close at every check: "closing the dome" was
    logged each time (some 360 lines an hour), beside the critical line said once."""
    site = on_fake_dome(make_site, fake_dome)
    fake_dome.stop()
    wait_until(lambda: "cannot close the dome" in site.log("dome"),
               "the dome to find its server gone")
    time.sleep(SOME_CHECKS * CHECK_INTERVAL)
    log = site.log("dome")
    assert log.count("WARNING closing the dome:") == 1
    assert log.count("cannot close the dome") == 1


def test_a_telescope_that_cannot_read_its_mount_is_said_so_by_the_slit_follower(make_site):
    """The telescope daemon's Status says ``Pointing: {"Error": ...}`` when its mount does not
    answer: the follower logged a bare Python key, "cannot follow the telescope: 'Altitude'".
    Here the telescope daemon is a stand-in on its address that answers only that."""
    site = make_site(settings()).start("dome")
    mount_error = "mount (LX200 at 127.0.0.1:1): reading the right ascension failed: timed out"
    stand_in = SimpleXMLRPCServer(("127.0.0.1", urlsplit(site.url("telescope")).port),
                                  logRequests=False, allow_none=True)
    stand_in.register_function(
        lambda order: {"Devices": {"Pointing": {"Error": mount_error}}}, "front_desk")
    serving = threading.Thread(target=stand_in.serve_forever, daemon=True)
    serving.start()
    try:
        heartbeat(site)
        open_dome(site)
        wait_until(lambda: "cannot follow the telescope" in site.log("dome"),
                   "the follower to ask the telescope")
    finally:
        stand_in.shutdown()
        stand_in.server_close()
        serving.join()
    assert (f"cannot follow the telescope: the telescope does not know where it points: "
            f"{mount_error}") in site.log("dome")
