"""A throw-away Suite for the calls bench: ``suite serve --only gateway,voip`` on SQLite in a temp folder.

Accounts are made with the real CLI (``suite init``, ``suite domain add``, ``suite user add
--password-stdin``). The server runs through :data:`SERVE`, a two-line wrapper around ``suite.cli.main``
that first hands aioice 127.0.0.1 as its host address: inside the bench's network namespace that is the
only address there is, and aioice leaves loopback out of its host candidates (the same test-side patch as
``tests/voip/conftest.py::loopback_ice``; product code is unchanged). One process (``--workers 1``):
worker processes are started afresh (``python -m suite.cli``) and would not carry the patch.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.imap.procs import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
SERVE = (
    "import sys, aioice.ice\n"
    "aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ['127.0.0.1']\n"
    "{patch}"
    "from suite.cli import main\n"
    "sys.exit(main(['serve', '--only', 'gateway,voip', '--workers', '1']))\n"
)

# What-if only (``run.py --agent-fast-audio-level``): aiortc's RTCRtpSender computes the RFC 6464 audio
# level of every audio frame it encodes (aiortc.rtp.compute_audio_level_dbov) with a pure-Python loop over
# the whole plane buffer, which for frames from aiortc's Opus decoder is 23040 bytes (room for 120 ms)
# when 3840 hold the 20 ms of samples: 1-3 ms per frame, on the event loop. This replaces it by the same
# formula over the samples only, summed in C (``map(operator.mul)`` over an ``array``; same result, as the
# padding is zeros) to show what that loop costs the agent. Not a product change: the measured server is
# otherwise the real one.
FAST_AUDIO_LEVEL = (
    "import array, math, operator, aiortc.rtp\n"
    "def _level(frame):\n"
    "    a = array.array('h')\n"
    "    a.frombytes(bytes(frame.planes[0])[: frame.samples * len(frame.layout.channels) * 2])\n"
    "    rms = math.sqrt(sum(map(operator.mul, a, a)) / (frame.samples * 32767 * 32767))\n"
    "    return round(min(0, max(-127, 20 * math.log10(rms)))) if rms > 0 else -127\n"
    "aiortc.rtp.compute_audio_level_dbov = _level\n"
)


class SuiteError(RuntimeError):
    pass


class CallsServer:
    def __init__(
        self,
        domain: str,
        users: list[str],
        password: str,
        *,
        python: str = sys.executable,
        keep: bool = False,
        patch: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        self.patch = patch
        self.extra_env = dict(env or {})
        self.domain, self.users, self.password = domain, users, password
        self.python = python
        self.keep = keep
        self.port = free_port()
        self.tmp: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._env: dict[str, str] = {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "serve.log"

    def _cli(self, *args: str, stdin: str | None = None) -> None:
        r = subprocess.run(
            [self.python, "-m", "suite.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self._env,
            cwd=REPO,
            timeout=120,
            check=False,
        )
        if r.returncode != 0:
            raise SuiteError(f"`suite {' '.join(args)}` failed: {(r.stderr or r.stdout).strip()[-500:]}")

    def start(self, timeout: float = 60.0) -> CallsServer:
        self.tmp = Path(tempfile.mkdtemp(prefix="suite-bench-calls-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUITE_")}
        env.update(
            SUITE_DATA_DIR=str(self.tmp / "data"),
            SUITE_HTTP_PORT=str(self.port),
            SUITE_LISTEN_HOST="127.0.0.1",
            SUITE_HOSTNAME=self.domain,
            SUITE_CALL_RING_TIMEOUT="30",
            SUITE_LOG_FORMAT="json",
            # one process, as measured (`suite serve` otherwise starts a supervisor and a worker per core)
            SUITE_WORKERS="1",
        )
        env.update(self.extra_env)
        self._env = env
        self._cli("init")
        self._cli("domain", "add", self.domain)
        for user in self.users:
            self._cli("user", "add", f"{user}@{self.domain}", "--password-stdin", stdin=self.password + "\n")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.python, "-c", SERVE.format(patch=self.patch)],
            env=env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_port(self.port, timeout, alive=lambda: self.proc.poll() is None):
            tail = self.log_tail(30)
            self.stop()
            raise SuiteError(f"suite serve --only gateway,voip did not listen on 127.0.0.1:{self.port}: {tail}")
        return self

    def log_tail(self, n: int = 20) -> str:
        if self.tmp is not None and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only this server
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.tmp is not None and not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
