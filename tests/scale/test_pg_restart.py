"""PostgreSQL restarted under load: ``suite serve --only smtp`` and ``--only imap`` keep their
processes, reconnect (pool pre-ping, the LISTEN/NOTIFY bus's reconnect) and lose nothing they
acknowledged. A private PostgreSQL cluster (initdb in a temporary directory) is restarted — never
the machine's shared one, which other tests use at the same time."""

from __future__ import annotations

import asyncio
import imaplib
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import aioimaplib
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))
from cluster import PASSWORD, Cluster

from suite.testing import free_port, missing, wait_until

BOB = "bob@example.test"


def _pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not versions:
        missing("PostgreSQL server binaries (Debian postgresql) not installed")
    return versions[-1].parent


class PrivatePostgres:
    def __init__(self) -> None:
        if shutil.which("runuser") is None:
            missing("runuser (util-linux) is needed to run a private PostgreSQL as the postgres user")
        self.bin = _pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="suite-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        r = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert r.returncode == 0, f"{tool}: {r.stdout}{r.stderr}"

    def _ctl(self, action: str) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "-m", "fast", action)

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart")

    def stop(self) -> None:
        self._ctl("stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"


def _mail(subject: str) -> bytes:
    m = EmailMessage()
    m["From"] = "carol@remote.test"
    m["To"] = BOB
    m["Subject"] = subject
    m.set_content(subject + "\n")
    return m.as_bytes(policy=policy.SMTP)


@pytest.fixture
def pg():
    server = PrivatePostgres()
    yield server
    server.stop()


def test_postgres_restart_under_load_services_reconnect(pg, tmp_path):
    c = Cluster.make(tmp_path, database_url=pg.url, bus_backend="postgres")
    c.bootstrap(users=("bob",))
    smtp = c.serve("smtp", "smtp")
    imap = c.serve("imap", "imap")
    try:
        acked: list[str] = []
        failures = 0
        stop = threading.Event()

        def load() -> None:
            nonlocal failures
            i = 0
            while not stop.is_set():
                subject = f"pg {i}"
                i += 1
                try:
                    with smtplib.SMTP("127.0.0.1", smtp.ports["smtp_port"], timeout=30) as s:
                        s.sendmail("carol@remote.test", [BOB], _mail(subject))
                except (OSError, smtplib.SMTPException):
                    failures += 1  # a 4xx while the database is away: the client tries again later
                    time.sleep(0.05)
                    continue
                acked.append(subject)

        t = threading.Thread(target=load)
        t.start()
        try:
            wait_until(lambda: len(acked) >= 10, timeout=30, what="deliveries before the restart")
            pg.restart()
            at_restart = len(acked)
            wait_until(lambda: len(acked) >= at_restart + 10, timeout=60, what="deliveries after the restart")
        finally:
            stop.set()
            t.join(60)
        assert smtp.alive and imap.alive  # no process was restarted

        m = imaplib.IMAP4("127.0.0.1", imap.ports["imap_port"], timeout=30)
        m.login(BOB, PASSWORD)
        m.select("INBOX")
        typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        m.logout()
        found = [x[1].decode().split(":", 1)[1].strip() for x in data if isinstance(x, tuple)]
        print(f"PostgreSQL restart under load: acked {len(acked)}, refused {failures}, found {len(found)}")
        assert len(found) == len(set(found))
        assert set(acked) <= set(found)
        assert len(found) - len(acked) <= 1

        # the LISTEN/NOTIFY bus reconnects too, on its own schedule after the database pool: IDLE in
        # the IMAP process hears a new delivery whether its event came before that reconnect (the
        # reconnect's resync reports it) or after (the event does)

        async def idle_wakes() -> None:
            cl = aioimaplib.IMAP4(host="127.0.0.1", port=imap.ports["imap_port"], timeout=20)
            await cl.wait_hello_from_server()
            assert (await cl.login(BOB, PASSWORD)).result == "OK"
            assert (await cl.select("INBOX")).result == "OK"
            idle = await cl.idle_start(timeout=30)
            await asyncio.to_thread(_deliver, smtp.ports["smtp_port"], "after restart")
            push = await cl.wait_server_push(timeout=20)
            assert b"EXISTS" in b"".join(x if isinstance(x, bytes) else x.encode() for x in push)
            cl.idle_done()
            await asyncio.wait_for(idle, 10)
            await cl.logout()

        asyncio.run(idle_wakes())
    finally:
        assert not c.stop_all()


def _deliver(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail("carol@remote.test", [BOB], _mail(subject))
