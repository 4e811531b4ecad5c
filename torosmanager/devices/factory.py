"""Building the devices a daemon drives, with the driver the configuration names for each.

Drivers are imported only when chosen, so the simulator needs nothing of alpyca, INDI or
pyserial, and each driver nothing of the others. Which driver may drive which kind of device is
checked when the configuration is loaded (:data:`torosmanager.config.DEVICE_DRIVERS`).
"""

NONE = "none"
SIMULATOR = "simulator"
ALPACA = "alpaca"
INDI = "indi"
LX200 = "lx200"
TEXT_TCP = "text-tcp"


def telescope_devices(config, clock):
    """The telescope daemon's ``(mount, camera, filter_wheel, focuser)``, not yet connected;
    the focuser is ``None`` with ``Driver: none``.

    Parameters
    ----------
    config : dict
        The loaded configuration (``Telescope``, ``Simulator`` and ``Site`` sections).
    clock : Clock
        The shared clock; simulated devices move in its time.
    """
    settings = config["Telescope"]
    mount = _mount(settings["Mount"], config, clock)
    filter_wheel = _filter_wheel(settings["Filter Wheel"], config, clock)
    focuser = _focuser(settings["Focuser"], config, clock)
    camera = _camera(settings["Camera"], config, clock, mount, filter_wheel, focuser)
    return mount, camera, filter_wheel, focuser


def _focuser(settings, config, clock):
    driver = settings["Driver"]
    if driver == NONE:
        return None
    if driver == SIMULATOR:
        from .simulator import SimulatedFocuser
        return SimulatedFocuser(config["Simulator"], clock)
    if driver == ALPACA:
        from .alpaca import AlpacaFocuser
        return AlpacaFocuser(settings)
    if driver == INDI:
        from .indi import IndiFocuser
        return IndiFocuser(settings)
    raise ValueError(f"no focuser driver {driver!r}")


def dome_devices(config, clock):
    """The dome daemon's ``(dome, safety_monitor)``, not yet connected."""
    settings = config["Dome"]
    return (_dome(settings["Enclosure"], config, clock),
            _safety_monitor(settings["Safety Monitor"], config, clock))


def _mount(settings, config, clock):
    driver, site = settings["Driver"], config["Site"]
    if driver == SIMULATOR:
        from .simulator import SimulatedMount
        return SimulatedMount(config["Simulator"], site, clock)
    if driver == ALPACA:
        from .alpaca import AlpacaMount
        return AlpacaMount(settings, site)
    if driver == INDI:
        from .indi import IndiMount
        return IndiMount(settings, site)
    if driver == LX200:
        from .lx200 import Lx200Mount
        return Lx200Mount(settings, site, clock)
    if driver == TEXT_TCP:
        from .text_tcp import TextTcpMount
        return TextTcpMount(settings, site)
    raise ValueError(f"no mount driver {driver!r}")


def _camera(settings, config, clock, mount, filter_wheel, focuser):
    driver = settings["Driver"]
    if driver == SIMULATOR:
        from .simulator import SimulatedCamera, SimulatedFocuser
        # The simulated sky is seen through whichever mount and filter wheel are in use, and
        # out of focus only by a simulated focuser: a real one has no simulated focus.
        return SimulatedCamera(config["Simulator"], config["Site"], clock, mount=mount,
                               filter_wheel=filter_wheel,
                               focuser=focuser if isinstance(focuser, SimulatedFocuser) else None)
    if driver == ALPACA:
        from .alpaca import AlpacaCamera
        return AlpacaCamera(settings)
    if driver == INDI:
        from .indi import IndiCamera
        return IndiCamera(settings)
    raise ValueError(f"no camera driver {driver!r}")


def _filter_wheel(settings, config, clock):
    driver = settings["Driver"]
    if driver == SIMULATOR:
        from .simulator import SimulatedFilterWheel
        return SimulatedFilterWheel(config["Simulator"], clock)
    if driver == ALPACA:
        from .alpaca import AlpacaFilterWheel
        return AlpacaFilterWheel(settings)
    if driver == INDI:
        from .indi import IndiFilterWheel
        return IndiFilterWheel(settings)
    raise ValueError(f"no filter wheel driver {driver!r}")


def _dome(settings, config, clock):
    driver = settings["Driver"]
    if driver == SIMULATOR:
        from .simulator import SimulatedDome
        return SimulatedDome(config["Simulator"], clock)
    if driver == ALPACA:
        from .alpaca import AlpacaDome
        return AlpacaDome(settings)
    if driver == INDI:
        from .indi import IndiDome
        return IndiDome(settings)
    raise ValueError(f"no dome driver {driver!r}")


def _safety_monitor(settings, config, clock):
    driver = settings["Driver"]
    if driver == SIMULATOR:
        from .simulator import SimulatedSafetyMonitor
        return SimulatedSafetyMonitor(config["Simulator"], clock)
    if driver == ALPACA:
        from .alpaca import AlpacaSafetyMonitor
        return AlpacaSafetyMonitor(settings, clock)
    if driver == INDI:
        from .indi import IndiSafetyMonitor
        return IndiSafetyMonitor(settings, clock)
    raise ValueError(f"no safety monitor driver {driver!r}")
