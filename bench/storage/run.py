"""Storage network bench: one provider (a plain S3 backend) vs replicas=2 over three providers, same run.

    python bench/storage/run.py                      # 1 GiB up/down, 10 000 small blobs
    python bench/storage/run.py --mib 256 --small 2000 --rerep-mib 2048

Providers: the radosgw processes of scripts/ceph-rgw-multi.sh (ports 17481–17483, one user and bucket
each; started when their ports are closed — needs root). Measures, through ``BlobStore``:
streamed upload and download of one large blob (MiB/s), small blobs written and read per second,
download throughput while the provider serving it is killed (and the read's completion), and the
time to re-replicate what was written during the outage once the provider returns. Prints figures,
asserts nothing. Buckets are made fresh and removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import hashlib
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
MULTI = ROOT / "scripts" / "ceph-rgw-multi.sh"
MiB = 1024 * 1024
PORTS = (17481, 17482, 17483)


LOCK = Path(os.environ.get("TMPDIR", "/tmp")) / "suite-rgw-multi-tests.lock"


def _ancestors() -> set[int]:
    pids, pid = set(), os.getppid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def _held_by_ancestor(lock) -> bool:
    """Whether a process above this one (``flock LOCKFILE python bench/...``) holds the lock: then
    taking it again here would wait for ever (a second open file description conflicts)."""
    st = os.fstat(lock.fileno())
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        rows = [line.split() for line in Path("/proc/locks").read_text().splitlines()]
    except OSError:
        return False
    ours = _ancestors()
    return any(r[1] == "FLOCK" and r[5] == dev and r[4].isdigit() and int(r[4]) in ours for r in rows if len(r) > 5)


def take_rgw_lock():
    """The radosgw on 17481–17483 are shared by every test run and bench on this machine (the bench
    kills one): wait until no other holds them — the lock tests/storage/test_network.py takes."""
    lock = open(LOCK, "w")  # held until the process ends
    if not _held_by_ancestor(lock):
        fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def rgw(*args: str) -> str:
    return subprocess.run(["bash", str(MULTI), *args], capture_output=True, text=True, check=True, timeout=900).stdout


def providers() -> dict[int, dict]:
    out = {}
    for line in rgw("start").splitlines():
        if line.startswith("provider "):
            _, port, url, ak, sk = line.split()
            out[int(port)] = {"endpoint": url, "access_key": ak.split("=", 1)[1], "secret_key": sk.split("=", 1)[1]}
    return out


def server_pids() -> list[int]:
    """The radosgw processes of the three providers and the one Ceph OSD behind them."""
    run = Path(os.environ.get("CEPH_DIR") or Path(os.environ.get("TMPDIR", "/tmp")) / "suite-ceph") / "run"
    pids = []
    for f in [*(run / f"rgw-{p}.pid" for p in PORTS), run / "osd.pid"]:
        try:
            pids.append(int(f.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
    return pids


def server_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` have used so far (/proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


class Phase:
    """Wall time, this process's CPU time and the servers' (radosgw + OSD) CPU time of a block."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.wall = self.cpu = self.server = 0.0

    def __enter__(self) -> Phase:
        self._t, self._c, self._s = time.perf_counter(), time.process_time(), server_cpu(self.pids)
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._t
        self.cpu = time.process_time() - self._c
        self.server = server_cpu(self.pids) - self._s


def chunks(size: int, seed: int, piece: int = 8 * MiB):
    rnd = random.Random(seed)
    left = size
    while left:
        n = min(piece, left)
        yield rnd.randbytes(n)
        left -= n


def settings(tmp: Path, prov: dict, ports, tag: str, backend: str):
    import suite.models  # noqa: F401
    from suite.config import Settings

    entries = [
        {"name": f"p{p}", "endpoint": prov[p]["endpoint"], "bucket": f"bench-{tag}-{p}",
         "access_key": prov[p]["access_key"], "secret_key": prov[p]["secret_key"]}
        for p in ports
    ]  # fmt: skip
    first = entries[0]
    return Settings(
        data_dir=tmp / tag,
        database_url=f"sqlite+aiosqlite:///{tmp / f'{tag}.db'}",
        bus_backend="memory",
        blob_backend=backend,
        s3_endpoint=first["endpoint"],
        s3_bucket=first["bucket"],
        s3_access_key=first["access_key"],
        s3_secret_key=first["secret_key"],
        storage={"providers": entries, "replicas": 2, "bandwidth_limit": 0, "read_timeout": 5.0},
    )


async def opened(st):
    from suite.context import open_context
    from suite.storage import db

    e = db.make_engine(st.db_url)
    await db.migrate(e)
    await e.dispose()
    return await open_context(st)


async def measure(stores: dict[str, Any], mib: int, small: int, rounds: int) -> dict[str, dict]:
    """Each phase runs on every store before the next phase starts, so the two see the same
    machine (the OSD still digesting the uploads, the load of the moment); the download is
    repeated ``rounds`` times, alternating which store goes first (median MiB/s, total CPU)."""
    res: dict[str, dict] = {k: {"_cpu": {}} for k in stores}
    pids = server_pids()

    def note(k: str, name: str, unit: str, amount: float, ph: Phase) -> None:
        res[k][name] = amount / ph.wall
        res[k]["_cpu"][unit] = (1000 * ph.cpu / amount, 1000 * ph.server / amount)

    for k, store in stores.items():
        with Phase(pids) as ph:
            res[k]["_ref"] = await store.put(chunks(mib * MiB, 1))
        note(k, "upload MiB/s", "upload ms/MiB", mib, ph)
    speeds: dict[str, list[float]] = {k: [] for k in stores}
    cpu: dict[str, list[float]] = {k: [0.0, 0.0] for k in stores}
    for r in range(rounds):
        for k in list(stores)[:: 1 if r % 2 == 0 else -1]:
            ref, h = res[k]["_ref"], hashlib.sha256()
            with Phase(pids) as ph:
                async for piece in stores[k].windows(ref.digest, 0, ref.size):
                    h.update(piece)
            assert h.hexdigest() == ref.digest
            speeds[k].append(mib / ph.wall)
            cpu[k][0] += ph.cpu
            cpu[k][1] += ph.server
    for k in stores:
        res[k]["download MiB/s"] = statistics.median(speeds[k])
        res[k]["_cpu"]["download ms/MiB"] = tuple(1000 * c / (mib * rounds) for c in cpu[k])
    sem = asyncio.Semaphore(16)
    refs: dict[str, list] = {}
    for k, store in stores.items():
        datas = [os.urandom(2000) for _ in range(small)]

        async def put(d: bytes, store=store):
            async with sem:
                return await store.put(d)

        with Phase(pids) as ph:
            refs[k] = await asyncio.gather(*(put(d) for d in datas))
        note(k, "small writes/s", "small write ms/blob", small, ph)
    for k, store in stores.items():

        async def get(r, store=store):
            async with sem:
                return await store.read_bytes(r.digest)

        with Phase(pids) as ph:
            await asyncio.gather(*(get(r) for r in refs[k]))
        note(k, "small reads/s", "small read ms/blob", small, ph)
    for k, r in res.items():
        print(f"{k:<28} " + "  ".join(f"{n} {v:8.1f}" for n, v in r.items() if not n.startswith("_")), flush=True)
        print(
            f"{'':<28} CPU client/server: " + "  ".join(f"{n} {c:.2f}/{sv:.2f}" for n, (c, sv) in r["_cpu"].items()),
            flush=True,
        )
    return res


async def outage(res: dict, mib: int, rerep_mib: int, deadline: float) -> None:
    """Download while the provider serving it is killed; then ``rerep_mib`` MiB written during the
    outage (their copies land on the two live providers) and the time the repair loop takes, once
    the provider returns, to put the copies placement wants there."""
    from suite.storage.network.repair import Repairer

    ctx, ref = res["_ctx"], res["_ref"]
    net = ctx.blobs.backend
    first = (await net.read_order(ref.digest))[0]
    port = first.name[1:]
    t = time.perf_counter()
    got, killed, h = 0, False, hashlib.sha256()
    failed = 0
    try:
        async for piece in ctx.blobs.windows(ref.digest, 0, ref.size):
            h.update(piece)
            got += len(piece)
            if not killed and got >= ref.size // 4:
                rgw("kill", port)
                killed = True
    except Exception as exc:
        failed = 1
        print(f"download failed during the outage: {exc!r}")
    secs = time.perf_counter() - t
    ok = h.hexdigest() == ref.digest and not failed
    print(
        f"download with p{port} killed at 25%: {mib / secs:8.1f} MiB/s, complete and correct: {ok}, failed reads: {failed}"
    )
    t = time.perf_counter()
    written = [await ctx.blobs.put(chunks(64 * MiB, 100 + i)) for i in range(max(1, rerep_mib // 64))]
    wsecs = time.perf_counter() - t
    async with ctx.sessions.begin() as s:
        await ctx.blobs.ref_many(s, written)
    total = sum(r.size for r in written)
    print(f"written during the outage (2 live providers): {total / MiB:.0f} MiB at {total / MiB / wsecs:.1f} MiB/s")
    rgw("revive", port)
    rep = Repairer(net)
    t = time.perf_counter()
    left = await rep.until_settled(time.monotonic() + deadline)
    secs = time.perf_counter() - t
    copied = rep.copied_bytes
    rate = copied / MiB / secs if secs else 0.0
    print(
        f"re-replication after p{port} returned: {secs:6.1f} s, {copied / MiB:.0f} MiB copied onto it "
        f"({rate:.1f} MiB/s, {left} left); at that rate 10 GiB takes {10 * 1024 / rate:.0f} s"
        if rate
        else f"re-replication after p{port} returned: {secs:6.1f} s, nothing to copy ({left} left)"
    )


async def cleanup(st) -> None:
    from suite.storage.network import NetworkBackend

    net = NetworkBackend.from_settings(st)
    for p in net.providers.values():
        try:
            client = await p.backend._client()
            async for d in p.backend.list_digests():
                await p.backend.delete(d)
            await p.backend.clean_tmp(time.time() + 1)
            await client.delete_bucket(Bucket=p.backend.bucket)
        except Exception as exc:
            print(f"cleanup of {p.name}: {exc!r}")
    await net.close()


def osd_free_mib() -> int | None:
    """Free space of the test cluster's OSDs (``ceph df``), or None when it cannot be asked."""
    conf = Path(os.environ.get("CEPH_DIR", f"{os.environ.get('TMPDIR', '/tmp')}/suite-ceph")) / "ceph.conf"
    try:
        out = subprocess.run(
            ["ceph", "-c", str(conf), "df", "--format", "json"], capture_output=True, timeout=30, check=True
        ).stdout
        return int(json.loads(out)["stats"]["total_avail_bytes"]) // MiB
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None


def fit_to_osd(args: argparse.Namespace) -> None:
    """A full OSD blocks every write of every S3 test on this machine (Ceph stops at its full ratio):
    what the bench writes — the large blob once on one provider and twice on the network, then
    twice what is written during the outage — must stay within half of the free space."""
    free = osd_free_mib()
    if free is None:
        return
    budget = free // 2
    if 3 * args.mib > budget:
        sys.exit(f"bench/storage: {3 * args.mib} MiB for --mib {args.mib} exceeds half the OSD's free {free} MiB")
    room = (budget - 3 * args.mib) // 2
    if args.rerep_mib > room:
        print(f"--rerep-mib {args.rerep_mib} lowered to {room}: the OSD has {free} MiB free", flush=True)
        args.rerep_mib = room


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--rerep-mib", type=int, default=10 * 1024, help="MiB written during the outage")
    ap.add_argument("--rounds", type=int, default=3, help="downloads per store (median)")
    ap.add_argument("--rerep-deadline", type=float, default=3600, help="seconds re-replication may take")
    args = ap.parse_args()
    lock = take_rgw_lock()  # noqa: F841 — held until the process ends
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs", flush=True)
    prov = providers()
    fit_to_osd(args)
    tag = secrets.token_hex(3)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        one = settings(tmp, prov, PORTS[:1], f"{tag}a", "s3")
        three = settings(tmp, prov, PORTS, f"{tag}b", "network")
        ctxs: list = []
        try:
            ctxs.append(await opened(one))
            ctxs.append(await opened(three))
            labels = ("1 provider (s3)", "replicas=2 over 3 providers")
            res = await measure(
                dict(zip(labels, (c.blobs for c in ctxs), strict=True)), args.mib, args.small, args.rounds
            )
            r1, r3 = res[labels[0]], res[labels[1]]
            for k in ("upload MiB/s", "download MiB/s", "small writes/s", "small reads/s"):
                print(f"  ratio {k:<16} {r3[k] / r1[k]:5.2f}x")
            for k, (c3, s3) in r3["_cpu"].items():
                c1, s1 = r1["_cpu"][k]
                print(f"  CPU {k:<20} client {c3 / c1:5.2f}x  server {s3 / s1:5.2f}x")
            print(f"  load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            await ctxs[0].close()
            ctxs = ctxs[1:]
            async with ctxs[0].sessions.begin() as s:
                await ctxs[0].blobs.ref_many(s, [r3["_ref"]])
            await outage({"_ctx": ctxs[0], "_ref": r3["_ref"]}, args.mib, args.rerep_mib, args.rerep_deadline)
        finally:
            for c in ctxs:
                await c.close()
            for p in PORTS:
                subprocess.run(["bash", str(MULTI), "revive", str(p)], capture_output=True, check=False)
            await cleanup(one)
            await cleanup(three)


if __name__ == "__main__":
    asyncio.run(main())
