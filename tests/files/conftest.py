"""A real GatewayService on port 0 with two accounts and a dav app password each."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from suite.gateway.service import GatewayService

PW = "correct horse battery"


@dataclass
class Server:
    url: str
    ctx: object
    app: object
    alice: str  # app password (scope dav)
    bob: str
    alice_id: int
    bob_id: int

    @property
    def files(self):
        return self.app.state.files

    def client(self, who: str = "alice", **kw) -> httpx.AsyncClient:
        secret = self.alice if who == "alice" else self.bob
        return httpx.AsyncClient(base_url=self.url, auth=(f"{who}@example.test", secret), timeout=30, **kw)


@pytest.fixture
async def server(ctx):
    ctx.settings.http_port = 0
    await ctx.accounts.add_domain("example.test")
    a = await ctx.accounts.add_account("alice@example.test", PW, quota_bytes=10 * 1024**2)
    b = await ctx.accounts.add_account("bob@example.test", PW)
    _, sa = await ctx.accounts.add_app_password("alice@example.test", "files", ["dav"])
    _, sb = await ctx.accounts.add_app_password("bob@example.test", "files", ["dav"])
    svc = GatewayService(ctx)
    await svc.start()
    ctx.settings.public_url = f"http://127.0.0.1:{svc.port}"
    yield Server(f"http://127.0.0.1:{svc.port}", ctx, svc.app, sa, sb, a.id, b.id)
    await svc.stop()


# The whole files suite runs on three stores: SQLite + disk, PostgreSQL + disk, and SQLite + S3
# (a real Ceph RGW, see the `s3_server` fixture) — the blob backend is the files service's other half.
COMBOS = ["sqlite-disk", "postgres-disk", "sqlite-s3"]


@pytest.fixture(params=COMBOS)
def db_url(request, tmp_path) -> str:
    if request.param.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'suite.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def settings(request, tmp_path, db_url):
    import secrets

    import suite.models  # noqa: F401
    from suite.config import Settings

    kw = {}
    if request.node.callspec.params["db_url"].endswith("-s3"):
        s3 = request.getfixturevalue("s3_server")
        kw = dict(
            blob_backend="s3",
            s3_endpoint=s3["endpoint"],
            s3_bucket=f"suite-files-{secrets.token_hex(6)}",
            s3_access_key=s3["access_key"],
            s3_secret_key=s3["secret_key"],
            s3_part_size=5 * 1024 * 1024,
            s3_max_concurrency=1,
        )
    return Settings(data_dir=tmp_path / "data", database_url=db_url, bus_backend="memory", **kw)
