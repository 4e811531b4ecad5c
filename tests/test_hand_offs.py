"""An observation's frames and a preprocessor that does not answer when it ends.

The order ends done all the same, so that the night goes on, saying the frames wait; they are
handed over once the preprocessor answers, and a restart of the telescope daemon meanwhile loses
none. Before, the hand-off was given up at once: the frames of an ``Output: Analysis`` order
were never calibrated.
"""

import os
import re
import signal
from datetime import datetime, timedelta

import pytest

from observatory import (ended, frames_done, open_dome, refusal, settings, status, step,
                         wait_until)
from torosmanager.hand_offs import hand_off_id, hand_over
from torosmanager.workorders import FaultCode, format_utc

#: Real seconds between the telescope's tries, short for the test (the default is 10).
RETRY_SECONDS = 0.5


def observation(order_id):
    return {"ID": order_id, "WOType": "Observation", "RA": 23.1, "Dec": 13.2, "Filter": "V",
            "Exposure Time": 30.0, "Number of Exposures": 1, "Output": "Analysis",
            "User": "test"}


def handed_over(telescope, order_id):
    """The preprocessing order's ID once the telescope has journaled it, else ``None``."""
    return status(telescope, order_id)["Progress"].get("Preprocessing ID")


def test_frames_wait_for_the_preprocessor_through_a_restart_of_the_telescope(make_site):
    site = make_site(settings(Telescope={"Hand-off Retry Interval": RETRY_SECONDS}))
    site.start("dome", "telescope", "scheduler")  # the preprocessor is down
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk(observation("first"))
    first = ended(telescope, "first", "done")
    assert "the preprocessor does not answer" in first["Message"]
    assert "they are handed to it as soon as it does" in first["Message"]
    assert first["Progress"]["Hand-off"] == "pending"
    telescope.front_desk(observation("second"))  # the night goes on meanwhile
    second = ended(telescope, "second", "done")
    assert telescope.front_desk({"WOType": "Status"})["Hand-offs Pending"] == 2

    site.daemons["telescope"].stop()
    site.start("telescope")
    assert "2 hand-off(s) to the preprocessor pending" in site.log("telescope")
    site.start("preprocessor")
    for done in (first, second):
        handed = wait_until(lambda: handed_over(telescope, done["ID"]),
                            f"the frames of {done['ID']} to be handed over")
        taken = status(site.proxy("preprocessor"), handed)
        assert taken["Work Order"]["File Location"] == done["Progress"]["Files"]
        now = status(telescope, done["ID"])
        assert now["Status"] == "done" and "Hand-off" not in now["Progress"]
        assert now["Message"].endswith(f"; handed to it later, as order {handed}")
    assert telescope.front_desk({"WOType": "Status"})["Hand-offs Pending"] == 0


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted"])
def test_the_scheduler_says_so_too_once_the_frames_are_handed_over(make_site, restart):
    """The scheduler's copy of the order follows the telescope's until the hand-off is made,
    whether the scheduler ran all along or was restarted meanwhile."""
    site = make_site(settings(Telescope={"Hand-off Retry Interval": RETRY_SECONDS},
                              Scheduler={"Follow Interval": 30}))
    site.start("dome", "telescope", "scheduler")  # the preprocessor is down
    scheduler = site.proxy("scheduler")
    for order_id in ("first", "second"):
        scheduler.front_desk(observation(order_id))
    for order_id in ("first", "second"):
        done = ended(scheduler, order_id, "done")
        assert "they are handed to it as soon as it does" in done["Message"]
        assert done["Progress"]["Hand-off"] == "pending"

    if restart:
        site.daemons["scheduler"].stop()
        site.start("scheduler")
    site.start("preprocessor")
    for order_id in ("first", "second"):
        handed = wait_until(lambda: status(scheduler, order_id)["Progress"].get(
            "Preprocessing ID"), f"the scheduler to learn that {order_id} was handed over")
        now = status(scheduler, order_id)
        assert "Hand-off" not in now["Progress"]
        assert handed == handed_over(site.proxy("telescope"), order_id)
        assert now["Message"] == "done at the telescope: " + status(
            site.proxy("telescope"), order_id)["Message"]
        assert now["Message"].endswith(f"; handed to it later, as order {handed}")


def test_frames_handed_over_again_are_the_order_the_preprocessor_has_not_a_second_one(make_site):
    """Either daemon stopped after the preprocessor took the frames but before the telescope
    had its answer: the telescope hands them over again, and they were calibrated twice, as two
    orders. Sent again, the same frames are now the same order; more frames, another one."""
    site = make_site(settings())
    site.start("preprocessor", "dome", "telescope", "scheduler")
    open_dome(site)
    telescope, preprocessor = site.proxy("telescope"), site.proxy("preprocessor")
    telescope.front_desk(dict(observation("once"), **{"Number of Exposures": 2}))
    done = ended(telescope, "once", "done")
    first, files = done["Progress"]["Preprocessing ID"], done["Progress"]["Files"]
    priority = status(preprocessor, first)["Priority"]
    again = hand_over(site.config, "once", files, priority)  # as the telescope would send it
    assert again["ID"] == first and again["Message"].startswith("already received")
    # The frames' order, and the Prepare Calibration sent at the first frame:
    ended(preprocessor, hand_off_id("once", files[:1], "prepare"), "done")
    assert sum(preprocessor.front_desk({"WOType": "Status"})["Queue"].values()) == 2
    fewer = hand_over(site.config, "once", files[:1], priority)
    assert fewer["ID"] != first
    assert sum(preprocessor.front_desk({"WOType": "Status"})["Queue"].values()) == 3


def test_an_observation_whose_telescope_stopped_while_handing_its_frames_over_is_done(make_site):
    """Every frame was taken, and the telescope daemon was killed while the preprocessor kept
    it waiting: the order was left interrupted, and its frames were handed over only if the
    scheduler tried it again (with no try left, never). It is done, its frames handed over at
    the restart; and the preprocessor, which took them meanwhile, has them once."""
    site = make_site(settings(Telescope={"Hand-off Retry Interval": RETRY_SECONDS}))
    site.start("preprocessor", "dome", "telescope", "scheduler")
    open_dome(site)
    telescope = site.proxy("telescope")
    preprocessor = site.daemons["preprocessor"].pid
    os.kill(preprocessor, signal.SIGSTOP)  # it takes the hand-off once it goes on
    try:
        telescope.front_desk(observation("handing"))
        wait_until(lambda: step(telescope, "handing").startswith("handing 1 frame(s)"),
                   "the telescope to hand the frames over")
        # Every frame taken, maybe at the preprocessor already: a Cancel here was answered
        # "cancelled", and the frames were calibrated all the same.
        fault = refusal(telescope.front_desk, {"WOType": "Cancel", "ID": "handing"})
        assert fault.faultCode == FaultCode.NOT_CANCELLABLE
        assert "every frame is taken and being handed to the preprocessor; to stop their " \
            "calibration, cancel its Preprocessing order there" in fault.faultString
        site.daemons.pop("telescope").kill()
    finally:
        os.kill(preprocessor, signal.SIGCONT)
    site.start("telescope")
    telescope = site.proxy("telescope")
    handed = wait_until(lambda: handed_over(telescope, "handing"), "the frames to be handed over")
    done = status(telescope, "handing")
    assert done["Status"] == "done", done["Message"]
    assert "the telescope daemon stopped while handing them to the preprocessor" in \
        done["Message"]
    health = site.proxy("preprocessor").front_desk({"WOType": "Status"})
    assert sum(health["Queue"].values()) == 1
    assert status(site.proxy("preprocessor"), handed)["Work Order"]["File Location"] == \
        done["Progress"]["Files"]


def test_the_preprocessor_prepares_an_observations_calibration_at_its_first_frame(make_site):
    """At an observation's first frame, the telescope asks the preprocessor to make the terms
    of its frames' calibration (``Request: Prepare Calibration``) from the master library,
    while it takes the others: the job it hands them to at the end does not make them. An
    observation taking calibration frames of its own (its job makes masters, and terms, from
    them) or of a single frame asks for nothing."""
    site = make_site(settings())
    site.start("preprocessor", "dome", "telescope", "scheduler")
    open_dome(site)
    telescope, preprocessor = site.proxy("telescope"), site.proxy("preprocessor")
    telescope.front_desk(dict(observation("masters"), **{"Calibration Frames": True,
                                                         "Number of Exposures": 2}))
    made = ended(telescope, "masters", "done")
    ended(preprocessor, made["Progress"]["Preprocessing ID"], "done")  # its masters: the library's
    telescope.front_desk(dict(observation("single")))
    ended(telescope, "single", "done")

    telescope.front_desk(dict(observation("prepared"), **{"Exposure Time": 300,
                                                          "Number of Exposures": 3}))
    done = ended(telescope, "prepared", "done")
    calibrated = ended(preprocessor, done["Progress"]["Preprocessing ID"], "done")
    assert calibrated["Message"].startswith("3 frame(s) calibrated")
    prepare_id = hand_off_id("prepared", done["Progress"]["Files"][:1], "prepare")
    prepared = status(preprocessor, prepare_id)
    assert prepared["Status"] == "done", prepared["Message"]
    assert prepared["Message"] == ("calibration terms prepared for 1 group(s) of frames, kept "
                                   "for their job")
    assert prepared["Work Order"]["Request"] == "Prepare Calibration"
    assert prepared["Work Order"]["File Location"] == done["Progress"]["Files"][:1]
    reused = re.findall(r"calibration terms of (\S+) kept from an earlier job or prepared ahead",
                        site.log("preprocessor"))
    assert reused == [done["Progress"]["Files"][0]]  # the prepared job's first frame: the group
    # Three jobs and that one Prepare: "masters" and "single" asked for none.
    assert preprocessor.front_desk({"WOType": "Status"})["Queue"] == {"done": 4}


def close_dome_after_the_first_frame(site, order_id):
    """Wait for *order_id*'s first frame at the telescope, then close the dome by hand: the
    order is interrupted, and that is no try."""
    telescope = site.proxy("telescope")
    wait_until(lambda: frames_done(telescope, order_id) == 1, f"the first frame of {order_id}")
    site.proxy("dome").front_desk({"ID": "close", "WOType": "Dome", "Shutter": "Close",
                                   "User": "operator"})
    ended(site.proxy("dome"), "close", "done")


def kill_the_telescope_after_the_first_frame(site, order_id):
    """Wait for *order_id*'s first frame, then kill the telescope daemon (kill -9) and start it
    again: the order is interrupted, and that counts as a try (a stop would not)."""
    wait_until(lambda: frames_done(site.proxy("telescope"), order_id) == 1,
               f"the first frame of {order_id}")
    site.daemons.pop("telescope").kill()
    site.start("telescope")


def test_the_frames_of_an_observation_out_of_tries_are_calibrated_all_the_same(make_site):
    """An observation that fails for good after taking frames (here its one try ends as the
    telescope daemon dies) kept them on disk, never calibrated: a target of opportunity's
    first frames were lost to the analysis. The scheduler hands them to the preprocessor
    itself, once it answers, and a restart of the scheduler meanwhile loses none. An
    observation whose output is raw frames hands nothing over."""
    site = make_site(settings(Telescope={"Hand-off Retry Interval": RETRY_SECONDS},
                              Scheduler={"Max Retries": 0}))
    site.start("dome", "telescope", "scheduler")  # the preprocessor is down
    scheduler = site.proxy("scheduler")
    scheduler.front_desk(dict(observation("short"), **{"Exposure Time": 300,
                                                       "Number of Exposures": 3}))
    kill_the_telescope_after_the_first_frame(site, "short")
    failed = ended(scheduler, "short", "failed")
    assert failed["Message"] == ("interrupted at the telescope after 1 tries: the telescope "
                                 "daemon stopped during the observation; its 1 frame(s) wait "
                                 "for the preprocessor")
    assert failed["Progress"]["Hand-off"] == "pending"
    # Counted before the end is journaled: never 0 once the order shows failed (a CI run
    # read 0 in between when the count came after).
    assert scheduler.front_desk({"WOType": "Status"})["Hand-offs Pending"] == 1

    site.daemons["scheduler"].stop()
    site.start("scheduler")
    assert "1 hand-off(s) to the preprocessor pending" in site.log("scheduler")
    assert scheduler.front_desk({"WOType": "Status"})["Hand-offs Pending"] == 1
    site.start("preprocessor")
    handed = wait_until(lambda: status(scheduler, "short")["Progress"].get("Preprocessing ID"),
                        "the scheduler to hand the frames over")
    now = status(scheduler, "short")
    assert now["Status"] == "failed" and "Hand-off" not in now["Progress"]
    assert now["Message"] == f"{failed['Message']}; handed to it later, as order {handed}"
    taken = status(site.proxy("preprocessor"), handed)["Work Order"]
    assert taken["File Location"] == failed["Progress"]["Files"]
    assert len(taken["File Location"]) == 1
    assert scheduler.front_desk({"WOType": "Status"})["Hand-offs Pending"] == 0

    scheduler.front_desk(dict(observation("raw"), **{"Exposure Time": 300,
                                                     "Number of Exposures": 3, "Output": "Raw"}))
    kill_the_telescope_after_the_first_frame(site, "raw")
    raw = ended(scheduler, "raw", "failed")
    assert "at the telescope after 1 tries" in raw["Message"]
    assert "preprocessor" not in raw["Message"] and "Hand-off" not in raw["Progress"]
    assert len(raw["Progress"]["Files"]) == 1


def test_the_frames_of_an_observation_whose_window_ends_in_the_queue_are_calibrated(make_site):
    """Stopped after a frame (the dome closed), an observation waits in the queue to be tried
    again, and its window ends there: it fails, and its frame goes to the preprocessor."""
    site = make_site(settings(Telescope={"Hand-off Retry Interval": RETRY_SECONDS},
                              Scheduler={"Manage Dome": False}))
    site.start("preprocessor", "dome", "telescope", "scheduler")
    open_dome(site)
    scheduler = site.proxy("scheduler")
    # Time for the whole order (the planner plans none that cannot end in its window), from
    # the scheduler's clock: the daemons may take seconds to start.
    now = datetime.fromisoformat(scheduler.front_desk({"WOType": "Status"})["Now"])
    deadline = format_utc(now + timedelta(minutes=25))
    scheduler.front_desk(dict(observation("expiring"), **{
        "Exposure Time": 300, "Number of Exposures": 3, "Not After": deadline}))
    close_dome_after_the_first_frame(site, "expiring")
    ended(scheduler, "expiring", "failed")
    handed = wait_until(lambda: status(scheduler, "expiring")["Progress"].get(
        "Preprocessing ID"), "the scheduler to hand the frames over")
    failed = status(scheduler, "expiring")
    assert failed["Message"] == (f"expired: its window ended at {deadline}; its 1 frame(s) "
                                 f"wait for the preprocessor; handed to it later, as order "
                                 f"{handed}")
    assert status(site.proxy("preprocessor"), handed)["Work Order"]["File Location"] == \
        failed["Progress"]["Files"]
