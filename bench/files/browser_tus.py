"""Files bench, the plain tus upload alone: Chromium through the Files view against ``curl -T`` to the same
gateway, alternated round by round, with the CPU each side spends per GiB.

    python bench/files/browser_tus.py                 # 256 MiB, 2 rounds
    python bench/files/browser_tus.py --mib 1024 --rounds 3

A Suite gateway (``suite serve --only gateway``, SQLite) in a temp folder (bench/files/servers.py), Debian's
chromium driven by Playwright (headless), signed in once. Each round: ``curl -T`` (PUT /api/files/content),
the same file as one tus PATCH by curl (POST unmeasured, then ``curl -X PATCH -T``: the server's tus path with
curl's sender), then the same file picked in the Files view until its row says "Done" (after the last PATCH's
204). Columns:
MB/s (10^6 bytes/s over the wall time), the gateway's CPU s/GiB (its process tree), the sender's (curl's, or
Chromium's processes by kind: browser, renderer, gpu-process, network service). Where the time goes on the
browser side is what ``browser.py`` does not show. Figures are printed, never asserted; the load average
is printed beside each row.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import os
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.files.browser import PASSWORD, USER, chromium_pids
from bench.files.servers import SuiteGateway, make_root, random_file, remove_root
from bench.imap.procs import tree_cpu_seconds

MB = 10**6
CLK_TCK = os.sysconf("SC_CLK_TCK")


def chromium_cpu(pids: set[int]) -> collections.Counter:
    """CPU seconds so far of our Chromium's processes, by kind (their command lines are rewritten with
    spaces: the zygote's children set their title)."""
    out: collections.Counter = collections.Counter()
    pids |= chromium_pids()
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = next((c[7:].decode() for c in cmd if c.startswith(b"--type=")), "browser")
        if kind == "utility":
            sub = next((c for c in cmd if c.startswith(b"--utility-sub-type=")), b"utility")
            kind = sub.rsplit(b".", 1)[-1].decode()
        if kind != "zygote":
            out[kind] += (int(stat[11]) + int(stat[12])) / CLK_TCK
    return out


def tus_create(suite: SuiteGateway, size: int, name: str) -> str:
    """POST /api/tus/ (tus creation): the new upload's path."""
    meta = "filename " + base64.b64encode(name.encode()).decode()
    auth = base64.b64encode(f"{USER}:{suite.secret}".encode()).decode()
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": str(size), "Upload-Metadata": meta}
    req = urllib.request.Request(
        f"{suite.url}/api/tus/", method="POST", headers={**headers, "Authorization": f"Basic {auth}"}
    )
    with urllib.request.urlopen(req) as r:
        return r.headers["Location"]


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


async def run(mib: int, rounds: int) -> None:
    from playwright.async_api import async_playwright

    size = mib * 1024 * 1024
    gib = size / 2**30
    root = make_root()
    suite = SuiteGateway(USER, PASSWORD, root=root)
    try:
        suite.start()
        src = random_file(root / "big.bin", mib)
        gw = suite.proc.pid
        print(f"files browser tus: {mib} MiB, {rounds} round(s), one gateway (SQLite, disk)")
        print(f"{'sender':<10}{'MB/s':>8}{'gateway CPU s/GiB':>19}{'sender CPU s/GiB':>18}  sender by process  load")
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
            page = await (await browser.new_context(base_url=suite.url)).new_page()
            await page.goto("/files")
            await page.get_by_label("Email").fill(USER)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("heading", name="Files", level=1).wait_for()
            pids: set[int] = set()
            for r in range(rounds):
                for sender in ("curl -T", "curl tus", "chromium"):
                    if sender == "curl tus":
                        location = tus_create(suite, size, f"tus{r}.bin")
                    g0, c0, k0, t0 = tree_cpu_seconds(gw)[0], children_cpu(), chromium_cpu(pids), time.perf_counter()
                    auth = f"{USER}:{suite.secret}"
                    if sender == "curl -T":
                        url = f"{suite.url}/api/files/content/curl{r}.bin"
                        subprocess.run(["curl", "-sS", "-o", "/dev/null", "-u", auth, "-T", str(src), url], check=True)
                    elif sender == "curl tus":
                        tus_h = ["-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0"]
                        tus_h += ["-H", "Content-Type: application/offset+octet-stream"]
                        args = ["curl", "-sS", "-o", "/dev/null", "-u", auth, "-X", "PATCH", *tus_h, "-T", str(src)]
                        subprocess.run([*args, suite.url + location], check=True)
                    else:
                        await page.get_by_label("Upload files").set_input_files(str(src))
                        done = page.locator(".upl-list li[data-state=done]").filter(has_text=src.name)
                        await done.nth(r).wait_for(timeout=3_600_000)
                    secs = time.perf_counter() - t0
                    g1, c1, k1 = tree_cpu_seconds(gw)[0], children_cpu(), chromium_cpu(pids)
                    if sender != "chromium":
                        own, parts = c1 - c0, ""
                    else:
                        own = sum(k1.values()) - sum(k0.values())
                        parts = " ".join(f"{k} {(k1[k] - k0[k]) / gib:.2f}" for k in sorted(k1) if k1[k] - k0[k] > 0)
                    print(
                        f"{sender:<10}{size / secs / MB:>8.0f}{(g1 - g0) / gib:>19.2f}{own / gib:>18.2f}  {parts}"
                        f"  {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
            await browser.close()
    finally:
        suite.stop()
        remove_root(root)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    asyncio.run(run(a.mib, a.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
