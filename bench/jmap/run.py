"""JMAP bench (issue #13): an account of N messages (corpus messages repeated with distinct headers),
then over real HTTP against the gateway:

- first screen: Email/query (50 newest in INBOX, collapseThreads) + Email/get of their list
  properties (by result reference) + Mailbox/get, in one request;
- full-text Email/query (a word from the corpus);
- Email/changes after 100 new deliveries;
- and the same reads through IMAP, on Suite and on Debian's Dovecot in the same run (the peer of
  bench/imap, given the same messages as a maildir): first screen = SELECT INBOX + UID SORT
  (REVERSE ARRIVAL) + UID FETCH (FLAGS ENVELOPE RFC822.SIZE) of the 50 newest; search = UID SEARCH
  <key> <word> (--imap-search-key, TEXT by default: headers and body, which no index of Suite's
  covers; with BODY or SUBJECT Suite narrows by its full-text index; Dovecot scans, no FTS plugin).

    python bench/jmap/run.py --messages 100000            # SQLite in a temp dir
    python bench/jmap/run.py --messages 20000 --db postgresql+asyncpg://postgres@127.0.0.1/benchdb

Prints p50/p95 in ms and the server's peak RSS during the import (the bench process is the server:
the store, the gateway and the IMAP service run in it). Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "data" / "mail"
PW = "bench password 123"
CORE, MAIL = "urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"


def corpus() -> list[bytes]:
    out = []
    for p in sorted(CORPUS.glob("*.eml")):
        raw = p.read_bytes()
        if len(raw) < 200_000 and b"\n\n" in raw.replace(b"\r\n", b"\n"):
            out.append(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return out


_DROP = re.compile(rb"(?im)^(message-id|subject|in-reply-to|references):.*(\r\n[ \t].*)*\r\n")


def variant(raw: bytes, i: int) -> bytes:
    """The corpus message with its own Message-ID and Subject (every 5th a reply to the one before)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    head = _DROP.sub(b"", head + b"\r\n").rstrip(b"\r\n")
    extra = f"\r\nMessage-ID: <bench{i}@bench.example>\r\nSubject: bench message {i // 5}".encode()
    if i % 5:
        extra += f"\r\nIn-Reply-To: <bench{i - 1}@bench.example>".encode()
    return head + extra + sep + body


def pct(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    return f"p50 {statistics.median(xs) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   (n={len(xs)})"


def brief(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"{statistics.median(xs) * 1000:.1f} / {xs[min(len(xs) - 1, int(len(xs) * 0.95))] * 1000:.1f}"


WORDS = ["python", "release", "mailing", "unsubscribe", "patch"]


class Imap:
    """A minimal IMAP client for timing: one command at a time, literals read through."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.n = reader, writer, 0

    @classmethod
    async def login(cls, port: int, user: str, pw: str) -> Imap:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
        await reader.readline()
        c = cls(reader, writer)
        await c.cmd(f'LOGIN {user} "{pw}"')
        return c

    async def cmd(self, line: str) -> list[bytes]:
        self.n += 1
        tag = f"t{self.n}".encode()
        self.writer.write(tag + b" " + line.encode() + b"\r\n")
        await self.writer.drain()
        out = []
        while True:
            got = await self.reader.readline()
            while m := re.search(rb"\{(\d+)\}\r\n$", got):
                got += await self.reader.readexactly(int(m.group(1)))
                got += await self.reader.readline()
            if got.startswith(tag + b" "):
                if not got.startswith(tag + b" OK"):
                    raise RuntimeError(f"{line!r}: {got!r}")
                return out
            out.append(got)

    def close(self) -> None:
        self.writer.close()


async def imap_reads(port: int, user: str, pw: str, runs: int, search_runs: int, key: str) -> dict[str, str]:
    """The first screen (SELECT + UID SORT REVERSE ARRIVAL + UID FETCH ENVELOPE of the 50 newest) and
    UID SEARCH TEXT, p50 / p95."""
    c = await Imap.login(port, user, pw)
    first = []
    uids: list[bytes] = []
    got: list[bytes] = []
    for _ in range(runs):
        t = time.perf_counter()
        await c.cmd("SELECT INBOX")
        sort = b"".join(await c.cmd("UID SORT (REVERSE ARRIVAL) UTF-8 ALL"))
        uids = sort.split(b"* SORT", 1)[1].split()[:50]
        got = await c.cmd(f"UID FETCH {b','.join(uids).decode()} (UID FLAGS ENVELOPE RFC822.SIZE)")
        first.append(time.perf_counter() - t)
    assert len(uids) == 50 and sum(1 for x in got if b" FETCH (" in x) == 50, (len(uids), len(got))
    search = []
    for i in range(search_runs):
        t = time.perf_counter()
        await c.cmd(f"UID SEARCH {key} {WORDS[i % len(WORDS)]}")
        search.append(time.perf_counter() - t)
    c.close()
    return {"first": brief(first), "search": brief(search), "first_pct": pct(first), "search_pct": pct(search)}


def print_imap(who: str, got: dict[str, str], key: str) -> None:
    print(f"IMAP {who:8} first screen (SELECT+SORT+FETCH 50) {got['first_pct']}")
    print(f"IMAP {who:8} UID SEARCH {key:6}                  {got['search_pct']}")


async def dovecot_reads(msgs: list[bytes], n: int, runs: int, search_runs: int, key: str) -> dict[str, str] | None:
    """The same messages as a maildir of Debian's Dovecot (bench/imap/dovecot.py), then the same reads."""
    import os
    import pwd

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "imap"))
    from dovecot import Dovecot, DovecotError

    user = "user@bench.example"
    try:
        dc = Dovecot([(user, PW)]).start()  # installs Debian's dovecot-imapd when missing (as bench/imap)
    except DovecotError as exc:
        print(f"Dovecot skipped: {exc}")
        return None
    try:
        assert dc.tmp is not None
        pw = pwd.getpwnam("dovecot")
        root = dc.tmp / "mail" / user
        for d in ("", "cur", "new", "tmp"):
            (root / d).mkdir(parents=True, exist_ok=True)
            os.chown(root / d, pw.pw_uid, pw.pw_gid)
        t0 = time.perf_counter()
        for i in range(n):
            path = root / "cur" / f"{1_700_000_000 + i}.M{i}P1.bench:2,"
            path.write_bytes(variant(msgs[i % len(msgs)], i))
            os.utime(path, (1.7e9 + i, 1.7e9 + i))  # maildir: the received date is the file's mtime
            os.chown(path, pw.pw_uid, pw.pw_gid)
        print(f"Dovecot {dc.version()}: {n} messages written as a maildir in {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        c = await Imap.login(dc.port, user, PW)
        await c.cmd("SELECT INBOX")  # the first SELECT builds Dovecot's index and cache
        await c.cmd("FETCH 1:* (FLAGS ENVELOPE)")
        c.close()
        print(f"Dovecot first SELECT + FETCH ENVELOPE of all (index build) {time.perf_counter() - t0:.0f} s")
        return await imap_reads(dc.port, user, PW, runs, search_runs, key)
    finally:
        dc.stop()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--db", default="")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--detail", action="store_true", help="time the first screen's calls one by one")
    ap.add_argument("--data-dir", default="", help="keep (or reuse) the account here instead of a temp dir")
    ap.add_argument("--no-dovecot", action="store_true", help="skip the Dovecot peer")
    ap.add_argument("--imap-search-runs", type=int, default=5)
    ap.add_argument("--imap-search-key", default="TEXT", help="TEXT (headers + body) or BODY, SUBJECT, …")
    args = ap.parse_args()

    import suite.mail.jmap.methods  # every module loaded now, not on the first request
    import suite.models  # noqa: F401
    from suite.config import Settings
    from suite.context import open_context
    from suite.gateway.service import GatewayService
    from suite.mail.imap.server import ImapService
    from suite.mail.store import MailStore
    from suite.storage import db

    tmp = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="jmap-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    url = args.db or f"sqlite+aiosqlite:///{tmp / 'suite.db'}"
    st = Settings(
        data_dir=tmp / "data",
        database_url=url,
        bus_backend="memory",
        http_port=0,
        imap_port=0,
        imaps_port=0,
        allow_plaintext_loopback=True,
    )
    engine = db.make_engine(url)
    await db.migrate(engine)
    await engine.dispose()
    ctx = await open_context(st)
    acct = await ctx.accounts.get("user@bench.example")
    reuse = acct is not None
    if acct is None:
        await ctx.accounts.add_domain("bench.example")
        acct = await ctx.accounts.add_account("user@bench.example", PW, quota_bytes=1 << 40)
    store = MailStore(ctx)
    msgs = corpus()
    inbox = (await store.require_mailbox(acct.id, "INBOX")).id
    have = (await store.status(inbox)).messages
    if reuse:
        print(f"reusing {tmp}: {have} messages in INBOX")
        args.messages = have
    sem = asyncio.Semaphore(args.concurrency)
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        async with sem:
            await store.deliver(acct.id, inbox, variant(msgs[i % len(msgs)], i), internaldate=1.7e9 + i)

    batch = 2000
    for start in range(0, args.messages if not reuse else 0, batch):
        await asyncio.gather(*(one(i) for i in range(start, min(args.messages, start + batch))))
        done = min(args.messages, start + batch)
        print(f"\rimported {done}/{args.messages}", end="", flush=True)
    took = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not reuse:
        print(f"\nimport: {args.messages / took:.0f} msg/s; server peak RSS during the import {rss:.0f} MiB")

    gw = GatewayService(ctx)
    await gw.start()
    imap = ImapService(ctx, auth_delay=0)
    await imap.start()
    base = f"http://127.0.0.1:{gw.port}"
    async with httpx.AsyncClient(base_url=base, auth=("user@bench.example", PW), timeout=120) as http:
        s = (await http.get("/.well-known/jmap")).json()
        aid = s["primaryAccounts"][MAIL]

        async def req(calls):
            r = await http.post("/jmap/api", json={"using": [CORE, MAIL], "methodCalls": calls})
            r.raise_for_status()
            out = r.json()["methodResponses"]
            assert all(c[0] != "error" for c in out), out
            return out

        mb = (await req([["Mailbox/get", {"accountId": aid, "ids": None}, "0"]]))[0][1]["list"]
        inbox_id = next(m["id"] for m in mb if m["role"] == "inbox")
        first_screen = [
            [
                "Email/query",
                {
                    "accountId": aid,
                    "filter": {"inMailbox": inbox_id},
                    "collapseThreads": True,
                    "sort": [{"property": "receivedAt", "isAscending": False}],
                    "limit": 50,
                    "calculateTotal": True,
                },
                "q",
            ],
            [
                "Email/get",
                {
                    "accountId": aid,
                    "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                    "properties": [
                        "threadId",
                        "mailboxIds",
                        "keywords",
                        "from",
                        "subject",
                        "receivedAt",
                        "size",
                        "preview",
                        "hasAttachment",
                    ],
                },
                "g",
            ],
            ["Mailbox/get", {"accountId": aid, "ids": None}, "m"],
        ]
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            out = await req(first_screen)
            times.append(time.perf_counter() - t)
        assert len(out[1][1]["list"]) == 50
        print(f"JMAP first screen      {pct(times)}")
        figures = {"first": brief(times)}
        if args.detail:
            for i in range(len(first_screen)):
                times = []
                for _ in range(max(3, args.runs // 3)):
                    t = time.perf_counter()
                    await req(first_screen[: i + 1])
                    times.append(time.perf_counter() - t)
                print(f"  calls 1..{i + 1}          {pct(times)}")
        times = []
        for word in WORDS * max(1, args.runs // 5):
            t = time.perf_counter()
            await req(
                [
                    [
                        "Email/query",
                        {"accountId": aid, "filter": {"text": word}, "limit": 50, "calculateTotal": True},
                        "0",
                    ]
                ]
            )
            times.append(time.perf_counter() - t)
        print(f"JMAP full-text query   {pct(times)}")
        figures["search"] = brief(times)
        state = (await req([["Email/get", {"accountId": aid, "ids": []}, "0"]]))[0][1]["state"]
        for i in range(100):
            await store.deliver(acct.id, inbox, variant(msgs[i % len(msgs)], args.messages + i))
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            out = await req([["Email/changes", {"accountId": aid, "sinceState": state}, "0"]])
            times.append(time.perf_counter() - t)
        assert len(out[0][1]["created"]) == 100
        print(f"JMAP Email/changes/100 {pct(times)}")

    key = args.imap_search_key
    suite_imap = await imap_reads(imap.port, "user@bench.example", PW, args.runs, args.imap_search_runs, key)
    print_imap("Suite", suite_imap, key)
    jmap_first, jmap_search = figures["first"], figures["search"]
    if not args.no_dovecot:
        peer = await dovecot_reads(msgs, args.messages, args.runs, args.imap_search_runs, key)
        if peer is not None:
            print_imap("Dovecot", peer, key)
            print("\nside by side (p50 / p95 ms):")
            print(
                f"  first screen: JMAP {jmap_first}   IMAP Suite {suite_imap['first']}   IMAP Dovecot {peer['first']}"
            )
            print(
                f"  search:       JMAP {jmap_search}   IMAP Suite {suite_imap['search']}   IMAP Dovecot {peer['search']}"
            )
    await imap.stop()
    await gw.stop()
    await ctx.close()


if __name__ == "__main__":
    asyncio.run(main())
