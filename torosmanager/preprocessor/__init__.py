"""The preprocessor daemon: calibrates CCD exposures.

The modules: :mod:`.handler` (the daemon's checks and life cycle), :mod:`.jobs` (its queue of
orders), :mod:`.pipeline` (a night's calibration, for the daemon and ``toros calibrate``),
:mod:`.classify`, :mod:`.masters`, :mod:`.combine`, :mod:`.calibrate`, :mod:`.layout`,
:mod:`.library`, :mod:`.reading`, :mod:`.writing`, :mod:`.executors` and :mod:`.command`.
"""

__all__ = ["PreprocessorHandler"]


def __getattr__(name):
    # The handler brings astropy and ccdproc (seconds to import): only when it is asked for,
    # so that the `toros` command, which imports the package for `calibrate`, starts at once.
    if name == "PreprocessorHandler":
        from .handler import PreprocessorHandler
        return PreprocessorHandler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
