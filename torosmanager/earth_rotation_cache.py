"""A per-user cache of astropy's Earth-rotation table, so that a process starts without parsing it.

astropy parses its IERS-A and IERS-B text files (about 20,000 lines each) in pure Python: a
second or more of CPU in every process that transforms coordinates, which every TOROS daemon
does at start-up. The table that reading produces is saved here once, as plain numpy arrays
(``.npz``, loaded without pickle), and loaded in a few tens of milliseconds by the next process.

The cache is a file in ``$XDG_CACHE_HOME/toros`` (``~/.cache/toros`` by default; for the
daemons' ``toros`` user that is below its home, ``/var/lib/toros``). It is used only when the
files it was made from are unchanged (their paths, sizes and modification times) and astropy and
``astropy-iers-data`` are the same versions, so ``toros iers --update`` or an astropy upgrade
makes it be read afresh. A cache that is missing, stale, unreadable or unwritable only costs
the parse.

Beside the table the file keeps its facts (:func:`torosmanager.earth_rotation.table_facts`:
where it was read from, how old it is, when the leap seconds expire), so that a daemon that
only reports the table's age reads them without importing astropy's tables at all.
"""

import json
import logging
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: The cache file's name inside the cache directory.
CACHE_FILE_NAME = "iers-table.npz"
#: Bumped when the file's layout changes, so that an older file is read afresh.
FORMAT_VERSION = 2


def cache_directory():
    """Where this user's TOROS cache lives: ``$XDG_CACHE_HOME/toros``, else
    ``~/Library/Caches/toros`` on macOS and ``~/.cache/toros`` elsewhere; ``None`` for a user
    without a home directory."""
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return Path(base) / "toros"
    try:
        home = Path.home()
    except (RuntimeError, KeyError):
        return None
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "toros"
    return home / ".cache" / "toros"


def source_key():
    """What the table would be read from, as a JSON string: the versions of astropy, of the
    package of tables and of pyerfa (whose built-in leap seconds astropy compares with the
    package's), and the path, size and modification time of each file astropy reads offline.

    Made without importing astropy's IERS module, which loads ``astropy.table``."""
    import astropy
    import astropy_iers_data
    import erfa

    from .earth_rotation import IERS_DATA_PACKAGE, tables_version

    # IERS_A.read prefers a finals2000A.all in the working directory to the bundled one.
    iers_a_file = ("finals2000A.all" if os.path.exists("finals2000A.all")
                   else astropy_iers_data.IERS_A_FILE)
    files = []
    for path in (iers_a_file, astropy_iers_data.IERS_A_README, astropy_iers_data.IERS_B_FILE,
                 astropy_iers_data.IERS_B_README, astropy_iers_data.IERS_LEAP_SECOND_FILE):
        path = os.path.abspath(os.fspath(path))
        status = os.stat(path)
        files.append([path, status.st_size, status.st_mtime_ns])
    return json.dumps({"Format": FORMAT_VERSION, "astropy": astropy.__version__,
                       IERS_DATA_PACKAGE: tables_version(), "pyerfa": erfa.__version__,
                       "Files": files}, sort_keys=True)


def load(path, key):
    """The table saved at *path* if it was made from *key*'s sources, else ``None``."""
    return _read(path, key, _table_from_arrays)


def load_facts(path, key):
    """The facts of the table saved at *path* (a dict) if it was made from *key*'s sources,
    else ``None``. Only they are read, not the table."""
    return _read(path, key, lambda saved: json.loads(str(saved["facts"])))


def _read(path, key, take):
    """``take(arrays)`` of the file at *path* if it was made from *key*'s sources, else
    ``None`` (said in the log, except for a file not there yet)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["key"]) != key:
                log.info("The Earth-rotation table's cache %s was made from other files; "
                         "reading the table afresh", path)
                return None
            return take(saved)
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        log.warning("Could not load the Earth-rotation table's cache %s (%s); reading the "
                    "table afresh", path, error)
        return None


def save(table, facts, path, key):
    """Save *table* and its *facts* at *path*, made from *key*'s sources (atomically: a process
    reading it at the same time sees the old file or the new one). Failing to write is logged,
    never raised."""
    try:
        arrays = _arrays_from_table(table)
    except TypeError as error:
        log.info("The Earth-rotation table is not cached: %s", error)
        return
    arrays["key"] = np.array(key)
    arrays["facts"] = np.array(json.dumps(facts))
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name,
                                               suffix=".partial")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                np.savez(stream, **arrays)
            os.replace(partial, path)
        except BaseException:
            os.unlink(partial)
            raise
    except OSError as error:
        log.info("Could not cache the Earth-rotation table at %s (%s): each start will read "
                 "it afresh", path, error)


def _arrays_from_table(table):
    from astropy.table import Column, MaskedColumn
    from astropy.units import Quantity

    arrays, columns = {}, []
    for index, name in enumerate(table.colnames):
        column = table[name]
        if isinstance(column, MaskedColumn):
            kind = "MaskedColumn"
            arrays[f"mask{index}"] = np.asarray(column.mask)
        elif isinstance(column, Column):
            kind = "Column"
        elif type(column) is Quantity:
            kind = "Quantity"
        else:
            raise TypeError(f"column {name!r} is a {type(column).__name__}")
        arrays[f"data{index}"] = np.asarray(column.value if kind == "Quantity" else column.data)
        unit = getattr(column, "unit", None)
        columns.append({"Name": name, "Kind": kind, "Unit": None if unit is None else str(unit)})
    meta = {name: value.item() if isinstance(value, np.generic) else value
            for name, value in table.meta.items()}
    arrays["layout"] = np.array(json.dumps({"Columns": columns, "Meta": meta}))
    return arrays


def _table_from_arrays(saved):
    from astropy import units
    from astropy.table import Column, MaskedColumn
    from astropy.utils import iers

    layout = json.loads(str(saved["layout"]))
    columns = []
    for index, column in enumerate(layout["Columns"]):
        data, unit = saved[f"data{index}"], column["Unit"]
        if column["Kind"] == "Quantity":
            columns.append(units.Quantity(data, unit, copy=False))
        elif column["Kind"] == "MaskedColumn":
            columns.append(MaskedColumn(data, mask=saved[f"mask{index}"], unit=unit))
        else:
            columns.append(Column(data, unit=unit))
    return iers.IERS_Auto(columns, names=[column["Name"] for column in layout["Columns"]],
                          meta=layout["Meta"])
