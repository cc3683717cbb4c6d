"""Password hashing (argon2id, off the event loop), password policy, and app-password secrets."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2id with OWASP's recommended minimum (19 MiB, t=2, p=1): a login costs tens of milliseconds
# and 19 MiB, so a burst of IMAP logins cannot exhaust memory. check_needs_rehash upgrades old hashes.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

# App passwords: 5 groups of 6 characters from a 32-symbol alphabet = 150 bits, from `secrets`.
_APP_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
_APP_GROUPS = 5
_APP_GROUP_LEN = 6

_COMMON = {
    "password",
    "password1",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "qwerty123",
    "iloveyou",
    "letmein123",
    "admin1234",
    "welcome123",
    "changeme",
    "abcdefgh",
    "11111111",
}
MIN_PASSWORD_LENGTH = 8


class WeakPassword(ValueError):
    pass


def check_policy(password: str, address: str = "") -> None:
    """Reject empty, short and obviously guessable passwords with a reason a person can act on."""
    if not password:
        raise WeakPassword("password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"password is shorter than {MIN_PASSWORD_LENGTH} characters")
    if len(set(password)) < 4 or password.lower() in _COMMON:
        raise WeakPassword("password is too easy to guess")
    local = address.split("@", 1)[0].lower()
    if local and len(local) >= 3 and local in password.lower():
        raise WeakPassword("password contains the user name")


def _hash_sync(password: str) -> str:
    return _hasher.hash(password)


def _verify_sync(stored: str, password: str) -> tuple[bool, str | None]:
    """Return (ok, new_hash_if_rehash_needed)."""
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if _hasher.check_needs_rehash(stored):
        return True, _hasher.hash(password)
    return True, None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hash_sync, password)


async def verify_password(stored: str, password: str) -> tuple[bool, str | None]:
    return await asyncio.to_thread(_verify_sync, stored, password)


_dummy_hash: str | None = None


async def burn_time(password: str) -> None:
    """Spend what a real verification costs, so an unknown user is not told apart by timing."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = await hash_password(secrets.token_hex(16))
    await verify_password(_dummy_hash, password)


def new_app_secret() -> str:
    groups = ["".join(secrets.choice(_APP_ALPHABET) for _ in range(_APP_GROUP_LEN)) for _ in range(_APP_GROUPS)]
    return "-".join(groups)


def looks_like_app_secret(password: str) -> bool:
    parts = password.split("-")
    return len(parts) == _APP_GROUPS and all(
        len(p) == _APP_GROUP_LEN and all(c in _APP_ALPHABET for c in p) for p in parts
    )


def app_secret_hash(secret: str) -> str:
    # App secrets are 150 random bits: a plain SHA-256 cannot be brute-forced, and it keeps IMAP/SMTP
    # logins with app passwords cheap (no argon2 on every mail-client connection).
    return hashlib.sha256(secret.encode()).hexdigest()


def cache_key(secret: bytes, address: str, password: str) -> bytes:
    """HMAC of a login under the login cache's own random secret: the cache never holds a password."""
    return hmac.new(secret, f"{address}\0{password}".encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
