"""The ``simulator`` driver: every device in-process, moving in the shared clock's time.

Slews, settling, filter changes, exposures and readouts, shutter travel and dome rotation take
the configured clock seconds, so a simulated clock running fast runs a night fast. The camera's
frames come from a seeded model of the detector, the optics and the sky (:mod:`.frames`), so
tests can check calibration against the known truth (the camera's ``truth_*`` methods).

* :class:`SimulatedMount` (:mod:`.mount`): slews, settle, tracking; parks at the zenith.
* :class:`SimulatedCamera` (:mod:`.camera`; frames from :mod:`.frames` and :mod:`.sky`).
* :class:`SimulatedFilterWheel` (:mod:`.filterwheel`).
* :class:`SimulatedDome` (:mod:`.dome`): shutter and rotation; parks at azimuth 0.
* :class:`SimulatedSafetyMonitor` (:mod:`.safety`): unsafe periods, and test controls.
"""

from .camera import SimulatedCamera
from .dome import SimulatedDome
from .filterwheel import SimulatedFilterWheel
from .mount import SimulatedMount
from .safety import SimulatedSafetyMonitor

__all__ = ["SimulatedMount", "SimulatedCamera", "SimulatedFilterWheel", "SimulatedDome",
           "SimulatedSafetyMonitor"]
