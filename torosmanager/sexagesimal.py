"""Angles as sexagesimal text: hours and degrees, minutes and seconds.

A mount computer's protocol (:mod:`torosmanager.devices.text_tcp`) and the ``OBJCTRA`` and
``OBJCTDEC`` cards of the telescope's FITS headers (:mod:`torosmanager.telescope.fits`) write
them.
"""

from .units import HOURS_PER_DAY

MINUTES_PER_UNIT = 60
SECONDS_PER_UNIT = 3600

#: Decimal places of the seconds written: 0.01 s of right ascension (0.15") and 0.1" of
#: declination, finer than any pointing model.
RA_SECOND_DECIMALS = 2
DEC_SECOND_DECIMALS = 1


def _split(value, decimals):
    """``(units, minutes, seconds)`` of a non-negative *value*, seconds rounded to *decimals*
    without ever printing 60 seconds or 60 minutes."""
    scale = 10 ** decimals
    ticks = round(value * SECONDS_PER_UNIT * scale)
    units, ticks = divmod(ticks, SECONDS_PER_UNIT * scale)
    minutes, ticks = divmod(ticks, MINUTES_PER_UNIT * scale)
    return units, minutes, ticks / scale


def format_ra(hours, separator=":"):
    """Right ascension in hours → ``HH:MM:SS.SS`` (0 ≤ HH < 24), the fields joined by
    *separator*."""
    hours_part, minutes, seconds = _split(hours % HOURS_PER_DAY, RA_SECOND_DECIMALS)
    hours_part %= int(HOURS_PER_DAY)  # 23:59:59.999 rounds up to 24:00:00.00 = 00:00:00.00
    width = 3 + RA_SECOND_DECIMALS
    return separator.join((f"{hours_part:02d}", f"{minutes:02d}",
                           f"{seconds:0{width}.{RA_SECOND_DECIMALS}f}"))


def format_dec(degrees, separator=":"):
    """Declination in degrees → ``sDD:MM:SS.S`` (sign always written), the fields joined by
    *separator*."""
    degrees_part, minutes, seconds = _split(abs(degrees), DEC_SECOND_DECIMALS)
    sign = "-" if degrees < 0 and (degrees_part or minutes or seconds) else "+"
    width = 3 + DEC_SECOND_DECIMALS
    return sign + separator.join((f"{degrees_part:02d}", f"{minutes:02d}",
                                  f"{seconds:0{width}.{DEC_SECOND_DECIMALS}f}"))


def parse_sexagesimal(text):
    """``[s]DD:MM:SS.S``, ``[s]DD:MM`` or a plain decimal number → a float in the same unit.

    Raises
    ------
    ValueError
        For anything else.
    """
    text = text.strip()
    negative = text.startswith("-")
    parts = text.lstrip("+-").split(":")
    if not 1 <= len(parts) <= 3 or any(not part for part in parts):
        raise ValueError(f"not a sexagesimal number: {text!r}")
    value = 0.0
    for place, part in enumerate(parts):
        number = float(part)
        if number < 0 or (place > 0 and number >= MINUTES_PER_UNIT):
            raise ValueError(f"not a sexagesimal number: {text!r}")
        value += number / MINUTES_PER_UNIT ** place
    return -value if negative else value
