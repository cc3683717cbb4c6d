"""The filters JSON API (suite/gateway/sieve_routes.py) over a real socket with httpx; rules written
through it then filter mail delivered by real SMTP. SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from sieve_helpers import mailbox, message, send
from smtp_service_helpers import ALICE, PASSWORD, parse

from suite.gateway.service import GatewayService


@pytest.fixture
async def api(suite_smtp):
    ctx = suite_smtp.ctx
    ctx.settings.http_port = 0
    svc = GatewayService(ctx)
    await svc.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.port}", timeout=20) as client:
        r = await client.post("/api/login", json={"address": ALICE, "password": PASSWORD})
        assert r.status_code == 200
        client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        yield client
    await svc.stop()


async def test_scripts_crud_and_errors(api, suite_smtp):
    assert (await api.get("/api/sieve/scripts")).json() == []
    empty = (await api.get("/api/sieve/rules")).json()
    assert empty["rules"] == [] and empty["out_of_office"]["enabled"] is False and empty["editable"] is True
    r = await api.put("/api/sieve/scripts/main", json={"content": "keep;\n", "active": True})
    assert r.status_code == 200 and r.json() == {"name": "main", "active": True}
    r = await api.put("/api/sieve/scripts/bad", json={"content": 'require "fileinto";\nfileinto "x"\n'})
    assert r.status_code == 422 and r.json()["error"] == "invalid_script"
    assert r.json()["message"].startswith("line 3:")
    r = await api.put("/api/sieve/scripts/other", json={"content": "discard;"})
    assert r.status_code == 200 and r.json()["active"] is False
    listed = await api.get("/api/sieve/scripts")
    assert [(s["name"], s["active"]) for s in listed.json()] == [("main", True), ("other", False)]
    assert (await api.get("/api/sieve/active")).json() == {"name": "main", "content": "keep;\n"}
    assert (await api.delete("/api/sieve/scripts/main")).status_code == 409  # active
    assert (await api.put("/api/sieve/active", json={"name": "other"})).json()["name"] == "other"
    assert (await api.delete("/api/sieve/scripts/main")).status_code == 204
    assert (await api.get("/api/sieve/scripts/main")).status_code == 404
    assert (await api.put("/api/sieve/active", json={"name": "nope"})).status_code == 404
    r = await api.post("/api/sieve/check", json={"content": "if true { frobnicate; }"})
    assert r.status_code == 422 and "unknown command 'frobnicate'" in r.json()["message"]
    assert (await api.post("/api/sieve/check", json={"content": "stop;"})).json() == {"ok": True}
    big = "#" + "x" * 70_000
    assert (await api.post("/api/sieve/check", json={"content": big})).status_code == 413  # JSON body limit
    # no CSRF token: refused
    r = await api.put("/api/sieve/active", json={"name": ""}, headers={"X-CSRF-Token": ""})
    assert r.status_code == 403
    async with httpx.AsyncClient(base_url=str(api.base_url)) as anon:
        assert (await anon.get("/api/sieve/scripts")).status_code == 401


async def test_rules_written_by_the_api_filter_smtp_mail(api, suite_smtp):
    rules = {
        "rules": [
            {
                "name": "Invoices",
                "conditions": [{"field": "subject", "op": "contains", "value": "invoice"}],
                "actions": [{"type": "flag", "flag": "\\Flagged"}, {"type": "move", "mailbox": "Money/Invoices"}],
            },
            {
                "name": "No spam",
                "match": "any",
                "conditions": [
                    {"field": "from", "op": "contains", "value": "spammer"},
                    {"field": "size", "op": "over", "value": 50000},
                ],
                "actions": [{"type": "discard"}],
            },
        ]
    }
    r = await api.put("/api/sieve/rules", json=rules)
    assert r.status_code == 200, r.text
    assert r.json()["active"] is True and 'fileinto :create "Money/Invoices";' in r.json()["script"]
    back = (await api.get("/api/sieve/rules")).json()
    assert back["editable"] is True and back["rules"][0]["name"] == "Invoices"
    assert back["out_of_office"]["enabled"] is False
    await send(suite_smtp, message("Your INVOICE 42"))
    await send(suite_smtp, message("buy now", frm="spammer@remote.test"))
    await send(suite_smtp, message("huge", body="y" * 60000 + "\n"))
    await send(suite_smtp, message("hello"))
    inv = await mailbox(suite_smtp, suite_smtp.alice_id, "Money/Invoices")
    assert [(parse(m)["Subject"], f) for m, f in inv] == [("Your INVOICE 42", ("\\Flagged",))]
    inbox = await mailbox(suite_smtp, suite_smtp.alice_id, "INBOX")
    assert [(parse(m)["Subject"], f) for m, f in inbox] == [("hello", ())]
    # a bad model is a 422 with where it is wrong
    r = await api.put("/api/sieve/rules", json={"rules": [{"conditions": [], "actions": [{"type": "explode"}]}]})
    assert r.status_code == 422
    r = await api.put(
        "/api/sieve/rules",
        json={
            "rules": [
                {"conditions": [{"field": "subject", "op": "over", "value": 3}], "actions": [{"type": "discard"}]}
            ]
        },
    )
    assert r.status_code == 422 and "size" in r.json()["message"]
    # edited by hand over ManageSieve → no longer shown as rules
    await api.put("/api/sieve/scripts/suite-rules", json={"content": "keep;\n", "active": True})
    assert (await api.get("/api/sieve/rules")).json()["editable"] is False


async def test_out_of_office_through_the_api_answers_once(api, suite_smtp):
    from smtp_service_helpers import BOB

    body = {"out_of_office": {"enabled": True, "subject": "Out of office", "text": "Back Monday.", "days": 3}}
    r = await api.put("/api/sieve/rules", json=body)
    assert r.status_code == 200, r.text
    for subject in ("one", "two"):
        await send(suite_smtp, message(subject, frm=BOB), mail_from=BOB)
    replies = [parse(m) for m, _ in await mailbox(suite_smtp, suite_smtp.bob_id, "INBOX")]
    assert [(m["Subject"], m["From"], m.get_content().strip()) for m in replies] == [
        ("Out of office", ALICE, "Back Monday.")
    ]
    assert len(await mailbox(suite_smtp, suite_smtp.alice_id, "INBOX")) == 2
    got = (await api.get("/api/sieve/rules")).json()
    assert got["out_of_office"] == {
        "enabled": True,
        "subject": "Out of office",
        "text": "Back Monday.",
        "days": 3,
        "start": None,
        "end": None,
    }
