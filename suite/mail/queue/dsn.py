"""Delivery Status Notifications (RFC 3464): multipart/report with message/delivery-status.

Built with the ``email`` package: the delivery-status part's payload is a list of header blocks
(per-message fields, then one block per recipient), which its generator writes as RFC 3464 §2.1 asks.
The original is returned as text/rfc822-headers (RFC 6522 §4 allows headers only; it keeps the DSN small).
"""

from __future__ import annotations

import email.charset
import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart


@dataclass(frozen=True, slots=True)
class FailedRecipient:
    address: str
    status: str  # RFC 3463, e.g. "5.1.1"
    diagnostic: str  # the remote reply, "550 5.1.1 no such user", or our own text
    remote_mta: str = ""
    last_attempt: float | None = None
    action: str = "failed"  # RFC 3464 §2.3.3: failed | delayed | delivered | relayed | expanded


def _addr_type(address: str) -> str:
    # RFC 6533 §3: utf-8 address type for internationalized addresses.
    return f"rfc822; {address}" if address.isascii() else f"utf-8; {address}"


def _qp_utf8() -> email.charset.Charset:
    cs = email.charset.Charset("utf-8")
    cs.body_encoding = email.charset.QP
    return cs


def _text(text: str, subtype: str) -> MIMENonMultipart:
    """A text/<subtype> part in UTF-8, quoted-printable (readable by a person in any mail reader)."""
    part = MIMENonMultipart("text", subtype)
    part.set_payload(text, _qp_utf8())
    return part


def _block(fields: list[tuple[str, str]]) -> Message:
    m = Message(policy=policy.compat32)
    for k, v in fields:
        m[k] = v
    return m


def build_dsn(
    *,
    reporting_mta: str,
    sender: str,
    recipients: list[FailedRecipient],
    original_headers: bytes,
    arrival: float,
    queue_id: str = "",
    now: datetime | None = None,
) -> bytes:
    """The DSN to ``sender`` (the original envelope sender) for ``recipients`` as bytes with CRLF."""
    now = now or datetime.now(UTC)
    expired = any(r.status.startswith("4") for r in recipients)
    lines = [
        f"This is the mail system at host {reporting_mta}.",
        "",
        "Your message could not be delivered to one or more recipients."
        + (" It stayed in the queue too long without success." if expired else ""),
        "",
    ]
    for r in recipients:
        lines.append(f"<{r.address}>: {r.diagnostic}" + (f" (from {r.remote_mta})" if r.remote_mta else ""))
    human = _text("\r\n".join(lines) + "\r\n", "plain")
    human["Content-Description"] = "Notification"

    per_message = [("Reporting-MTA", f"dns; {reporting_mta}")]  # RFC 3464 §2.2.2
    if queue_id:
        per_message.append(("X-Suite-Queue-ID", queue_id))
    per_message.append(("Arrival-Date", email.utils.format_datetime(datetime.fromtimestamp(arrival, UTC))))
    blocks: list[Message | str] = [_block(per_message)]
    for r in recipients:
        fields = [
            ("Final-Recipient", _addr_type(r.address)),  # RFC 3464 §2.3.2
            ("Action", r.action),  # §2.3.3
            ("Status", r.status),  # §2.3.4
        ]
        if r.remote_mta:
            fields.append(("Remote-MTA", f"dns; {r.remote_mta}"))  # §2.3.5
        if r.diagnostic and r.diagnostic[:3].isdigit():
            fields.append(("Diagnostic-Code", f"smtp; {r.diagnostic}"))  # §2.3.6
        else:
            fields.append(("Diagnostic-Code", f"X-Suite; {r.diagnostic}"))
        if r.last_attempt:
            fields.append(
                ("Last-Attempt-Date", email.utils.format_datetime(datetime.fromtimestamp(r.last_attempt, UTC)))
            )
        blocks.append(_block(fields))
    status = MIMEBase("message", "delivery-status")
    status.set_payload(blocks)
    status["Content-Description"] = "Delivery report"

    headers = _text(original_headers.decode("utf-8", "replace"), "rfc822-headers")
    headers["Content-Description"] = "Undelivered Message Headers"

    report = MIMEMultipart("report", report_type="delivery-status")  # RFC 6522 §3
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{reporting_mta}>"
    report["To"] = sender
    report["Subject"] = (
        "Undelivered Mail Returned to Sender" if not expired else "Undelivered Mail: delivery time expired"
    )
    report["Date"] = email.utils.format_datetime(now)
    report["Message-ID"] = email.utils.make_msgid(domain=reporting_mta)
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5
    for part in (human, status, headers):
        del part["MIME-Version"]  # only the top level carries it (RFC 2045 §4)
        report.attach(part)
    return report.as_bytes(policy=policy.SMTPUTF8.clone(linesep="\r\n"))


def header_block(raw: bytes, limit: int = 64 * 1024) -> bytes:
    """The header section of a message (up to the blank line), at most ``limit`` bytes."""
    head = raw[:limit]
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = head.find(sep)
        if i >= 0:
            return head[: i + len(sep) // 2]
    return head
