"""Sans-I/O IMAP command parsing, one concept per module:

* :mod:`.reader` — framing of client bytes into command lines and literals, with every
  size (line, literal, APPEND message) checked when it is announced, before its data;
* :mod:`.lexer` — tokens of RFC 9051 §9 (atoms, strings, literals, numbers, sequence
  sets, dates) and the cursor the grammar reads them with;
* :mod:`.grammar` — one parser per command, producing typed commands.
"""

from __future__ import annotations

from .grammar import parse_command
from .lexer import parse_date, parse_date_time
from .reader import CommandReader

__all__ = ["CommandReader", "parse_command", "parse_date", "parse_date_time"]
