"""Fixtures for JMAP: the gateway on a free port (real HTTP), two accounts, httpx clients with
HTTP Basic, and an IMAP server on the same store for the cross-protocol tests."""

from __future__ import annotations

import httpx
import pytest

from suite.gateway.service import GatewayService
from suite.mail.imap.server import ImapService
from suite.mail.store import MailStore

PW = "correct horse battery"
CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
SUB = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"
USING = [CORE, MAIL, SUB, VACATION]


class Jmap:
    """A tiny JMAP client over httpx: the session, then ``call`` for method calls."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.session: dict = {}
        self.account_id = ""

    async def start(self) -> Jmap:
        r = await self.http.get("/.well-known/jmap")
        assert r.status_code == 200, r.text
        self.session = r.json()
        self.account_id = self.session["primaryAccounts"][MAIL]
        return self

    async def request(self, calls: list, using=USING, **extra) -> dict:
        r = await self.http.post("/jmap/api", json={"using": using, "methodCalls": calls, **extra})
        assert r.status_code == 200, r.text
        return r.json()

    async def call(self, name: str, args: dict | None = None, **kw) -> tuple[str, dict]:
        args = {"accountId": self.account_id, **(args or {})}
        out = await self.request([[name, args, "c0"]], **kw)
        resp = out["methodResponses"][0]
        return resp[0], resp[1]

    async def ok(self, name: str, args: dict | None = None) -> dict:
        rname, body = await self.call(name, args)
        assert rname == name, body
        return body

    async def mailbox(self, role: str) -> str:
        body = await self.ok("Mailbox/get", {"ids": None})
        return next(m["id"] for m in body["list"] if m["role"] == role)


@pytest.fixture
async def accounts(ctx):
    await ctx.accounts.add_domain("example.test")
    alice = await ctx.accounts.add_account("alice@example.test", PW, display_name="Alice", quota_bytes=50_000_000)
    bob = await ctx.accounts.add_account("bob@example.test", PW, display_name="Bob", quota_bytes=50_000_000)
    return alice, bob


@pytest.fixture
def store(ctx):
    return MailStore(ctx)


@pytest.fixture
async def gateway(ctx, accounts):
    ctx.settings.http_port = 0
    svc = GatewayService(ctx)
    await svc.start()
    yield svc
    await svc.stop()


@pytest.fixture
def base_url(gateway) -> str:
    return f"http://127.0.0.1:{gateway.port}"


@pytest.fixture
async def imap_port(ctx, accounts):
    """An IMAP server on an ephemeral port over the same store (cross-protocol tests)."""
    ctx.settings.imap_port = 0
    ctx.settings.imaps_port = 0
    ctx.settings.allow_plaintext_loopback = True
    svc = ImapService(ctx, auth_delay=0.01)
    await svc.start()
    yield svc.port
    await svc.stop()


@pytest.fixture
async def jmap(base_url):
    async with httpx.AsyncClient(base_url=base_url, auth=("alice@example.test", PW), timeout=30) as http:
        yield await Jmap(http).start()


@pytest.fixture
async def bob_jmap(base_url):
    async with httpx.AsyncClient(base_url=base_url, auth=("bob@example.test", PW), timeout=30) as http:
        yield await Jmap(http).start()


def message(
    subject: str = "Hello",
    *,
    msgid: str = "m1@example.test",
    refs: str = "",
    frm: str = "carol@example.net",
    to: str = "alice@example.test",
    body: str = "Hi there, this is the body.\r\n",
    extra: str = "",
) -> bytes:
    head = (
        f"From: Carol <{frm}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Thu, 03 Dec 2026 10:00:00 +0100\r\n"
        f"Message-ID: <{msgid}>\r\n"
    )
    if refs:
        head += f"In-Reply-To: {refs.split()[-1]}\r\nReferences: {refs}\r\n"
    return (head + extra + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()
