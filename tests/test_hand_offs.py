"""An observation's frames and a preprocessor that does not answer when it ends.

The order ends done all the same, so that the night goes on, saying the frames wait; they are
handed over once the preprocessor answers, and a restart of the telescope daemon meanwhile loses
none. Before, the hand-off was given up at once: the frames of an ``Output: Analysis`` order
were never calibrated.
"""

from observatory import ended, open_dome, settings, status, wait_until

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
