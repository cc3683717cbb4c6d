"""JMAP ids and states (RFC 8620 §1.2, §1.5).

Ids are opaque strings of URL-safe base64 characters; ours carry a one-letter kind before the
number so that an id of one kind never names an object of another: ``M`` mailbox, ``e`` email,
``T`` thread (the same strings IMAP OBJECTID shows: suite.mail.store.emails.*_object_id), ``S`` submission, ``I`` identity, ``G`` blob (a SHA-256 digest), ``P`` a body part
blob (``P<email>_<part path with _>``)."""

from __future__ import annotations

import re

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(ID_RE.match(value))


def make(kind: str, n: int) -> str:
    return f"{kind}{n}"


def parse(kind: str, value: object) -> int | None:
    """The number of an id of ``kind``, or None when it is not one (never raises)."""
    if not isinstance(value, str) or not value.startswith(kind):
        return None
    digits = value[len(kind) :]
    if not digits.isdigit() or len(digits) > 18 or (len(digits) > 1 and digits[0] == "0"):
        return None
    return int(digits)


def blob_id(digest: str) -> str:
    return "G" + digest


def blob_digest(value: object) -> str | None:
    if isinstance(value, str) and value.startswith("G") and re.fullmatch(r"[0-9a-f]{64}", value[1:]):
        return value[1:]
    return None


def part_blob_id(email_id: int, path: tuple[int, ...]) -> str:
    return f"P{email_id}_" + "_".join(str(n) for n in path)


def parse_part_blob(value: object) -> tuple[int, tuple[int, ...]] | None:
    if not isinstance(value, str):
        return None
    m = re.fullmatch(r"P(\d{1,18})_(\d{1,6}(?:_\d{1,6})*)", value)
    if not m:
        return None
    return int(m.group(1)), tuple(int(x) for x in m.group(2).split("_"))


def state(n: int) -> str:
    return str(n)


def parse_state(value: object) -> int | None:
    if isinstance(value, str) and value.isdigit() and len(value) <= 18:
        return int(value)
    return None
