"""Planned meetings send invitations: an iTIP REQUEST (RFC 5546) in an iMIP mail (RFC 6047) from the
host's account, through the mail submission port wired in suite/wiring.py. The invitee reads it with
imaplib; the `icalendar` library (not ours) parses the text/calendar part."""

from __future__ import annotations

import asyncio
import email
import imaplib
from datetime import UTC, datetime, timedelta
from email import policy

import httpx
import icalendar
import pytest

from suite.testing import async_wait_until
from suite.voip import invitations
from suite.wiring import ports

PW = "correct horse battery"
ALICE, BOB = "alice@example.test", "bob@example.test"


def _calendar_part(raw: bytes) -> tuple[str, bytes]:
    msg = email.message_from_bytes(raw, policy=policy.default)
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            return part.get_param("method"), part.get_payload(decode=True)
    raise AssertionError("no text/calendar part")


def test_ics_is_what_icalendar_reads():
    start = datetime(2027, 1, 15, 9, 30, tzinfo=UTC)
    title = "Planning, Q1; the long one — with a title that needs folding " + "é" * 40
    inv = invitations.Invitation(
        uid="abc@example.test",
        title=title,
        start=start,
        duration=timedelta(minutes=45),
        url="https://suite.example.test/m/tok_en",
        organizer=ALICE,
        organizer_name="Alice, Host",
        attendees=(BOB, "carol@remote.test"),
        stamp=start - timedelta(days=1),
    )
    text = invitations.invitation_ics(inv)
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))  # RFC 5545 §3.1
    cal = icalendar.Calendar.from_ical(text)
    assert str(cal["METHOD"]) == "REQUEST"
    (ev,) = cal.walk("VEVENT")
    assert str(ev["SUMMARY"]) == title
    assert ev.decoded("DTSTART") == start and ev.decoded("DTEND") == start + timedelta(minutes=45)
    assert str(ev["LOCATION"]) == str(ev["URL"]) == inv.url
    assert str(ev["ORGANIZER"]) == f"mailto:{ALICE}" and ev["ORGANIZER"].params["CN"] == "Alice, Host"
    assert sorted(str(a) for a in ev["ATTENDEE"]) == [f"mailto:{BOB}", "mailto:carol@remote.test"]
    assert str(ev["UID"]) == "abc@example.test"


def test_invitee_addresses_are_checked():
    assert invitations.attendees([BOB, "BOB@example.test", "x@y.test"]) == (BOB, "x@y.test")
    for bad in ("nobody", "a@b", "x@y.test\r\nBcc: z@z.test", "<x@y.test>", ""):
        with pytest.raises(ValueError):
            invitations.attendees([bad])


@pytest.fixture
async def stack(ctx):
    from suite.gateway.service import GatewayService
    from suite.mail.imap.server import ImapService

    s = ctx.settings
    s.http_port = s.imap_port = s.imaps_port = 0
    s.allow_plaintext_loopback = True
    await ctx.accounts.add_domain("example.test")
    await ctx.accounts.add_account(ALICE, PW, display_name="Alice")
    await ctx.accounts.add_account(BOB, PW, display_name="Bob")
    gw = GatewayService(ctx, **ports("gateway", ctx))  # wired as `suite serve` wires it
    imap = ImapService(ctx, auth_delay=0.01)
    await gw.start()
    await imap.start()
    try:
        yield gw, imap
    finally:
        await imap.stop()
        await gw.stop()


def _inbox(port: int) -> list[bytes]:
    c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    try:
        c.login(BOB, PW)
        c.select("INBOX")
        typ, data = c.search(None, "ALL")
        assert typ == "OK"
        out = []
        for num in data[0].split():
            typ, msg = c.fetch(num, "(RFC822)")
            assert typ == "OK"
            out.append(msg[0][1])
        return out
    finally:
        c.logout()


async def test_planned_meeting_invites_by_mail(stack):
    gw, imap = stack
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=30) as http:
        r = await http.post("/api/login", json={"address": ALICE, "password": PW})
        assert r.status_code == 200
        http.headers["X-CSRF-Token"] = (await http.get("/api/me")).json()["csrf_token"]
        # bad plans are refused before anything is created or sent
        for body, why in (
            ({"start": "2027-01-15T09:30:00", "invitees": [BOB]}, "offset"),
            ({"invitees": [BOB]}, "start"),
            ({"start": "2027-01-15T09:30:00Z", "minutes": 0, "invitees": [BOB]}, "minutes"),
            ({"start": "2027-01-15T09:30:00Z", "invitees": ["bob"]}, "address"),
        ):
            r = await http.post("/api/meetings", json={"title": "x", **body})
            assert r.status_code == 400 and why in r.json()["message"], (body, r.text)
        r = await http.post(
            "/api/meetings",
            json={"title": "Weekly sync", "start": "2027-01-15T10:30:00+01:00", "minutes": 30, "invitees": [BOB]},
        )
        assert r.status_code == 201, r.text
        made = r.json()
    assert made["invited"] == [BOB] and made["minutes"] == 30

    inbox: list[bytes] = []

    async def arrived() -> bool:
        inbox[:] = await asyncio.to_thread(_inbox, imap.port)
        return bool(inbox)

    await async_wait_until(arrived, timeout=20)
    (raw,) = inbox
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert ALICE in msg["From"] and msg["Subject"].startswith("Invitation: Weekly sync")
    method, ics = _calendar_part(raw)
    assert method == "REQUEST"
    cal = icalendar.Calendar.from_ical(ics)
    assert str(cal["METHOD"]) == "REQUEST"
    (ev,) = cal.walk("VEVENT")
    assert ev.decoded("DTSTART") == datetime(2027, 1, 15, 9, 30, tzinfo=UTC)
    assert ev.decoded("DTEND") - ev.decoded("DTSTART") == timedelta(minutes=30)
    assert str(ev["LOCATION"]).endswith(made["url"]) and str(ev["URL"]).endswith(made["url"])
    assert str(ev["ATTENDEE"]) == f"mailto:{BOB}"  # one attendee: a single property
    assert str(ev["ORGANIZER"]) == f"mailto:{ALICE}"
    # the same object as an .ics attachment for programs that only look at attachments
    assert [p.get_filename() for p in msg.iter_attachments()] == ["invite.ics"]  # type: ignore[attr-defined]
