"""Text for FITS header cards, which hold printable ASCII only (FITS standard 4.0, 4.2.1), in
80 characters.

Names come from people and from configurations in any language: a site "Cordón Macón", a
filter "Hα", a target "Galáxia de Andrômeda". astropy refuses a card holding one, and the frame
just exposed would be lost; so a card gets the name's closest ASCII instead. The work order
keeps the name as it was written. And a long value leaves less room for the card's comment,
which :func:`fits_card` shortens rather than have astropy warn at every frame.

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

from astropy.io import fits

#: What a character with no ASCII spelling becomes.
UNSPELLABLE = "?"
#: Characters in a card: the keyword and "= " before the value, whose field is padded to 20,
#: the comment after a separator; text longer than a card's room goes on CONTINUE cards.
CARD_LENGTH, VALUE_START, VALUE_FIELD, COMMENT_SEPARATOR = 80, 10, 20, " / "
#: The longest keyword that is not a HIERARCH one, and the longest text one card holds.
SHORT_KEY, LONGEST_TEXT = 8, 68


def fits_card(key, value, comment):
    """The card ``key = value / comment``: a text *value* as :func:`fits_text` spells it, the
    comment cut to the room the value leaves (none for a value of more than one card, which
    astropy continues on ``CONTINUE`` cards with the comment)."""
    if isinstance(value, str):
        value = fits_text(value)
    room = _comment_room(key, value)
    return fits.Card(key, value, comment if room is None else comment[:max(room, 0)])


def _comment_room(key, value):
    """Characters a comment may have after *value*; ``None``: any (continued)."""
    if len(key) <= SHORT_KEY and (
            isinstance(value, (str, float)) or
            isinstance(value, int) and len(str(value)) <= VALUE_FIELD):
        if isinstance(value, str):
            quoted = len(value.replace("'", "''")) + 2  # a quote inside is written twice
            if quoted > LONGEST_TEXT + 2:
                return None
        else:
            quoted = 0  # astropy writes a float, a bool or a short integer within the field
        field = max(VALUE_FIELD, quoted)
    else:  # a long keyword, a long integer: as astropy writes them
        image = fits.Card(key, value).image
        if len(image) > CARD_LENGTH:
            return None
        field = max(len(image.rstrip()), VALUE_START + VALUE_FIELD) - VALUE_START
    return CARD_LENGTH - VALUE_START - field - len(COMMENT_SEPARATOR)


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
