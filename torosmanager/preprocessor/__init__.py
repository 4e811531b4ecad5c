"""The preprocessor daemon: calibrates CCD exposures.

The modules: :mod:`.handler` (the daemon's checks and life cycle), :mod:`.jobs` (its queue of
orders), :mod:`.pipeline` (a night's calibration, for the daemon and ``toros calibrate``),
:mod:`.classify`, :mod:`.incomplete`, :mod:`.masters`, :mod:`.combine`, :mod:`.calibrate`, :mod:`.layout`,
:mod:`.terms_store`, :mod:`.library`, :mod:`.reading`, :mod:`.writing`, :mod:`.room` and
:mod:`.executors`; ``toros calibrate`` is :mod:`torosmanager.commands.calibrate`.
"""
