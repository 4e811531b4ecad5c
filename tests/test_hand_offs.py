"""An observation's frames and a preprocessor that does not answer when it ends.

The order ends done all the same, so that the night goes on, saying the frames wait; they are
handed over once the preprocessor answers, and a restart of the telescope daemon meanwhile loses
none. Before, the hand-off was given up at once: the frames of an ``Output: Analysis`` order
were never calibrated.
"""

import os
import signal

import pytest

from observatory import ended, open_dome, settings, status, step, wait_until
from torosmanager.telescope.hand_offs import hand_over

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
    assert sum(preprocessor.front_desk({"WOType": "Status"})["Queue"].values()) == 1
    fewer = hand_over(site.config, "once", files[:1], priority)
    assert fewer["ID"] != first
    assert sum(preprocessor.front_desk({"WOType": "Status"})["Queue"].values()) == 2


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
