"""Invitations to a planned meeting, as mail: an iCalendar VEVENT in an iTIP REQUEST.

Sans-I/O: :func:`invitation_ics` makes the calendar object, :func:`invitation_message` the mail
(bytes). The gateway sends it through the :class:`InvitationMailer` port, which the runner wires to
the mail service's submission path (suite/wiring.py) — the same path as a message the host sends.

The mail follows iMIP (RFC 6047 §2.4): a ``multipart/alternative`` with a text part and the
``text/calendar; method=REQUEST`` part, which mail programs show as an invitation with
accept/decline; the same object also goes along as an ``invite.ics`` attachment for programs that
only look at attachments.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Protocol

PRODID = "-//Suite//Meetings//EN"
MAX_INVITEES = 50


class InvitationMailer(Protocol):
    """Sends a finished message from the host's account to the invitees (the mail service's
    submission: local recipients delivered, remote ones DKIM-signed into the queue)."""

    async def send(self, account_id: int, mail_from: str, rcpt_to: list[str], raw: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Invitation:
    uid: str
    title: str
    start: datetime
    """Aware datetime; written in UTC."""
    duration: timedelta
    url: str
    """The meeting link (``https://host/m/<token>``): LOCATION and URL."""
    organizer: str
    organizer_name: str
    attendees: tuple[str, ...]
    stamp: datetime


def new_uid(domain: str) -> str:
    """A globally unique UID (RFC 5545 §3.8.4.7): random left part, our domain on the right."""
    return f"{secrets.token_hex(16)}@{domain}"


def _escape(text: str) -> str:
    # RFC 5545 §3.3.11: backslash, semicolon, comma and newlines are escaped in TEXT values.
    return (
        text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\r\n", "\\n").replace("\n", "\\n")
    )


def _param(value: str) -> str:
    # RFC 5545 §3.2: a parameter value with ":" ";" or "," is quoted; DQUOTE itself is not allowed.
    value = value.replace('"', "'")
    return f'"{value}"' if any(c in value for c in ":;,") else value


def _fold(line: str) -> str:
    # RFC 5545 §3.1: lines longer than 75 octets are folded (CRLF + one space), never inside a
    # UTF-8 sequence.
    out: list[str] = []
    chunk = ""
    size = 0
    limit = 75
    for ch in line:
        n = len(ch.encode())
        if size + n > limit:
            out.append(chunk)
            chunk, size, limit = "", 0, 74  # the leading space counts on continuation lines
        chunk += ch
        size += n
    out.append(chunk)
    return "\r\n ".join(out)


def _utc(dt: datetime) -> str:
    # RFC 5545 §3.3.5 form #2: UTC time.
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def invitation_ics(inv: Invitation) -> str:
    """The VCALENDAR of an iTIP REQUEST (RFC 5546 §3.2.2: ORGANIZER, ATTENDEEs, DTSTAMP, DTSTART,
    SEQUENCE, SUMMARY, UID are required)."""
    lines = [
        "BEGIN:VCALENDAR",
        f"PRODID:{PRODID}",
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        "METHOD:REQUEST",
        "BEGIN:VEVENT",
        f"UID:{inv.uid}",
        f"DTSTAMP:{_utc(inv.stamp)}",
        f"DTSTART:{_utc(inv.start)}",
        f"DTEND:{_utc(inv.start + inv.duration)}",
        "SEQUENCE:0",
        "STATUS:CONFIRMED",
        f"SUMMARY:{_escape(inv.title)}",
        f"LOCATION:{_escape(inv.url)}",
        f"URL:{inv.url}",  # RFC 5545 §3.8.4.6: a URI value, not escaped
        f"DESCRIPTION:{_escape('Join the meeting: ' + inv.url)}",
        f"ORGANIZER;CN={_param(inv.organizer_name or inv.organizer)}:mailto:{inv.organizer}",
    ]
    lines += [
        f"ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{a}"
        for a in inv.attendees
    ]
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "".join(_fold(line) + "\r\n" for line in lines)


def invitation_message(inv: Invitation, *, message_id_domain: str) -> bytes:
    """The iMIP message (RFC 6047) from the organizer to the attendees."""
    ics = invitation_ics(inv)
    when = inv.start.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    msg = EmailMessage()
    msg["From"] = f"{inv.organizer_name} <{inv.organizer}>" if inv.organizer_name else inv.organizer
    msg["To"] = ", ".join(inv.attendees)
    msg["Subject"] = f"Invitation: {inv.title} @ {when}"
    msg["Date"] = format_datetime(inv.stamp.astimezone(UTC))
    msg["Message-ID"] = make_msgid(domain=message_id_domain)
    minutes = int(inv.duration.total_seconds() // 60)
    msg.set_content(
        f"{inv.organizer_name or inv.organizer} invites you to a meeting.\n\n"
        f"{inv.title}\n{when} ({minutes} minutes)\n\nJoin: {inv.url}\n"
    )
    # RFC 6047 §2.4: the calendar object as text/calendar with the iTIP method as a parameter.
    msg.add_alternative(ics, subtype="calendar", params={"method": "REQUEST"})
    msg.add_attachment(ics.encode(), maintype="application", subtype="ics", filename="invite.ics")
    return msg.as_bytes()


def attendees(raw: Sequence[str]) -> tuple[str, ...]:
    """Invitee addresses, de-duplicated in order; ValueError for a malformed one."""
    from email.headerregistry import Address

    out: list[str] = []
    for item in raw:
        if not isinstance(item, str) or not item.strip() or any(c in item for c in '\r\n<>,;:"') or "@" not in item:
            raise ValueError(f"not an address: {item!r}")
        try:
            addr = Address(addr_spec=item.strip())
        except (ValueError, IndexError):
            raise ValueError(f"not an address: {item!r}") from None
        if not addr.username or "." not in addr.domain:
            raise ValueError(f"not an address: {item!r}")
        if addr.addr_spec.lower() not in (a.lower() for a in out):
            out.append(addr.addr_spec)
    if len(out) > MAX_INVITEES:
        raise ValueError(f"at most {MAX_INVITEES} invitees")
    return tuple(out)
