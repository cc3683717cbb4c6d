"""The Dovecot-recorded mail corpus (tests/data/mail) for the differential tests, and the known differences.

Each ``<name>.json`` holds the exchanges Dovecot 2.3 answered for ``<name>.eml`` (see
tests/data/mail/README.md). The cases are built at collection: an exchange Dovecot could not record
("no usable subject in message", …) is not generated at all, and every known difference is a case
marked ``xfail(strict=True)`` with its reason, so an unexpected pass fails and the checks of every
other case still run. When the corpus is absent, one case goes through ``suite.testing.missing``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import Any

import pytest

from suite.testing import MAIL_CORPUS, mail_corpus, mail_corpus_names

NAMES = mail_corpus_names()
_TAGGED = re.compile(r"A\d+ ")

# --- BINARY.SIZE[1] (RFC 3516 §4.2) answers we deliberately do not reproduce ----------------------
_MULTI = (
    "part 1 is multipart: Dovecot's binary converter decodes the nested parts (base64 / quoted-printable "
    "bodies to binary, their Content-Transfer-Encoding headers rewritten), so its size is smaller; we return "
    "part 1's bytes as they are (RFC 3516 §4.2 defines no conversion inside a multipart)"
)
_WHOLE = (
    "Dovecot decodes every part of the message for BINARY.SIZE[1] and answers NO [PARSE]/[UNKNOWN-CTE] "
    "for another part's bad or unknown encoding; RFC 3516 §4.2 concerns only part 1, which decodes"
)
_BYE = (
    "Dovecot disconnects with 'BYE FETCH failed: Internal error' (imap_fetch_failure=disconnect-immediately) "
    "on another part's bad encoding instead of answering; we answer from part 1 alone (RFC 3516 §4.2)"
)
_UNDERFLOW = "Dovecot reports a wrapped-around negative size (2^64 - n); ours is the decoded size"
_RFC822_B64 = (
    "the message is message/rfc822 with Content-Transfer-Encoding base64 (RFC 2046 §5.2.1 allows only "
    "7bit/8bit/binary there); Dovecot reports 0 for part 1, we return the part's body as it is"
)
BINARY = {
    "cpython-msg_15": _WHOLE,
    "cpython-msg_39": (
        "part 1 is multipart and its nested parts' base64 is broken: Dovecot's converter (which decodes nested "
        "parts, see the multipart reason) fails and disconnects with 'BYE FETCH failed: Internal error'; we "
        "answer with part 1's bytes as they are (RFC 3516 §4.2)"
    ),
    "enmime-low-quality-html-only-inline": _MULTI,
    "enmime-mail-html-only-inline": _MULTI,
    "enmime-mail-mime-bad-content-type": _BYE,
    "enmime-mail-other-multi-related": _MULTI,
    "flanker-bounce-office365": _MULTI,
    "flanker-enclosed-broken-body": _WHOLE,
    "flanker-torture": _BYE,
    "james-attachment-filename-in-content-type": _MULTI,
    "james-attachments-filename-in-content-type": _MULTI,
    "james-invalid": _BYE,
    "james-invitationEmailFromOP": _MULTI,
    "james-related_in_alternative_multipart": _MULTI,
    "james-signedMessage": _MULTI,
    "james-yahooInvitation": _MULTI,
    "mailcore-5229-cyrillic-asian": _UNDERFLOW,
    "mikel-attachment-attachment_message_rfc822_inline_image": _MULTI,
    "mikel-error-content_transfer_encoding_x_uuencode": _WHOLE,
    "mikel-error-empty_group_lists": (
        "part 1 (text/plain, quoted-printable, 2177 bytes, 50 lines in both BODYSTRUCTUREs) decodes to 2107 "
        "bytes (Python's quopri agrees); Dovecot reports 1830 — cause not found"
    ),
    "mime4j-bad-newlines-multiple-parts-base64": _RFC822_B64,
    "mime4j-base64encoded-rfc822message": _RFC822_B64,
    "mimekit-smime-thunderbird-signed": _MULTI,
    "mimekit-tnef-rich-text": _UNDERFLOW,
    "nodemailer-nested": _MULTI,
    "nodemailer-nodemailer": _MULTI,
    "phpmime-issue115": _MULTI,
    "phpmime-issue116": _MULTI,
    "phpmime-issue212": _MULTI,
    "phpmime-m0008": _MULTI,
    "phpmime-m0018": _BYE,
    "phpmime-m0025": _MULTI,
    "stalwart-malformed-020": _MULTI,
    "stalwart-rfc-000": _WHOLE,
    "stalwart-thirdparty-002": _WHOLE,
}
# --- other exchanges: (message, exchange id) -> reason ------------------------------------------------
SECTION = {
    ("cpython-msg_47", "fetch_part1_mime"): (
        "MIME header ending in a colon-less line: Dovecot's header filter drops the blank line; "
        "RFC 9051 §6.4.5 MIME is the part's header including the blank line"
    ),
}
SEARCH = {
    ("mailcore-2765-korean", "search_subject"): (
        "Subject is RFC 2047 in ks_c_5601-1987 (an alias of EUC-KR/CP949); Dovecot's iconv does not "
        "know the name and fails to match, we decode it (RFC 2047 §4)"
    ),
}


@functools.cache
def load(name: str) -> tuple[dict[str, Any], bytes, dict[str, dict[str, Any]]]:
    """(recording, message bytes, exchanges by id)."""
    corpus = mail_corpus()
    d = json.loads((corpus / f"{name}.json").read_text())
    raw = (corpus / f"{name}.eml").read_bytes()
    assert len(raw) == d["size"]
    return d, raw, {e["id"]: e for e in d["exchanges"]}


def untagged(ex: dict[str, Any]) -> bytes:
    """The untagged response bytes (lines + literals), tagged status, continuations and BYE excluded."""
    out = bytearray()
    for seg in ex["response"]:
        data = seg["data"]
        if seg["type"] == "line" and (_TAGGED.match(data) or data.startswith(("* BYE", "+ "))):
            continue
        out += data.encode("latin-1")
    return bytes(out)


def messages(known: dict[str, str] | None = None) -> list[Any]:
    """``pytest.param(name)`` per message, the ``known`` differences marked xfail(strict=True)."""
    if not NAMES:
        return [pytest.param(None, id="corpus-missing")]
    known = known or {}
    return [
        pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=known[name])] if name in known else [], id=name)
        for name in NAMES
    ]


def cases(xids: Iterable[str], known: dict[tuple[str, str], str]) -> list[Any]:
    """``pytest.param(name, xid)`` for every recorded exchange ``xid`` of every message; the known
    differences marked xfail(strict=True) with their reason; unrecorded exchanges left out."""
    if not NAMES:  # one case that reports the missing corpus (never an empty parameter set)
        return [pytest.param(None, None, id="corpus-missing")]
    out = []
    for name in NAMES:
        exs = load(name)[2]
        for xid in xids:
            ex = exs.get(xid)
            if ex is None or ex.get("skipped"):
                continue
            reason = known.get((name, xid))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(name, xid, marks=marks, id=f"{name}-{xid}"))
    return out


def known_differences() -> dict[tuple[str, str], str]:
    """Every known difference by (message, exchange id), as the IMAP server answers them."""
    out = {(name, "fetch_structure"): reason for name, reason in BINARY.items()}
    out.update(SECTION)
    out.update(SEARCH)
    return out


__all__ = [
    "BINARY",
    "MAIL_CORPUS",
    "NAMES",
    "SEARCH",
    "SECTION",
    "cases",
    "known_differences",
    "load",
    "messages",
    "untagged",
]
