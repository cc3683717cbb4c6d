"""Files bench, probe: how fast and at what CPU cost Chromium uploads a picked file, against a receiver
that does nothing but read the body — and ``curl -T`` to the same receiver in the same run.

    python bench/files/chromium_probe.py              # 256 MiB, 2 rounds
    python bench/files/chromium_probe.py --mib 1024 --rounds 3

Question it answers (issue #15's bench, #20 point 4): is Chromium's one-request upload capped near
100 MB/s, and would several requests in parallel (tus Concatenation, tus-js-client ``parallelUploads``)
help? The receiver (this file, ``--serve PORT``: one asyncio process, ``recv_into`` a 1 MiB buffer,
204 after the last byte) costs little CPU, so what is measured is the sender. Debian's chromium through
Playwright (headless) picks the file through an ``<input type=file>`` (a disk-backed File, as in the
Files view) and sends it with XHR: one request, or slices of ``chunk`` MiB one after another (tus-style
PATCHes), in 1 or 2 lanes at once. Columns: MB/s (10^6 bytes/s over the wall time), the receiver's and
the sender's CPU s/GiB (utime+stime of the process trees: Chromium's browser, network, renderer and GPU
processes; curl). Figures are printed, never asserted; the load average is printed beside each row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.imap.procs import free_port, tree_cpu_seconds, wait_port

MB = 10**6
MIB = 1024 * 1024

PAGE = b"""<!doctype html><html><body><input type="file" id="f"><script src="/probe.js"></script></body></html>"""
# Sends `file` as `lanes` parallel sequences of slices of `chunk` bytes (one request each); MB/s back.
SCRIPT = b"""
function put(blob) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("PUT", "/up");
    x.onload = () => resolve();
    x.onerror = () => reject(new Error("upload failed"));
    x.send(blob);
  });
}
window.probe = async (lanes, chunk) => {
  const file = document.getElementById("f").files[0];
  const t0 = performance.now();
  const per = Math.ceil(file.size / lanes);
  const runs = [];
  for (let i = 0; i < lanes; i++) {
    const start = i * per, end = Math.min(file.size, start + per);
    runs.push((async () => {
      for (let o = start; o < end; o += chunk) await put(file.slice(o, Math.min(end, o + chunk)));
    })());
  }
  await Promise.all(runs);
  return file.size / ((performance.now() - t0) / 1000);
};
"""


async def _handle(conn: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    buf = bytearray(MIB)
    view = memoryview(buf)
    pending = b""
    try:
        while True:
            while b"\r\n\r\n" not in pending:
                data = await loop.sock_recv(conn, 65536)
                if not data:
                    return
                pending += data
            head, _, pending = pending.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            left = int(headers.get("content-length", "0")) - len(pending)
            pending = b"" if left >= 0 else pending[len(pending) + left :]
            while left > 0:
                n = await loop.sock_recv_into(conn, view[: min(left, MIB)])
                if not n:
                    return
                left -= n
            if method in ("GET", "HEAD"):
                if path == "/cpu":
                    ru = resource.getrusage(resource.RUSAGE_SELF)
                    body, ctype = str(ru.ru_utime + ru.ru_stime).encode(), b"text/plain"
                elif path == "/probe.js":
                    body, ctype = SCRIPT, b"text/javascript"
                else:
                    body, ctype = PAGE, b"text/html"
                head_out = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (ctype, len(body))
                await loop.sock_sendall(conn, head_out + body)
            else:
                await loop.sock_sendall(conn, b"HTTP/1.1 204 No Content\r\n\r\n")
    finally:
        conn.close()


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(64)
    lsock.setblocking(False)
    tasks = set()
    while True:
        conn, _ = await loop.sock_accept(lsock)
        conn.setblocking(False)
        t = asyncio.ensure_future(_handle(conn))
        tasks.add(t)
        t.add_done_callback(tasks.discard)


async def probe(mib: int, rounds: int, src: Path, port: int, receiver: subprocess.Popen) -> None:
    from playwright.async_api import async_playwright

    base = f"http://127.0.0.1:{port}"

    def receiver_cpu() -> float:
        with urllib.request.urlopen(f"{base}/cpu") as r:
            return float(r.read())

    def others_cpu() -> float:  # our descendants but the receiver: Playwright's driver + Chromium, or curl
        return tree_cpu_seconds(os.getpid())[0] - tree_cpu_seconds(receiver.pid)[0] - sum(os.times()[:2])

    gib = mib / 1024
    cases: list[tuple[str, int, int]] = [("curl -T", 1, mib), ("chromium", 1, mib), ("chromium", 1, 64)]
    cases += [("chromium", 1, 5), ("chromium", 2, 64), ("chromium", 2, 5)]
    print(f"chromium probe: {mib} MiB, a receiver that only reads (one asyncio process), {rounds} round(s)")
    print(
        f"{'sender':<10}{'lanes':>6}{'chunk MiB':>10}{'MB/s':>8}{'receiver CPU s/GiB':>20}{'sender CPU s/GiB':>18}  load"
    )
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        page = await browser.new_page()
        await page.goto(base + "/")
        await page.set_input_files("#f", str(src))
        for _ in range(rounds):
            for sender, lanes, chunk in cases:
                r0, o0, t0 = receiver_cpu(), others_cpu(), time.perf_counter()
                if sender == "curl -T":
                    subprocess.run(["curl", "-sS", "-o", "/dev/null", "-T", str(src), f"{base}/up"], check=True)
                    rate = mib * MIB / (time.perf_counter() - t0)
                else:
                    rate = await page.evaluate("([l, c]) => probe(l, c)", [lanes, chunk * MIB])
                r1, o1 = receiver_cpu(), others_cpu()
                print(
                    f"{sender:<10}{lanes:>6}{chunk:>10}{rate / MB:>8.0f}{(r1 - r0) / gib:>20.2f}{(o1 - o0) / gib:>18.2f}"
                    f"  {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        await browser.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the receiver process
    a = ap.parse_args()
    if a.serve:
        asyncio.run(_serve(a.serve))
        return 0
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="suite-bench-probe-") as tmp:
        src = Path(tmp) / "big.bin"
        with open(src, "wb") as f:
            for _ in range(a.mib):
                f.write(os.urandom(MIB))
        receiver = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
        try:
            if not wait_port(port, 20, alive=lambda: receiver.poll() is None):
                print("the receiver did not start", file=sys.stderr)
                return 1
            asyncio.run(probe(a.mib, a.rounds, src, port, receiver))
        finally:
            receiver.terminate()
            receiver.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
