"""VacationResponse/get|set (RFC 8621 §8) — the account's Sieve "Out of office" — and the
auto-replies at delivery (RFC 5230 / RFC 3834), with smtplib delivering to the SMTP service's MX."""

from __future__ import annotations

import asyncio
import smtplib
import time

import pytest

from tests.mail.jmap.conftest import message


@pytest.fixture
async def mx_port(ctx, accounts, tmp_path):
    from suite.mail.smtp.service import SmtpService

    ctx.settings.smtp_port = 0
    ctx.settings.submission_port = 0
    ctx.settings.submissions_port = 0
    ctx.settings.smtp_inbound_auth = False
    svc = SmtpService(ctx)
    await svc.start()
    yield svc.port("smtp")
    await svc.stop()


def _send(port: int, raw: bytes, sender: str = "bob@example.test") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.sendmail(sender, ["alice@example.test"], raw)


async def _bob_inbox(bob_jmap, n: int, timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        ids = (await bob_jmap.ok("Email/query", {}))["ids"]
        if len(ids) >= n or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.1)


async def test_vacation_get_set(jmap):
    # RFC 8621 §8.1–8.2: one singleton object
    body = await jmap.ok("VacationResponse/get", {})
    assert body["list"] == [
        {
            "id": "singleton",
            "isEnabled": False,
            "fromDate": None,
            "toDate": None,
            "subject": None,
            "textBody": None,
            "htmlBody": None,
        }
    ]
    body = await jmap.ok("VacationResponse/set", {"update": {"singleton": {"isEnabled": True, "textBody": "Away"}}})
    assert body["updated"] == {"singleton": None} and body["newState"] != body["oldState"]
    got = await jmap.ok("VacationResponse/get", {"ids": ["singleton", "other"]})
    assert got["list"][0]["isEnabled"] is True and got["notFound"] == ["other"]
    body = await jmap.ok("VacationResponse/set", {"create": {"x": {}}, "destroy": ["singleton"]})
    assert body["notCreated"]["x"]["type"] == "singleton" and body["notDestroyed"]["singleton"]["type"] == "singleton"


async def test_vacation_is_the_sieve_out_of_office(jmap, ctx, accounts):
    # one setting: what JMAP sets is the rule builder's Out of office (suite.mail.sieve.rules)
    from suite.mail.sieve import rules
    from suite.mail.sieve.store import SieveStore

    await jmap.ok(
        "VacationResponse/set",
        {
            "update": {
                "singleton": {
                    "isEnabled": True,
                    "textBody": "Away",
                    "fromDate": "2026-01-01T00:00:00Z",
                    "toDate": "2030-01-01T00:00:00Z",
                }
            }
        },
    )
    store = SieveStore(ctx)
    rs = rules.parse_rules(await store.get_script(accounts[0].id, rules.SCRIPT_NAME))
    assert rs is not None and rs.out_of_office.enabled and rs.out_of_office.text == "Away"
    assert await store.active_name(accounts[0].id) == rules.SCRIPT_NAME
    got = (await jmap.ok("VacationResponse/get", {}))["list"][0]
    assert got["fromDate"] == "2026-01-01T00:00:00Z" and got["toDate"] == "2030-01-01T00:00:00Z"
    # a script written by hand is not overwritten
    await store.put_script(accounts[0].id, rules.SCRIPT_NAME, "keep;", activate=True)
    body = await jmap.ok("VacationResponse/set", {"update": {"singleton": {"isEnabled": False}}})
    assert body["notUpdated"]["singleton"]["type"] == "forbidden"


async def test_vacation_replies_once_and_never_to_lists(jmap, bob_jmap, mx_port):
    # RFC 3834 §2: once per sender per period; never to list or auto-submitted mail
    await jmap.ok(
        "VacationResponse/set",
        {"update": {"singleton": {"isEnabled": True, "subject": "Out of office", "textBody": "Back on Monday."}}},
    )
    await asyncio.to_thread(_send, mx_port, message("Question", msgid="v1@x", frm="bob@example.test"))
    ids = await _bob_inbox(bob_jmap, 1)
    assert len(ids) == 1
    e = (
        await bob_jmap.ok(
            "Email/get",
            {
                "ids": ids,
                "properties": ["subject", "inReplyTo", "header:Auto-Submitted:asText"],
                "fetchTextBodyValues": True,
            },
        )
    )["list"][0]
    assert e["subject"] == "Out of office" and e["inReplyTo"] == ["v1@x"]
    assert e["header:Auto-Submitted:asText"] == "auto-replied"
    await asyncio.to_thread(_send, mx_port, message("Again", msgid="v2@x", frm="bob@example.test"))
    await asyncio.to_thread(
        _send, mx_port, message("List mail", msgid="v3@x", frm="bob@example.test", extra="List-Id: <l.example>\r\n")
    )
    await asyncio.to_thread(
        _send,
        mx_port,
        message("Auto", msgid="v4@x", frm="bob@example.test", extra="Auto-Submitted: auto-generated\r\n"),
    )
    # alice has all four; bob still has only the one reply
    deadline = time.monotonic() + 15
    while len((await jmap.ok("Email/query", {}))["ids"]) < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert len((await jmap.ok("Email/query", {}))["ids"]) == 4
    assert len(await _bob_inbox(bob_jmap, 2, timeout=1)) == 1
