"""The two TOROS sites the benchmarks plan for: the configuration's default, CTMO (Brownsville,
northern), and Cordón Macón (Argentina, southern, 4,650 m), where most of the fixture alerts'
southern error regions are up."""

from torosmanager.config import default_config

#: Cordón Macón, as a ``Site`` section.
CORDON_MACON = {"Name": "Cordón Macón", "Latitude": -24.62, "Longitude": -67.32,
                "Elevation": 4650.0}
#: The sites' short names (command-line choices) and printed names.
SITE_NAMES = {"ctmo": "CTMO", "macon": "Cordón Macón"}


def sites(names=tuple(SITE_NAMES)):
    """The sites asked for, by their short names: ``{printed name: Site section}``."""
    known = {"ctmo": default_config()["Site"], "macon": CORDON_MACON}
    return {SITE_NAMES[name]: known[name] for name in names}
