"""Vacation auto-replies (RFC 8621 §8 VacationResponse, following RFC 3834).

``reply_for`` decides, from the delivered message and the account's settings, whether and what to
answer: never to a null or own sender, to ``Auto-Submitted`` (other than "no"), ``Precedence:
bulk/list/junk`` or list mail (List-Id / List-Unsubscribe), to MAILER-DAEMON-like senders, and once
per sender per period (§2: "SHOULD NOT ... more than once per period", 7 days here); the reply is
sent with a null envelope sender (§3.3) and ``Auto-Submitted: auto-replied`` (§5).
"""

from __future__ import annotations

import email.utils
import re
import secrets
import time
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, default

PERIOD = 7 * 86400
_NO_REPLY = re.compile(
    r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|listserv|majordomo|owner-.*|.*-request)@", re.I
)


async def settings(c, account_id: int) -> dict | None:
    r = await c.one(
        "SELECT is_enabled, from_date, to_date, subject, text_body, html_body, updated_at FROM vacation_responses "
        "WHERE account_id = ?",
        account_id,
    )
    if r is None:
        return None
    keys = ("is_enabled", "from_date", "to_date", "subject", "text_body", "html_body", "updated_at")
    return dict(zip(keys, r, strict=True))


def should_answer(raw: bytes, sender: str, own: set[str]) -> tuple[bool, dict]:
    """RFC 3834 §2: whether this message may get an automatic response; with its headers."""
    end = raw.find(b"\r\n\r\n")
    head = raw[: end + 4] if end >= 0 else raw[:65536]
    msg = BytesHeaderParser(policy=default).parsebytes(head)
    info = {
        "subject": str(msg.get("Subject", "")),
        "message_id": str(msg.get("Message-ID", "")).strip(),
        "references": str(msg.get("References", "")).strip(),
    }
    if not sender or "@" not in sender or sender.lower() in own or _NO_REPLY.match(sender):
        return False, info
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    if auto and not auto.startswith("no"):
        return False, info
    if str(msg.get("Precedence", "")).strip().lower() in ("bulk", "list", "junk"):
        return False, info
    if msg.get("List-Id") or msg.get("List-Unsubscribe") or msg.get("X-Auto-Response-Suppress"):
        return False, info
    return True, info


def build_reply(vac: dict, info: dict, from_addr: str, to: str, hostname: str) -> bytes:
    m = EmailMessage(policy=SMTP)
    m["From"] = from_addr
    m["To"] = to
    subject = vac.get("subject") or f"Auto: {info['subject']}".strip()
    m["Subject"] = subject
    m["Date"] = email.utils.formatdate(time.time())
    m["Message-ID"] = f"<{secrets.token_hex(16)}@{hostname}>"
    m["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5
    if info["message_id"]:
        m["In-Reply-To"] = info["message_id"]
        m["References"] = (info["references"] + " " + info["message_id"]).strip()
    text = vac.get("text_body") or ""
    if vac.get("html_body") and not text:
        text = re.sub(r"<[^>]+>", " ", vac["html_body"])
    m.set_content(text or "I am away.")
    if vac.get("html_body"):
        m.add_alternative(vac["html_body"], subtype="html")
    return m.as_bytes(policy=SMTP)


async def reply_for(
    store, account_id: int, address: str, aliases: list[str], raw: bytes, sender: str, hostname: str
) -> tuple[str, bytes] | None:
    """(recipient, reply bytes) when an auto-reply is due — recorded as sent in the same step, so
    concurrent deliveries and several processes answer a sender once."""
    async with store.raw_db.read() as c:
        vac = await settings(c, account_id)
    now = time.time()
    if vac is None or not vac["is_enabled"]:
        return None
    if vac["from_date"] is not None and now < vac["from_date"] or vac["to_date"] is not None and now >= vac["to_date"]:
        return None
    own = {address.lower(), *(a.lower() for a in aliases)}
    ok, info = should_answer(raw, sender, own)
    if not ok:
        return None
    sender = sender.lower()
    async with store.raw_db.write() as c:
        last = await c.scalar(
            "SELECT sent_at FROM vacation_replies WHERE account_id = ? AND sender = ?", account_id, sender
        )
        if last is not None and last > now - PERIOD and last >= vac["updated_at"]:
            return None
        await c.run(
            "INSERT INTO vacation_replies (account_id, sender, sent_at) VALUES (?, ?, ?) "
            "ON CONFLICT (account_id, sender) DO UPDATE SET sent_at = excluded.sent_at",
            account_id,
            sender,
            now,
        )
    return sender, build_reply(vac, info, address, sender, hostname)
