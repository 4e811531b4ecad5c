"""The scheduler runs a simulated night: plans, opens the dome, dispatches, follows, recovers."""

import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest

from conftest import EVENING, simulated_clock
from observatory import ended, frames_done, refusal, settings, status, step, wait_until
from torosmanager.workorders import FaultCode, parse_utc

#: Research targets high in the sky on the simulated evening, far from that night's Moon.
FIELDS = {"gal-a": (330.0, 35.0), "gal-b": (340.0, 50.0), "gal-c": (355.0, 60.0)}
#: A field up in daylight only, in November (the Sun's RA and Dec): not observable tonight.
DAYTIME = (224.0, -17.0)
#: A target of opportunity's field, also clear of the Moon.
ALERT = (20.0, 60.0)
#: The Scheduler → Follow Interval of the quick follow-up test: an hour, 36 real seconds at 100×.
FOLLOW_INTERVAL = 3600.0
#: Simulated seconds within which a quick follow-up shows the change (10 real seconds at
#: 100×); a regular follow-up comes only at the next tick of FOLLOW_INTERVAL, later.
QUICK_FOLLOW_UP = 1000.0
#: Real seconds the dome daemon is down for: many of the scheduler's ticks at 100×.
DOME_DOWN_SECONDS = 3.0
#: Real seconds within which an order's own message is back once its executor answers, well
#: before its step changes (an hour's exposure: 36 real seconds).
SAME_STEP_SECONDS = 10.0
#: Real seconds the telescope daemon is down for: several plans at 100×.
TELESCOPE_DOWN_SECONDS = 10.0
#: The steady stream test's Replan Delay (its largest allowed value), a pause its orders never
#: make, and how long at most the stream waits for Max Replan Delay (1 s) to plan its first.
REPLAN_DELAY, STREAM_SECONDS = 10.0, 9.0


def night(make_site, **sections):
    """All four daemons on a simulated evening at 100×; the scheduler manages the dome."""
    site = make_site(settings(**sections))
    site.start("preprocessor", "dome", "telescope", "scheduler")
    return site


def observation(order_id, ra, dec, **changes):
    order = {"ID": order_id, "WOType": "Observation", "RA": ra, "Dec": dec, "Filter": "V",
             "Exposure Time": 60.0, "Number of Exposures": 2, "User": "test",
             "Type of job": "Research"}
    order.update(changes)
    return order


def entered(proxy, order_id, state):
    """When *order_id* entered *state*, by its history at *proxy*'s daemon, if it is in *state*
    now (its later entries in the same state update only the message); else ``None``."""
    answer = status(proxy, order_id)
    if answer["Status"] != state:
        return None
    history = answer["History"]
    start = len(history)
    while start > 0 and history[start - 1]["Status"] == state:
        start -= 1
    return instant(history[start]["Time"])


def first_entered(proxy, order_id, state):
    """When *order_id* first entered *state*, by its history at *proxy*'s daemon."""
    return instant(next(entry["Time"] for entry in status(proxy, order_id)["History"]
                        if entry["Status"] == state))


def instant(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("planned_apart", [False, True], ids=["planned in the daemon",
                                                          "planned in a process of its own"])
def test_a_night_from_orders_to_frames(make_site, planned_apart):
    # Scheduler → Planning Process From: 1 plans even these three orders in the child process.
    site = night(make_site, Scheduler={"Planning Process From": 1 if planned_apart else 0})
    scheduler = site.proxy("scheduler")
    for order_id, (ra, dec) in FIELDS.items():
        receipt = scheduler.front_desk(observation(order_id, ra, dec))
        assert receipt["Priority"] == 5.0
    for order_id in FIELDS:
        result = ended(scheduler, order_id, "done")
        assert "frame(s) written" in result["Message"]
        assert len(result["Progress"]["Files"]) == 2
        steps = [entry["Status"] for entry in result["History"]]
        assert steps[:2] == ["accepted", "queued"] and "dispatched" in steps
        assert "running" in steps
    dome_orders = [entry for entry in site.log("dome").splitlines()
                   if "[WO scheduler-" in entry and "shutter open" in entry]
    assert dome_orders, "the scheduler opened the dome itself"
    health = scheduler.front_desk({"WOType": "Status"})
    assert health["Plan"]["Night Start"] < health["Plan"]["Night End"]
    assert ("starting the planning process" in site.log("scheduler")) == planned_apart


def test_a_declination_that_never_rises_at_the_site_is_refused_saying_which_do(make_site):
    # Queued, it would wait for ever: a sign typed wrong, or a southern target.
    site = make_site(settings()).start("scheduler")
    refused = refusal(site.proxy("scheduler").front_desk, observation("south", 0.0, -80.0))
    assert refused.faultCode == FaultCode.INVALID
    assert refused.faultString == (
        "'Dec': received -80.0; allowed: from -34.0° to +86.0°, the declinations that rise "
        "above airmass 2 (Observing → Max Airmass) at CTMO (latitude +26.00°)")


def test_where_the_telescopes_limit_is_higher_than_the_airmass_its_declinations_are_said(
        make_site):
    """A Max Airmass of 3 is 19.5° of altitude; the telescope takes nothing below its 20°.
    A declination that rises above 19.5° only was taken, planned, and refused at dispatch."""
    site = make_site(settings(Observing={"Max Airmass": 3.0})).start("scheduler")
    refused = refusal(site.proxy("scheduler").front_desk, observation("low", 60.0, -46.0))
    assert refused.faultString == (
        "'Dec': received -46.0; allowed: from -44.0° to +90.0°, the declinations that rise "
        "above 20° (Observing → Minimum Altitude) at CTMO (latitude +26.00°)")


def test_exposures_longer_than_the_longest_night_are_refused(make_site):
    # Never split across nights: queued, they would wait for ever. CTMO's longest night (the
    # Sun below -18°) lasts 10.7 h, at the winter solstice.
    site = make_site(settings()).start("scheduler")
    front_desk = site.proxy("scheduler").front_desk
    refused = refusal(front_desk, observation(
        "endless", *FIELDS["gal-a"], **{"Exposure Time": 3600.0, "Number of Exposures": 11}))
    assert refused.faultCode == FaultCode.INVALID
    assert refused.faultString == (
        "'Number of Exposures': received 11; allowed: exposures that fit in a night: these "
        "take 11.0 h with their readouts (and calibration frames, if asked), while the longest "
        "night at CTMO (the Sun below -18°, Observing → Sun Altitude) lasts 10.7 h; send them "
        "as several orders")
    long_night = front_desk(observation(
        "long", *FIELDS["gal-a"], **{"Exposure Time": 3600.0, "Number of Exposures": 10}))
    assert long_night["Status"] == "queued"


def test_plan_and_reasons_are_shown(make_site):
    site = night(make_site, Scheduler={"Manage Dome": False})  # keep the dome shut: just plan
    scheduler = site.proxy("scheduler")
    scheduler.front_desk(observation("south", *DAYTIME))
    later = (EVENING + timedelta(hours=3)).isoformat()  # planned, and waiting for its time
    scheduler.front_desk(observation("fine", *FIELDS["gal-a"], **{"Not Before": later,
                                                               "Object Name": "NGC 7331"}))
    never = wait_until(lambda: "not observable tonight" in status(scheduler, "south")["Message"]
                       and status(scheduler, "south"), "the reason")
    assert "never below airmass 2" in never["Message"] and never["Status"] == "queued"
    fine = wait_until(lambda: "planned for" in status(scheduler, "fine")["Message"]
                      and status(scheduler, "fine"), "the plan")
    plan = scheduler.front_desk({"WOType": "Status"})["Plan"]
    assert [entry["ID"] for entry in plan["Entries"]] == ["fine"]
    assert plan["Unscheduled"][0]["ID"] == "south"
    assert 1.0 <= plan["Entries"][0]["Airmass"] <= 2.0
    assert plan["Entries"][0]["Target"] == "NGC 7331"
    assert fine["Priority Reason"] == "Type of job 'Research': 5"
    # `toros plan` shows the same plan, and draws it.
    chart = site.directory / "plan.png"
    shown = subprocess.run([os.path.join(os.path.dirname(sys.executable), "toros"), "--config",
                            site.config_path, "plan", "--plot", str(chart)],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "fine" in shown.stdout and "never below airmass 2" in shown.stdout
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_orders_arriving_together_are_planned_together(make_site):
    """Thirty orders one after the other: every one goes through a plan, in a few plans rather
    than one per arrival (the scheduler waits Replan Delay for more to come)."""
    site = night(make_site, Scheduler={"Manage Dome": False, "Replan Delay": 2.0})
    scheduler = site.proxy("scheduler")
    later = (EVENING + timedelta(hours=3)).isoformat()  # planned, none dispatched meanwhile
    order_ids = [f"burst-{number:02d}" for number in range(30)]
    for order_id in order_ids:
        receipt = scheduler.front_desk(observation(order_id, *FIELDS["gal-a"],
                                                   **{"Not Before": later}))
        assert receipt["Status"] == "queued"
    for order_id in order_ids:  # planned for a time, or found not to fit tonight
        wait_until(lambda: "waiting for the next plan" not in status(scheduler, order_id)["Message"],
                   f"{order_id} to be planned")
    plans = [line for line in site.log("scheduler").splitlines()
             if "queued observation(s)" in line and " of 0 queued" not in line]
    assert 1 <= len(plans) <= 3, plans


def test_the_plans_of_an_unchanged_queue_are_logged_once(make_site):
    """Every Replan Interval the scheduler plans its queue again; while the queue and what is
    planned of it stay the same, only the first of those plans is logged at INFO (the others at
    DEBUG), so that a night's log is not the same line again and again."""
    site = make_site(settings(Scheduler={"Manage Dome": False, "Replan Interval": 60.0},
                              Logging={"Log Level": "DEBUG"}))
    site.start("scheduler")
    scheduler = site.proxy("scheduler")
    # Not above airmass 2 in the site's dark hours: planned 0 of 1, again and again.
    scheduler.front_desk(observation("south", *DAYTIME))

    def plan_lines():
        return [line for line in site.log("scheduler").splitlines()
                if "planned 0 of 1 queued observation(s)" in line]

    wait_until(lambda: len(plan_lines()) >= 3, "three plans of the same queue")
    levels = [line.split("] ", 1)[1].split(" ", 1)[0] for line in plan_lines()]
    assert levels[0] == "INFO" and set(levels[1:]) == {"DEBUG"}, plan_lines()


def test_a_steady_stream_of_orders_is_planned_every_max_replan_delay(make_site):
    """Orders that never pause for Replan Delay are still planned, Max Replan Delay after the
    first of them, while the others keep coming."""
    site = night(make_site, Scheduler={"Manage Dome": False, "Replan Delay": REPLAN_DELAY,
                                       "Max Replan Delay": 1.0})
    scheduler = site.proxy("scheduler")
    later = (EVENING + timedelta(hours=3)).isoformat()
    planned_after, number, began = None, 0, time.monotonic()
    # An order every 0.2 s or so, never a pause of Replan Delay, until the first is planned:
    # the bound is far above Max Replan Delay (a loaded machine plans slowly) and below
    # Replan Delay, which a scheduler ignoring Max Replan Delay would wait for.
    while planned_after is None and time.monotonic() - began < STREAM_SECONDS:
        scheduler.front_desk(observation(f"stream-{number:03d}", *FIELDS["gal-a"],
                                         **{"Not Before": later}))
        number += 1
        if "waiting for the next plan" not in status(scheduler, "stream-000")["Message"]:
            planned_after = time.monotonic() - began
        time.sleep(0.2)
    assert planned_after is not None, "the first order waited for the stream to pause"
    assert number >= 2, "planned before a second order came: not a stream"


#: The longer waits test's Max Replan Delay, and how long it floods at least; beyond that, as
#: long as the last plan's promised wait and a margin (a loaded machine's plans are slow and
#: their waits long: a plan of 1 s promises 100 s), but never more than the limit. Its Replan
#: Delay is far above the flood's pauses of 0.1 s, and short for its two lone orders.
MAX_REPLAN_DELAY, FLOOD_SECONDS, FLOOD_MARGIN, FLOOD_LIMIT = 0.2, 90.0, 30.0, 300.0
FLOOD_PAUSE = 3.0
#: A log line of the scheduler's plan: when it ended, and how long at most the next waits for
#: orders that keep arriving.
PLAN_LINE = re.compile(r"^(\S+) .* planned \d+ of \d+ queued observation\(s\) in [\d.]+ s, "
                       r".* planned again within ([\d.]+) s$", re.MULTILINE)


def test_a_plan_that_took_long_waits_longer_for_a_stream_of_orders(make_site):
    """After a plan of t seconds, orders that keep arriving are planned again only after
    t / Max Planning Share (when longer than Max Replan Delay): a flood's plans take at most
    that share of the time."""
    site = night(make_site, Scheduler={"Manage Dome": False, "Replan Delay": FLOOD_PAUSE,
                                       "Max Replan Delay": MAX_REPLAN_DELAY,
                                       "Max Planning Share": 0.01,
                                       "Replan Interval": 86400.0})
    scheduler = site.proxy("scheduler")
    later = (EVENING + timedelta(hours=3)).isoformat()

    def logged_plans():
        return [(datetime.strptime(ended_at, "%Y-%m-%dT%H:%M:%S.%fZ"), float(wait))
                for ended_at, wait in PLAN_LINE.findall(site.log("scheduler"))]

    # The first plan with an order pays for the ephemerides' first use (0.3 s here, seconds
    # on a loaded machine: its wait would be minutes), so two lone orders come first, each
    # planned Replan Delay after it came; the flood starts after the second's plan.
    for order_id in ("first", "second"):
        scheduler.front_desk(observation(order_id, *FIELDS["gal-a"], **{"Not Before": later}))
        wait_until(lambda: "waiting for the next plan" not in
                   status(scheduler, order_id)["Message"], f"the {order_id} order's plan")
    before_flood = len(logged_plans()) - 1
    began = time.monotonic()
    number, deadline, plans = 0, began + FLOOD_SECONDS, []

    def a_plan_followed_a_longer_wait():
        return any(wait > MAX_REPLAN_DELAY for _, wait in plans[:-1])

    # An order every 0.1 s or so, never a pause of Replan Delay, until a plan follows one
    # that waited longer than Max Replan Delay (a plan of 10 ms: 1 s; of 100 ms: 10 s).
    while not a_plan_followed_a_longer_wait() and time.monotonic() < deadline:
        scheduler.front_desk(observation(f"flood-{number:03d}", *FIELDS["gal-a"],
                                         **{"Not Before": later}))
        number += 1
        time.sleep(0.1)
        seen = len(plans)
        plans = logged_plans()[before_flood:]
        if len(plans) > seen:  # a new plan: the next one is due within its wait
            deadline = min(began + FLOOD_LIMIT,
                           max(deadline, time.monotonic() + plans[-1][1] + FLOOD_MARGIN))
    assert a_plan_followed_a_longer_wait(), f"no plan after a longer wait: {plans}"
    for (ended_at, wait), (next_ended_at, _) in zip(plans, plans[1:]):
        # (the wait is logged to 0.1 s)
        assert (next_ended_at - ended_at).total_seconds() >= wait - 0.06, plans


def test_a_target_of_opportunity_interrupts_and_the_other_order_comes_back(make_site):
    site = night(make_site)
    scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
    scheduler.front_desk(observation("long", *FIELDS["gal-a"], **{"Exposure Time": 120.0,
                                                            "Number of Exposures": 3}))
    wait_until(lambda: step(telescope, "long").startswith("exposing"),
               "the long observation to expose")
    receipt = scheduler.front_desk(observation("alert", *ALERT, **{
        "Type of job": "ToO", "Type of object": "Kilonova candidate",
        "Exposure Time": 60.0, "Number of Exposures": 1}))
    assert receipt["Priority"] == 10.0
    ended(scheduler, "alert", "done")
    history = [entry["Reason"] for entry in status(scheduler, "long")["History"]]
    assert any("interrupted by target of opportunity alert" in reason for reason in history)
    assert any(reason.endswith("queued again") for reason in history)
    done = ended(scheduler, "long", "done")
    assert done["Progress"]["Attempts"] == 1  # the interruption did not count as a try


def test_targets_of_opportunity_waiting_their_turn_are_planned_at_once_not_at_transit(
        make_site):
    """Three targets of opportunity at once, up now and transiting four hours later: those
    waiting for the telescope are shown planned right after the one under way, as they are
    dispatched. The plan moved them toward their transit, and said so ("planned for 06:10")."""
    site = night(make_site)
    scheduler = site.proxy("scheduler")
    toos = [f"too-{n}" for n in range(3)]
    for n, order_id in enumerate(toos):
        # RA 40°-42°, Dec +25°: about 40° up at CTMO at 02:00 UTC on the test's evening.
        scheduler.front_desk(observation(order_id, 40.0 + n, 25.0, **{
            "Type of job": "ToO", "Type of object": "Kilonova candidate",
            "Exposure Time": 300.0, "Number of Exposures": 1}))
    planned = []
    for order_id in toos:
        for entry in ended(scheduler, order_id, "done")["History"]:
            shown = re.match(r"planned for (\d\d):(\d\d) UTC", entry["Reason"])
            if shown:
                when = instant(entry["Time"])
                at = when.replace(hour=int(shown.group(1)), minute=int(shown.group(2)))
                planned.append((order_id, when, at))
    assert planned, "no target of opportunity was shown planned"
    for order_id, when, at in planned:
        assert at - when < timedelta(minutes=30), (order_id, when, at)


def test_targets_of_opportunity_of_equal_priority_go_in_the_order_of_the_plan_shown(
        make_site):
    """Two targets of opportunity waiting behind a third: the one setting first is planned
    first, and is dispatched first, as the plan showed. Before, the first received went
    first, whatever the plan had shown (the demo's S3456-1-04 was "planned for 03:33", and
    observed at 03:41, after 1-02 and 1-03)."""
    site = night(make_site)
    scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
    too = {"Type of job": "ToO", "Type of object": "Kilonova candidate",
           "Number of Exposures": 1}
    scheduler.front_desk(observation("under-way", 0.0, 25.0, **too, **{"Exposure Time": 600.0}))
    wait_until(lambda: step(telescope, "under-way").startswith("exposing"),
               "the first target of opportunity to expose")
    # Both high enough now; at Dec +25°, the one at RA 330° sets hours before the one at 30°.
    scheduler.front_desk(observation("sets-late", 30.0, 25.0, **too))
    scheduler.front_desk(observation("sets-early", 330.0, 25.0, **too))

    def planned():
        entries = scheduler.front_desk({"WOType": "Status"})["Plan"]["Entries"]
        return [entry["ID"] for entry in entries if entry["ID"].startswith("sets-")]

    wait_until(lambda: len(planned()) == 2, "both to be planned")
    assert planned() == ["sets-early", "sets-late"]
    assert status(scheduler, "under-way")["Status"] == "running"  # planned before it ended
    for order_id in ("sets-late", "sets-early"):
        ended(scheduler, order_id, "done")
    assert (first_entered(scheduler, "sets-early", "dispatched")
            < first_entered(scheduler, "sets-late", "dispatched"))


def test_a_plan_made_while_an_order_slews_counts_the_next_slew_from_that_orders_field(
        make_site):
    """An order arriving while the one under way slews, at 0.1°/s, 54° across the sky: it is
    planned to start one short slew after that order ends, the slew from that order's field.
    Before, the plan measured it from where the telescope pointed then, half-way there."""
    slow = {"Slew Rate": 0.1}
    site = night(make_site, Simulator=slow, Observing=slow)
    scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
    one = {"Number of Exposures": 1}
    scheduler.front_desk(observation("before", 330.0, 25.0, **one))
    ended(scheduler, "before", "done")
    scheduler.front_desk(observation("under-way", 30.0, 25.0, **one))
    wait_until(lambda: step(telescope, "under-way").startswith("slewing"),
               "the order under way to slew")
    scheduler.front_desk(observation("next", 31.0, 25.0, **one))

    def planned_start():
        entries = scheduler.front_desk({"WOType": "Status"})["Plan"]["Entries"]
        return next((instant(entry["Start"]) for entry in entries if entry["ID"] == "next"),
                    None)

    wait_until(lambda: planned_start() is not None, "the next order to be planned")
    start = planned_start()
    assert step(telescope, "under-way").startswith("slewing")  # planned during the slew
    dispatched = instant(status(scheduler, "under-way")["Progress"]["Dispatched At"])
    # 60 s and a readout, a 1° slew and settling, the plan's one-minute grid: under three
    # minutes; a slew from half-way (27° at 0.1°/s) alone is four and a half.
    assert start - dispatched < timedelta(minutes=3), (dispatched, start)


def test_a_target_of_opportunity_waits_out_a_dome_daemon_restart(make_site):
    """The dome daemon killed and started again (a crash, ``systemctl restart dome``): a target
    of opportunity that arrives meanwhile is observed once the dome is back. Before, the
    scheduler went on sending it to the telescope, which will not start without the dome's
    word, and its tries were all spent within a second: the alert's target was lost."""
    site = night(make_site)
    scheduler = site.proxy("scheduler")
    scheduler.front_desk(observation("first", *FIELDS["gal-a"], **{"Number of Exposures": 1}))
    ended(scheduler, "first", "done")  # the dome is open, the night under way
    site.daemons["dome"].kill()
    scheduler.front_desk(observation("alert", *ALERT, **{
        "Type of job": "ToO", "Type of object": "Kilonova candidate",
        "Number of Exposures": 1}))
    time.sleep(DOME_DOWN_SECONDS)
    assert status(scheduler, "alert")["Status"] == "queued"
    assert scheduler.front_desk({"WOType": "Status"})["Plan"]["Waiting"].startswith(
        "the dome daemon does not answer (")
    site.start("dome")
    done = ended(scheduler, "alert", "done")
    assert done["Progress"]["Attempts"] <= 2  # at most the one sent as the dome went away


def test_while_the_telescope_daemon_is_down_the_order_due_says_so_once(make_site):
    """The telescope daemon stopped (``systemctl stop telescope``): the order due says why it
    waits, the scheduler's log says it once (not at each tick, several a second), and the
    order goes once the telescope is back."""
    site = night(make_site)
    scheduler = site.proxy("scheduler")
    scheduler.front_desk(observation("first", *FIELDS["gal-a"], **{"Number of Exposures": 1}))
    ended(scheduler, "first", "done")  # the dome is open, the night under way
    site.daemons.pop("telescope").stop()
    scheduler.front_desk(observation("waits", *FIELDS["gal-b"], **{"Number of Exposures": 1}))
    waiting = "waiting: the telescope daemon does not answer: [Errno 111] Connection refused"
    wait_until(lambda: status(scheduler, "waits")["Message"] == waiting, "the order to say why")
    time.sleep(TELESCOPE_DOWN_SECONDS)   # plans and ticks: the message stays
    answer = status(scheduler, "waits")
    assert answer["Message"] == waiting
    assert [entry["Reason"] for entry in answer["History"]].count(waiting) == 1
    assert site.log("scheduler").count("the telescope daemon does not answer") == 1
    site.start("telescope")
    ended(scheduler, "waits", "done")
    assert "[WO waits] the telescope daemon answers again" in site.log("scheduler")


def test_after_a_target_of_opportunity_the_schedulers_status_follows_at_once(make_site):
    """With a Follow Interval of an hour, only the quick follow-up of a dispatched order (and of
    the one it interrupted) can show, within moments, the target of opportunity running and the
    interrupted order queued again at the scheduler, as at the telescope. So, at dusk, the
    scheduler sees the dome it opened open within moments, and dispatches."""
    site = night(make_site, Scheduler={"Follow Interval": FOLLOW_INTERVAL})
    scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
    scheduler.front_desk(observation("long", *FIELDS["gal-a"], **{"Exposure Time": 120.0,
                                                            "Number of Exposures": 6}))
    wait_until(lambda: step(telescope, "long").startswith("exposing"),
               "the long observation to expose")
    wait_until(lambda: status(scheduler, "long")["Status"] == "running",
               "the scheduler to show the long observation running")
    opening = re.search(r"opening the dome \(dome order (\S+)\)", site.log("scheduler"))
    opened = first_entered(site.proxy("dome"), opening.group(1), "done")
    assert first_entered(scheduler, "long", "dispatched") - opened < timedelta(
        seconds=QUICK_FOLLOW_UP)
    scheduler.front_desk(observation("alert", *ALERT, **{
        "Type of job": "ToO", "Type of object": "Kilonova candidate",
        "Exposure Time": 300.0, "Number of Exposures": 6}))
    running = wait_until(lambda: entered(scheduler, "alert", "running"),
                         "the scheduler to show the target of opportunity running")
    queued = wait_until(lambda: entered(scheduler, "long", "queued"),
                        "the scheduler to show the interrupted order queued again")
    assert status(telescope, "long")["Status"] == "interrupted"
    # Timed by the scheduler's own clock, not by how long this test took to see it: both
    # were shown within moments of the dispatch, not at a regular follow-up.
    dispatched = first_entered(scheduler, "alert", "dispatched")
    assert running - dispatched < timedelta(seconds=QUICK_FOLLOW_UP)
    assert queued - dispatched < timedelta(seconds=QUICK_FOLLOW_UP)


def test_cancel_a_queued_and_a_running_order(make_site):
    site = night(make_site)
    scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
    scheduler.front_desk(observation("first", *FIELDS["gal-a"], **{"Exposure Time": 300.0,
                                                             "Number of Exposures": 5}))
    wait_until(lambda: status(scheduler, "first")["Status"] == "running", "the first to run")
    # Sent once the first runs, so that it waits behind it (sent together, the planner may put
    # it first, and it may be done before it is cancelled).
    scheduler.front_desk(observation("second", *FIELDS["gal-b"], **{"Type of job": "Test"}))
    assert status(scheduler, "second")["Status"] == "queued"
    scheduler.front_desk({"WOType": "Cancel", "ID": "second", "User": "operator"})
    scheduler.front_desk({"WOType": "Cancel", "ID": "first", "User": "operator"})
    wait_until(lambda: status(telescope, "first")["Status"] == "cancelled",
               "the telescope to cancel it")
    assert status(scheduler, "second")["Status"] == "cancelled"
    # Never dispatched: the telescope has not heard of it (and is up to say so).
    fault = refusal(telescope.front_desk, {"WOType": "Status", "ID": "second"})
    assert fault.faultCode == FaultCode.NOT_FOUND
    assert fault.faultString == ("'ID': received 'second'; the telescope daemon has no work "
                                 "order with this ID")


def test_a_restart_mid_night_loses_nothing(make_site):
    # And an exposure longer than the Stall Timeout is no stall: a frame being exposed
    # reports nothing until it is read out (the default 900 s stopped 20-minute exposures).
    site = night(make_site, Scheduler={"Stall Timeout": 60.0})
    scheduler = site.proxy("scheduler")
    scheduler.front_desk(observation("during", *FIELDS["gal-a"], **{"Exposure Time": 120.0,
                                                              "Number of Exposures": 4}))
    scheduler.front_desk(observation("after", *FIELDS["gal-b"]))
    wait_until(lambda: status(scheduler, "during")["Status"] == "running", "the first to run")
    site.daemons["scheduler"].kill()  # kill -9, mid-observation
    site.start("scheduler")
    scheduler = site.proxy("scheduler")
    assert ended(scheduler, "during", "done")["Progress"]["Frames Done"] == 4
    ended(scheduler, "after", "done")
    assert "no progress" not in site.log("scheduler")


def test_an_order_past_its_deadline_expires(make_site):
    # Up only by day: queued, it is never observed before its window ends.
    site = night(make_site, Scheduler={"Manage Dome": False})
    scheduler = site.proxy("scheduler")
    ended_already = refusal(scheduler.front_desk, observation("ended", *FIELDS["gal-a"], **{
        "Not After": EVENING.replace(hour=1).isoformat()}))
    assert ended_already.faultString.startswith("'Not After': received "
                                                "'2026-11-10T01:00:00.000Z'; allowed: an "
                                                "instant still to come")
    # Ten minutes from the scheduler's clock (six real seconds), not from its start: on a
    # loaded machine the daemons take seconds to start.
    now = datetime.fromisoformat(scheduler.front_desk({"WOType": "Status"})["Now"])
    scheduler.front_desk(observation("late", *DAYTIME, **{
        "Not After": (now + timedelta(minutes=10)).isoformat()}))
    result = ended(scheduler, "late", "failed")
    assert result["Message"].startswith("expired: its window ended at")


def test_a_dome_closed_by_an_operator_at_night_stays_closed_until_opened(make_site):
    """Someone inside, a storm the safety monitor does not see: the scheduler does not open
    again, as it does at dusk, a dome an operator closed; the dome parks the telescope, as
    when it closes for safety, and an operator's Open ends the hold."""
    site = night(make_site)
    scheduler, dome = site.proxy("scheduler"), site.proxy("dome")

    def shutter():
        return dome.front_desk({"WOType": "Status"})["Devices"]["Enclosure"]["Shutter"]

    wait_until(lambda: shutter() == "open", "the scheduler to open the dome at dusk")
    scheduler.front_desk({"ID": "close-op", "WOType": "Dome", "Shutter": "Close",
                          "User": "operator"})
    ended(scheduler, "close-op", "done")
    wait_until(lambda: "the dome was closed by Dome order close-op from operator at "
               in site.log("scheduler"), "the scheduler to say it keeps the dome closed")
    time.sleep(DOME_DOWN_SECONDS)  # many of the scheduler's ticks at 100×
    assert shutter() == "closed"
    assert scheduler.front_desk({"WOType": "Status"})["Plan"]["Waiting"].startswith(
        "the dome was closed by Dome order close-op from operator at ")
    assert "dome closing: Dome order close-op from operator" in site.log("telescope")
    wait_until(lambda: site.proxy("telescope").front_desk({"WOType": "Status"})[
        "Devices"]["Pointing"]["Parked"], "the telescope to park")
    # A restart of both daemons (a power cut) ends no hold: the dome reads it back from its
    # journal.
    site.daemons.pop("scheduler").stop()
    site.daemons.pop("dome").stop()
    site.start("dome")
    site.start("scheduler")
    scheduler, dome = site.proxy("scheduler"), site.proxy("dome")
    assert dome.front_desk({"WOType": "Status"})["Devices"]["Enclosure"][
        "Closed By Order"]["ID"] == "close-op"
    time.sleep(DOME_DOWN_SECONDS)
    assert shutter() == "closed"
    scheduler.front_desk({"ID": "open-op", "WOType": "Dome", "Shutter": "Open",
                          "User": "operator"})
    ended(scheduler, "open-op", "done")
    time.sleep(DOME_DOWN_SECONDS)
    assert shutter() == "open"


def test_a_scheduler_says_once_why_the_dome_may_not_open_in_the_dark(make_site, tmp_path):
    """Orders planned for minutes ago, nothing dispatched, and no word in the scheduler's log:
    only the dome daemon's Status said why (here rain; on a real machine, a system clock no
    time service keeps)."""
    weather = tmp_path / "weather"
    weather.write_text("unsafe: rain on the weather station")
    site = make_site(settings(Simulator={"Weather File": str(weather)}))
    # The dome first: started at once, the scheduler's first heartbeat could find no dome
    # yet, and the dome's reason then said "; no heartbeat from the scheduler yet" until the
    # next one, another reason, said again (a fresh-clone run).
    site.start("dome")
    site.start("telescope", "scheduler")
    said = "dark, but the dome may not open: unsafe since "
    wait_until(lambda: said in site.log("scheduler"), "the scheduler to say why it waits")
    time.sleep(DOME_DOWN_SECONDS)  # many of the scheduler's ticks at 100×
    log = site.log("scheduler")
    assert log.count(said) == 1 and "rain on the weather station" in log
    # The plan shows it too (toros status, toros plan, the status page): its times pass.
    scheduler = site.proxy("scheduler")
    waiting = scheduler.front_desk({"WOType": "Status"})["Plan"]["Waiting"]
    assert waiting.startswith("the dome is closed and may not open: unsafe since "), waiting
    assert "rain on the weather station" in waiting
    weather.unlink()  # it clears: the dome opens after its Reopen Delay (0 here)
    wait_until(lambda: "dark and safe: opening the dome" in site.log("scheduler"),
               "the scheduler to open the dome")
    wait_until(lambda: "Waiting" not in scheduler.front_desk({"WOType": "Status"})["Plan"],
               "the plan to stop saying it waits, the dome open")


@pytest.mark.parametrize("hour, dark", [(18, False), (4, True)])
def test_a_dome_daemon_that_does_not_answer_holds_the_plan_only_in_the_dark(hour, dark):
    """By day nothing is sent anyway: the plan then says nothing of the dome."""
    import socket

    from torosmanager.clock import Clock
    from torosmanager.config import default_config
    from torosmanager.night import Night
    from torosmanager.scheduler.dome_keeper import DomeKeeper

    config = default_config()
    with socket.socket() as unused:  # a loopback port nothing listens on
        unused.bind(("127.0.0.1", 0))
        config["Dome Address"]["Port"] = unused.getsockname()[1]
    keeper = DomeKeeper(config, Clock(), Night(config["Site"]))
    now = EVENING.replace(hour=hour)
    assert keeper.keep(now) == (False, False)
    if dark:
        assert keeper.waiting.startswith("the dome daemon does not answer ([Errno 111]")
    else:
        assert keeper.waiting is None


def test_in_a_polar_night_a_dome_closed_by_an_operator_stays_closed_through_a_restart(
        make_site):
    """At the South Pole in June the Sun never rises: "tonight" had no dusk, and began
    wherever the scheduler looked for it. Restarted, it found a night beginning after the
    operator's close, and opened the dome again (as every 36 hours, when it looked anew)."""
    site = make_site(settings(start=EVENING.replace(month=6, day=10, hour=6),
                              Site={"Latitude": -89.99, "Longitude": 0.0, "Elevation": 2835}))
    site.start("dome", "telescope", "scheduler")
    dome = site.proxy("dome")

    def shutter():
        return dome.front_desk({"WOType": "Status"})["Devices"]["Enclosure"]["Shutter"]

    wait_until(lambda: shutter() == "open", "the scheduler to open the dome in the dark")
    dome.front_desk({"ID": "close-op", "WOType": "Dome", "Shutter": "Close", "User": "operator"})
    ended(dome, "close-op", "done")
    wait_until(lambda: "the dome was closed by Dome order close-op" in site.log("scheduler"),
               "the scheduler to say it keeps the dome closed")
    site.daemons.pop("scheduler").stop()
    site.start("scheduler")
    wait_until(lambda: site.log("scheduler").count("the dome was closed by Dome order "
                                                   "close-op") == 2,
               "the restarted scheduler to say it keeps the dome closed")
    time.sleep(DOME_DOWN_SECONDS)  # many of the scheduler's ticks at 100×
    assert shutter() == "closed"
    assert "opening the dome" not in site.log("scheduler").rsplit("listening on", 1)[1]


def test_an_order_waits_for_a_dome_someone_else_keeps_closed_without_spending_its_tries(
        make_site):
    """The scheduler that does not manage the dome sent observations into a closed one: the
    telescope refused each (not started, the shutter closed), a try each, and the order failed
    after its four tries within seconds. It waits until the dome is open."""
    site = night(make_site, Scheduler={"Manage Dome": False})
    scheduler = site.proxy("scheduler")
    scheduler.front_desk(observation("waits", *FIELDS["gal-a"]))
    wait_until(lambda: "waits" in [entry["ID"] for entry in scheduler.front_desk(
        {"WOType": "Status"})["Plan"]["Entries"]], "the order to be planned")
    time.sleep(DOME_DOWN_SECONDS)  # many of the scheduler's ticks at 100×, the order due
    waiting = status(scheduler, "waits")
    assert waiting["Status"] == "queued", waiting["Message"]
    assert "Attempts" not in waiting["Progress"]
    assert "not started" not in site.log("telescope")
    assert scheduler.front_desk({"WOType": "Status"})["Plan"]["Waiting"] == (
        "the dome is closed (Scheduler → Manage Dome is off: someone else opens it)")
    site.proxy("dome").front_desk({"ID": "open", "WOType": "Dome", "Shutter": "Open"})
    assert ended(scheduler, "waits", "done")["Progress"]["Attempts"] == 1


def test_an_observation_the_dome_stops_does_not_spend_a_try(make_site):
    """The dome closing (for the weather, or, here, an operator's order) interrupts the
    observation under way: that is no fault of the order's, and no try, as for a target of
    opportunity's turn. Before, with no try left (``Max Retries: 0``), it failed; it is queued
    again, and ends with all its frames once the dome opens."""
    site = night(make_site, Scheduler={"Manage Dome": False, "Max Retries": 0})
    scheduler, dome = site.proxy("scheduler"), site.proxy("dome")
    dome.front_desk({"ID": "open", "WOType": "Dome", "Shutter": "Open"})
    scheduler.front_desk(observation("clouded", *FIELDS["gal-a"], **{
        "Exposure Time": 300, "Number of Exposures": 3}))
    wait_until(lambda: frames_done(site.proxy("telescope"), "clouded") == 1, "the first frame")
    dome.front_desk({"ID": "close", "WOType": "Dome", "Shutter": "Close", "User": "operator"})
    wait_until(lambda: status(scheduler, "clouded")["Status"] == "queued",
               "the order to be queued again")
    assert status(scheduler, "clouded")["Progress"]["Attempts"] == 0
    assert "[WO clouded] running → queued: interrupted (dome closing: Dome order close from " \
        "operator" in site.log("scheduler")
    dome.front_desk({"ID": "open again", "WOType": "Dome", "Shutter": "Open"})
    done = ended(scheduler, "clouded", "done")
    assert done["Progress"]["Frames Done"] == 3 and len(done["Progress"]["Files"]) == 3
    assert done["Progress"]["Attempts"] == 1


def test_an_observation_under_way_when_the_telescope_daemon_is_stopped_spends_no_try(
        make_site):
    """``systemctl restart telescope`` (an upgrade) mid-observation: the order was interrupted,
    a try spent, and with ``Max Retries: 0`` it failed. A stop is no fault of the order's; a
    kill -9 still counts (tests/test_hand_offs.py), so that an order that crashes the daemon is
    not tried for ever."""
    site = night(make_site, Scheduler={"Max Retries": 0})
    scheduler = site.proxy("scheduler")
    scheduler.front_desk(observation("upgraded", *FIELDS["gal-a"], **{
        "Exposure Time": 300, "Number of Exposures": 2}))
    wait_until(lambda: frames_done(site.proxy("telescope"), "upgraded") == 1, "the first frame")
    site.daemons.pop("telescope").stop()
    site.start("telescope")
    done = ended(scheduler, "upgraded", "done")
    assert done["Progress"]["Attempts"] == 1 and len(done["Progress"]["Files"]) == 2


#: The dawn test's clock: started this long before the night's end (the plan's last instant),
#: at this speed.
BEFORE_DAWN, DAWN_SPEED = timedelta(minutes=8), 30


def test_at_dawn_the_dome_closes_once_the_planned_night_is_over_not_a_grid_step_before(
        make_site):
    """The plan runs to the night's last dark sample; the dome closed a grid step (5 minutes)
    before it, and interrupted the frames planned there."""
    from torosmanager.config import default_config
    from torosmanager.night import Night

    defaults = default_config()
    dawn = Night(defaults["Site"]).window(EVENING, defaults["Observing"]["Sun Altitude"]).end
    site = night(make_site, Clock=simulated_clock(dawn - BEFORE_DAWN, DAWN_SPEED))
    closing = wait_until(lambda: re.search(r"dawn: closing the dome \(dome order "
                                           r"scheduler-(\d{8}T\d{6})-", site.log("scheduler")),
                         "the scheduler to close the dome at dawn")
    closed_at = datetime.strptime(closing.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dawn.tzinfo)
    assert dawn <= closed_at < dawn + timedelta(minutes=1)
    assert "dark and safe: opening the dome" in site.log("scheduler")


#: A field near the meridian at dawn on the simulated night (LST about 8.8 h at CTMO).
AT_DAWN = (130.0, 30.0)
#: The test below's clock: time enough before dawn for the daemons to start and the dome to
#: open on a loaded machine (30 real seconds; their start took 16 with three such tests at
#: once on 2 cores).
UP_BEFORE_DAWN, UP_SPEED = timedelta(minutes=30), 60


def test_an_observation_the_night_s_end_stops_spends_no_try(make_site):
    """At dawn the scheduler closes the dome and parks the telescope, and the observation
    under way (here still waiting for its CCD to cool) is interrupted. Whose Park reached the
    telescope first, the closing dome's or the scheduler's, decided whether that was a try:
    with ``Max Retries: 0`` the order failed. It is none; the order waits for the next night."""
    from torosmanager.config import default_config
    from torosmanager.night import Night

    defaults = default_config()
    dawn = Night(defaults["Site"]).window(EVENING, defaults["Observing"]["Sun Altitude"]).end
    site = night(make_site, Clock=simulated_clock(dawn - UP_BEFORE_DAWN, UP_SPEED),
                 Scheduler={"Max Retries": 0},
                 Telescope={"Camera": {"Cooling Setpoint": -40.0, "Cooling Timeout": 3600.0}},
                 Simulator={"Cooling Rate": 0.1})
    scheduler = site.proxy("scheduler")
    # A target of opportunity: sent at once, not moved toward its transit near dawn.
    scheduler.front_desk(observation("at-dawn", *AT_DAWN, **{
        "Number of Exposures": 1, "Calibration Frames": "No", "Type of job": "ToO",
        "Type of object": "Kilonova candidate"}))
    wait_until(lambda: step(site.proxy("telescope"), "at-dawn").startswith("cooling the CCD"),
               "the order to wait for its CCD")
    stopped = wait_until(lambda: [entry for entry in status(site.proxy("telescope"), "at-dawn")[
        "History"] if entry["Status"] == "interrupted"], "dawn to stop the order")
    # The scheduler's Park ("dawn"), or the closing dome's, whichever came first.
    assert stopped[0]["Reason"].startswith(("dawn (Park order ",
                                            "dome closing: Dome order scheduler-")), stopped
    wait_until(lambda: status(scheduler, "at-dawn")["Status"] == "queued",
               "the order to wait for the next night")
    assert status(scheduler, "at-dawn")["Progress"]["Attempts"] == 0


def test_a_cancel_the_telescope_did_not_hear_is_told_when_it_answers_even_after_a_restart(
        make_site):
    """A Cancel of a dispatched order was sent to the telescope once: one it did not hear (the
    daemon down, or the scheduler stopped before telling it) was never sent again, and the
    telescope could go on with an order the scheduler reported cancelled."""
    site = night(make_site)
    scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
    scheduler.front_desk(observation("long", *FIELDS["gal-a"], **{"Exposure Time": 300.0,
                                                            "Number of Exposures": 5}))
    wait_until(lambda: step(telescope, "long").startswith("exposing"), "the order to expose")
    site.daemons.pop("telescope").stop()
    scheduler.front_desk({"WOType": "Cancel", "ID": "long", "User": "operator"})
    assert status(scheduler, "long")["Message"] == ("cancelled by operator; telling the "
                                                    "telescope daemon")
    wait_until(lambda: "could not tell the telescope daemon to cancel it" in
               site.log("scheduler"), "the scheduler to find the telescope down")
    site.daemons.pop("scheduler").stop()  # before the telescope is back
    site.start("telescope")
    telescope = site.proxy("telescope")
    assert status(telescope, "long")["Status"] == "interrupted"
    site.start("scheduler")
    wait_until(lambda: status(telescope, "long")["Status"] == "cancelled",
               "the telescope to cancel it")
    wait_until(lambda: status(site.proxy("scheduler"), "long")["Message"] ==
               "cancelled by operator; the telescope daemon was told",
               "the scheduler to say the telescope was told")


def test_a_dome_closed_by_an_operator_in_the_afternoon_is_not_opened_at_dusk(make_site):
    """Closed before going in, before dusk: the scheduler held only a close made after tonight's
    dusk, and opened the dome at dusk with someone inside."""
    before_dusk = EVENING - timedelta(hours=1, minutes=20)   # dusk at 01:05 UTC
    site = make_site(settings(speed=600, start=before_dusk))
    site.start("dome", "telescope", "scheduler")
    scheduler, dome = site.proxy("scheduler"), site.proxy("dome")
    scheduler.front_desk({"ID": "close-day", "WOType": "Dome", "Shutter": "Close",
                          "User": "alice"})
    ended(scheduler, "close-day", "done")
    closed_at = dome.front_desk({"WOType": "Status"})["Devices"]["Enclosure"][
        "Closed By Order"]["At"]
    assert closed_at < "2026-11-10T01:05"
    wait_until(lambda: "the dome was closed by Dome order close-day from alice at "
               in site.log("scheduler"), "the scheduler to say at dusk that it stays closed")
    time.sleep(DOME_DOWN_SECONDS)
    assert dome.front_desk({"WOType": "Status"})["Devices"]["Enclosure"]["Shutter"] == "closed"
    assert "opening the dome" not in site.log("scheduler")


@pytest.mark.parametrize("user, closed_at, holds", [
    ("alice", "2026-11-10T01:30:00.000Z", True),     # tonight, after dusk
    ("alice", "2026-11-09T23:40:00.000Z", True),     # the afternoon before
    ("alice", "2026-11-09T03:00:00.000Z", False),    # during last night
    ("scheduler", "2026-11-09T11:30:00.000Z", False),  # the keeper's own close at dawn
])
def test_a_close_holds_the_dome_for_the_night_it_was_made_in_or_before(user, closed_at, holds):
    from torosmanager.clock import Clock
    from torosmanager.config import default_config
    from torosmanager.night import Night
    from torosmanager.scheduler.dome_keeper import DomeKeeper

    config = default_config()
    keeper = DomeKeeper(config, Clock(), Night(config["Site"]))
    held = keeper._hold({"ID": "close", "User": user, "At": closed_at}, EVENING)
    assert (held is not None) == holds


def test_a_telescope_on_another_clock_is_said_and_its_refusals_are_tried_again_later(
        make_site, tmp_path):
    """The scheduler's clock two hours ahead of the telescope's (daemons on machines whose
    clocks drifted apart, a Clock changed and only the scheduler restarted): a target high for
    the scheduler is too low for the telescope. Every try was re-sent at once, all four spent
    within 0.1 s; each now waits Retry Delay, doubled at each try, and the scheduler says the
    clocks differ."""
    import yaml
    from astropy.coordinates import Longitude
    from astropy.time import Time

    from torosmanager.launcher import DaemonProcess

    site = make_site(settings())
    site.start("dome", "telescope")
    config = yaml.safe_load(open(site.config_path, encoding="utf-8"))
    config["Clock"]["Start"] = (EVENING + timedelta(hours=2)).isoformat()
    ahead = tmp_path / "scheduler-ahead.yaml"
    ahead.write_text(yaml.safe_dump(config), encoding="utf-8")
    site.daemons["scheduler"] = DaemonProcess("scheduler", str(ahead)).launch()
    site.daemons["scheduler"].wait_ready()
    scheduler = site.proxy("scheduler")
    # Six hours east of the meridian for the telescope, at the site's latitude: about 11° up
    # (under the 20° it takes), some 36° for the scheduler's clock, two hours later.
    latitude, longitude = site.config["Site"]["Latitude"], site.config["Site"]["Longitude"]
    sidereal = Time(EVENING).sidereal_time("mean", longitude=Longitude(longitude, "deg"))
    scheduler.front_desk(observation("rising", float(sidereal.deg + 90.0) % 360.0, latitude,
                                     **{"Exposure Time": 10.0, "Number of Exposures": 1}))
    failed = ended(scheduler, "rising", "failed")
    assert "after 4 tries" in failed["Message"]
    assert "Retry After" not in failed["Progress"]   # over once it was sent again
    history = failed["History"]
    assert [entry["Status"] for entry in history].count("dispatched") == 4
    retried = [n for n, entry in enumerate(history) if "will try again" in entry["Reason"]]
    for n, delay in zip(retried, (60, 120, 240), strict=True):
        sent_again = next(entry for entry in history[n:] if entry["Status"] == "dispatched")
        waited = parse_utc(sent_again["Time"]) - parse_utc(history[n]["Time"])
        assert waited >= timedelta(seconds=delay), (delay, history)
    log = site.log("scheduler")
    assert re.search(r"the telescope daemon's clock reads \S+, -7\d\d\d s from the "
                     r"scheduler's", log)
    assert log.count("the telescope daemon's clock reads") == 1
    assert "the dome daemon's clock reads" in log


def test_an_order_under_way_when_the_telescope_daemon_is_silent_says_so_and_the_plan_too(
        make_site):
    """The telescope daemon silent mid-observation (hung, out of reach; here stopped with
    SIGSTOP) and not back for hours: the order still said "running: exposing 1/2" all that
    time, the plan said nothing of it, and the queued orders behind it read "not observable
    tonight". It stays running (the camera may expose still), its message and the plan's
    heading say the telescope daemon does not answer since when, and once it answers again
    the order has the telescope's own message back, the same step as before too."""
    site = night(make_site, Server={"Peer Timeout": 1.0})
    scheduler = site.proxy("scheduler")
    # An hour's exposure: 36 real seconds at 100×, the same step before and after.
    scheduler.front_desk(observation("long", *FIELDS["gal-a"], **{
        "Number of Exposures": 2, "Exposure Time": 3600.0}))
    wait_until(lambda: step(scheduler, "long").startswith("exposing 1/2"),
               "the first frame's exposure")
    telescope = site.daemons["telescope"].pid
    os.kill(telescope, signal.SIGSTOP)
    try:
        silent = wait_until(lambda: status(scheduler, "long")["Message"].startswith(
            "the telescope daemon does not answer since ") and status(scheduler, "long"),
            "the order to say the telescope daemon does not answer")
        assert silent["Status"] == "running"
        assert "it said: exposing" in silent["Message"]
        assert scheduler.front_desk({"WOType": "Status"})["Plan"]["Waiting"].startswith(
            "the telescope daemon does not answer since ")
        time.sleep(DOME_DOWN_SECONDS)  # many ticks: said once
    finally:
        os.kill(telescope, signal.SIGCONT)
    history = status(scheduler, "long")["History"]
    assert sum("does not answer since" in entry["Reason"] for entry in history) == 1
    assert step(scheduler, "long").startswith("exposing 1/2")
    wait_until(lambda: not status(scheduler, "long")["Message"].startswith(
        "the telescope daemon does not answer"), "the order to have its own message again",
               patience=SAME_STEP_SECONDS)
    wait_until(lambda: "Waiting" not in scheduler.front_desk({"WOType": "Status"})["Plan"],
               "the plan to stop saying it waits")


def test_an_order_whose_window_closes_before_the_next_dark_hours_is_refused(make_site):
    """Sent at noon with a Not After at 20:00 UTC, before dusk (01:05 UTC): it was accepted,
    said "not observable tonight", and failed "expired" eight hours later."""
    site = make_site(settings(start=EVENING.replace(hour=12) - timedelta(days=1)))
    site.start("scheduler")
    scheduler = site.proxy("scheduler")
    fault = refusal(scheduler.front_desk, observation(
        "too-soon", *FIELDS["gal-a"], **{"Not After": "2026-11-09T20:00:00Z"}))
    assert fault.faultCode == FaultCode.INVALID
    assert fault.faultString.startswith("'Not After': received '2026-11-09T20:00:00.000Z'; "
                                        "allowed: an instant after the next dark hours begin "
                                        "(2026-11-10T01:0")
    scheduler.front_desk(observation("tonight", *FIELDS["gal-a"],
                                     **{"Not After": "2026-11-10T03:00:00Z"}))
    assert status(scheduler, "tonight")["Status"] == "queued"


def test_the_wait_before_a_try_again_doubles_up_to_its_longest():
    """Doubled without end, the 33rd try's wait overflowed a date (Max Retries allows 100),
    and the tenth waited eight and a half hours."""
    from torosmanager.config import default_config
    from torosmanager.scheduler.dispatcher import retry_delay

    settings = default_config()["Scheduler"]
    assert [retry_delay(settings, n) for n in (1, 2, 3, 7, 33, 100)] == [
        60.0, 120.0, 240.0, 3600.0, 3600.0, 3600.0]
