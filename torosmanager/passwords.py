"""Passwords: salted hashes in ``Server → Users``, and the credentials the daemons send.

An entry of ``Server → Users`` is a user name and either a plain password or a salted hash
that ``toros passwd`` makes (stdlib scrypt)::

    Users:
      operator: scrypt$16384$8$1$hYw1...$Qk3v...

The daemons and the ``toros`` command also need a password they can *send* to one another.
That one cannot be a hash: it is kept apart, in ``Server → Credentials File`` (one line,
``user:password``, readable only by root and the ``toros`` group), or, when no such file is
set, taken from the first plain password in ``Users``.
"""

import base64
import hashlib
import hmac
import os
import threading

#: scrypt's cost: CPU/memory (n), block size (r), parallelism (p); 16 MB and about 50 ms a hash.
SCRYPT_N = 2 ** 14
SCRYPT_R = 8
SCRYPT_P = 1
#: Bytes of random salt, and of the derived key.
SALT_BYTES = 16
KEY_BYTES = 32
#: Hashes checked at once: each takes 16 MB and tens of milliseconds, and a stream of wrong
#: passwords must not take the machine.
HASH_CHECKS_AT_ONCE = 2
#: What a hash starts with.
SCHEME = "scrypt"
_FIELDS = 6


#: A line's ending as a file or a pipe gives it, LF or CRLF (a file written on Windows).
LINE_ENDING = "\r\n"


def password_of_line(line):
    """The password a line of standard input holds (``toros passwd --stdin``): the line
    without its ending, LF or CRLF."""
    return line.rstrip(LINE_ENDING)


def padding_refused(password):
    """Why *password* cannot be used, or ``None``: one that begins or ends with whitespace (a
    space, a tab) never matches, since :func:`client_credentials` reads the credentials file's
    line without its surrounding whitespace (as it always has: a file written with a space
    after the password, or CRLF endings, keeps working)."""
    if password != password.strip():
        return ("it begins or ends with whitespace (a space, a tab), which Server → Credentials "
                "File's line is read without: it would never match; allowed: a password "
                "without whitespace at either end")
    return None


class CredentialsError(OSError):
    """The credentials file cannot be used (the message says why). An OSError, so that every
    caller that handles a daemon it cannot reach handles this too."""


def hash_password(password):
    """A salted scrypt hash of *password*, for ``Server → Users``."""
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join([SCHEME, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(key).decode()])


def is_hash(stored):
    """Whether a ``Users`` entry is a hash made by :func:`hash_password`."""
    parts = stored.split("$")
    return len(parts) == _FIELDS and parts[0] == SCHEME


def damaged_hash(stored):
    """Whether a ``Users`` entry begins as a hash does but is not one (cut short, edited): it
    must not be taken for a password typed as it is."""
    if not stored.startswith(SCHEME + "$"):
        return False
    if not is_hash(stored):
        return True
    _, n, r, p, salt, key = stored.split("$")
    try:
        int(n), int(r), int(p)
        base64.b64decode(salt, validate=True), base64.b64decode(key, validate=True)
    except ValueError:  # (binascii.Error is one)
        return True
    return False


def verify(password, stored):
    """Whether *password* matches *stored* (a hash or a plain password), in constant time."""
    if not is_hash(stored):
        return hmac.compare_digest(stored.encode(), password.encode())
    _, n, r, p, salt, key = stored.split("$")
    try:
        derived = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
        return hmac.compare_digest(derived, base64.b64decode(key))
    except ValueError:  # a damaged hash matches nothing
        return False


def _scrypt(password, salt, n, r, p):
    # maxmem: scrypt needs 128·n·r bytes; OpenSSL's default cap (32 MB) is too tight for some n.
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=2 * 128 * n * r + 1024 * 1024)


class Authenticator:
    """Checks HTTP Basic credentials against ``Server → Users``.

    The time an answer takes says nothing about which user names exist: every name is
    compared, and an unknown one is checked against a hash all the same. A hash takes tens of
    milliseconds to check, so a pair that matched is remembered (as a keyed digest, never as
    text) and the next request with it is checked in microseconds.
    """

    def __init__(self, users):
        self.users = {name.encode(): stored for name, stored in users.items()}
        self._key = os.urandom(KEY_BYTES)
        self._stand_in = hash_password(os.urandom(SALT_BYTES).hex())
        self._matched = set()
        self._lock = threading.Lock()
        self._hashing = threading.BoundedSemaphore(HASH_CHECKS_AT_ONCE)

    def remembers(self, user, password):
        """Whether *user* came in with *password* before: checked in microseconds."""
        with self._lock:
            return self._token(user, password) in self._matched

    def check(self, user, password):
        """Whether *user* may come in with *password*."""
        token = self._token(user, password)
        with self._lock:
            if token in self._matched:
                return True
        stored = None
        for name, entry in self.users.items():
            if hmac.compare_digest(name, user.encode()):
                stored = entry
        with self._hashing:
            matched = verify(password, self._stand_in if stored is None else stored)
        if matched and stored is not None:
            with self._lock:
                self._matched.add(token)
            return True
        return False

    def _token(self, user, password):
        return hmac.new(self._key, user.encode() + b"\0" + password.encode(),
                        hashlib.sha256).digest()


def client_credentials(server_settings):
    """The ``(user, password)`` the daemons and ``toros`` send, or ``None`` when there are no
    users.

    Raises
    ------
    CredentialsError
        When ``Credentials File`` cannot be read or holds no ``user:password`` line.
    """
    path = server_settings["Credentials File"]
    if path:
        try:
            with open(path, encoding="utf-8") as stream:
                # Without surrounding whitespace, the line's ending (CRLF too) with it: the
                # rule toros passwd holds a password to (padding_refused).
                lines = [line.strip() for line in stream if line.strip()
                         and not line.lstrip().startswith("#")]
        except OSError as error:
            raise CredentialsError(f"{path} (Server → Credentials File): cannot read it: "
                                   f"{error.strerror}") from None
        if not lines or ":" not in lines[0]:
            raise CredentialsError(f"{path} (Server → Credentials File): no 'user:password' "
                                   "line")
        user, _, password = lines[0].partition(":")
        return user, password
    for user, stored in (server_settings["Users"] or {}).items():
        if not is_hash(stored):
            return user, stored
    return None


def check_client_credentials(server_settings):
    """Refuse (:class:`CredentialsError`) a ``Credentials File`` whose user ``Server → Users``
    holds with another password: every call between the daemons would be answered 401 (the
    dome hearing no heartbeat, nothing observed). One scrypt: at a daemon's start, not at each
    call. A user ``Users`` does not hold may be another computer's (its daemons' own
    ``Users``), and passes."""
    path, users = server_settings["Credentials File"], server_settings["Users"] or {}
    credentials = client_credentials(server_settings)
    if not path or credentials is None or credentials[0] not in users:
        return
    user, password = credentials
    if not verify(password, users[user]):
        raise CredentialsError(f"{path} (Server → Credentials File): the password of {user!r} "
                               "is not the one Server → Users holds for it: every call between "
                               "the daemons would be refused (HTTP 401)")


def has_plain_passwords(server_settings):
    """Whether ``Server → Users`` holds a password as it is typed (not hashed)."""
    return any(not is_hash(stored) for stored in (server_settings["Users"] or {}).values())
