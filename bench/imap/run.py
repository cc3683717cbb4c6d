"""IMAP bench: the same load against Suite and against Dovecot in one run, side by side.

    python bench/imap/run.py                       # both servers, 10 clients, 20 s each
    python -m bench.imap.run --only dovecot --seconds 3
    python bench/imap/run.py --only suite --suite-port 2143 --suite-data-dir ./data

Each server gets the same users and the same seeded mailbox (N real corpus messages per user, put in with
IMAP APPEND), then the same command mix from P load processes × C asyncio clients (see load.py). The servers
run one after the other, never at the same time. Reported: commands/s, server CPU ms per command (from
/proc of the server's whole process tree), errors with samples, p50/p95 latency per command kind, and the
Suite/Dovecot ratios. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import email.parser
import email.policy
import json
import multiprocessing
import os
import queue
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if not __package__:  # `python bench/imap/run.py`: make `bench.imap` importable (also for spawned workers)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.imap import load
from bench.imap.dovecot import Dovecot, DovecotError
from bench.imap.load import Config, ImapClient, ImapError, Stats, quote
from bench.imap.procs import (
    CLK_TCK,
    host_cpu_ticks,
    pid_alive,
    pid_listening_on,
    port_open,
    tree_cpu_seconds,
)
from bench.imap.suite_server import (
    DEFAULT_SUITE_BIN,
    SuiteError,
    SuiteServer,
    SuiteUnavailable,
)
from bench.installed import suite_python

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = REPO / "tests" / "data" / "mail"
DOMAIN = "bench.test"


class BenchError(RuntimeError):
    pass


# ------------------------------------------------------------------ corpus
def load_corpus(folder: Path, max_bytes: int) -> list[bytes]:
    files = sorted(folder.glob("*.eml"))
    if not files:
        raise BenchError(f"no *.eml in {folder} (set --corpus)")
    out = []
    for f in files:
        data = f.read_bytes()
        if len(data) > max_bytes or b"\x00" in data:  # NUL is not allowed in a non-binary literal
            continue
        if b"\r\n" not in data:
            data = data.replace(b"\n", b"\r\n")
        out.append(data)
    if not out:
        raise BenchError(f"no message in {folder} is at most {max_bytes} octets")
    return out


_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]{3,}")


def search_terms(messages: list[bytes], limit: int = 24) -> tuple[list[str], list[str]]:
    """ASCII words from the From and Subject headers of the seeded messages, for SEARCH FROM / SUBJECT."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    froms: list[str] = []
    subjects: list[str] = []
    for raw in messages:
        try:
            h = parser.parsebytes(raw)
            frm, subj = str(h.get("From", "")), str(h.get("Subject", ""))
        except Exception:
            continue
        for text, into in ((frm, froms), (subj, subjects)):
            if "=?" in text:  # encoded words: keep the terms plain ASCII
                continue
            for w in _TOKEN.findall(text)[:2]:
                if w.lower() not in {t.lower() for t in into}:
                    into.append(w)
    return (froms[:limit] or ["nobody"]), (subjects[:limit] or ["nothing"])


# ------------------------------------------------------------------ seeding
async def _seed_user(
    host: str, port: int, user: str, password: str, messages: list[bytes], count: int, timeout: float
) -> int:
    c = ImapClient(timeout)
    await c.connect(host, port)
    try:
        for text in (f"LOGIN {quote(user)} {quote(password)}", "SELECT INBOX"):
            r = await c.command(text)
            if r.status != "OK":
                raise BenchError(f"seeding {user}: {text.split()[0]} -> {r.text}")
        if c.exists:  # a reused server (--suite-port): start from an empty INBOX
            for text in ("STORE 1:* +FLAGS.SILENT (\\Deleted)", "EXPUNGE"):
                r = await c.command(text)
                if r.status != "OK":
                    raise BenchError(f"emptying INBOX of {user}: {text} -> {r.text}")
        for i in range(count):
            r = await c.command("APPEND INBOX", messages[i % len(messages)])
            if r.status != "OK":
                raise BenchError(f"seeding {user}: APPEND of message {i + 1} -> {r.text}")
        r = await c.command("SELECT INBOX")
        if r.status != "OK" or c.exists != count:
            raise BenchError(f"seeding {user}: INBOX holds {c.exists} messages, expected {count}")
        await c.command("LOGOUT")
        return c.exists
    finally:
        await c.close()


async def seed(
    host: str, port: int, users: list[tuple[str, str]], messages: list[bytes], count: int, timeout: float
) -> None:
    await asyncio.gather(*(_seed_user(host, port, u, p, messages, count, timeout) for u, p in users))


# ------------------------------------------------------------------ one measured run
@dataclass
class Result:
    server: str
    version: str = ""
    stats: Stats = field(default_factory=Stats)
    server_cpu: float | None = None  # seconds over the load windows
    server_procs: tuple[int, int] = (0, 0)  # live processes in the tree before / after the last window
    seed_seconds: float = 0.0
    seed_cpu: float | None = None
    host_busy: float = 0.0  # CPU seconds the whole machine was busy over the load windows (all processes)
    host_idle: float = 0.0
    rounds: int = 0
    problem: str = ""  # why it did not run (fully)
    log_tail: str = ""

    @property
    def commands(self) -> int:
        return sum(v for k, v in self.stats.count.items() if k != "connect")

    @property
    def errors(self) -> int:
        return sum(self.stats.errors.values())


@dataclass
class Target:
    """A server ready for load: seeded, with the pid whose process tree is charged for CPU."""

    name: str
    port: int
    pid: int | None
    result: Result
    stop: object = None  # callable that stops a server we started


def run_load(cfg: Config, processes: int, clients: int, server_pid: int | None, result: Result) -> None:
    """One load window against one server; adds its counts, latencies and CPU to ``result``."""
    ctx = multiprocessing.get_context("spawn")
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    procs, first = [], 0
    for n in shares:
        if n == 0:
            continue
        p = ctx.Process(target=load.worker, args=(cfg, first, n, ready, start, results), daemon=True)
        p.start()
        procs.append(p)
        first += n
    got: list[Stats] = []
    try:
        for _ in procs:
            try:
                ready.get(timeout=120)
            except queue.Empty:
                raise BenchError("a load process did not start within 120 s") from None
        cpu0, n0 = tree_cpu_seconds(server_pid) if server_pid else (None, 0)
        host0 = host_cpu_ticks()
        start.set()
        wait_until = time.monotonic() + cfg.seconds + cfg.timeout + 60
        while len(got) < len(procs):
            try:
                msg = results.get(timeout=max(1.0, wait_until - time.monotonic()))
            except queue.Empty:
                raise BenchError("load processes did not report back in time") from None
            if msg[0] != "ok":
                raise BenchError(f"load process for clients from #{msg[1]} failed: {msg[2]}")
            got.append(msg[2])
        cpu1, n1 = tree_cpu_seconds(server_pid) if server_pid else (None, 0)
        host1 = host_cpu_ticks()
    except BaseException:
        for p in procs:  # interrupted or failed: do not wait for the clients' deadline
            if p.is_alive():
                p.terminate()
        raise
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
                p.join(5)
    round_stats = Stats()
    for st in got:
        round_stats.merge(st)  # processes ran side by side: elapsed is the longest
    elapsed = result.stats.elapsed + round_stats.elapsed  # rounds ran one after the other
    result.stats.merge(round_stats)
    result.stats.elapsed = elapsed
    result.host_busy += (host1[0] - host0[0]) / CLK_TCK
    result.host_idle += ((host1[1] - host0[1]) - (host1[0] - host0[0])) / CLK_TCK
    result.rounds += 1
    if server_pid and not pid_alive(server_pid):
        result.problem = f"the server (pid {server_pid}) exited during the load"
        result.stats.notes.add("no CPU figures: the server exited during the load")
        result.server_cpu = None
    elif cpu0 is not None and cpu1 is not None:
        result.server_cpu = (result.server_cpu or 0.0) + (cpu1 - cpu0)
        result.server_procs = (n0, n1)


def seed_target(t: Target, users, args, messages) -> None:
    print(f"[{t.name}] seeding {len(users)} users × {args.messages} messages on 127.0.0.1:{t.port} …", flush=True)
    c0 = tree_cpu_seconds(t.pid)[0] if t.pid else None
    t0 = time.monotonic()
    asyncio.run(seed("127.0.0.1", t.port, users, messages, args.messages, args.timeout))
    t.result.seed_seconds = time.monotonic() - t0
    if t.pid:
        t.result.seed_cpu = tree_cpu_seconds(t.pid)[0] - c0


SETUP_ERRORS = (
    DovecotError,
    SuiteError,
    BenchError,
    ImapError,
    OSError,
    asyncio.TimeoutError,
    subprocess.SubprocessError,
)


def prepare_dovecot(args, users, messages) -> Target:
    result = Result("dovecot")
    dc = Dovecot(users, install=not args.no_install, keep=args.keep)
    t = Target("dovecot", dc.port, None, result, stop=dc.stop)
    try:
        dc.start()
        t.pid, result.version = dc.master_pid, dc.version()
        t.stop = lambda: (setattr(result, "log_tail", dc.log_tail()), dc.stop())
        seed_target(t, users, args, messages)
    except SETUP_ERRORS as exc:
        result.problem, result.log_tail = _why(exc), dc.log_tail()
        dc.stop()
    return t


def prepare_suite(args, users, messages) -> Target:
    result = Result("suite")
    if args.suite_port:  # an already running Suite: we neither start nor stop it
        t = Target("suite", args.suite_port, None, result)
        if not port_open(args.suite_port):
            result.problem = f"nothing listens on 127.0.0.1:{args.suite_port} (--suite-port)"
            return t
        t.pid = args.suite_pid or pid_listening_on(args.suite_port)
        if t.pid is None:
            result.stats.notes.add("server pid unknown (pass --suite-pid): no CPU figures")
        result.version = _suite_version(args)
        try:
            if args.suite_data_dir:
                _ensure_users(args, users)
            seed_target(t, users, args, messages)
        except SETUP_ERRORS as exc:
            result.problem = _why(exc)
        return t
    settings = dict(kv.split("=", 1) for kv in args.suite_setting)
    srv = SuiteServer(users, suite_bin=Path(args.suite_bin), keep=args.keep, settings=settings)
    t = Target("suite", srv.port, None, result, stop=srv.stop)
    try:
        print("[suite] making the data dir and users, starting `suite serve --only imap` …", flush=True)
        srv.start()
        t.pid, result.version = srv.pid, _suite_version(args)
        t.stop = lambda: (setattr(result, "log_tail", srv.log_tail()), srv.stop())
        seed_target(t, users, args, messages)
    except SuiteUnavailable as exc:
        result.problem = f"Suite IMAP not available yet: {exc}"
        srv.stop()
    except SETUP_ERRORS as exc:
        result.problem, result.log_tail = _why(exc), srv.log_tail()
        srv.stop()
    return t


def _ensure_users(args, users) -> None:
    env = dict(os.environ, SUITE_DATA_DIR=str(args.suite_data_dir))
    run = lambda *a, stdin=None: subprocess.run(
        [args.suite_bin, *a], input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    run("domain", "add", DOMAIN)  # fails harmlessly when it exists
    for u, p in users:
        r = run("user", "add", u, "--password-stdin", stdin=p + "\n")
        if r.returncode != 0 and "exist" not in (r.stderr + r.stdout).lower():
            raise BenchError(f"cannot add {u} in {args.suite_data_dir}: {r.stderr.strip()}")


def _suite_version(args) -> str:
    try:
        r = subprocess.run(
            [
                suite_python(args.suite_bin),
                "-c",
                "import suite; print(getattr(suite, '__version__', ''))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return r.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out waiting for the server"
    return f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------ report
def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, round(q / 100 * (len(v) - 1)))]


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"×{a / b:.2f}"


def summary(r: Result) -> dict:
    s = r.stats
    el = s.elapsed or None
    return {
        "server": r.server,
        "version": r.version,
        "problem": r.problem or None,
        "commands": r.commands,
        "errors": r.errors,
        "elapsed_s": s.elapsed,
        "commands_per_s": r.commands / el if el else None,
        "server_cpu_s": r.server_cpu,
        "cpu_ms_per_command": (r.server_cpu * 1000 / r.commands) if r.server_cpu is not None and r.commands else None,
        "server_cpu_percent": (100 * r.server_cpu / el) if r.server_cpu is not None and el else None,
        "loadgen_cpu_percent": (100 * s.cpu / el) if el else None,
        "host_busy_percent": (100 * r.host_busy / (r.host_busy + r.host_idle)) if r.host_busy + r.host_idle else None,
        "other_cpu_percent": (100 * (r.host_busy - (r.server_cpu or 0) - s.cpu) / el)
        if el and r.server_cpu is not None
        else None,
        "server_processes": list(r.server_procs),
        "rounds": r.rounds,
        "seed_s": r.seed_seconds,
        "seed_cpu_s": r.seed_cpu,
        "kinds": {
            k: {
                "n": s.count.get(k, 0),
                "errors": s.errors.get(k, 0),
                "p50_ms": pct(s.latencies.get(k, []), 50),
                "p95_ms": pct(s.latencies.get(k, []), 95),
            }
            for k in load.KINDS
            if s.count.get(k)
        },
        "error_samples": s.samples,
        "notes": sorted(s.notes),
    }


def report(results: list[Result], args, corpus_n: int) -> list[dict]:
    sums = [summary(r) for r in results]
    print()
    print(
        f"IMAP bench: {args.clients} clients in {args.processes} process(es), {args.seconds:g} s per server, "
        f"{args.rounds} round(s), {args.users} users × {args.messages} seeded messages ({corpus_n} corpus messages ≤ "
        f"{args.max_message_kb} KiB); {os.cpu_count()} CPUs"
    )
    ran = [s for s in sums if s["rounds"]]
    for s in sums:
        if s["problem"]:
            print(f"  {s['server']}: {'measured in part' if s['rounds'] else 'not measured'} — {s['problem']}")
    if not ran:
        return sums
    print()
    head = (
        f"{'server':<9}{'version':<22}{'commands':>9}{'cmds/s':>9}{'CPU s':>8}{'CPU ms/cmd':>11}"
        f"{'srv CPU%':>9}{'gen CPU%':>9}{'host busy%':>11}{'errors':>8}{'seed s':>8}"
    )
    print(head)
    print("-" * len(head))
    for s in ran:
        print(
            f"{s['server']:<9}{s['version'][:21]:<22}{s['commands']:>9}{fmt(s['commands_per_s'], 1):>9}"
            f"{fmt(s['server_cpu_s']):>8}{fmt(s['cpu_ms_per_command'], 3):>11}"
            f"{fmt(s['server_cpu_percent'], 0):>9}{fmt(s['loadgen_cpu_percent'], 0):>9}"
            f"{fmt(s['host_busy_percent'], 0):>11}{s['errors']:>8}"
            f"{fmt(s['seed_s'], 1):>8}"
        )
    by = {s["server"]: s for s in ran}
    both = "suite" in by and "dovecot" in by
    if both:
        su, dc = by["suite"], by["dovecot"]
        print(
            f"Suite/Dovecot: cmds/s {ratio(su['commands_per_s'], dc['commands_per_s'])}, "
            f"CPU ms/cmd {ratio(su['cpu_ms_per_command'], dc['cpu_ms_per_command'])}, "
            f"seeding time {ratio(su['seed_s'], dc['seed_s'])}"
        )
    print()
    cols = [s["server"] for s in ran]
    head = f"{'latency ms p50 / p95':<22}" + "".join(f"{c + ' (n)':>28}" for c in cols)
    if both:
        head += f"{'p50 S/D':>10}{'p95 S/D':>10}"
    print(head)
    print("-" * len(head))
    for k in load.KINDS:
        if not any(k in s["kinds"] for s in ran):
            continue
        line = f"{k:<22}"
        for s in ran:
            kk = s["kinds"].get(k)
            cell = "-" if not kk else f"{fmt(kk['p50_ms'])} / {fmt(kk['p95_ms'])} ({kk['n']})"
            if kk and kk["errors"]:
                cell += f" {kk['errors']}err"
            line += f"{cell:>28}"
        if both:
            a, b = by["suite"]["kinds"].get(k, {}), by["dovecot"]["kinds"].get(k, {})
            line += f"{ratio(a.get('p50_ms'), b.get('p50_ms')):>10}{ratio(a.get('p95_ms'), b.get('p95_ms')):>10}"
        print(line)
    for s in ran:
        if (s["other_cpu_percent"] or 0) > 20:
            print(
                f"note ({s['server']}): other processes on this machine used {s['other_cpu_percent']:.0f}% of a "
                "CPU during its load window; numbers are noisy (compare ratios, try --rounds 3)"
            )
        for note in s["notes"]:
            print(f"note ({s['server']}): {note}")
        if s["error_samples"]:
            print(f"\nerrors from {s['server']} ({len(s['error_samples'])} distinct shown, with counts):")
            for e, n in s["error_samples"].items():
                print(f"  {n:>6}× {e}")
    return sums


# ------------------------------------------------------------------ main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/imap/run.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--clients", type=int, default=10, help="concurrent IMAP clients in all (default 10)")
    p.add_argument("--processes", type=int, default=2, help="load generator processes (default 2)")
    p.add_argument("--seconds", type=float, default=20, help="load time per server (default 20)")
    p.add_argument(
        "--rounds", type=int, default=1, help="load windows per server, alternating between the servers (default 1)"
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=0,
        help="unmeasured load per server before the counted windows, seconds (default 0)",
    )
    p.add_argument("--users", type=int, default=5, help="users; clients share them round-robin (default 5)")
    p.add_argument("--messages", type=int, default=200, help="messages seeded per user (default 200)")
    p.add_argument("--only", choices=["dovecot", "suite"], help="measure one server only")
    p.add_argument("--suite-port", type=int, help="use an already running Suite IMAP on 127.0.0.1:PORT")
    p.add_argument("--suite-pid", type=int, help="pid of that Suite (default: found from the listening socket)")
    p.add_argument("--suite-data-dir", help="data dir of that Suite, to create the bench users in it")
    p.add_argument(
        "--suite-bin",
        default=str(DEFAULT_SUITE_BIN),
        help="the suite CLI (default: the installed one, bench/installed.py)",
    )
    p.add_argument("--password", default="bench-Passw0rd", help="password of every bench user")
    p.add_argument(
        "--suite-setting",
        action="append",
        default=[],
        metavar="SUITE_NAME=VALUE",
        help="a setting for the Suite server, e.g. SUITE_IMAP_FLAG_DURABILITY=batched or SUITE_WORKERS=1 (repeatable)",
    )
    p.add_argument(
        "--corpus",
        default=os.environ.get("SUITE_BENCH_CORPUS", str(DEFAULT_CORPUS)),
        help=f"folder of *.eml (default {DEFAULT_CORPUS})",
    )
    p.add_argument("--max-message-kb", type=int, default=512, help="skip corpus messages larger (default 512)")
    p.add_argument("--timeout", type=float, default=30, help="seconds before a command counts as timed out")
    p.add_argument("--seed", type=int, default=1, help="random seed of the command mix")
    p.add_argument("--json", help="also write the results as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the servers' temp folders (logs, data)")
    p.add_argument("--no-install", action="store_true", help="do not apt-get install dovecot-imapd when missing")
    a = p.parse_args(argv)
    for name in ("clients", "processes", "users", "messages", "rounds"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1")
    if a.seconds <= 0:
        p.error("--seconds must be positive")
    a.processes = min(a.processes, a.clients)
    return a


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` of the bench still stops the servers it started
    try:
        messages = load_corpus(Path(args.corpus), args.max_message_kb * 1024)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    froms, subjects = search_terms(messages[: args.messages])
    users = [(f"user{i}@{DOMAIN}", args.password) for i in range(1, args.users + 1)]
    targets: list[Target] = []
    interrupted = False
    try:
        # Both servers are prepared (started, users made, mailboxes seeded) before any load; the load
        # windows then alternate between them so drifting background load hits both alike.
        if args.only in (None, "suite"):
            targets.append(prepare_suite(args, users, messages))
        if args.only in (None, "dovecot"):
            targets.append(prepare_dovecot(args, users, messages))
        for t in targets:
            if t.result.problem:
                print(f"[{t.name}] {t.result.problem}", flush=True)
        if args.warmup > 0:  # unmeasured: fills the servers' caches and indexes before the counted windows
            for t in targets:
                if not t.result.problem:
                    print(f"[{t.name}] warm-up: {args.warmup:g} s …", flush=True)
                    cfg = Config(
                        host="127.0.0.1",
                        port=t.port,
                        users=users,
                        seconds=args.warmup,
                        seeded=args.messages,
                        messages=messages,
                        from_terms=froms,
                        subject_terms=subjects,
                        timeout=args.timeout,
                        seed=args.seed + 1000,
                    )
                    try:
                        run_load(cfg, args.processes, args.clients, t.pid, Result(t.name))
                    except SETUP_ERRORS as exc:
                        t.result.problem = f"warm-up failed: {_why(exc)}"
        for rnd in range(args.rounds):
            live = [t for t in targets if not t.result.problem]
            for t in live if rnd % 2 == 0 else live[::-1]:
                if t.result.problem:
                    continue
                cfg = Config(
                    host="127.0.0.1",
                    port=t.port,
                    users=users,
                    seconds=args.seconds,
                    seeded=args.messages,
                    messages=messages,
                    from_terms=froms,
                    subject_terms=subjects,
                    timeout=args.timeout,
                    seed=args.seed + rnd,
                )
                print(
                    f"[{t.name}] load{f' round {rnd + 1}/{args.rounds}' if args.rounds > 1 else ''}: "
                    f"{args.clients} clients in {args.processes} process(es) for {args.seconds:g} s …",
                    flush=True,
                )
                try:
                    run_load(cfg, args.processes, args.clients, t.pid, t.result)
                except SETUP_ERRORS as exc:
                    t.result.problem = f"load failed: {_why(exc)}"
                    print(f"[{t.name}] {t.result.problem}", flush=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for t in targets:
            if t.stop is not None:
                try:
                    t.stop()
                except KeyboardInterrupt:  # stop the others all the same; they kill on a second Ctrl-C
                    interrupted = True
    if interrupted:
        print("bench: interrupted; servers stopped", file=sys.stderr)
        return 130
    results = [t.result for t in targets]
    sums = report(results, args, len(messages))
    for r in results:
        if r.problem and r.log_tail:
            print(f"\nlast lines of the {r.server} log:\n{r.log_tail}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": {k: v for k, v in vars(args).items()}, "results": sums}, indent=2, default=str)
        )
    # Exit 1 only when nothing could be measured; a missing Suite IMAP alone is not a failure.
    return 0 if any(not r.problem for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
