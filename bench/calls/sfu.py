"""Meetings bench: forwarding capacity (video subscriptions per core, CPU per forwarded stream) and
join time of the Python SFU and of Janus's VideoRoom (``sfu_engine = "janus"``), in the same run
(``--engines python,janus``, the default). Janus (Debian's ``janus``) runs inside the namespace with
the config of suite/voip/janus_config.py, its media on a veth of the namespace (Janus gathers no
loopback candidates); its CPU is Janus's process (Suite then only signals: printed apart). The
clients publish on one connection and receive on another (Janus's model), the same media.

    sudo python bench/calls/sfu.py                    # rooms of 3, 6, 10 participants, both engines
    sudo python bench/calls/sfu.py --quick            # the same with shorter windows (< 4 min)
    sudo python bench/calls/sfu.py --sizes 4,8,12 --client-procs 6 --video 640x480

Runs as root and re-executes itself in a private network namespace (``unshare -n``, only ``lo``), like
the WebRTC tests. Starts ``suite serve --only gateway,voip`` (bench/calls/server.py) and creates one
meeting. The participants join from the link as guests over ``/ws/meetings/<token>`` with aiortc, in
``--client-procs`` processes (bench/calls/sfu_clients.py, participant i in process i mod N, each its
own event loop): one Python process is one core at most, and with all clients in one process that
process, not the server, was the limit at 9-10 participants. Each publishes real encoded VP8
(``--video``, default 320x240, 500 kbit/s: the same bytes and RTP packets a frame as 640x480 at that
rate, which is what the SFU handles, at a third of the receivers' decoding cost) and Opus, encoded
once by this process and shared (a keyframe request restarts the loop at its keyframe), and *decodes*
what it receives (libvpx; ``--no-decode`` counts complete frames instead): delivery is frames decoded
per receiver / frames the others sent, in total and for the worst receiver.

``--decoders K`` decodes a sample: participants p0..p(K-1) decode everything they receive, the others
count complete frames on a light path right after SRTP (sfu_clients.count_only: every packet of a
frame, first to marker, arrived; losses NACKed as aiortc's receiver does; no jitter buffer, REMB,
PLI or audio handling). The engine forwards the same packets and answers the same NACKs either
way; decoding is the clients' CPU, and on 2 cores ten clients decoding 90 streams (~1.5 cores)
starve the engine they measure.
The line per size then gives the sample's own delivery (frames *decoded* / sent, and its worst
receiver) besides the delivery of everyone (decoded or complete frames) and the worst receiver.

For each room size (``--sizes``): the joins, ``--settle`` s, then a ``--window`` s measure of the
server's CPU from /proc (all threads; Janus's process with Janus) and of the clients' counters.
A room of P participants forwards P*(P-1) video subscriptions (and as many audio). Printed per size:
participants and how many are connected, subscriptions, engine CPU % and the % of the window its
threads waited for a CPU (schedstat: runnable but not running), subscriptions per core and ‰ of a
core per delivered subscription, delivered / sent (total and worst receiver), Suite's CPU, the client
processes' CPU (sum, and the busiest one with its wait), UDP datagrams dropped for full receive
buffers (in the namespace, and of those on the engine's own sockets: a starved engine that cannot
drain its sockets loses media there, not at the clients), NACKs and PLIs the clients sent, decode
errors, the load average; at the end the join time (socket open -> first decoded remote video
frame) of the participants that joined a room that already had video. A client process above ~85 % of a core (or busy + waiting ~all the window) is
reported as the bottleneck: delivery there measures the clients. A server that waited about as long
as it ran was starved by other work: its low CPU % is not spare capacity. The ramp stops when the
engine passes ``--cpu-limit`` % of one core or fewer than half the participants stay connected.
``--engine-nice`` runs the engine ahead of the clients (the same for both engines): a starved
engine handles several packets a wake-up and looks cheaper per packet than one that gets the CPU.
With ``--perf`` (``perf stat`` on the engine during the window) also the engine's CPU per datagram
it sent (µs): what forwarding costs whatever the clients managed to receive, compared engine to
engine at the end. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.installed import suite_python  # noqa: E402

NETNS_ENV = "SUITE_BENCH_SFU_NETNS"
DOMAIN = "bench.test"
PW = "correct horse battery"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST_ADDRESSES = ["127.0.0.1"]
"""The clients' ICE host addresses (aioice leaves loopback out); Janus's veth address is added."""
JANUS_ADDRESS = "10.99.0.1"
ENGINE_NAMES = {"python": "Python SFU", "janus": "Janus VideoRoom"}


def reexec_in_netns() -> None:
    if os.geteuid() != 0:
        sys.exit("bench/calls/sfu.py needs root: it runs in a private network namespace (unshare -n)")
    python = suite_python()  # the installed suite's interpreter (bench/installed.py)
    cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', python, __file__, *sys.argv[1:]]
    os.execvpe("unshare", cmd, {**os.environ, NETNS_ENV: "1"})


def process_cpu_seconds(pid: int) -> float:
    raw = Path(f"/proc/{pid}/stat").read_text()
    f = raw[raw.rindex(")") + 2 :].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def process_wait_seconds(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (/proc/<pid>/task/*/schedstat,
    second field): when this grows as fast as the CPU time, the process is starved by other work on
    the machine, and a low CPU % does not mean it had time to spare."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def set_priority(pids: list[int], nice: int) -> None:
    """Nice value for the processes and, with autogroup scheduling (the CPU is shared per session
    first), for their sessions' autogroups: the server runs in a session of its own."""
    for pid in pids:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.setpriority(os.PRIO_PROCESS, int(task.name), nice)
        autogroup = Path(f"/proc/{pid}/autogroup")
        if autogroup.exists():
            autogroup.write_text(str(nice))


def udp_errors() -> tuple[int, int]:
    """The namespace's UDP datagrams dropped for a full receive buffer and all UDP receive errors
    (/proc/net/snmp ``RcvbufErrors``, ``InErrors``): everything here runs in one namespace."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    row = dict(zip(lines[0][1:], map(int, lines[1][1:]), strict=True))
    return row["RcvbufErrors"], row["InErrors"]


def engine_udp_drops(pid: int) -> int:
    """Datagrams dropped on the engine's own UDP sockets (the ``drops`` column of /proc/net/udp and
    udp6 for the socket inodes among /proc/<pid>/fd): with :func:`udp_errors`, which counts the whole
    namespace, this tells whether a delivery drop was lost at the engine or at the clients."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 12 and f[9] in inodes:
                total += int(f[12])
    return total


SEND_SYSCALLS = ("sendmsg", "sendto", "sendmmsg")


async def perf_send_stat(pid: int, seconds: float) -> tuple[float, int] | None:
    """``perf stat`` on the engine for ``seconds``: its CPU (task-clock, s) and the datagrams it
    sent (sendmsg / sendto syscalls: Janus (libnice) and the Python SFU (asyncio) send one datagram
    a call; sendmmsg, which neither uses, would count a call as one). CPU per datagram sent does not
    depend on what the clients managed to receive. None without perf or its syscall tracepoints."""
    exe = shutil.which("perf")
    if exe is None:
        return None
    events = ",".join(["task-clock", *(f"syscalls:sys_enter_{name}" for name in SEND_SYSCALLS)])
    proc = await asyncio.create_subprocess_exec(
        exe, "stat", "-x", ",", "-e", events, "-p", str(pid), "--", "sleep", str(seconds),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    values: dict[str, float] = {}
    for line in err.decode(errors="replace").splitlines():
        f = line.split(",")
        if len(f) > 2:
            try:
                values[f[2]] = float(f[0])
            except ValueError:
                continue  # "<not supported>" / "<not counted>"
    sent = sum(int(values.get(f"syscalls:sys_enter_{name}", 0)) for name in SEND_SYSCALLS)
    if proc.returncode != 0 or "task-clock" not in values or not sent:
        return None
    return values["task-clock"] / 1000, sent


CLIENT_SUB_SHARE = 0.025
"""Share of a core one client process spends per video (+audio) subscription it receives and decodes
(320x240, ~4 KB a frame; measured on the 2-core box with cProfile: libvpx ~0.3-0.4 ms a frame is a
quarter of it, aiortc's Python RTP path -- SRTP, jitter buffer, NACK, REMB -- the rest). A
participant in a room of P costs about P of these (P-1 received, plus sending); ``--client-procs 0``
starts enough processes that none should pass ``CLIENT_PROC_TARGET``."""
CLIENT_PROC_TARGET = 0.5
CLIENT_BOTTLENECK = 85.0
"""A client process above this % of a core (or busy + waiting for a CPU that long) limited the run."""


def auto_client_procs(max_participants: int) -> int:
    per_person = CLIENT_SUB_SHARE * max_participants  # (P-1) received streams + its own sending
    per_proc = max(1, int(CLIENT_PROC_TARGET // per_person))
    return max(1, -(-max_participants // per_proc))


class ClientProcess:
    """One bench/calls/sfu_clients.py process (its own event loop and aiortc participants)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.people = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, port: int, token: str, media: Path, hosts: list[str], decode: bool) -> None:
        cmd = [sys.executable, str(REPO / "bench" / "calls" / "sfu_clients.py"), "--port", str(port)]
        cmd += ["--token", token, "--media", str(media), "--hosts", ",".join(hosts)]
        if not decode:
            cmd.append("--no-decode")
        self.proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO,
            limit=2**24,
            # A session (so an autogroup) of its own: with autogroup scheduling CPU is shared per
            # session first, and clients in the bench's session would split one share between them.
            start_new_session=True,
        )
        ready = await self._read(120)
        if ready.get("op") != "ready":
            raise RuntimeError(f"client process {self.index} did not start: {ready}")

    async def _read(self, timeout: float) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"client process {self.index} exited (code {await self.proc.wait()})")
        return json.loads(line)

    async def call(self, cmd: dict, timeout: float = 120) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read(timeout)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            await self.call({"op": "stop"}, 30)
            await asyncio.wait_for(self.proc.wait(), 10)
        except (RuntimeError, OSError, TimeoutError, json.JSONDecodeError):
            self.proc.kill()
            await self.proc.wait()


def prepare_media(args) -> tuple[Path, dict]:
    """Encode the media once (VP8 at ``--video`` size, 500 kbit/s, and Opus) for every client process."""
    import pickle
    import tempfile

    from bench.calls import load

    width, height = (int(x) for x in args.video.lower().split("x"))
    media = {"audio": load.encode_audio(), "video": load.encode_video(width=width, height=height)}
    path = Path(tempfile.mkdtemp(prefix="suite-bench-sfu-media-")) / "media.pickle"
    with path.open("wb") as fh:
        pickle.dump(media, fh)
    return path, media


def room_sizes(args) -> list[int]:
    if args.sizes:
        return sorted({int(x) for x in args.sizes.split(",") if int(x) >= 2})
    sizes = list(range(args.step, args.max + 1, args.step))
    return sizes if sizes and sizes[-1] == args.max else [*sizes, args.max]


async def amain(args) -> int:
    media_path, media = prepare_media(args)
    sizes = room_sizes(args)
    procs = args.client_procs or auto_client_procs(sizes[-1])
    video = media["video"]
    frame_bytes = sum(map(len, video)) / len(video)
    print(
        f"bench/calls/sfu: {os.cpu_count()} CPU(s); private network namespace with only lo; "
        f"load average {os.getloadavg()[0]:.1f} at start; rooms of {', '.join(map(str, sizes))}; "
        f"{procs} client process(es); video {args.video} VP8, {frame_bytes:.0f} bytes a frame "
        f"(~{frame_bytes / 1150:.1f} RTP packets) at 30 fps; delivery counts frames "
        + (
            "complete in each receiver's jitter buffer"
            if args.no_decode
            else "decoded by each receiver"
            if args.decoders is None
            else f"decoded by p0..p{args.decoders - 1} (the decoding sample), complete in the others' jitter buffer"
        ),
        flush=True,
    )
    try:
        results = {e: await run_engine(e, args, media_path, sizes, procs) for e in args.engines.split(",")}
    finally:
        shutil.rmtree(media_path.parent, ignore_errors=True)
    print(flush=True)
    for engine, rows in results.items():
        # The largest room that kept --quality; else the one that delivered the most.
        measured = [r for r in rows if r[2] > 2]
        good = [r for r in measured if r[4] >= args.quality] or measured
        if not good:
            print(f"{ENGINE_NAMES[engine]}: nothing measured", flush=True)
            continue
        n, subs, cpu, per_core, delivered, per_sub, _ = max(good, key=lambda r: r[1] * min(r[4], 1.0))
        print(
            f"{ENGINE_NAMES[engine]}: {n} participants, {subs} video subscriptions ({delivered:.2f} delivered) at"
            f" {cpu:.0f}% of a core -> about {per_core:.0f} delivered subscriptions per core,"
            f" {per_sub:.1f}‰ of a core per delivered video (+audio) subscription",
            flush=True,
        )
    if results.get("python") and results.get("janus"):
        # Same room size, same run: fixed costs weigh on small rooms, so compare size by size.
        python = {r[0]: r for r in results["python"]}
        for r in results["janus"]:
            if r[0] not in python:
                continue
            py = python[r[0]]
            line = (
                f"room of {r[0]}: Janus {r[5]:.1f}‰ (delivered {r[4]:.2f}) vs Python SFU {py[5]:.1f}‰"
                f" (delivered {py[4]:.2f}) of a core per delivered subscription"
            )
            if min(r[4], py[4]) >= args.quality:
                line += f" -> Janus x{py[5] / r[5]:.1f}"
            else:
                line += " -> not compared (delivery below --quality)"
            if r[6] and py[6]:
                jd, pd = r[6][0] * 1e6 / r[6][1], py[6][0] * 1e6 / py[6][1]
                line += f"; per datagram sent {jd:.1f} µs vs {pd:.1f} µs -> Janus x{pd / jd:.1f}"
            print(line, flush=True)
    return 0 if any(results.values()) else 1


class Counters:
    """Everything the client processes report, summed, plus their CPU and wait from /proc."""

    def __init__(self, clients: list[ClientProcess], stats: list[dict]) -> None:
        people = [p for st in stats for p in st["people"]]
        self.sent = [p["sent"] for p in people]
        self.decoded = [p["decoded"] for p in people]
        self.decodes = [p["decodes"] for p in people]
        self.frames = sum(p["frames"] for p in people)
        self.taps = [p["taps"] for p in people]
        self.errors = sum(p["errors"] for p in people)
        self.up = sum(p["up"] for p in people)
        self.nack = sum(st["nack"] for st in stats)
        self.pli = sum(st["pli"] for st in stats)
        self.cpu = [process_cpu_seconds(c.pid) for c in clients]
        self.wait = [process_wait_seconds(c.pid) for c in clients]


async def snapshot(clients: list[ClientProcess]) -> Counters:
    stats = await asyncio.gather(*(c.call({"op": "stats"}) for c in clients))
    return Counters(clients, list(stats))


async def run_engine(engine: str, args, media: Path, sizes: list[int], nprocs: int):
    import httpx

    from bench.calls.server import CallsServer, SuiteError

    log = lambda s="": print(s, flush=True)
    env = {"SUITE_MEETING_MAX_PARTICIPANTS": str(max(sizes[-1], 2))}
    hosts = list(HOST_ADDRESSES)
    janus = None
    if engine == "janus":
        import tempfile

        from suite.voip.janus_config import LocalJanus, add_dummy_interface

        iface = add_dummy_interface(address=f"{JANUS_ADDRESS}/32")
        hosts.append(JANUS_ADDRESS)
        janus = LocalJanus(
            Path(tempfile.mkdtemp(prefix="suite-bench-janus-")), interface=iface, event_loops=args.janus_event_loops
        )
        try:
            url = janus.start()
        except (OSError, RuntimeError) as exc:
            log(f"Janus did not start: {exc}")
            return []
        env.update(SUITE_SFU_ENGINE="janus", SUITE_JANUS_URLS=json.dumps([url]))
    server = CallsServer(DOMAIN, ["host"], PW, env=env, keep=False)
    log(f"\n{ENGINE_NAMES[engine]}")
    try:
        server.start()
    except SuiteError as exc:
        log(f"Suite did not start: {exc}")
        if janus is not None:
            janus.stop()
        return []
    # The media engine's CPU: Suite's process with the Python SFU, Janus's with Janus (Suite then
    # only signals; its CPU is printed apart).
    engine_pid = janus.proc.pid if janus is not None and janus.proc is not None else server.pid
    clients = [ClientProcess(i) for i in range(nprocs)]
    rows = []
    joins: list[float] = []
    bottleneck: list[str] = []
    starved: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as http:
            r = await http.post("/api/login", json={"address": f"host@{DOMAIN}", "password": PW})
            r.raise_for_status()
            csrf = (await http.get("/api/me")).json()["csrf_token"]
            r = await http.post("/api/meetings", json={"title": "bench"}, headers={"X-CSRF-Token": csrf})
            r.raise_for_status()
            token = r.json()["token"]
        await asyncio.gather(*(c.start(server.port, token, media, hosts, not args.no_decode) for c in clients))
        if args.nice:
            set_priority(sorted({server.pid, engine_pid, *(c.pid for c in clients)}), args.nice)
        if args.engine_nice is not None:
            # the engine ahead of the clients (as on a host of its own): its CPU per packet without
            # the batching a starved engine gets for free, the same for both engines
            set_priority([engine_pid], args.engine_nice)
        log(
            f"{'particip.':>9} {'conn.':>5} {'video subs':>10} {'engine CPU%':>11} {'waited':>7} {'subs/core':>9}"
            f" {'CPU/sub':>8} {'µs/dgram':>8} {'delivered':>9} {'worst rcv':>9} {'sample dec.':>11} {'Suite CPU%':>10}"
            f" {'clients CPU%':>12} {'max proc':>8} {'waited':>7} {'drops':>6} {'at engine':>9} {'NACK':>5} {'PLI':>4}"
            f" {'dec.err':>7} {'load':>5}"
        )
        joined = 0
        sample = {} if args.decoders is None else {"decoders": [f"p{i}" for i in range(args.decoders)]}
        for size in sizes:
            # Round-robin: participant i lives in client process i % nprocs.
            batches: dict[int, list[str]] = {}
            for i in range(joined, size):
                batches.setdefault(i % nprocs, []).append(f"p{i}")
            had_video = joined > 0
            answers = await asyncio.gather(
                *(
                    clients[i].call({"op": "join", "names": names, "wait_video": had_video, **sample})
                    for i, names in batches.items()
                )
            )
            for a in answers:
                joins += a["join_s"] if had_video else []
                for failure in a["failures"]:
                    log(f"join failed: {failure}")
            joined = size
            await asyncio.sleep(args.settle)
            n = size
            subs = n * (n - 1)
            before = await snapshot(clients)
            c0, t0, g0 = process_cpu_seconds(engine_pid), time.monotonic(), process_cpu_seconds(server.pid)
            u0, w0, e0 = udp_errors(), process_wait_seconds(engine_pid), engine_udp_drops(engine_pid)
            perf = asyncio.create_task(perf_send_stat(engine_pid, args.window) if args.perf else asyncio.sleep(0))
            await asyncio.sleep(args.window)
            sent_stat = await perf
            c1, t1, g1 = process_cpu_seconds(engine_pid), time.monotonic(), process_cpu_seconds(server.pid)
            u1, w1, e1 = udp_errors(), process_wait_seconds(engine_pid), engine_udp_drops(engine_pid)
            after = await snapshot(clients)
            span = t1 - t0
            wait = (w1 - w0) / span * 100
            cpu = (c1 - c0) / span * 100
            # Each receiver's expected frames are what the others sent in the window; delivery is what
            # it decoded of them (a browser's framesDecoded), per receiver and in total.
            sent = [b - a for a, b in zip(before.sent, after.sent, strict=True)]
            decoded = [b - a for a, b in zip(before.decoded, after.decoded, strict=True)]
            expected = [sum(sent) - s for s in sent]
            ratios = [d / e if e else 0.0 for d, e in zip(decoded, expected, strict=True)]
            delivered = sum(decoded) / sum(expected) if sum(expected) else 0.0
            worst = min(ratios) if ratios else 0.0
            # The decoding sample alone (--decoders): frames decoded / sent, its worst receiver.
            dec = [i for i, d in enumerate(after.decodes) if d]
            dec_expected = sum(expected[i] for i in dec)
            sampled = (
                f"{sum(decoded[i] for i in dec) / dec_expected:.2f}/{min(ratios[i] for i in dec):.2f}"
                if dec and dec_expected
                else "-"
            )
            # Subscriptions that got their frames, per core of the engine; ‰ of a core per such one.
            got = subs * min(delivered, 1.0)
            per_core = got / (cpu / 100) if cpu > 0 else float("inf")
            per_stream = cpu * 10 / got if got else float("inf")
            suite_cpu = (g1 - g0) / span * 100
            proc_cpu = [(b - a) / span * 100 for a, b in zip(before.cpu, after.cpu, strict=True)]
            proc_wait = [(b - a) / span * 100 for a, b in zip(before.wait, after.wait, strict=True)]
            # Video streams each receiver got frames from in the window: P-1 unless subscribed twice.
            streams = [
                sum(1 for i, b in enumerate(bt) if b > (at[i] if i < len(at) else 0))
                for at, bt in zip(before.taps, after.taps, strict=True)
            ]
            if max(streams) > n - 1:
                log(f"WARNING: a receiver got video from {max(streams)} streams in a room of {n}: subscribed twice")
            # µs of engine CPU per datagram it sent (perf stat; "-" without --perf)
            per_dgram = f"{sent_stat[0] * 1e6 / sent_stat[1]:.1f}" if sent_stat else "-"
            busiest = max(range(nprocs), key=lambda i: proc_cpu[i] + proc_wait[i])
            rows.append((n, subs, cpu, per_core, delivered, per_stream, sent_stat))
            log(
                f"{n:>9} {after.up:>5} {subs:>10} {cpu:>10.0f}% {wait:>6.0f}% {per_core:>9.0f} {per_stream:>7.1f}‰ {per_dgram:>8}"
                f" {delivered:>9.2f} {worst:>9.2f} {sampled:>11} {suite_cpu:>9.0f}% {sum(proc_cpu):>11.0f}%"
                f" {proc_cpu[busiest]:>7.0f}% {proc_wait[busiest]:>6.0f}% {u1[0] - u0[0]:>6} {e1 - e0:>9}"
                f" {after.nack - before.nack:>5} {after.pli - before.pli:>4} {after.errors - before.errors:>7}"
                f" {os.getloadavg()[0]:>5.1f}"
            )
            if proc_cpu[busiest] > CLIENT_BOTTLENECK or proc_cpu[busiest] + proc_wait[busiest] > 95:
                bottleneck.append(
                    f"{n} participants: client process {busiest} ran {proc_cpu[busiest]:.0f}% of a core and waited"
                    f" {proc_wait[busiest]:.0f}% for one"
                )
            if wait > 0 and cpu / (cpu + wait) < 0.7 and cpu + wait > 90:
                starved.append(f"{n} participants: it ran {cpu:.0f}% of a core and waited {wait:.0f}% for one")
            if cpu > args.cpu_limit:
                log("stop: engine CPU limit")
                break
            if after.up < n / 2:
                log("stop: fewer than half the participants are connected")
                break
        for line in starved:
            log(
                f"WARNING: the engine was starved at {line} (threads summed): runnable but without a CPU"
                " most of the window, so a delivery drop there measures the machine, not the engine"
            )
        for line in bottleneck:
            log(
                f"WARNING: a client process was the bottleneck at {line}: delivery there measures the clients, not the engine (more --client-procs, a smaller --video, or an idler machine)"
            )
        if joins:
            joins.sort()
            p95 = joins[min(len(joins) - 1, int(0.95 * len(joins)))]
            log(
                f"join (socket open -> first {'decoded' if args.decoders is None else 'decoded (complete outside the sample)'}"
                f" remote video frame): n={len(joins)}"
                f" p50 {statistics.median(joins):.2f} s, p95 {p95:.2f} s"
            )
        return rows
    finally:
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
        server.stop()
        if janus is not None:
            janus.stop()
            shutil.rmtree(janus.folder, ignore_errors=True)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="python,janus", help="python, janus or both (comma-separated)")
    ap.add_argument("--sizes", default="3,6,10", help="room sizes measured, in order (comma-separated)")
    ap.add_argument("--max", type=int, default=12, help="with --sizes '': participants at most")
    ap.add_argument("--step", type=int, default=3, help="with --sizes '': participants added per step")
    ap.add_argument("--settle", type=float, default=8.0, help="seconds after the joins before measuring")
    ap.add_argument("--window", type=float, default=8.0, help="seconds measured per room size")
    ap.add_argument(
        "--quick", action="store_true", help="rooms of 3, 6, 10, settle 4 s, window 6 s: both engines in < 4 min"
    )
    ap.add_argument(
        "--client-procs",
        type=int,
        default=0,
        help="client processes (participants spread round-robin); 0: enough that none should pass ~50%% of a core",
    )
    ap.add_argument("--video", default="320x240", help="sent video size (VP8 at 500 kbit/s, encoded once)")
    ap.add_argument("--no-decode", action="store_true", help="count complete frames instead of decoding them")
    ap.add_argument(
        "--perf",
        action="store_true",
        help="also measure the engine's CPU per datagram it sent (perf stat: task-clock and its send syscalls)",
    )
    ap.add_argument(
        "--decoders",
        type=int,
        default=None,
        help="only participants p0..p(K-1) decode (libvpx); the others count complete frames. Default: all"
        " decode. The sample's delivery is printed apart ('sample dec.': delivered/worst receiver)",
    )
    ap.add_argument("--cpu-limit", type=float, default=90.0, help="%% of one core")
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the server and the clients at this nice value (e.g. -10: on a shared machine, measure "
        "what the SFU does when it gets the CPU, as on a host of its own). With autogroup scheduling "
        "the share is per session, so the value goes to each process's /proc/<pid>/autogroup too",
    )
    ap.add_argument(
        "--engine-nice",
        type=int,
        default=None,
        help="the engine's nice value (Janus's process, or Suite's with the Python SFU), after --nice: e.g. "
        "--nice -5 --engine-nice -15 runs the engine ahead of the clients, so that it is not starved by them",
    )
    ap.add_argument(
        "--janus-event-loops",
        type=int,
        default=None,
        help="Janus's static event loops (janus.jcfg event_loops; default: half the cores, suite/voip/janus_config.py)",
    )
    ap.add_argument("--quality", type=float, default=0.9, help="the summary's room: delivered/sent at least this")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.settle, args.window = "3,6,10", 4.0, 6.0
    return args


def main() -> None:
    args = parse_args()
    if os.environ.get(NETNS_ENV) != "1":
        reexec_in_netns()
    sys.exit(asyncio.run(amain(args)))


if __name__ == "__main__":
    main()
