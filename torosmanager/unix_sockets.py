"""Where a Unix socket can be bound, whatever ``TMPDIR`` is.

A Unix socket's path is limited (``sun_path``): a long ``TMPDIR`` (macOS's ``/var/folders/…``,
the demo's own directory inside it, a test's, a user's deep one) makes a socket made under it
fail to bind with "AF_UNIX path too long".
"""

import os
import tempfile

#: The longest path a Unix socket may have (``sun_path`` less its final NUL: 103 on macOS, 107
#: on Linux; the smaller).
UNIX_SOCKET_PATH_MAX = 103
#: Where a socket goes when the temporary directory's path is too long.
SHORT_TEMPORARY_DIRECTORIES = ("/tmp", "/var/tmp", "/usr/tmp")


def socket_temporary_directory(suffix_length):
    """The temporary directory under which a socket path *suffix_length* characters longer fits.

    Parameters
    ----------
    suffix_length : int
        What the socket's path adds to the directory, its separators included.

    Returns
    -------
    str
        ``tempfile.gettempdir()`` (``TMPDIR``) when the path fits under it; else the first of
        :data:`SHORT_TEMPORARY_DIRECTORIES` that can be written to; else ``TMPDIR``'s anyway,
        nowhere being shorter (binding the socket will then say why).
    """
    default = tempfile.gettempdir()
    if len(default) + suffix_length <= UNIX_SOCKET_PATH_MAX:
        return default
    usable = [each for each in SHORT_TEMPORARY_DIRECTORIES if os.access(each, os.W_OK | os.X_OK)]
    return usable[0] if usable else default
