"""Text for FITS header cards, which hold printable ASCII only (FITS standard 4.0, 4.2.1).

Names come from people and from configurations in any language: a site "Cordón Macón", a
filter "Hα", a target "Galáxia de Andrômeda". astropy refuses a card holding one, and the frame
just exposed would be lost; so a card gets the name's closest ASCII instead. The work order
keeps the name as it was written.

Examples
--------
>>> fits_text("Cordón Macón")
'Cordon Macon'
>>> fits_text("Hα")
'Halpha'
>>> fits_text("20 °C")
'20 ?C'
"""

import unicodedata

#: What a character with no ASCII spelling becomes.
UNSPELLABLE = "?"


def fits_text(value):
    """*value* with only printable ASCII: accents dropped, Greek letters spelled out
    (``α`` → ``alpha``, ``Ω`` → ``Omega``), line breaks and tabs made spaces, anything else
    :data:`UNSPELLABLE`. ASCII text is returned as it is."""
    if value.isascii() and value.isprintable():
        return value
    spelled = []
    # NFKD splits an accented letter into the letter and its accent, and µ into Greek mu.
    for character in unicodedata.normalize("NFKD", value):
        if " " <= character <= "~":
            spelled.append(character)
        elif unicodedata.combining(character):
            continue
        elif character.isspace():
            spelled.append(" ")
        else:
            spelled.append(_greek(character) or UNSPELLABLE)
    return "".join(spelled)


def _greek(character):
    """A Greek letter's name (``alpha``, ``Omega``), or ``None``."""
    name = unicodedata.name(character, "")
    if not name.startswith(("GREEK SMALL LETTER ", "GREEK CAPITAL LETTER ")):
        return None
    letter = name.split()[-1].lower()  # FINAL SIGMA: sigma
    return letter if "SMALL" in name else letter.capitalize()
