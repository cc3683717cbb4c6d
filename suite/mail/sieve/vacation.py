"""Vacation replies: when not to answer (RFC 5230 §4.5, RFC 3834 §2) and the reply itself
(RFC 5230 §5, RFC 3834 §3). Pure: the "once per period" memory is the store's."""

from __future__ import annotations

import email.utils
import hashlib
import time
from email import policy
from email.message import EmailMessage

from .evaluate import Vacation
from .message import Envelope, MessageView

# RFC 5230 §4.5: senders that are never answered (local parts, compared case-insensitively).
_LIST_HEADERS = (
    "list-id",
    "list-help",
    "list-subscribe",
    "list-unsubscribe",
    "list-post",
    "list-owner",
    "list-archive",
)
_ROBOT_LOCALS = ("mailer-daemon", "listserv", "majordomo", "mailer", "postmaster", "noreply", "no-reply")


def skip_reason(msg: MessageView, env: Envelope, action: Vacation) -> str | None:
    """Why no reply is sent, or None to reply (subject to the once-per-period check)."""
    sender = env.mail_from.strip()
    if not sender:
        return "null sender"  # RFC 3834 §2: never to the null reverse-path (bounces)
    local = sender.rpartition("@")[0].lower()
    if local in _ROBOT_LOCALS or local.startswith("owner-") or local.endswith("-request"):
        return "sender is a mail robot"  # RFC 5230 §4.5, RFC 2142
    own = {a.lower() for a in (*env.own_addresses, *action.addresses, env.rcpt_to)}
    if sender.lower() in own:
        return "sender is one of our own addresses"  # RFC 5230 §4.5: no reply to oneself
    auto = (msg.first("auto-submitted") or "no").split(";")[0].strip().lower()
    if auto != "no":
        return "auto-submitted message"  # RFC 3834 §2
    if any(msg.has_header(h) for h in _LIST_HEADERS):
        return "mailing list message"  # RFC 5230 §4.5: List-Id (RFC 2919) and the RFC 2369 fields
    precedence = (msg.first("precedence") or "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return f"precedence {precedence}"
    if msg.has_header("x-auto-response-suppress") and "oof" in (msg.first("x-auto-response-suppress") or "").lower():
        return "auto responses suppressed"
    # RFC 5230 §4.5: reply only when one of the user's addresses is in To, Cc, Bcc (or Resent-*).
    recipients = {
        a.lower() for h in ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc") for a in msg.addresses(h)
    }
    if not recipients & own:
        return "not addressed to the user in To/Cc/Bcc"
    return None


def period_key(sender: str, handle: str) -> str:
    """What the once-per-period memory is keyed by (with the account): sender + handle."""
    return hashlib.sha256(f"{sender.lower()}\x00{handle}".encode()).hexdigest()


def build_reply(msg: MessageView, env: Envelope, action: Vacation, *, hostname: str) -> bytes:
    """The reply (RFC 5230 §5): From the user, To the sender, Auto-Submitted: auto-replied,
    In-Reply-To/References of the original, subject "Auto: <original subject>" by default."""
    reply = EmailMessage(policy=policy.SMTP)
    from_ = action.from_ or env.rcpt_to
    reply["From"] = from_
    reply["To"] = env.mail_from
    orig_subject = msg.first("subject") or ""
    subject = action.subject if action.subject is not None else f"Auto: {orig_subject}".strip()
    reply["Subject"] = subject.replace("\r", " ").replace("\n", " ")
    reply["Date"] = email.utils.formatdate(time.time(), localtime=False)
    reply["Message-ID"] = email.utils.make_msgid(domain=hostname)
    reply["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5
    reply["Precedence"] = "bulk"
    msgid = (msg.first("message-id") or "").strip()
    if msgid:
        reply["In-Reply-To"] = msgid  # RFC 5230 §5.8
        ids = (msg.first("references") or "").split() + [msgid]
        while len(ids) > 1 and sum(len(i) + 1 for i in ids) > 990:
            del ids[0]  # keep the newest (RFC 5322 §3.6.4 allows trimming)
        reply["References"] = " ".join(ids)
    if action.mime:
        # RFC 5230 §5.7: the reason is a MIME entity (headers + body) given by the user.
        raw_entity = action.reason.replace("\r\n", "\n").encode("utf-8")
        head, _, body = raw_entity.partition(b"\n\n")
        for line in head.decode("utf-8", "replace").split("\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() in ("content-type", "content-transfer-encoding"):
                reply[name.strip()] = value.strip()
        reply["MIME-Version"] = "1.0"
        reply.set_payload(body.decode("utf-8", "replace"))
        return reply.as_bytes()
    reply.set_content(action.reason)
    return reply.as_bytes()
