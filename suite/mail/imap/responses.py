"""IMAP response encoder: Python values → wire bytes.  Pure functions, no I/O.

Value model for :func:`encode` (RFC 9051 §4 data formats):

* ``None`` → ``NIL``
* ``int`` → number
* :class:`Atom` (a ``str`` subclass) → written as is (flags, keywords, ``EXISTS`` …)
* ``str`` / ``bytes`` / ``bytearray`` / ``memoryview`` → string: quoted when safe,
  otherwise a ``{n}`` literal (:func:`string`)
* :class:`Literal` → always ``{n}`` literal; :class:`Literal8` → ``~{n}`` (RFC 3516)
* :class:`Raw` → bytes written verbatim
* ``list`` / ``tuple`` → parenthesised list
* :class:`datetime.datetime` → quoted ``date-time``
* :class:`~suite.mail.imap.commands.SequenceSet` → its text form

Large bodies are not copied: :func:`encode_into` and the ``*_chunks`` helpers return
lists of byte chunks (literal data included by reference) for ``writelines``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence

from .commands import FetchAttr, SequenceSet

__all__ = [
    "Atom",
    "Literal",
    "Literal8",
    "Raw",
    "astring",
    "bye",
    "capability",
    "continuation",
    "date_time",
    "encode",
    "encode_into",
    "envelope",
    "esearch_response",
    "fetch_response",
    "fetch_response_chunks",
    "flag_list",
    "list_response",
    "literal",
    "nstring",
    "quoted",
    "response_code",
    "search_response",
    "seqset",
    "status_response",
    "string",
    "tagged",
    "untagged",
    "untagged_status",
    "vanished",
]

CRLF = b"\r\n"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# RFC 9051 §9 ATOM-CHAR / ASTRING-CHAR for the atom fast path
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x21)) | frozenset(range(0x7F, 0x100))
_ASTRING_SPECIALS = _ATOM_SPECIALS - {ord("]")}
#: Quoted strings longer than this are sent as literals (readability of logs, and
#: clients cope better with big literals than with huge quoted lines).
MAX_QUOTED = 1024


class Atom(str):
    """A string written as is (must already be a valid atom/flag/keyword)."""

    __slots__ = ()


class Raw(bytes):
    """Bytes written verbatim (pre-encoded response fragments)."""

    __slots__ = ()


class Literal:
    """Force a ``{n}`` literal for ``data`` (kept by reference, not copied)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = data


class Literal8(Literal):
    """``~{n}`` literal8 for BINARY data that may contain NUL (RFC 3516 §4.3)."""

    __slots__ = ()


def _as_bytes(s: str | bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    return s.encode("utf-8") if isinstance(s, str) else s


def quotable(data: bytes | bytearray | memoryview, utf8: bool = False) -> bool:
    """True when ``data`` may be sent as a quoted string (RFC 9051 §4.3)."""
    b = bytes(data)
    if len(b) > MAX_QUOTED or b"\r" in b or b"\n" in b or b"\0" in b:
        return False
    if b.isascii():
        return True
    if not utf8:
        return False
    try:
        b.decode("utf-8")  # RFC 9051 §4.3 / RFC 6855: UTF-8 allowed in quoted
    except UnicodeDecodeError:
        return False
    return True


def quoted(s: str | bytes) -> bytes:
    """``"..."`` with ``\\`` and ``"`` escaped; the caller guarantees no CR/LF/NUL."""
    b = bytes(_as_bytes(s))
    return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(data: str | bytes | bytearray | memoryview, binary: bool = False) -> bytes:
    """``{n}\\r\\n`` + data (``~{n}`` when ``binary``), RFC 9051 §4.3 / RFC 3516."""
    b = _as_bytes(data)
    return (b"~{" if binary else b"{") + str(len(b)).encode() + b"}\r\n" + bytes(b)


def string(s: str | bytes | bytearray | memoryview, utf8: bool = False) -> bytes:
    """Quoted when possible, otherwise a literal (CR, LF, 8-bit without UTF-8, long).

    NUL is not valid in any IMAP string (RFC 9051 §4.3); data with NUL is sent as a
    plain literal, which is what mainstream servers do for BODY[]; use
    :class:`Literal8` where BINARY allows it."""
    b = _as_bytes(s)
    return quoted(bytes(b)) if quotable(b, utf8) else literal(b)


def astring(s: str | bytes, utf8: bool = False) -> bytes:
    """Atom when every octet is an ASTRING-CHAR, else :func:`string`."""
    b = bytes(_as_bytes(s))
    if b and not any(c in _ASTRING_SPECIALS for c in b) and b.upper() != b"NIL":
        return b
    return string(b, utf8)


def nstring(s: str | bytes | None, utf8: bool = False) -> bytes:
    return b"NIL" if s is None else string(s, utf8)


def date_time(dt: _dt.datetime) -> bytes:
    """RFC 9051 §9 date-time: ``"dd-Mon-yyyy hh:mm:ss +zzzz"`` (day padded with SP)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.UTC)
    off = dt.utcoffset() or _dt.timedelta(0)
    mins = int(off.total_seconds() // 60)
    sign = "-" if mins < 0 else "+"
    mins = abs(mins)
    s = (
        f'"{dt.day:2d}-{_MONTHS[dt.month - 1]}-{dt.year:04d} '
        f'{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {sign}{mins // 60:02d}{mins % 60:02d}"'
    )
    return s.encode("ascii")


def seqset(numbers: Iterable[int]) -> bytes:
    """Compress numbers into a sequence set: ``[1,2,3,5]`` → ``1:3,5`` (for UIDPLUS,
    ESEARCH ALL, VANISHED).  Empty input gives ``b""``."""
    nums = sorted(set(numbers))
    parts: list[str] = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else f"{nums[i]}:{nums[j]}")
        i = j + 1
    return ",".join(parts).encode("ascii")


def encode_into(value: object, out: list, utf8: bool = False) -> None:
    """Append the encoding of ``value`` to ``out`` as chunks (no copy of literal data)."""
    if value is None:
        out.append(b"NIL")
    elif isinstance(value, Atom):
        out.append(value.encode("utf-8"))
    elif isinstance(value, Raw):
        out.append(bytes(value))
    elif isinstance(value, bool):
        raise TypeError("bool is not an IMAP value")
    elif isinstance(value, int):
        out.append(str(value).encode("ascii"))
    elif isinstance(value, Literal):
        data = _as_bytes(value.data)
        head = b"~{" if isinstance(value, Literal8) else b"{"
        out.append(head + str(len(data)).encode() + b"}\r\n")
        out.append(data)
    elif isinstance(value, (str, bytes, bytearray, memoryview)):
        b = _as_bytes(value)
        if quotable(b, utf8):
            out.append(quoted(bytes(b)))
        else:
            out.append(b"{" + str(len(b)).encode() + b"}\r\n")
            out.append(b)
    elif isinstance(value, (list, tuple)):
        out.append(b"(")
        for i, v in enumerate(value):
            if i:
                out.append(b" ")
            encode_into(v, out, utf8)
        out.append(b")")
    elif isinstance(value, _dt.datetime):
        out.append(date_time(value))
    elif isinstance(value, SequenceSet):
        out.append(str(value).encode("ascii"))
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as an IMAP value")


def encode(value: object, utf8: bool = False) -> bytes:
    out: list = []
    encode_into(value, out, utf8)
    return b"".join(out)


def _text(text: str) -> bytes:
    # RFC 9051 §9 text = 1*TEXT-CHAR: no CR/LF; never empty.
    t = text.replace("\r", " ").replace("\n", " ") or "."
    return t.encode("utf-8")


def response_code(name: str, *args: object) -> bytes:
    """``[NAME args]`` (RFC 9051 §7.1); args go through :func:`encode`."""
    parts = [name.encode("ascii")]
    parts += [encode(a) for a in args]
    return b"[" + b" ".join(parts) + b"]"


def _code_bytes(code: str | bytes | None) -> bytes:
    if code is None:
        return b""
    if isinstance(code, str):
        code = b"[" + code.encode("ascii") + b"]"
    return code + b" "


def tagged(tag: str, status: str, text: str, code: str | bytes | None = None) -> bytes:
    """``tag OK|NO|BAD [code] text`` + CRLF.  ``code`` is a str like ``"TRYCREATE"``
    or the bytes from :func:`response_code`."""
    return tag.encode("ascii") + b" " + status.encode("ascii") + b" " + _code_bytes(code) + _text(text) + CRLF


def untagged_status(status: str, text: str, code: str | bytes | None = None) -> bytes:
    """``* OK|NO|BAD|PREAUTH|BYE [code] text`` + CRLF."""
    return b"* " + status.encode("ascii") + b" " + _code_bytes(code) + _text(text) + CRLF


def bye(text: str = "Logging out", code: str | bytes | None = None) -> bytes:
    return untagged_status("BYE", text, code)


def continuation(text: str = "Ready") -> bytes:
    """``+ text`` (RFC 9051 §7.6)."""
    return b"+ " + _text(text) + CRLF


def untagged(*items: object, utf8: bool = False) -> bytes:
    """``* item item …`` + CRLF; each item through :func:`encode` (use :class:`Atom`
    for keywords): ``untagged(5, Atom("EXISTS"))`` → ``* 5 EXISTS``."""
    out: list = [b"* "]
    for i, it in enumerate(items):
        if i:
            out.append(b" ")
        encode_into(it, out, utf8)
    out.append(CRLF)
    return b"".join(out)


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + " ".join(flags).encode("utf-8") + b")"


def capability(caps: Iterable[str]) -> bytes:
    return b"* CAPABILITY " + " ".join(caps).encode("ascii") + CRLF


def fetch_response_chunks(seq: int, items: Sequence[tuple[str | FetchAttr, object]], utf8: bool = False) -> list:
    """``* seq FETCH (name value …)`` as chunks; literal data stays by reference.

    ``name`` is a str (``"UID"``) or a :class:`FetchAttr`, whose
    :meth:`~FetchAttr.response_name` is used (``BODY[HEADER]<0>``).  Values follow
    :func:`encode`; FLAGS wants a list of :class:`Atom`, BODY[...] a bytes value or
    :class:`Literal`, BINARY[...] a :class:`Literal8` when it contains NUL, and the
    pre-encoded ENVELOPE / BODYSTRUCTURE bytes of ``suite.mail.mime`` go in :class:`Raw`.
    """
    out: list = [b"* " + str(seq).encode("ascii") + b" FETCH ("]
    for i, (name, value) in enumerate(items):
        if i:
            out.append(b" ")
        n = name.response_name() if isinstance(name, FetchAttr) else name
        out.append(n.encode("ascii") + b" ")
        encode_into(value, out, utf8)
    out.append(b")\r\n")
    return out


def fetch_response(seq: int, items: Sequence[tuple[str | FetchAttr, object]], utf8: bool = False) -> bytes:
    return b"".join(fetch_response_chunks(seq, items, utf8))


def search_response(numbers: Iterable[int], modseq: int | None = None) -> bytes:
    """IMAP4rev1 ``* SEARCH 1 2 3`` (RFC 3501 §7.2.5), with ``(MODSEQ n)`` from RFC 7162 §3.1.5."""
    s = b"* SEARCH"
    nums = b" ".join(str(n).encode() for n in numbers)
    if nums:
        s += b" " + nums
    if modseq is not None:
        s += b" (MODSEQ " + str(modseq).encode() + b")"
    return s + CRLF


def esearch_response(
    tag: str | None,
    uid: bool,
    *,
    min: int | None = None,
    max: int | None = None,
    count: int | None = None,
    all: Iterable[int] | None = None,
    modseq: int | None = None,
) -> bytes:
    """``* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n ALL set`` (RFC 4731 §3.2, RFC 9051 §7.3.4).

    Pass only the results asked for; ALL is omitted when empty (RFC 4731 §3.1)."""
    s = b"* ESEARCH"
    if tag is not None:
        s += b" (TAG " + quoted(tag) + b")"
    if uid:
        s += b" UID"
    if min is not None:
        s += b" MIN " + str(min).encode()
    if max is not None:
        s += b" MAX " + str(max).encode()
    if count is not None:
        s += b" COUNT " + str(count).encode()
    if all is not None:
        sset = seqset(all)
        if sset:
            s += b" ALL " + sset
    if modseq is not None:
        s += b" MODSEQ " + str(modseq).encode()
    return s + CRLF


def list_response(
    attributes: Iterable[str],
    delimiter: str | None,
    mailbox: str,
    extended: Sequence[tuple[str, object]] = (),
    *,
    command: str = "LIST",
    utf8: bool = False,
) -> bytes:
    """``* LIST (\\HasNoChildren) "/" name [(CHILDINFO ("SUBSCRIBED"))]`` (RFC 9051 §7.3.1,
    RFC 5258 §3.5).  ``mailbox`` must already be in the client's encoding (mUTF-7
    unless UTF8=ACCEPT); it is always sent as a quoted string or literal."""
    out: list = [b"* " + command.encode("ascii") + b" " + flag_list(attributes) + b" "]
    out.append(b"NIL" if delimiter is None else quoted(delimiter))
    out.append(b" ")
    out.append(string(mailbox, utf8))
    if extended:
        out.append(b" (")
        for i, (tag, val) in enumerate(extended):
            if i:
                out.append(b" ")
            out.append(tag.encode("ascii") + b" ")
            encode_into(val, out, utf8)
        out.append(b")")
    out.append(CRLF)
    return b"".join(out)


def status_response(mailbox: str, items: Sequence[tuple[str, int | str]], utf8: bool = False) -> bytes:
    """``* STATUS name (MESSAGES 3 UIDNEXT 4)`` (RFC 9051 §7.3.5)."""
    body = " ".join(f"{k} {v}" for k, v in items).encode("ascii")
    return b"* STATUS " + string(mailbox, utf8) + b" (" + body + b")" + CRLF


def vanished(uids: Iterable[int], earlier: bool = False) -> bytes:
    """``* VANISHED [(EARLIER)] set`` (RFC 7162 §3.2.10)."""
    return b"* VANISHED " + (b"(EARLIER) " if earlier else b"") + seqset(uids) + CRLF


def address(name: str | None, adl: str | None, mailbox: str | None, host: str | None) -> tuple:
    """One ``address`` structure for :func:`envelope` (RFC 9051 §7.5.2)."""
    return (name, adl, mailbox, host)


def envelope(
    date: str | None,
    subject: str | None,
    from_: Sequence[tuple] | None,
    sender: Sequence[tuple] | None,
    reply_to: Sequence[tuple] | None,
    to: Sequence[tuple] | None,
    cc: Sequence[tuple] | None,
    bcc: Sequence[tuple] | None,
    in_reply_to: str | None,
    message_id: str | None,
) -> tuple:
    """The ENVELOPE value (RFC 9051 §7.5.2) ready for :func:`encode`: address lists
    are lists of :func:`address` tuples, or None/empty for NIL."""

    def alist(a: Sequence[tuple] | None) -> list | None:
        return list(a) if a else None

    return (
        date,
        subject,
        alist(from_),
        alist(sender),
        alist(reply_to),
        alist(to),
        alist(cc),
        alist(bcc),
        in_reply_to,
        message_id,
    )
