"""Text that every reader takes: what XML, UTF-8 and SQLite cannot carry, written as escapes.

A file name is bytes. One that is no UTF-8 (a frame copied from a Windows share, a camera
computer writing Latin-1: ``étoile.fits`` as the byte ``0xE9``) reaches Python as a lone
surrogate (:func:`os.fsdecode`), and a name may hold control characters. Neither can be encoded
in UTF-8, so SQLite refuses the message naming it and the log loses the line; and XML 1.0
carries neither, so an XML-RPC client cannot read any of the answer that quotes it: the
order's Status. The daemons' outputs (answers, status page, log lines, journal text) therefore
pass through :func:`printable`, which writes each such character as Python would escape it.

Examples
--------
>>> printable("étoile.fits")
'étoile.fits'
>>> printable("/data/raw/\\udce9toile.fits")  # the byte 0xE9, as os.fsdecode gives it
'/data/raw/\\\\xe9toile.fits'
>>> printable("a\\x1b[31mred")
'a\\\\x1b[31mred'
"""

import re

#: Characters XML 1.0 cannot carry (its ``Char`` production), which UTF-8 cannot encode either
#: where they are surrogates: C0 controls but tab, newline and carriage return; surrogates;
#: U+FFFE and U+FFFF.
NOT_CARRIED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: The lone surrogates :func:`os.fsdecode` makes of the bytes 0x80-0xFF that are no UTF-8
#: (PEP 383): U+DC80 to U+DCFF.
ESCAPED_BYTES = range(0xDC80, 0xDD00)
_ESCAPED_BYTE_BASE = 0xDC00


def printable(text: str) -> str:
    """*text* with each character of :data:`NOT_CARRIED` written as Python escapes it.

    A byte of a file name that is no UTF-8 becomes that byte (``\\xe9``), a control character
    its code (``\\x1b``), another lone surrogate its code point (``\\ud800``). Text with none
    is returned as it is, after one scan.
    """
    if NOT_CARRIED.search(text) is None:
        return text
    return NOT_CARRIED.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code in ESCAPED_BYTES:
        return f"\\x{code - _ESCAPED_BYTE_BASE:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
