"""The message and envelope as the Sieve evaluator sees them: header fields (unfolded, RFC 2047
decoded, RFC 5228 §2.7.2), addresses, size and — only when a ``body`` test asks — the MIME parts."""

from __future__ import annotations

import email
import email.header
import email.utils
from dataclasses import dataclass, field
from email import policy


@dataclass(frozen=True, slots=True)
class Envelope:
    mail_from: str  # "" = null reverse-path
    rcpt_to: str  # the address this copy was delivered for (after alias expansion: the RCPT given)
    # account's own addresses (account + aliases), for vacation's "was it sent to me" check
    own_addresses: tuple[str, ...] = ()
    now: float | None = None  # POSIX time of delivery for currentdate (None: the clock)


def decode_header_value(value: str) -> str:
    """RFC 2047 encoded words → text; a malformed one stays as it is."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:
        return value


@dataclass(slots=True)
class MessageView:
    raw: bytes
    headers: list[tuple[str, str]]  # (lower-case name, unfolded raw value) in order
    body_offset: int
    _parsed: email.message.Message | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return len(self.raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> MessageView:
        end = raw.find(b"\r\n\r\n")
        sep = 4
        if end < 0:
            end2 = raw.find(b"\n\n")
            end, sep = (end2, 2) if end2 >= 0 else (len(raw), 0)
        head = raw[:end].decode("utf-8", "surrogateescape")
        headers: list[tuple[str, str]] = []
        for line in head.replace("\r\n", "\n").split("\n"):
            if not line:
                continue
            if line[0] in " \t" and headers:
                name, value = headers[-1]
                headers[-1] = (name, value + " " + line.strip())  # RFC 5322 §2.2.3 unfolding
                continue
            name, colon, value = line.partition(":")
            if colon and name and " " not in name.strip():
                headers.append((name.strip().lower(), value.strip()))
        return cls(raw, headers, min(end + sep, len(raw)))

    def header_values(self, name: str) -> list[str]:
        low = name.lower()
        return [decode_header_value(v) for n, v in self.headers if n == low]

    def has_header(self, name: str) -> bool:
        low = name.lower()
        return any(n == low for n, _ in self.headers)

    def first(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None

    def addresses(self, name: str) -> list[str]:
        out = []
        for _, addr in email.utils.getaddresses(self.header_values(name)):
            if addr:
                out.append(addr)
        return out

    @property
    def parsed(self) -> email.message.Message:
        if self._parsed is None:
            self._parsed = email.message_from_bytes(self.raw, policy=policy.compat32)
        return self._parsed

    def raw_body(self) -> str:
        return self.raw[self.body_offset :].decode("utf-8", "replace")

    def body_parts(self, types: tuple[str, ...]) -> list[str]:
        """Decoded content of the leaf parts whose type matches ``types`` (RFC 5173 §5.2: "" is every
        type, "text" a main type, "text/html" one type)."""
        out = []
        for part in self.parsed.walk():
            if part.is_multipart():
                continue
            ctype = part.get_content_type().lower()
            main = ctype.split("/", 1)[0]
            if not any(t == "" or t.lower() in (ctype, main) for t in types):
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                payload = b""
            if main == "text":
                charset = part.get_content_charset() or "us-ascii"
                try:
                    out.append(payload.decode(charset, "replace"))
                except LookupError:
                    out.append(payload.decode("utf-8", "replace"))
            else:
                out.append(payload.decode("latin-1"))
        return out
