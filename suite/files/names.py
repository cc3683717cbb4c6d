"""File names and paths, validated at the edge: what may be stored, and how a path splits.

A name is one path segment: Unicode NFC, 1..255 UTF-8 bytes, no "/", no NUL or other control
character, not "." or "..". A path is "/"-separated names; nothing in it can climb out of the
account's root because ".." is refused, not interpreted.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_BYTES = 255
MAX_PATH_DEPTH = 64


class BadName(ValueError):
    pass


def check_name(name: str) -> str:
    """Return the NFC form of ``name`` or raise BadName with a reason a person can act on."""
    if not isinstance(name, str):
        raise BadName("a name must be text")
    name = unicodedata.normalize("NFC", name)
    if not name:
        raise BadName("a name must not be empty")
    if name in (".", ".."):
        raise BadName(f"{name!r} is not allowed as a name")
    if "/" in name:
        raise BadName("a name must not contain '/'")
    for ch in name:
        if ch == "\x00" or unicodedata.category(ch) == "Cc":
            raise BadName("a name must not contain control characters")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise BadName(f"a name is limited to {MAX_NAME_BYTES} bytes of UTF-8")
    return name


def split_path(path: str) -> list[str]:
    """ "/a/b/" → ["a", "b"]; empty segments (doubled or trailing slashes) are ignored, every other
    segment must be a valid name (so "..", "." and control characters are refused)."""
    if not isinstance(path, str):
        raise BadName("a path must be text")
    parts = [p for p in path.split("/") if p != ""]
    if len(parts) > MAX_PATH_DEPTH:
        raise BadName(f"paths are limited to {MAX_PATH_DEPTH} levels")
    return [check_name(p) for p in parts]


def join_path(parts: list[str]) -> str:
    return "/" + "/".join(parts)
