"""Sans-I/O HTTP pieces for downloads: Range (RFC 9110 §14), validators (§13), Content-Disposition
(RFC 6266 with RFC 8187 encoding). Strings in, typed values out; no sockets, no framework."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import quote

MAX_RANGES = 16


class Unsatisfiable(ValueError):
    """No range of the header overlaps the representation (answer 416, RFC 9110 §15.5.17)."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"  # RFC 9110 §14.4


def parse_range(header: str | None, size: int) -> list[ByteRange] | None:
    """Ranges to send, or None to send the whole representation.

    RFC 9110 §14.1.2: a syntactically invalid Range is ignored (None); a valid one whose every
    range is unsatisfiable raises Unsatisfiable; overlapping or too many ranges are served whole.
    """
    if header is None:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":  # RFC 9110 §14.2: unknown units are ignored
        return None
    out: list[ByteRange] = []
    parts = [p.strip() for p in spec.split(",")]
    if not parts or len(parts) > MAX_RANGES:
        return None
    for part in parts:
        first, dash, last = part.partition("-")
        if not dash:
            return None
        first, last = first.strip(), last.strip()
        if first == "":
            if not last.isdigit():
                return None
            n = int(last)  # suffix range, RFC 9110 §14.1.1
            if n == 0:
                continue
            out.append(ByteRange(max(0, size - n), size))
            continue
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        a = int(first)
        b = int(last) + 1 if last else size
        if last and int(last) < a:
            return None  # invalid range-spec: the whole header is ignored
        if a >= size:
            continue  # unsatisfiable part
        out.append(ByteRange(a, min(b, size)))
    if not out:
        raise Unsatisfiable(f"bytes */{size}")
    out.sort(key=lambda r: r.start)
    for x, y in itertools.pairwise(out):
        if y.start < x.end:
            return None  # overlapping ranges: serve the whole (RFC 9110 §14.1.2 allows it)
    return out


def _etags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def _weak_eq(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


def none_match(header: str | None, etag: str) -> bool:
    """True when If-None-Match matches (RFC 9110 §13.1.2: weak comparison; "*" matches)."""
    if header is None:
        return False
    tags = _etags(header)
    return "*" in tags or any(_weak_eq(t, etag) for t in tags)


def if_match_fails(header: str | None, etag: str) -> bool:
    """True when If-Match is present and does not match (strong comparison, §13.1.1) → 412."""
    if header is None:
        return False
    tags = _etags(header)
    return not ("*" in tags or any(t == etag and not t.startswith("W/") for t in tags))


def if_range_ok(header: str | None, etag: str, modified: float) -> bool:
    """RFC 9110 §13.1.5: apply Range only when the validator still matches (strong)."""
    if header is None:
        return True
    header = header.strip()
    if header.startswith(('"', "W/")):
        return header == etag
    try:
        return int(parsedate_to_datetime(header).timestamp()) >= int(modified)
    except (TypeError, ValueError):
        return False


def not_modified_since(header: str | None, modified: float) -> bool:
    if header is None:
        return False
    try:
        return int(modified) <= int(parsedate_to_datetime(header).timestamp())
    except (TypeError, ValueError):
        return False


def http_date(t: float) -> str:
    return formatdate(t, usegmt=True)


def content_disposition(name: str, *, inline: bool = False) -> str:
    """RFC 6266 §4.3: an ASCII ``filename`` fallback plus ``filename*`` in UTF-8 (RFC 8187)."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\%;' else "_" for c in name) or "download"
    return f"{'inline' if inline else 'attachment'}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
