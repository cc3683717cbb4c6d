"""Files bench, browser side: one big file uploaded by Chromium through the Files view (tus, one PATCH
of the picked File) and through an encrypted link (WebCrypto AES-GCM records, then tus in 16 MiB PATCHes), against ``curl -T`` to
the same gateway in the same run, with the browser's memory peak.

    python bench/files/browser.py              # 1 GiB
    python bench/files/browser.py --mib 256

A Suite gateway (``suite serve --only gateway``, SQLite) in a temp folder, Debian's chromium driven by
Playwright (headless). Times: curl's time_total; the browser's from choosing the file to the upload's
progress bar at 100 % and "Done" (tus: after the last PATCH's 204, which comes after fsync + commit);
the encrypted path until the link is shown (encrypt + upload + share); the recipient's download of that
link (decrypted in the page, saved through its Service Worker) until the browser has the whole file.
Memory: the sum of PSS of the browser's processes (/proc/PID/smaps_rollup) sampled every 0.25 s (one read per process a tick; the sampler's own CPU is printed): the
peak, the idle figure before the upload and the rise over it; and the peak of the renderer processes
alone (the pages: JS heap, ArrayBuffers). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.files.servers import SuiteGateway, make_root, random_file, remove_root

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


async def browser_runs(base: str, src: Path, size: int) -> dict:
    from playwright.async_api import async_playwright

    before: set[int] = set()
    out: dict = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        page = await (await browser.new_context(base_url=base)).new_page()
        await page.goto("/files")
        await page.get_by_label("Email").fill(USER)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="Files", level=1).wait_for()
        for label in ("tus", "encrypted"):
            idle = rss_kib(chromium_pids() - before)
            s = Sampler(before)
            s.start()
            t0 = time.perf_counter()
            if label == "tus":
                await page.get_by_label("Upload files").set_input_files(str(src))
                bar = page.get_by_role("progressbar", name=f"Uploading {src.name}")
                await bar.wait_for()
                await (
                    page.locator(".upl-list li[data-state=done]").filter(has_text=src.name).wait_for(timeout=3_600_000)
                )
            else:
                await page.get_by_role("button", name="Encrypted link").click()
                dialog = page.get_by_role("dialog", name="New encrypted link")
                await dialog.get_by_label("File to encrypt").set_input_files(str(src))
                await dialog.get_by_role("button", name="Create link").click()
                link = dialog.get_by_label("Link", exact=True)
                await link.wait_for(timeout=3_600_000)
                out["link"] = await link.input_value()
            secs = time.perf_counter() - t0
            s.stop_flag = True
            s.join()
            out[label] = {
                "seconds": secs,
                "mbs": size / secs / MB,
                "peak_mib": s.peak / 1024,
                "idle_mib": idle / 1024,
                "renderer_peak_mib": s.renderer_peak / 1024,
                "cpu_s_gib": s.cpu / (size / 2**30),
                "kinds": s.rises(),
                "sampler_cpu_s": s.own_cpu,
            }
            await page.goto("/files")
        # the recipient: decrypt while downloading (Blob parts, see web/src/share/decrypt-save.js)
        visitor = await (await browser.new_context(accept_downloads=True)).new_page()
        await visitor.goto(out["link"])
        await visitor.get_by_role("button", name="Download").wait_for(timeout=60_000)
        idle = rss_kib(chromium_pids())
        s = Sampler(set())
        s.start()
        t0 = time.perf_counter()
        async with visitor.expect_download(timeout=3_600_000) as dl:
            await visitor.get_by_role("button", name="Download").click()
        d = await dl.value
        await d.path()
        out["decrypt_url"] = d.url
        secs = time.perf_counter() - t0
        s.stop_flag = True
        s.join()
        out["decrypt"] = {
            "seconds": secs,
            "mbs": size / secs / MB,
            "peak_mib": s.peak / 1024,
            "idle_mib": idle / 1024,
            "renderer_peak_mib": s.renderer_peak / 1024,
            "cpu_s_gib": s.cpu / (size / 2**30),
            "kinds": s.rises(),
            "sampler_cpu_s": s.own_cpu,
        }
        await browser.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--sample-every", type=float, default=SAMPLE_S, help="seconds between memory samples")
    a = ap.parse_args()
    Sampler.every = a.sample_every
    size = a.mib * 1024 * 1024
    root = make_root()
    suite = SuiteGateway(USER, PASSWORD, root=root)
    try:
        suite.start()
        src = random_file(root / "big.bin", a.mib)
        r = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-u", f"{USER}:{suite.secret}",
             "-T", str(src), f"{suite.url}/api/files/content/curl.bin"],
            capture_output=True, text=True, timeout=3600, check=False,
        )  # fmt: skip
        code, secs = r.stdout.split()
        curl_mbs = size / float(secs) / MB
        res = asyncio.run(browser_runs(suite.url, src, size))
        print(f"files browser bench: {a.mib} MiB, one run each, same gateway (SQLite, disk)")
        print(f"{'path':<26}{'s':>8}{'MB/s':>9}{'× curl':>8}{'browser PSS peak MiB':>24}{'renderers peak MiB':>20}")
        print(f"{'curl -T (PUT)':<26}{float(secs):>8.1f}{curl_mbs:>9.0f}{1:>8.2f}{'—':>24}{'—':>20}  (HTTP {code})")
        rows = (
            ("tus", "browser tus"),
            ("encrypted", "browser encrypted + tus"),
            ("decrypt", "recipient download+decrypt"),
        )
        for label, name in rows:
            x = res[label]
            peak = f"{x['peak_mib']:.0f} (idle {x['idle_mib']:.0f}, +{x['peak_mib'] - x['idle_mib']:.0f})"
            rend = f"{x['renderer_peak_mib']:.0f}"
            print(f"{name:<26}{x['seconds']:>8.1f}{x['mbs']:>9.0f}{x['mbs'] / curl_mbs:>8.2f}{peak:>24}{rend:>20}")
        print(
            "browser CPU (all its processes, utime+stime) s/GiB and PSS peak rise over idle per kind of process, MiB:"
        )
        for label, name in rows:
            x = res[label]
            print(
                f"  {name:<26}{x['cpu_s_gib']:>6.1f}   {x['kinds']}; the memory sampler's own CPU {x['sampler_cpu_s']:.2f} s"
            )
        print(f"load average {os.getloadavg()[0]:.1f}")
        via = "a Service Worker stream" if "/p/_dl/" in res["decrypt_url"] else "Blob parts"
        print(f"(the recipient's download was saved through {via})")
        return 0
    finally:
        suite.stop()
        if not a.keep:
            remove_root(root)


if __name__ == "__main__":
    sys.exit(main())
