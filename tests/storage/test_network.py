"""The storage network over three (and a fourth) real S3 providers: one Ceph cluster, one radosgw
process per provider (scripts/ceph-rgw-multi.sh, ports 17481–17483, each its own user and bucket).
A provider outage is a real ``kill -9`` of its radosgw. The RGW on 17480 is shared with the other S3
tests and never killed here."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from suite.config import Settings
from suite.context import open_context
from suite.storage import db
from suite.storage.blobs import BlobStore
from suite.storage.network import NetworkBackend, NetworkUnavailable
from suite.storage.network.repair import Repairer
from suite.testing import async_wait_until, missing, serve_env

ROOT = Path(__file__).resolve().parents[2]
MULTI = ROOT / "scripts" / "ceph-rgw-multi.sh"
MiB = 1024 * 1024
LARGE_DOWNLOAD = 256 * MiB  # the "kill a provider during a large download" blob
PORTS = (17481, 17482, 17483)
CEPH_RUN = Path(os.environ.get("CEPH_DIR") or Path(os.environ.get("TMPDIR", "/tmp")) / "suite-ceph") / "run"


def _rgw(*args: str) -> str:
    proc = subprocess.run(["bash", str(MULTI), *args], capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        pytest.fail(f"ceph-rgw-multi.sh {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc.stdout


@pytest.fixture(scope="module")
def rgw_multi() -> Iterator[dict[int, dict]]:
    if os.geteuid() != 0:
        missing("the storage network tests start radosgw processes; that needs root")
    if shutil.which("radosgw") is None and not MULTI.exists():
        missing("radosgw (Debian ceph) is not installed")
    # These tests kill, stop and revive the radosgw on 17481–17483, which every test run on this
    # machine shares: a second run (another checkout's CI) waits here until this module is done.
    lock = open(f"{os.environ.get('TMPDIR', '/tmp')}/suite-rgw-multi-tests.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield _providers()
    finally:
        lock.close()


def _providers() -> dict[int, dict]:
    out = _rgw("start")
    found = {}
    for line in out.splitlines():
        if line.startswith("provider "):
            _, port, url, ak, sk = line.split()
            found[int(port)] = {"endpoint": url, "access_key": ak.split("=", 1)[1], "secret_key": sk.split("=", 1)[1]}
    assert set(found) == set(PORTS), out
    return found


class Net:
    """A context on the network backend plus the means to break its providers."""

    def __init__(self, rgw: dict[int, dict], tmp: Path, ports=PORTS[:3], db_url: str = "", **storage) -> None:
        self.rgw = rgw
        self.tmp = tmp
        self.db_url = db_url or f"sqlite+aiosqlite:///{tmp / 'suite.db'}"
        self.bucket = f"net-{secrets.token_hex(5)}"
        self.killed: set[int] = set()
        self.zones = storage.pop("zones", {})
        self.storage = {"replicas": 2, "bandwidth_limit": 0, "read_timeout": 5.0, **storage}
        self.ports = list(ports)
        self.ctx = None

    def provider(self, port: int, **kw) -> dict:
        r = self.rgw[port]
        return {
            "name": f"p{port}",
            "endpoint": r["endpoint"],
            "bucket": f"{self.bucket}-{port}",  # one RGW zone: bucket names are global
            "access_key": r["access_key"],
            "secret_key": r["secret_key"],
            "zone": self.zones.get(port, ""),
            **kw,
        }

    def settings(self, ports=None, states: dict[int, str] | None = None) -> Settings:
        import suite.models  # noqa: F401

        states = states or {}
        return Settings(
            data_dir=self.tmp / "data",
            database_url=self.db_url,
            bus_backend="memory",
            blob_backend="network",
            s3_part_size=5 * MiB,
            s3_max_concurrency=2,
            storage={
                **self.storage,
                "providers": [self.provider(p, state=states.get(p, "active")) for p in (ports or self.ports)],
            },
        )

    async def open(self):
        s = self.settings()
        engine = db.make_engine(s.db_url)
        await db.migrate(engine)
        await engine.dispose()
        self.ctx = await open_context(s)
        return self.ctx

    def backend(self, ports=None, states=None) -> NetworkBackend:
        return NetworkBackend.from_settings(self.settings(ports, states))

    @property
    def net(self) -> NetworkBackend:
        return self.ctx.blobs.backend

    def kill(self, port: int) -> None:
        _rgw("kill", str(port))
        self.killed.add(port)

    def revive(self, port: int) -> None:
        _rgw("revive", str(port))
        self.killed.discard(port)

    async def locations(self, digest: str, backend: NetworkBackend | None = None) -> dict[str, str]:
        return await (backend or self.net).locations(digest)

    async def present(self, digest: str, port: int) -> bool:
        b = self.net.providers[f"p{port}"].backend if f"p{port}" in self.net.providers else None
        if b is None:
            b = self.backend(ports=[port]).providers[f"p{port}"].backend
        return await b.size(digest) is not None

    async def close(self) -> None:
        for p in list(self.killed):
            self.revive(p)
        if self.ctx is not None:
            await self.ctx.close()
        for port in PORTS:
            b = self.backend(ports=[port]).providers[f"p{port}"].backend
            try:
                client = await b._client()
                paginator = client.get_paginator("list_objects_v2")
                async for page in paginator.paginate(Bucket=b.bucket):
                    for o in page.get("Contents", ()):
                        await client.delete_object(Bucket=b.bucket, Key=o["Key"])
                await b.clean_tmp(time.time() + 1)
                await client.delete_bucket(Bucket=b.bucket)
            except Exception:
                pass
            await b.close()


@pytest.fixture
async def netw(rgw_multi, tmp_path):
    made: list[Net] = []

    async def make(**kw) -> Net:
        n = Net(rgw_multi, tmp_path / f"n{len(made)}", **kw)
        made.append(n)
        await n.open()
        return n

    yield make
    for n in made:
        await n.close()


@pytest.fixture
async def netw_db(rgw_multi, tmp_path, ctx, db_url):
    """``netw`` on SQLite and on PostgreSQL (the ``ctx`` fixture resets and migrates the database)."""
    made: list[Net] = []

    async def make(**kw) -> Net:
        n = Net(rgw_multi, tmp_path / f"n{len(made)}", db_url=db_url, **kw)
        made.append(n)
        await n.open()
        return n

    yield make
    for n in made:
        await n.close()


def _chunks(size: int, seed: int, piece: int = 4 * MiB):
    rnd = random.Random(seed)
    left = size
    while left:
        n = min(piece, left)
        yield rnd.randbytes(n)
        left -= n


def _sha(size: int, seed: int) -> str:
    h = hashlib.sha256()
    for c in _chunks(size, seed):
        h.update(c)
    return h.hexdigest()


async def _good(n: Net, digest: str, backend=None) -> set[str]:
    return {p for p, st in (await n.locations(digest, backend)).items() if st == "good"}


# ----- writes -----


async def test_small_and_streamed_blobs_get_two_copies_on_distinct_providers(netw_db):
    n = await netw_db()
    store: BlobStore = n.ctx.blobs
    small = await store.put(b"hello network")
    big = await store.put(_chunks(12 * MiB, 1, piece=MiB))
    for ref in (small, big):
        good = await _good(n, ref.digest)
        assert len(good) == 2, good
        for name in good:
            assert await n.present(ref.digest, int(name[1:]))
    # small blobs land on their placement directly
    assert await _good(n, small.digest) == {p.name for p in n.net.placement(small.digest)}
    assert await store.read_bytes(big.digest) == b"".join(_chunks(12 * MiB, 1, piece=MiB))
    assert await store.read_bytes(small.digest, 2, 7) == b"llo n"


async def test_small_writes_put_both_copies_at_once_and_share_one_commit(netw):
    """Concurrent small writes: each blob's two PutObjects are in flight together (and with the
    other writers'), and the location rows of writers that finish together share one transaction."""
    n = await netw()
    net = n.net
    writers = 8
    calls: list[tuple[str, str]] = []
    all_sent, all_stored = asyncio.Event(), asyncio.Event()
    stored = 0
    for p in net.providers.values():

        async def put_known(digest: str, data: bytes, real=p.backend.put_known, name=p.name) -> None:
            nonlocal stored
            calls.append((digest, name))
            if len(calls) == 2 * writers:
                all_sent.set()
            # every copy of every blob is on its way before any is stored: sequential copies
            # (or writers) would never get here and the test fails at the deadline
            await asyncio.wait_for(all_sent.wait(), 60)
            await real(digest, data)
            stored += 1
            if stored == 2 * writers:
                all_stored.set()
            await asyncio.wait_for(all_stored.wait(), 60)  # then they all finish together

        p.backend.put_known = put_known  # type: ignore[method-assign]
    transactions = 0
    raw = net.raw()
    write = raw.write

    def counting(**kw):
        nonlocal transactions
        transactions += 1
        return write(**kw)

    raw.write = counting  # type: ignore[method-assign]
    datas = [f"small blob {i} ".encode() * 100 for i in range(writers)]
    refs = await asyncio.gather(*(n.ctx.blobs.put(d) for d in datas))
    assert len(calls) == 2 * writers
    for ref in refs:
        where = {name for d, name in calls if d == ref.digest}
        assert where == {p.name for p in net.placement(ref.digest)}  # two PutObjects, no more
        assert await _good(n, ref.digest) == where
    assert transactions == 1, transactions  # one commit for the eight writers, not eight


async def test_a_stalled_provider_mid_download_moves_to_the_other_copy(netw):
    """A provider that stops answering (its radosgw SIGSTOPped, the connection open) is left after
    ``read_timeout`` without a byte; the download continues on the other copy at the same byte."""
    n = await netw(read_timeout=1.5)
    store = n.ctx.blobs
    size = 32 * MiB  # more than the loopback socket buffers hold: the rest needs the provider
    ref = await store.put(_chunks(size, 41))
    first = (await n.net.read_order(ref.digest))[0]
    pid = int((CEPH_RUN / f"rgw-{first.name[1:]}.pid").read_text().split()[0])
    h, got, stopped = hashlib.sha256(), 0, False
    try:
        async for piece in store.windows(ref.digest, 0, ref.size):
            h.update(piece)
            got += len(piece)
            if not stopped:
                os.kill(pid, signal.SIGSTOP)
                stopped = True
    finally:
        if stopped:
            os.kill(pid, signal.SIGCONT)
    assert got == size and h.hexdigest() == ref.digest
    assert first.failures >= 1 and first.last_error.startswith("TimeoutError"), first.last_error


async def test_writes_during_an_outage_keep_two_copies_then_refuse_below_replicas(netw):
    n = await netw()
    store = n.ctx.blobs
    n.kill(17482)
    acked = []
    for i in range(6):
        acked.append(await store.put(f"message {i} ".encode() * 100))
    acked.append(await store.put(_chunks(11 * MiB, 2, piece=MiB)))
    for ref in acked:
        assert await _good(n, ref.digest) == {"p17481", "p17483"}
    n.kill(17483)
    with pytest.raises(NetworkUnavailable):
        await store.put(b"only one provider left")
    with pytest.raises(NetworkUnavailable):
        await store.put(_chunks(11 * MiB, 3, piece=MiB))
    # nothing acknowledged is lost: every blob still reads from the one provider left
    for ref in acked[:-1]:
        assert hashlib.sha256(await store.read_bytes(ref.digest)).hexdigest() == ref.digest
    n.revive(17482)
    n.revive(17483)
    async with n.ctx.sessions.begin() as s:
        await BlobStore.ref_many(s, acked)  # referenced: the sweep looks at them
    rep = Repairer(n.net)
    assert await rep.until_settled(time.monotonic() + 120) == 0
    for ref in acked:
        good = await _good(n, ref.digest)
        assert good == {p.name for p in n.net.placement(ref.digest)} and len(good) == 2


async def test_a_provider_killed_during_a_large_download(netw):
    n = await netw()
    store = n.ctx.blobs
    ref = await store.put(_chunks(LARGE_DOWNLOAD, 7))
    async with n.ctx.sessions.begin() as s:
        await BlobStore.ref(s, ref)
    want = _sha(LARGE_DOWNLOAD, 7)
    assert ref.digest == want
    first = (await n.net.read_order(ref.digest))[0]
    h = hashlib.sha256()
    got = 0
    killed = None
    async for piece in store.windows(ref.digest, 0, ref.size):
        h.update(piece)
        got += len(piece)
        if killed is None and got >= 32 * MiB:
            killed = int(first.name[1:])
            n.kill(killed)
    assert got == LARGE_DOWNLOAD and h.hexdigest() == want
    assert killed is not None and first.failures >= 1  # the read really moved to the other copy
    # and a write made while it is down, then repair once it returns
    other = await store.put(b"written during the outage" * 1000)
    async with n.ctx.sessions.begin() as s:
        await BlobStore.ref(s, other)
    n.revive(killed)
    rep = Repairer(n.net)
    assert await rep.until_settled(time.monotonic() + 300) == 0
    for r in (ref, other):
        assert await _good(n, r.digest) == {p.name for p in n.net.placement(r.digest)}


# ----- corruption -----


async def _corrupt(n: Net, digest: str, name: str) -> None:
    b = n.net.providers[name].backend
    client = await b._client()
    await client.put_object(Bucket=b.bucket, Key=f"blobs/{digest}", Body=b"garbage, not the blob")


async def test_a_corrupted_copy_is_caught_by_a_read_and_by_the_scrub_and_repaired(netw_db):
    n = await netw_db()
    store = n.ctx.blobs
    data = os.urandom(300_000)
    ref = await store.put(data)
    async with n.ctx.sessions.begin() as s:
        await BlobStore.ref(s, ref)
    fastest = (await n.net.read_order(ref.digest))[0].name
    await _corrupt(n, ref.digest, fastest)
    assert await store.read_bytes(ref.digest) == data  # the next copy answered
    assert (await n.locations(ref.digest))[fastest] == "bad"
    rep = Repairer(n.net)
    assert await rep.until_settled(time.monotonic() + 60) == 0
    assert (await n.locations(ref.digest))[fastest] == "good"
    assert await rep.verify_copy(ref.digest, n.net.providers[fastest])
    # the scrub finds one nobody read
    other = [p for p in await _good(n, ref.digest) if p != fastest][0]
    await _corrupt(n, ref.digest, other)
    checked, bad = await rep.scrub(100)
    assert bad == 1 and checked >= 1
    assert (await n.locations(ref.digest))[other] == "bad"
    assert await rep.until_settled(time.monotonic() + 60) == 0
    for name in await _good(n, ref.digest):
        assert await rep.verify_copy(ref.digest, n.net.providers[name])


# ----- rebalance, drain, zones -----


async def _read_all_forever(store: BlobStore, refs, stop: asyncio.Event, errors: list, reads: list) -> None:
    while not stop.is_set():
        for ref in refs:
            try:
                data = await store.read_bytes(ref.digest)
                if hashlib.sha256(data).hexdigest() != ref.digest:
                    errors.append(f"{ref.digest}: wrong bytes")
                reads.append(1)
            except Exception as exc:
                errors.append(f"{ref.digest}: {exc!r}")


async def test_adding_a_fourth_provider_then_draining_one_rebalances_without_failed_reads(netw):
    n = await netw()
    store = n.ctx.blobs
    refs = [await store.put(f"blob {i}".encode() * 500) for i in range(40)]
    async with n.ctx.sessions.begin() as s:
        await BlobStore.ref_many(s, refs)
    for phase in ({"ports": list(PORTS)}, {"ports": list(PORTS), "states": {17481: "draining"}}):
        wider = n.backend(**phase)
        stop, errors, reads = asyncio.Event(), [], []
        reader = asyncio.create_task(_read_all_forever(BlobStore(wider), refs, stop, errors, reads))
        try:
            assert await Repairer(wider).until_settled(time.monotonic() + 120) == 0
        finally:
            stop.set()
            await reader
        assert errors == [] and reads
        for ref in refs:
            assert await _good(n, ref.digest, wider) == {p.name for p in wider.placement(ref.digest)}
        await wider.close()
    holders = [await _good(n, r.digest) for r in refs]
    assert any("p17483" in h for h in holders)
    assert not any("p17481" in h for h in holders)  # drained


async def test_exclude_zones_is_honoured_by_writes_and_repair(netw_db):
    n = await netw_db(ports=PORTS, zones={17481: "us", 17482: "de", 17483: "fr"}, exclude_zones=["us"])
    store = n.ctx.blobs
    refs = [await store.put(f"z {i}".encode() * 100) for i in range(20)]
    refs.append(await store.put(_chunks(11 * MiB, 5, piece=MiB)))
    for ref in refs:
        assert await _good(n, ref.digest) == {"p17482", "p17483"}
        assert not await n.present(ref.digest, 17481)


# ----- real clients: SMTP (smtplib), tus (tuspy), WebDAV (httpx), downloads -----

DOMAIN = "example.test"
PW = "correct horse battery"


async def _services(n: Net):
    from suite.gateway.service import GatewayService
    from suite.mail.smtp.service import SmtpService
    from suite.tls import make_self_signed

    ctx = n.ctx
    s = ctx.settings
    s.http_port = s.smtp_port = s.submission_port = s.submissions_port = 0
    s.smtp_inbound_auth = False  # no DNS here: this test is about where the bytes go
    make_self_signed(s.cert_path, s.key_path, "mx.example.test")
    await ctx.accounts.add_domain(DOMAIN)
    await ctx.accounts.add_account(f"alice@{DOMAIN}", PW, quota_bytes=2 * 1024**3)
    bob = await ctx.accounts.add_account(f"bob@{DOMAIN}", PW)
    _, dav = await ctx.accounts.add_app_password(f"alice@{DOMAIN}", "files", ["dav"])
    gw, smtp = GatewayService(ctx), SmtpService(ctx)
    await gw.start()
    await smtp.start()
    s.public_url = f"http://127.0.0.1:{gw.port}"
    return gw, smtp, dav, bob.id


def _smtp_send(port: int, i: int) -> None:
    import smtplib

    body = (f"From: carol@sender.test\r\nTo: bob@{DOMAIN}\r\nSubject: network {i}\r\n\r\n").encode()
    body += b"line of mail\r\n" * (2000 + i)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        assert c.sendmail("carol@sender.test", [f"bob@{DOMAIN}"], body) == {}


def _tus_upload(url: str, secret: str, path: Path, name: str) -> None:
    import base64

    from tusclient import client as tus_client

    basic = base64.b64encode(f"alice@{DOMAIN}:{secret}".encode()).decode()
    c = tus_client.TusClient(f"{url}/api/tus/", headers={"Authorization": f"Basic {basic}"})
    c.uploader(str(path), chunk_size=4 * MiB, metadata={"filename": name, "folder": "/up"}).upload()


async def _all_referenced_have_two_copies(n: Net) -> list[str]:
    async with n.ctx.sessions() as s:
        c = await db.conn(s)
        digests = [r[0] for r in await c.all("SELECT digest FROM blobs WHERE refcount > 0")]
    for d in digests:
        good = await _good(n, d)
        assert len(good) == 2, (d, good)
    return digests


async def test_mail_tus_and_webdav_keep_two_copies_through_an_outage(netw, tmp_path):
    import httpx

    n = await netw()
    gw, smtp, dav, bob_id = await _services(n)
    url = f"http://127.0.0.1:{gw.port}"
    files = {}
    try:
        async with httpx.AsyncClient(base_url=url, auth=(f"alice@{DOMAIN}", dav), timeout=60) as c:

            async def round_(tag: str) -> None:
                for i in range(3):
                    await asyncio.to_thread(_smtp_send, smtp.port("smtp"), i)
                big = tmp_path / f"tus-{tag}.bin"
                big.write_bytes(os.urandom(13 * MiB))
                await asyncio.to_thread(_tus_upload, url, dav, big, f"tus-{tag}.bin")
                files[f"up/tus-{tag}.bin"] = big.read_bytes()
                data = os.urandom(7 * MiB)
                assert (await c.put(f"/dav/dav-{tag}.bin", content=data)).status_code == 201
                files[f"dav-{tag}.bin"] = data
                small = f"small {tag}".encode() * 50
                assert (await c.put(f"/dav/small-{tag}.txt", content=small)).status_code == 201
                files[f"small-{tag}.txt"] = small

            await round_("before")
            before = await _all_referenced_have_two_copies(n)
            n.kill(17482)  # a provider dies; every acknowledged write still gets two copies
            await round_("during")
            after = await _all_referenced_have_two_copies(n)
            assert len(after) > len(before)
            for d in set(after) - set(before):
                assert "p17482" not in await _good(n, d)
            for path, data in files.items():
                r = await c.get(f"/api/files/content/{path}")
                assert r.status_code == 200 and r.content == data, path
        from suite.mail.store.store import MailStore

        store = MailStore(n.ctx)
        mb = await store.require_mailbox(bob_id, "INBOX")
        assert len(await store.messages(mb.id)) == 6
        n.revive(17482)
        assert await Repairer(n.net).until_settled(time.monotonic() + 180) == 0
        for d in after:
            assert await _good(n, d) == {p.name for p in n.net.placement(d)}
    finally:
        await smtp.stop()
        await gw.stop()


async def test_redirect_downloads_hands_out_a_presigned_provider_url(netw):
    import httpx

    n = await netw(redirect_downloads=True)
    gw, smtp, dav, _ = await _services(n)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gw.port}", auth=(f"alice@{DOMAIN}", dav), timeout=60
        ) as c:
            data = os.urandom(200_000)
            assert (await c.put("/dav/r.bin", content=data)).status_code == 201
            r = await c.get("/api/files/content/r.bin")
            assert r.status_code == 307
            loc = r.headers["location"]
            assert loc.startswith(tuple(n.rgw[p]["endpoint"] for p in PORTS)) and "X-Amz-Signature" in loc
            async with httpx.AsyncClient(timeout=30) as plain:  # no credentials: the URL is the grant
                got = await plain.get(loc)
            assert got.status_code == 200 and got.content == data
            assert 'filename="r.bin"' in got.headers.get("content-disposition", "")
            # ranges are still served by us
            r = await c.get("/api/files/content/r.bin", headers={"Range": "bytes=0-9"})
            assert r.status_code == 206 and r.content == data[:10]
    finally:
        await smtp.stop()
        await gw.stop()


# ----- operations: migrate a disk install, the CLI, several repair processes -----


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "suite.cli", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _toml(n: Net, ports) -> str:
    out = ["[storage]\nreplicas = 2\nbandwidth_limit = 0\n"]
    for p in ports:
        out.append("[[storage.providers]]")
        for k, v in n.provider(p).items():
            out.append(f'{k} = "{v}"')
        out.append("")
    return "\n".join(out)


async def test_migrate_a_disk_install_then_operate_it_with_the_cli(rgw_multi, tmp_path):
    n = Net(rgw_multi, tmp_path)
    cfg = tmp_path / "suite.toml"
    cfg.write_text(_toml(n, PORTS[:2]))
    env = serve_env()
    env.update(
        SUITE_CONFIG=str(cfg),
        SUITE_DATA_DIR=str(tmp_path / "data"),
        SUITE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'suite.db'}",
        SUITE_BUS_BACKEND="memory",
    )
    try:
        # a disk install with referenced blobs
        disk = n.settings().model_copy(update={"blob_backend": "disk"})
        engine = db.make_engine(disk.db_url)
        await db.migrate(engine)
        await engine.dispose()
        ctx = await open_context(disk)
        refs = [await ctx.blobs.put(os.urandom(1000 + i)) for i in range(12)]
        refs.append(await ctx.blobs.put(_chunks(9 * MiB, 11, piece=MiB)))
        async with ctx.sessions.begin() as s:
            await BlobStore.ref_many(s, refs)
        await ctx.close()

        r = _cli({**env, "SUITE_BLOB_BACKEND": "disk"}, "storage", "migrate", "--from", "disk")
        assert r.returncode == 0, r.stderr
        assert f"copied {len(refs)} blobs" in r.stdout
        env["SUITE_BLOB_BACKEND"] = "network"
        r = _cli(env, "storage", "migrate", "--from", "disk")  # again after the switch: nothing left
        assert r.returncode == 0 and f"copied 0 blobs into the network, {len(refs)} already there" in r.stdout
        r = _cli(env, "storage", "status")
        assert r.returncode == 0, r.stderr
        lines = {ln.split()[0]: ln.split() for ln in r.stdout.splitlines()[1:-1]}
        assert set(lines) == {"p17481", "p17482"} and all(cols[4] == "ok" for cols in lines.values()), r.stdout
        assert sum(int(cols[6]) for cols in lines.values()) == 2 * len(refs)
        assert "under-replicated 0; repair queue 0" in r.stdout
        net_ctx = await open_context(n.settings(ports=PORTS[:2]))
        try:
            for ref in refs:
                assert hashlib.sha256(await net_ctx.blobs.read_bytes(ref.digest)).hexdigest() == ref.digest
        finally:
            await net_ctx.close()

        # a third provider, then drain the first; remove refuses while it holds copies
        third = n.provider(17483)
        r = _cli(env, "storage", "provider", "add", "p17483", "--endpoint", third["endpoint"], "--bucket",
                 third["bucket"], "--access-key", third["access_key"], "--secret-key", third["secret_key"])  # fmt: skip
        assert r.returncode == 0, r.stderr
        r = _cli(env, "storage", "provider", "drain", "p17481")
        assert r.returncode == 0, r.stderr
        r = _cli(env, "storage", "provider", "remove", "p17481")
        assert r.returncode == 1 and "drain it first" in r.stderr and r.stderr.count("\n") == 1
        from suite.config import Settings

        os.environ["SUITE_CONFIG"] = str(cfg)
        try:
            conf = Settings(data_dir=tmp_path / "data", database_url=env["SUITE_DATABASE_URL"])
        finally:
            del os.environ["SUITE_CONFIG"]
        states = {p.name: p.state for p in conf.storage.providers}
        assert states == {"p17481": "draining", "p17482": "active", "p17483": "active"}
        net = NetworkBackend.from_settings(conf)
        try:
            assert await Repairer(net).until_settled(time.monotonic() + 120) == 0
        finally:
            await net.close()
        r = _cli(env, "storage", "verify", "--sample", "100")
        assert r.returncode == 0 and f"checked {2 * len(refs)} copies, 0 bad" in r.stdout, r.stdout + r.stderr
        r = _cli(env, "storage", "provider", "remove", "p17481")
        assert r.returncode == 0, r.stderr
        r = _cli(env, "storage", "status")
        assert "p17481" not in r.stdout and "under-replicated 0" in r.stdout
    finally:
        await n.close()


async def test_two_repair_processes_never_copy_the_same_blob_twice(netw_db):
    n = await netw_db(ports=PORTS[:2])
    refs = [await n.ctx.blobs.put(f"two workers {i}".encode() * 300) for i in range(30)]
    async with n.ctx.sessions.begin() as s:
        await BlobStore.ref_many(s, refs)
    # a third provider joins: every blob whose placement now names it must be moved, once
    a, b = n.backend(ports=list(PORTS)), n.backend(ports=list(PORTS))
    ra, rb = Repairer(a), Repairer(b)
    await ra.sweep()
    queued = await ra.queued()
    assert queued > 0
    copies: list[str] = []
    for net in (a, b):
        real = net.copy

        async def counting(digest, src, dst, throttle=None, _real=real):
            copies.append(digest)
            return await _real(digest, src, dst, throttle)

        net.copy = counting  # type: ignore[method-assign]
    fixed = await asyncio.gather(ra.run_due(), rb.run_due())
    assert sum(fixed) == queued and len(copies) == len(set(copies)) == queued
    for ref in refs:
        assert await _good(n, ref.digest, a) == {p.name for p in a.placement(ref.digest)}
    await a.close()
    await b.close()


def _imap_append(port: int) -> tuple[str, list]:
    import imaplib

    m = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        m.login(f"bob@{DOMAIN}", PW)
        msg = f"From: bob@{DOMAIN}\r\nSubject: refused\r\n\r\n".encode() + b"body line\r\n" * 5000
        return m.append("INBOX", None, None, msg)
    finally:
        m.logout()


async def test_below_replicas_http_answers_503_smtp_451_imap_no_unavailable(netw):
    import smtplib

    import httpx

    from suite.mail.imap.server import ImapService

    n = await netw()
    gw, smtp, dav, bob_id = await _services(n)
    n.ctx.settings.imap_port = n.ctx.settings.imaps_port = 0
    n.ctx.settings.allow_plaintext_loopback = True
    imap = ImapService(n.ctx, auth_delay=0.01)
    await imap.start()
    try:
        n.kill(17481)
        n.kill(17482)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gw.port}", auth=(f"alice@{DOMAIN}", dav), timeout=60
        ) as c:
            r = await c.put("/api/files/content/refused.bin", content=os.urandom(100_000))
            assert r.status_code == 503 and r.json()["error"] == "unavailable" and "retry-after" in r.headers
            assert (await c.get("/api/files/content/refused.bin")).status_code == 404
        with pytest.raises(smtplib.SMTPDataError) as e:
            await asyncio.to_thread(_smtp_send, smtp.port("smtp"), 99)
        assert e.value.smtp_code == 451
        typ, data = await asyncio.to_thread(_imap_append, imap.port)
        assert typ == "NO" and data[0].startswith(b"[UNAVAILABLE]"), (typ, data)  # RFC 5530 §3
        from suite.mail.store.store import MailStore

        store = MailStore(n.ctx)
        await store.ensure_defaults(bob_id)
        assert await store.messages((await store.require_mailbox(bob_id, "INBOX")).id) == []
    finally:
        await imap.stop()
        await smtp.stop()
        await gw.stop()


async def test_the_storage_service_repairs_by_itself_and_a_large_corrupt_copy_fails_its_read(netw):
    from suite.storage.network import CorruptCopy
    from suite.storage.network.service import StorageService

    n = await netw(repair_interval=0.5)
    store = n.ctx.blobs
    ref = await store.put(_chunks(6 * MiB, 21, piece=MiB))  # above the verify-before-sending size
    async with n.ctx.sessions.begin() as s:
        await BlobStore.ref(s, ref)
    holders = sorted(await _good(n, ref.digest))
    for name in holders:
        n.net.providers[name].ewma = 0.0 if name == holders[0] else 1.0  # read holders[0] first
    b = n.net.providers[holders[0]].backend
    await (await b._client()).put_object(Bucket=b.bucket, Key=f"blobs/{ref.digest}", Body=os.urandom(6 * MiB))
    got = 0
    with pytest.raises(CorruptCopy):
        async for piece in store.windows(ref.digest, 0, ref.size):
            got += len(piece)
    assert got < ref.size  # the last piece waited for the digest check: the download fails short
    assert (await n.locations(ref.digest))[holders[0]] == "bad"
    assert await store.read_bytes(ref.digest) == b"".join(_chunks(6 * MiB, 21, piece=MiB))  # the good copy
    svc = StorageService(n.ctx)
    await svc.start()
    try:

        async def repaired():
            good = await _good(n, ref.digest)
            return good == {p.name for p in n.net.placement(ref.digest)} and await Repairer(n.net).queued() == 0

        await async_wait_until(repaired, 90, what="the storage service to repair the copy")
        assert svc.health()["fixed"] >= 1
    finally:
        await svc.stop()
    rep = Repairer(n.net)
    for name in await _good(n, ref.digest):
        assert await rep.verify_copy(ref.digest, n.net.providers[name])


async def test_a_provider_killed_mid_upload_is_replaced_and_gc_removes_every_copy(netw):
    n = await netw()
    store = n.ctx.blobs
    w = await store.writer()
    pieces = list(_chunks(30 * MiB, 31, piece=MiB))
    for p in pieces[:12]:
        await w.write(p)
    victim = w._live[0][0].name  # a provider receiving the stream right now
    n.kill(int(victim[1:]))
    for p in pieces[12:]:
        await w.write(p)
    ref = await w.commit()  # acknowledged: two copies, the dead provider's replaced
    good = await _good(n, ref.digest)
    assert len(good) == 2 and victim not in good
    assert await store.read_bytes(ref.digest) == b"".join(pieces)
    n.revive(int(victim[1:]))
    # deletion: refcount 0 after the grace period removes the copy on every provider
    async with n.ctx.sessions.begin() as s:
        await BlobStore.ref(s, ref)
    async with n.ctx.sessions.begin() as s:
        await BlobStore.unref(s, ref.digest)
    assert await store.gc(grace=-5) >= 1
    assert await n.locations(ref.digest) == {}
    for port in PORTS[:3]:
        assert not await n.present(ref.digest, port)


# ----- a running ``suite serve``: provider changes applied live, the storage metrics -----
def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    r = httpx.get(url, timeout=30)
    assert r.status_code == 200, r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(r.text)
        for s in fam.samples
    }


def _metric(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


class _Traffic:
    """Uploads and downloads over HTTP in a thread while the providers change; every answer that
    is not a success (or a download whose bytes differ) is a failure."""

    def __init__(self, base: str, auth: tuple[str, str]) -> None:
        import threading

        import httpx

        self.c = httpx.Client(base_url=base, auth=auth, timeout=60)
        self.files: dict[str, bytes] = {}
        self.failures: list[str] = []
        self.requests = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def put(self, i: int) -> None:
        name = f"/api/files/content/live-{i}.bin"
        data = random.Random(i).randbytes(20_000 + 997 * i)
        r = self.c.put(name, content=data)
        self.requests += 1
        if r.status_code not in (200, 201, 204):
            self.failures.append(f"PUT {name}: {r.status_code} {r.text[:200]}")
        else:
            self.files[name] = data

    def _run(self) -> None:
        i = 1000
        while not self.stop.is_set():
            i += 1
            self.put(i)
            for name, data in list(self.files.items())[-15:]:
                r = self.c.get(name)
                self.requests += 1
                if r.status_code != 200 or r.content != data:
                    self.failures.append(f"GET {name}: {r.status_code}")

    def __enter__(self) -> _Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(60)
        self.c.close()


def _referenced(db_path: Path) -> dict[str, set[str]]:
    """digest → providers holding a good copy, for every referenced blob (read with sqlite3)."""
    import sqlite3

    with sqlite3.connect(db_path) as c:
        out: dict[str, set[str]] = {d: set() for (d,) in c.execute("SELECT digest FROM blobs WHERE refcount > 0")}
        for d, p in c.execute("SELECT digest, provider FROM blob_locations WHERE state = 'good'"):
            if d in out:
                out[d].add(p)
    return out


def test_suite_serve_applies_provider_changes_live_and_exports_storage_metrics(rgw_multi, tmp_path):
    import sys

    from suite.testing import wait_until

    sys.path.insert(0, str(ROOT / "tests" / "ops"))
    from cluster import Cluster

    n = Net(rgw_multi, tmp_path / "net")
    cfg = tmp_path / "suite.toml"
    cfg.write_text(_toml(n, PORTS[:2]).replace("bandwidth_limit = 0\n", "bandwidth_limit = 0\nrepair_interval = 1\n"))
    cluster = Cluster.make(tmp_path / "c", CONFIG=str(cfg), BLOB_BACKEND="network")
    try:
        cluster.bootstrap()
        dav = cluster.app_password("alice@example.test", "dav")
        proc = cluster.serve("net", None)
        base = f"http://127.0.0.1:{proc.ports['http_port']}"
        metrics = f"{base}/metrics"
        dbfile = tmp_path / "c" / "data" / "suite.db"
        with _Traffic(base, ("alice@example.test", dav)) as traffic:
            for i in range(12):
                traffic.put(i)
            assert traffic.failures == [], traffic.failures
            m = _scrape(metrics)
            for name in ("p17481", "p17482"):
                assert _metric(m, "suite_storage_provider_up", provider=name) == 1
                assert _metric(m, "suite_storage_provider_state", provider=name, suite_storage_provider_state="active")
                assert (_metric(m, "suite_storage_provider_write_latency_seconds", provider=name) or 0) > 0
            before = _referenced(dbfile)
            assert len(before) >= 12 and all(len(p) == 2 for p in before.values())
            objects = sum(_metric(m, "suite_storage_provider_objects", provider=p) or 0 for p in ("p17481", "p17482"))
            assert objects >= 2 * 12 and _metric(m, "suite_storage_under_replicated_blobs") == 0

            # a third provider, added with the CLI while serve runs: no restart
            third = n.provider(17483)
            cluster.cli("storage", "provider", "add", "p17483", "--endpoint", third["endpoint"], "--bucket",
                        third["bucket"], "--access-key", third["access_key"], "--secret-key", third["secret_key"])  # fmt: skip
            wait_until(
                lambda: _metric(_scrape(metrics), "suite_storage_provider_up", provider="p17483") == 1,
                30,
                0.5,
                what="the running process to take the new provider",
            )

            def moved() -> bool:  # rebalance: blobs written before the add now have copies on it
                now = _referenced(dbfile)
                return any("p17483" in now[d] for d in before) and all(len(p) >= 2 for p in now.values())

            wait_until(moved, 90, 0.5, what="rebalance to move copies onto the new provider")
            added = len(traffic.files)
            wait_until(lambda: len(traffic.files) >= added + 10, 60, 0.2, what="writes after the add")
            assert any("p17483" in p for d, p in _referenced(dbfile).items() if d not in before)

            # drain the first: everything moves off it while the traffic goes on
            cluster.cli("storage", "provider", "drain", "p17481")

            def drained() -> bool:
                m = _scrape(metrics)
                return (
                    _metric(
                        m, "suite_storage_provider_state", provider="p17481", suite_storage_provider_state="draining"
                    )
                    == 1
                    and _metric(m, "suite_storage_provider_objects", provider="p17481") == 0
                )

            wait_until(drained, 120, 0.5, what="p17481 to empty")
        assert traffic.failures == [] and traffic.requests > 50, traffic.failures[:5]
        final = _referenced(dbfile)
        assert all(p == {"p17482", "p17483"} for p in final.values()), final
        m = _scrape(metrics)
        assert (_metric(m, "suite_storage_work_total", what="repair", outcome="ok") or 0) >= len(before)
        assert _metric(m, "suite_storage_under_replicated_blobs") == 0
    finally:
        assert not cluster.stop_all()
        asyncio.run(n.close())


# ----- migration into the network with writes going on: every read succeeds at every moment -----
async def test_migration_has_no_gap_reads_fall_back_to_the_old_backend_until_it_is_final(rgw_multi, tmp_path):
    from suite.storage.network import ops

    n = Net(rgw_multi, tmp_path, ports=PORTS[:2])
    disk = n.settings().model_copy(update={"blob_backend": "disk"})
    moving = n.settings()
    moving = moving.model_copy(update={"storage": moving.storage.model_copy(update={"migrate_from": "disk"})})
    engine = db.make_engine(disk.db_url)
    await db.migrate(engine)
    await engine.dispose()
    old = await open_context(disk)  # the install before the switch: blobs on disk
    new = None
    acked: list = []
    errors: list[str] = []
    read_ok: set[str] = set()  # digests read back whole at least once

    async def write(ctx, i: int) -> None:
        ref = await ctx.blobs.put(f"blob {i} ".encode() * (50 + i))
        async with ctx.sessions.begin() as s:
            await BlobStore.ref(s, ref)
        acked.append(ref)  # acknowledged: from now on it must be readable

    async def read_forever(stop: asyncio.Event) -> None:
        while not stop.is_set():
            for ref in list(acked):
                try:
                    data = await new.blobs.read_bytes(ref.digest)
                    ok = hashlib.sha256(data).hexdigest() == ref.digest
                except Exception as exc:
                    ok, data = False, repr(exc).encode()
                if ok:
                    read_ok.add(ref.digest)
                else:
                    errors.append(f"{ref.digest}: {data[:100]!r}")
            await asyncio.sleep(0)

    stop = asyncio.Event()
    reader = None
    try:
        for i in range(10):
            await write(old, i)
        first = NetworkBackend.from_settings(moving)  # `suite storage migrate --from disk`, first pass
        try:
            copied, skipped, left = await ops.migrate(first)
        finally:
            await first.close()
        assert (copied, skipped, left) == (10, 0, 0)
        # the switch: a process on the network (reads fall back to disk) while the old one still writes
        new = await open_context(moving)
        reader = asyncio.get_running_loop().create_task(read_forever(stop))
        for i in range(10, 20):  # written to disk after the first pass: the old gap
            await write(old, i)
        await old.close()
        old = None
        for i in range(20, 30):  # written by the switched process: into the network
            await write(new, i)
        # the repair loop copies what is only on disk; the final pass finds nothing left
        assert await Repairer(new.network).until_settled(time.monotonic() + 60) == 0
        final = NetworkBackend.from_settings(moving)
        try:
            assert await ops.migrate(final) == (0, 30, 0)
        finally:
            await final.close()
        # the reader went round while all this happened; let it read every acknowledged blob at least once
        # (a loaded machine may have starved it) before it stops
        await async_wait_until(lambda: len(read_ok) == len(acked) or errors, 60, what="every blob read once")
        stop.set()
        await reader
        assert errors == [] and len(read_ok) == len(acked) == 30, errors[:5]
        for ref in acked:
            assert len(await _good(n, ref.digest, new.network)) == 2
        # migration final: without the old backend every blob still reads
        after = await open_context(n.settings())
        try:
            for ref in acked:
                assert hashlib.sha256(await after.blobs.read_bytes(ref.digest)).hexdigest() == ref.digest
        finally:
            await after.close()
    finally:
        stop.set()
        if reader is not None and not reader.done():
            reader.cancel()
        for c in (old, new):
            if c is not None:
                await c.close()
        await n.close()
