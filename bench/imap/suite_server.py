"""A throw-away Suite IMAP server for the bench: ``suite serve --only imap`` on a free loopback port.

Data dir, database and logs live in a temp folder; users are made with the real CLI (``suite init``,
``suite domain add``, ``suite user add --password-stdin``). When ``suite serve`` does not know the service
``imap`` yet, :class:`SuiteUnavailable` says so (the bench then measures Dovecot alone).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

try:
    from .procs import free_port, wait_port
except ImportError:  # run as a script: bench/imap is sys.path[0]
    from procs import free_port, wait_port  # type: ignore[no-redef]

try:
    from bench.installed import suite_bin, suite_python
except ImportError:  # run as a script: bench/imap is sys.path[0]
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.installed import suite_bin, suite_python

DEFAULT_SUITE_BIN = suite_bin() or Path("suite")  # the installed suite (bench/installed.py)
_PORT_SETTINGS = ("SMTP_PORT", "SUBMISSION_PORT", "SUBMISSIONS_PORT", "IMAPS_PORT", "HTTP_PORT")


class SuiteUnavailable(RuntimeError):
    """Suite cannot serve IMAP here (not built yet, CLI missing)."""


class SuiteError(RuntimeError):
    pass


def imap_service_known(suite_bin: Path) -> tuple[bool, str]:
    """Ask the project's own registry whether ``suite serve`` knows the service "imap"."""
    python = suite_python(suite_bin)
    if not suite_bin.exists():
        return False, f"the suite CLI is not at {suite_bin} (install the project: pip install -e .[dev])"
    r = subprocess.run(
        [python, "-c", "from suite.service import REGISTRY; print(' '.join(REGISTRY))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if r.returncode != 0:
        return False, f"cannot read suite's service registry: {(r.stderr or r.stdout).strip()[-300:]}"
    services = r.stdout.split()
    if "imap" not in services:
        return False, f"`suite serve` has no service 'imap' yet (services: {', '.join(services) or 'none'})"
    return True, ""


class SuiteServer:
    def __init__(
        self,
        users: list[tuple[str, str]],
        port: int | None = None,
        suite_bin: Path = DEFAULT_SUITE_BIN,
        keep: bool = False,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.users = users
        self.settings = settings or {}  # SUITE_* variables for the server (e.g. SUITE_IMAP_FLAG_DURABILITY)
        self.port = port or free_port()
        self.suite_bin = Path(suite_bin)
        self.keep = keep
        self.tmp: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.env_cache: dict[str, str] = {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "serve.log"

    def env(self) -> dict[str, str]:
        assert self.tmp is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUITE_")}
        env.update(
            SUITE_DATA_DIR=str(self.tmp / "data"),
            SUITE_IMAP_PORT=str(self.port),
            SUITE_ALLOW_PLAINTEXT_LOOPBACK="1",
            SUITE_LISTEN_HOST="127.0.0.1",
        )
        # Keep clear of other Suite instances on this machine even if a service opens more than IMAP.
        for name in _PORT_SETTINGS:
            env[f"SUITE_{name}"] = str(free_port())
        env.update(self.settings)
        return env

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        r = subprocess.run(
            [str(self.suite_bin), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env_cache,
            timeout=timeout,
            check=False,
        )
        if r.returncode != 0:
            raise SuiteError(f"`suite {' '.join(args)}` failed: {(r.stderr or r.stdout).strip()[-500:]}")
        return r.stdout

    def start(self, timeout: float = 60.0) -> SuiteServer:
        ok, why = imap_service_known(self.suite_bin)
        if not ok:
            raise SuiteUnavailable(why)
        self.tmp = Path(tempfile.mkdtemp(prefix="suite-bench-suite-"))
        self.env_cache = self.env()
        self.cli("init")
        for domain in sorted({u.rsplit("@", 1)[1] for u, _ in self.users}):
            self.cli("domain", "add", domain)
        for user, password in self.users:
            self.cli("user", "add", user, "--password-stdin", stdin=password + "\n")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(self.suite_bin), "serve", "--only", "imap"],
            env=self.env_cache,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_port(self.port, timeout, alive=lambda: self.proc.poll() is None):
            log = self.log_path.read_text(errors="replace").strip()
            self.stop()
            if "unknown service" in log:
                raise SuiteUnavailable(log.splitlines()[-1])
            raise SuiteError(
                f"suite serve --only imap did not listen on 127.0.0.1:{self.port} "
                f"within {timeout:.0f}s: {log[-1500:] or '(no output)'}"
            )
        return self

    def log_tail(self, n: int = 20) -> str:
        if self.tmp and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self, timeout: float = 35.0) -> None:
        interrupted = False
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)  # suite serve: SIGTERM stops cleanly
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
                except KeyboardInterrupt:  # a second Ctrl-C: still leave nothing running
                    interrupted = True
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: only this instance
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.tmp is not None and not self.keep:
            for _ in range(20):
                try:
                    shutil.rmtree(self.tmp)
                    break
                except OSError:
                    time.sleep(0.1)
            self.tmp = None
        if interrupted:
            raise KeyboardInterrupt

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
