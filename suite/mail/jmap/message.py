"""An Email's header and body properties (RFC 8621 §4.1.2–4.1.4) from the raw message and its
cached MIME structure (``suite.mail.mime``). Pure functions: bytes in, JSON values out."""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from suite.mail.mime import MessageStructure, Part
from suite.mail.mime.address import parse_addresses
from suite.mail.mime.decode import decode_part
from suite.mail.mime.errors import MimeError
from suite.mail.mime.searchtext import _charset_decode, decode_header_value
from suite.mail.mime.structure import Header, iter_headers

FORMS = {"asRaw", "asText", "asAddresses", "asGroupedAddresses", "asMessageIds", "asDate", "asURLs"}
# RFC 8621 §4.1.2: the forms each header field may be asked in (others: asRaw and asText only apply)
ADDRESS_FIELDS = {
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "resent-from",
    "resent-sender",
    "resent-reply-to",
    "resent-to",
    "resent-cc",
    "resent-bcc",
}
MSGID_FIELDS = {"message-id", "in-reply-to", "references", "resent-message-id"}
DATE_FIELDS = {"date", "resent-date"}
URL_FIELDS = {"list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive"}
TEXT_FIELDS = {"subject", "comments", "keywords", "list-id"}


def allowed_form(name: str, form: str) -> bool:
    """RFC 8621 §4.1.2: a parsed form "MUST only be used on" its fields or on fields RFC 5322 and
    RFC 2369 do not define."""
    n = name.lower()
    if form == "asRaw":
        return True
    if form == "asText":
        return True  # §4.1.2.3 recommends it for some fields but allows it on every one
    if form in ("asAddresses", "asGroupedAddresses"):
        return n in ADDRESS_FIELDS or n not in MSGID_FIELDS | DATE_FIELDS | URL_FIELDS | TEXT_FIELDS
    if form == "asMessageIds":
        return n in MSGID_FIELDS or n not in ADDRESS_FIELDS | DATE_FIELDS | URL_FIELDS | TEXT_FIELDS
    if form == "asDate":
        return n in DATE_FIELDS or n not in ADDRESS_FIELDS | MSGID_FIELDS | URL_FIELDS | TEXT_FIELDS
    if form == "asURLs":
        return n in URL_FIELDS or n not in ADDRESS_FIELDS | MSGID_FIELDS | DATE_FIELDS | TEXT_FIELDS
    return False


@dataclass(frozen=True)
class HeaderProp:
    name: str
    form: str
    all: bool


def parse_header_prop(prop: str) -> HeaderProp | None:
    """``header:{name}[:as{Form}][:all]`` (RFC 8621 §4.1.3), or None when malformed."""
    if not prop.startswith("header:"):
        return None
    parts = prop.split(":")[1:]
    if not parts or not parts[0] or any(ord(c) <= 32 or ord(c) > 126 for c in parts[0]):
        return None
    name, form, all_ = parts[0], "asRaw", False
    rest = parts[1:]
    if rest and rest[-1] == "all":
        all_ = True
        rest = rest[:-1]
    if rest:
        if len(rest) > 1 or rest[0] not in FORMS:
            return None
        form = rest[0]
    if not allowed_form(name, form):
        return None
    return HeaderProp(name, form, all_)


# ------------------------------------------------------------------ parsed forms (§4.1.2)
def raw_value(raw: bytes, h: Header) -> str:
    """asRaw: the octets after the colon up to (not including) the final CRLF."""
    field = raw[h.start : h.end]
    colon = field.find(b":")
    value = field[colon + 1 :] if colon >= 0 else b""
    if value.endswith(b"\r\n"):
        value = value[:-2]
    elif value.endswith(b"\n"):
        value = value[:-1]
    return value.decode("utf-8", "replace")


def as_text(raw: bytes, h: Header) -> str:
    # §4.1.2.2: unfolded, RFC 2047 decoded, leading/trailing whitespace removed
    value = raw_value(raw, h).replace("\r\n", "").replace("\n", "")
    return decode_header_value(value.encode("utf-8", "surrogateescape")).strip()


def _addr_json(a) -> dict[str, Any]:
    mailbox = (a.mailbox or b"").decode("utf-8", "replace")
    domain = (a.domain or b"").decode("utf-8", "replace")
    addr = f"{mailbox}@{domain}" if domain else mailbox
    name = decode_header_value(a.name).strip() if a.name else None
    return {"name": name or None, "email": addr}


def as_grouped(raw: bytes, h: Header) -> list[dict[str, Any]]:
    """§4.1.2.4: [{name: group name or null, addresses: [...]}]; consecutive addresses outside any
    group share one null-named entry."""
    groups: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None  # the open group
    loose: dict[str, Any] | None = None  # the null-named entry being filled
    for a in parse_addresses(h.value, fill_missing=False):
        if a.name is None and a.mailbox is None and a.domain is None:
            current = None  # group end
            continue
        if a.domain is None:  # group start: its phrase is in ``mailbox``
            current = {"name": decode_header_value(a.mailbox or b"").strip() or None, "addresses": []}
            groups.append(current)
            loose = None
            continue
        if current is not None:
            current["addresses"].append(_addr_json(a))
            continue
        if loose is None:
            loose = {"name": None, "addresses": []}
            groups.append(loose)
        loose["addresses"].append(_addr_json(a))
    return groups


def as_addresses(raw: bytes, h: Header) -> list[dict[str, Any]]:
    return [a for g in as_grouped(raw, h) for a in g["addresses"]]


_MSGID = re.compile(r"<([^<>\s]+)>")


def as_message_ids(raw: bytes, h: Header) -> list[str] | None:
    ids = _MSGID.findall(h.value.decode("utf-8", "replace"))
    return ids or None


def as_date(raw: bytes, h: Header) -> str | None:
    try:
        dt = email.utils.parsedate_to_datetime(decode_header_value(h.value).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return utc_date(dt)


def utc_date(dt: datetime) -> str:
    """RFC 3339 with the original offset kept (RFC 8621 §4.1.2.6 Date)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    text = dt.isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


def as_urls(raw: bytes, h: Header) -> list[str] | None:
    # RFC 2369 list header fields: <url>, <url>
    urls = re.findall(r"<([^<>]+)>", h.value.decode("utf-8", "replace"))
    return [u.strip() for u in urls] or None


CONVERT = {
    "asRaw": raw_value,
    "asText": as_text,
    "asAddresses": as_addresses,
    "asGroupedAddresses": as_grouped,
    "asMessageIds": as_message_ids,
    "asDate": as_date,
    "asURLs": as_urls,
}


def header_value(raw: bytes, headers: list[Header], hp: HeaderProp) -> Any:
    matching = [h for h in headers if h.name.decode("latin-1").lower() == hp.name.lower()]
    fn = CONVERT[hp.form]
    if hp.all:
        return [fn(raw, h) for h in matching]
    if not matching:
        return None
    return fn(raw, matching[-1])  # §4.1.3: the last instance of the field


def headers_list(raw: bytes, headers: list[Header]) -> list[dict[str, str]]:
    return [{"name": h.name.decode("utf-8", "replace"), "value": raw_value(raw, h)} for h in headers]


# ------------------------------------------------------------------ convenience properties (§4.1.2)
CONVENIENCE = {
    "messageId": HeaderProp("Message-ID", "asMessageIds", False),
    "inReplyTo": HeaderProp("In-Reply-To", "asMessageIds", False),
    "references": HeaderProp("References", "asMessageIds", False),
    "sender": HeaderProp("Sender", "asAddresses", False),
    "from": HeaderProp("From", "asAddresses", False),
    "to": HeaderProp("To", "asAddresses", False),
    "cc": HeaderProp("Cc", "asAddresses", False),
    "bcc": HeaderProp("Bcc", "asAddresses", False),
    "replyTo": HeaderProp("Reply-To", "asAddresses", False),
    "subject": HeaderProp("Subject", "asText", False),
    "sentAt": HeaderProp("Date", "asDate", False),
}


# ------------------------------------------------------------------ body parts (§4.1.4)
BODY_PROPERTIES = ["partId", "blobId", "size", "name", "type", "charset", "disposition", "cid", "language", "location"]
ALL_BODY_PROPERTIES = set(BODY_PROPERTIES) | {"headers", "subParts"}


@dataclass
class BodyPart:
    part_id: str | None
    path: tuple[int, ...]
    part: Part
    type: str
    charset: str | None
    name: str | None
    disposition: str | None
    sub: list[BodyPart]

    def is_multipart(self) -> bool:
        return self.type.startswith("multipart/")


def _b(v: bytes | None) -> str | None:
    return v.decode("utf-8", "replace") if v is not None else None


def _param(params: list[tuple[bytes, bytes]] | None, name: bytes) -> bytes | None:
    for k, v in params or []:
        if k.lower() == name:
            return v
    return None


def _filename(raw: bytes, p: Part) -> str | None:
    value = _param(p.disp_params, b"filename") or _param(p.params, b"name")
    if value is None:
        return None
    return decode_header_value(value).strip() or None


def body_tree(raw: bytes, st: MessageStructure) -> BodyPart:
    def build(p: Part, path: tuple[int, ...], top: bool) -> BodyPart:
        if p.ctype is None and p.is_message:
            # RFC 2046 §5.1.5: a part of a multipart/digest is message/rfc822 by default
            ctype, sub = "message", "rfc822"
        else:
            ctype = (_b(p.ctype) or "text").lower()
            sub = (_b(p.subtype) or "plain").lower()
        typ = f"{ctype}/{sub}"
        charset = _b(_param(p.params, b"charset"))
        if charset is None and ctype == "text":
            charset = "us-ascii"
        children: list[BodyPart] = []
        if p.is_multipart:
            children = [build(c, path + (i + 1,), False) for i, c in enumerate(p.children)]
            charset = None
        part_id = None if p.is_multipart else ".".join(str(n) for n in (path or (1,)))
        return BodyPart(
            part_id,
            path or (1,) if not p.is_multipart else path,
            p,
            typ,
            charset,
            _filename(raw, p),
            (_b(p.disposition) or "").lower() or None,
            children,
        )

    return build(st.root, (), True)


def leaf_content(raw: bytes, bp: BodyPart) -> bytes:
    try:
        return decode_part(raw, bp.part)
    except MimeError:
        return raw[bp.part.body_start : bp.part.body_end]


def body_part_json(raw: bytes, bp: BodyPart, props: list[str], email_id: int, blob_id_of) -> dict[str, Any]:
    out: dict[str, Any] = {}
    p = bp.part
    for prop in props:
        if prop == "partId":
            out[prop] = bp.part_id
        elif prop == "blobId":
            out[prop] = None if bp.is_multipart() else blob_id_of(email_id, bp.path)
        elif prop == "size":
            out[prop] = 0 if bp.is_multipart() else len(leaf_content(raw, bp))
        elif prop == "headers":
            out[prop] = headers_list(raw, iter_headers(raw, p.hdr_start, p.body_start))
        elif prop == "name":
            out[prop] = bp.name
        elif prop == "type":
            out[prop] = bp.type
        elif prop == "charset":
            out[prop] = bp.charset
        elif prop == "disposition":
            out[prop] = bp.disposition
        elif prop == "cid":
            cid = _b(p.cid)
            out[prop] = cid.strip().strip("<>") if cid else None
        elif prop == "language":
            out[prop] = [x.decode("utf-8", "replace") for x in p.language] if p.language else None
        elif prop == "location":
            out[prop] = _b(p.location)
        elif prop == "subParts":
            out[prop] = (
                [body_part_json(raw, c, props, email_id, blob_id_of) for c in bp.sub] if bp.is_multipart() else None
            )
        elif prop.startswith("header:"):
            hp = parse_header_prop(prop)
            if hp is not None:
                out[prop] = header_value(raw, iter_headers(raw, p.hdr_start, p.body_start), hp)
    return out


def _inline_media(t: str) -> bool:
    return t.startswith(("image/", "audio/", "video/"))


def classify(root: BodyPart) -> tuple[list[BodyPart], list[BodyPart], list[BodyPart]]:
    """textBody, htmlBody, attachments: the algorithm of RFC 8621 §4.1.4, step by step."""
    text_body: list[BodyPart] = []
    html_body: list[BodyPart] = []
    attachments: list[BodyPart] = []

    def parse(parts: list[BodyPart], multipart_type: str, in_alt: bool, html: list | None, text: list | None) -> None:
        text_len = len(text) if text is not None else -1
        html_len = len(html) if html is not None else -1
        for i, part in enumerate(parts):
            is_multi = part.is_multipart()
            is_inline = (
                part.disposition != "attachment"
                and (part.type in ("text/plain", "text/html") or _inline_media(part.type))
                and (i == 0 or (multipart_type != "related" and (_inline_media(part.type) or not part.name)))
            )
            if is_multi:
                sub = part.type.split("/", 1)[1]
                parse(part.sub, sub, in_alt or sub == "alternative", html, text)
            elif is_inline:
                if multipart_type == "alternative":
                    if part.type == "text/plain" and text is not None:
                        text.append(part)
                    elif part.type == "text/html" and html is not None:
                        html.append(part)
                    else:
                        attachments.append(part)
                    continue
                elif in_alt:
                    if part.type == "text/plain":
                        html = None
                    if part.type == "text/html":
                        text = None
                if text is not None:
                    text.append(part)
                if html is not None:
                    html.append(part)
                if (text is None or html is None) and _inline_media(part.type):
                    attachments.append(part)
            else:
                attachments.append(part)
        if multipart_type == "alternative" and text is not None and html is not None:
            if text_len == len(text) and html_len != len(html):
                text.extend(html[html_len:])
            if html_len == len(html) and text_len != len(text):
                html.extend(text[text_len:])

    if root.is_multipart():
        parse(root.sub, root.type.split("/", 1)[1], root.type == "multipart/alternative", html_body, text_body)
    else:
        parse([root], "mixed", False, html_body, text_body)
    return text_body, html_body, attachments


def _decoded(raw: bytes, bp: BodyPart) -> tuple[str, bool]:
    """:func:`text_of` with the CRLFs as sent."""
    problem = False
    try:
        data = decode_part(raw, bp.part)
    except MimeError:
        data = raw[bp.part.body_start : bp.part.body_end]
        problem = True
    charset = bp.charset
    try:
        text = data.decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError):
        text = _charset_decode(data, charset)
        problem = True
    return text, problem


def text_of(raw: bytes, bp: BodyPart) -> tuple[str, bool]:
    """Decoded text of a part and whether decoding had a problem (RFC 8621 §4.1.4 bodyValues)."""
    text, problem = _decoded(raw, bp)
    return text.replace("\r\n", "\n"), problem


def truncate_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    data = text.encode("utf-8")
    if max_bytes <= 0 or len(data) <= max_bytes:
        return text, False
    return data[:max_bytes].decode("utf-8", "ignore"), True


_TAGS = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.S | re.I)


def html_to_text(html: str) -> str:
    import html as htmllib

    return htmllib.unescape(_TAGS.sub(" ", html))


PREVIEW_CHARS = 256  # RFC 8621 §4.1.4: "at most 256 characters"


def collapsed_head(text: str, n: int = PREVIEW_CHARS) -> str:
    """``" ".join(text.split())[:n]`` without splitting all of ``text``: a message's first
    characters decide its preview, so a 1 MB body costs a few KB of splitting instead of a list of
    every word in it. A window's last word may go on past the window, so it only counts once the
    window ends in whitespace; the window grows until ``n`` characters are certain."""
    size = 4 * n
    while True:
        head = text[:size]
        words = head.split()
        if size >= len(text):
            return " ".join(words)[:n]
        if words and not head[-1].isspace():
            words.pop()  # may be cut: the rest of it lies beyond the window
        out = " ".join(words)
        if len(out) >= n:
            return out[:n]
        size *= 4


def preview(raw: bytes, text_body: list[BodyPart], html_body: list[BodyPart]) -> str:
    """RFC 8621 §4.1.4 preview: up to 256 characters of plain text, whitespace collapsed."""
    for bp in text_body or html_body:
        if bp.type == "text/plain":
            t = _decoded(raw, bp)[0]  # CRLF or LF: both whitespace, both collapse to one space
        elif bp.type == "text/html":
            t = html_to_text(text_of(raw, bp)[0])
        else:
            continue
        t = collapsed_head(t)
        if t:
            return t
    return ""


def find_part(root: BodyPart, path: tuple[int, ...]) -> BodyPart | None:
    def walk(bp: BodyPart) -> BodyPart | None:
        if not bp.is_multipart() and bp.path == path:
            return bp
        for c in bp.sub:
            r = walk(c)
            if r is not None:
                return r
        return None

    return walk(root)


# ------------------------------------------------------------------ list facts (cached per Email)
# The properties a message list asks for that come from the message itself: computed once when the
# message is stored (``emails.list_facts``) so that Email/get of a list page reads no blob.
LIST_FACTS = (*CONVENIENCE, "preview")


def list_facts(raw: bytes, st: MessageStructure) -> dict[str, Any]:
    """The LIST_FACTS values of one message, exactly as Email/get renders them from the blob."""
    headers = iter_headers(raw, st.root.hdr_start, st.root.body_start)
    text_body, html_body, _ = classify(body_tree(raw, st))
    out: dict[str, Any] = {p: header_value(raw, headers, hp) for p, hp in CONVENIENCE.items()}
    out["preview"] = preview(raw, text_body, html_body)
    return out
