"""The scaled-out topology on this machine: PostgreSQL (a throwaway database), S3 blobs (Ceph RGW),
the Redis bus, and every service as its own ``suite serve --only …`` process — two SMTP, two IMAP,
files, voip (the call switch) and two gateways — driven by real clients (smtplib, aioimaplib IDLE,
imaplib APPEND, tuspy, httpx, WebSocket), with kill -9 of one process under load.

All processes share one data dir (as one host's containers share a volume): the tus spool is there,
so an upload begun through one gateway resumes through the other.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import imaplib
import os
import re
import secrets
import smtplib
import ssl
import sys
import threading
import time
from pathlib import Path

import aioimaplib
import httpx
import pytest
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))
from cluster import PASSWORD, Cluster, close_all, reset_postgres, ring_answer_hang_up
from cluster import mail as _mail
from cluster import send as _send

from suite.testing import free_port, wait_until

ALICE, BOB = "alice@example.test", "bob@example.test"


class StubMX:
    """The remote MX the outbound queue talks to (aiosmtpd with STARTTLS on loopback, used as the
    smarthost): counts every message it accepts."""

    def __init__(self, root: Path) -> None:
        from aiosmtpd.controller import Controller

        from suite.tls import make_self_signed, server_context

        make_self_signed(root / "mx.pem", root / "mx.key", "mx.remote.test")
        self.received: list[bytes] = []
        self.lock = threading.Lock()
        self.port = free_port()
        stub = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with stub.lock:
                    stub.received.append(envelope.content)
                return "250 2.0.0 queued"

        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=server_context(root / "mx.pem", root / "mx.key"),
            require_starttls=False,
        )
        self.controller.start()

    def subjects(self) -> list[str]:
        with self.lock:
            return [m.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode() for m in self.received]


@pytest.fixture(scope="module")
def topo(tmp_path_factory, pg_url, s3_server):
    root = tmp_path_factory.mktemp("topology")
    reset_postgres(pg_url)
    mx = StubMX(root)
    c = Cluster.make(
        root,
        database_url=pg_url,
        blob_backend="s3",
        s3_endpoint=s3_server["endpoint"],
        s3_access_key=s3_server["access_key"],
        s3_secret_key=s3_server["secret_key"],
        s3_bucket=f"suite-topo-{secrets.token_hex(4)}",
        bus_backend="redis",
        redis_url="redis://127.0.0.1:6379/0",
        call_switch_owner="0",
        voicemail_enabled="0",
        smarthost=f"127.0.0.1:{mx.port}",
        smarthost_tls_verify="0",
        queue_poll_seconds="0.3",
        queue_retry_schedule="[1]",
    )
    c.bootstrap(users=("alice", "bob"))
    procs = {
        "smtp1": c.serve("smtp1", "smtp"),
        "smtp2": c.serve("smtp2", "smtp"),
        "imap1": c.serve("imap1", "imap"),
        "imap2": c.serve("imap2", "imap"),
        "files": c.serve("files", "files"),
        "voip": c.serve("voip", "voip", call_switch_owner="1"),
        "gw1": c.serve("gw1", "gateway"),
        "gw2": c.serve("gw2", "gateway"),
    }
    c.topo_procs = procs  # type: ignore[attr-defined]
    c.mx = mx  # type: ignore[attr-defined]
    c.dav = c.app_password(ALICE)  # type: ignore[attr-defined]
    yield c
    mx.controller.stop()
    assert not c.stop_all()


def port(c, name: str, key: str) -> int:
    return c.topo_procs[name].ports[key]


def uids(c, proc: str = "imap1", mailbox: str = "INBOX", user: str = ALICE) -> list[int]:
    imap = imaplib.IMAP4("127.0.0.1", port(c, proc, "imap_port"), timeout=30)
    imap.login(user, PASSWORD)
    imap.select(mailbox)
    typ, data = imap.uid("SEARCH", "ALL")
    imap.logout()
    assert typ == "OK"
    return [int(x) for x in data[0].split()]


def subjects(c, proc: str = "imap1", mailbox: str = "INBOX", user: str = ALICE) -> list[str]:
    imap = imaplib.IMAP4("127.0.0.1", port(c, proc, "imap_port"), timeout=30)
    imap.login(user, PASSWORD)
    imap.select(mailbox)
    typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    imap.logout()
    return [item[1].decode().split(":", 1)[1].strip() for item in data if isinstance(item, tuple)]


# ---------------------------------------------------------------- correctness
def test_smtp_delivery_wakes_idle_in_both_imap_processes(topo):
    async def run() -> None:
        clients = []
        for name in ("imap1", "imap2"):
            cl = aioimaplib.IMAP4(host="127.0.0.1", port=port(topo, name, "imap_port"), timeout=20)
            await cl.wait_hello_from_server()
            assert (await cl.login(BOB, PASSWORD)).result == "OK"
            assert (await cl.select("INBOX")).result == "OK"
            clients.append((cl, await cl.idle_start(timeout=30)))
        await asyncio.to_thread(_send, port(topo, "smtp1", "smtp_port"), [BOB], _mail("wake up", BOB))
        for cl, idle in clients:
            push = await cl.wait_server_push(timeout=20)
            assert b"1 EXISTS" in b"".join(x if isinstance(x, bytes) else x.encode() for x in push)
            cl.idle_done()
            assert (await asyncio.wait_for(idle, 10)).result == "OK"
            await cl.logout()

    asyncio.run(run())


def _basic(c) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{ALICE}:{c.dav}".encode()).decode()}


def test_file_uploaded_through_one_gateway_downloads_through_the_other(topo, tmp_path):
    from tusclient import client as tus_client

    data = os.urandom(1_500_000)
    src = tmp_path / "a.bin"
    src.write_bytes(data)
    gw1 = f"http://127.0.0.1:{port(topo, 'gw1', 'http_port')}"
    gw2 = f"http://127.0.0.1:{port(topo, 'gw2', 'http_port')}"
    tus_client.TusClient(f"{gw1}/api/tus/", headers=_basic(topo)).uploader(
        file_path=str(src), chunk_size=512 * 1024, metadata={"filename": "a.bin"}
    ).upload()
    got = httpx.get(f"{gw2}/api/files/content/a.bin", headers=_basic(topo), timeout=30)
    assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()


def test_call_rings_across_gateways(topo):
    async def client(gw: str, address: str):
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port(topo, gw, 'http_port')}", timeout=20)
        r = await http.post("/api/login", json={"address": address, "password": PASSWORD})
        assert r.status_code == 200, r.text
        ws = await connect(
            f"ws://127.0.0.1:{port(topo, gw, 'http_port')}/ws/calls",
            additional_headers={"Cookie": f"suite_session={http.cookies['suite_session']}"},
            origin=f"http://127.0.0.1:{port(topo, gw, 'http_port')}",
        )
        return http, ws

    async def run() -> None:
        alice_http, alice = await client("gw1", ALICE)
        bob_http, bob = await client("gw2", BOB)
        try:
            await ring_answer_hang_up(alice_http, alice, bob, ALICE, BOB, "call-00000042")
        finally:
            await close_all((alice, bob), (alice_http, bob_http))

    asyncio.run(run())


def test_concurrent_delivery_from_two_smtp_processes_gets_gap_free_uids(topo):
    before = len(uids(topo, mailbox="INBOX", user=ALICE))
    n = 40
    errors: list[BaseException] = []

    def worker(smtp: str, k: int) -> None:
        try:
            for i in range(n // 4):
                _send(port(topo, smtp, "smtp_port"), [ALICE], _mail(f"burst {smtp} {k} {i}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s, k)) for s in ("smtp1", "smtp2") for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    got = uids(topo, "imap2")
    assert got == list(range(1, before + n + 1))  # unique, gap-free, every acknowledged message


def test_outbound_queue_item_sent_once_with_two_smtp_processes(topo):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for i, smtp in enumerate(["smtp1", "smtp2"] * 5):
        with smtplib.SMTP("127.0.0.1", port(topo, smtp, "submission_port"), timeout=30) as s:
            s.starttls(context=ctx)
            s.login(ALICE, PASSWORD)
            s.sendmail(ALICE, ["dave@far.test"], _mail(f"outbound {i}", "dave@far.test", ALICE))
    wanted = sorted(f"outbound {i}" for i in range(10))
    wait_until(lambda: len(topo.mx.subjects()) >= 10, timeout=30, what="the stub MX got every message")
    # both workers poll every 0.3 s: give a duplicate time to show before counting
    time.sleep(1.0)
    assert sorted(topo.mx.subjects()) == wanted


# ---------------------------------------------------------------- faults
def test_kill9_smtp_under_load_loses_nothing_acknowledged(topo):
    """Clients deliver through smtp1 and smtp2; smtp1 is killed mid-stream and restarted. Every
    message answered 250 is in the mailbox exactly once; smtp2 kept serving throughout."""
    acked: dict[str, list[str]] = {"smtp1": [], "smtp2": []}
    sent = {"smtp1": 0, "smtp2": 0}
    stop = threading.Event()

    def load(smtp: str) -> None:
        i = 0
        while not stop.is_set():
            subject = f"load {smtp} {i}"
            i += 1
            sent[smtp] += 1
            try:
                _send(port(topo, smtp, "smtp_port"), [BOB], _mail(subject, BOB))
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)  # the process is down; try again (a new message)
                continue
            acked[smtp].append(subject)

    threads = [threading.Thread(target=load, args=(s,)) for s in acked]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked["smtp1"]) >= 10, timeout=30, what="load on smtp1")
    proc = topo.topo_procs["smtp1"]
    topo.kill9(proc)
    at_kill = len(acked["smtp2"])
    topo.topo_procs["smtp1"] = topo.restart(proc)
    wait_until(lambda: len(acked["smtp1"]) >= 20 and len(acked["smtp2"]) > at_kill + 5, timeout=60, what="load")
    stop.set()
    for t in threads:
        t.join(60)
    found = [s for s in subjects(topo, "imap1", user=BOB) if s.startswith("load ")]
    everything_acked = acked["smtp1"] + acked["smtp2"]
    print(f"kill -9 smtp1: sent {sent}, acked {[len(v) for v in acked.values()]}, found {len(found)}")
    assert len(found) == len(set(found)), "a message was stored twice"
    assert set(everything_acked) <= set(found), set(everything_acked) - set(found)
    assert len(found) - len(everything_acked) <= 1  # at most the one in flight at the kill (250 not seen)


def test_kill9_imap_during_append_loses_nothing_acknowledged(topo):
    acked: list[str] = []
    sent = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal sent
        imap = None
        i = 0
        while not stop.is_set():
            try:
                if imap is None:
                    imap = imaplib.IMAP4("127.0.0.1", port(topo, "imap1", "imap_port"), timeout=10)
                    imap.login(ALICE, PASSWORD)
                subject = f"append {i}"
                i += 1
                sent += 1
                typ, _ = imap.append("Appended", None, None, _mail(subject))
                if typ == "OK":
                    acked.append(subject)
                elif typ == "NO":  # TRYCREATE the first time
                    imap.create("Appended")
            except (OSError, imaplib.IMAP4.error, imaplib.IMAP4.abort):
                imap = None
                time.sleep(0.05)

    t = threading.Thread(target=load)
    t.start()
    wait_until(lambda: len(acked) >= 10, timeout=30, what="appends")
    proc = topo.topo_procs["imap1"]
    topo.kill9(proc)
    at_kill = len(acked)
    assert uids(topo, "imap2")  # the other IMAP process serves meanwhile
    topo.topo_procs["imap1"] = topo.restart(proc)
    wait_until(lambda: len(acked) >= at_kill + 10, timeout=60, what="appends after the restart")
    stop.set()
    t.join(60)
    found = subjects(topo, "imap2", mailbox="Appended")
    print(f"kill -9 imap1 during APPEND: sent {sent}, acked {len(acked)}, found {len(found)}")
    assert len(found) == len(set(found))
    assert set(acked) <= set(found)
    assert len(found) - len(acked) <= 1


def test_kill9_gateway_during_tus_upload_resumes_through_the_other(topo, tmp_path):
    from tusclient import client as tus_client

    data = os.urandom(3_000_000)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    gw1 = f"http://127.0.0.1:{port(topo, 'gw1', 'http_port')}"
    gw2 = f"http://127.0.0.1:{port(topo, 'gw2', 'http_port')}"
    up = tus_client.TusClient(f"{gw1}/api/tus/", headers=_basic(topo)).uploader(
        file_path=str(src), chunk_size=256 * 1024, metadata={"filename": "big.bin"}
    )
    up.upload(stop_at=1_200_000)
    acked = up.offset
    proc = topo.topo_procs["gw1"]
    topo.kill9(proc)
    # the client goes on through gw2 with the same upload (its URL on the other gateway)
    url = gw2 + up.url.split(gw1, 1)[1]
    head = httpx.head(url, headers={**_basic(topo), "Tus-Resumable": "1.0.0"}, timeout=10)
    assert head.status_code == 200 and int(head.headers["upload-offset"]) == acked  # nothing acknowledged lost
    rest = tus_client.TusClient(f"{gw2}/api/tus/", headers=_basic(topo)).uploader(
        file_path=str(src), url=url, chunk_size=256 * 1024
    )
    rest.upload()
    topo.topo_procs["gw1"] = topo.restart(proc)
    got = httpx.get(f"{gw1}/api/files/content/big.bin", headers=_basic(topo), timeout=30)
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    listing = httpx.get(f"{gw2}/api/files/list", headers=_basic(topo), timeout=10).json()
    names = [e["name"] for e in listing["children"]]
    assert names.count("big.bin") == 1, listing
    print(f"kill -9 gw1 during tus: acked offset {acked} of {len(data)}, resumed through gw2, checksum equal")


def test_every_process_reports_ready(topo):
    for name, proc in topo.topo_procs.items():
        r = httpx.get(f"http://127.0.0.1:{proc.ports['metrics_port']}/readyz", timeout=15)
        assert r.status_code == 200 and r.json()["status"] == "ok", (name, r.text)
    metrics = httpx.get(f"http://127.0.0.1:{port(topo, 'smtp2', 'metrics_port')}/metrics", timeout=15).text
    assert re.search(r'suite_messages_received_total\{via="smtp"\} [1-9]', metrics)
