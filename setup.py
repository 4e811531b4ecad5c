"""Packaging for TOROS Manager: the shared library, the five daemons and the ``toros`` client."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_version():
    """Read ``__version__`` without importing the package (its dependencies may be absent)."""
    for line in (HERE / "torosmanager" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip('"')
    raise RuntimeError("torosmanager/__init__.py has no __version__")


setup(
    name="torosmanager",
    version=read_version(),
    description="Observatory automation daemons for small robotic telescopes (TOROS)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["torosmanager", "torosmanager.*"]),
    package_data={"torosmanager": ["data/*"]},
    install_requires=[
        "pyyaml>=6.0",
        "astropy>=6.0",
        # ERFA (astropy's own dependency), called directly for the Sun and the Moon the
        # planner needs a few times a night: astropy's frame machinery cost 10 ms a call.
        "pyerfa>=2.0.1",
        # astropy's IERS tables (astropy's own dependency): the Earth-rotation cache is keyed
        # by its files' paths, and `toros iers --update` upgrades it.
        "astropy-iers-data>=0.2023.10.30",
        "numpy>=1.24",
        "ccdproc>=2.4",
        "python-daemon>=3.0",
        # ASCOM's own Alpaca client: the protocol, its error numbers and image transfer,
        # maintained with the standard, rather than HTTP calls written by hand.
        "alpyca>=3.1,<4",
        # The plan's altitude chart (toros plan --plot, the night report).
        "matplotlib>=3.6",
        # The LVK's own alert schema (only its JSON file is read; the package is GPL data, no
        # code) and JSON Schema's reference validator: what in an LVK alert does not fit the
        # schema is listed and logged, where a checker written here would lag the schema.
        "igwn-gwalert-schema>=1.3,<2",
        "jsonschema>=4.18",
        # HEALPix skymaps of alerts (multi-order and flat): astropy's own, light, where
        # ligo.skymap and healpy pull in much more.
        "astropy-healpix>=1.0",
        # k-d trees: the pixels in each candidate field of an alert's map, found at once
        # (already installed with ccdproc, named here because the alerts use it directly).
        "scipy>=1.10",
        # Autofocus: the stars of a focus frame and each one's half-flux radius, detected and
        # measured by astropy's own source-detection package rather than by hand (3.x names).
        "photutils>=3.0,<4",
        # Mozilla's certificates, for the skymaps downloaded over HTTPS where Python finds no
        # system ones (python.org's Python on macOS, before its "Install Certificates" step).
        "certifi>=2023.7.22",
    ],
    # alpaca-simulators: a real third-party Alpaca server the device tests drive.
    # libfaketime: sets other processes' clocks (years ahead, where the IERS table is stale;
    # back an hour while a night runs).
    # pytest-xdist: make test runs the test files in three processes.
    # mypy (with PyYAML's stubs): make test checks the type hints first (mypy.ini).
    extras_require={"test": ["pytest>=7", "pytest-xdist>=3.5", "alpaca-simulators~=1.3.2",
                             "dask[distributed]>=2024.1", "astroscrappy>=1.1",
                             "libfaketime>=3.0", "pygcn>=1.1.3", "mypy>=1.8",
                             "types-PyYAML>=6.0",
                             # The tests' look at processes (children, state, command line)
                             # on Linux and macOS alike, not through Linux's /proc.
                             "psutil>=5.9"],
                    # Alerts → Kafka: GCN's own Kafka client (OAuth, topics, its broker's
                    # settings), rather than confluent-kafka configured by hand.
                    "kafka": ["gcn-kafka>=0.3"],
                    # Alerts → VOEvent Transport: GCN's VTP client (pygcn), which keeps the
                    # connection, answers the broker's iamalive and acknowledges each event.
                    "vtp": ["pygcn>=1.1.3"],
                    # Driver: indi. A maintained pure-Python INDI client (XML over TCP, BLOBs),
                    # rather than the XML protocol parsed here or pyindi-client's C++ build.
                    "indi": ["indipyclient>=0.9"],
                    # Driver: lx200. pyserial's URLs (/dev/ttyUSB0, socket://host:port) reach a
                    # mount on a serial line or behind a TCP bridge through one interface.
                    "lx200": ["pyserial>=3.5"],
                    # Preprocessor → Executor: a dask.distributed scheduler's address.
                    "dask": ["dask[distributed]>=2024.1"],
                    # Preprocessor → Cosmic Rays: true.
                    "cosmics": ["astroscrappy>=1.1"],
                    # astroplan: the scheduler benchmark compares the planner with it.
                    "bench": ["astroplan>=0.10"]},
    scripts=[
        "services/toros-scheduler",
        "services/toros-telescope",
        "services/toros-dome",
        "services/toros-preprocessor",
        "services/toros-alerts",
    ],
    entry_points={"console_scripts": ["toros = torosmanager.__main__:main"]},
)
