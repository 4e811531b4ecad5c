"""Autofocus: a focus run through the focus, and the best position it finds.

A run takes ``Autofocus Points`` short frames (``Autofocus Exposure``) of the field the
telescope points at, ``Autofocus Step`` steps apart and centred on where the focus model puts
focus now, measures the stars' half-flux diameter in each (:mod:`.star_size`), and fits the
V-curve (:mod:`.vcurve`). Its best position, less the filter's offset, becomes the model's
``Best Position``, and the focuser's temperature then its ``Reference Temperature``: the
temperature coefficient carries the focus on from there. The last run is kept across a restart
of the telescope daemon (:mod:`.focus_memory`).

A run is due before an order's first light frame when none has been made this night (the
local evening's date), or when the focuser's temperature has moved ``Autofocus Temperature
Change`` °C from the last run's. A run that fails (clouds, too few stars, a curve whose
minimum is not in the run) is said in the log and the model is kept; it is not tried again
until it is next due.
"""

import dataclasses
import importlib
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


class AutofocusFailed(Exception):
    """A focus run found no best position; the message says why."""


@dataclass
class FocusRun:
    """What a focus run measured and found.

    Attributes
    ----------
    positions : list of int
        Where each frame was taken.
    hfds : list of float
        The stars' median half-flux diameter in each, pixels (NaN: no star measured).
    position : int or None
        The best focus found, steps; ``None`` when the run failed.
    temperature : float or None
        The focuser's temperature at the run, °C.
    """

    positions: list[int]
    hfds: list[float]
    position: int | None = None
    temperature: float | None = None

    def table(self):
        """The run as one line for the log: ``49000: 3.81 px, 49500: 3.02 px, ...``."""
        return ", ".join(f"{position}: {hfd:.2f} px"
                         for position, hfd in zip(self.positions, self.hfds))


class Autofocus:
    """When a focus run is due, and how to make one.

    Parameters
    ----------
    focuser_settings : dict
        ``Telescope → Focuser``: the ``Autofocus ...`` and ``Star ...`` settings.
    """

    def __init__(self, focuser_settings):
        self.settings = focuser_settings
        self.enabled = focuser_settings["Autofocus"]
        #: The night (local evening's date) and the temperature of the last run, if any.
        self.last_night = None
        self.last_temperature = None
        #: The last run's outcome, for the health report: its focus, or why it found none.
        self.last_run = None

    def prepare(self):
        """Load what a run measures and fits with (photutils, scipy's fitting: some two
        seconds) now, at the daemon's start, rather than during the night's first run, where
        two seconds are also an hour of a fast simulated night."""
        importlib.import_module(".vcurve", __package__)
        importlib.import_module(".star_size", __package__).load()

    def due(self, night, temperature):
        """Whether a run is due on *night* (the local evening's date) at the focuser's
        *temperature* (°C, or ``None``)."""
        if not self.enabled:
            return False
        if self.last_night != night:
            return True
        if temperature is None or self.last_temperature is None:
            return False
        change = self.settings["Autofocus Temperature Change"]
        return abs(temperature - self.last_temperature) >= change

    def recall(self, run):
        """Count *run* (a :class:`~.focus_memory.LastRun` kept over a restart) as the last
        run made."""
        self.last_night, self.last_temperature, self.last_run = (run.night, run.temperature,
                                                                 run.outcome)

    def positions(self, centre, maximum):
        """The run's positions: ``Autofocus Points`` of them ``Autofocus Step`` apart, centred
        on *centre* and shifted, whole, inside 0 to *maximum*."""
        points, step = self.settings["Autofocus Points"], self.settings["Autofocus Step"]
        span = (points - 1) * step
        first = min(max(centre - span // 2, 0), max(maximum - span, 0))
        return [min(first + index * step, maximum) for index in range(points)]

    def run(self, positions, take_frame, night, temperature):
        """Take a frame at each of *positions* with *take_frame(number, position)* (which
        moves the focuser there and returns the image; *number* counts from 1), measure its
        stars, and fit the best focus.

        Returns
        -------
        FocusRun
            With ``position`` set.

        Raises
        ------
        AutofocusFailed
            When the curve gives no best position (the run is still counted: see the module;
            one whose frames were not all taken is not).
        """
        # Imported here: scipy's fitting and photutils take the telescope daemon's start-up
        # half a second for what only a focus run needs.
        from .star_size import NoStars, measure_stars
        from .vcurve import FocusCurveError, fit_focus

        settings = self.settings
        measured = FocusRun(positions=list(positions), hfds=[], temperature=temperature)
        for number, position in enumerate(positions, start=1):
            image = take_frame(number, position)
            try:
                size = measure_stars(image, settings["Star Threshold"],
                                     settings["Star Minimum Pixels"], settings["Star Count"])
                measured.hfds.append(size.hfd)
            except NoStars as error:
                log.info("autofocus: no star measured at %d: %s", position, error)
                measured.hfds.append(float("nan"))
        # Counted once its frames are taken, whatever the curve: a run interrupted (a target
        # of opportunity, the dome closing) is made again at the next order.
        self.last_night, self.last_temperature = night, temperature
        try:
            fit = fit_focus(measured.positions, measured.hfds, settings["Autofocus Minimum Points"])
        except FocusCurveError as error:
            self.last_run = f"{night}: no focus found"
            raise AutofocusFailed(f"{error} ({measured.table()})") from None
        measured.position = fit.position
        self.last_run = f"{night}: {fit.position}" + (
            "" if temperature is None else f" at {temperature:g} °C")
        return measured


def model_after(model, run, filter_name):
    """*model* (a :class:`~.focus.FocusModel`) with the best position *run* found through
    *filter_name* (less its offset), at the run's temperature."""
    offset = model.filter_offsets.get(filter_name, 0)
    return dataclasses.replace(
        model, best_position=round(run.position - offset),
        reference_temperature=(run.temperature if run.temperature is not None
                               else model.reference_temperature))
