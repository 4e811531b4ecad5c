"""The demo's night: the site's settings and the orders an observatory would receive.

Tonight at CTMO, from shortly before astronomical dusk to dawn, on a simulated clock fast enough
for the night to pass in a few minutes. The orders: the manual's Observation example, real
galaxies of different priorities, a target of opportunity (a kilonova candidate) arriving in the
middle of the night, one target that never rises high enough (the Large Magellanic Cloud), and
one malformed order. The weather turns bad for a while in the middle of the night.
"""

from dataclasses import dataclass
from datetime import timedelta

from ..examples import MANUAL_OBSERVATION

#: Real seconds the dark hours should take.
NIGHT_REAL_SECONDS = 180
#: The clock starts this long before astronomical dusk: the dome opens when it is dark.
BEFORE_DUSK = timedelta(minutes=20)
#: The clock stops this long after dawn (the dome closes, the last frames are calibrated).
AFTER_DAWN = timedelta(minutes=20)
#: When the target of opportunity arrives and when the storm comes, as fractions of the night.
TOO_AT = 0.22
STORM = (0.28, 0.35)
#: Real seconds the daemons may take to start: the simulated clock begins after them.
STARTUP_SECONDS = 15

#: Real galaxies well placed on November evenings from 26° N: (name, RA, Dec, priority).
GALAXIES = [
    ("M31", 10.6847, 41.2690, 6.5),
    ("M33", 23.4621, 30.6602, 6.0),
    ("NGC 891", 35.6392, 42.3491, 5.0),
    ("NGC 7331", 339.2671, 34.4159, 4.5),
    ("M74", 24.1740, 15.7836, 4.0),
    ("NGC 253", 11.8880, -25.2882, 3.5),
    ("M77", 40.6696, -0.0133, 3.0),
]
#: Never above airmass 2 from Brownsville.
NEVER = ("LMC", 80.8942, -69.7561)


@dataclass
class Night:
    """The demo's timetable, in simulated UTC."""

    start: object
    dusk: object
    dawn: object
    end: object
    speed: float

    def at(self, fraction):
        """The instant a *fraction* of the way through the dark hours."""
        return self.dusk + (self.dawn - self.dusk) * fraction


def timetable(window):
    """The demo's :class:`Night` from tonight's dark hours (a NightWindow)."""
    speed = round((window.end - window.start).total_seconds() / NIGHT_REAL_SECONDS)
    return Night(window.start - BEFORE_DUSK, window.start, window.end, window.end + AFTER_DAWN,
                 speed)


def settings(night, directory):
    """Configuration overrides for the demo (the launcher adds addresses and paths)."""
    storm = [f"{night.at(STORM[0]).isoformat()}/{night.at(STORM[1]).isoformat()}"]
    return {
        "Clock": {"Mode": "simulated", "Start": night.start.isoformat(), "Speed": night.speed},
        "Simulator": {"Width": 512, "Height": 512, "Unsafe Periods": storm},
        "Telescope": {"Bias Frames": 3, "Dark Frames": 3, "Flat Frames": 3},
        "Dome": {"Reopen Delay": 600.0},
        "Scheduler": {"Follow Interval": 30.0, "Replan Interval": 900.0},
    }


def observation(name, ra, dec, priority, **changes):
    """A Research observation of *name*, handed to the preprocessor when done."""
    order = {"ID": name.replace(" ", ""), "WOType": "Observation", "User": "demo",
             "Object Name": name, "RA": ra, "Dec": dec, "Filter": "R", "Exposure Time": 240.0,
             "Number of Exposures": 4, "Type of job": "Research", "Type of object": "Galaxy",
             "Priority": priority, "Calibration Frames": "Yes", "Output": "Analysis"}
    order.update(changes)
    return order


def evening_orders():
    """What arrives at the start of the night, in order."""
    orders = [MANUAL_OBSERVATION]
    orders += [observation(*galaxy) for galaxy in GALAXIES]
    orders.append(observation(*NEVER, 5.0))
    orders.append({"ID": "typo", "WOType": "Observation", "RA": 400.0, "Dec": 10.0,
                   "Filter": "R", "Exposure Time": 60.0, "User": "demo"})
    return orders


def target_of_opportunity(ra, dec):
    """The kilonova candidate of the night, where the sky is best when it arrives."""
    return {"ID": "AT2026kn", "WOType": "Observation", "User": "LVK alert broker",
            "Object Name": "AT 2026kn (kilonova candidate)", "RA": ra, "Dec": dec,
            "Filter": "R", "Exposure Time": 120.0, "Number of Exposures": 4,
            "Type of job": "ToO", "Type of object": "Kilonova candidate",
            "Calibration Frames": "Yes", "Output": "Analysis"}
