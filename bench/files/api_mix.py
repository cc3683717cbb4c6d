"""Files bench: throughput and rates of the HTTP API, tus and WebDAV against a Suite gateway.

    python bench/files/api_mix.py             # 256 MiB transfers, 500 small files, 8 clients
    python bench/files/api_mix.py --mib 64 --small 200

Starts its own gateway (a subprocess, fresh data dir, SQLite) and reports MiB/s for streamed PUT
and GET, tus in 8 MiB chunks, WebDAV PUT/GET, random 64 KiB Range reads per second, small-file
creates per second over WebDAV and a PROPFIND Depth 1 over them, plus the server's peak RSS.
Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

SERVER = r"""
import asyncio, sys, pathlib
import suite.models
from suite.config import Settings
from suite.context import open_context
from suite.storage import db
from suite.gateway.service import GatewayService
async def main():
    st = Settings(data_dir=pathlib.Path(sys.argv[1]), bus_backend="memory", http_port=0)
    e = db.make_engine(st.db_url); await db.migrate(e); await e.dispose()
    ctx = await open_context(st)
    await ctx.accounts.add_domain("example.test")
    await ctx.accounts.add_account("bench@example.test", "correct horse battery", quota_bytes=1 << 40)
    _, secret = await ctx.accounts.add_app_password("bench@example.test", "bench", ["dav"])
    svc = GatewayService(ctx); await svc.start()
    print(svc.port, secret, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

CHUNK = 1024 * 1024


async def body(total: int):
    block = os.urandom(CHUNK)
    for _ in range(total // CHUNK):
        yield block


def rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def timed(label: str, nbytes: int | None, coro, count: int | None = None):
    t = time.perf_counter()
    await coro
    dt = time.perf_counter() - t
    if nbytes is not None:
        print(f"{label:<34} {nbytes / dt / 1024**2:9.1f} MiB/s  ({dt:.2f} s)")
    else:
        print(f"{label:<34} {count / dt:9.1f} /s     ({dt:.2f} s)")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--small", type=int, default=500)
    ap.add_argument("--clients", type=int, default=8)
    a = ap.parse_args()
    size = a.mib * CHUNK
    data_dir = tempfile.mkdtemp(prefix="suite-bench-files-")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, data_dir], stdout=subprocess.PIPE, text=True)
    try:
        port, secret = proc.stdout.readline().split()
        # the server logs one line per request to stdout: keep draining it
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        auth = ("bench@example.test", secret)
        tus = {"Tus-Resumable": "1.0.0"}
        async with httpx.AsyncClient(base_url=base, auth=auth, timeout=600) as c:

            async def put():
                assert (await c.put("/api/files/content/big.bin", content=body(size))).status_code == 201

            async def get(url):
                async with c.stream("GET", url) as r:
                    async for _ in r.aiter_raw():
                        pass

            async def tus_up():
                r = await c.post("/api/tus/", headers={**tus, "Upload-Length": str(size)})
                loc, off = r.headers["location"], 0
                block = os.urandom(8 * CHUNK)
                while off < size:
                    r = await c.patch(
                        loc,
                        content=block[: size - off],
                        headers={**tus, "Upload-Offset": str(off), "Content-Type": "application/offset+octet-stream"},
                    )
                    off = int(r.headers["upload-offset"])

            async def dav_put():
                assert (await c.put("/dav/big-dav.bin", content=body(size))).status_code == 201

            async def ranges(n):
                async def one(_):
                    start = random.randrange(0, size - 65536)
                    r = await c.get("/api/files/content/big.bin", headers={"Range": f"bytes={start}-{start + 65535}"})
                    assert r.status_code == 206

                sem = asyncio.Semaphore(a.clients)

                async def lim(i):
                    async with sem:
                        await one(i)

                await asyncio.gather(*(lim(i) for i in range(n)))

            async def small():
                await c.request("MKCOL", "/dav/small/")
                sem = asyncio.Semaphore(a.clients)

                async def one(i):
                    async with sem:
                        assert (await c.put(f"/dav/small/f{i}.txt", content=b"x" * 1000)).status_code == 201

                await asyncio.gather(*(one(i) for i in range(a.small)))

            async def propfind():
                for _ in range(5):
                    r = await c.request("PROPFIND", "/dav/small/", headers={"Depth": "1"})
                    assert r.status_code == 207

            print(f"Suite files bench: {a.mib} MiB transfers, {a.small} small files, {a.clients} clients\n")
            await timed("HTTP PUT (streamed)", size, put())
            await timed("HTTP GET", size, get("/api/files/content/big.bin"))
            await timed("tus upload (8 MiB PATCHes)", size, tus_up())
            await timed("WebDAV PUT", size, dav_put())
            await timed("WebDAV GET", size, get("/dav/big-dav.bin"))
            await timed("HTTP Range 64 KiB reads", None, ranges(500), 500)
            await timed("WebDAV small-file PUTs", None, small(), a.small)
            await timed(f"WebDAV PROPFIND Depth 1 ({a.small})", None, propfind(), 5)
        print(f"\nserver peak RSS: {rss_peak_kib(proc.pid) / 1024:.0f} MiB")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
