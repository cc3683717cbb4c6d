"""SMTP ingest and IMAP command throughput with 1 vs 2 processes of each, in the same run, on
PostgreSQL (a throwaway database) + the Redis bus + one shared data dir; prints msgs/s, commands/s,
the 2:1 ratios and where the CPU went (Suite processes vs PostgreSQL) to name the bottleneck.

    python bench/scale/run.py                     # 20 s per phase, 16 SMTP / 16 IMAP clients
    python bench/scale/run.py --seconds 5 --clients 8
    python bench/scale/run.py --imap-messages 6000  # the IMAP phases on a bigger INBOX

Measures, never asserts; talks to 127.0.0.1 only and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "ops"))

from cluster import PASSWORD, Cluster  # noqa: E402

from suite.testing import POSTGRES_ADMIN_DSN  # noqa: E402

USER = "bench@bench.test"
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def postgres_pids() -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if p.joinpath("comm").read_text().strip() in ("postgres", "postmaster"):
                    out.append(int(p.name))
            except OSError:
                pass
    return out


def message(i: int) -> bytes:
    m = EmailMessage()
    m["From"] = "load@remote.test"
    m["To"] = USER
    m["Subject"] = f"bench {i}"
    m.set_content("x" * 2000 + "\n")
    return m.as_bytes(policy=policy.SMTP)


async def smtp_load(ports: list[int], clients: int, seconds: float) -> int:
    import aiosmtplib

    done = 0
    deadline = time.monotonic() + seconds

    async def client(k: int) -> None:
        nonlocal done
        port = ports[k % len(ports)]
        i = 0
        while time.monotonic() < deadline:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, start_tls=False) as s:
                for _ in range(10):  # ten messages per connection, as an MTA batches
                    if time.monotonic() >= deadline:
                        break
                    await s.sendmail("load@remote.test", [USER], message(i))
                    i += 1
                    done += 1

    await asyncio.gather(*(client(k) for k in range(clients)))
    return done


async def imap_load(ports: list[int], clients: int, seconds: float) -> int:
    done = 0
    deadline = time.monotonic() + seconds

    async def client(k: int) -> None:
        nonlocal done
        r, w = await asyncio.open_connection("127.0.0.1", ports[k % len(ports)])
        await r.readline()
        n = 0

        async def cmd(line: str) -> None:
            nonlocal n
            n += 1
            tag = f"t{n}".encode()
            w.write(tag + b" " + line.encode() + b"\r\n")
            while True:
                got = await r.readline()
                if not got:
                    raise ConnectionError("closed")
                if got.startswith(tag + b" "):
                    return

        await cmd(f'LOGIN {USER} "{PASSWORD}"')
        while time.monotonic() < deadline:
            await cmd("SELECT INBOX")
            await cmd("UID FETCH 1:50 (FLAGS ENVELOPE RFC822.SIZE)")
            await cmd("UID SEARCH SUBJECT bench")
            await cmd("NOOP")
            done += 4
        await cmd("LOGOUT")
        w.close()

    await asyncio.gather(*(client(k) for k in range(clients)))
    return done


async def top_up(port: int, want: int) -> int:
    """Append (MULTIAPPEND, RFC 3502) until the INBOX holds ``want`` messages; returns how many it holds."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    await r.readline()

    async def cmd(tag: bytes, data: bytes) -> list[bytes]:
        w.write(tag + b" " + data + b"\r\n")
        lines = []
        while not (line := await r.readline()).startswith(tag + b" "):
            if not line:
                raise ConnectionError("closed")
            lines.append(line)
        if not line.startswith(tag + b" OK"):
            raise RuntimeError(line.decode(errors="replace"))
        return lines

    await cmd(b"l", f'LOGIN {USER} "{PASSWORD}"'.encode())
    got = await cmd(b"s", b"STATUS INBOX (MESSAGES)")
    have = int(got[0].rsplit(b"MESSAGES ", 1)[1].split(b")")[0])
    while have < want:
        batch = [message(have + k) for k in range(min(200, want - have))]
        await cmd(b"a", b"APPEND INBOX" + b"".join(b" {%d+}\r\n" % len(m) + m for m in batch))
        have += len(batch)
    await cmd(b"o", b"LOGOUT")
    w.close()
    return have


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine (other users of the cores included)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)


def phase(name: str, procs, load, seconds: float) -> tuple[float, ...]:
    pids = [p.popen.pid for p in procs]
    pg = postgres_pids()
    c0, p0, g0, t0 = cpu_seconds(pids), cpu_seconds(pg), time.process_time(), time.monotonic()
    b0, a0 = machine_busy()
    n = asyncio.run(load())
    elapsed = time.monotonic() - t0
    b1, a1 = machine_busy()
    suite_cpu = (cpu_seconds(pids) - c0) / elapsed
    pg_cpu = (cpu_seconds(pg) - p0) / elapsed
    gen_cpu = (time.process_time() - g0) / elapsed
    busy = (b1 - b0) / max(a1 - a0, 1)  # fraction of all cores busy, whoever used them
    return n / elapsed, suite_cpu, pg_cpu, gen_cpu, busy


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument(
        "--imap-messages", type=int, default=0, help="top the INBOX up to this many messages before the IMAP phases"
    )
    args = ap.parse_args()
    import tempfile

    name = f"suite_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    results: dict[tuple[str, int], tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="suite-bench-scale-") as tmp:
        c = Cluster.make(
            Path(tmp),
            database_url=f"{base}/{name}",
            bus_backend="redis",
            hostname="bench.test",
            # one loopback IP opens every connection: lift the per-IP limits an abuser would hit
            smtp_max_connections_per_minute="1000000",
            smtp_max_connections_per_ip="1000",
        )
        try:
            c.bootstrap(domain="bench.test", users=("bench",))
            for n in (1, 2):
                smtp = [c.serve(f"smtp{n}-{i}", "smtp") for i in range(n)]
                ports = [p.ports["smtp_port"] for p in smtp]
                results[("smtp", n)] = phase(
                    "smtp", smtp, lambda ports=ports: smtp_load(ports, args.clients, args.seconds), args.seconds
                )
                c.stop_all()
            # both IMAP phases read the same mailbox (what SMTP delivered, topped up): a command's cost
            # grows with the mailbox (SELECT loads it, SEARCH walks it), so phases between deliveries
            # would compare mailboxes of different sizes
            seeder = c.serve("imap-seed", "imap")
            inbox = asyncio.run(top_up(seeder.ports["imap_port"], args.imap_messages))
            c.stop_all()
            for n in (1, 2):
                imap = [c.serve(f"imap{n}-{i}", "imap") for i in range(n)]
                ports = [p.ports["imap_port"] for p in imap]
                results[("imap", n)] = phase(
                    "imap", imap, lambda ports=ports: imap_load(ports, args.clients, args.seconds), args.seconds
                )
                c.stop_all()
        finally:
            c.stop_all()
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    cores = os.cpu_count() or 1
    print(
        f"\n{cores} cores; {args.clients} clients; {args.seconds:.0f} s per phase; PostgreSQL + Redis bus; "
        f"IMAP phases on an INBOX of {inbox} messages"
    )
    print(
        f"{'':18}{'1 process':>14}{'2 processes':>14}{'ratio':>8}   "
        "CPU in cores suite/postgres/load generator, machine busy (1 → 2 processes)"
    )
    for kind, unit in (("smtp", "msgs/s"), ("imap", "cmds/s")):
        one, two = results[(kind, 1)], results[(kind, 2)]
        ratio = two[0] / one[0] if one[0] else float("nan")
        per = [f"{x[1] / x[0] * 1000:.2f}" if x[0] else "-" for x in (one, two)]
        print(
            f"{kind + ' ' + unit:18}{one[0]:>14.1f}{two[0]:>14.1f}{ratio:>8.2f}   "
            f"{one[1]:.2f}/{one[2]:.2f}/{one[3]:.2f} {one[4]:.0%} → {two[1]:.2f}/{two[2]:.2f}/{two[3]:.2f} {two[4]:.0%}"
        )
        print(f"  Suite CPU per {unit.split('/')[0][:-1]}: {per[0]} → {per[1]} ms")
        if two[4] > 0.85:
            where = "CPU: the machine's cores are saturated (Suite, PostgreSQL, the load generator and other users)"
        elif two[3] > 0.8:
            where = "the load generator: one Python process near one core"
        elif two[2] > two[1]:
            where = "database: PostgreSQL uses more CPU than Suite (commits/fsync, row locks on the mailbox)"
        else:
            where = "Suite's processes (Python) or waiting on commits (disk fsync)"
        print(f"  bottleneck ({kind}): {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
