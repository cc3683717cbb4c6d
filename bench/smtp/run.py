"""SMTP bench: Postfix's smtp-source against Suite's MX and against a private Postfix, in the same run.

    python bench/smtp/run.py                          # 10 KB and 1 MB at concurrency 1, 10, 50, then the RSS run
    python bench/smtp/run.py --only suite --sizes 10k --concurrency 10
    python bench/smtp/run.py --no-rss                 # skip 50 x 25 MB
    python bench/smtp/run.py --rounds 5 --sizes 10k,1m --concurrency 10 --no-rss

Both servers run side by side for the whole bench; each round measures every size and concurrency on
Suite and on Postfix one after the other, the order swapped every round (Suite first in round 1, Postfix
first in round 2, ...), so a busy moment of the machine falls on both. The summary is the median of the
rounds (at least 3 by default), with the median 1-minute load average at the start of those runs.
Suite is the installed ``suite`` (bench/installed.py; ``--suite-bin`` to choose another).

Suite: a temp data dir (SQLite unless --database-url), `suite init`, `suite domain add bench.test`, a user,
`suite serve --only smtp` on free loopback ports (inbound SPF/DKIM/DMARC off: Postfix does none here either;
connection limits lifted). Postfix: bench/smtp/postfix.py, smtpd on a loopback port delivering to Maildir.

Per server, size and concurrency: msgs/s until the last 250 ("accept") and until the last message is in the
mailbox ("stored": for Suite the same — its 250 comes after the mailbox commit; for Postfix when the Maildir
holds them all), and CPU ms per message of the server's whole process tree (from /proc, waiting for Postfix's
queue to drain). Then Suite's peak RSS (VmHWM) while 50 clients send 25 MB each. Figures are printed, never
asserted. Only 127.0.0.1 is used; every run is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.imap.procs import free_port, tree_cpu_seconds, wait_port
from bench.installed import suite_command
from bench.smtp.postfix import Postfix, PostfixError

DOMAIN = "bench.test"
USER = f"user1@{DOMAIN}"
SENDER = "sender@source.test"
PASSWORD = "bench-Password-4711"
SIZES = {"10k": 10 * 1024, "1m": 1024 * 1024}


class SuiteSmtp:
    def __init__(self, database_url: str = "", suite_bin: str | None = None) -> None:
        self.database_url = database_url
        self.command = suite_command(suite_bin)
        self.tmp = Path(tempfile.mkdtemp(prefix="suite-bench-smtp-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUITE_")}
        env.update(
            SUITE_DATA_DIR=str(self.tmp / "data"),
            SUITE_LISTEN_HOST="127.0.0.1",
            SUITE_HOSTNAME="suite.bench.local",
            SUITE_SMTP_PORT=str(self.port),
            SUITE_SMTP_INBOUND_AUTH="false",
            SUITE_SMTP_MAX_CONNECTIONS_PER_IP="1000",
            SUITE_SMTP_MAX_CONNECTIONS_PER_MINUTE="1000000",
            SUITE_SMTP_MAX_MESSAGE_SIZE=str(60 * 1024 * 1024),
            SUITE_BUS_BACKEND="memory",
            SUITE_DEFAULT_QUOTA_BYTES=str(1 << 40),
        )
        for name in ("SUBMISSION_PORT", "SUBMISSIONS_PORT", "IMAP_PORT", "IMAPS_PORT", "HTTP_PORT"):
            env[f"SUITE_{name}"] = str(free_port())
        if database_url:
            env["SUITE_DATABASE_URL"] = database_url
        self.env = env

    def cli(self, *args: str, stdin: str | None = None) -> None:
        r = subprocess.run(
            [*self.command, *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
        if r.returncode != 0:
            raise RuntimeError(f"suite {' '.join(args)}: {(r.stderr or r.stdout).strip()}")

    def start(self) -> SuiteSmtp:
        self.cli("init")
        self.cli("domain", "add", DOMAIN)
        self.cli("user", "add", USER, "--password-stdin", stdin=PASSWORD + "\n")
        self.log = open(self.tmp / "serve.log", "wb")
        self.proc = subprocess.Popen(
            [*self.command, "serve", "--only", "smtp"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_port(self.port, 60, alive=lambda: self.proc.poll() is None):
            raise RuntimeError(
                "suite serve --only smtp did not start: " + (self.tmp / "serve.log").read_text(errors="replace")[-1500:]
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(35)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class Result:
    server: str
    size: str
    concurrency: int
    messages: int
    seconds_accept: float
    seconds_stored: float
    cpu_ms_per_msg: float
    failed: bool = False
    note: str = ""
    load: float = 0.0  # 1-minute load average when the run started
    round: int = 1

    @property
    def accept_rate(self) -> float:
        return self.messages / self.seconds_accept if self.seconds_accept else 0.0

    @property
    def stored_rate(self) -> float:
        return self.messages / self.seconds_stored if self.seconds_stored else 0.0


def smtp_source(port: int, concurrency: int, size: int, count: int, timeout: float) -> tuple[float, str]:
    start = time.monotonic()
    r = subprocess.run(
        [
            "smtp-source",
            "-s",
            str(concurrency),
            "-m",
            str(count),
            "-l",
            str(size),
            "-f",
            SENDER,
            "-t",
            USER,
            "-M",
            "source.test",
            f"127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    took = time.monotonic() - start
    err = (r.stderr or r.stdout).strip()
    return took, ("" if r.returncode == 0 else f"smtp-source exit {r.returncode}: {err[-300:]}")


def measure(
    server: str,
    pid: int,
    port: int,
    size_name: str,
    concurrency: int,
    count: int,
    stored_count=None,
    timeout: float = 600,
) -> Result:
    load = os.getloadavg()[0]
    cpu0, _ = tree_cpu_seconds(pid)
    before = stored_count() if stored_count else 0
    took, error = smtp_source(port, concurrency, SIZES[size_name], count, timeout)
    stored_at = took
    if stored_count is not None and not error:
        start = time.monotonic() - took
        deadline = time.monotonic() + timeout
        while stored_count() - before < count and time.monotonic() < deadline:
            time.sleep(0.02)
        stored_at = time.monotonic() - start
        if stored_count() - before < count:
            error = f"only {stored_count() - before} of {count} stored"
    time.sleep(0.2)  # let the last processes account their CPU
    cpu1, _ = tree_cpu_seconds(pid)
    return Result(
        server,
        size_name,
        concurrency,
        count,
        took,
        stored_at,
        (cpu1 - cpu0) * 1000 / count,
        failed=bool(error),
        note=error,
        load=load,
    )


def peak_rss(suite: SuiteSmtp, clients: int, size: int) -> dict:
    status = Path(f"/proc/{suite.pid}/status")

    def field(name: str) -> int:
        for line in status.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
        return 0

    base = field("VmRSS")
    Path(f"/proc/{suite.pid}/clear_refs").write_text("5")  # reset VmHWM (peak RSS) to the current RSS
    took, error = smtp_source(suite.port, clients, size, clients, timeout=900)
    return {
        "clients": clients,
        "message_bytes": size,
        "rss_before_mb": base / 2**20,
        "peak_rss_mb": field("VmHWM") / 2**20,
        "seconds": took,
        "error": error,
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarize(results: list[Result], sizes: list[str], levels: list[int]) -> None:
    """Medians over the rounds per server, size and concurrency, with the load average beside each."""
    print("\nMedians over the rounds (load = median 1-minute load average at the start of the runs):")
    medians: dict[tuple[str, str, int], tuple[float, float]] = {}
    for size in sizes:
        for c in levels:
            for server in ("suite", "postfix"):
                rs = [r for r in results if (r.server, r.size, r.concurrency) == (server, size, c) and not r.failed]
                if not rs:
                    continue
                rate, cpu = median([r.stored_rate for r in rs]), median([r.cpu_ms_per_msg for r in rs])
                medians[(server, size, c)] = (rate, cpu)
                print(
                    f"  {server:<8} {size:>4} c={c:<3} {rate:8.1f} msg/s stored  {cpu:7.2f} CPU ms/msg  "
                    f"load {median([r.load for r in rs]):5.2f}  ({len(rs)} rounds: "
                    + " ".join(f"{r.stored_rate:.0f}" for r in rs)
                    + " msg/s)"
                )
    pairs = [(k, v, medians.get(("postfix", k[1], k[2]))) for k, v in medians.items() if k[0] == "suite"]
    if any(pf for _, _, pf in pairs):
        print("\nSuite / Postfix, medians (stored msgs/s ratio; CPU per message ratio):")
        for (_, size, c), (rate, cpu), pf in pairs:
            if pf and pf[0] and pf[1]:
                print(f"  {size:>4} c={c:<3} throughput x{rate / pf[0]:.2f}   CPU/msg x{cpu / pf[1]:.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["suite", "postfix"])
    p.add_argument("--sizes", default="10k,1m")
    p.add_argument("--concurrency", default="1,10,50")
    p.add_argument("--rounds", type=int, default=3, help="alternated Suite/Postfix rounds (medians printed)")
    p.add_argument("--messages-10k", type=int, default=300, help="messages per run at 10 KB")
    p.add_argument("--messages-1m", type=int, default=60, help="messages per run at 1 MB")
    p.add_argument("--database-url", default="", help="Suite's database (default: SQLite in the temp dir)")
    p.add_argument("--suite-bin", default=None, help="the suite CLI (default: the installed one, bench/installed.py)")
    p.add_argument("--no-rss", action="store_true", help="skip the 50 x 25 MB peak RSS run")
    p.add_argument("--rss-clients", type=int, default=50)
    p.add_argument("--rss-mb", type=int, default=25)
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    if shutil.which("smtp-source") is None:
        print("smtp-source not found (Debian package postfix)", file=sys.stderr)
        return 1
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    results: list[Result] = []
    rss = None
    servers: dict[str, tuple[int, int, object]] = {}  # name -> (pid, port, stored_count)

    def run_one(server: str, size: str, c: int, round_no: int) -> None:
        pid, port, stored_count = servers[server]
        base = args.messages_10k if size == "10k" else args.messages_1m
        r = measure(server, pid, port, size, c, max(base, c * 2), stored_count)
        r.round = round_no
        results.append(r)
        print(
            f"  {round_no:>2} {server:<8} {size:>4} c={c:<3} {r.accept_rate:8.1f} msg/s accepted  "
            f"{r.stored_rate:8.1f} msg/s stored  {r.cpu_ms_per_msg:7.2f} CPU ms/msg  load {r.load:5.2f}"
            + (f"  FAILED: {r.note}" if r.failed else ""),
            flush=True,
        )

    with contextlib.ExitStack() as stack:
        suite = None
        if args.only != "postfix":
            suite = SuiteSmtp(args.database_url, args.suite_bin).start()
            stack.callback(suite.stop)
            servers["suite"] = (suite.pid, suite.port, None)
            print(f"Suite: {' '.join(suite.command)} serve --only smtp", flush=True)
        if args.only != "suite":
            try:
                pf = stack.enter_context(Postfix(free_port(), [USER]))
                if not wait_port(pf.port, 30):
                    raise PostfixError("smtpd did not listen")
                servers["postfix"] = (pf.master_pid(), pf.port, pf.delivered)
                print("Postfix: private instance, virtual -> Maildir", flush=True)
            except PostfixError as exc:
                print(f"  postfix unavailable: {exc}", flush=True)
        order = [name for name in ("suite", "postfix") if name in servers]
        for round_no in range(1, max(1, args.rounds) + 1):
            for size in sizes:
                for c in levels:
                    for server in order if round_no % 2 else order[::-1]:
                        run_one(server, size, c, round_no)
        if suite is not None and not args.no_rss:
            print(f"  peak RSS: {args.rss_clients} clients x {args.rss_mb} MB ...", flush=True)
            rss = peak_rss(suite, args.rss_clients, args.rss_mb * 1000 * 1000)
            print(
                f"  peak RSS {rss['peak_rss_mb']:.0f} MB (before {rss['rss_before_mb']:.0f} MB), "
                f"{rss['seconds']:.1f} s" + (f"  ERROR: {rss['error']}" if rss["error"] else ""),
                flush=True,
            )
    summarize(results, sizes, levels)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "results": [
                        asdict(r) | {"accept_rate": r.accept_rate, "stored_rate": r.stored_rate} for r in results
                    ],
                    "rss": rss,
                },
                indent=2,
            )
        )
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
