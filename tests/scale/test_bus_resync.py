"""Events published while a process's bus connection is down are not lost to its readers: on the
reconnect the bus tells every subscription to re-read the store (and a process whose own publish was
lost publishes a Resync once it can), so IMAP IDLE reports the new message and a JMAP EventSource
sends a StateChange without any later event. (IDLE's periodic re-check, the safety net besides:
tests/mail/imap/test_idle_check.py.)

The reading process (``--only imap,gateway``) or the delivering one (``--only smtp``) signs in to
PostgreSQL / Redis as a user of its own, so the test can cut its bus connection (pg_terminate_backend
/ CLIENT KILL) and keep it from reconnecting (NOLOGIN / ACL off) while the SMTP process delivers,
then let it back."""

from __future__ import annotations

import asyncio
import json
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))
from cluster import PASSWORD, Cluster, mail, reset_postgres, send

from suite.testing import POSTGRES_ADMIN_DSN, free_port, missing, port_open, wait_until

ALICE = "alice@example.test"
FAR = 3600  # an idle check interval that never fires within a test


class Idle:
    """A raw IMAP client in IDLE on INBOX (imaplib has no IDLE before Python 3.14)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self._line()  # greeting
        self._command(b'a LOGIN %s "%s"' % (ALICE.encode(), PASSWORD.encode()))
        self.exists = int(self._command(b"b SELECT INBOX").split(b" EXISTS")[0].rsplit(b"* ", 1)[1])
        self.sock.sendall(b"c IDLE\r\n")
        assert self._line().startswith(b"+")

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _command(self, cmd: bytes) -> bytes:
        tag = cmd.split(b" ", 1)[0]
        self.sock.sendall(cmd + b"\r\n")
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if line.startswith(tag + b" "):
                assert line.startswith(tag + b" OK"), lines
                return b"\r\n".join(lines)

    def wait_exists(self, timeout: float) -> int:
        """The count of the next untagged EXISTS (RFC 9051 §7.4.1) heard in IDLE."""
        self.sock.settimeout(timeout)
        while True:
            line = self._line()
            if line.endswith(b" EXISTS"):
                return int(line.split()[1])

    def close(self) -> None:
        with self.sock:
            self.sock.sendall(b"DONE\r\n")


class EventSource:
    """A JMAP EventSource (RFC 8620 §7.3) read in a thread: its StateChange events, in order."""

    def __init__(self, port: int) -> None:
        self.events: queue.Queue[str] = queue.Queue()
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=(ALICE, PASSWORD), timeout=60)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            with self.client.stream("GET", "/jmap/eventsource?types=*&closeafter=no&ping=0") as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.events.put(line[6:])
                    elif r.status_code != 200:
                        self.events.put(f"HTTP {r.status_code}: {line}")
        except httpx.HTTPError as exc:  # closed by close(), or the server went away: next() times out
            self.events.put(f"stream ended: {exc!r}")

    def email_state(self, before: str | None, timeout: float) -> str:
        """The Email state of the next StateChange that moves it from ``before``."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            changed = json.loads(data)["changed"]  # a stream that ended is no JSON: the test fails here
            state = next(iter(changed.values())).get("Email")
            if state is not None and state != before:
                return state

    def close(self) -> None:
        self.client.close()


SIDES = ("reader", "publisher")


class PostgresCut:
    """The reading and the delivering process sign in as roles of their own: one's LISTEN (or NOTIFY)
    connection is terminated and its reconnects refused (NOLOGIN) until ``restore``; its pooled
    connections stay up."""

    def __init__(self, pg_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.settings = {"database_url": pg_url, "bus_backend": "postgres"}
        self.roles = {side: f"suite_{side}_{secrets.token_hex(4)}" for side in SIDES}
        self.side_settings = {}
        for side, role in self.roles.items():
            self._admin(f'CREATE ROLE "{role}" LOGIN SUPERUSER')  # the tables' owner is the admin
            url = make_url(pg_url).set(username=role, password=None)
            self.side_settings[side] = {"database_url": url.render_as_string(hide_password=False)}

    @staticmethod
    def _admin(sql: str, *args: object) -> list:
        import asyncpg

        async def run() -> list:
            conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)
            try:
                return await conn.fetch(sql, *args)
            finally:
                await conn.close()

        return asyncio.run(run())

    def cut(self, side: str) -> None:
        role = self.roles[side]
        self._admin(f'ALTER ROLE "{role}" NOLOGIN')
        last = "LISTEN%" if side == "reader" else "SELECT pg_notify%"  # the bus's two connections
        rows = self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND query ILIKE $2",
            role,
            last,
        )
        assert [tuple(r) for r in rows] == [(True,)], rows

    def restore(self, side: str) -> None:
        self._admin(f'ALTER ROLE "{self.roles[side]}" LOGIN')

    def close(self) -> None:
        for role in self.roles.values():
            self._admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
            self._admin(f'DROP ROLE IF EXISTS "{role}"')


class RedisCut:
    """A private redis-server (pub/sub channels are server-wide: other tests' events must not wake
    ours); the reading and the delivering process sign in as ACL users of their own, whose connections
    are killed and whose sign-in is off until ``restore``."""

    def __init__(self, pg_url: str) -> None:
        if shutil.which("redis-server") is None:
            missing("redis-server (Debian redis-server) not installed")
        self.dir = tempfile.mkdtemp(prefix="suite-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout=20, what="redis-server up")
        url = f"redis://127.0.0.1:{self.port}/0"
        self.settings = {"database_url": pg_url, "bus_backend": "redis", "redis_url": url}
        self.side_settings = {}
        for side in SIDES:
            self._cli("ACL", "SETUSER", side, "on", f">{side}-secret", "~*", "&*", "+@all")
            self.side_settings[side] = {"redis_url": f"redis://{side}:{side}-secret@127.0.0.1:{self.port}/0"}

    def _cli(self, *args: str) -> str:
        import redis

        r = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            return str(r.execute_command(*args))
        finally:
            r.close()

    def cut(self, side: str) -> None:
        self._cli("ACL", "SETUSER", side, "off")
        assert int(self._cli("CLIENT", "KILL", "USER", side)) >= 1

    def restore(self, side: str) -> None:
        self._cli("ACL", "SETUSER", side, "on")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(params=["postgres", "redis"])
def bus_cut(request, pg_url) -> Iterator[PostgresCut | RedisCut]:
    reset_postgres(pg_url)
    cut = PostgresCut(pg_url) if request.param == "postgres" else RedisCut(pg_url)
    yield cut
    cut.close()


def test_idle_and_eventsource_hear_deliveries_made_while_a_bus_connection_was_down(tmp_path, bus_cut):
    """First the reading process (``--only imap,gateway``) cannot hear while the SMTP process
    delivers: after its reconnect its subscriptions resync. Then the SMTP process cannot publish the
    delivery's event: once it can again it publishes the Resync it owes, and the reading process
    resyncs. Each time IDLE and EventSource report the message without any later event."""
    c = Cluster.make(tmp_path, **bus_cut.settings)
    c.bootstrap(users=("alice",))
    smtp = c.serve("smtp", "smtp", **bus_cut.side_settings["publisher"])
    reader = c.serve("reader", "imap,gateway", imap_idle_check_interval=str(FAR), **bus_cut.side_settings["reader"])
    idle = es = None
    try:
        send(smtp.ports["smtp_port"], [ALICE], mail("before"))  # the bus carries events
        idle = Idle(reader.ports["imap_port"])
        assert idle.exists == 1
        es = EventSource(reader.ports["http_port"])
        email = es.email_state(None, timeout=20)  # the states when the stream began
        for exists, side in enumerate(SIDES, start=2):
            bus_cut.cut(side)
            try:
                # acknowledged: committed; its event goes to a bus the reader cannot hear, or is lost
                send(smtp.ports["smtp_port"], [ALICE], mail(f"while the {side}'s bus was down"))
            finally:
                bus_cut.restore(side)
            assert idle.wait_exists(timeout=30) == exists, side  # no later event: the resync reported it
            email = es.email_state(email, timeout=30)
        assert "bus.resync" in reader.output()
        assert "bus.publish_lost" in smtp.output() and "bus.resync_published" in smtp.output()
    finally:
        if idle is not None:
            idle.close()
        if es is not None:
            es.close()
        assert not c.stop_all()
