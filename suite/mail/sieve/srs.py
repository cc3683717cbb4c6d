"""Sender Rewriting Scheme for redirected mail (SRS0, the format of postsrsd/libsrs2):

    SRS0=HHHH=TT=original-domain=original-local@our-domain

TT is the day number (base32, 2 characters, mod 1024), HHHH the first 4 base32 characters of an
HMAC-SHA256 over "TT=domain=local" under the site's key (compared case-insensitively: some MTAs
fold local parts). A bounce to a valid SRS0 address younger than ``max_age_days`` goes back to the
original sender; anything else is refused. Pure functions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
MAX_AGE_DAYS = 21


def _day(now: float | None = None) -> int:
    return int((now if now is not None else time.time()) // 86400) % 1024


def _tt(day: int) -> str:
    return _B32[day >> 5] + _B32[day & 31]


def _hash(key: bytes, tt: str, domain: str, local: str) -> str:
    mac = hmac.new(key, f"{tt}={domain}={local}".lower().encode("utf-8"), hashlib.sha256).digest()
    return base64.b32encode(mac).decode("ascii")[:4]


def is_srs(address: str) -> bool:
    return address[:5].upper() in ("SRS0=", "SRS0-", "SRS1=")


def forward(sender: str, our_domain: str, key: bytes, *, now: float | None = None) -> str:
    """The envelope sender to use when forwarding mail from ``sender``; "" stays "" (a bounce)."""
    if not sender:
        return ""
    local, at, domain = sender.rpartition("@")
    if not at:
        return sender
    if domain.lower() == our_domain.lower():
        return sender  # our own address: SPF passes already
    if is_srs(sender):
        return sender  # already rewritten (we never chain)
    tt = _tt(_day(now))
    return f"SRS0={_hash(key, tt, domain, local)}={tt}={domain}={local}@{our_domain}"


def reverse(address: str, key: bytes, *, now: float | None = None, max_age_days: int = MAX_AGE_DAYS) -> str | None:
    """The original sender of a valid, unexpired SRS0 address; None otherwise."""
    local, at, _ = address.rpartition("@")
    if not at or not local[:5].upper() == "SRS0=":
        return None
    parts = local[5:].split("=", 3)
    if len(parts) != 4:
        return None
    h, tt, domain, orig_local = parts
    if not (domain and orig_local and len(tt) == 2):
        return None
    if not hmac.compare_digest(h.upper(), _hash(key, tt.upper(), domain, orig_local)):
        return None
    try:
        then = (_B32.index(tt[0].upper()) << 5) | _B32.index(tt[1].upper())
    except ValueError:
        return None
    if (_day(now) - then) % 1024 > max_age_days:
        return None
    return f"{orig_local}@{domain}"
