"""IMAP command grammar (RFC 9051 §6, RFC 3501 §6 and extensions): one parser function
per command, turning a tokenised command into a typed :mod:`~suite.mail.imap.commands`
object or a :class:`~suite.mail.imap.commands.ParseError`."""

from __future__ import annotations

import base64
import binascii
import codecs
import re

from ..commands import (
    Append,
    AppendMessage,
    Authenticate,
    Capability,
    Check,
    Close,
    Command,
    Compress,
    Copy,
    Create,
    Delete,
    Enable,
    Expunge,
    Fetch,
    FetchAttr,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    List,
    ListReturn,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    ParseError,
    Partial,
    QResync,
    Rename,
    Search,
    SearchAnd,
    SearchCriterion,
    SearchKey,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSet,
    Section,
    Select,
    SequenceSet,
    SetQuota,
    Sort,
    StartTLS,
    Status,
    Store,
    Subscribe,
    Thread,
    Unselect,
    Unsubscribe,
)
from ..limits import ImapLimits
from .lexer import _BASE64, _FETCH_NAME, _MAX_NUMBER, _P, _SECTION_WORD, _STORE_ITEM, _TAG, _Bad

# --------------------------------------------------------------------------- commands


def parse_command(
    lines: list[bytes],
    lits: list[bytearray] | None = None,
    binary: list[bool] | None = None,
    *,
    limits: ImapLimits | None = None,
    tag: str | None = None,
    streamed: set[int] | None = None,
) -> Command | ParseError:
    """Parse one complete command (lines split at literals, CRLF removed).

    Mostly used by :class:`CommandReader`; handy in tests: ``parse_command([b"a NOOP"])``.
    Never raises for bad input: returns a :class:`ParseError` instead.
    """
    lits = lits or []
    binary = binary or [False] * len(lits)
    lim = limits or ImapLimits()
    p = _P(lines, lits, binary, lim.max_depth)
    p.allow_nul_append = lim.allow_nul_in_append
    if streamed:
        p.streamed = streamed
    try:
        m = _TAG.match(p.line)
        if not m:
            raise _Bad("Missing or invalid tag")
        tag = m.group().decode("ascii")
        p.pos = m.end()
        p.sp()
        name = p.keyword()
        fn = _COMMANDS.get(name)
        if fn is None:
            raise _Bad(f"Unknown command {name[:32]}")
        cmd = fn(p, tag)
        p.end()
        return cmd
    except _Bad as e:
        return ParseError(tag, e.code, e.text, status=e.status)
    except RecursionError:
        return ParseError(tag, "LIMIT", "Too deeply nested")


def _no_args(cls):
    def parse(p: _P, tag: str):
        return cls(tag=tag)

    return parse


def _p_authenticate(p: _P, tag: str) -> Authenticate:
    # RFC 9051 §6.2.2, SASL-IR RFC 4959 §7: [SP (base64 / "=")]
    p.sp()
    mech = p.keyword()
    initial = None
    if p.maybe_sp():
        if p.maybe_char(b"="):
            initial = b""
        else:
            raw = p.match(_BASE64, "base64")
            try:
                initial = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise _Bad("Invalid base64") from None
    return Authenticate(tag=tag, mechanism=mech, initial_response=initial)


def _p_login(p: _P, tag: str) -> Login:
    p.sp()
    user = p.astring()
    p.sp()
    pw = p.astring()
    return Login(tag=tag, username=user, password=pw)


def _p_enable(p: _P, tag: str) -> Enable:
    # RFC 5161 §3.1: "ENABLE" 1*(SP capability)
    caps = []
    p.sp()
    caps.append(p.keyword())
    while p.maybe_sp():
        caps.append(p.keyword())
    return Enable(tag=tag, capabilities=tuple(caps))


def _p_compress(p: _P, tag: str) -> Compress:
    # RFC 4978 §3: "COMPRESS" SP algorithm; algorithm = "DEFLATE" / atom
    p.sp()
    return Compress(tag=tag, algorithm=p.keyword())


def _p_select(readonly: bool):
    def parse(p: _P, tag: str) -> Select:
        p.sp()
        mbox = p.mailbox()
        condstore = False
        qresync = None
        if p.maybe_sp():
            # RFC 4466 §2.1 select-params; RFC 7162 §3.1.8 CONDSTORE, §3.2.5 QRESYNC
            p.open()
            while True:
                opt = p.keyword()
                if opt == "CONDSTORE":
                    condstore = True
                elif opt == "QRESYNC":
                    if qresync is not None:
                        raise _Bad("Duplicate QRESYNC")
                    p.sp()
                    qresync = _p_qresync(p)
                else:
                    raise _Bad(f"Unknown select parameter {opt[:32]}")
                if p.maybe_char(b")"):
                    p.depth -= 1
                    break
                p.sp()
        return Select(tag=tag, mailbox=mbox, readonly=readonly, condstore=condstore, qresync=qresync)

    return parse


def _p_qresync(p: _P) -> QResync:
    # RFC 7162 §7: "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"
    p.open()
    uidvalidity = p.number(nz=True)
    p.sp()
    modseq = p.number(big=True)
    known = None
    match = None
    if p.maybe_sp():
        if p.peek() != 0x28:
            known = p.sequence_set(allow_saved=False, allow_star=False)
            if p.maybe_sp():
                match = _p_seq_match(p)
        else:
            match = _p_seq_match(p)
    p.close()
    return QResync(uidvalidity, modseq, known, match)


def _p_seq_match(p: _P) -> tuple[SequenceSet, SequenceSet]:
    p.open()
    seqs = p.sequence_set(allow_saved=False, allow_star=False)
    p.sp()
    uids = p.sequence_set(allow_saved=False, allow_star=False)
    p.close()
    return seqs, uids


def _p_create(p: _P, tag: str) -> Create:
    p.sp()
    mbox = p.mailbox()
    use: list[str] = []
    if p.maybe_sp():
        # RFC 4466 §2.2 create-params; RFC 6154 §6 "USE" SP "(" [use-attr *(SP use-attr)] ")"
        p.open()
        while True:
            opt = p.keyword()
            if opt != "USE":
                raise _Bad(f"Unknown CREATE parameter {opt[:32]}")
            p.sp()
            p.open()
            if not p.maybe_char(b")"):
                while True:
                    p.char(b"\\")
                    use.append("\\" + p.atom())
                    if p.maybe_char(b")"):
                        break
                    p.sp()
            p.depth -= 1
            if p.maybe_char(b")"):
                p.depth -= 1
                break
            p.sp()
    return Create(tag=tag, mailbox=mbox, special_use=tuple(use))


def _one_mailbox(cls):
    def parse(p: _P, tag: str):
        p.sp()
        return cls(tag=tag, mailbox=p.mailbox())

    return parse


def _p_rename(p: _P, tag: str) -> Rename:
    p.sp()
    old = p.mailbox()
    p.sp()
    new = p.mailbox()
    return Rename(tag=tag, mailbox=old, new_name=new)


_LIST_SELECT = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
_STATUS_ATTS = {
    "MESSAGES",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "DELETED",
    "SIZE",
    "RECENT",
    "HIGHESTMODSEQ",
    "APPENDLIMIT",
    "MAILBOXID",
    "DELETED-STORAGE",
}


def _p_status_atts(p: _P) -> tuple[str, ...]:
    # RFC 9051 §6.3.11 status-att; RFC 7162 §3.1.9 HIGHESTMODSEQ; RFC 7889 APPENDLIMIT
    p.open()
    items = []
    while True:
        att = p.keyword()
        if att not in _STATUS_ATTS:
            raise _Bad(f"Unknown status attribute {att[:32]}")
        items.append(att)
        if p.maybe_char(b")"):
            p.depth -= 1
            break
        p.sp()
    return tuple(items)


def _p_list(p: _P, tag: str) -> List:
    # RFC 9051 §6.3.9 / RFC 5258 §6:
    # "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]
    p.sp()
    extended = False
    selection: set[str] = set()
    if p.peek() == 0x28:
        extended = True
        p.open()
        if not p.maybe_char(b")"):
            while True:
                opt = p.keyword()
                if opt not in _LIST_SELECT:
                    raise _Bad(f"Unknown LIST selection option {opt[:32]}")
                selection.add(opt)
                if p.maybe_char(b")"):
                    break
                p.sp()
        p.depth -= 1
        # RFC 5258 §3: RECURSIVEMATCH needs another (base) selection option.
        if "RECURSIVEMATCH" in selection and not (selection - {"RECURSIVEMATCH", "REMOTE"}):
            raise _Bad("RECURSIVEMATCH requires another selection option")
        p.sp()
    ref = p.astring()
    p.sp()
    patterns = []
    if p.peek() == 0x28:
        extended = True
        p.open()
        while True:
            patterns.append(p.list_mailbox())
            if p.maybe_char(b")"):
                break
            p.sp()
        p.depth -= 1
    else:
        patterns.append(p.list_mailbox())
    ret = ListReturn()
    if p.maybe_sp():
        extended = True
        if not p.maybe_word(b"RETURN"):
            raise _Bad("Expected RETURN")
        p.sp()
        p.open()
        sub = children = special = myrights = False
        status = None
        if not p.maybe_char(b")"):
            while True:
                opt = p.keyword()
                if opt == "SUBSCRIBED":
                    sub = True
                elif opt == "CHILDREN":
                    children = True
                elif opt == "SPECIAL-USE":  # RFC 6154 §5.2
                    special = True
                elif opt == "MYRIGHTS":  # RFC 8440
                    myrights = True
                elif opt == "STATUS":  # RFC 5819 §2
                    p.sp()
                    status = _p_status_atts(p)
                else:
                    raise _Bad(f"Unknown LIST return option {opt[:32]}")
                if p.maybe_char(b")"):
                    break
                p.sp()
        p.depth -= 1
        ret = ListReturn(sub, children, special, myrights, status)
    return List(
        tag=tag, reference=ref, patterns=tuple(patterns), selection=frozenset(selection), returns=ret, extended=extended
    )


def _p_lsub(p: _P, tag: str) -> Lsub:
    p.sp()
    ref = p.astring()
    p.sp()
    return Lsub(tag=tag, reference=ref, pattern=p.list_mailbox())


def _p_status(p: _P, tag: str) -> Status:
    p.sp()
    mbox = p.mailbox()
    p.sp()
    return Status(tag=tag, mailbox=mbox, items=_p_status_atts(p))


def _p_append(p: _P, tag: str) -> Append:
    # RFC 9051 §6.3.12 / RFC 3502 MULTIAPPEND:
    # "APPEND" SP mailbox 1*append-message; append-message = [SP flag-list] [SP date-time] SP (literal / literal8)
    p.sp()
    mbox = p.mailbox()
    msgs = []
    while p.maybe_sp():
        flags: tuple[str, ...] = ()
        when = None
        if p.peek() == 0x28:
            flags = p.flag_list()
            p.sp()
        if p.peek() == 0x22:
            when = p.date_time()
            p.sp()
        if p.peek() not in (0x7B, 0x7E):
            raise _Bad("Expected message literal")
        streamed = p.li in p.streamed
        data, is_binary = p.literal(allow_binary=True, allow_nul=p.allow_nul_append)
        msgs.append(AppendMessage(data, flags, when, is_binary, streamed))
    if not msgs:
        raise _Bad("Missing message")
    return Append(tag=tag, mailbox=mbox, messages=tuple(msgs))


def _p_expunge(p: _P, tag: str) -> Expunge:
    return Expunge(tag=tag)


# --- SEARCH (RFC 9051 §6.4.4)

_SEARCH_FLAG_KEYS = {
    "ALL",
    "ANSWERED",
    "DELETED",
    "DRAFT",
    "FLAGGED",
    "NEW",
    "OLD",
    "RECENT",
    "SEEN",
    "UNANSWERED",
    "UNDELETED",
    "UNDRAFT",
    "UNFLAGGED",
    "UNSEEN",
}
_SEARCH_STRING_KEYS = {"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"}
_SEARCH_DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}
_OBJECTID = re.compile(r"[A-Za-z0-9_-]{1,255}")
_SEARCH_RETURN = {"MIN", "MAX", "ALL", "COUNT", "SAVE"}


def _p_search_key(p: _P) -> SearchKey:
    c = p.peek()
    if c == 0x28:
        p.open()
        keys = [_p_search_key(p)]
        while not p.maybe_char(b")"):
            p.sp()
            keys.append(_p_search_key(p))
        p.depth -= 1
        return SearchAnd(tuple(keys))
    if c == 0x24 or c == 0x2A or 0x30 <= c <= 0x39:
        return SearchSet(p.sequence_set())
    key = p.keyword()
    if key in _SEARCH_FLAG_KEYS:
        return SearchCriterion(key)
    if key in _SEARCH_STRING_KEYS:
        p.sp()
        return SearchCriterion(key, p.text_value())
    if key in _SEARCH_DATE_KEYS:
        p.sp()
        return SearchCriterion(key, p.date())
    if key in ("KEYWORD", "UNKEYWORD"):
        p.sp()
        return SearchCriterion(key, p.atom())
    if key == "HEADER":
        p.sp()
        field = p.astring()
        p.sp()
        return SearchCriterion(key, (field, p.text_value()))
    if key in ("LARGER", "SMALLER"):
        p.sp()
        return SearchCriterion(key, p.number(big=True))
    if key in ("EMAILID", "THREADID"):  # RFC 8474 §6: objectid = 1*255(ALPHA / DIGIT / "_" / "-")
        p.sp()
        oid = p.atom()
        if not _OBJECTID.fullmatch(oid):
            raise _Bad(f"Bad {key} {oid[:32]}")
        return SearchCriterion(key, oid)
    if key in ("OLDER", "YOUNGER"):  # RFC 5032 WITHIN
        p.sp()
        return SearchCriterion(key, p.number(nz=True))
    if key == "UID":
        p.sp()
        return SearchSet(p.sequence_set(), uid=True)
    if key == "NOT":
        p.sp()
        p.depth += 1
        if p.depth > p.max_depth:
            raise _Bad("Too deeply nested", "LIMIT")
        k = _p_search_key(p)
        p.depth -= 1
        return SearchNot(k)
    if key == "OR":
        p.sp()
        p.depth += 1
        if p.depth > p.max_depth:
            raise _Bad("Too deeply nested", "LIMIT")
        a = _p_search_key(p)
        p.sp()
        b = _p_search_key(p)
        p.depth -= 1
        return SearchOr(a, b)
    if key == "MODSEQ":
        # RFC 7162 §3.1.5: "MODSEQ" [search-modseq-ext] SP mod-sequence-valzer
        # search-modseq-ext = SP entry-name SP entry-type-req
        p.sp()
        name = etype = None
        if p.peek() == 0x22 or p.peek() == 0x7B:
            name = p.string()
            p.sp()
            etype = p.keyword().lower()
            if etype not in ("priv", "shared", "all"):
                raise _Bad("Invalid MODSEQ entry type")
            p.sp()
        return SearchModSeq(p.number(big=True), name, etype)
    raise _Bad(f"Unknown search key {key[:32]}")


def _p_search(uid: bool):
    def parse(p: _P, tag: str) -> Search:
        p.sp()
        returns = None
        if p.maybe_word(b"RETURN"):
            # RFC 9051 §6.4.4 / RFC 4731 §3: search-return-opts
            p.sp()
            p.open()
            opts: list[str] = []
            if not p.maybe_char(b")"):
                while True:
                    opt = p.keyword()
                    if opt not in _SEARCH_RETURN:
                        raise _Bad(f"Unknown search return option {opt[:32]}")
                    if opt not in opts:
                        opts.append(opt)
                    if p.maybe_char(b")"):
                        break
                    p.sp()
            p.depth -= 1
            returns = tuple(opts) or ("ALL",)  # RFC 4731 §3.1: empty RETURN () is ALL
            p.sp()
        charset = None
        if p.maybe_word(b"CHARSET"):
            p.sp()
            charset = _p_charset(p)
        return Search(tag=tag, uid=uid, charset=charset, criteria=_p_search_keys(p), returns=returns)

    return parse


def _p_search_keys(p: _P) -> SearchAnd:
    keys = [_p_search_key(p)]
    while p.maybe_sp():
        keys.append(_p_search_key(p))
    return SearchAnd(tuple(keys))


def _p_charset(p: _P) -> str:
    # RFC 9051 §6.4.4, RFC 5256 §3: NO [BADCHARSET (charsets)] for an unknown charset
    charset = p.astring().upper()
    try:
        p.charset = codecs.lookup(charset).name
    except LookupError:
        raise _Bad("Unsupported charset", "BADCHARSET (US-ASCII UTF-8)", "NO") from None
    p.sp()
    return charset


_SORT_KEYS = {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}


def _p_sort(uid: bool):
    def parse(p: _P, tag: str) -> Sort:
        # RFC 5256 §5: sort-criteria = "(" sort-criterion *(SP sort-criterion) ")"
        p.sp()
        p.open()
        keys: list[tuple[str, bool]] = []
        while True:
            key = p.keyword()
            rev = key == "REVERSE"
            if rev:
                p.sp()
                key = p.keyword()
            if key not in _SORT_KEYS:
                raise _Bad(f"Unknown sort criterion {key[:32]}")
            keys.append((key, rev))
            if p.maybe_char(b")"):
                break
            p.sp()
        p.depth -= 1
        p.sp()
        charset = _p_charset(p)
        return Sort(tag=tag, uid=uid, keys=tuple(keys), charset=charset, criteria=_p_search_keys(p))

    return parse


def _p_thread(uid: bool):
    def parse(p: _P, tag: str) -> Thread:
        # RFC 5256 §5: thread = ["UID" SP] "THREAD" SP thread-alg SP search-charset 1*(SP search-key)
        p.sp()
        alg = p.keyword()
        if alg not in ("ORDEREDSUBJECT", "REFERENCES"):
            raise _Bad(f"Unsupported threading algorithm {alg[:32]}")
        p.sp()
        charset = _p_charset(p)
        return Thread(tag=tag, uid=uid, algorithm=alg, charset=charset, criteria=_p_search_keys(p))

    return parse


# --- FETCH (RFC 9051 §6.4.5)

_FETCH_SIMPLE = {
    "ENVELOPE",
    "FLAGS",
    "INTERNALDATE",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.SIZE",
    "RFC822.TEXT",
    "BODYSTRUCTURE",
    "UID",
    "MODSEQ",
    "SAVEDATE",
    "EMAILID",
    "THREADID",
}
_FETCH_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SECTION_TEXTS = {"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"}


def _p_section(p: _P, binary: bool) -> Section:
    p.char(b"[")
    if p.maybe_char(b"]"):
        return Section()
    word = p.match(_SECTION_WORD, "section").decode("ascii").upper()
    parts: list[int] = []
    comps = word.split(".")
    i = 0
    while i < len(comps) and comps[i].isdigit():
        if comps[i].startswith("0"):
            raise _Bad("Invalid section part")
        v = int(comps[i])
        if v > _MAX_NUMBER:
            raise _Bad("Section part out of range")
        parts.append(v)
        i += 1
    text = ".".join(comps[i:]) or None
    headers: tuple[str, ...] = ()
    if binary and text is not None:
        # RFC 3516 §4.2: section-binary = "[" [section-part] "]"
        raise _Bad("BINARY takes only a part number")
    if text is not None:
        if text not in _SECTION_TEXTS or (text == "MIME" and not parts):
            raise _Bad("Invalid section")
        if text.startswith("HEADER.FIELDS"):
            p.sp()
            p.open()
            names = []
            while True:
                names.append(p.astring().upper())
                if p.maybe_char(b")"):
                    break
                p.sp()
            p.depth -= 1
            headers = tuple(names)
    elif not parts:
        raise _Bad("Invalid section")
    p.char(b"]")
    return Section(tuple(parts), text, headers)


def _p_partial(p: _P) -> Partial | None:
    # RFC 9051 §9 partial = "<" number64 "." nz-number64 ">"
    if not p.maybe_char(b"<"):
        return None
    start = p.number(big=True)
    p.char(b".")
    length = p.number(nz=True, big=True)
    p.char(b">")
    return Partial(start, length)


def _p_fetch_att(p: _P) -> FetchAttr:
    name = p.match(_FETCH_NAME, "fetch attribute").decode("ascii").upper()
    if name in _FETCH_SIMPLE:
        return FetchAttr(name)
    if name in ("BODY", "BODY.PEEK"):
        if p.peek() != 0x5B:
            if name == "BODY":
                return FetchAttr("BODY")
            raise _Bad("BODY.PEEK needs a section")
        section = _p_section(p, False)
        return FetchAttr("BODY", section, _p_partial(p), name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        # RFC 3516 §4.2 / RFC 9051 §6.4.5
        if p.peek() != 0x5B:
            raise _Bad(f"{name} needs a section")
        section = _p_section(p, True)
        if name == "BINARY.SIZE":
            return FetchAttr("BINARY.SIZE", section)
        return FetchAttr("BINARY", section, _p_partial(p), name == "BINARY.PEEK")
    raise _Bad(f"Unknown fetch attribute {name[:32]}")


def _p_fetch(uid: bool):
    def parse(p: _P, tag: str) -> Fetch:
        p.sp()
        seqset = p.sequence_set()
        p.sp()
        macro = None
        if p.peek() == 0x28:
            p.open()
            attrs = [_p_fetch_att(p)]
            while not p.maybe_char(b")"):
                p.sp()
                attrs.append(_p_fetch_att(p))
            p.depth -= 1
        else:
            save = p.pos
            word = p.match(_FETCH_NAME, "fetch attribute").decode("ascii").upper()
            if word in _FETCH_MACROS and p.peek() in (-1, 0x20):
                macro = word
                attrs = [FetchAttr(n) for n in _FETCH_MACROS[word]]
            else:
                p.pos = save
                attrs = [_p_fetch_att(p)]
        if uid and not any(a.name == "UID" for a in attrs):
            # RFC 9051 §6.4.9: UID FETCH always returns the UID.
            attrs.append(FetchAttr("UID"))
        changedsince = None
        vanished = False
        if p.maybe_sp():
            # RFC 4466 §2.4 fetch-modifiers; RFC 7162 §3.1.4 CHANGEDSINCE, §3.2.6 VANISHED
            p.open()
            while True:
                mod = p.keyword()
                if mod == "CHANGEDSINCE" and changedsince is None:
                    p.sp()
                    changedsince = p.number(nz=True, big=True)
                elif mod == "VANISHED" and uid and not vanished:
                    vanished = True
                else:
                    raise _Bad(f"Invalid fetch modifier {mod[:32]}")
                if p.maybe_char(b")"):
                    p.depth -= 1
                    break
                p.sp()
            if vanished and changedsince is None:
                raise _Bad("VANISHED requires CHANGEDSINCE")  # RFC 7162 §3.2.6
        return Fetch(
            tag=tag,
            uid=uid,
            sequence_set=seqset,
            attrs=tuple(attrs),
            macro=macro,
            changedsince=changedsince,
            vanished=vanished,
        )

    return parse


def _p_store(uid: bool):
    def parse(p: _P, tag: str) -> Store:
        # RFC 9051 §6.4.6; RFC 7162 §3.1.3 UNCHANGEDSINCE store modifier
        p.sp()
        seqset = p.sequence_set()
        p.sp()
        unchanged = None
        if p.peek() == 0x28:
            p.open()
            while True:
                mod = p.keyword()
                if mod != "UNCHANGEDSINCE" or unchanged is not None:
                    raise _Bad(f"Invalid store modifier {mod[:32]}")
                p.sp()
                unchanged = p.number(big=True)
                if p.maybe_char(b")"):
                    p.depth -= 1
                    break
                p.sp()
            p.sp()
        item = p.match(_STORE_ITEM, "store item").decode("ascii").upper()
        mode = ""
        if item[:1] in ("+", "-"):
            mode, item = item[0], item[1:]
        if item not in ("FLAGS", "FLAGS.SILENT"):
            raise _Bad("Expected FLAGS, +FLAGS or -FLAGS")
        p.sp()
        if p.peek() == 0x28:
            flags = p.flag_list()
        else:
            fl = [p.flag()]
            while p.maybe_sp():
                fl.append(p.flag())
            flags = tuple(fl)
        return Store(
            tag=tag,
            uid=uid,
            sequence_set=seqset,
            mode=mode,
            silent=item.endswith(".SILENT"),
            flags=flags,
            unchangedsince=unchanged,
        )

    return parse


def _p_copy(cls, uid: bool):
    def parse(p: _P, tag: str):
        p.sp()
        seqset = p.sequence_set()
        p.sp()
        return cls(tag=tag, uid=uid, sequence_set=seqset, mailbox=p.mailbox())

    return parse


def _p_uid(p: _P, tag: str) -> Command:
    # RFC 9051 §6.4.9; RFC 4315 §2.1 UID EXPUNGE; RFC 6851 UID MOVE
    p.sp()
    sub = p.keyword()
    if sub == "EXPUNGE":
        p.sp()
        return Expunge(tag=tag, uid_set=p.sequence_set())
    fn = _UID_COMMANDS.get(sub)
    if fn is None:
        raise _Bad(f"Unknown UID command {sub[:32]}")
    return fn(p, tag)


def _p_id(p: _P, tag: str) -> Id:
    # RFC 2971 §4: "ID" SP id_params_list; id_params_list = "(" #(string SP nstring) ")" / nil
    p.sp()
    if p.maybe_word(b"NIL"):
        return Id(tag=tag, params=None)
    p.open()
    params = []
    if not p.maybe_char(b")"):
        while True:
            k = p.string()
            p.sp()
            v = p.nstring()
            if len(k) > 30 or (v is not None and len(v) > 1024):
                raise _Bad("ID field too long")  # RFC 2971 §3.3
            params.append((k, v))
            if len(params) > 30:
                raise _Bad("Too many ID fields")  # RFC 2971 §3.3
            if p.maybe_char(b")"):
                break
            p.sp()
    p.depth -= 1
    return Id(tag=tag, params=tuple(params))


def _p_getquota(p: _P, tag: str) -> GetQuota:
    p.sp()
    return GetQuota(tag=tag, root=p.astring())


def _p_getquotaroot(p: _P, tag: str) -> GetQuotaRoot:
    p.sp()
    return GetQuotaRoot(tag=tag, mailbox=p.mailbox())


def _p_setquota(p: _P, tag: str) -> SetQuota:
    # RFC 9208 §4.4 / §7: "SETQUOTA" SP quota-root-name SP setquota-list
    p.sp()
    root = p.astring()
    p.sp()
    p.open()
    limits = []
    if not p.maybe_char(b")"):
        while True:
            res = p.keyword()
            p.sp()
            limits.append((res, p.number(big=True)))
            if p.maybe_char(b")"):
                break
            p.sp()
    p.depth -= 1
    return SetQuota(tag=tag, root=root, limits=tuple(limits))


_UID_COMMANDS = {
    "FETCH": _p_fetch(True),
    "STORE": _p_store(True),
    "SEARCH": _p_search(True),
    "SORT": _p_sort(True),
    "THREAD": _p_thread(True),
    "COPY": _p_copy(Copy, True),
    "MOVE": _p_copy(Move, True),
}

_COMMANDS = {
    "CAPABILITY": _no_args(Capability),
    "NOOP": _no_args(Noop),
    "LOGOUT": _no_args(Logout),
    "STARTTLS": _no_args(StartTLS),
    "AUTHENTICATE": _p_authenticate,
    "LOGIN": _p_login,
    "ENABLE": _p_enable,
    "COMPRESS": _p_compress,
    "SELECT": _p_select(False),
    "EXAMINE": _p_select(True),
    "CREATE": _p_create,
    "DELETE": _one_mailbox(Delete),
    "RENAME": _p_rename,
    "SUBSCRIBE": _one_mailbox(Subscribe),
    "UNSUBSCRIBE": _one_mailbox(Unsubscribe),
    "LIST": _p_list,
    "LSUB": _p_lsub,
    "NAMESPACE": _no_args(Namespace),
    "STATUS": _p_status,
    "APPEND": _p_append,
    "IDLE": _no_args(Idle),
    "CHECK": _no_args(Check),
    "CLOSE": _no_args(Close),
    "UNSELECT": _no_args(Unselect),
    "EXPUNGE": _p_expunge,
    "SEARCH": _p_search(False),
    "SORT": _p_sort(False),
    "THREAD": _p_thread(False),
    "FETCH": _p_fetch(False),
    "STORE": _p_store(False),
    "COPY": _p_copy(Copy, False),
    "MOVE": _p_copy(Move, False),
    "UID": _p_uid,
    "ID": _p_id,
    "GETQUOTA": _p_getquota,
    "GETQUOTAROOT": _p_getquotaroot,
    "SETQUOTA": _p_setquota,
}

_KNOWN_COMMANDS = frozenset(_COMMANDS) | {"UID " + k for k in _UID_COMMANDS} | {"UID EXPUNGE"}
