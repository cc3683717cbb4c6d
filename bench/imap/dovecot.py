"""A throw-away Dovecot IMAP server on 127.0.0.1 for the bench: own config, users and maildirs in a temp folder.

It runs Debian's packaged Dovecot (``dovecot-imapd``) in the foreground (``dovecot -F -c <conf>``), so the
master is our child and its pid is the root of the process tree whose CPU time we measure. The config is
self-contained (nothing from /etc/dovecot is included), close to defaults otherwise, so the numbers reflect a
stock install: per-connection imap processes, high-security imap-login (one process per login).

Usage::

    with Dovecot([("user1@bench.test", "pw")]) as dc:
        print(dc.port, dc.master_pid)
"""

from __future__ import annotations

import os
import pwd
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


class DovecotError(RuntimeError):
    pass


def find_dovecot() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)), None
    )


def ensure_installed(install: bool = True) -> str:
    """Path of the dovecot binary; installs Debian's dovecot-imapd when missing (root only)."""
    path = find_dovecot()
    if path:
        return path
    if not install:
        raise DovecotError("dovecot is not installed (apt-get install -y dovecot-imapd)")
    if os.geteuid() != 0:
        raise DovecotError("dovecot is not installed and we are not root: run `apt-get install -y dovecot-imapd`")
    print("dovecot missing: apt-get install -y dovecot-imapd …", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=300", "dovecot-imapd"],
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=300", "dovecot-imapd"],
    ):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
        if cmd[1] == "install" and r.returncode == 0:
            break
    path = find_dovecot()
    if not path:
        raise DovecotError(f"installing dovecot-imapd failed: {(r.stderr or r.stdout).strip()[-500:]}")
    return path


CONF = """\
# Written by bench/imap/dovecot.py; self-contained, nothing from /etc/dovecot.
instance_name = suite-bench-{port}
base_dir = {tmp}/run
state_dir = {tmp}/state
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {tmp}/dovecot.log
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{tmp}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {tmp}/passwd
}}
userdb {{
  driver = passwd-file
  args = {tmp}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
protocol imap {{
  # Several bench clients share one user from one address: lift the default of 10.
  mail_max_userip_connections = 10000
}}
"""


class Dovecot:
    def __init__(
        self, users: list[tuple[str, str]], port: int | None = None, install: bool = True, keep: bool = False
    ) -> None:
        self.users = users
        self.port = port or free_port()
        self.install = install
        self.keep = keep
        self.tmp: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.binary = ""
        self._out = None

    @property
    def master_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def conf(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "dovecot.conf"

    @property
    def log(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "dovecot.log"

    def version(self) -> str:
        r = subprocess.run(
            [self.binary or "dovecot", "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        return r.stdout.strip()

    def start(self, timeout: float = 20.0) -> Dovecot:
        if os.geteuid() != 0:
            raise DovecotError("the Dovecot bench runs Dovecot's master as root (it drops to dovecot/dovenull)")
        self.binary = ensure_installed(self.install)
        try:
            pw_mail = pwd.getpwnam("dovecot")
            pwd.getpwnam("dovenull")
        except KeyError as exc:
            raise DovecotError(f"system user missing ({exc}); reinstall dovecot-core") from None
        uid, gid = pw_mail.pw_uid, pw_mail.pw_gid
        self.tmp = Path(tempfile.mkdtemp(prefix="suite-bench-dovecot-"))
        self.tmp.chmod(0o755)  # the dovecot user must reach its maildirs
        mail = self.tmp / "mail"
        mail.mkdir()
        os.chown(mail, uid, gid)
        lines = [f"{u}:{{PLAIN}}{p}:{uid}:{gid}::{mail / u}::\n" for u, p in self.users]
        for u, p in self.users:
            if any(c in u + p for c in ":\n"):
                raise DovecotError(f"user or password of {u!r} holds ':' or a newline (passwd-file format)")
        passwd = self.tmp / "passwd"
        passwd.write_text("".join(lines))
        passwd.chmod(0o644)
        self.conf.write_text(CONF.format(tmp=self.tmp, port=self.port, uid=uid, gid=gid))
        check = subprocess.run(
            [self.binary, "-c", str(self.conf), "-n"], capture_output=True, text=True, timeout=30, check=False
        )
        if check.returncode != 0:
            raise DovecotError(f"dovecot rejects the config {self.conf}: {check.stderr.strip()[-800:]}")
        self._out = open(self.tmp / "master.out", "wb")
        self.proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.conf)],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_port(self.port, timeout, alive=lambda: self.proc.poll() is None):
            out = self._output()
            self.stop()
            raise DovecotError(f"dovecot did not listen on 127.0.0.1:{self.port} within {timeout:.0f}s: {out}")
        return self

    def _output(self) -> str:
        text = ""
        if self.tmp and (self.tmp / "master.out").exists():
            text += (self.tmp / "master.out").read_text(errors="replace")[-1500:]
        if self.tmp and self.log.exists():
            text += self.log.read_text(errors="replace")[-1500:]
        return text.strip() or "(no output)"

    def log_tail(self, n: int = 20) -> str:
        if self.tmp and self.log.exists():
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        interrupted = False
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)  # the master stops its children itself
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
        if self._out is not None:
            self._out.close()
            self._out = None
        if self.tmp is not None and not self.keep:
            for _ in range(50):
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


if __name__ == "__main__":  # manual check: start, show where, stop on Enter
    with Dovecot([("user1@bench.test", "secret")]) as dc:
        print(f"dovecot {dc.version()} pid {dc.master_pid} on 127.0.0.1:{dc.port}; conf {dc.conf}")
        input("Enter stops it… ")
