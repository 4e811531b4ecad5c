"""Nights of raw frames for the preprocessor's tests, made by the simulated camera and written
exactly as the telescope daemon writes them (:func:`torosmanager.telescope.fits.write_frame`).

The camera is driven in-process on a clock that moves only when told, so a night of small
frames takes a fraction of a second and is the same every time for the same seed; its
``truth_*`` methods say what the frames are made of.
"""

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone

from torosmanager.config import default_config
from torosmanager.devices import FrameType
from torosmanager.devices.simulator import (SimulatedCamera, SimulatedFilterWheel,
                                            SimulatedMount)
from torosmanager.night import airmass
from torosmanager.telescope.fits import Exposure, write_frame

from stepped_clock import SteppedClock

#: The evening the frames are taken (CTMO, 2026-11-21 local).
EVENING = datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc)
#: The night directory's name for that evening.
NIGHT = "20261121"
#: A detector that makes each calibration step matter: a strong dark current, a clear
#: vignetting, a modest sky, few stars (they are not what is measured here).
SIMULATOR = {"Width": 128, "Height": 128, "Gain": 1.5, "Read Noise": 8.0, "Bias Level": 1000.0,
             "Dark Current": 2.0, "Sky Background": 40.0, "Flat Level": 20000.0,
             "Vignetting": 0.3, "Star Density": 500.0, "Readout Time": 1.0, "Seed": 7}
#: Clock seconds between two frames, beyond their exposure and readout.
GAP = 1.0


@dataclass
class SimulatedNight:
    """Frames written into ``<directory>/raw`` and the camera that made them.

    Attributes
    ----------
    directory : pathlib.Path
        The night directory (``<data>/<YYYYMMDD>``).
    camera : SimulatedCamera
        Its ``truth_*`` methods describe the frames.
    files : dict
        IMAGETYP → list of paths, in the order taken.
    """

    directory: object
    camera: object
    settings: dict
    files: dict = field(default_factory=dict)

    @property
    def raw(self):
        return self.directory / "raw"

    @property
    def reduced(self):
        return self.directory / "reduced"

    def all_files(self):
        return [path for paths in self.files.values() for path in paths]


class Observatory:
    """A simulated camera, mount and filter wheel on a stepped clock, writing FITS files.

    Parameters
    ----------
    directory : pathlib.Path
        The night directory; frames go to its ``raw/``.
    simulator : dict, optional
        ``Simulator`` settings over :data:`SIMULATOR`.
    """

    def __init__(self, directory, simulator=None, start=EVENING):
        config = default_config()
        config["Simulator"].update(SIMULATOR)
        config["Simulator"].update(simulator or {})
        self.settings = config["Simulator"]
        self.site = config["Site"]
        self.clock = SteppedClock(start)
        self.mount = SimulatedMount(self.settings, self.site, self.clock)
        self.wheel = SimulatedFilterWheel(self.settings, self.clock)
        self.camera = SimulatedCamera(self.settings, self.site, self.clock, mount=self.mount,
                                      filter_wheel=self.wheel)
        for device in (self.mount, self.wheel, self.camera):
            device.connect()
        self.mount.unpark()
        self.night = SimulatedNight(directory, self.camera, self.settings)

    def take(self, frame_type, seconds, count, filter_name=None, order_id="night"):
        """Take *count* frames and write them; return their paths."""
        if filter_name is not None and self.wheel.state().current != filter_name:
            self.wheel.start_move(filter_name)
            self.clock.advance(float(self.settings["Filter Change Time"]) + GAP)
        paths = []
        for number in range(1, count + 1):
            pointing = self.mount.state()
            start = self.clock.now()
            self.camera.start_exposure(seconds, frame_type)
            self.clock.advance(seconds + float(self.settings["Readout Time"]) + GAP)
            data = self.camera.image()
            exposure = Exposure(
                start=start, seconds=0.0 if frame_type == FrameType.BIAS else seconds,
                frame_type=frame_type.value, filter_name=self.wheel.state().current,
                target="field", ra=pointing.ra, dec=pointing.dec, altitude=pointing.altitude,
                airmass=float(airmass(pointing.altitude)),
                order={"ID": order_id, "User": "test"}, number=number)
            path = write_frame(str(self.night.raw), exposure, data, self.camera.info(), self.site,
                               "CTMO")
            paths.append(path)
            self.night.files.setdefault(frame_type.value, []).append(path)
        return paths


def make_night(root, name=NIGHT, biases=5, darks=None, flats=None, lights=None,
               simulator=None, order_id="night"):
    """A night of frames in ``<root>/<name>/raw``.

    Parameters
    ----------
    darks : dict, optional
        Exposure time → count (default: three of 30 s).
    flats : dict, optional
        Filter → count (default: five in R).
    lights : list of (str, float, int), optional
        (filter, exposure time, count) (default: three of 30 s in R).

    Returns
    -------
    SimulatedNight
    """
    directory = root / name
    os.makedirs(directory / "raw", exist_ok=True)
    observatory = Observatory(directory, simulator)
    observatory.take(FrameType.BIAS, 0.0, biases, order_id=order_id)
    for seconds, count in (darks if darks is not None else {30.0: 3}).items():
        observatory.take(FrameType.DARK, seconds, count, order_id=order_id)
    for filter_name, count in (flats if flats is not None else {"R": 5}).items():
        observatory.take(FrameType.FLAT, 2.0, count, filter_name, order_id=order_id)
    for filter_name, seconds, count in (lights if lights is not None else [("R", 30.0, 3)]):
        observatory.take(FrameType.LIGHT, seconds, count, filter_name, order_id=order_id)
    return observatory.night
