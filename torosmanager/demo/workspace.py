"""Where the demo keeps its files, and the little it leaves behind.

The demo's daemons write journals, logs and some 150 MB of FITS frames, and matplotlib (the
report's plan chart) writes its font cache and configuration to the home folder unless told
otherwise. :func:`workspace` gives all of them one temporary directory, for this process and the
daemons it starts, and removes it when the demo ends, however it ends (Ctrl-C too).
:func:`keep` first moves the night report and the daemons' logs to :data:`REPORT_DIRECTORY`.
"""

import contextlib
import glob
import os
import shutil
import tempfile

#: Where the night report and the daemons' logs are kept, relative to the current directory:
#: with ``make demo``, inside the checkout, in ``build/`` (ignored by git, removed by
#: ``make clean``).
REPORT_DIRECTORY = os.path.join("build", "demo-report")
#: The workspace's sub-directory the report is written to.
REPORT = "report"
#: Environment variables that send programs writing below the home folder (or the system's
#: temporary directory) into the workspace instead, with the sub-directory each gets.
#: matplotlib reads MPLCONFIGDIR; astropy ASTROPY_CONFIG_DIR and ASTROPY_CACHE_DIR (≥ 7.1) or the
#: XDG ones (older releases, as most other libraries); TMPDIR is for the daemons, whose
#: temporary files would otherwise outlive a demo stopped by Ctrl-C.
PRIVATE_DIRECTORIES = {
    "MPLCONFIGDIR": "matplotlib",
    "ASTROPY_CONFIG_DIR": "astropy-config",
    "ASTROPY_CACHE_DIR": "astropy-cache",
    "XDG_CONFIG_HOME": "config",
    "XDG_CACHE_HOME": "cache",
    "TMPDIR": "tmp",
}


@contextlib.contextmanager
def workspace():
    """A new temporary directory for the demo, with :data:`PRIVATE_DIRECTORIES` pointing into
    it; on leaving, the environment is as it was and the directory is gone.

    Yields
    ------
    str
        The directory's path.
    """
    directory = tempfile.mkdtemp(prefix="toros-demo-")
    saved = {name: os.environ.get(name) for name in PRIVATE_DIRECTORIES}
    try:
        for name, subdirectory in PRIVATE_DIRECTORIES.items():
            path = os.path.join(directory, subdirectory)
            os.makedirs(path, exist_ok=True)
            os.environ[name] = path
        yield directory
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(directory, ignore_errors=True)


def keep(directory, destination=REPORT_DIRECTORY):
    """Move the workspace's night report and the daemons' logs to *destination*, replacing
    what an earlier demo left there; return *destination*'s absolute path.

    Parameters
    ----------
    directory : str
        The workspace (:func:`workspace`).
    destination : str
        Where they go (made if missing).
    """
    destination = os.path.abspath(destination)
    # A report of an earlier night must not mix with this one's (a chart it lacks, say).
    shutil.rmtree(destination, ignore_errors=True)
    os.makedirs(destination)
    report = os.path.join(directory, REPORT)
    if os.path.isdir(report):
        for name in os.listdir(report):
            shutil.move(os.path.join(report, name), destination)
    for log in glob.glob(os.path.join(directory, "*.log")):
        shutil.move(log, destination)
    return destination
