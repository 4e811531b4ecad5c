"""`toros iers --update` against a package index that holds an older table than the one
installed (a stale mirror): nothing older is installed."""

import base64
import hashlib
import importlib.metadata
import os
import subprocess
import sys
import zipfile

TOROS = os.path.join(os.path.dirname(sys.executable), "toros")
PACKAGE = "astropy-iers-data"
#: A version older than any astropy-iers-data TOROS Manager can run with.
OLD_VERSION = "0.2020.1.6.0.30.0"
#: Seconds pip may take to read a local index.
RUN_LIMIT = 120


def old_wheel(directory):
    """A wheel of astropy-iers-data at :data:`OLD_VERSION` (its metadata only) in
    *directory*: what a stale mirror holds."""
    info = f"astropy_iers_data-{OLD_VERSION}.dist-info"
    files = {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\n"
                                 f"Version: {OLD_VERSION}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
        record.append(f"{name},sha256={digest.rstrip(b'=').decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(directory / f"astropy_iers_data-{OLD_VERSION}-py3-none-any.whl",
                         "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)


def test_an_index_that_holds_only_an_older_table_is_refused_naming_both(tmp_path):
    """pip answered with the newest on the index it reached (a stale mirror, an extra index
    when the main one was down), and `toros iers --update` installed that older table,
    presenting it as an update (here in a dry run, which said it "would be installed")."""
    old_wheel(tmp_path)
    installed = importlib.metadata.version(PACKAGE)
    # pip reads only this directory: no network, nothing installed (a dry run).
    environment = dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(tmp_path))
    result = subprocess.run([TOROS, "iers", "--update", "--dry-run"], capture_output=True,
                            text=True, timeout=RUN_LIMIT, env=environment)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"toros: the newest {PACKAGE} on the package index is {OLD_VERSION}, older than the "
        f"{installed} installed (a stale mirror or extra index"), result.stderr
    assert importlib.metadata.version(PACKAGE) == installed
