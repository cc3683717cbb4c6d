"""Typed errors carrying the IMAP response code (RFC 3516 §4.3, RFC 5530)."""

from __future__ import annotations


class MimeError(Exception):
    """Base class: every error this package raises carries an IMAP response code."""

    code: str = "PARSE"

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        if code is not None:
            self.code = code
        self.text = text


class UnknownCteError(MimeError):
    """RFC 3516 §4.3: the Content-Transfer-Encoding is not known -> NO [UNKNOWN-CTE]."""

    code = "UNKNOWN-CTE"

    def __init__(self, text: str = "Unknown Content-Transfer-Encoding") -> None:
        super().__init__(text)


class MimeParseError(MimeError):
    """Invalid encoded data in a MIME part -> NO [PARSE] (RFC 5530 §3)."""

    code = "PARSE"

    def __init__(self, text: str = "Invalid data in MIME part") -> None:
        super().__init__(text)


class SectionError(MimeError):
    """A section spec that does not name an existing part / is malformed."""

    code = "PARSE"
