"""Calls bench: call setup time (Chromium on the call page) and the media agent's capacity (aiortc callers).

    sudo python bench/calls/run.py                        # everything (about 6-10 minutes)
    sudo python bench/calls/run.py --skip-capacity --calls 10
    sudo python bench/calls/run.py --skip-browser --modes audio --audio-step 20

Runs as root and re-executes itself inside a private network namespace (``unshare -n``, only ``lo`` up),
like every WebRTC test of tests/voip and tests/e2e: ICE can only ever see 127.0.0.1. Inside, it starts
``suite serve --only gateway,voip`` on SQLite in a temp folder (server.py), then:

1. **Setup time** (browser.py): ``--calls`` calls browser → browser (two Chromium pages on /calls, the
   callee clicks Accept) and ``--calls`` calls browser → echo agent; per call the caller's
   ``createOffer()`` → ICE connected, and → ``connectionState`` connected (ICE + DTLS). p50/p95/max.
2. **Agent capacity** (load.py): ``--workers`` processes of aiortc callers ring the echo contact, a step
   at a time, audio+video then audio only (``--modes``). After each step: ``--settle`` s, then a
   ``--window`` s measure of the server process's CPU (all threads; ``loop%`` is its main thread alone)
   and, per call, echoed frames received / frames sent. The ramp stops when the server reaches
   ``--cpu-limit`` % of one core, when a call's echo falls below ``--quality`` of what it sends (or the
   call drops), when a set-up fails, or at ``--max-*`` calls / ``--mode-seconds``.

Figures are printed, never asserted (exit code 0 unless nothing could be measured). Processes it starts
(the server, the load workers, Chromium) are stopped at the end, also on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if not __package__:  # `python bench/calls/run.py`: make `bench.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.imap.procs import CLK_TCK, host_cpu_ticks, tree_cpu_seconds
from bench.installed import suite_python

REPO = Path(__file__).resolve().parents[2]
NETNS_ENV = "SUITE_BENCH_IN_NETNS"
DOMAIN = "bench.test"
LOAD_USERS = [f"load{i}" for i in range(1, 5)]
PW = "correct horse battery"  # the password tests/voip's Phone and tests/e2e's _open log in with


def python_bin() -> str:
    """The interpreter of the installed suite (bench/installed.py)."""
    return suite_python()


# ------------------------------------------------------------------ namespace
def reexec_in_netns() -> None:
    if os.geteuid() != 0:
        sys.exit("bench/calls needs root: it runs in a private network namespace (unshare -n), as the WebRTC tests do")
    for tool in ("unshare", "ip"):
        if not any((Path(d) / tool).exists() for d in os.environ.get("PATH", "/usr/sbin:/usr/bin").split(":")):
            sys.exit(f"{tool} not found (Debian packages util-linux, iproute2)")
    cmd = [
        "unshare",
        "-n",
        "sh",
        "-c",
        'ip link set lo up && exec "$0" "$@"',
        python_bin(),
        str(Path(__file__).resolve()),
        *sys.argv[1:],
    ]
    os.execvpe("unshare", cmd, {**os.environ, NETNS_ENV: "1"})


# ------------------------------------------------------------------ figures
def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def summary(values: list[float]) -> str:
    if not values:
        return "no data"
    return (
        f"p50 {pct(values, 50):6.1f}  p95 {pct(values, 95):6.1f}  max {max(values):6.1f}  "
        f"min {min(values):6.1f}  mean {statistics.fmean(values):6.1f} ms  (n={len(values)})"
    )


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """utime + stime of one thread (the main thread: tid == pid), from /proc/<pid>/task/<tid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return 0.0
    f = raw[raw.rindex(")") + 2 :].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


# ------------------------------------------------------------------ load workers
class Worker:
    def __init__(self, index: int, port: int, mode: str, args, tmp: Path) -> None:
        self.index, self.port, self.mode, self.args, self.tmp = index, port, mode, args, tmp
        self.proc: asyncio.subprocess.Process | None = None
        self.err_path = tmp / f"load-{mode}-{index}.log"
        self.calls = 0

    async def start(self) -> dict:
        users = ",".join(f"{u}@{DOMAIN}" for u in LOAD_USERS)
        self._err = open(self.err_path, "wb")
        self.proc = await asyncio.create_subprocess_exec(
            python_bin(),
            str(REPO / "bench" / "calls" / "load.py"),
            "--port",
            str(self.port),
            "--users",
            users,
            "--echo",
            f"echo@{DOMAIN}",
            "--mode",
            self.mode,
            "--worker",
            str(self.index),
            "--media-cache",
            str(self.tmp),
            "--timeout",
            str(self.args.setup_timeout),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._err,
            start_new_session=True,
            cwd=REPO,
            limit=2**24,
        )
        return await self._read(120)

    async def _read(self, timeout: float) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"load worker {self.index} exited: {self.err_tail()}")
        return json.loads(line)

    async def ask(self, cmd: dict, timeout: float = 60) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read(timeout)

    def err_tail(self, n: int = 8) -> str:
        try:
            return " | ".join(self.err_path.read_text(errors="replace").strip().splitlines()[-n:])
        except OSError:
            return ""

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):  # it is killed below
                await self.ask({"op": "stop"}, 60)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only this worker
                except ProcessLookupError:
                    pass
                await self.proc.wait()
        self._err.close()
        self.proc = None


@dataclass
class Step:
    calls: int
    srv_cpu: float  # % of one core, whole server process
    loop_cpu: float  # % of one core, the server's main (event loop) thread
    load_cpu: float  # % of one core, all load workers together
    host_busy: float  # % of all cores
    ratio_min: dict[str, float]
    ratio_med: dict[str, float]
    sent_fps: dict[str, float]  # per call, mean
    bad: int  # calls whose echo fell below --quality (or that dropped)
    served: float  # sum over calls of the echoed share (mean over kinds, each capped at 1)
    setup_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def _snapshot(workers: list[Worker]) -> dict[str, tuple[float, dict]]:
    replies = await asyncio.gather(*(w.ask({"op": "stats"}) for w in workers))
    return {c["id"]: (r["t"], c) for r in replies for c in r["calls"]}


def _cpu(server_pid: int, workers: list[Worker]) -> tuple[float, float, float, tuple[int, int]]:
    srv, _ = tree_cpu_seconds(server_pid)
    load = sum(tree_cpu_seconds(w.proc.pid)[0] for w in workers if w.proc is not None)
    return srv, thread_cpu_seconds(server_pid, server_pid), load, host_cpu_ticks()


async def measure_window(server_pid: int, workers: list[Worker], seconds: float, quality: float):
    s0 = await _snapshot(workers)
    c0, t0 = _cpu(server_pid, workers), time.monotonic()
    await asyncio.sleep(seconds)
    c1, t1 = _cpu(server_pid, workers), time.monotonic()
    s1 = await _snapshot(workers)
    dt = t1 - t0
    srv, loop, load = ((c1[i] - c0[i]) / dt * 100 for i in range(3))
    busy = (c1[3][0] - c0[3][0]) / max(1, c1[3][1] - c0[3][1]) * 100
    ratios: dict[str, list[float]] = {}
    fps: dict[str, list[float]] = {}
    bad = 0
    served = 0.0
    for cid, (ta, a) in s0.items():
        if cid not in s1:
            continue
        tb, b = s1[cid]
        worst = math.inf
        shares = []
        for kind in a["sent"]:
            sent = b["sent"][kind] - a["sent"][kind]
            got = b["recv"].get(kind, 0) - a["recv"].get(kind, 0)
            r = got / sent if sent > 0 and b["up"] else 0.0
            ratios.setdefault(kind, []).append(r)
            fps.setdefault(kind, []).append(sent / max(1e-6, tb - ta))
            worst = min(worst, r)
            shares.append(min(1.0, r))
        served += statistics.fmean(shares) if shares else 0.0
        if worst < quality:
            bad += 1
    return srv, loop, load, busy, ratios, fps, bad, served


async def ramp(mode: str, port: int, server_pid: int, args, tmp: Path, log) -> dict:
    step_n = args.av_step if mode == "av" else args.audio_step
    max_calls = args.max_av if mode == "av" else args.max_audio
    workers = [Worker(i, port, mode, args, tmp) for i in range(args.workers)]
    steps: list[Step] = []
    stop_reason = ""
    idle = 0.0
    try:
        ready = await asyncio.gather(*(w.start() for w in workers))
        log(
            f"  {len(workers)} load workers ready ({ready[0]['audio_frames']} Opus frames"
            + (f", {ready[0]['video_frames']} VP8 frames" if mode == "av" else "")
            + " in the loop)"
        )
        c0, t0 = _cpu(server_pid, workers), time.monotonic()
        await asyncio.sleep(min(3.0, args.window))
        c1, t1 = _cpu(server_pid, workers), time.monotonic()
        idle = (c1[0] - c0[0]) / (t1 - t0) * 100
        log(f"  server idle: {idle:.1f}% of one core")
        header = (
            f"  {'calls':>5} {'srv CPU%':>8} {'loop%':>6} {'CPU%/call':>9} {'/served':>7} {'echo min/med':>25} "
            f"{'<' + format(args.quality, '.0%'):>5} {'sent fps/call':>15} {'load CPU%':>9} {'host busy%':>10} "
            f"{'others%':>7} "
            f"{'setup p50':>9}"
        )
        log(header)
        deadline = time.monotonic() + args.mode_seconds
        total = 0
        while total < max_calls and time.monotonic() < deadline:
            n = min(step_n, max_calls - total)
            # spread the new calls over the workers, the least loaded first
            plan: dict[int, int] = {}
            for _ in range(n):
                w = min(workers, key=lambda w: w.calls + plan.get(w.index, 0))
                plan[w.index] = plan.get(w.index, 0) + 1
            replies = await asyncio.gather(
                *(workers[i].ask({"op": "add", "n": k}, args.setup_timeout * k + 30) for i, k in plan.items())
            )
            setups, failures = [], []
            for (i, _), r in zip(plan.items(), replies, strict=True):
                workers[i].calls = r["calls"]
                setups += r["setup_ms"]
                failures += r["failures"]
            total = sum(w.calls for w in workers)
            await asyncio.sleep(args.settle)
            srv, loop, load, busy, ratios, fps, bad, served = await measure_window(
                server_pid, workers, args.window, args.quality
            )
            st = Step(
                total,
                srv,
                loop,
                load,
                busy,
                {k: min(v) for k, v in ratios.items()},
                {k: statistics.median(v) for k, v in ratios.items()},
                {k: statistics.fmean(v) for k, v in fps.items()},
                bad,
                served,
                setups,
                failures,
            )
            steps.append(st)
            kinds = [k for k in ("audio", "video") if k in st.ratio_min]
            echo = " ".join(f"{k[0]} {st.ratio_min[k]:.2f}/{st.ratio_med[k]:.2f}" for k in kinds)
            sent = " ".join(f"{k[0]} {st.sent_fps[k]:.1f}" for k in kinds)
            per_call = (srv - idle) / total if total else 0.0
            per_served = (srv - idle) / served if served > 0 else float("nan")
            others = max(0.0, busy * (os.cpu_count() or 1) - srv - load)  # % of one core not ours
            log(
                f"  {total:>5} {srv:>8.1f} {loop:>6.1f} {per_call:>9.2f} {per_served:>7.2f} {echo:>25} {bad:>5} {sent:>15} "
                f"{load:>9.1f} {busy:>10.1f} {others:>7.0f} {(pct(setups, 50) if setups else float('nan')):>7.1f}ms"
            )
            if failures:
                stop_reason = f"{len(failures)} call set-up(s) failed: {failures[0]}"
            elif bad:
                stop_reason = f"{bad} call(s) echoed below {args.quality:.0%} of what they sent (or dropped)"
            elif srv >= args.cpu_limit:
                stop_reason = f"server CPU reached {srv:.0f}% of one core (limit {args.cpu_limit:.0f}%)"
            if stop_reason:
                break
        else:
            stop_reason = (
                f"reached --max-{'av' if mode == 'av' else 'audio'} {max_calls}"
                if total >= max_calls
                else f"--mode-seconds {args.mode_seconds:.0f} s used up"
            )
    finally:
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        for w in workers:
            tail = w.err_tail(3)
            if tail and ("Error" in tail or "Traceback" in tail):
                log(f"  (load worker {w.index} stderr: {tail[-600:]})")
    ok = [s for s in steps if not s.bad and not s.failures]
    held = ok[-1] if ok else None
    result = {"mode": mode, "idle_cpu": idle, "stop_reason": stop_reason, "steps": [s.__dict__ for s in steps]}
    if held:
        result.update(
            held_calls=held.calls,
            held_cpu=held.srv_cpu,
            cpu_per_call=(held.srv_cpu - idle) / held.calls,
            cpu_per_call_gross=held.srv_cpu / held.calls,
        )
    # CPU per *served* call (echoed share) from every step, also those that fell behind: the agent's cost
    # per call that is least sensitive to other load on the machine.
    per_served = [(s.srv_cpu - idle) / s.served for s in steps if s.served > 0.5]
    if per_served:
        result["cpu_per_served_call_median"] = statistics.median(per_served)
        result["others_max"] = max(s.host_busy * (os.cpu_count() or 1) - s.srv_cpu - s.load_cpu for s in steps)
    return result


# ------------------------------------------------------------------ main
async def amain(args) -> int:
    from bench.calls.server import CallsServer, SuiteError

    log = lambda s="": print(s, flush=True)
    measured = False
    tmp = Path(tempfile.mkdtemp(prefix="suite-bench-calls-load-"))
    from bench.calls.server import FAST_AUDIO_LEVEL

    server = CallsServer(
        DOMAIN,
        ["alice", "bob", *LOAD_USERS],
        PW,
        python=python_bin(),
        keep=args.keep,
        patch=FAST_AUDIO_LEVEL if args.agent_fast_audio_level else "",
    )
    out: dict = {"browser": [], "capacity": []}
    log(f"bench/calls: {os.cpu_count()} CPU(s); private network namespace with only lo")
    if args.agent_fast_audio_level:
        log(
            "WHAT-IF RUN: the server's aiortc computes RFC 6464 audio levels with a C-speed sum "
            "(--agent-fast-audio-level); not the product as shipped"
        )
    try:
        t = time.monotonic()
        try:
            server.start()
        except SuiteError as exc:
            log(f"Suite did not start: {exc}")
            return 1
        log(
            f"suite serve --only gateway,voip on 127.0.0.1:{server.port} (pid {server.pid}, "
            f"{time.monotonic() - t:.1f} s incl. init and accounts)"
        )
        if not args.skip_browser:
            from bench.calls import browser

            log()
            log(
                f"== call setup time: createOffer -> ICE connected, seen by the caller (Chromium, "
                f"{args.calls} calls each, {args.browser_media}) =="
            )
            h0, c0, t0 = host_cpu_ticks(), tree_cpu_seconds(server.pid)[0], time.monotonic()
            try:
                results = await browser.measure(
                    server.port,
                    f"alice@{DOMAIN}",
                    f"bob@{DOMAIN}",
                    f"echo@{DOMAIN}",
                    calls=args.calls,
                    media=args.browser_media,
                    pause=args.pause,
                    timeout=args.setup_timeout,
                    log=log,
                )
            except ImportError as exc:
                log(f"  skipped: {exc} (pip install playwright; the browser is Debian's chromium)")
                results = []
            h1, c1, t1 = host_cpu_ticks(), tree_cpu_seconds(server.pid)[0], time.monotonic()
            log(
                f"  during these calls: host {(h1[0] - h0[0]) / max(1, h1[1] - h0[1]) * 100:.0f}% busy "
                f"(all {os.cpu_count()} cores), Suite {(c1 - c0) / (t1 - t0) * 100:.0f}% of one core"
            )
            for st in results:
                log(f"  {st.label}")
                log(f"    createOffer -> ICE connected     {summary(st.ice_ms)}")
                log(f"    createOffer -> connected (DTLS)  {summary(st.dtls_ms)}")
                log(f"    click Call -> ICE connected      {summary(st.click_ms)}")
                for f in st.failures[:5]:
                    log(f"    failed: {f}")
                if st.ice_ms:
                    measured = True
                out["browser"].append(
                    {
                        "label": st.label,
                        "ice_ms": st.ice_ms,
                        "dtls_ms": st.dtls_ms,
                        "click_ms": st.click_ms,
                        "failures": st.failures,
                    }
                )
        if not args.skip_capacity:
            for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
                log()
                what = "audio+video (VP8 640x480 30 fps + Opus)" if mode == "av" else "audio only (Opus)"
                log(
                    f"== echo agent capacity, {what}: aiortc callers, +{args.av_step if mode == 'av' else args.audio_step}"
                    f" calls a step, {args.settle:.0f} s settle + {args.window:.0f} s window =="
                )
                try:
                    r = await ramp(mode, server.port, server.pid, args, tmp, log)
                except Exception as exc:
                    log(f"  ramp failed: {type(exc).__name__}: {exc}")
                    continue
                out["capacity"].append(r)
                log(f"  stopped: {r['stop_reason']}")
                if "held_calls" in r:
                    measured = True
                    log(
                        f"  => {r['held_calls']} simultaneous {mode} echo calls held with every echo >= "
                        f"{args.quality:.0%}: server {r['held_cpu']:.0f}% of one core, "
                        f"{r['cpu_per_call']:.2f}% of a core per call above idle "
                        f"({r['cpu_per_call_gross']:.2f}% gross)"
                    )
                else:
                    log("  => no step held")
                if "cpu_per_served_call_median" in r:
                    c = r["cpu_per_served_call_median"]
                    log(
                        f"  => server CPU per served call (median over the steps): {c:.1f}% of a core; "
                        f"linear estimate at 100% of one core: {(100 - r['idle_cpu']) / c:.1f} calls"
                    )
                    if r["others_max"] > 25:
                        log(
                            f"     note: other processes on this machine took up to {r['others_max']:.0f}% of a core "
                            "during the ramp; where host busy% is near 100 the echo fell behind for lack of CPU "
                            "on the machine, not only in Suite"
                        )
                await asyncio.sleep(2)  # let the agent close the last calls before the next mode
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
            log(f"\nJSON written to {args.json}")
    finally:
        if server.proc is not None and server.proc.poll() is not None:
            log(f"server exited early: {server.log_tail(10)}")
        server.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept: {tmp}")
    return 0 if measured else 1


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20, help="measured calls per kind in the setup-time part")
    ap.add_argument("--browser-media", choices=("video", "audio"), default="video")
    ap.add_argument("--pause", type=float, default=0.3, help="seconds between two setup-time calls")
    ap.add_argument("--skip-browser", action="store_true")
    ap.add_argument("--skip-capacity", action="store_true")
    ap.add_argument("--modes", default="av,audio", help="capacity modes in order: av, audio")
    ap.add_argument("--workers", type=int, default=2, help="load processes for the aiortc callers")
    ap.add_argument("--av-step", type=int, default=1)
    ap.add_argument("--audio-step", type=int, default=2)
    ap.add_argument("--max-av", type=int, default=40)
    ap.add_argument("--max-audio", type=int, default=300)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after a step before measuring")
    ap.add_argument("--window", type=float, default=5.0, help="seconds of each measure")
    ap.add_argument("--cpu-limit", type=float, default=95.0, help="stop when the server uses this %% of one core")
    ap.add_argument("--quality", type=float, default=0.8, help="stop when a call's echo falls below this share")
    ap.add_argument("--mode-seconds", type=float, default=300.0, help="time limit of one capacity ramp")
    ap.add_argument("--setup-timeout", type=float, default=20.0)
    ap.add_argument(
        "--agent-fast-audio-level",
        action="store_true",
        help="what-if: patch aiortc's per-frame audio level loop in the server (see server.py)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp folders (server log, load logs)")
    ap.add_argument("--json", help="also write the figures to this file")
    return ap.parse_args(argv)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args()
    if os.environ.get(NETNS_ENV) != "1":
        reexec_in_netns()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` of the bench still stops what it started
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
