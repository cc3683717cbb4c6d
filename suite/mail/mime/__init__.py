"""MIME structure for IMAP: ENVELOPE, BODYSTRUCTURE, BODY[...] sections, BINARY, search text.

Pure functions over bytes (sans-I/O).  Parse once with `parse_structure`, cache
`MessageStructure.to_json()`, and answer FETCH/SEARCH from the cached tree plus
the raw message bytes.
"""

from .bodystructure import bodystructure
from .envelope import envelope
from .errors import MimeError, MimeParseError, SectionError, UnknownCteError
from .structure import MessageStructure, Part, parse_structure

__all__ = [
    "MimeError",
    "MimeParseError",
    "SectionError",
    "UnknownCteError",
    "MessageStructure",
    "Part",
    "parse_structure",
    "envelope",
    "bodystructure",
]

from .decode import binary
from .searchtext import SearchText, search_text
from .sections import SectionSpec, partial, section

__all__ += ["binary", "SectionSpec", "partial", "section", "SearchText", "search_text"]
