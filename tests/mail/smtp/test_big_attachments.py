"""Issue 14 §3 for SMTP submission: when the account turned it on, every attachment over
``big_attachment_bytes`` is kept in the sender's Files ("Mail attachments") and the message carries
an expiring share link instead, before it is queued or stored; DKIM signs the rewritten message.
Real clients: smtplib submits, imaplib reads the recipient's copy, httpx downloads the link logged
out, aiosmtpd is the remote MX."""

from __future__ import annotations

import asyncio
import email
import hashlib
import imaplib
import os
import re
import smtplib
import subprocess
import sys
from email import policy
from email.message import EmailMessage

import dkim as dkimpy
import httpx
import pytest

sys.path.insert(0, str(os.path.dirname(__file__)))
from smtp_service_helpers import (  # noqa: F401  (fixtures)
    ALICE,
    BOB,
    PASSWORD,
    REMOTE_DOMAIN,
    RemoteHandler,
    client_context,
    provision,
    remote_mx,
    remote_port,
    settings,
    tls_files,
)
from test_service_outbound import _publish_dkim, _stub_dnsfunc

from suite.files.service import Files
from suite.testing import async_wait_until, serve_env
from suite.wiring import ports

CAROL = f"carol@{REMOTE_DOMAIN}"
MiB = 1024 * 1024
BIG = 30 * MiB


@pytest.fixture
async def stack(ctx):
    from suite.gateway.service import GatewayService
    from suite.mail.imap.server import ImapService
    from suite.mail.smtp.service import SmtpService

    s = ctx.settings
    # the defaults: messages up to 25 MiB, submissions up to 100 MiB from an account with links on
    assert s.smtp_max_message_size == 25 * MiB and s.smtp_max_submission_size == 100 * MiB
    s.http_port = s.imap_port = s.imaps_port = 0
    s.smtp_inbound_auth = False
    await provision(ctx)
    gw, imap = GatewayService(ctx), ImapService(ctx)
    smtp = SmtpService(ctx, **ports("smtp", ctx))  # wired as `suite serve` wires it
    await gw.start()
    s.public_url = f"http://127.0.0.1:{gw.port}"
    await imap.start()
    await smtp.start()
    try:
        yield gw, imap, smtp
    finally:
        await smtp.stop()
        await imap.stop()
        await gw.stop()


def _message(data: bytes) -> EmailMessage:
    m = EmailMessage()
    m["From"] = f"Alice <{ALICE}>"
    m["To"] = f"{BOB}, {CAROL}"
    m["Subject"] = "the holiday video"
    m.set_content("Here it is.\n")
    m.add_attachment(data, maintype="application", subtype="octet-stream", filename="video.raw")
    m.add_attachment("a small note\n", filename="small.txt")
    return m


def _submit(port: int, ca, msg: EmailMessage) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as c:
        c.starttls(context=client_context(ca))
        c.login(ALICE, PASSWORD)
        return c.send_message(msg)


def _imap_fetch(port: int, ca) -> bytes:
    c = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        c.starttls(ssl_context=client_context(ca))
        c.login(BOB, PASSWORD)
        c.select("INBOX")
        typ, data = c.fetch("1", "(RFC822)")
        assert typ == "OK"
        return data[0][1]
    finally:
        c.logout()


def _attachments(raw: bytes) -> dict[str, bytes]:
    msg = email.message_from_bytes(raw, policy=policy.default)
    return {p.get_filename(): p.get_content() for p in msg.iter_attachments()}  # type: ignore[attr-defined]


@pytest.mark.parametrize("on", [True, False], ids=["links-on", "links-off"])
async def test_submission_big_attachment_becomes_a_link(stack, ctx, ca, dns_stub, remote_port, on):  # noqa: F811
    _, imap, smtp = stack
    await _publish_dkim(ctx, dns_stub)
    if on:  # Alice turns it on in her settings (a web session with its CSRF token)
        gw = stack[0]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=20) as web:
            r = await web.post("/api/login", json={"address": ALICE, "password": PASSWORD})
            csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
            assert (await web.get("/api/settings/mail")).json()["big_attachment_links"] is False
            r = await web.post("/api/settings/mail", json={"big_attachment_links": True})
            assert r.status_code == 403  # no CSRF token
            r = await web.post("/api/settings/mail", json={"big_attachment_links": "yes"}, headers=csrf)
            assert r.status_code == 400
            r = await web.post("/api/settings/mail", json={"big_attachment_links": True}, headers=csrf)
            assert r.status_code == 200 and r.json()["big_attachment_links"] is True
            assert r.json()["big_attachment_bytes"] == 10 * MiB
    data = os.urandom(BIG)
    digest = hashlib.sha256(data).hexdigest()
    handler = RemoteHandler()
    if not on:  # 41 MB of base64 is over the 25 MiB message limit: refused at MAIL SIZE= (RFC 1870 §6.1)
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            await asyncio.to_thread(_submit, smtp.port("submission"), ca, _message(data))
        assert err.value.smtp_code == 552 and err.value.smtp_error.startswith(b"5.3.4")
        alice = await ctx.accounts.get(ALICE)
        assert alice is not None and alice.used_bytes < MiB
        assert await Files(ctx).tree.resolve(alice.id, "/Mail attachments") is None
        return
    with remote_mx(remote_port, handler, dns_stub):
        refused = await asyncio.to_thread(_submit, smtp.port("submission"), ca, _message(data))
        assert refused == {}
        # the remote copy is small enough for aiosmtpd's 32 MiB default only when rewritten
        await async_wait_until(lambda: bool(handler.received), 30, what="the remote copy")
    raw = await asyncio.to_thread(_imap_fetch, imap.port, ca)
    got = _attachments(raw)
    alice = await ctx.accounts.get(ALICE)
    assert alice is not None
    # the recipient's copy: the small attachment as sent, the big one as a note with a link
    assert len(raw) < MiB and b"\r\r\n" not in raw, len(raw)
    assert "video.raw" not in got and got["small.txt"].replace("\r\n", "\n") == "a small note\n"
    text = email.message_from_bytes(raw, policy=policy.default).as_string()
    assert "video.raw (30 MB)" in text and "Download it until 20" in text, text
    url = re.search(r"(http://127\.0\.0\.1:\d+/p/[A-Za-z0-9_-]+)", text)
    assert url is not None, text
    async with httpx.AsyncClient(timeout=120) as anonymous:  # logged out, as a script following the link
        h = hashlib.sha256()
        async with anonymous.stream("GET", url.group(1), follow_redirects=True) as r:
            assert r.status_code == 200
            async for chunk in r.aiter_bytes():
                h.update(chunk)
        assert h.hexdigest() == digest
        # a browser opening it gets the public page
        r = await anonymous.get(url.group(1), headers={"Accept": "text/html"})
        assert r.headers["content-type"].startswith("text/html")
    # the file is in Alice's Files, folder "Mail attachments", and her quota counts it once
    files = Files(ctx)
    folder = await files.tree.resolve(alice.id, "/Mail attachments")
    assert folder is not None
    (sub,) = await files.tree.list(alice.id, folder.id)
    assert [n.name for n in await files.tree.list(alice.id, sub.id)] == ["video.raw"]
    assert BIG <= alice.used_bytes < BIG + MiB, alice.used_bytes
    bob = await ctx.accounts.get(BOB)
    assert bob is not None and bob.used_bytes < MiB
    # the remote recipient got the rewritten message, and both DKIM signatures verify over it
    (_, rcpts, remote) = handler.received[0]
    assert rcpts == [CAROL] and len(remote) < MiB and url.group(1).encode() in remote
    d = dkimpy.DKIM(remote)
    dnsfunc = _stub_dnsfunc(dns_stub.port)
    assert await asyncio.to_thread(lambda: [d.verify(idx=i, dnsfunc=dnsfunc) for i in range(2)]) == [True, True]


async def test_no_room_in_files_refuses_the_message_with_552(stack, ctx, ca):
    """The file must be kept before the link goes out: a full quota is 552 5.2.2 (RFC 3463 §3.3),
    nothing is delivered and nothing is left in Files."""
    _, imap, smtp = stack
    await ctx.accounts.set_big_attachment_links(ALICE, True)
    await ctx.accounts.set_quota(ALICE, 11 * MiB)  # the 12 MiB file does not fit
    m = _message(os.urandom(12 * MiB))
    del m["To"]
    m["To"] = BOB
    with pytest.raises(smtplib.SMTPDataError) as err:
        await asyncio.to_thread(_submit, smtp.port("submission"), ca, m)
    assert err.value.smtp_code == 552 and err.value.smtp_error.startswith(b"5.2.2")
    alice = await ctx.accounts.get(ALICE)
    bob = await ctx.accounts.get(BOB)
    assert alice is not None and bob is not None and bob.used_bytes == 0
    folder = await Files(ctx).tree.resolve(alice.id, "/Mail attachments")
    if folder is not None:  # the dated folder may stay, empty
        for sub in await Files(ctx).tree.list(alice.id, folder.id):
            assert await Files(ctx).tree.list(alice.id, sub.id) == []


def _ehlo_size(port: int, ca, *, tls: bool = True) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        if tls:
            c.starttls(context=client_context(ca))
        c.ehlo("client.test")
        return int(c.esmtp_features["size"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # protocol limits: one backend is enough
async def test_submission_size_limits(stack, ctx, ca):
    """RFC 1870: the submission port offers the submission limit, the MX port the message limit; the
    larger one holds only for an account with links on, and only what fits once its big attachments
    became links is stored: many attachments each under the threshold are still refused (552 5.3.4)
    before any file is kept."""
    _, _, smtp = stack
    assert await asyncio.to_thread(_ehlo_size, smtp.port("submission"), ca) == 100 * MiB
    assert await asyncio.to_thread(_ehlo_size, smtp.port("smtp"), ca, tls=False) == 25 * MiB
    await ctx.accounts.set_big_attachment_links(ALICE, True)

    def mail_size(size: int) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", smtp.port("submission"), timeout=30) as c:
            c.starttls(context=client_context(ca))
            c.login(ALICE, PASSWORD)
            return c.mail(ALICE, [f"SIZE={size}"])

    assert (await asyncio.to_thread(mail_size, 60 * MiB))[0] == 250
    code, text = await asyncio.to_thread(mail_size, 100 * MiB + 1)
    assert code == 552 and text.startswith(b"5.3.4")
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = ALICE, BOB, "many medium files"
    m.set_content("three files of 6.5 MiB: none becomes a link, and 26.7 MiB of base64 stays over 25 MiB\n")
    for i in range(3):
        m.add_attachment(os.urandom(13 * MiB // 2), maintype="application", subtype="octet-stream", filename=f"{i}.bin")
    with pytest.raises(smtplib.SMTPDataError) as err:
        await asyncio.to_thread(_submit, smtp.port("submission"), ca, m)
    assert err.value.smtp_code == 552 and err.value.smtp_error.startswith(b"5.3.4"), err.value.smtp_error
    alice, bob = await ctx.accounts.get(ALICE), await ctx.accounts.get(BOB)
    assert alice is not None and bob is not None and bob.used_bytes == 0 and alice.used_bytes < MiB


def test_cli_turns_it_on(tmp_path):
    env = serve_env()
    env.update(SUITE_DATA_DIR=str(tmp_path / "data"), SUITE_BUS_BACKEND="memory")

    def suite(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "suite.cli", *args]
        return subprocess.run(cmd, env=env, input=stdin, text=True, capture_output=True, timeout=120, check=False)

    assert suite("init").returncode == 0
    assert suite("domain", "add", "example.test").returncode == 0
    assert suite("user", "add", ALICE, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    r = suite("user", "big-attachments", ALICE)
    assert r.returncode == 0 and r.stdout.strip().endswith(": off"), r.stdout + r.stderr
    r = suite("user", "big-attachments", ALICE, "on")
    assert r.returncode == 0 and r.stdout.strip().endswith(": on") and "10" in r.stdout, r.stdout + r.stderr
    r = suite("user", "big-attachments", "nobody@example.test", "on")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
