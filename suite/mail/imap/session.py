"""The IMAP4rev2 / IMAP4rev1 session state machine (RFC 9051 §3, RFC 3501) — no sockets.

Bytes go in through :meth:`ImapSession.feed`; responses come out through the ``write`` coroutine
the caller gives (the server writes them to the socket; tests may collect them).  The session
talks to the account store and the mail store (``suite.mail.store``) and keeps its own view of the
selected mailbox (:mod:`suite.mail.imap.view`), re-synchronised from ``changes_since`` when the
:class:`Hub` tells it the mailbox changed.

States (RFC 9051 §3): not authenticated → authenticated → selected → logout.

Extensions: IDLE (RFC 2177), UIDPLUS (RFC 4315), MOVE (RFC 6851), SPECIAL-USE (RFC 6154), NAMESPACE
(RFC 2342), LITERAL+ (RFC 7888), ENABLE (RFC 5161), ID (RFC 2971), UNSELECT (RFC 3691), SASL-IR
(RFC 4959), CHILDREN (RFC 3348), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), CONDSTORE and
QRESYNC (RFC 7162), ESEARCH (RFC 4731), SEARCHRES ``$`` (RFC 5182), QUOTA (RFC 9208), APPENDLIMIT
(RFC 7889), BINARY (RFC 3516), UTF8=ACCEPT (RFC 6855).

Expunged messages (RFC 9051 §7.5.1): an expunge made by another session is reported only when
allowed — never while answering FETCH, STORE or SEARCH (their UID forms may) — and never for a
message this session was not told about.  Until then the message keeps its sequence number (a
*ghost*); a FETCH of it answers from the view and, for content, from the blob while the bytes can
still be read (the blob store keeps unreferenced blobs for a grace period); otherwise the message
is left out and the command ends ``NO [EXPUNGEISSUED]`` (RFC 5530), as Dovecot does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import contextlib
import ipaddress
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import structlog

from suite.accounts.revocation import Credential
from suite.accounts.store import AccountInfo
from suite.mail import mime
from suite.mail.mime.searchtext import SearchText
from suite.mail.store import (
    SEPARATOR,
    AppendItem,
    MailboxExists,
    MailboxInfo,
    MailStoreError,
    NoSuchMailbox,
    QuotaExceeded,
)
from suite.storage.blobs import BlobUnavailable
from suite.storage.events import MailboxChanged

from . import fetch as fetchmod
from . import responses as R
from . import search as searchmod
from . import sortthread
from .commands import (
    Append,
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
    Event,
    Expunge,
    Fetch,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    IdleDone,
    List,
    ListReturn,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    NeedContinuation,
    Noop,
    ParseError,
    RawLine,
    Rename,
    Search,
    SearchAnd,
    SearchCriterion,
    SearchKey,
    SearchOr,
    Select,
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
from .compress import CompressError, Deflate
from .limits import ImapLimits
from .mutf7 import mutf7_decode, mutf7_encode
from .parse import CommandReader
from .ports import MailStorePort
from .view import LRU, InvalidSet, Msg, View

log = structlog.get_logger("suite.imap")

# RFC 6154 §2 use-attrs (lower case → as written)
SPECIAL_USES_CANON = {
    u.lower(): u for u in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
MAX_BAD_COMMANDS = 20  # in a row, then BYE
MAX_AUTH_FAILURES = 3  # per connection, then BYE
FLUSH_AT = 256 * 1024
CHEAP_SORT_KEYS = frozenset({"ARRIVAL", "DATE", "SIZE"})  # RFC 5256 §3 keys from the message rows
TEXT_CACHE_BYTES = 64 * 1024 * 1024  # SEARCH texts kept per process (estimated as held in memory)
TEXT_CACHE_ITEMS = 1_000_000  # only a backstop: the byte budget binds first (≥ ~900 bytes an entry)
INDEX_MIN_MESSAGES = 64  # SEARCH of a smaller mailbox just scans its (cached) texts

BASE_CAPS = ("IMAP4rev1", "IMAP4rev2")
AUTH_CAPS = (
    "IDLE",
    "UIDPLUS",
    "MOVE",
    "SPECIAL-USE",
    "NAMESPACE",
    "LITERAL+",
    "ENABLE",
    "ID",
    "UNSELECT",
    "SASL-IR",
    "CHILDREN",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "CONDSTORE",
    "QRESYNC",
    "ESEARCH",
    "SEARCHRES",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "BINARY",
    "UTF8=ACCEPT",
    "WITHIN",
    "CREATE-SPECIAL-USE",  # RFC 6154 §3
    "STATUS=SIZE",  # RFC 8438
    "COMPRESS=DEFLATE",  # RFC 4978
    "MULTIAPPEND",  # RFC 3502
    "OBJECTID",  # RFC 8474
    "SORT",  # RFC 5256 §3
    "SORT=DISPLAY",  # RFC 5957
    "THREAD=ORDEREDSUBJECT",  # RFC 5256 §4
    "THREAD=REFERENCES",
)
ENABLEABLE = {"CONDSTORE": "CONDSTORE", "QRESYNC": "QRESYNC", "IMAP4REV2": "IMAP4rev2", "UTF8=ACCEPT": "UTF8=ACCEPT"}
STATUS_ITEMS = (
    "MESSAGES",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "DELETED",
    "SIZE",
    "HIGHESTMODSEQ",
    "APPENDLIMIT",
    "RECENT",
    "MAILBOXID",  # RFC 8474 §4.2
)


def _text_size(t: SearchText) -> int:
    """About what a search text holds in memory (within a few % of tracemalloc's figure for 2 to
    30 header fields): the strings plus the objects' overhead, which is half of a small message's."""
    return 250 + len(t.body) + sum(160 + len(k) + sum(60 + len(v) for v in vs) for k, vs in t.headers.items())


class Shared:
    """What every session of one server shares: the stores, limits, the per-blob caches, the hub."""

    def __init__(self, ctx, store: MailStorePort, *, limits: ImapLimits | None = None, auth_delay: float = 1.0) -> None:
        self.ctx = ctx
        self.store = store
        # Dovecot accepts NUL in APPEND message literals; so do we (the corpus has such mail)
        self.limits = limits or ImapLimits(allow_nul_in_append=True)
        self.hub = Hub()
        # base of the progressive delay after a failed login (seconds; doubles per failure)
        self.auth_delay = auth_delay
        self.structures = LRU(20_000)
        self.raw = LRU(2_000, max_bytes=64 * 1024 * 1024)
        # bounded by memory, not by count: a SEARCH walks every text of the mailbox, and a count
        # below the mailbox's size made each SEARCH re-read and re-decode the overflow from the
        # database (CPU per command ×5 past 5 000 messages, bench/scale)
        self.texts = LRU(TEXT_CACHE_ITEMS, max_bytes=TEXT_CACHE_BYTES)
        # blob → the read of its search text under way in some session (see _search_texts)
        self.texts_loading: dict[str, asyncio.Future[SearchText | None]] = {}
        self.sections = LRU(50_000, max_bytes=32 * 1024 * 1024)
        self.hostname = ctx.settings.hostname
        # flag changes fsynced before the tagged OK, or within a second (imap_flag_durability)
        self.flags_durable = ctx.settings.imap_flag_durability == "fsync"
        # idle timeouts (RFC 9051 §5.4: at least 30 minutes once authenticated)
        # IMAP writes of one account run one at a time in this process: the store's transactions
        # lock account and mailbox rows in different orders (deliver vs expunge), and the database
        # serialises writers of a mailbox anyway
        self._write_locks: weakref.WeakValueDictionary[int, RWLock] = weakref.WeakValueDictionary()
        self.timeout_unauthenticated = 60.0
        self.timeout_authenticated = 30 * 60.0

    def write_lock(self, account_id: int) -> RWLock:
        lock = self._write_locks.get(account_id)
        if lock is None:
            lock = RWLock()
            self._write_locks[account_id] = lock
        return lock


class RWLock:
    """Shared/exclusive lock.  The store's deliver / copy lock the account row before the mailbox,
    expunge / move lock mailbox rows first: those two kinds must not overlap for one account, or
    the database deadlocks them (it would detect it; we avoid the retry)."""

    def __init__(self) -> None:
        self._readers = 0
        self._writer = False
        self._cond = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, exclusive: bool):
        async with self._cond:
            if exclusive:
                await self._cond.wait_for(lambda: not self._writer and self._readers == 0)
                self._writer = True
            else:
                await self._cond.wait_for(lambda: not self._writer)
                self._readers += 1
        try:
            yield
        finally:
            async with self._cond:
                if exclusive:
                    self._writer = False
                else:
                    self._readers -= 1
                self._cond.notify_all()


class Hub:
    """Routes bus events to the sessions that have the mailbox selected (one bus subscription per
    server, not per session)."""

    def __init__(self) -> None:
        self.by_mailbox: dict[int, set[ImapSession]] = {}
        self.sessions: set[ImapSession] = set()

    def watch(self, s: ImapSession, mailbox_id: int) -> None:
        self.by_mailbox.setdefault(mailbox_id, set()).add(s)

    def unwatch(self, s: ImapSession, mailbox_id: int) -> None:
        group = self.by_mailbox.get(mailbox_id)
        if group is not None:
            group.discard(s)
            if not group:
                del self.by_mailbox[mailbox_id]

    def dispatch(self, event) -> None:
        if isinstance(event, MailboxChanged):
            for s in list(self.by_mailbox.get(event.mailbox_id, ())):
                s.notify(event.modseq)

    def notify_all(self) -> None:
        for group in list(self.by_mailbox.values()):
            for s in list(group):
                s.notify()

    async def run(self, bus) -> None:
        sub = bus.subscribe(MailboxChanged)
        try:
            while True:
                ev = await sub.get()
                self.dispatch(ev)
                if sub.missed:  # lost events (a full queue, a bus reconnect): everyone re-reads
                    sub.missed = False
                    self.notify_all()
        finally:
            sub.close()


def is_loopback(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class _No(Exception):
    """Refuse the running command: ``tag NO [code] text`` (or BAD)."""

    def __init__(self, text: str, code: str | None = None, status: str = "NO") -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status


class _ByeAfter(_No):
    """Refuse the command, then close the connection (too many failed logins)."""


_NOT_AUTH, _AUTH, _SELECTED, _LOGOUT = "not-authenticated", "authenticated", "selected", "logout"

_ANY = frozenset({_NOT_AUTH, _AUTH, _SELECTED})
_PRE = frozenset({_NOT_AUTH})
_POST = frozenset({_AUTH, _SELECTED})
_SEL = frozenset({_SELECTED})
_STATES: dict[type, frozenset[str]] = {
    Capability: _ANY,
    Noop: _ANY,
    Logout: _ANY,
    Id: _ANY,
    StartTLS: _PRE,
    Authenticate: _PRE,
    Login: _PRE,
    Enable: _POST,
    Compress: _POST,  # RFC 4978 §3: after authentication
    Select: _POST,
    Create: _POST,
    Delete: _POST,
    Rename: _POST,
    Subscribe: _POST,
    Unsubscribe: _POST,
    List: _POST,
    Lsub: _POST,
    Namespace: _POST,
    Status: _POST,
    Append: _POST,
    Idle: _POST,
    GetQuota: _POST,
    GetQuotaRoot: _POST,
    SetQuota: _POST,
    Check: _SEL,
    Close: _SEL,
    Unselect: _SEL,
    Expunge: _SEL,
    Search: _SEL,
    Sort: _SEL,
    Thread: _SEL,
    Fetch: _SEL,
    Store: _SEL,
    Copy: _SEL,
    Move: _SEL,
}
_LITERAL_STATES = {
    "LOGIN": _PRE,
    "AUTHENTICATE": _PRE,
    "APPEND": _POST,
}


def _code(code: str | bytes | None) -> str | bytes | None:
    """``"[X y]"`` as bytes (written as is), ``"X"`` as str (bracketed by the encoder)."""
    if isinstance(code, str) and code.startswith("["):
        return code.encode("utf-8")
    return code


def _cmd_label(cmd: Command) -> str:
    name = cmd.name
    if isinstance(cmd, Select) and cmd.readonly:
        name = "EXAMINE"
    if getattr(cmd, "uid", False) is True and not name.startswith("UID"):
        name = "UID " + name
    return name


@dataclass
class Stats:
    commands: int = 0
    bad: int = 0
    auth_failures: int = 0
    started: float = field(default_factory=time.monotonic)


class ImapSession:
    """One client connection's protocol state.  ``write`` sends a list of byte chunks."""

    def __init__(
        self,
        shared: Shared,
        write: Callable[[list], Awaitable[None]],
        *,
        peer: str | None = None,
        tls: bool = False,
        starttls_available: bool = True,
    ) -> None:
        self.shared = shared
        self.store = shared.store
        self.ctx = shared.ctx
        self._write = write
        self.peer = peer
        self.tls = tls
        self.starttls_available = starttls_available and not tls
        self.reader = CommandReader(shared.limits)
        self.state = _NOT_AUTH
        self.account: AccountInfo | None = None
        # what the login used (revocation: a revoked app password or password ends this session)
        self.credential: Credential | None = None
        self.view: View | None = None
        self.enabled: set[str] = set()
        self.condstore = False
        self.idle_tag: str | None = None
        self.auth_tag: str | None = None
        self.dirty = False
        self.wakeup = asyncio.Event()
        self.closed = False
        self.starttls_requested = False
        self.outcome = "closed"
        self.stats = Stats()
        self._bad_run = 0
        self._out: list = []
        self._out_size = 0
        self._lock = asyncio.Lock()
        self._own_modseqs: set[int] = set()
        # RFC 4978 COMPRESS=DEFLATE: active once the tagged OK went out uncompressed
        self.deflate: Deflate | None = None
        self._compress_pending = False
        self._compressed_rest = b""

    # ------------------------------------------------------------------ properties
    @property
    def _account_id(self) -> int:
        """The logged-in account (commands of the authenticated states only run with one)."""
        assert self.account is not None
        return self.account.id

    def _selected(self) -> View:
        """The selected mailbox's view (commands of the selected state only run with one)."""
        assert self.view is not None
        return self.view

    @property
    def utf8(self) -> bool:
        return "IMAP4rev2" in self.enabled or "UTF8=ACCEPT" in self.enabled

    @property
    def rev2(self) -> bool:
        return "IMAP4rev2" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def plaintext_ok(self) -> bool:
        if self.tls:
            return True
        return bool(self.ctx.settings.allow_plaintext_loopback and is_loopback(self.peer))

    @property
    def timeout(self) -> float:
        # RFC 9051 §5.4: at least 30 minutes once authenticated; short before login
        sh = self.shared
        return sh.timeout_unauthenticated if self.state == _NOT_AUTH else sh.timeout_authenticated

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def capabilities(self) -> list[str]:
        caps = list(BASE_CAPS)
        if self.state == _NOT_AUTH:
            caps += ["SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE"]
            if self.starttls_available:
                caps.append("STARTTLS")
            if self.plaintext_ok:
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")  # RFC 9051 §6.2.3
            return caps
        caps += list(AUTH_CAPS)
        caps.append(f"APPENDLIMIT={self.shared.limits.max_append_literal}")
        return caps

    # ------------------------------------------------------------------ output
    def _emit(self, data: bytes | list) -> None:
        if isinstance(data, list):
            self._out.extend(data)
            self._out_size += sum(len(c) for c in data)
        else:
            self._out.append(data)
            self._out_size += len(data)

    async def flush(self) -> None:
        if self._out:
            out, self._out, self._out_size = self._out, [], 0
            if self.deflate is not None:
                out = [self.deflate.compress(out)]
            await self._write(out)

    async def _maybe_flush(self) -> None:
        if self._out_size >= FLUSH_AT:
            await self.flush()

    def _tagged(self, tag: str, status: str, text: str, code: str | bytes | None = None) -> None:
        self._emit(R.tagged(tag, status, text, _code(code)))

    def _untagged_ok(self, text: str, code: str | bytes | None = None) -> None:
        self._emit(R.untagged_status("OK", text, _code(code)))

    def greeting(self) -> bytes:
        caps = " ".join(self.capabilities())
        return R.untagged_status("OK", "Suite IMAP ready.", f"[CAPABILITY {caps}]".encode())

    async def start(self) -> None:
        self._emit(self.greeting())
        await self.flush()

    async def bye(self, text: str) -> None:
        """Server-initiated close (shutdown, timeout)."""
        if self.closed:
            return
        self._emit(R.bye(text))
        self.closed = True
        await self.flush()

    def notify(self, modseq: int | None = None) -> None:
        """The selected mailbox changed (called by the hub).  A change this session made itself
        and already applied to its view, right after everything it knew, needs no re-read."""
        view = self.view
        if modseq is not None and view is not None and modseq in self._own_modseqs:
            if modseq <= view.known_modseq:  # applied already (see _applied)
                self._own_modseqs.discard(modseq)
                return
            if not self.dirty and modseq == view.known_modseq + 1:
                self._own_modseqs.discard(modseq)
                view.known_modseq = modseq
                return
        self.dirty = True
        self.wakeup.set()

    def _applied(self, changed) -> None:
        """Remember the MODSEQ of flag changes made by this session (see :meth:`notify`)."""
        if changed:
            self._applied_modseq(changed[0].modseq)

    def _applied_modseq(self, modseq: int) -> None:
        """This session's own change (one MODSEQ) is in its view.  When it directly follows what
        the view knew, the view now knows everything up to it."""
        if len(self._own_modseqs) > 1000:
            self._own_modseqs.clear()
        self._own_modseqs.add(modseq)
        view = self.view
        if view is not None and not self.dirty and modseq == view.known_modseq + 1:
            view.known_modseq = modseq

    # ------------------------------------------------------------------ input
    async def feed(self, data: bytes) -> None:
        """Take bytes from the client and run every complete command in them."""
        async with self._lock:
            if self.deflate is None:
                self.reader.feed(data)
                await self._run_events()
                # COMPRESS was accepted: what followed it is the start of the deflate stream
                data, self._compressed_rest = self._compressed_rest, b""
            if self.deflate is not None and data:
                try:
                    for piece in self.deflate.inflate(data):
                        self.reader.feed(piece)
                        await self._run_events()
                        if self.closed:
                            break
                except CompressError:
                    self._emit(R.bye("Invalid compressed data."))
                    self.closed = True
                    self.outcome = "bad-deflate"
            await self.flush()

    async def _run_events(self) -> None:
        while not self.closed and not self.starttls_requested:
            ev = self.reader.next_event()
            if ev is None:
                break
            await self._event(ev)
            await self._maybe_flush()
            if self._compress_pending:
                # RFC 4978 §3: the tagged OK is the last uncompressed response; everything after
                # it, both ways, is compressed
                self._compress_pending = False
                await self.flush()
                self._compressed_rest = self.reader.take_buffered()
                self.deflate = Deflate()
                break

    async def on_wakeup(self) -> None:
        """Called by the server when :attr:`wakeup` fires: report changes while idling."""
        self.wakeup.clear()
        if self.idle_tag is None or self._lock.locked():
            return
        async with self._lock:
            await self._sync(allow_expunge=True)
            await self.flush()

    async def _event(self, ev: Event) -> None:
        if isinstance(ev, NeedContinuation):
            await self._continuation(ev)
            return
        if isinstance(ev, ParseError):
            self._bad(ev)
            return
        if isinstance(ev, RawLine):
            await self._auth_response(ev.data)
            return
        if isinstance(ev, IdleDone):
            await self._idle_done(ev.tag)
            return
        if isinstance(ev, Command):
            await self._command(ev)

    def _bad(self, ev: ParseError) -> None:
        if self.idle_tag is not None and ev.tag == self.idle_tag:
            self.idle_tag = None
        if self.auth_tag is not None:
            self.auth_tag = None
        code = f"[{ev.code}]" if ev.code else None
        if ev.fatal:
            self._emit(R.bye(ev.text))
            self.closed = True
            self.outcome = "fatal-input"
            return
        if ev.tag is None:
            self._emit(R.untagged_status("BAD", ev.text, code))
        else:
            self._tagged(ev.tag, ev.status, ev.text, code)
        if ev.status == "BAD":
            self._count_bad()

    def _count_bad(self) -> None:
        self.stats.bad += 1
        self._bad_run += 1
        if self._bad_run >= MAX_BAD_COMMANDS:
            self._emit(R.bye("Too many invalid commands."))
            self.closed = True
            self.outcome = "too-many-bad-commands"

    async def _continuation(self, ev: NeedContinuation) -> None:
        allowed = _LITERAL_STATES.get(ev.command.removeprefix("UID "), _ANY)
        if self.state not in allowed:
            self._tagged(ev.tag, "BAD", "Command not allowed in this state.")
            self.reader.cancel_command()
            self._count_bad()
            return
        if ev.command in ("LOGIN", "AUTHENTICATE") and not self.plaintext_ok:
            # refuse before the client sends a password in the clear (RFC 9051 §6.2.3)
            self._tagged(
                ev.tag,
                "NO",
                "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
                "PRIVACYREQUIRED",
            )
            self.reader.cancel_command()
            return
        if ev.append_message and self.account is not None:
            usage = await self.store.usage(self.account.id)
            if usage is not None and usage[0] + ev.size > usage[1]:
                # RFC 9208 §4.3: refuse before the client sends the data
                self._tagged(ev.tag, "NO", "Quota exceeded (mailbox for user is full)", "[OVERQUOTA]")
                self.reader.cancel_command()
                return
        self._emit(b"+ OK\r\n")
        await self.flush()

    async def _command(self, cmd: Command) -> None:
        self.stats.commands += 1
        allowed = _STATES.get(type(cmd), _ANY)
        if self.state not in allowed:
            if self.state == _NOT_AUTH:
                text = "Please log in first."
            elif self.state == _AUTH and allowed == _SEL:
                text = "No mailbox selected."
            else:
                text = "Command not allowed in this state."
            self._tagged(cmd.tag, "BAD", text)
            self._count_bad()
            return
        handler = getattr(self, "_do_" + type(cmd).__name__.lower())
        allow_expunge = not (isinstance(cmd, (Fetch, Store, Search)) and not cmd.uid)  # RFC 9051 §7.5.1
        try:
            with self.ctx.metrics.imap_latency.labels(type(cmd).__name__.upper()).time():
                result = await handler(cmd)
        except _No as e:
            code = f"[{e.code}]" if e.code else None
            await self._sync(allow_expunge)
            self._tagged(cmd.tag, e.status, e.text, code)
            if isinstance(e, _ByeAfter):
                self._emit(R.bye("Too many failed logins."))
                self.closed = True
                return
            if e.status == "BAD":
                self._count_bad()
            else:
                self._bad_run = 0
            return
        except (ConnectionError, asyncio.CancelledError):
            raise
        except BlobUnavailable:  # e.g. fewer storage providers than replicas: nothing was stored
            # RFC 5530 §3: UNAVAILABLE — a subsystem is down; the client may retry later
            self._tagged(cmd.tag, "NO", "Storage unavailable, try again later.", "[UNAVAILABLE]")
            return
        except Exception:  # never a traceback to the client
            log.exception("imap.command_failed", command=_cmd_label(cmd))
            self._tagged(cmd.tag, "NO", "Internal error occurred.", "[SERVERBUG]")
            return
        self._bad_run = 0
        if result is None:  # the handler answered itself (IDLE, AUTHENTICATE, LOGOUT …)
            return
        status, text, code = result if len(result) == 3 else (*result, None)
        if not self.closed:
            await self._sync(allow_expunge)
        self._tagged(cmd.tag, status, text, code)

    def _enable_condstore(self) -> None:
        """A CONDSTORE-enabling command (RFC 7162 §3.1).  The first one issued while a mailbox is
        selected is answered with an untagged ``OK [HIGHESTMODSEQ n]`` first, as after SELECT, so
        the client learns where its view starts (RFC 7162 §3.1, as Dovecot)."""
        if self.condstore:
            return
        self.condstore = True
        if self.view is not None:
            self._untagged_ok("Highest", f"[HIGHESTMODSEQ {self.view.known_modseq}]")

    async def _db_write(self, fn, *args, exclusive: bool = False, **kw):
        """A store write (the store retries it when the database refused it transiently).  Expunge
        and move (``exclusive``) never overlap with the other writes of the account in this process
        (see :class:`RWLock`)."""
        lock = self.shared.write_lock(self._account_id)
        self._lock_ref = lock  # keep the weakly held lock alive while this session exists
        async with lock.hold(exclusive):
            return await fn(*args, **kw)

    # ------------------------------------------------------------------ names
    def _name_in(self, name: str) -> str:
        """Client mailbox name → stored (UTF-8) name (RFC 3501 §5.1.3 mUTF-7 unless UTF-8)."""
        if name.upper() == "INBOX":
            return "INBOX"
        if not self.utf8:
            try:
                name = mutf7_decode(name)
            except ValueError:
                raise _No("Mailbox name is not valid mUTF-7", "CANNOT") from None
        parts = name.split(SEPARATOR)
        if parts[0].upper() == "INBOX":
            parts[0] = "INBOX"
        return SEPARATOR.join(parts)

    def _name_out(self, name: str) -> str:
        return name if self.utf8 else mutf7_encode(name)

    async def _mailbox(self, name: str) -> MailboxInfo:
        mb = await self.store.get_mailbox(self._account_id, self._name_in(name))
        if mb is None:
            raise _No(f"Mailbox doesn't exist: {name}", "NONEXISTENT")
        return mb

    # ------------------------------------------------------------------ any state
    async def _do_capability(self, cmd: Capability):
        self._emit(R.capability(self.capabilities()))
        return "OK", "Capability completed."

    async def _do_noop(self, cmd: Noop):
        return "OK", "NOOP completed."

    async def _do_check(self, cmd: Check):
        self.dirty = True
        return "OK", "Check completed."

    async def _do_logout(self, cmd: Logout):
        self._emit(R.bye("Logging out"))
        self._tagged(cmd.tag, "OK", "Logout completed.")
        self._deselect()
        self.state = _LOGOUT
        self.closed = True
        self.outcome = "logout"

    async def _do_compress(self, cmd: Compress):
        # RFC 4978 §3
        if self.deflate is not None:
            raise _No("Compression is already active.", "COMPRESSIONACTIVE")
        if cmd.algorithm != "DEFLATE":
            raise _No(f"Unknown compression mechanism {cmd.algorithm[:32]}", status="BAD")
        self._tagged(cmd.tag, "OK", "DEFLATE active")
        self._compress_pending = True
        return None

    async def _do_id(self, cmd: Id):
        # RFC 2971 §3.1
        self._emit(R.untagged(R.Atom("ID"), ["name", "Suite", "vendor", "Suite"]))
        return "OK", "ID completed."

    # ------------------------------------------------------------------ not authenticated
    async def _do_starttls(self, cmd: StartTLS):
        if not self.starttls_available:
            raise _No("TLS is already active." if self.tls else "STARTTLS not available.", status="BAD")
        self._tagged(cmd.tag, "OK", "Begin TLS negotiation now.")
        self.reader.take_buffered()  # RFC 9051 §11.1: drop anything pipelined after STARTTLS
        self.starttls_requested = True

    def tls_started(self) -> None:
        """The server finished the TLS handshake after STARTTLS."""
        self.tls = True
        self.starttls_available = False
        self.starttls_requested = False
        self.reader = CommandReader(self.shared.limits)

    async def _do_login(self, cmd: Login):
        if not self.plaintext_ok:
            # RFC 9051 §6.2.3 LOGINDISABLED
            raise _No("Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", "PRIVACYREQUIRED")
        return await self._authenticate(cmd.username, cmd.password)

    async def _do_authenticate(self, cmd: Authenticate):
        if cmd.mechanism != "PLAIN":
            raise _No("Unsupported authentication mechanism.", "CANNOT")
        if not self.plaintext_ok:
            raise _No("Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", "PRIVACYREQUIRED")
        if cmd.initial_response is None:
            # RFC 9051 §6.2.2: empty challenge, then one line of base64
            self.auth_tag = cmd.tag
            self._emit(b"+ \r\n")
            self.reader.expect_raw_line()
            return None
        return await self._auth_plain(cmd.initial_response)

    async def _auth_response(self, data: bytes) -> None:
        tag = self.auth_tag
        self.auth_tag = None
        if tag is None:  # pragma: no cover - the reader only gives raw lines when asked
            return
        if data.strip() == b"*":
            self._tagged(tag, "BAD", "Authentication aborted by client.")
            return
        try:
            decoded = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            self._tagged(tag, "BAD", "Invalid base64 data in continued response.")
            self._count_bad()
            return
        cmd = Authenticate(tag=tag, mechanism="PLAIN", initial_response=decoded)
        self.stats.commands -= 1  # the same command, continued
        await self._command(cmd)

    async def _auth_plain(self, data: bytes):
        # RFC 4616 §2: [authzid] NUL authcid NUL passwd
        parts = data.split(b"\0")
        if len(parts) != 3:
            raise _No("Invalid AUTHENTICATE PLAIN data.", status="BAD")
        try:
            authzid, authcid, passwd = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            raise _No("Invalid UTF-8 in AUTHENTICATE PLAIN data.", status="BAD") from None
        if authzid and authzid.lower() != authcid.lower():
            raise _No("Authorization identity not permitted.", "AUTHORIZATIONFAILED")
        return await self._authenticate(authcid, passwd)

    async def _authenticate(self, user: str, password: str):
        res = await self.ctx.accounts.authenticate(user, password, scope="imap", ip=self.peer)
        self.ctx.metrics.login("imap", res.ok)
        if res.ok:
            assert res.account is not None
            self.account = res.account
            self.credential = Credential.of_login(res.account.id, res.app_password_id if res.via_app_password else None)
            self.state = _AUTH
            self.outcome = "authenticated"
            caps = " ".join(self.capabilities())
            return "OK", "Logged in", f"[CAPABILITY {caps}]"
        self.stats.auth_failures += 1
        # progressive delay (RFC 9051 §11.4 "servers may slow down"): base, 2×base, 4×base …
        await asyncio.sleep(min(self.shared.auth_delay * 2 ** (self.stats.auth_failures - 1), 15))
        if res.outcome == "locked":
            code, text = "UNAVAILABLE", "Too many failed logins; try again later."
        else:
            code, text = "AUTHENTICATIONFAILED", "Authentication failed."
        if self.stats.auth_failures >= MAX_AUTH_FAILURES:
            self.outcome = "auth-failures"
            raise _ByeAfter(text, code)
        raise _No(text, code)

    # ------------------------------------------------------------------ authenticated
    async def _do_enable(self, cmd: Enable):
        # RFC 5161 §3.1: unknown capabilities are ignored
        newly = []
        for c in cmd.capabilities:
            name = ENABLEABLE.get(c.upper())
            if name is None or name in self.enabled:
                continue
            self.enabled.add(name)
            newly.append(name)
            if name == "QRESYNC":  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
                self.enabled.add("CONDSTORE")
        self._emit(b"* ENABLED" + b"".join(b" " + n.encode() for n in newly) + b"\r\n")
        if "CONDSTORE" in self.enabled:
            self._enable_condstore()  # RFC 7162 §3.1: with a mailbox selected, OK [HIGHESTMODSEQ] too
        return "OK", "Enabled."

    async def _do_namespace(self, cmd: Namespace):
        self._emit(b'* NAMESPACE (("" "/")) NIL NIL\r\n')  # RFC 2342 §5
        return "OK", "Namespace completed."

    async def _do_create(self, cmd: Create):
        name = self._name_in(cmd.mailbox.rstrip(SEPARATOR) or cmd.mailbox)
        if name == "INBOX":
            raise _No("Mailbox already exists", "ALREADYEXISTS")
        use = None
        if cmd.special_use:
            # RFC 6154 §3: CREATE ... (USE (\\Drafts)); NO [USEATTR] for what we cannot honour
            if len(cmd.special_use) > 1:
                raise _No("Only one special-use attribute per mailbox.", "USEATTR")
            use = SPECIAL_USES_CANON.get(cmd.special_use[0].lower())
            if use is None:
                raise _No(f"Unsupported special-use attribute {cmd.special_use[0][:32]}", "USEATTR")
            holder = next(
                (b.name for b in await self.store.list_mailboxes(self._account_id) if b.special_use == use), None
            )
            if holder is not None:
                raise _No(f"{use} is the special use of {self._name_out(holder)} already.", "USEATTR")
        try:
            made = await self.store.create_mailbox(self._account_id, name, special_use=use)
        except MailboxExists:
            raise _No("Mailbox already exists", "ALREADYEXISTS") from None
        except MailStoreError as e:
            raise _No(str(e), e.code) from None
        # RFC 8474 §4.1: the tagged OK of CREATE carries the new mailbox's MAILBOXID
        return "OK", "Create completed.", f"[MAILBOXID ({self.store.mailbox_object_id(made.id)})]"

    async def _do_delete(self, cmd: Delete):
        name = self._name_in(cmd.mailbox)
        mb = await self.store.get_mailbox(self._account_id, name)
        if mb is None:
            raise _No(f"Mailbox doesn't exist: {cmd.mailbox}", "NONEXISTENT")
        if self.view is not None and self.view.mailbox_id == mb.id:
            self._deselect()
        try:
            await self.store.delete_mailbox(self._account_id, name)
            if mb.subscribed:
                # RFC 3501 §6.3.6: the subscription outlives the mailbox (LIST shows \NonExistent)
                await self.store.set_subscribed(self._account_id, name, True)
        except MailStoreError as e:
            raise _No(str(e), e.code) from None
        return "OK", "Delete completed."

    async def _do_rename(self, cmd: Rename):
        old, new = self._name_in(cmd.mailbox), self._name_in(cmd.new_name.rstrip(SEPARATOR) or cmd.new_name)
        try:
            await self.store.rename_mailbox(self._account_id, old, new)
        except MailStoreError as e:
            raise _No(str(e), e.code) from None
        return "OK", "Rename completed."

    async def _do_subscribe(self, cmd: Subscribe):
        try:
            await self.store.set_subscribed(self._account_id, self._name_in(cmd.mailbox), True)
        except MailStoreError as e:
            raise _No(str(e), e.code) from None
        return "OK", "Subscribe completed."

    async def _do_unsubscribe(self, cmd: Unsubscribe):
        try:
            await self.store.set_subscribed(self._account_id, self._name_in(cmd.mailbox), False)
        except MailStoreError as e:
            raise _No(str(e), e.code) from None
        return "OK", "Unsubscribe completed."

    # --- LIST (RFC 9051 §6.3.9, RFC 5258, RFC 6154, RFC 5819)
    @staticmethod
    def _pattern(pattern: str) -> re.Pattern:
        out = []
        for ch in pattern:
            if ch == "*":
                out.append(".*")
            elif ch == "%":
                out.append("[^/]*")
            else:
                out.append(re.escape(ch))
        return re.compile("".join(out), re.DOTALL)

    def _matcher(self, reference: str, patterns: tuple[str, ...]) -> Callable[[str], bool]:
        regexes = []
        for p in patterns:
            # without UTF-8 the pattern is matched against the names as the client sees them
            # (modified UTF-7), so a wildcard may stand inside an encoded run (RFC 3501 §5.1.3)
            full = reference + p
            regexes.append(self._pattern(full))
            # RFC 9051 §5.1: INBOX is case-insensitive, also as a pattern's first level
            head = full[:5]
            if head.upper() == "INBOX" and head != "INBOX":
                regexes.append(self._pattern("INBOX" + full[5:]))

        def match(name: str) -> bool:
            shown = self._name_out(name)
            return any(r.fullmatch(shown) for r in regexes)

        return match

    async def _do_list(self, cmd: List):
        return await self._list(cmd.reference, cmd.patterns, cmd.selection, cmd.returns, cmd.extended, "LIST")

    async def _do_lsub(self, cmd: Lsub):
        return await self._list(cmd.reference, (cmd.pattern,), frozenset({"SUBSCRIBED"}), ListReturn(), False, "LSUB")

    async def _list(self, reference, patterns, selection, returns: ListReturn, extended: bool, command: str):
        if command == "LIST" and not extended and patterns == ("",):
            # RFC 9051 §6.3.9: the hierarchy delimiter and root
            self._emit(R.list_response(["\\Noselect"], SEPARATOR, "", command="LIST"))
            return "OK", "List completed."
        boxes = await self.store.list_mailboxes(self._account_id)
        only_sub = "SUBSCRIBED" in selection
        only_special = "SPECIAL-USE" in selection
        recursive = "RECURSIVEMATCH" in selection
        show_sub = only_sub or returns.subscribed
        status_items = returns.status
        # RFC 5258 §3.1 / RFC 3501 §6.3.9: subscribed names without a mailbox stay on the list
        lost = await self.store.lost_subscriptions(self._account_id) if only_sub else []
        existing = {b.name for b in boxes}
        children: set[str] = set()
        sub_children: set[str] = set()
        for name, subscribed in [(b.name, b.subscribed) for b in boxes] + [(n, True) for n in lost]:
            parts = name.split(SEPARATOR)
            for i in range(1, len(parts)):
                parent = SEPARATOR.join(parts[:i])
                if name in existing:
                    children.add(parent)
                if subscribed:
                    sub_children.add(parent)
        # (name, mailbox or None when it does not exist, subscribed)
        entries: list[tuple[str, MailboxInfo | None, bool]] = [(b.name, b, b.subscribed) for b in boxes]
        entries += [(n, None, True) for n in lost if n not in existing]
        if recursive and only_sub:
            # RFC 5258 §3.5: a parent that does not exist but has subscribed children is listed
            # (\NonExistent) so that it can carry CHILDINFO
            listed = {e[0] for e in entries}
            entries += [(n, None, False) for n in sorted(sub_children - listed)]
        entries.sort(key=lambda e: (e[0] != "INBOX", e[0]))
        match = self._matcher(reference, patterns)
        for name, b, subscribed in entries:
            if not match(name):
                continue
            # RFC 5258 §3.5: CHILDINFO for a name that does not match the selection itself but
            # has descendants that do (as Dovecot: not for a subscribed parent)
            childinfo = recursive and only_sub and not subscribed and name in sub_children
            if only_sub and not subscribed and not childinfo:
                continue
            if only_special and (b is None or not b.special_use):
                continue
            attrs = []
            if b is None:
                if command == "LIST":
                    attrs.append("\\NonExistent")  # RFC 5258 §3.4 (implies \Noselect)
            elif command != "LSUB":
                attrs.append("\\HasChildren" if name in children else "\\HasNoChildren")
            if show_sub and subscribed and command == "LIST":
                attrs.append("\\Subscribed")
            if b is not None and b.special_use and command == "LIST":
                attrs.append(b.special_use)  # RFC 6154 §2
            ext = []
            if childinfo:
                ext.append(('"CHILDINFO"', ["SUBSCRIBED"]))  # RFC 5258 §3.5
            out_name = self._name_out(name)
            self._emit(R.list_response(attrs, SEPARATOR, out_name, ext, command=command, utf8=self.utf8))
            if b is not None and status_items is not None and command == "LIST" and (not only_sub or subscribed):
                try:
                    self._emit(await self._status_line(b, status_items))
                except NoSuchMailbox:
                    pass
        return "OK", f"{command.capitalize()} completed."

    async def _status_line(self, mb: MailboxInfo, items: tuple[str, ...]) -> bytes:
        st = await self.store.status(mb.id)
        values: dict[str, int | str] = {
            "MESSAGES": st.messages,
            "UIDNEXT": st.uidnext,
            "UIDVALIDITY": st.uidvalidity,
            "UNSEEN": st.unseen,
            "DELETED": st.deleted,
            "SIZE": st.size,
            "HIGHESTMODSEQ": st.highestmodseq,
            "APPENDLIMIT": self.shared.limits.max_append_literal,
            # RFC 3501 §6.3.10: messages no session has had as recent yet (Dovecot counts the same)
            "RECENT": await self.store.recent_count(mb.id) if "RECENT" in items else 0,
            "MAILBOXID": f"({self.store.mailbox_object_id(mb.id)})",  # RFC 8474 §4.2
        }
        out: list[tuple[str, int | str]] = []
        for it in items:
            if it in values and it not in (k for k, _ in out):
                out.append((it, values[it]))
        return R.status_response(self._name_out(mb.name), out, self.utf8)

    async def _do_status(self, cmd: Status):
        mb = await self._mailbox(cmd.mailbox)
        for it in cmd.items:
            if it not in STATUS_ITEMS:
                raise _No(f"Unknown STATUS item {it}", status="BAD")
        if "HIGHESTMODSEQ" in cmd.items:
            self._enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
        self._emit(await self._status_line(mb, cmd.items))
        return "OK", "Status completed."

    # --- APPEND (RFC 9051 §6.3.12, RFC 4315 APPENDUID)
    async def _do_append(self, cmd: Append):
        mb = await self.store.get_mailbox(self._account_id, self._name_in(cmd.mailbox))
        if mb is None:
            raise _No(f"Mailbox doesn't exist: {cmd.mailbox}", "TRYCREATE")
        items = []
        for m in cmd.messages:
            data = bytes(m.data)
            if not data:
                raise _No("Can't save a zero byte message.", "CANNOT")
            ts = m.internal_date.timestamp() if m.internal_date is not None else None
            items.append(AppendItem(data, m.flags, ts))
        try:
            # RFC 3502 §6 MULTIAPPEND: all the messages in one transaction, or none of them
            _, msgs = await self._db_write(self.store.append_many, self._account_id, mb, items)
        except QuotaExceeded:
            raise _No("Quota exceeded (mailbox for user is full)", "OVERQUOTA") from None
        except NoSuchMailbox:
            raise _No(f"Mailbox doesn't exist: {cmd.mailbox}", "TRYCREATE") from None
        uids = [msg.uid for msg in msgs]
        self.ctx.metrics.messages_in.labels("imap-append").inc(len(uids))
        view = self.view
        if view is not None and view.mailbox_id == mb.id:
            # report EXISTS before the tagged OK: straight from what was stored when nothing
            # else is pending (no other change can hold a lower UID), else by re-reading
            modseq = msgs[0].modseq
            if not self.dirty and modseq == view.known_modseq + 1 and uids[0] >= view.uidnext:
                for msg in msgs:
                    view.append(msg)
                view.uidnext = uids[-1] + 1
                self._applied_modseq(modseq)
                self._announce_keywords(view, (msg.flags for msg in msgs))
                self._emit(b"* %d EXISTS\r\n" % len(view))
                if not self.rev2 and await self._take_recent(view):  # RFC 3501 §7.3.2
                    self._emit(b"* %d RECENT\r\n" % view.recent_count)
            else:
                self.dirty = True
        code = R.response_code("APPENDUID", mb.uidvalidity, R.Raw(R.seqset(uids)))
        return "OK", "Append completed.", code

    # --- SELECT / EXAMINE (RFC 9051 §6.3.2, RFC 7162 §3.1.8 / §3.2.5)
    def _deselect(self) -> None:
        if self.view is not None:
            self.shared.hub.unwatch(self, self.view.mailbox_id)
        self.view = None
        if self.state == _SELECTED:
            self.state = _AUTH

    async def _do_select(self, cmd: Select):
        if self.view is not None:
            self._deselect()
            if self.qresync or self.rev2:
                self._untagged_ok("Previous mailbox closed.", "[CLOSED]")  # RFC 7162 §3.2.11
        if cmd.qresync is not None and not self.qresync:
            raise _No("QRESYNC not enabled", status="BAD")  # RFC 7162 §3.2.5
        if cmd.condstore:
            self.condstore = True
        mb = await self._mailbox(cmd.mailbox)
        rows = await self.store.message_rows(mb.id)
        view = View(mb.id, mb.name, mb.uidvalidity, cmd.readonly, known_modseq=mb.highestmodseq, uidnext=mb.uidnext)
        view.load_rows(rows)
        highest = max(mb.highestmodseq, max((r[1] for r in rows), default=0))
        view.known_modseq = mb.highestmodseq
        uidnext = max(mb.uidnext, rows[-1][0] + 1 if rows else 0)
        if not self.rev2:
            await self._take_recent(view)  # before the answer: nothing awaits once it has begun
        self.view = view
        self.state = _SELECTED
        self.shared.hub.watch(self, mb.id)
        self.dirty = False
        view.keywords = {k.lower(): k for k in self._keywords(view)}
        self._emit_flags(view)
        self._emit(b"* %d EXISTS\r\n" % len(view))
        if not self.rev2:
            self._emit(b"* %d RECENT\r\n" % view.recent_count)
            first_unseen = next(
                (i + 1 for i, u in enumerate(view.uids) if "\\seen" not in view.msgs[u].flags_lower), None
            )
            if first_unseen is not None:
                self._untagged_ok("First unseen.", f"[UNSEEN {first_unseen}]")
        self._untagged_ok("UIDs valid", f"[UIDVALIDITY {mb.uidvalidity}]")
        self._untagged_ok("Predicted next UID", f"[UIDNEXT {uidnext}]")
        self._untagged_ok("Highest", f"[HIGHESTMODSEQ {highest}]")
        self._untagged_ok("Ok", f"[MAILBOXID ({self.store.mailbox_object_id(mb.id)})]")  # RFC 8474 §4.1
        if self.rev2:
            self._emit(R.list_response([], SEPARATOR, self._name_out(mb.name), utf8=self.utf8))
        if cmd.qresync is not None and cmd.qresync.uidvalidity == mb.uidvalidity:
            await self._qresync_select(view, cmd.qresync)
        if cmd.readonly:
            return "OK", "Examine completed.", "[READ-ONLY]"
        return "OK", "Select completed.", "[READ-WRITE]"

    async def _take_recent(self, view: View) -> int:
        """IMAP4rev1 \\Recent (RFC 3501 §2.3.2): a read-write session claims, in the database, the
        messages no session has had as recent yet, so each message is recent in exactly one
        session, across processes; a read-only one (EXAMINE) shows the unclaimed ones without
        claiming them (as Dovecot).  Updates ``view.recent_count``; returns how many messages
        became recent."""
        if view.readonly:
            first, upto = await self.store.recent_from(view.mailbox_id), view.uids[-1] + 1 if view.uids else 0
        else:
            first, upto = await self.store.claim_recent(view.mailbox_id)
        newly = 0
        if first < upto:
            for u in view.uids[bisect.bisect_left(view.uids, first) :]:
                if u >= upto:
                    break
                m = view.msgs[u]
                newly += not m.recent
                m.recent = True
        view.recent_count = sum(1 for m in view.msgs.values() if m.recent)
        return newly

    def _emit_flags(self, view: View) -> None:
        """``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` with the keywords announced so far."""
        keywords = sorted(view.keywords.values())
        self._emit(b"* FLAGS " + R.flag_list(list(SYSTEM_FLAGS) + keywords) + b"\r\n")
        if view.readonly:
            self._untagged_ok("Read-only mailbox.", b"[PERMANENTFLAGS ()]")
        else:
            self._untagged_ok(
                "Flags permitted.", b"[PERMANENTFLAGS " + R.flag_list(list(SYSTEM_FLAGS) + keywords + ["\\*"]) + b"]"
            )

    def _announce_keywords(self, view: View, flag_sets: Iterable[tuple[str, ...]]) -> None:
        """RFC 9051 §7.3.5 / RFC 3501 §7.2.6: a keyword the client has not been told about is
        announced with a new ``* FLAGS`` (and PERMANENTFLAGS) before any FETCH that carries it."""
        new = False
        for flags in flag_sets:
            for f in flags:
                if not f.startswith("\\") and f.lower() not in view.keywords:
                    view.keywords[f.lower()] = f
                    new = True
        if new:
            self._emit_flags(view)

    @staticmethod
    def _keywords(view: View) -> list[str]:
        seen: dict[str, str] = {}
        for m in view.msgs.values():
            for f in m.flags:
                if not f.startswith("\\"):
                    seen.setdefault(f.lower(), f)
        return sorted(seen.values())

    async def _qresync_select(self, view: View, qr) -> None:
        # RFC 7162 §3.2.5.2: VANISHED (EARLIER) then FETCH of what changed since the client's MODSEQ
        ch = await self.store.changes_since(view.mailbox_id, qr.modseq)
        gone = [u for u in ch.expunged if u not in view.msgs]
        if qr.known_uids is not None:
            largest = max(gone + view.uids + [1])
            gone = [u for u in gone if qr.known_uids.contains(u, largest)]
        if gone:
            self._emit(R.vanished(gone, earlier=True))
        for m in ch.changed:
            seq = view.seq_of(m.uid)
            if seq is None:
                continue
            cur = view.msgs[m.uid]
            self._emit(
                R.fetch_response(
                    seq,
                    [
                        ("UID", cur.uid),
                        ("FLAGS", fetchmod.flags_value(cur.shown_flags)),
                        ("MODSEQ", R.Raw(b"(%d)" % cur.modseq)),
                    ],
                )
            )

    async def _do_close(self, cmd: Close):
        view = self.view
        if view is not None and not view.readonly:
            # RFC 9051 §6.4.1: expunge silently
            await self._db_write(
                self.store.expunge,
                self._account_id,
                view.mailbox_id,
                [u for u in view.uids if u not in view.ghosts],
                exclusive=True,
            )
        self._deselect()
        return "OK", "Close completed."

    async def _do_unselect(self, cmd: Unselect):
        self._deselect()  # RFC 3691
        return "OK", "Unselect completed."

    # ------------------------------------------------------------------ selected: sync
    async def _sync(self, allow_expunge: bool) -> None:
        """Report what changed in the selected mailbox since the view was last synced."""
        view = self.view
        if view is None:
            return
        if self.dirty:
            self.dirty = False
            ch = await self.store.changes_since(view.mailbox_id, view.known_modseq)
            if ch.highestmodseq == 0:  # the mailbox was deleted (or renamed away by RENAME INBOX)
                self._deselect()
                self._emit(R.bye("Selected mailbox was deleted, have to disconnect."))
                self.closed = True
                self.outcome = "mailbox-deleted"
                return
            for uid in ch.expunged:
                if uid in view.msgs:
                    view.ghosts.add(uid)
            self._announce_keywords(view, (m.flags for m in ch.changed))
            added = False
            for m in ch.changed:
                cur = view.msgs.get(m.uid)
                if cur is None:
                    if m.uid in ch.expunged:
                        continue
                    view.append(m)
                    added = True
                    continue
                if cur.flags != m.flags or cur.modseq != m.modseq:
                    flags_changed = cur.flags != m.flags
                    cur.update(m.flags, m.modseq)
                    if m.uid in view.ghosts:
                        continue
                    if flags_changed or self.condstore:
                        self._emit(self._flags_fetch(view.seq(m.uid), cur))
            view.known_modseq = max(view.known_modseq, ch.highestmodseq)
            view.uidnext = max(view.uidnext, ch.uidnext)
            if added:
                self._emit(b"* %d EXISTS\r\n" % len(view))
                if not self.rev2:
                    before = view.recent_count
                    newly = await self._take_recent(view)
                    if newly or view.recent_count != before:  # RFC 3501 §7.3.2: when it changed
                        self._emit(b"* %d RECENT\r\n" % view.recent_count)
        if allow_expunge and view.ghosts:
            self._report_expunged(sorted(view.ghosts))

    def _flags_fetch(self, seq: int, m: Msg) -> bytes:
        items: list = [("UID", m.uid), ("FLAGS", fetchmod.flags_value(m.shown_flags))]
        if self.condstore:
            items.append(("MODSEQ", R.Raw(b"(%d)" % m.modseq)))  # RFC 7162 §3.1.4
        return R.fetch_response(seq, items)

    def _report_expunged(self, uids: list[int]) -> None:
        view = self.view
        assert view is not None
        present = [u for u in uids if u in view.msgs]
        if not present:
            return
        if self.qresync:
            for u in present:
                view.remove(u)
            self._emit(R.vanished(present))  # RFC 7162 §3.2.10
            return
        seqs = sorted((view.seq(u) for u in present), reverse=True)
        for s in seqs:
            del view.msgs[view.uids[s - 1]]
            del view.uids[s - 1]
            self._emit(b"* %d EXPUNGE\r\n" % s)
        view.ghosts.difference_update(present)
        keep = set(view.uids)
        view.saved = [u for u in view.saved if u in keep]

    # ------------------------------------------------------------------ IDLE (RFC 2177, RFC 9051 §6.3.13)
    async def _do_idle(self, cmd: Idle):
        self.idle_tag = cmd.tag
        self._emit(R.continuation("idling"))
        self.reader.expect_idle_done(cmd.tag)
        await self._sync(allow_expunge=True)

    async def _idle_done(self, tag: str) -> None:
        self.idle_tag = None
        await self._sync(allow_expunge=True)
        self._tagged(tag, "OK", "Idle completed.")

    @property
    def idling(self) -> bool:
        return self.idle_tag is not None

    # ------------------------------------------------------------------ selected: messages
    def _resolve(self, seqset, uid: bool) -> list[tuple[int, int]]:
        try:
            return self._selected().select(seqset, uid)
        except InvalidSet as e:
            raise _No(f"Error in IMAP command: {e}", status="BAD") from None

    async def _structures(self, view: View, uids: list[int]) -> dict[int, mime.MessageStructure]:
        cache = self.shared.structures
        out: dict[int, mime.MessageStructure] = {}
        missing = []
        for u in uids:
            st = cache.get(view.msgs[u].blob)
            if st is None:
                missing.append(u)
            else:
                out[u] = st
        if missing:
            got = await self.store.structures(view.mailbox_id, missing)
            for u, st in got.items():
                cache.put(view.msgs[u].blob, st)
                out[u] = st
        return out

    async def _raw(self, blob: str) -> bytes | None:
        cache = self.shared.raw
        data = cache.get(blob)
        if data is None:
            try:
                data = await self.ctx.blobs.read_bytes(blob)
            except (FileNotFoundError, KeyError, OSError):
                return None
            cache.put(blob, data, len(data))
        return data

    async def _do_fetch(self, cmd: Fetch):
        view = self._selected()
        pairs = self._resolve(cmd.sequence_set, cmd.uid)
        attrs = cmd.attrs
        if cmd.vanished and not (cmd.uid and self.qresync and cmd.changedsince is not None):
            raise _No("VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC", status="BAD")  # RFC 7162 §3.2.6
        add_modseq = False
        if cmd.changedsince is not None or any(a.name == "MODSEQ" for a in attrs):
            self._enable_condstore()
        if cmd.changedsince is not None:
            add_modseq = True  # RFC 7162 §3.1.4.1
            if cmd.vanished:
                ch = await self.store.changes_since(view.mailbox_id, cmd.changedsince)
                largest = view.uids[-1] if view.uids else 0
                gone = [u for u in ch.expunged if u not in view.msgs and cmd.sequence_set.contains(u, max(largest, u))]
                if gone:
                    self._emit(R.vanished(gone, earlier=True))
            pairs = [(s, u) for s, u in pairs if view.msgs[u].modseq > cmd.changedsince]
        need = fetchmod.needs(attrs)
        seen_set: set[int] = set()
        if any(a.sets_seen for a in attrs) and not view.readonly:
            # RFC 9051 §6.4.5: BODY[...] (not PEEK), RFC822, RFC822.TEXT, BINARY[...] set \Seen
            todo = [u for _, u in pairs if u not in view.ghosts and "\\seen" not in view.msgs[u].flags_lower]
            if todo:
                changed, _ = await self._db_write(
                    self.store.store_flags,
                    self._account_id,
                    view.mailbox_id,
                    todo,
                    "add",
                    ["\\Seen"],
                    durable=self.shared.flags_durable,
                )
                self._applied(changed)
                for m in changed:
                    cur = view.msgs.get(m.uid)
                    if cur is not None:
                        cur.update(m.flags, m.modseq)
                        seen_set.add(m.uid)
        if fetchmod.view_only(attrs) and not seen_set:
            render = fetchmod.view_renderer(attrs, uid=cmd.uid, add_modseq=add_modseq)
            msgs = view.msgs
            for seq, uid in pairs:
                self._emit(render(seq, msgs[uid]))
                if self._out_size >= FLUSH_AT:
                    await self.flush()
            return "OK", "Fetch completed."
        structures: dict[int, mime.MessageStructure] = {}
        if need.structure and pairs:
            structures = await self._structures(view, [u for _, u in pairs])
        oids: dict[int, tuple[str, str]] = {}
        if need.ids and pairs:
            oids = await self.store.object_ids(view.mailbox_id, [u for _, u in pairs])  # RFC 8474 §5
        missing = False
        error = None
        for seq, uid in pairs:
            m = view.msgs[uid]
            st = structures.get(uid)
            raw = None
            if (need.structure and st is None) or (need.ids and uid not in oids):
                missing = True
                continue
            if need.raw:
                raw = await self._raw(m.blob)
                if raw is None:
                    missing = True
                    continue
            items, err = fetchmod.render(
                seq,
                m,
                attrs,
                uid=cmd.uid,
                structure=st,
                raw=raw,
                add_flags=uid in seen_set,
                add_modseq=add_modseq or (uid in seen_set and self.condstore),
                cache=self.shared.sections,
                ids=oids.get(uid),
            )
            error = error or err
            self._emit(R.fetch_response_chunks(seq, items, self.utf8))
            await self._maybe_flush()
        if error is not None:
            return "NO", error[1], f"[{error[0]}]"
        if missing:
            return "NO", "Some of the requested messages no longer exist.", "[EXPUNGEISSUED]"
        return "OK", "Fetch completed."

    async def _do_store(self, cmd: Store):
        view = self._selected()
        if view.readonly:
            raise _No("Mailbox is read-only.", "CANNOT")
        pairs = self._resolve(cmd.sequence_set, cmd.uid)
        if cmd.unchangedsince is not None:
            self._enable_condstore()
        mode = {"+": "add", "-": "remove", "": "replace"}[cmd.mode]
        live = [(s, u) for s, u in pairs if u not in view.ghosts]
        changed, modified = await self._db_write(
            self.store.store_flags,
            self._account_id,
            view.mailbox_id,
            [u for _, u in live],
            mode,
            cmd.flags,
            unchangedsince=cmd.unchangedsince,
            durable=self.shared.flags_durable,
        )
        self._applied(changed)
        for m in changed:
            cur = view.msgs.get(m.uid)
            if cur is not None:
                cur.update(m.flags, m.modseq)
        self._announce_keywords(view, (m.flags for m in changed))
        failed = set(modified)
        changed_uids = {m.uid for m in changed}
        for seq, uid in live:
            if uid in failed:
                continue
            m = view.msgs[uid]
            if cmd.silent:
                # RFC 7162 §3.1.3: with CONDSTORE the MODSEQ is reported even for .SILENT
                if self.condstore and uid in changed_uids:
                    self._emit(R.fetch_response(seq, [("UID", uid), ("MODSEQ", R.Raw(b"(%d)" % m.modseq))]))
                continue
            items: list = []
            if cmd.uid:
                items.append(("UID", uid))
            items.append(("FLAGS", fetchmod.flags_value(m.shown_flags)))
            if self.condstore:
                items.append(("MODSEQ", R.Raw(b"(%d)" % m.modseq)))
            self._emit(R.fetch_response(seq, items))
        if modified:
            nums = modified if cmd.uid else [view.seq(u) for u in modified]
            return "OK", "Conditional STORE failed.", R.response_code("MODIFIED", R.Raw(R.seqset(nums)))
        return "OK", "Store completed."

    async def _do_expunge(self, cmd: Expunge):
        view = self._selected()
        if view.readonly:
            raise _No("Mailbox is read-only.", "CANNOT")
        if cmd.uid_set is not None:
            uids = [u for _, u in view.by_uidset(cmd.uid_set)]
        else:
            uids = list(view.uids)
        gone, modseq = (
            (await self._db_write(self.store.expunge_modseq, self._account_id, view.mailbox_id, uids, exclusive=True))
            if uids
            else ([], None)
        )
        if modseq is not None and not self.dirty and modseq == view.known_modseq + 1:
            self._applied_modseq(modseq)  # nothing else happened in between: no re-read needed
        else:
            self.dirty = True
        for u in gone:
            if u in view.msgs:
                view.ghosts.add(u)
        self._report_expunged(sorted(view.ghosts) if cmd.uid_set is None else gone)
        return "OK", "Expunge completed."

    async def _copy(self, cmd, move: bool):
        view = self._selected()
        if move and view.readonly:
            raise _No("Mailbox is read-only.", "CANNOT")
        pairs = self._resolve(cmd.sequence_set, cmd.uid)
        dst = await self.store.get_mailbox(self._account_id, self._name_in(cmd.mailbox))
        if dst is None:
            raise _No(f"Mailbox doesn't exist: {cmd.mailbox}", "TRYCREATE")  # RFC 9051 §6.4.7
        # RFC 6851 §3.3 allows MOVE into the selected mailbox: new UIDs, originals expunged (Dovecot)
        uids = [u for _, u in pairs if u not in view.ghosts]
        if not pairs:
            return "OK", "No messages found."
        if not uids:
            raise _No("Some of the requested messages no longer exist.", "EXPUNGEISSUED")
        try:
            if move:
                result = await self._db_write(
                    self.store.move, view.mailbox_id, uids, dst.id, self._account_id, exclusive=True
                )
            else:
                result = await self._db_write(self.store.copy, self._account_id, view.mailbox_id, uids, dst.id)
        except QuotaExceeded:
            raise _No("Quota exceeded (mailbox for user is full)", "OVERQUOTA") from None
        except NoSuchMailbox:
            raise _No(f"Mailbox doesn't exist: {cmd.mailbox}", "TRYCREATE") from None
        if not result:
            raise _No("Some of the requested messages no longer exist.", "EXPUNGEISSUED")
        code = R.response_code(
            "COPYUID", dst.uidvalidity, R.Raw(R.seqset(s for s, _ in result)), R.Raw(R.seqset(d for _, d in result))
        )
        if dst.id == view.mailbox_id:
            self.dirty = True
        if not move:
            return "OK", "Copy completed.", code
        # RFC 6851 §4.3: COPYUID in an untagged OK, then the expunges, then the tagged OK
        self._untagged_ok("Moved UIDs.", code)
        moved = [s for s, _ in result]
        for u in moved:
            if u in view.msgs:
                view.ghosts.add(u)
        self.dirty = True
        self._report_expunged(moved)
        return "OK", "Move completed."

    async def _do_copy(self, cmd: Copy):
        return await self._copy(cmd, False)

    async def _do_move(self, cmd: Move):
        return await self._copy(cmd, True)

    async def _search_texts(self, view: View, uids: list[int]) -> dict[int, SearchText]:
        """The search texts of ``uids``: from the process's cache, else read once from the store. A text
        another session is reading already is awaited, not read again: clients that select a big
        mailbox together would each read all of it (16 sessions × 6 400 texts, bench/scale)."""
        cache, loading = self.shared.texts, self.shared.texts_loading
        out: dict[int, SearchText] = {}
        missing: list[int] = []
        waits: list[tuple[int, asyncio.Future[SearchText | None]]] = []
        for u in uids:
            blob = view.msgs[u].blob
            t = cache.get(blob)
            if t is not None:
                out[u] = t
            elif (f := loading.get(blob)) is not None:
                waits.append((u, f))
            else:
                missing.append(u)
        if missing:
            loop = asyncio.get_running_loop()
            mine = {view.msgs[u].blob: loop.create_future() for u in missing if view.msgs[u].blob not in loading}
            loading.update(mine)
            read: dict[str, SearchText] = {}
            try:
                for u, t in (await self.store.search_texts(view.mailbox_id, missing)).items():
                    read[view.msgs[u].blob] = out[u] = t
                    cache.put(view.msgs[u].blob, t, _text_size(t))
            finally:
                for blob, f in mine.items():  # resolved in any case: None sends a waiter to the store
                    if loading.get(blob) is f:
                        del loading[blob]
                    if not f.done():
                        f.set_result(read.get(blob))
        retry = []
        for u, f in waits:
            t = await asyncio.shield(f)  # a waiter's cancellation must not cancel the others' wait
            if t is None:
                retry.append(u)
            else:
                out[u] = t
        if retry:  # the other session's read failed or no longer found them: ask the store ourselves
            out.update(await self.store.search_texts(view.mailbox_id, retry))
        return out

    async def _matching(
        self, view: View, criteria: SearchKey
    ) -> tuple[searchmod.Requirements, searchmod.Context, list[tuple[int, int]]]:
        """The (seq, uid) of the live messages matching ``criteria`` (RFC 9051 §6.4.4)."""
        req = searchmod.requirements(criteria)
        if req.modseq:
            self._enable_condstore()
        live = [(i + 1, u) for i, u in enumerate(view.uids) if u not in view.ghosts]
        if req.text and len(live) >= INDEX_MIN_MESSAGES:
            # the full-text index narrows the messages the string keys let match
            cand = await self._candidates(view, criteria)
            if cand is not None:
                live = [(s, u) for s, u in live if u in cand]
        sctx = searchmod.Context(len(view.uids), view.uids[-1] if view.uids else 0, set(view.saved))
        if req.text and live:
            sctx.texts = await self._search_texts(view, [u for _, u in live])
        if req.sent and live:
            sctx.sent = await self.store.sent_dates(view.mailbox_id)
        if req.ids and live:
            sctx.ids = await self.store.object_ids(view.mailbox_id, [u for _, u in live])  # RFC 8474 §6
        match = searchmod.compile_key(criteria, sctx)
        msgs = view.msgs
        return req, sctx, [(s, u) for s, u in live if match(s, msgs[u])]

    async def _candidates(self, view: View, key: SearchKey) -> set[int] | None:
        """UIDs that may match ``key`` by the full-text index (a superset), None when it can't say:
        an indexed string key, AND (intersection), OR (union when both sides can say)."""
        if isinstance(key, SearchAnd):
            out: set[int] | None = None
            for k in key.keys:
                got = await self._candidates(view, k)
                if got is not None:
                    out = got if out is None else out & got
            return out
        if isinstance(key, SearchOr):
            left = await self._candidates(view, key.left)
            right = await self._candidates(view, key.right) if left is not None else None
            return None if left is None or right is None else left | right
        if isinstance(key, SearchCriterion) and key.key in searchmod.INDEX_KEYS:
            return await self.store.text_candidates(view.mailbox_id, key.key, str(key.value))
        return None

    async def _sort_facts(self, view: View, hits: list[tuple[int, int]], sent: dict[int, float | None]):
        """Header facts of the matching messages for SORT and THREAD (RFC 5256)."""
        out: list[sortthread.Facts] = []
        structures = await self._structures(view, [u for _, u in hits]) if hits else {}
        for seq, uid in hits:
            m = view.msgs[uid]
            st = structures.get(uid)
            raw = await self._raw(m.blob) if st is not None else None
            if raw is None or st is None:
                continue  # expunged meanwhile: left out, as SEARCH leaves it out
            header = raw[: st.root.body_start]
            out.append(sortthread.facts(seq, uid, m.internaldate, sent.get(uid), m.size, header))
        return out

    async def _do_sort(self, cmd: Sort):
        view = self._selected()
        _, sctx, hits = await self._matching(view, cmd.criteria)
        need_sent = not all(key in ("ARRIVAL", "SIZE") for key, _ in cmd.keys)
        sent = sctx.sent or (await self.store.sent_dates(view.mailbox_id) if hits and need_sent else {})
        if all(key in CHEAP_SORT_KEYS for key, _ in cmd.keys):
            # arrival, Date: and size are known without reading the messages' header fields
            msgs = view.msgs
            facts = [sortthread.Facts(s, u, msgs[u].internaldate, msgs[u].internaldate, msgs[u].size) for s, u in hits]
            for f in facts:
                date = sent.get(f.uid)
                if date is not None:  # RFC 5256 §2.2: the internal date without a usable Date:
                    f.sent = date
        else:
            facts = await self._sort_facts(view, hits, sent)
        ordered = sortthread.sort(facts, cmd.keys)
        nums = " ".join(str(f.uid if cmd.uid else f.seq) for f in ordered)
        self._emit(b"* SORT" + (b" " + nums.encode("ascii") if nums else b"") + b"\r\n")  # RFC 5256 §4
        return "OK", "Sort completed."

    async def _do_thread(self, cmd: Thread):
        view = self._selected()
        _, sctx, hits = await self._matching(view, cmd.criteria)
        sent = sctx.sent or (await self.store.sent_dates(view.mailbox_id) if hits else {})
        found = await self._sort_facts(view, hits, sent)
        if cmd.algorithm == "ORDEREDSUBJECT":
            roots = sortthread.ordered_subject(found)
        else:
            roots = sortthread.references(found)
        tree = sortthread.render(roots, cmd.uid)
        self._emit(b"* THREAD" + (b" " + tree if tree else b"") + b"\r\n")  # RFC 5256 §4
        return "OK", "Thread completed."

    async def _do_search(self, cmd: Search):
        view = self._selected()
        req, sctx, hits = await self._matching(view, cmd.criteria)
        nums = [u if cmd.uid else s for s, u in hits]
        modseq = max((view.msgs[u].modseq for _, u in hits), default=None) if req.modseq else None
        returns = cmd.returns
        if returns is None and not self.rev2:
            self._emit(R.search_response(nums, modseq))
            return "OK", "Search completed."
        returns = returns or ("ALL",)
        if "SAVE" in returns:
            # RFC 5182 §2.4: with MIN/MAX only (no ALL/COUNT) the saved result is just those
            if ("MIN" in returns or "MAX" in returns) and not ("ALL" in returns or "COUNT" in returns):
                keep = []
                if hits and "MIN" in returns:
                    keep.append(hits[0][1])
                if hits and "MAX" in returns:
                    keep.append(hits[-1][1])
                view.saved = sorted(set(keep))
            else:
                view.saved = [u for _, u in hits]
            if set(returns) == {"SAVE"}:
                return "OK", "Search completed."
        if modseq is not None and hits and not ("ALL" in returns or "COUNT" in returns):
            # RFC 7162 §3.1.5 / RFC 4731 §3.1: with MIN and/or MAX only, MODSEQ is the highest of the
            # messages actually returned, not of every match
            ends = ([hits[0][1]] if "MIN" in returns else []) + ([hits[-1][1]] if "MAX" in returns else [])
            modseq = max(view.msgs[u].modseq for u in ends)
        kw: dict = {}
        if "MIN" in returns and nums:
            kw["min"] = nums[0]
        if "MAX" in returns and nums:
            kw["max"] = nums[-1]
        if "COUNT" in returns:
            kw["count"] = len(nums)
        if "ALL" in returns:
            kw["all"] = nums
        self._emit(R.esearch_response(cmd.tag, cmd.uid, modseq=modseq if nums else None, **kw))
        return "OK", "Search completed."

    # ------------------------------------------------------------------ QUOTA (RFC 9208)
    async def _quota_line(self) -> bytes:
        acct = await self.ctx.accounts.get_by_id(self._account_id)
        used = acct.used_bytes // 1024
        limit = acct.quota_bytes // 1024
        return b'* QUOTA "" (STORAGE %d %d)\r\n' % (used, limit)

    async def _do_getquota(self, cmd: GetQuota):
        if cmd.root != "":
            raise _No("Quota root does not exist.", "NONEXISTENT")
        self._emit(await self._quota_line())
        return "OK", "Getquota completed."

    async def _do_getquotaroot(self, cmd: GetQuotaRoot):
        mb = await self._mailbox(cmd.mailbox)
        self._emit(b"* QUOTAROOT " + R.astring(self._name_out(mb.name), self.utf8) + b' ""\r\n')
        self._emit(await self._quota_line())
        return "OK", "Getquotaroot completed."

    async def _do_setquota(self, cmd: SetQuota):
        raise _No("Quota is set by the administrator.", "NOPERM")

    # ------------------------------------------------------------------ end
    def close(self) -> None:
        self._deselect()
        self.closed = True
