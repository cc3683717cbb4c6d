"""Size limits applied by the IMAP command reader *before* bytes are read.

Every limit is checked at the moment the size is announced (literal header) or the
moment a line grows past its cap, so a client can never make the server buffer more
than these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LITERAL_MINUS_MAX", "ImapLimits"]

# RFC 7888 §4: with LITERAL- a non-synchronising literal may be at most 4096 octets.
LITERAL_MINUS_MAX = 4096


@dataclass(frozen=True, slots=True)
class ImapLimits:
    #: Longest command line (text between literals), CRLF excluded.
    max_line: int = 64 * 1024
    #: Largest literal outside of APPEND message data.
    max_literal: int = 100 * 1024
    #: Largest APPEND message literal; advertise it as ``APPENDLIMIT=n`` (RFC 7889).
    max_append_literal: int = 50 * 1024 * 1024
    #: Sum of all lines and non-message literals of one command.
    max_command: int = 1024 * 1024
    #: Sum of all APPEND message literals of one (MULTIAPPEND) command.
    max_append_total: int = 200 * 1024 * 1024
    #: Most literals in one command.
    max_literals: int = 1000
    #: A rejected *non-synchronising* literal is still sent by the client; up to this
    #: many octets are counted out and dropped (never buffered).  Above it the
    #: reader gives up with a fatal error (the server answers ``* BYE`` and closes).
    max_discard: int = 64 * 1024 * 1024
    #: Largest LITERAL- non-synchronising literal (RFC 7888 §4).
    literal_minus_max: int = LITERAL_MINUS_MAX
    #: True when the server advertises LITERAL+ (any size of ``{n+}`` allowed up to
    #: the other limits); False means LITERAL- (``{n+}`` limited to 4096 octets).
    literal_plus: bool = True
    #: Most parenthesis nesting in a command (search keys, lists).
    max_depth: int = 64
    #: Accept NUL octets in a plain ``{n}`` APPEND message literal (RFC 9051 §4.3 wants ``~{n}``
    #: literal8 for them; Dovecot and real mail with stray NULs need the leniency).
    allow_nul_in_append: bool = False
