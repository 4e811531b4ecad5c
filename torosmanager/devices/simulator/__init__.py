"""The ``simulator`` driver: every device in-process, moving in the shared clock's time.

Slews, settling, filter changes, exposures and readouts, shutter travel and dome rotation take
the configured clock seconds, so a simulated clock running fast runs a night fast. The camera's
frames come from a seeded model of the detector, the optics and the sky (:mod:`.frames`), so
tests can check calibration against the known truth (the camera's ``truth_*`` methods).

* :class:`SimulatedMount` (:mod:`.mount`): slews, settle, tracking; parks at the zenith.
* :class:`SimulatedCamera` (:mod:`.camera`; frames from :mod:`.frames` and :mod:`.sky`).
* :class:`SimulatedFilterWheel` (:mod:`.filterwheel`).
* :class:`SimulatedFocuser` (:mod:`.focuser`): on a tube that cools through the night.
* :class:`SimulatedDome` (:mod:`.dome`): shutter and rotation; parks at azimuth 0.
* :class:`SimulatedSafetyMonitor` (:mod:`.safety`): unsafe periods, and test controls.
"""

import importlib

#: Each device's class and its module, imported on first use: the dome daemon, which needs
#: only the dome and the safety monitor, does not load the mount's astropy or the camera's sky.
_MODULES = {"SimulatedMount": "mount", "SimulatedCamera": "camera",
            "SimulatedFilterWheel": "filterwheel", "SimulatedFocuser": "focuser",
            "SimulatedDome": "dome",
            "SimulatedSafetyMonitor": "safety"}

__all__ = list(_MODULES)


def __getattr__(name):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)
