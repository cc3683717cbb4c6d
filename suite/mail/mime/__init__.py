"""MIME structure for IMAP: ENVELOPE, BODYSTRUCTURE, BODY[...] sections, BINARY, search text.

Pure functions over bytes (sans-I/O).  Parse once with `parse_structure`, cache
`MessageStructure.to_json()`, and answer FETCH/SEARCH from the cached tree plus
the raw message bytes.
"""
from .errors import MimeError, MimeParseError, SectionError, UnknownCteError
from .structure import MessageStructure, Part, parse_structure
from .envelope import envelope
from .bodystructure import bodystructure

__all__ = [
    "MimeError", "MimeParseError", "SectionError", "UnknownCteError",
    "MessageStructure", "Part", "parse_structure", "envelope", "bodystructure",
]

from .decode import binary  # noqa: E402
from .sections import SectionSpec, partial, section  # noqa: E402
from .searchtext import SearchText, search_text  # noqa: E402

__all__ += ["binary", "SectionSpec", "partial", "section", "SearchText", "search_text"]
