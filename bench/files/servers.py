"""The two servers of the files bench, each in a temp folder on a free 127.0.0.1 port.

- :class:`SuiteGateway`: ``suite init`` + ``suite domain add`` + ``suite user add`` + ``suite app-password
  add --scopes dav`` (the real CLI, SQLite), then ``suite serve --only gateway``;
- :class:`Nginx`: Debian's ``nginx -c <tmp>/nginx.conf -g 'daemon off;'``, one worker, ``sendfile on``,
  root at a folder the caller fills; nothing from /etc/nginx, logs and temp paths in the temp folder.

Both stop on ``stop()`` (SIGTERM, then SIGKILL of their own process group) and remove their folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_PORTS = ("SMTP_PORT", "SUBMISSION_PORT", "SUBMISSIONS_PORT", "IMAP_PORT", "IMAPS_PORT")

try:
    from bench.imap.procs import free_port, wait_port
    from bench.installed import suite_bin
except ImportError:  # run as a script: bench/files is sys.path[0]
    import sys

    sys.path.insert(0, str(REPO))
    from bench.imap.procs import free_port, wait_port
    from bench.installed import suite_bin

DEFAULT_SUITE_BIN = suite_bin() or Path("suite")  # the installed suite (bench/installed.py)


class ServerError(RuntimeError):
    pass


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # started with start_new_session: only this server
        except ProcessLookupError:
            pass
        proc.wait(5)


def _rmtree(path: Path | None) -> None:
    if path is None:
        return
    for _ in range(20):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)


class SuiteGateway:
    def __init__(
        self,
        user: str,
        password: str,
        *,
        root: Path,
        suite_bin: Path = DEFAULT_SUITE_BIN,
        quota: str = "4T",
        serve_prefix: list[str] | None = None,
    ) -> None:
        self.user, self.password, self.quota = user, password, quota
        # what runs `serve` (default: the suite CLI; a what-if wrapper taking the same arguments)
        self.serve_prefix = serve_prefix or [str(suite_bin)]
        self.suite_bin = Path(suite_bin)
        self.dir = root / "suite"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.secret = ""
        self._env: dict[str, str] = {}
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "serve.log"

    def _cli(self, *args: str, stdin: str | None = None) -> str:
        r = subprocess.run(
            [str(self.suite_bin), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self._env,
            timeout=120,
            check=False,
        )
        if r.returncode != 0:
            raise ServerError(f"`suite {' '.join(args)}` failed: {(r.stderr or r.stdout).strip()[-500:]}")
        return r.stdout

    def start(self, timeout: float = 60) -> SuiteGateway:
        if not self.suite_bin.exists():
            raise ServerError(f"the suite CLI is not at {self.suite_bin} (make the venv: pip install -e .[dev])")
        self.dir.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUITE_")}
        env.update(
            SUITE_DATA_DIR=str(self.dir / "data"),
            SUITE_HTTP_PORT=str(self.port),
            SUITE_LISTEN_HOST="127.0.0.1",
            SUITE_ALLOW_PLAINTEXT_LOOPBACK="1",
        )
        for name in _PORTS:  # keep clear of other instances even if more than the gateway opens a port
            env[f"SUITE_{name}"] = str(free_port())
        self._env = env
        self._cli("init")
        self._cli("domain", "add", self.user.rsplit("@", 1)[1])
        self._cli("user", "add", self.user, "--password-stdin", "--quota", self.quota, stdin=self.password + "\n")
        out = self._cli("app-password", "add", self.user, "--label", "bench", "--scopes", "dav")
        self.secret = out.strip().splitlines()[-1].strip()
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [*self.serve_prefix, "serve", "--only", "gateway"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_port(self.port, timeout, alive=lambda: self.proc.poll() is None):
            tail = self.log_tail()
            self.stop()
            raise ServerError(f"suite serve --only gateway did not listen on 127.0.0.1:{self.port}: {tail}")
        return self

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        _stop(self.proc)  # `suite serve`: SIGTERM stops every service cleanly
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


NGINX_CONF = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    {io}
    default_type application/octet-stream;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


# How nginx sends a file: Debian's default (sendfile) and the best this bench measured on this machine for
# one big download from the page cache (issue 20: 3.8-4.1 GB/s vs sendfile's lower figure). Both are printed.
NGINX_VARIANTS = {
    "sendfile": "sendfile on;\n    tcp_nopush on;",
    "buffers": "sendfile off;\n    output_buffers 2 1m;",
}


def nginx_binary(install: bool) -> str | None:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if found or not install:
        return found
    print("nginx is missing: apt-get install -y nginx", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    r = subprocess.run(
        ["apt-get", "install", "-y", "nginx"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if r.returncode != 0:
        print(f"apt-get install nginx failed: {(r.stderr or r.stdout).strip()[-300:]}")
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


class Nginx:
    def __init__(self, binary: str, *, root: Path, www: Path, variant: str = "sendfile") -> None:
        self.binary = binary
        self.variant = variant
        self.dir = root / f"nginx-{variant}"
        self.www = www
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> Nginx:
        self.dir.mkdir(parents=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.dir, port=self.port, root=self.www, io=NGINX_VARIANTS[self.variant]))
        # As root, the worker runs as nobody: it must be able to reach the file.
        p = self.www
        while p != p.parent and p != Path("/tmp"):
            p.chmod(p.stat().st_mode | 0o011)
            p = p.parent
        for f in self.www.iterdir():
            f.chmod(f.stat().st_mode | 0o044)
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_port(self.port, timeout, alive=lambda: self.proc.poll() is None):
            tail = self.log_tail()
            self.stop()
            raise ServerError(f"nginx did not listen on 127.0.0.1:{self.port}: {tail}")
        return self

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join((self.dir / "error.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        _stop(self.proc, signal.SIGQUIT, 10)  # graceful: the master stops its worker
        self.proc = None


def make_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="suite-bench-files-"))


def random_file(path: Path, mib: int) -> Path:
    """``mib`` MiB of random bytes at ``path`` (incompressible, never seen before by the server)."""
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1024 * 1024))
    return path


def remove_root(root: Path) -> None:
    _rmtree(root)
