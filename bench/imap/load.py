"""IMAP load generator: P processes × C asyncio clients, each looping over a mix of common client commands.

The client is a minimal IMAP4rev1/rev2 speaker over asyncio streams (no imaplib, no threads). It frames
responses properly: a line ending in ``{n}`` / ``{n+}`` CRLF announces a literal of n octets that follows,
then the response continues on the next line (RFC 9051 §4.3); a response ends at a CRLF that does not
announce a literal. It tracks ``* n EXISTS`` and ``* n EXPUNGE`` so message numbers it uses stay valid
(RFC 9051 §7.4.1, §7.5.1), and reads ``[APPENDUID v uid]`` (RFC 4315 §3, part of IMAP4rev2) to delete
exactly the message it appended.

Every command's round trip is timed per kind. A tagged NO or BAD, a BYE, a timeout or a lost connection
counts as an error of that kind and the first few are kept as samples. Nothing here asserts timings.
"""

from __future__ import annotations

import asyncio
import random
import re
import resource
import time
from dataclasses import dataclass, field

# kind → weight in the mix (per command picked; LOGIN/SELECT/LOGOUT happen on (re)connects).
MIX: dict[str, int] = {
    "select": 3,
    "fetch_flags": 8,
    "fetch_envelope": 18,
    "fetch_body": 14,
    "store_seen": 14,
    "search_unseen": 6,
    "search_from": 6,
    "search_subject": 6,
    "append": 8,
    "expunge": 8,  # UID STORE +FLAGS.SILENT (\Deleted) on a message this client appended, then EXPUNGE
    "noop": 3,
}
RECONNECT_PROBABILITY = 0.02  # after each picked command: LOGOUT, new connection, LOGIN, SELECT

KINDS = [
    "login",
    "select",
    "fetch_flags",
    "fetch_envelope",
    "fetch_body",
    "store_seen",
    "search_unseen",
    "search_from",
    "search_subject",
    "append",
    "store_deleted",
    "expunge",
    "noop",
    "logout",
    "connect",
]

_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}\r\n\Z")
_EXISTS = re.compile(rb"\* (\d+) EXISTS\b", re.IGNORECASE)
_EXPUNGE = re.compile(rb"\* (\d+) EXPUNGE\b", re.IGNORECASE)
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
MAX_LINE = 1 << 20  # longest response line we accept (literals are read separately)
MAX_LITERAL = 256 << 20


class ImapError(Exception):
    """Protocol-level trouble: BYE, unparseable response, closed connection."""


@dataclass
class Response:
    status: str  # OK | NO | BAD
    text: str  # the tagged line, decoded
    untagged: list[bytes]  # untagged responses with literals inlined


@dataclass
class Config:
    host: str
    port: int
    users: list[tuple[str, str]]
    seconds: float
    seeded: int  # messages each mailbox holds before the run (they are never expunged)
    messages: list[bytes]  # corpus messages the clients APPEND
    from_terms: list[str]
    subject_terms: list[str]
    timeout: float = 30.0
    seed: int = 1
    mix: dict[str, int] = field(default_factory=lambda: dict(MIX))


@dataclass
class Stats:
    count: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)  # ms
    samples: dict[str, int] = field(default_factory=dict)  # distinct error text → how often (first 20 kept)
    notes: set[str] = field(default_factory=set)
    elapsed: float = 0.0
    cpu: float = 0.0  # the load generator's own CPU seconds

    def ok(self, kind: str, ms: float) -> None:
        self.count[kind] = self.count.get(kind, 0) + 1
        self.latencies.setdefault(kind, []).append(ms)

    def error(self, kind: str, what: str) -> None:
        self.count[kind] = self.count.get(kind, 0) + 1
        self.errors[kind] = self.errors.get(kind, 0) + 1
        key = f"{kind}: {what[:300]}"
        if key in self.samples or len(self.samples) < 20:
            self.samples[key] = self.samples.get(key, 0) + 1

    def merge(self, other: Stats) -> None:
        for k, v in other.count.items():
            self.count[k] = self.count.get(k, 0) + v
        for k, v in other.errors.items():
            self.errors[k] = self.errors.get(k, 0) + v
        for k, v in other.latencies.items():
            self.latencies.setdefault(k, []).extend(v)
        for key, n in other.samples.items():
            if key in self.samples or len(self.samples) < 20:
                self.samples[key] = self.samples.get(key, 0) + n
        self.notes |= other.notes
        self.elapsed = max(self.elapsed, other.elapsed)
        self.cpu += other.cpu


def quote(s: str) -> str:
    """An IMAP quoted string (RFC 9051 §4.3); callers pass ASCII without CR/LF."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapClient:
    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.n = 0
        self.exists = 0
        self.capabilities: set[str] = set()

    async def connect(self, host: str, port: int) -> bytes:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=MAX_LINE), self.timeout
        )
        greeting = await asyncio.wait_for(self._read_response(), self.timeout)
        if not greeting.startswith(b"* OK") and not greeting.startswith(b"* PREAUTH"):
            raise ImapError(f"greeting: {greeting[:200]!r}")
        return greeting

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except (TimeoutError, OSError):
                pass
            self.writer = self.reader = None

    async def _read_response(self) -> bytes:
        """One whole server response: a line plus any literals it announces, inlined."""
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            try:
                line = await self.reader.readuntil(b"\r\n")
            except asyncio.IncompleteReadError as exc:
                raise ImapError(f"connection closed by server (partial {exc.partial[:100]!r})") from None
            except asyncio.LimitOverrunError:
                raise ImapError(f"response line longer than {MAX_LINE} octets") from None
            parts.append(line)
            m = _LITERAL_AT_END.search(line)
            if not m:
                return b"".join(parts)
            size = int(m.group(1))
            if size > MAX_LITERAL:
                raise ImapError(f"literal of {size} octets announced")
            try:
                parts.append(await self.reader.readexactly(size))
            except asyncio.IncompleteReadError:
                raise ImapError("connection closed inside a literal") from None

    def _track(self, resp: bytes) -> None:
        if m := _EXISTS.match(resp):
            self.exists = int(m.group(1))
        elif _EXPUNGE.match(resp):
            self.exists = max(0, self.exists - 1)
        elif resp[:13].upper() == b"* CAPABILITY ":
            self.capabilities = {c.upper() for c in resp[13:].decode("ascii", "replace").split()}

    async def command(self, text: str, literal: bytes | None = None) -> Response:
        return await asyncio.wait_for(self._command(text, literal), self.timeout)

    async def _command(self, text: str, literal: bytes | None) -> Response:
        assert self.writer is not None
        self.n += 1
        tag = f"b{self.n}"
        btag = tag.encode() + b" "
        untagged: list[bytes] = []
        if literal is None:
            self.writer.write(f"{tag} {text}\r\n".encode())
        else:
            # Synchronizing literal (RFC 9051 §4.3): wait for "+" before sending the octets.
            self.writer.write(f"{tag} {text} {{{len(literal)}}}\r\n".encode())
            await self.writer.drain()
            while True:
                resp = await self._read_response()
                if resp.startswith(b"+"):
                    break
                if resp.startswith(btag):
                    return self._tagged(resp, untagged)
                self._untagged(resp, untagged)
            self.writer.write(literal + b"\r\n")
        await self.writer.drain()
        while True:
            resp = await self._read_response()
            if resp.startswith(btag):
                return self._tagged(resp, untagged)
            if resp.startswith(b"+"):
                raise ImapError(f"unexpected continuation request: {resp[:200]!r}")
            self._untagged(resp, untagged)

    def _untagged(self, resp: bytes, into: list[bytes]) -> None:
        self._track(resp)
        into.append(resp)

    @staticmethod
    def _tagged(resp: bytes, untagged: list[bytes]) -> Response:
        fields = resp.split(b" ", 2)
        status = fields[1].upper().decode("ascii", "replace") if len(fields) > 1 else ""
        if status not in ("OK", "NO", "BAD"):
            raise ImapError(f"bad tagged response: {resp[:200]!r}")
        return Response(status, resp.decode("utf-8", "replace").rstrip("\r\n"), untagged)


class BenchClient:
    """One simulated mail client: its own connection, user, RNG and appended-UID list."""

    def __init__(self, cfg: Config, index: int, stats: Stats) -> None:
        self.cfg = cfg
        self.user, self.password = cfg.users[index % len(cfg.users)]
        self.rng = random.Random(cfg.seed * 100003 + index)
        self.stats = stats
        self.imap: ImapClient | None = None
        self.current = "connect"  # kind of the command in flight, for errors raised by the connection
        self.appended: list[int] = []  # UIDs of messages this client appended and not yet expunged
        kinds = [k for k, w in cfg.mix.items() if w > 0]
        self.kinds, self.weights = kinds, [cfg.mix[k] for k in kinds]

    async def timed(self, kind: str, text: str, literal: bytes | None = None) -> Response | None:
        assert self.imap is not None
        self.current = kind
        t0 = time.perf_counter()
        resp = await self.imap.command(text, literal)
        ms = (time.perf_counter() - t0) * 1000
        if resp.status != "OK":
            self.stats.error(kind, f"{text[:80]} -> {resp.text.split(' ', 1)[-1]}")
            return None
        bye = next((u for u in resp.untagged if u.startswith(b"* BYE")), None)
        if bye is not None and kind != "logout":
            raise ImapError(f"{text[:80]} -> {bye[:200]!r}")
        self.stats.ok(kind, ms)
        return resp

    async def open(self) -> None:
        self.imap = ImapClient(self.cfg.timeout)
        self.current = "connect"
        t0 = time.perf_counter()
        await self.imap.connect(self.cfg.host, self.cfg.port)
        self.stats.ok("connect", (time.perf_counter() - t0) * 1000)
        if await self.timed("login", f"LOGIN {quote(self.user)} {quote(self.password)}") is None:
            raise ImapError("LOGIN refused")
        if await self.timed("select", "SELECT INBOX") is None:
            raise ImapError("SELECT INBOX refused")

    async def logout(self) -> None:
        if self.imap is not None:
            try:
                await self.timed("logout", "LOGOUT")
            finally:
                await self.imap.close()
                self.imap = None

    def pick_seq(self) -> int:
        # Seeded messages are never expunged and are the lowest sequence numbers: always valid.
        top = min(self.cfg.seeded, self.imap.exists) if self.cfg.seeded else self.imap.exists
        return self.rng.randint(1, max(1, top))

    async def step(self, kind: str) -> None:
        rng = self.rng
        if kind == "select":
            await self.timed("select", "SELECT INBOX")
        elif kind == "noop":
            await self.timed("noop", "NOOP")
        elif self.imap.exists == 0 and kind in ("fetch_flags", "fetch_envelope", "fetch_body", "store_seen"):
            await self.timed("noop", "NOOP")  # empty mailbox: nothing to fetch
        elif kind == "fetch_flags":
            await self.timed(kind, "FETCH 1:* (FLAGS)")
        elif kind == "fetch_envelope":
            await self.timed(kind, f"FETCH {self.pick_seq()} (ENVELOPE)")
        elif kind == "fetch_body":
            await self.timed(kind, f"FETCH {self.pick_seq()} (BODY.PEEK[])")
        elif kind == "store_seen":
            sign = rng.choice("+-")
            await self.timed(kind, f"STORE {self.pick_seq()} {sign}FLAGS (\\Seen)")
        elif kind == "search_unseen":
            await self.timed(kind, "SEARCH UNSEEN")
        elif kind == "search_from":
            await self.timed(kind, f"SEARCH FROM {quote(rng.choice(self.cfg.from_terms))}")
        elif kind == "search_subject":
            await self.timed(kind, f"SEARCH SUBJECT {quote(rng.choice(self.cfg.subject_terms))}")
        elif kind == "append" or (kind == "expunge" and not self.appended):
            msg = rng.choice(self.cfg.messages)
            resp = await self.timed("append", "APPEND INBOX", msg)
            if resp is not None:
                m = _APPENDUID.search(resp.text.encode())
                if m:
                    self.appended.append(int(m.group(2)))
                else:
                    self.stats.notes.add("server gave no [APPENDUID]: appended messages are not expunged")
        elif kind == "expunge":
            uid = self.appended.pop(rng.randrange(len(self.appended)))
            if await self.timed("store_deleted", f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)") is not None:
                await self.timed("expunge", "EXPUNGE")
        else:
            raise ValueError(kind)

    async def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if self.imap is None:
                    await self.open()
                kind = self.rng.choices(self.kinds, self.weights)[0]
                await self.step(kind)
                if self.rng.random() < RECONNECT_PROBABILITY:
                    await self.logout()
            except (TimeoutError, ImapError, OSError) as exc:
                what = "timeout" if isinstance(exc, asyncio.TimeoutError) else f"{type(exc).__name__}: {exc}"
                self.stats.error(self.current, what)
                if self.imap is not None:
                    await self.imap.close()
                    self.imap = None
                await asyncio.sleep(0.05)
        try:
            await self.logout()
        except (TimeoutError, ImapError, OSError) as exc:
            self.stats.error("logout", f"{type(exc).__name__}: {exc}")


async def run_clients(cfg: Config, first_index: int, clients: int) -> Stats:
    stats = Stats()
    t0 = time.monotonic()
    deadline = t0 + cfg.seconds
    bench = [BenchClient(cfg, first_index + i, stats) for i in range(clients)]
    await asyncio.gather(*(b.run(deadline) for b in bench))
    stats.elapsed = time.monotonic() - t0
    return stats


def worker(cfg: Config, first_index: int, clients: int, ready, start, results) -> None:
    """Entry of one load process: say ready, wait for the start signal, run, send back the Stats."""
    try:
        ready.put(("ready", first_index))
        if not start.wait(120):
            results.put(("error", first_index, "start signal never came"))
            return
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        stats = asyncio.run(run_clients(cfg, first_index, clients))
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        stats.cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        results.put(("ok", first_index, stats))
    except BaseException as exc:
        results.put(("error", first_index, f"{type(exc).__name__}: {exc}"))
