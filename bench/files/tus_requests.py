"""Files bench: the server CPU of one tus request — what a PATCH or HEAD costs besides its bytes.

    python bench/files/tus_requests.py              # 300 PATCHes of 4 KiB and 300 HEADs per credential
    python bench/files/tus_requests.py --n 1000 --chunk-kib 64
    python bench/files/tus_requests.py --baseline-bin /path/to/other/suite   # two servers, rounds alternated

Starts ``suite serve --only gateway`` (bench/files/servers.py: the real CLI, SQLite, its default worker
count), then on one kept-alive httpx connection per credential — HTTP Basic with an app password (DAV
tools, the benches' curl) and the web app's session cookie with its CSRF token (the browser) — creates
an upload and sends ``--n`` PATCHes of ``--chunk-kib`` KiB, then ``--n`` HEADs. Prints the server's CPU
(utime+stime of its process tree) per request and the client's wall time per request. Small bodies make
the per-request part (login check, the upload's row, the offset commit, the fsync of a few pages)
dominate; bench/files/run.py measures the per-byte part. With ``--baseline-bin`` a second gateway runs
another build's ``suite`` CLI (e.g. a checkout of main) and the rounds alternate between the two, so
before/after figures come from the same run under the same load. Never asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

try:
    from bench.files.servers import SuiteGateway
    from bench.imap.procs import tree_cpu_seconds
except ImportError:  # run as a script: bench/files is sys.path[0]
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.files.servers import SuiteGateway
    from bench.imap.procs import tree_cpu_seconds

USER = "bench@example.test"
PASSWORD = "correct horse battery staple"
TUS = {"Tus-Resumable": "1.0.0"}


def measure(client: httpx.Client, pid: int, n: int, chunk: int, label: str) -> dict[str, float]:
    """Server CPU in ms per PATCH and per HEAD of one upload (``n`` of each), printed and returned."""
    r = client.post("/api/tus/", headers={**TUS, "Upload-Length": str(n * chunk + 1)})
    r.raise_for_status()
    url = r.headers["location"]
    body = os.urandom(chunk)
    out: dict[str, float] = {}
    for kind in ("PATCH", "HEAD"):
        s0, t0 = tree_cpu_seconds(pid)[0], time.perf_counter()
        for i in range(n):
            if kind == "PATCH":
                h = {**TUS, "Upload-Offset": str(i * chunk), "Content-Type": "application/offset+octet-stream"}
                r = client.patch(url, headers=h, content=body)
                want = 204
            else:
                r = client.head(url, headers=TUS)
                want = 200
            if r.status_code != want:
                raise SystemExit(f"{label} {kind} {i}: {r.status_code} {r.text[:200]}")
        t, s1 = time.perf_counter() - t0, tree_cpu_seconds(pid)[0]
        out[kind] = (s1 - s0) / n * 1000
        print(f"  {label:<22} {kind:<5} srv CPU {out[kind]:6.2f} ms/request   wall {t / n * 1000:6.2f} ms/request")
    client.delete(url, headers=TUS)
    return out


def clients(suite: SuiteGateway) -> dict[str, httpx.Client]:
    """One kept-alive client per credential: Basic with the app password, and a signed-in session."""
    basic = httpx.Client(base_url=suite.url, auth=(USER, suite.secret), timeout=60)
    web = httpx.Client(base_url=suite.url, timeout=60)
    r = web.post("/api/login", json={"address": USER, "password": PASSWORD})
    r.raise_for_status()
    web.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return {"Basic (app password)": basic, "session cookie": web}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="PATCHes and HEADs per credential")
    ap.add_argument("--chunk-kib", type=int, default=4, help="PATCH body size")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-bin", type=Path, help="another build's suite CLI, measured in alternation")
    a = ap.parse_args()
    chunk = a.chunk_kib * 1024
    with tempfile.TemporaryDirectory(prefix="bench-tusreq-") as tmp:
        builds = {"this": SuiteGateway(USER, PASSWORD, root=Path(tmp) / "this")}
        if a.baseline_bin:
            builds["baseline"] = SuiteGateway(USER, PASSWORD, root=Path(tmp) / "baseline", suite_bin=a.baseline_bin)
        figures: dict[tuple[str, str, str], list[float]] = {}
        try:
            conns = {}
            for name, g in builds.items():
                g.start()
                conns[name] = clients(g)
                print(f"{name}: {g.suite_bin} at {g.url}")
            print(f"load average {os.getloadavg()[0]:.2f}")
            for rnd in range(a.rounds):
                print(f"round {rnd + 1}: {a.n} × {a.chunk_kib} KiB PATCH, {a.n} HEAD")
                order = list(builds) if rnd % 2 == 0 else list(reversed(builds))
                for name in order:
                    proc = builds[name].proc
                    assert proc is not None
                    for cred, client in conns[name].items():
                        for kind, ms in measure(client, proc.pid, a.n, chunk, f"{name} {cred}"[:22]).items():
                            figures.setdefault((name, cred, kind), []).append(ms)
            print(f"\nmedian server CPU ms/request over {a.rounds} rounds (load average {os.getloadavg()[0]:.2f})")
            for (name, cred, kind), v in sorted(figures.items()):
                line = f"  {name:<9} {cred:<22} {kind:<5} {statistics.median(v):6.2f}"
                base = figures.get(("baseline", cred, kind))
                if name == "this" and base:
                    line += f"   ×{statistics.median(v) / statistics.median(base):.2f} of baseline"
                print(line)
        finally:
            for g in builds.values():
                g.stop()


if __name__ == "__main__":
    main()
