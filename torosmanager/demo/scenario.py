"""The demo's night: the site's settings and the orders an observatory would receive.

Tonight at CTMO, from shortly before astronomical dusk to dawn, on a simulated clock
:data:`SPEED` times faster than real time: the night passes in a few minutes. The orders: the
manual's Observation example, real galaxies of different priorities, an LVK alert arriving in
the middle of the night (its targets interrupt), one target that never rises high enough (the
Large Magellanic Cloud: refused at once, naming the declinations that do), and one malformed
order. The galaxies are chosen among bright ones for being high tonight and far from tonight's
Moon; the manual's target is asked for as written, Moon or not. The weather turns bad for a
while in the middle of the night.
"""

from dataclasses import dataclass
from datetime import timedelta

from ..config import SCHEMA
from ..examples import MANUAL_OBSERVATION

#: How many times faster than real time the simulated clock runs (the README says so, and
#: tests/test_demo.py holds the two together). The dark hours at CTMO, 7 to 11 hours by season,
#: then pass in 2 to 3½ minutes, while a 240 s exposure still lasts a second: slow enough to
#: follow, every step still printed as it happens.
SPEED = 200
#: The clock starts this long before astronomical dusk: the dome opens when it is dark.
BEFORE_DUSK = timedelta(minutes=20)
#: The clock stops this long after dawn (the dome closes, the last frames are calibrated).
AFTER_DAWN = timedelta(minutes=20)
#: From when the LVK alert may arrive, as a fraction of the night: the first moment after it
#: that an observation is under way (for its targets to interrupt). Its frames come without
#: calibration frames: made before the night's first masters (on a fast clock the first
#: observation may end later in the night), they wait for them in the preprocessor.
TOO_AT = 0.22
#: From when the storm may come (the first moment after it that an observation is under way, or
#: at :data:`STORM_LATEST` at the latest), and how long it lasts, as fractions of the night.
STORM_FROM, STORM_LATEST, STORM_LENGTH = 0.28, 0.6, 0.07
#: What the simulated weather station says during the storm.
STORM_WEATHER = "unsafe: thunderstorm over the site"
#: Real seconds the daemons may take to start: the simulated clock begins after them.
STARTUP_SECONDS = 15
#: Real seconds an order may go without progress before the scheduler gives it up (its Stall
#: Timeout, at least the configured default). Work such as measuring an autofocus frame's stars
#: takes real time, which a fast clock multiplies: at the tests' 2000×, the default 900 s was
#: 0.45 s real, and on a loaded machine every autofocus frame was stopped as stalled.
STALL_REAL_SECONDS = 5.0
#: The simulated camera's arcseconds per pixel and position angle (degrees, north through east),
#: which the telescope daemon is told for the frames' WCS.
PIXEL_SCALE, POSITION_ANGLE = 7.0, 20.0
#: The daemons started wave after wave, as their units are ordered (``After=``): the scheduler
#: and the alerts daemon call the others, so those are ready first. They stop in the reverse
#: order, so that none is left calling a daemon already gone.
START_WAVES = (("dome", "telescope", "preprocessor"), ("scheduler", "alerts"))

#: Bright real galaxies around the sky: (name, RA, Dec), degrees. The demo observes those well
#: placed tonight and far from tonight's Moon (:func:`galaxies_for`).
CATALOGUE = [
    ("M31", 10.6847, 41.2690), ("M33", 23.4621, 30.6602), ("NGC 891", 35.6392, 42.3491),
    ("NGC 7331", 339.2671, 34.4159), ("M74", 24.1740, 15.7836), ("NGC 253", 11.8880, -25.2882),
    ("M77", 40.6696, -0.0133), ("NGC 1023", 40.1000, 39.0633), ("NGC 7479", 346.2359, 12.3229),
    ("NGC 6946", 308.7180, 60.1539), ("NGC 2403", 114.2142, 65.6026),
    ("NGC 2841", 140.5108, 50.9765), ("NGC 2903", 143.0421, 21.5008),
    ("M81", 148.8882, 69.0653), ("M82", 148.9685, 69.6797), ("M106", 184.7396, 47.3040),
    ("M87", 187.7059, 12.3911), ("NGC 4565", 189.0865, 25.9877), ("M104", 189.9976, -11.6231),
    ("NGC 4631", 190.5334, 32.5415), ("M64", 194.1821, 21.6830), ("M63", 198.9555, 42.0293),
    ("M51", 202.4696, 47.1952), ("M101", 210.8023, 54.3490),
]
#: How many galaxies the demo asks for, and their priorities, highest first.
PRIORITIES = (6.5, 6.0, 5.5, 5.0, 4.5, 4.0, 3.5)
#: A galaxy is chosen when it rises this high tonight (degrees) ...
HIGH_ENOUGH = 40.0
#: ... and stays this far from the Moon (degrees).
MOON_CLEARANCE = 40.0
#: Never above airmass 2 from Brownsville: the scheduler refuses it.
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


def timetable(window, speed=SPEED):
    """The demo's :class:`Night` from tonight's dark hours (a NightWindow), at *speed* times
    real time."""
    return Night(window.start - BEFORE_DUSK, window.start, window.end, window.end + AFTER_DAWN,
                 speed)


def real_seconds(night):
    """About how long the demo of *night* takes, in real seconds: the daemons' start, then the
    simulated night from its start to its end (it ends earlier when all is done after dawn)."""
    return STARTUP_SECONDS + (night.end - night.start).total_seconds() / night.speed


def weather_file(directory):
    """The simulated weather station's file: a storm while it says unsafe."""
    return f"{directory}/weather"


def settings(night, directory):
    """Configuration overrides for the demo (the launcher adds addresses and paths)."""
    return {
        "Clock": {"Mode": "simulated", "Start": night.start.isoformat(), "Speed": night.speed},
        # 512 pixels of 7″: the camera's field is 1°, the alerts daemon's Field of View.
        # A German equatorial mount, its tube 0.4 m off its axes in a dome of radius 2.5 m:
        # the slit goes where the tube looks out, and a target past the meridian flips it
        # (and turns the frames 180°, as their WCS says).
        "Simulator": {"Width": 512, "Height": 512, "Pixel Scale": PIXEL_SCALE,
                      "Position Angle": POSITION_ANGLE, "Defocus Blur": 20.0,
                      "Weather File": weather_file(directory), "German Equatorial": True},
        # The replayed alert is a mock (its search is "MDC"): accepted here, as in a rehearsal.
        "Alerts": {"Accept Test Alerts": True, "Max Targets": 4, "Field of View": 1.0},
        "Observing": {"Bias Frames": 3, "Dark Frames": 3, "Flat Frames": 3},
        "Dome": {"Reopen Delay": 600.0, "Radius": 2.5, "Axis Offset": 0.4},
        # The CCD cooled from the simulator's -20 °C before dusk (5 °C a minute). The tube
        # cools half a degree an hour (the simulator's default) and the focuser follows it;
        # the focus model is 600 steps off the simulator's focus (50,000), 12" of blur at 20"
        # per 1000 steps, until the first order's autofocus finds it.
        "Telescope": {"Camera": {"Cooling Setpoint": -25.0, "Pixel Scale": PIXEL_SCALE,
                                 "Position Angle": POSITION_ANGLE},
                      "Focuser": {"Driver": "simulator", "Best Position": 49_400,
                                  "Reference Temperature": 12.0,
                                  "Temperature Coefficient": -15.0,
                                  "Filter Offsets": {"B": 40, "I": -25}, "Autofocus": True}},
        "Scheduler": {"Follow Interval": 30.0, "Replan Interval": 900.0,
                      "Stall Timeout": max(SCHEMA["Scheduler"]["Stall Timeout"].default,
                                           STALL_REAL_SECONDS * night.speed)},
    }


def observation(name, ra, dec, priority, **changes):
    """A Research observation of *name*, handed to the preprocessor when done."""
    order = {"ID": name.replace(" ", ""), "WOType": "Observation", "User": "demo",
             "Object Name": name, "RA": ra, "Dec": dec, "Filter": "R", "Exposure Time": 240.0,
             "Number of Exposures": 4, "Type of job": "Research", "Type of object": "Galaxy",
             "Priority": priority, "Calibration Frames": "Yes", "Output": "Analysis"}
    order.update(changes)
    return order


def galaxies_for(nights, window, moon):
    """The galaxies of :data:`CATALOGUE` well placed tonight, with their priorities.

    Parameters
    ----------
    nights : Night
        The site's nights.
    window : NightWindow
        Tonight's dark hours.
    moon : SkyCoord
        The Moon, seen from the site, in the middle of the night.
    """
    from astropy.coordinates import SkyCoord

    chosen = []
    for name, ra, dec in CATALOGUE:
        highest, _ = nights.max_altitude(window, ra, dec)
        distance = moon.separation(SkyCoord(ra, dec, unit="deg").transform_to(moon.frame)).deg
        if highest >= HIGH_ENOUGH and distance >= MOON_CLEARANCE:
            chosen.append((name, ra, dec))
    return [galaxy + (priority,) for galaxy, priority in zip(chosen, PRIORITIES)]


def evening_orders(galaxies):
    """What arrives at the start of the night, in order."""
    orders = [MANUAL_OBSERVATION]
    orders += [observation(*galaxy) for galaxy in galaxies]
    orders.append(observation(*NEVER, 5.0))
    orders.append({"ID": "typo", "WOType": "Observation", "RA": 400.0, "Dec": 10.0,
                   "Filter": "R", "Exposure Time": 60.0, "User": "demo"})
    return orders
