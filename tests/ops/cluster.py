"""Run Suite as an operator does: the ``suite`` command, and ``suite serve --only …`` processes that
share one database, blob store and bus. Output goes to files (a full pipe would block a server)."""

from __future__ import annotations

import asyncio
import json
import signal
import smtplib
import subprocess
import sys
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path

from suite.testing import free_port, port_open, serve_env

PASSWORD = "correct horse battery staple"
PORT_SETTINGS = (
    "smtp_port",
    "submission_port",
    "submissions_port",
    "imap_port",
    "imaps_port",
    "managesieve_port",
    "http_port",
    "metrics_port",
)


def mail(subject: str, to: str = "alice@example.test", sender: str = "carol@remote.test") -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m.set_content(f"{subject}\n")
    return m.as_bytes(policy=policy.SMTP)


def send(smtp_port: int, rcpts: list[str], data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as s:
        s.sendmail("carol@remote.test", rcpts, data)


async def expect(ws, kind: str, **fields: str) -> dict:
    """The next WebSocket message of ``kind`` (with these field values); others may come first."""
    seen = []
    for _ in range(20):  # presence updates, layouts, the call's other steps, one's own chat echoed, …
        msg = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if msg["type"] == kind and all(msg.get(k) == v for k, v in fields.items()):
            return msg
        assert msg["type"] != "error", msg
        seen.append(msg["type"])
    raise AssertionError(f"no {kind} among {seen}")


async def ring_answer_hang_up(alice_http, alice_ws, bob_ws, alice: str, bob: str, call_id: str) -> None:
    """Alice calls Bob over two /ws/calls sockets: it rings, Bob accepts, Alice hangs up; then both
    sockets and both HTTP sessions are closed."""
    from suite.testing import async_wait_until

    async def bob_online() -> bool:
        contacts = (await alice_http.get("/api/contacts")).json()["contacts"]
        return {x["address"]: x["presence"] for x in contacts}[bob] == "online"

    await async_wait_until(bob_online, timeout=15, what="bob's session known to the call switch")
    await alice_ws.send(json.dumps({"type": "invite", "call_id": call_id, "to": bob}))
    assert (await expect(bob_ws, "incoming"))["caller"] == alice
    await bob_ws.send(json.dumps({"type": "accept", "call_id": call_id}))
    assert (await expect(alice_ws, "accepted"))["peer"] == bob
    await alice_ws.send(json.dumps({"type": "hangup", "call_id": call_id}))
    assert (await expect(bob_ws, "call_ended"))["reason"] == "hangup"


async def close_all(sockets, clients) -> None:
    for ws in sockets:
        await ws.close()
    for h in clients:
        await h.aclose()


def reset_postgres(url: str) -> None:
    """Drop every table of a (throwaway) PostgreSQL database: ``suite init`` starts from nothing."""
    from sqlalchemy import text

    from suite.storage import db

    async def run() -> None:
        engine = db.make_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        finally:
            await engine.dispose()

    asyncio.run(run())


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    ports: dict[str, int]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Cluster:
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    @classmethod
    def make(cls, root: Path, **settings: str) -> Cluster:
        env = serve_env()
        env.update(
            SUITE_DATA_DIR=str(root / "data"),
            SUITE_ALLOW_PLAINTEXT_LOOPBACK="1",
            SUITE_SMTP_INBOUND_AUTH="0",
            SUITE_HOSTNAME="mx.example.test",
        )
        env.update({f"SUITE_{k.upper()}": v for k, v in settings.items()})
        root.mkdir(parents=True, exist_ok=True)
        return cls(root, env)

    def cli(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120):
        r = subprocess.run(
            [sys.executable, "-m", "suite.cli", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"suite {' '.join(args)} → {r.returncode}: {r.stdout}{r.stderr}")
        return r

    def bootstrap(
        self, domain: str = "example.test", users: tuple[str, ...] = ("alice",), password: str = PASSWORD
    ) -> None:
        self.cli("init")
        self.cli("domain", "add", domain)
        for u in users:
            self.cli("user", "add", f"{u}@{domain}", "--password-stdin", stdin=password + "\n")

    def app_password(self, address: str, scopes: str = "dav") -> str:
        r = self.cli("app-password", "add", address, "--label", "test", "--scopes", scopes)
        return r.stdout.strip().splitlines()[-1]

    def serve(
        self,
        name: str,
        only: str | None,
        *,
        ports: dict[str, int] | None = None,
        timeout: float = 60,
        **settings: str,
    ) -> Proc:
        """Start ``suite serve [--only ONLY]`` on fresh ports; return once it printed ``ready``."""
        ports = dict(ports or {})
        for key in PORT_SETTINGS:
            ports.setdefault(key, free_port())
        env = dict(self.env)
        env.update({f"SUITE_{k.upper()}": str(v) for k, v in ports.items()})
        env.update({f"SUITE_{k.upper()}": v for k, v in settings.items()})
        log = self.root / f"{name}.log"
        start = log.stat().st_size if log.exists() else 0  # a restart appends to the same log
        args = [sys.executable, "-m", "suite.cli", "serve"] + (["--only", only] if only else [])
        with open(log, "ab") as out:
            popen = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        proc = Proc(name, popen, ports, log)
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while "\nready" not in "\n" + proc.output()[start:]:
            if not proc.alive or time.monotonic() > deadline:
                raise AssertionError(f"{name} did not start:\n{proc.output()[-3000:]}")
            time.sleep(0.05)
        return proc

    def restart(self, proc: Proc) -> Proc:
        """The same service on the same ports again (after a kill)."""
        self.procs.remove(proc)
        only = proc.popen.args[proc.popen.args.index("--only") + 1] if "--only" in proc.popen.args else None
        deadline = time.monotonic() + 30
        while any(port_open("127.0.0.1", p) for k, p in proc.ports.items() if k != "metrics_port"):
            assert time.monotonic() < deadline, "ports of the killed process stay busy"
            time.sleep(0.05)
        return self.serve(proc.name, only, ports=proc.ports)

    @staticmethod
    def kill9(proc: Proc) -> None:
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(timeout=10)

    def stop_all(self) -> list[str]:
        """SIGTERM every process; the names of those that did not stop cleanly (exit 0)."""
        bad: list[str] = []
        for p in self.procs:
            if p.alive:
                p.popen.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                rc = p.popen.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                rc = p.popen.wait()
            if rc not in (0, -signal.SIGKILL):
                bad.append(f"{p.name} exit {rc}: {p.output()[-1500:]}")
        self.procs.clear()
        return bad
