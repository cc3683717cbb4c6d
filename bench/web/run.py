"""Web app bench (issue #14): an account of N messages (bench/jmap's corpus variants), the gateway,
and Debian's Chromium driven by Playwright:

- sign in → first message list painted (rows with subjects on screen);
- open a message (click → the reader's heading and body shown);
- scroll 1 000 rows (jump the list down by 1 000 rows → those rows painted with subjects);
- search (a word from the corpus → the first result row);
- the bundle's size (what the first paint loads, JavaScript + CSS, gzip; web/dist/bundle.json).

The peer, in the same run and interleaved with it: the same steps on a small mailbox (200 messages),
so the ratio says whether 100 000 messages open as fast as an empty mailbox on this machine today.

    python bench/web/run.py --messages 100000 --data-dir /tmp/web-bench   # reuse the account later

Prints p50/p95 in ms; goals from the issue: first list < 1 s, open < 200 ms, bundle < 250 KB.
Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if not __package__:
    sys.path.insert(0, str(ROOT))

PW = "bench password 123"
USER = "user@bench.example"
SMALL = "small@bench.example"  # the peer: the same steps on a small mailbox, in the same run
_spec = importlib.util.spec_from_file_location("bench_jmap_run", ROOT / "bench" / "jmap" / "run.py")
jmap_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(jmap_bench)


def pct(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    return f"p50 {statistics.median(xs):7.1f} ms   p95 {p95:7.1f} ms   (n={len(xs)})"


def bundle_size() -> str:
    """What the browser fetches before the first paint (web/dist/bundle.json, written by the build: the
    entry, the chunks it imports statically, the CSS), gzip -9; and the chunks loaded only when used."""
    import json

    dist = ROOT / "web" / "dist"
    try:
        manifest = json.loads((dist / "bundle.json").read_text())
    except FileNotFoundError:
        return "not built (make web)"

    def size(names: list[str]) -> tuple[float, float]:
        raw = [(dist / "assets" / n).read_bytes() for n in names]
        return sum(map(len, raw)) / 1024, sum(len(gzip.compress(b, 9)) for b in raw) / 1024

    first, lazy = size(manifest["first"]), size(manifest["lazy"])
    return (
        f"first load {first[0]:.0f} KB, gzip {first[1]:.0f} KB ({len(manifest['first'])} files); "
        f"loaded when used (PDF preview) {lazy[0]:.0f} KB, gzip {lazy[1]:.0f} KB"
    )


async def fill(ctx, address: str, n: int) -> int:
    """The account ``address`` with at least ``n`` messages in INBOX (kept in the data dir for later runs)."""
    from suite.mail.store import MailStore

    acct = await ctx.accounts.get(address)
    if acct is None:
        if "bench.example" not in [d.name for d in await ctx.accounts.list_domains()]:
            await ctx.accounts.add_domain("bench.example")
        acct = await ctx.accounts.add_account(address, PW, quota_bytes=1 << 40)
    store = MailStore(ctx)
    inbox = (await store.require_mailbox(acct.id, "INBOX")).id
    have = (await store.status(inbox)).messages
    msgs = jmap_bench.corpus()
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            await store.deliver(acct.id, inbox, jmap_bench.variant(msgs[i % len(msgs)], i), internaldate=1.7e9 + i)

    t0 = time.perf_counter()
    for start in range(have, n, 2000):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 2000))))
        print(f"\r{address}: imported {min(n, start + 2000)}/{n}", end="", flush=True)
    if n > have:
        print(f"\nimport: {(n - have) / (time.perf_counter() - t0):.0f} msg/s")
    return max(have, n)


async def open_store(args):
    import suite.mail.jmap.methods
    import suite.models  # noqa: F401
    from suite.config import Settings
    from suite.context import open_context
    from suite.storage import db

    tmp = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="web-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{tmp / 'suite.db'}"
    st = Settings(data_dir=tmp / "data", database_url=url, bus_backend="memory", http_port=0, hostname="127.0.0.1")
    engine = db.make_engine(url)
    await db.migrate(engine)
    await engine.dispose()
    return await open_context(st)


async def session(browser, base: str, user: str, term: str, scroll: bool) -> dict[str, float]:
    """One person's visit: sign in → first list, open the third row, (jump 1 000 rows,) search."""
    out: dict[str, float] = {}
    page = await (await browser.new_context(base_url=base, viewport={"width": 1280, "height": 800})).new_page()
    try:
        await page.goto("/mail")
        await page.get_by_label("Email").fill(user)
        await page.get_by_label("Password").fill(PW)
        t0 = time.perf_counter()
        await page.get_by_role("button", name="Sign in").click()
        await page.locator(".msg-row .subject").first.wait_for()
        out["first"] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        await page.locator(".msg-row .row-link").nth(2).click()
        await page.locator(".reader-body .message .msg-content").first.wait_for()
        out["open"] = (time.perf_counter() - t0) * 1000

        if scroll:
            t0 = time.perf_counter()
            await page.locator(".list-scroll").evaluate("(el) => { el.scrollTop = 1000 * 76; }")
            await page.locator(".msg-row[style*='top: 76000px'] .subject").wait_for()
            out["scroll"] = (time.perf_counter() - t0) * 1000

        box = page.get_by_role("searchbox", name="Search")
        await box.fill(term)
        t0 = time.perf_counter()
        await box.press("Enter")
        await page.wait_for_url("**/mail/search?q=*")
        await page.locator(".msg-row .subject").first.wait_for()
        out["search"] = (time.perf_counter() - t0) * 1000
    except Exception:
        await page.screenshot(path="/tmp/web-bench-failure.png")
        print("screenshot of the failure: /tmp/web-bench-failure.png")
        raise
    finally:
        await page.context.close()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--peer-messages", type=int, default=200, help="the small mailbox measured alongside")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--term", default="the", help="a word to search for")
    args = ap.parse_args()
    from playwright.async_api import async_playwright

    from suite.gateway.service import GatewayService

    ctx = await open_store(args)
    n = await fill(ctx, USER, args.messages)
    small = await fill(ctx, SMALL, args.peer_messages)
    gw = GatewayService(ctx)
    await gw.start()
    base = f"http://127.0.0.1:{gw.port}"
    print(f"{n} messages in INBOX (peer: {small}); bundle: {bundle_size()}")
    big: dict[str, list[float]] = {}
    peer: dict[str, list[float]] = {}
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            for _ in range(args.runs):  # interleaved, so both see the same machine
                for k, v in (await session(browser, base, USER, args.term, True)).items():
                    big.setdefault(k, []).append(v)
                for k, v in (await session(browser, base, SMALL, args.term, False)).items():
                    peer.setdefault(k, []).append(v)
            await browser.close()
    finally:
        await gw.stop()
        await ctx.close()
    ratio = lambda k: statistics.median(big[k]) / statistics.median(peer[k])
    print(
        f"sign in → first list  {pct(big['first'])}   (goal < 1000 ms; {small} messages: {pct(peer['first'])}, ratio {ratio('first'):.2f})"
    )
    print(
        f"open a message        {pct(big['open'])}   (goal < 200 ms; {small} messages: {pct(peer['open'])}, ratio {ratio('open'):.2f})"
    )
    print(f"scroll 1 000 rows     {pct(big['scroll'])}")
    print(
        f"search '{args.term}'{' ' * max(0, 10 - len(args.term))}  {pct(big['search'])}   ({small} messages: {pct(peer['search'])})"
    )


if __name__ == "__main__":
    asyncio.run(main())
