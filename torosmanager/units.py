"""The units of the numbers at TOROS Manager's interfaces, named in their types.

pyobs puts units in its types and ccdproc uses astropy Quantities; here the interfaces keep plain
floats (XML-RPC, SQLite and the drivers' protocols carry no units), and these aliases name what
each float measures, so that a signature reads ``start_slew(ra: Degrees, dec: Degrees)``.

They are aliases, not new types: mypy checks that a number is passed, not which unit it is in
(``Hours`` where ``Degrees`` is expected is not caught). The unit is for the reader; a value
changes unit only through a named conversion, such as :data:`DEGREES_PER_HOUR`.

Whether a number received is a finite one (not a bool, text, NaN or an infinity) is
:func:`finite_float`'s to say, wherever it arrives.

Examples
--------
>>> from torosmanager.units import DEGREES_PER_HOUR, Degrees, Hours
>>> def ra_degrees(ra: Hours) -> Degrees:
...     return ra * DEGREES_PER_HOUR
>>> ra_degrees(23.1)
346.5
"""

import math
from typing import TypeAlias

#: An angle in decimal degrees: RA (0–360), Dec (−90…+90), altitude, azimuth (from north
#: through east), separations.
Degrees: TypeAlias = float
#: An hour angle or a right ascension in hours (0–24), as in a sexagesimal ``"HH:MM:SS"`` RA.
Hours: TypeAlias = float
#: A duration in seconds (exposure times, timeouts, poll intervals).
Seconds: TypeAlias = float
#: A temperature in degrees Celsius (a CCD's).
Celsius: TypeAlias = float
#: A length in micrometres (a detector's pixel).
Micrometres: TypeAlias = float

#: Right ascension: 24 hours make the full circle of 360°.
DEGREES_PER_HOUR = 15.0
HOURS_PER_DAY = 24.0
DEGREES_PER_TURN = 360.0
SECONDS_PER_MINUTE = 60.0
ARCSEC_PER_DEGREE = 3600.0


def finite_float(value: object) -> float | None:
    """*value* received at an interface (XML-RPC, a FITS card, a device's answer) as a finite
    ``float``, or ``None`` when it is no such number: a bool, text, NaN, an infinity, an
    integer beyond any float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an XML-RPC <int> or a card may have hundreds of digits
        return None
    return number if math.isfinite(number) else None
