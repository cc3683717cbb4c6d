"""The port EmailSubmission needs (a Protocol), and its implementation over the SMTP service's
deliverer: local recipients into their mailboxes, remote ones DKIM-signed into the outbound queue —
exactly the path of an authenticated SMTP submission."""

from __future__ import annotations

import time
from typing import Protocol


class Submitter(Protocol):
    async def is_local(self, address: str) -> bool: ...
    async def known_local(self, address: str) -> bool: ...
    async def submit(
        self, account_id: int, mail_from: str, rcpt_to: list[str], raw: bytes, ref: str, hold_until: float | None = None
    ) -> None: ...


class QueueSubmitter:
    def __init__(self, ctx) -> None:
        from suite.mail.smtp.delivery import StoreDeliverer

        self.ctx = ctx
        self.deliverer = StoreDeliverer(ctx)

    async def is_local(self, address: str) -> bool:
        return await self.ctx.accounts.is_local_domain(address.rpartition("@")[2])

    async def known_local(self, address: str) -> bool:
        return await self.ctx.accounts.resolve_recipient(address) is not None

    async def submit(
        self, account_id: int, mail_from: str, rcpt_to: list[str], raw: bytes, ref: str, hold_until: float | None = None
    ) -> None:
        """``hold_until`` (RFC 4865 FUTURERELEASE): every recipient, local ones too, waits in the
        outbound queue until then."""
        from suite.mail.smtp.interfaces import MessageEnvelope, Recipient, SpooledMessage

        recipients = tuple([Recipient(a, await self.is_local(a)) for a in rcpt_to])
        envelope = MessageEnvelope(
            mail_from=mail_from,
            recipients=recipients,
            client_ip="127.0.0.1",
            helo="jmap",
            tls=True,
            smtputf8=not all(a.isascii() for a in [mail_from, *rcpt_to]),
            body_8bit=not raw.isascii(),
            submission=True,
            account_id=str(account_id),
            received_at=time.time(),
            session_id=ref,
            hold_until=hold_until,
        )
        await self.deliverer.deliver(envelope, SpooledMessage(None, len(raw), data=raw))
