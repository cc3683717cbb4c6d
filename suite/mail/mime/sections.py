"""BODY[section] extraction (RFC 9051 §6.4.5) over raw bytes + a parsed structure."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import SectionError
from .structure import MessageStructure, Part, iter_headers

KINDS = (None, "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "MIME", "TEXT")


@dataclass(frozen=True)
class SectionSpec:
    """section-spec of RFC 9051 §6.4.5: part path plus an optional text part."""

    path: tuple[int, ...] = ()
    kind: str | None = None  # one of KINDS
    fields: tuple[bytes, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SectionError(f"bad section kind {self.kind!r}")
        if self.kind == "MIME" and not self.path:
            # RFC 9051 §6.4.5: MIME must be prefixed by a part number
            raise SectionError("MIME needs a part number")
        if any(n < 1 for n in self.path):
            raise SectionError("part numbers start at 1")


def _resolve(structure: MessageStructure, path: tuple[int, ...]) -> Part:
    p = structure.part(path)
    if p is None:
        raise SectionError("no such part")
    return p


def _message_of(p: Part, path: tuple[int, ...]) -> Part:
    """The message whose HEADER/TEXT a section names: the top-level message for
    an empty path, the encapsulated message for a message/rfc822 part."""
    if not path:
        return p
    if p.is_message and p.children:
        return p.children[0]
    # Not message/rfc822: answer with the part itself (lenient, as Dovecot does)
    return p


def header_fields(raw: bytes, p: Part, names: tuple[bytes, ...], negate: bool) -> bytes:
    """HEADER.FIELDS / HEADER.FIELDS.NOT: matching fields in original order,
    followed by the blank line (RFC 9051 §6.4.5)."""
    wanted = {n.lower() for n in names}
    out = bytearray()
    for h in iter_headers(raw, p.hdr_start, p.body_start):
        if (h.name.lower() in wanted) != negate:
            chunk = raw[h.start : h.end]
            out += chunk
            if not chunk.endswith(b"\n"):
                out += b"\r\n"
    out += b"\r\n"
    return bytes(out)


def section(raw: bytes, structure: MessageStructure, spec: SectionSpec) -> bytes:
    """Bytes of BODY[spec] (without any <partial>)."""
    p = _resolve(structure, spec.path)
    kind = spec.kind
    if kind is None:
        if not spec.path:
            return raw
        # RFC 9051 §6.4.5: a part's content, no MIME header; for a
        # non-multipart message BODY[1] is the message body
        return raw[p.body_start : p.body_end]
    if kind == "MIME":
        # the MIME header of the part; for a non-multipart message part 1
        # is the message itself, so this is the message header (Dovecot)
        return raw[p.hdr_start : p.body_start]
    m = _message_of(p, spec.path)
    if kind == "HEADER":
        return raw[m.hdr_start : m.body_start]
    if kind == "TEXT":
        return raw[m.body_start : m.body_end]
    return header_fields(raw, m, spec.fields, negate=(kind == "HEADER.FIELDS.NOT"))


def partial(data: bytes, start: int, length: int | None = None) -> bytes:
    """RFC 9051 §6.4.5 <start.length>: substring, empty when start is past the end."""
    if start >= len(data):
        return b""
    return data[start:] if length is None else data[start : start + length]
