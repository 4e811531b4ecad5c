"""Building the devices a daemon drives, with the driver the configuration names for each.

Drivers are imported only when chosen, so the simulator needs nothing of alpyca and the Alpaca
drivers nothing of the simulator.
"""

SIMULATOR = "simulator"
ALPACA = "alpaca"


def telescope_devices(config, clock):
    """The telescope daemon's ``(mount, camera, filter_wheel)``, not yet connected.

    Parameters
    ----------
    config : dict
        The loaded configuration (``Telescope``, ``Simulator`` and ``Site`` sections).
    clock : Clock
        The shared clock; simulated devices move in its time.
    """
    settings = config["Telescope"]
    simulator, site = config["Simulator"], config["Site"]
    if settings["Mount"]["Driver"] == SIMULATOR:
        from .simulator import SimulatedMount
        mount = SimulatedMount(simulator, site, clock)
    else:
        from .alpaca import AlpacaMount
        mount = AlpacaMount(settings["Mount"], site)
    if settings["Filter Wheel"]["Driver"] == SIMULATOR:
        from .simulator import SimulatedFilterWheel
        filter_wheel = SimulatedFilterWheel(simulator, clock)
    else:
        from .alpaca import AlpacaFilterWheel
        filter_wheel = AlpacaFilterWheel(settings["Filter Wheel"])
    if settings["Camera"]["Driver"] == SIMULATOR:
        from .simulator import SimulatedCamera
        # The simulated sky is seen through whichever mount and filter wheel are in use.
        camera = SimulatedCamera(simulator, site, clock, mount=mount, filter_wheel=filter_wheel)
    else:
        from .alpaca import AlpacaCamera
        camera = AlpacaCamera(settings["Camera"])
    return mount, camera, filter_wheel


def dome_devices(config, clock):
    """The dome daemon's ``(dome, safety_monitor)``, not yet connected."""
    settings = config["Dome"]
    simulator = config["Simulator"]
    if settings["Enclosure"]["Driver"] == SIMULATOR:
        from .simulator import SimulatedDome
        dome = SimulatedDome(simulator, clock)
    else:
        from .alpaca import AlpacaDome
        dome = AlpacaDome(settings["Enclosure"])
    if settings["Safety Monitor"]["Driver"] == SIMULATOR:
        from .simulator import SimulatedSafetyMonitor
        safety_monitor = SimulatedSafetyMonitor(simulator, clock)
    else:
        from .alpaca import AlpacaSafetyMonitor
        safety_monitor = AlpacaSafetyMonitor(settings["Safety Monitor"], clock)
    return dome, safety_monitor
