"""Password hashing, API tokens and CSRF tokens: pure functions, standard library only.

Passwords use scrypt (memory-hard, in `hashlib` since Python 3.6) with a random salt per user, stored as
`scrypt$n$r$p$salt$hash` so the cost can be raised later without breaking old hashes.
API tokens are 32 random bytes; only their SHA-256 is stored. A token carries 256 bits of entropy, so a
fast hash is enough (nothing to brute-force) and it lets the login look the user up by the hash directly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# n=2**14, r=8 costs 16 MiB and about 50 ms per check on one core: slow for an attacker, fine for a login.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSWORD_CHARS = 8
API_TOKEN_PREFIX = "lbl_"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES, maxmem=256 * 1024 * 1024
    )


def hash_password(password: str) -> str:
    """A salted scrypt hash of `password`, self-describing so its parameters travel with it."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`; a malformed stored hash never matches."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
        actual = _scrypt(password, salt, n, r, p)  # ValueError on parameters scrypt refuses
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# Checked against when a login names no existing user, so the response time does not reveal which names exist.
DUMMY_PASSWORD_HASH = hash_password(secrets.token_urlsafe(16))


def new_api_token() -> str:
    """A fresh bearer token, shown to the user once; only `hash_api_token` of it is stored."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison that treats a missing token on either side as a mismatch."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def session_tag(secret_key: str, password_hash: str) -> str:
    """Tie a login session to the current password hash: changing the password ends old sessions.

    Sessions live in a signed cookie, so the server cannot delete them; this tag is how it revokes them.
    """
    mac = hmac.new(secret_key.encode("utf-8"), password_hash.encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()[:32]
