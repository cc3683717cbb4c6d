"""ManageSieve (RFC 5804) with clients nobody here wrote: sievelib's client (Python) and Debian's
sieve-connect, over STARTTLS; a raw socket for the error paths. A script uploaded over ManageSieve
then filters mail delivered through real SMTP. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess
from pathlib import Path

import pytest
from sieve_helpers import mailbox, message, send
from smtp_service_helpers import ALICE, BOB, MX_HOST, PASSWORD, client_context, parse

from suite.testing import async_wait_until, require_tool

SCRIPT = 'require ["fileinto", "mailbox"];\nif header :contains "subject" "report" { fileinto :create "Reports"; }\n'
BAD = 'require "fileinto";\nif header :contains "subject" "x" {\n  fileinto "Reports"\n}\n'


@pytest.fixture
async def sieve_server(suite_smtp):
    from suite.mail.managesieve.server import ManageSieveService

    suite_smtp.ctx.settings.managesieve_port = 0
    svc = ManageSieveService(suite_smtp.ctx, auth_delay=0.0)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


def _sievelib_session(port: int, ca_pem: Path, monkeypatch) -> dict:
    from sievelib.managesieve import Client

    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    c = Client("127.0.0.1", port, srvhostname=MX_HOST)
    out: dict = {}
    assert c.connect(ALICE, PASSWORD, starttls=True, authmech="PLAIN"), c.errmsg
    out["implementation"] = c.get_implementation()
    out["extensions"] = c.get_sieve_capabilities()
    out["havespace"] = c.havespace("main", len(SCRIPT))
    out["havespace_big"] = c.havespace("main", 10 * 1024 * 1024)
    out["big_code"] = c.errcode
    out["put_bad"] = c.putscript("broken", BAD)
    out["put_bad_msg"] = c.errmsg
    out["check_bad"] = c.checkscript(BAD)
    out["put"] = c.putscript("draft", SCRIPT)
    out["rename"] = c.renamescript("draft", "main")
    out["active"] = c.setactive("main")
    out["list"] = c.listscripts()
    out["get"] = c.getscript("main")
    out["delete_active"] = c.deletescript("main")
    out["delete_code"] = c.errcode
    out["get_missing"] = c.getscript("nope")
    out["missing_code"] = c.errcode
    c.logout()
    return out


async def test_sievelib_client_full_cycle_then_mail_is_filtered(suite_smtp, sieve_server, ca_pem, monkeypatch):
    r = await asyncio.to_thread(_sievelib_session, sieve_server.port, ca_pem, monkeypatch)
    assert r["implementation"] == "Suite ManageSieve"
    assert {"fileinto", "vacation", "imap4flags", "envelope", "body", "copy"} <= set(r["extensions"])
    assert r["havespace"] is True
    assert r["havespace_big"] is False and r["big_code"] == b"QUOTA/MAXSIZE"
    assert r["put_bad"] is False and b"line 4" in r["put_bad_msg"]  # the ; missing before }
    assert r["check_bad"] is False
    assert r["put"] and r["rename"] and r["active"]
    assert r["list"] == ("main", [])  # (active, others)
    assert r["get"] == SCRIPT.rstrip("\n")  # sievelib joins the lines it read (no final newline)
    assert r["delete_active"] is False and r["delete_code"] == b"ACTIVE"
    assert r["get_missing"] is None and r["missing_code"] == b"NONEXISTENT"
    await send(suite_smtp, message("monthly report"))
    await send(suite_smtp, message("hello"))
    reports = await mailbox(suite_smtp, suite_smtp.alice_id, "Reports")
    inbox = await mailbox(suite_smtp, suite_smtp.alice_id, "INBOX")
    assert [parse(m)["Subject"] for m, _ in reports] == ["monthly report"]
    assert [parse(m)["Subject"] for m, _ in inbox] == ["hello"]


def _sieve_connect(port: int, ca_pem: Path, *args: str) -> subprocess.CompletedProcess:
    exe = require_tool("sieve-connect", "Debian package sieve-connect")
    cmd = [exe, "--server", "127.0.0.1", "--port", str(port), "--user", BOB, "--passwordfd", "0"]
    cmd += ["--tlscafile", str(ca_pem), "--tlshostname", MX_HOST, "--authmech", "PLAIN", *args]
    return subprocess.run(cmd, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)


async def test_sieve_connect_upload_list_activate_download_delete(suite_smtp, sieve_server, ca_pem, tmp_path):
    local = tmp_path / "vacation.sieve"
    local.write_text('require "vacation";\nvacation :days 3 "Away";\n')
    port = sieve_server.port
    up = await asyncio.to_thread(
        _sieve_connect, port, ca_pem, "--upload", "--localsieve", str(local), "--remotesieve", "away"
    )
    assert up.returncode == 0, up.stderr
    act = await asyncio.to_thread(_sieve_connect, port, ca_pem, "--activate", "--remotesieve", "away")
    assert act.returncode == 0, act.stderr
    listed = await asyncio.to_thread(_sieve_connect, port, ca_pem, "--list")
    assert listed.returncode == 0 and listed.stdout.splitlines() == ['"away" ACTIVE'], listed
    dest = tmp_path / "back.sieve"
    down = await asyncio.to_thread(
        _sieve_connect, port, ca_pem, "--download", "--remotesieve", "away", "--localsieve", str(dest)
    )
    assert down.returncode == 0, down.stderr
    assert dest.read_text() == local.read_text()
    bad = tmp_path / "bad.sieve"
    bad.write_text(BAD)
    check = await asyncio.to_thread(_sieve_connect, port, ca_pem, "--checkscript", "--localsieve", str(bad))
    assert check.returncode != 0 and "line 4" in (check.stdout + check.stderr)
    deact = await asyncio.to_thread(_sieve_connect, port, ca_pem, "--deactivate")
    assert deact.returncode == 0, deact.stderr
    rm = await asyncio.to_thread(_sieve_connect, port, ca_pem, "--delete", "--remotesieve", "away")
    assert rm.returncode == 0, rm.stderr
    from suite.mail.sieve.store import SieveStore

    assert await SieveStore(suite_smtp.ctx).list_scripts(suite_smtp.bob_id) == []


class _Raw:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.sock.makefile("rb")

    def until_status(self) -> list[bytes]:
        lines = []
        while True:
            line = self.f.readline()
            assert line, f"connection closed after {lines!r}"
            lines.append(line)
            if line[:2] in (b"OK", b"NO") or line[:3] == b"BYE":
                return lines

    def cmd(self, data: bytes) -> list[bytes]:
        self.sock.sendall(data)
        return self.until_status()

    def close(self) -> None:
        self.f.close()
        self.sock.close()

    def starttls(self, ca) -> list[bytes]:
        """STARTTLS, the handshake, then the capabilities the server sends again (RFC 5804 §2.2)."""
        reply = self.cmd(b"STARTTLS\r\n")
        tls = client_context(ca).wrap_socket(self.sock, server_hostname=MX_HOST)
        self.sock, self.f = tls, tls.makefile("rb")
        return reply[-1:] + self.until_status()

    def authenticate(self, pw: str, user: str = ALICE) -> bytes:
        plain = base64.b64encode(f"\0{user}\0{pw}".encode()).decode()
        return self.cmd(f'AUTHENTICATE "PLAIN" "{plain}"\r\n'.encode())[-1]


def _tls_login(port: int, ca, pw: str) -> tuple[_Raw, bytes]:
    """A fresh connection: greeting, STARTTLS, AUTHENTICATE PLAIN; the connection and the auth reply."""
    c = _Raw(port)
    c.until_status()
    c.starttls(ca)
    return c, c.authenticate(pw)


def _raw_errors(port: int, ca) -> dict:
    out: dict = {}
    c = _Raw(port)
    greeting = c.until_status()
    out["greeting"] = greeting
    plain = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    out["auth_plaintext"] = c.cmd(f'AUTHENTICATE "PLAIN" "{plain}"\r\n'.encode())[-1]
    out["before_login"] = c.cmd(b"LISTSCRIPTS\r\n")[-1]
    out["unknown"] = c.cmd(b"FROB\r\n")[-1]
    starttls, *out["caps_after_tls"] = c.starttls(ca)
    out["starttls"] = starttls
    # SASL PLAIN without initial response: the server's "" challenge, then the response
    c.sock.sendall(b'AUTHENTICATE "PLAIN"\r\n')
    out["challenge"] = c.f.readline()
    out["auth"] = c.cmd(f'"{plain}"\r\n'.encode())[-1]
    big = b"x" * (70 * 1024)
    out["too_big"] = c.cmd(b'PUTSCRIPT "big" {%d+}\r\n' % len(big) + big + b"\r\n")[-1]
    out["noop"] = c.cmd(b'NOOP "still-here"\r\n')[-1]
    out["bad_name"] = c.cmd(b'PUTSCRIPT "a/b" "keep;"\r\n')[-1]
    out["logout"] = c.cmd(b"LOGOUT\r\n")[-1]
    c.close()
    # three wrong passwords: NO, NO, then BYE
    c = _Raw(port)
    c.until_status()
    c.starttls(ca)
    out["wrong"] = [c.authenticate("wrong-password") for _ in range(3)]
    out["bye"] = c.f.readline()
    out["eof"] = c.f.read()
    c.close()
    return out


async def test_raw_protocol_errors_are_answered(suite_smtp, sieve_server, ca):
    r = await asyncio.to_thread(_raw_errors, sieve_server.port, ca)
    assert b'"STARTTLS"\r\n' in r["greeting"] and r["greeting"][-1].startswith(b"OK")
    assert r["auth_plaintext"].startswith(b"NO (ENCRYPT-NEEDED)")
    assert r["before_login"].startswith(b"NO") and r["unknown"].startswith(b"NO")
    assert r["starttls"].startswith(b"OK")
    assert b'"SASL" "PLAIN"\r\n' in r["caps_after_tls"] and b'"STARTTLS"\r\n' not in r["caps_after_tls"]
    assert r["challenge"] == b'""\r\n'
    assert r["auth"].startswith(b"OK")
    assert r["too_big"].startswith(b"NO (QUOTA/MAXSIZE)")
    assert r["noop"].startswith(b'OK (TAG "still-here")')
    assert r["bad_name"].startswith(b"NO")
    assert r["logout"].startswith(b"OK")
    assert [w[:3] for w in r["wrong"]] == [b"NO ", b"NO ", b"NO "]
    assert r["bye"].startswith(b"BYE") and r["eof"] == b""  # the third failure ends the connection


async def test_app_password_with_imap_scope_logs_in(suite_smtp, sieve_server, ca):
    _, secret = await suite_smtp.ctx.accounts.add_app_password(ALICE, "thunderbird", ["imap"])
    _, smtp_only = await suite_smtp.ctx.accounts.add_app_password(ALICE, "phone", ["smtp"])

    def login(pw: str) -> bytes:
        c, res = _tls_login(sieve_server.port, ca, pw)
        c.close()
        return res

    assert (await asyncio.to_thread(login, secret)).startswith(b"OK")
    assert (await asyncio.to_thread(login, smtp_only)).startswith(b"NO")


async def test_login_rate_limit_is_the_account_stores(suite_smtp, sieve_server, ca):
    suite_smtp.ctx.settings.login_max_failures_per_address = 2

    def attempt(pw: str) -> bytes:
        c, res = _tls_login(sieve_server.port, ca, pw)
        c.close()
        return res

    assert (await asyncio.to_thread(attempt, "wrong-1")).startswith(b"NO")
    assert (await asyncio.to_thread(attempt, "wrong-2")).startswith(b"NO")
    locked = await asyncio.to_thread(attempt, PASSWORD)  # right password, but locked for the window
    assert locked.startswith(b"NO") and b"Too many failed logins" in locked


def _signed_in(port: int, ca, pw: str) -> _Raw:
    c, res = _tls_login(port, ca, pw)
    assert res.startswith(b"OK"), res
    return c


def _bye_then_eof(c: _Raw, seconds: float = 2.0) -> bytes:
    """The server's BYE and end of stream within the deadline (issue 16: revocation within 2 s)."""
    c.sock.settimeout(seconds)
    line = c.f.readline()
    rest = c.f.read()
    c.close()
    assert line.startswith(b"BYE"), line
    assert rest == b""
    return line


async def test_revoked_app_password_ends_its_managesieve_connection(suite_smtp, sieve_server, ca):
    """A signed-in ManageSieve connection is one of the account's live connections (listed in the
    sessions screen's table) and revoking the app password it used ends it with BYE."""
    ctx = suite_smtp.ctx
    app, secret = await ctx.accounts.add_app_password(ALICE, "sieve-addon", ["imap"])
    _, other = await ctx.accounts.add_app_password(ALICE, "laptop", ["imap"])
    c = await asyncio.to_thread(_signed_in, sieve_server.port, ca, secret)
    keep = await asyncio.to_thread(_signed_in, sieve_server.port, ca, other)
    await async_wait_until(lambda: len(sieve_server.live) == 2, what="both registered")

    async def both_listed() -> list[str] | None:  # the table rows are written after the sign-in
        rows = await ctx.accounts.security.connections(suite_smtp.alice_id)
        return sorted(x.service for x in rows) if len(rows) == 2 else None

    assert await async_wait_until(both_listed, what="both listed") == ["managesieve"] * 2
    await ctx.accounts.revoke_app_password(ALICE, app.id)
    bye = await asyncio.to_thread(_bye_then_eof, c)
    assert b"Signed out" in bye
    assert (await asyncio.to_thread(keep.cmd, b"NOOP\r\n"))[-1].startswith(b"OK")  # the other one stays
    await asyncio.to_thread(keep.close)
    await async_wait_until(lambda: len(sieve_server.live) == 0, what="both unregistered")
