"""An observation tried again continues where it stopped (issue 10, point 8).

Interrupted by a target of opportunity or by a telescope restart, an order keeps every frame it
wrote; the next attempt takes only the light and calibration frames still missing, and with
``Output: Analysis`` the preprocessor receives all of them.
"""

import re
import time
from collections import Counter

from astropy.io import fits

from observatory import ended, frames_done, settings, status, step, wait_until

#: Simulated seconds per exposure: 3 s real at the tests' 100×, long enough to interrupt one.
LONG_EXPOSURE = 300.0
#: Real seconds the telescope daemon stays down in the restart test: some ten Follow Intervals.
TELESCOPE_ABSENT_SECONDS = 1.0
#: Dark frames configured in the calibration test: several, so the alert arrives among them.
DARK_FRAMES = 3
#: Fields high in the sky on the simulated evening, far from that night's Moon.
FIELDS = {"gal-a": (330.0, 35.0), "gal-b": (340.0, 50.0), "gal-c": (355.0, 60.0)}
#: The target of opportunity's field, also clear of the Moon.
ALERT = (20.0, 60.0)
#: The steps a telescope journals for each frame, e.g. "exposing 2/4" or "dark 1/3".
FRAME_STEP = re.compile(r"^(exposing|bias|dark|flat) (\d+)/(\d+)$")


def night(make_site, **observing):
    """All four daemons on a simulated evening at 100×; the scheduler manages the dome."""
    site = make_site(settings(Observing=observing))
    site.start("preprocessor", "dome", "telescope", "scheduler")
    return site


def observation(order_id, ra, dec, **changes):
    order = {"ID": order_id, "WOType": "Observation", "RA": ra, "Dec": dec, "Filter": "V",
             "Exposure Time": LONG_EXPOSURE, "Output": "Analysis", "User": "test",
             "Type of job": "Research"}
    order.update(changes)
    return order


def alert(order_id="alert"):
    """A one-frame target of opportunity: it interrupts whatever else is under way."""
    return observation(order_id, *ALERT, **{"Type of job": "ToO", "Exposure Time": 60.0,
                                            "Number of Exposures": 1})


def frame_of(path):
    """``(IMAGETYP, FRAMENO)`` of a FITS file: what kind of frame it is, and which one."""
    header = fits.getheader(path)
    return header["IMAGETYP"], header["FRAMENO"]


def frames_on_disk(site, order_id):
    """How many FITS files in the site's raw directories hold each frame of *order_id*."""
    return Counter(frame_of(path) for path in site.directory.glob("data/*/raw/*.fits")
                   if fits.getheader(path)["ORDERID"] == order_id)


def reasons_after(history, marker):
    """The reasons journaled from the last history entry containing *marker* on."""
    reasons = [entry["Reason"] for entry in history]
    last = max(index for index, reason in enumerate(reasons) if marker in reason)
    return reasons[last:]


def steps_after(history, marker):
    """The frame steps ``(kind, number)`` journaled after the last entry containing *marker*."""
    return [(match[1], int(match[2]))
            for match in map(FRAME_STEP.match, reasons_after(history, marker)) if match]


def assert_complete(site, done, expected):
    """*done*'s ``Files`` are exactly the *expected* frames, once each, all on disk, all handed
    to the preprocessor; nothing else of the order is in raw/."""
    files = done["Progress"]["Files"]
    assert len(files) == len(set(files))
    assert sorted(map(frame_of, files)) == sorted(expected)
    assert frames_on_disk(site, done["ID"]) == Counter(expected)  # no frame taken twice
    handed = status(site.proxy("preprocessor"), done["Progress"]["Preprocessing ID"])
    assert handed["Work Order"]["File Location"] == files


def test_an_interrupted_observation_takes_only_its_missing_frames(make_site):
    site = night(make_site)
    scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
    total = 4
    scheduler.front_desk(observation("long", *FIELDS["gal-a"], **{
        "Number of Exposures": total}))
    wait_until(lambda: frames_done(telescope, "long") >= 1, "a first frame of the long order")
    scheduler.front_desk(alert())
    ended(scheduler, "alert", "done")
    interrupted = [entry for entry in status(telescope, "long")["History"]
                   if entry["Status"] == "interrupted"]
    assert "interrupted by target of opportunity alert" in interrupted[0]["Reason"]

    done = ended(scheduler, "long", "done")
    assert done["Progress"]["Frames Done"] == total and done["Progress"]["Attempts"] == 1
    assert_complete(site, done, [("LIGHT", number) for number in range(1, total + 1)])
    history = status(telescope, "long")["History"]
    first_try = steps_after(history[:history.index(interrupted[0])], "slewing")
    retry = steps_after(history, "queued again")
    # The exposure under way when the alert came was lost: it is the first the retry takes.
    lost = first_try[-1][1]
    assert lost > 1 and retry == [("exposing", number) for number in range(lost, total + 1)]


def test_a_retry_after_every_light_frame_takes_only_the_missing_calibration(make_site):
    site = night(make_site, **{"Dark Frames": DARK_FRAMES})
    scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
    scheduler.front_desk(observation("calibrated", *FIELDS["gal-b"], **{
        "Number of Exposures": 1, "Calibration Frames": "Yes"}))
    wait_until(lambda: step(telescope, "calibrated").startswith("dark"), "the dark frames")
    scheduler.front_desk(alert())
    ended(scheduler, "alert", "done")
    assert any(entry["Status"] == "interrupted"
               for entry in status(telescope, "calibrated")["History"])

    done = ended(scheduler, "calibrated", "done")
    expected = ([("LIGHT", 1)] + [("BIAS", number) for number in (1, 2)]
                + [("DARK", number) for number in range(1, DARK_FRAMES + 1)] + [("FLAT", 1)])
    assert_complete(site, done, expected)
    history = status(telescope, "calibrated")["History"]
    after = steps_after(history, "queued again")
    # Only darks (or only the flat) were missing: no light frame, no bias, and no slew again.
    assert {kind for kind, _ in after} <= {"dark", "flat"}
    assert not [reason for reason in reasons_after(history, "queued again")
                if reason.startswith("slewing")]
    assert after[-1] == ("flat", 1)


def test_after_a_telescope_restart_the_order_continues(make_site):
    site = night(make_site)
    scheduler, telescope = site.proxy("scheduler"), site.proxy("telescope")
    total = 3
    scheduler.front_desk(observation("restarted", *FIELDS["gal-c"], **{
        "Number of Exposures": total}))
    wait_until(lambda: step(telescope, "restarted") == f"exposing 2/{total}",
               "the second frame to be under way")
    site.daemons["telescope"].kill()  # kill -9, during the second exposure
    # Gone a while: the scheduler, which follows the order every Follow Interval (0.1 s here),
    # says it once, not each time.
    time.sleep(TELESCOPE_ABSENT_SECONDS)
    site.start("telescope")

    done = ended(scheduler, "restarted", "done")
    assert_complete(site, done, [("LIGHT", number) for number in range(1, total + 1)])
    after = steps_after(status(site.proxy("telescope"), "restarted")["History"],
                        "queued again")
    assert after == [("exposing", number) for number in range(2, total + 1)]
    log = site.log("scheduler")
    assert log.count("[WO restarted] cannot follow it at the telescope daemon") == 1, log
    assert "[WO restarted] the telescope daemon answers again" in log
