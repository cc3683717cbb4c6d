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
