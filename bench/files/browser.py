"""Files bench, browser side: one big file uploaded by Chromium through the Files view (tus, one PATCH
of the picked File) and through an encrypted link (WebCrypto AES-GCM records, then tus in 32 MiB PATCHes),
against ``curl -T`` to the same gateway in the same rounds, with the browser's CPU and memory; then a
recipient's download of the encrypted link.

    python bench/files/browser.py              # 1 GiB, 1 round
    python bench/files/browser.py --mib 256 --rounds 3

A Suite gateway (``suite serve --only gateway``, SQLite) in a temp folder. The browser is Debian's chromium
as a user runs it: started and driven by bench/files/cdp.py (``--remote-debugging-pipe``, only the Target,
Page, Runtime and DOM domains, nothing attached to the page's workers), not by Playwright. Playwright enables
the DevTools Network domain on every page and worker, and Chromium then copies request bodies into the
protocol — an ArrayBuffer upload body crawls at 2 MB/s — a cost no user pays, so a bench under Playwright
would measure the tool rather than the upload.

Before the timed rows, one untimed ``curl -T`` and one untimed tus upload by curl (the same size): the
first big upload of each kind into a fresh gateway costs it ~1 CPU-s/GiB more (kernel time copying into
the page cache), whoever sends it — the row that came first (the Files view's, in this bench's earlier
order) measured 0.6× curl where the same upload after a curl one measured 0.72×.

Times: curl's time_total; the browser's from choosing the file to the upload's row at "Done" (after the
last PATCH's 204, which comes after fsync + commit); the encrypted path until the link is shown (encrypt +
upload + share); the recipient's download of that link (decrypted in the page, saved through its Service
Worker) until the whole file is in the download folder. Each round's rows run back to back (curl, then
the browser's) and ``× curl`` is to that round's curl. CPU: the gateway's (its process tree) and the
browser's (all its processes, utime+stime, by kind) per GiB. Memory: the sum of PSS of the browser's
processes (/proc/PID/smaps_rollup) sampled every 0.25 s (one read per process a tick; the sampler's own
CPU is printed): the peak, the idle figure before the upload and the rise over it; and the peak of the
renderer processes alone (the pages and their workers: JS heap, ArrayBuffers). Figures are printed, never
asserted; the load average is printed beside each row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.files.cdp import Chromium, Page
from bench.files.servers import SuiteGateway, make_root, random_file, remove_root
from bench.imap.procs import tree_cpu_seconds

MB = 10**6
USER, PASSWORD = "bench@bench.test", "correct horse battery staple"


def chromium_pids() -> set[int]:
    """Our Chromium's processes: descendants of this process (via Playwright's driver) named chromium."""
    parent: dict[int, int] = {}
    names: dict[int, bytes] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
                parent[int(p.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                names[int(p.name)] = (p / "cmdline").read_bytes().split(b"\0")[0]
            except (OSError, IndexError, ValueError):
                pass
    me = os.getpid()

    def ours(pid: int) -> bool:
        for _ in range(20):
            pid = parent.get(pid, 0)
            if pid == me:
                return True
            if pid <= 1:
                return False
        return False

    return {pid for pid, n in names.items() if b"chromium" in n and ours(pid)}


def renderers(pids: set[int]) -> set[int]:
    """The renderer processes among ``pids`` (the pages' own memory: the JS heap, ArrayBuffers)."""
    out = set()
    for pid in pids:
        try:
            if b"--type=renderer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.add(pid)
        except OSError:
            pass
    return out


def kind(pid: int) -> str:
    """A Chromium process's kind: browser, renderer (pages and their workers), gpu, network, other."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    for flag, name in ((b"--type=renderer", "renderer"), (b"--type=gpu", "gpu"), (b"NetworkService", "network")):
        if flag in cmd:
            return name
    return "other" if b"--type=" in cmd else "browser"


def cpu_seconds(pids: set[int]) -> float:
    """utime + stime of ``pids`` (live ones), seconds."""
    ticks = 0
    for pid in pids:
        try:
            ticks += sum(int(x) for x in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13])
        except (OSError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pids: set[int]) -> int:
    """Sum of PSS (shared pages divided among their users) of ``pids``, KiB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


SAMPLE_S = 0.25


class Sampler(threading.Thread):
    every = SAMPLE_S  # seconds between samples (--sample-every)

    def __init__(self, before: set[int]) -> None:
        super().__init__(daemon=True)
        self.before, self.peak, self.renderer_peak, self.stop_flag = before, 0, 0, False
        self.idle = self.by_kind(chromium_pids() - before)
        self.kind_peak: dict[str, int] = {}  # per kind of process, KiB
        self.cpu0 = self.cpu_now()
        self.cpu = 0.0
        self.own_cpu = 0.0
        self.kinds: dict[int, str] = {pid: kind(pid) for pid in self.cpu0}
        self.kind_cpu: dict[str, float] = {}  # CPU seconds per kind of process

    @staticmethod
    def by_kind(pids: set[int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for pid in pids:
            k = kind(pid)
            out[k] = out.get(k, 0) + rss_kib({pid})
        return out

    def cpu_now(self) -> dict[int, float]:
        return {pid: cpu_seconds({pid}) for pid in chromium_pids() - self.before}

    def run(self) -> None:
        # One PSS read per process a tick (smaps_rollup walks the process's page tables under its mmap
        # lock, so each read costs the browser too), every SAMPLE_S; the sampler's own CPU is printed.
        last: dict[int, float] = dict(self.cpu0)
        t0 = time.thread_time()
        while not self.stop_flag:
            pids = chromium_pids() - self.before
            for pid in pids:
                if pid not in self.kinds:
                    self.kinds[pid] = kind(pid)
            pss = {pid: rss_kib({pid}) for pid in pids}
            self.peak = max(self.peak, sum(pss.values()))
            self.renderer_peak = max(
                self.renderer_peak, sum(v for pid, v in pss.items() if self.kinds[pid] == "renderer")
            )
            per_kind: dict[str, int] = {}
            for pid, v in pss.items():
                per_kind[self.kinds[pid]] = per_kind.get(self.kinds[pid], 0) + v
            for k, v in per_kind.items():
                self.kind_peak[k] = max(self.kind_peak.get(k, 0), v)
            last.update(self.cpu_now())  # a process that ends keeps its last reading
            time.sleep(self.every)
        self.own_cpu = time.thread_time() - t0
        last.update(self.cpu_now())
        self.cpu = sum(v - self.cpu0.get(pid, 0.0) for pid, v in last.items())
        for pid, secs in last.items():
            k = self.kinds.get(pid, "gone")
            self.kind_cpu[k] = self.kind_cpu.get(k, 0.0) + secs - self.cpu0.get(pid, 0.0)

    def rises(self) -> str:
        """Peak rise over idle per kind of process, MiB (peaks need not be simultaneous), and CPU s."""
        mem = " ".join(f"{k} +{(v - self.idle.get(k, 0)) / 1024:.0f}" for k, v in sorted(self.kind_peak.items()))
        cpu = " ".join(f"{k} {v:.1f}" for k, v in sorted(self.kind_cpu.items()) if v >= 0.05)
        return f"{mem}; CPU s: {cpu}"


def tus_by_curl(suite: SuiteGateway, src: Path, name: str) -> None:
    """``src`` as one tus upload by curl: POST (creation), then the whole file as one PATCH."""
    from bench.files.browser_tus import tus_create

    location = tus_create(suite, src.stat().st_size, name)
    tus_h = [
        "-H",
        "Tus-Resumable: 1.0.0",
        "-H",
        "Upload-Offset: 0",
        "-H",
        "Content-Type: application/offset+octet-stream",
    ]
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "-u", f"{USER}:{suite.secret}", "-X", "PATCH", *tus_h,
                    "-T", str(src), suite.url + location], check=True, timeout=3600)  # fmt: skip


def curl_put(suite: SuiteGateway, src: Path, name: str) -> tuple[str, float]:
    """``curl -T`` to /api/files/content: (HTTP status, seconds)."""
    r = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-u", f"{USER}:{suite.secret}",
         "-T", str(src), f"{suite.url}/api/files/content/{name}"],
        capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    code, secs = r.stdout.split()
    return code, float(secs)


async def sign_in(page: Page, base: str) -> None:
    """Open the Files view, signing in on the way when the session is gone."""
    await page.goto(f"{base}/files", "!!document.querySelector('#login-email, .upl-list, h1')")
    if await page.eval("!!document.querySelector('#login-email')"):
        await page.eval(
            f"(() => {{ const f = document.querySelector('#login-email').form;"
            f" f.email.value = {json.dumps(USER)}; f.password.value = {json.dumps(PASSWORD)}; f.requestSubmit(); }})()"
        )
    await page.wait("[...document.querySelectorAll('h1')].some((h) => h.textContent.trim() === 'Files')", 60)


class Measure:
    """One row: wall time, the gateway's and the browser's CPU, the browser's memory (a Sampler)."""

    def __init__(self, gateway_pid: int, size: int) -> None:
        self.gw, self.size = gateway_pid, size

    def __enter__(self) -> Measure:
        self.idle = rss_kib(chromium_pids())
        self.sampler = Sampler(set())
        self.sampler.start()
        self.g0 = tree_cpu_seconds(self.gw)[0]
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.gw_cpu = tree_cpu_seconds(self.gw)[0] - self.g0
        self.sampler.stop_flag = True
        self.sampler.join()
        self.load = os.getloadavg()[0]

    def row(self) -> dict:
        s, gib = self.sampler, self.size / 2**30
        return {
            "seconds": self.seconds,
            "mbs": self.size / self.seconds / MB,
            "gw_s_gib": self.gw_cpu / gib,
            "peak_mib": s.peak / 1024,
            "idle_mib": self.idle / 1024,
            "renderer_peak_mib": s.renderer_peak / 1024,
            "cpu_s_gib": s.cpu / gib,
            "kinds": s.rises(),
            "sampler_cpu_s": s.own_cpu,
            "load": self.load,
        }


async def browser_rows(suite: SuiteGateway, src: Path, rounds: int, downloads: Path) -> list[tuple[str, dict]]:
    size = src.stat().st_size
    gw = suite.proc.pid
    rows: list[tuple[str, dict]] = []
    chromium = await Chromium().start()
    try:
        page = chromium.page
        link = ""
        for r in range(rounds):
            code, secs = curl_put(suite, src, f"curl{r}.bin")
            rows.append((f"curl -T (PUT), round {r + 1}", {"seconds": secs, "mbs": size / secs / MB, "code": code}))
            await sign_in(page, suite.url)
            with Measure(gw, size) as m:
                await page.set_files("input[aria-label='Upload files']", str(src))
                await page.wait("!!document.querySelector('.upl-list li[data-state=done]')", 3600, 0.05)
            rows.append(("browser tus", m.row()))
            await sign_in(page, suite.url)  # a fresh page: no upload rows, nothing of the last upload kept
            await page.click("button", "Encrypted link")
            await page.wait("!!document.querySelector('#sh-file')")
            with Measure(gw, size) as m:
                await page.set_files("#sh-file", str(src))
                await page.click(".share-form button", "Create link")
                link = await page.wait(
                    "document.querySelector('#share-link')?.value"
                    " || (document.querySelector('.share-form .error') ? 'error' : '')",
                    3600,
                    0.05,
                )
            if link == "error":
                raise RuntimeError(await page.eval("document.querySelector('.share-form .error').textContent"))
            rows.append(("browser encrypted + tus", m.row()))
        # the recipient: another browser context (no session), the link's page, "Download"
        visitor = await chromium.new_page(own_context=True)
        await visitor.allow_downloads(downloads)
        await visitor.goto(
            link, "[...document.querySelectorAll('button')].some((b) => b.textContent.trim() === 'Download')"
        )
        with Measure(gw, size) as m:
            await visitor.click("button", "Download")
            deadline = time.monotonic() + 3600
            while not any(f.stat().st_size == size and not f.name.endswith(".crdownload") for f in downloads.iterdir()):
                if time.monotonic() > deadline:
                    raise RuntimeError("the recipient's download did not finish")
                await asyncio.sleep(0.05)
        via = await visitor.eval("navigator.serviceWorker.controller ? 'a Service Worker stream' : 'Blob parts'")
        rows.append(("recipient download+decrypt", {**m.row(), "via": via}))
    finally:
        await chromium.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--sample-every", type=float, default=SAMPLE_S, help="seconds between memory samples")
    a = ap.parse_args()
    Sampler.every = a.sample_every
    root = make_root()
    suite = SuiteGateway(USER, PASSWORD, root=root)
    try:
        suite.start()
        src = random_file(root / "big.bin", a.mib)
        curl_put(suite, src, "warm-up.bin")  # untimed: see the docstring
        tus_by_curl(suite, src, "warm-up-tus.bin")
        (root / "downloads").mkdir()
        rows = asyncio.run(browser_rows(suite, src, a.rounds, root / "downloads"))
        print(
            f"files browser bench: {a.mib} MiB, {a.rounds} round(s), one gateway (SQLite, disk), chromium without DevTools' Network domain"
        )
        print(
            f"{'path':<30}{'s':>7}{'MB/s':>7}{'× curl':>8}{'gw CPU s/GiB':>14}{'browser PSS peak MiB':>24}{'renderers peak':>16}  load"
        )
        curl_mbs = 0.0
        for name, x in rows:
            if name.startswith("curl"):
                curl_mbs = x["mbs"]
                print(
                    f"{name:<30}{x['seconds']:>7.1f}{x['mbs']:>7.0f}{1:>8.2f}{'':>14}{'—':>24}{'—':>16}  (HTTP {x['code']})"
                )
                continue
            peak = f"{x['peak_mib']:.0f} (idle {x['idle_mib']:.0f}, +{x['peak_mib'] - x['idle_mib']:.0f})"
            print(f"{name:<30}{x['seconds']:>7.1f}{x['mbs']:>7.0f}{x['mbs'] / curl_mbs:>8.2f}{x['gw_s_gib']:>14.2f}"
                  f"{peak:>24}{x['renderer_peak_mib']:>16.0f}  {x['load']:.1f}")  # fmt: skip
        print(
            "browser CPU (all its processes, utime+stime) s/GiB, and PSS peak rise over idle per kind of process, MiB:"
        )
        for name, x in rows:
            if not name.startswith("curl"):
                print(
                    f"  {name:<28}{x['cpu_s_gib']:>6.1f}   {x['kinds']}; the memory sampler's own CPU {x['sampler_cpu_s']:.2f} s"
                )
        print(f"(the recipient's download was saved through {rows[-1][1]['via']})")
        return 0
    finally:
        suite.stop()
        if not a.keep:
            remove_root(root)


if __name__ == "__main__":
    sys.exit(main())
