"""`suite serve --workers 2` on the embedded default (SQLite WAL + disk, no Redis): the workers share
the ports, the supervisor's broker carries the bus between them, a worker killed -9 under load is
restarted and nothing acknowledged is lost.

Which worker accepted a connection is read from /proc (suite.testing.socket_owner), so each test
first opens connections until both workers hold one."""

from __future__ import annotations

import asyncio
import imaplib
import json
import os
import re
import signal
import smtplib
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))

from cluster import PASSWORD, Cluster, Proc, close_all, expect, ring_answer_hang_up
from cluster import mail as _mail
from cluster import send as _send

from suite.testing import socket_owner, wait_until

ALICE, BOB = "alice@example.test", "bob@example.test"


@pytest.fixture(scope="module")
def sup(tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    c = Cluster.make(root, voicemail_enabled="0")
    c.bootstrap(users=("alice", "bob"))
    proc = c.serve("sup", None, timeout=240, workers="2")  # two workers start: slow on a loaded machine
    c.sup = proc  # type: ignore[attr-defined]
    c.kill_at = None  # type: ignore[attr-defined]
    yield c
    assert not c.stop_all()
    assert "worker.died" not in proc.output()[: c.kill_at], "a worker died that no test killed"


def workers(proc: Proc) -> list[int]:
    """The supervisor's live worker processes (its children)."""
    pid = proc.popen.pid
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def port(c, key: str) -> int:
    return c.sup.ports[key]


def owner(c, server_port: int, client_port: int) -> int | None:
    return socket_owner(server_port, client_port, workers(c.sup))


def imap_on_each_worker(c, user: str) -> dict[int, imaplib.IMAP4]:
    """One logged-in IMAP connection per worker: connect until both workers hold one."""
    got: dict[int, imaplib.IMAP4] = {}
    extra: list[imaplib.IMAP4] = []
    deadline = time.monotonic() + 30
    while len(got) < 2:
        assert time.monotonic() < deadline, f"connections reached only {list(got)}"
        imap = imaplib.IMAP4("127.0.0.1", port(c, "imap_port"), timeout=30)
        pid = owner(c, port(c, "imap_port"), imap.sock.getsockname()[1])
        if pid is None or pid in got:
            extra.append(imap)
            continue
        got[pid] = imap
    for imap in extra:
        imap.shutdown()
    for imap in got.values():
        imap.login(user, PASSWORD)
        assert imap.select("INBOX")[0] == "OK"
    return got


def test_both_workers_serve_and_listen_on_the_same_ports(sup):
    pids = workers(sup.sup)
    assert len(pids) == 2
    out = sup.sup.output()
    assert re.search(rf"^workers\s+{pids[0]} {pids[1]}$", out, re.M) or re.search(
        rf"^workers\s+{pids[1]} {pids[0]}$", out, re.M
    )
    assert out.count("\nready") == 1  # the supervisor's, once every worker is ready


def test_delivery_through_one_worker_wakes_idle_on_both(sup):
    conns = imap_on_each_worker(sup, BOB)
    for imap in conns.values():
        imap.send(b"i1 IDLE\r\n")
        assert imap.readline().startswith(b"+ ")
    _send(port(sup, "smtp_port"), [BOB], _mail("wake up both", BOB))
    for pid, imap in conns.items():
        line = imap.readline()
        assert re.match(rb"\* \d+ EXISTS", line), (pid, line)
        imap.send(b"DONE\r\n")
        while not (line := imap.readline()).startswith(b"i1 "):
            pass
        assert line.startswith(b"i1 OK"), line
        imap.logout()


def test_concurrent_delivery_through_both_workers_gets_gap_free_uids(sup):
    """The tests/scale PostgreSQL test, on SQLite with two workers: unique, gap-free UIDs."""
    n, errors, accepted_by = 40, [], set()

    def load(k: int) -> None:
        try:
            for i in range(n // 4):
                with smtplib.SMTP("127.0.0.1", port(sup, "smtp_port"), timeout=30) as s:
                    accepted_by.add(owner(sup, port(sup, "smtp_port"), s.sock.getsockname()[1]))
                    s.sendmail("carol@remote.test", [ALICE], _mail(f"burst {k} {i}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert set(workers(sup.sup)) <= accepted_by  # both workers took deliveries
    imap = imaplib.IMAP4("127.0.0.1", port(sup, "imap_port"), timeout=30)
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    got = [int(x) for x in imap.uid("SEARCH", "ALL")[1][0].split()]
    imap.logout()
    assert got == list(range(1, n + 1))


async def web_session(c, address: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port(c, 'http_port')}", timeout=20)
    r = await http.post("/api/login", json={"address": address, "password": PASSWORD})
    assert r.status_code == 200, r.text
    http.headers["X-CSRF-Token"] = (await http.get("/api/me")).json()["csrf_token"]
    return http


async def socket_on(c, http: httpx.AsyncClient, path: str, avoid: int | None):
    """A WebSocket of ``http``'s session to ``path``, accepted by a worker other than ``avoid``."""
    base = f"http://127.0.0.1:{port(c, 'http_port')}"
    for _ in range(40):
        ws = await connect(
            base.replace("http", "ws") + path,
            additional_headers={"Cookie": f"suite_session={http.cookies['suite_session']}"},
            origin=base,
        )
        pid = owner(c, port(c, "http_port"), ws.transport.get_extra_info("sockname")[1])
        if pid is not None and pid != avoid:
            return ws, pid
        await ws.close()
    raise AssertionError(f"every {path} WebSocket landed on one worker")


def test_meeting_participants_on_different_workers_meet_in_one_room(sup):
    """A room lives in the primary worker; the other worker relays its sockets there."""

    async def run() -> None:
        alice_http, bob_http = await web_session(sup, ALICE), await web_session(sup, BOB)
        r = await alice_http.post("/api/meetings", json={"title": "Across"})
        assert r.status_code == 201, r.text
        path = f"/ws/meetings/{r.json()['token']}"
        alice, alice_pid = await socket_on(sup, alice_http, path, None)
        bob, _ = await socket_on(sup, bob_http, path, alice_pid)
        try:
            await alice.send(json.dumps({"type": "hello"}))
            assert (await expect(alice, "joined"))["role"] == "host"
            await bob.send(json.dumps({"type": "hello"}))
            await expect(bob, "joined")
            await bob.send(json.dumps({"type": "chat", "text": "hello from the other worker"}))
            await expect(alice, "chat", text="hello from the other worker")
            await alice.send(json.dumps({"type": "chat", "text": "and back"}))
            await expect(bob, "chat", text="and back")
        finally:
            await close_all((alice, bob), (alice_http, bob_http))

    asyncio.run(run())


def test_call_rings_between_sessions_on_different_workers(sup):
    async def run() -> None:
        alice_http, bob_http = await web_session(sup, ALICE), await web_session(sup, BOB)
        alice, alice_pid = await socket_on(sup, alice_http, "/ws/calls", None)
        bob, _ = await socket_on(sup, bob_http, "/ws/calls", alice_pid)
        try:
            await ring_answer_hang_up(alice_http, alice, bob, ALICE, BOB, "call-00000007")
        finally:
            await close_all((alice, bob), (alice_http, bob_http))

    asyncio.run(run())


def test_kill9_worker_under_load_is_restarted_and_loses_nothing_acknowledged(sup):
    """Deliveries run while worker 0 (the primary) is killed -9: the supervisor starts a new one,
    the other worker keeps serving, and every message answered 250 is stored exactly once."""
    sup.kill_at = len(sup.sup.output())
    acked: list[str] = []
    sent = 0
    stop = threading.Event()

    def load(k: int) -> None:
        nonlocal sent
        i = 0
        while not stop.is_set():
            subject = f"load {k} {i}"
            i += 1
            sent += 1
            try:
                _send(port(sup, "smtp_port"), [BOB], _mail(subject, BOB))
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)  # the connection was on the killed worker: a new message, a new connection
                continue
            acked.append(subject)

    threads = [threading.Thread(target=load, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acked) >= 15, timeout=60, what="load")
        before = workers(sup.sup)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        at_kill = len(acked)
        wait_until(
            lambda: len(workers(sup.sup)) == 2 and victim not in workers(sup.sup),
            timeout=30,
            what="a new worker",
        )
        wait_until(lambda: "worker.restarted" in sup.sup.output(), timeout=90, what="the restarted worker ready")
        wait_until(lambda: len(acked) >= at_kill + 15, timeout=60, what="load after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    imap = imaplib.IMAP4("127.0.0.1", port(sup, "imap_port"), timeout=30)
    imap.login(BOB, PASSWORD)
    imap.select("INBOX")
    data = imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1]
    imap.logout()
    found = [x[1].decode().split(":", 1)[1].strip() for x in data if isinstance(x, tuple)]
    found = [s for s in found if s.startswith("load ")]
    out = sup.sup.output()
    print(f"kill -9 worker: sent {sent}, acked {len(acked)}, found {len(found)}")
    assert "worker.died" in out
    assert len(found) == len(set(found)), "a message was stored twice"
    assert set(acked) <= set(found), set(acked) - set(found)
    assert len(found) - len(acked) <= 3  # at most the ones in flight at the kill (250 never seen)
