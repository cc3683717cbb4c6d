"""The production side of the SMTP interfaces: recipients, logins and senders from the account store,
delivery into the mail store and the outbound queue.

Memory: the spooled file is streamed into the blob store in fixed chunks. The mail store parses a
message from bytes (``suite.mail.mime`` needs ``bytes``; an mmap lacks ``startswith``), so the message is
read once, in a thread, while holding a share of a byte budget: however many sessions finish DATA at
once, no more than ``parse_budget`` bytes of message content are in memory for parsing and signing.
"""

from __future__ import annotations

import asyncio
import logging

from suite.mail.smtp import statuscodes as sc
from suite.mail.smtp.address import Mailbox
from suite.mail.smtp.interfaces import (
    AuthOutcome,
    AuthStatus,
    DeliveryError,
    MessageEnvelope,
    RecipientDecision,
    RecipientStatus,
    SpooledMessage,
)
from suite.mail.smtp.statuscodes import Reply
from suite.storage.blobs import CHUNK, BlobRef

log = logging.getLogger("suite.mail.smtp.delivery")

DEFAULT_PARSE_BUDGET = 32 * 1024 * 1024
MAILBOX_FULL = Reply(552, "5.2.2", "Mailbox full")  # RFC 3463 §3.3
MAILBOX_FULL_TEMP = Reply(452, "4.2.2", "Mailbox full, try again later")


class ByteBudget:
    """An async semaphore counted in bytes; a request larger than the budget waits for all of it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._cond = asyncio.Condition()

    async def acquire(self, n: int) -> int:
        n = min(max(n, 1), self.total)
        async with self._cond:
            await self._cond.wait_for(lambda: self.free >= n)
            self.free -= n
        return n

    async def release(self, n: int) -> None:
        async with self._cond:
            self.free += n
            self._cond.notify_all()


# ---------------------------------------------------------------- policies
class AccountRecipients:
    """RecipientPolicy over the account store: local domains, accounts, aliases, +detail, catch-all."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def check_recipient(self, mailbox: Mailbox) -> RecipientDecision:
        accounts = self.ctx.accounts
        if mailbox.domain == "" and mailbox.local_part.lower() == "postmaster":
            # RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted.
            for d in await accounts.list_domains():
                acct = await accounts.resolve_recipient(f"postmaster@{d.name}")
                if acct is not None:
                    return RecipientDecision(RecipientStatus.LOCAL, (acct.address,))
            return RecipientDecision(RecipientStatus.UNKNOWN_USER)
        if mailbox.is_literal or not await accounts.is_local_domain(mailbox.domain):
            return RecipientDecision(RecipientStatus.NOT_LOCAL)
        acct = await accounts.resolve_recipient(f"{mailbox.local_part}@{mailbox.domain}")
        if acct is None or acct.disabled:
            return RecipientDecision(RecipientStatus.UNKNOWN_USER)
        return RecipientDecision(RecipientStatus.LOCAL, (acct.address,))


class AccountAuthenticator:
    """Authenticator over ``AccountStore.authenticate`` with scope "smtp" (account or app password)."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def authenticate(self, username: str, password: str, *, scope: str, client_ip: str) -> AuthOutcome:
        result = await self.ctx.accounts.authenticate(username, password, scope="smtp", ip=client_ip or None)
        if result.ok:
            return AuthOutcome(AuthStatus.OK, str(result.account.id))
        if result.outcome == "locked":
            return AuthOutcome(AuthStatus.LOCKED)
        return AuthOutcome(AuthStatus.INVALID)


class AccountSenders:
    """SenderPolicy over ``AccountStore.may_send_as``: own address, aliases, +details."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def may_send_as(self, account_id: str, address: str) -> bool:
        return await self.ctx.accounts.may_send_as(int(account_id), address)


# ---------------------------------------------------------------- delivery
def _read_all(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class StoreDeliverer:
    """Deliverer: local recipients into the mail store (INBOX, or Junk on a DMARC quarantine verdict),
    remote recipients (submission only) DKIM-signed into the outbound queue."""

    def __init__(self, ctx, *, parse_budget: int = DEFAULT_PARSE_BUDGET) -> None:
        from suite.mail.store.store import MailStore

        self.ctx = ctx
        self.store = MailStore(ctx)
        self.budget = ByteBudget(parse_budget)

    async def _to_blob(self, message: SpooledMessage) -> BlobRef:
        writer = await self.ctx.blobs.writer()
        try:
            f = await asyncio.to_thread(open, message.path, "rb")
            try:
                while chunk := await asyncio.to_thread(f.read, CHUNK):
                    await writer.write(chunk)
            finally:
                f.close()
            ref = await writer.commit()
        except BaseException:
            await writer.abort()
            raise
        if ref.digest != message.sha256:
            raise RuntimeError("spool file changed while it was stored")
        return ref

    async def deliver(self, envelope: MessageEnvelope, message: SpooledMessage) -> None:
        from suite.mail.queue import dkim, queue

        local = [r for r in envelope.recipients if r.local]
        remote = [r.address for r in envelope.recipients if not r.local]
        if remote and not envelope.submission:
            raise DeliveryError(sc.RELAY_DENIED)  # the MX never relays (the RCPT check refused them already)
        ref = await self._to_blob(message)
        held = await self.budget.acquire(message.size)
        raw = b""
        try:
            raw = await asyncio.to_thread(_read_all, message.path)
            if remote:
                dkim_headers = b""
                from_domain = await asyncio.to_thread(_from_domain, raw)
                if from_domain and await self.ctx.accounts.is_local_domain(from_domain):
                    keys = await dkim.domain_keys(self.ctx, from_domain)
                    if keys:
                        dkim_headers = await asyncio.to_thread(dkim.sign, raw, keys)
                await queue.enqueue(
                    self.ctx,
                    mail_from=envelope.mail_from,
                    recipients=remote,
                    blob=ref,
                    dkim_headers=dkim_headers,
                    account_id=int(envelope.account_id) if envelope.account_id else None,
                    smtputf8=envelope.smtputf8,
                    body_8bit=envelope.body_8bit,
                    session_id=envelope.session_id,
                )
            if local:
                await self._deliver_local(envelope, raw, ref, local_queued=bool(remote))
        finally:
            raw = b""  # drop the bytes before another session may take the budget
            await self.budget.release(held)

    async def _junk_mailbox(self, account_id: int) -> str:
        """The account's \\Junk mailbox (RFC 6154 §2), whatever it is called; INBOX when there is none."""
        for mb in await self.store.list_mailboxes(account_id):
            if mb.special_use == "\\Junk":
                return mb.name
        return "INBOX"

    async def _deliver_local(self, envelope: MessageEnvelope, raw: bytes, ref: BlobRef, *, local_queued: bool) -> None:
        from suite.mail.queue import dsn as dsnlib
        from suite.mail.queue import queue
        from suite.mail.store.store import QuotaExceeded

        accounts: dict[int, str] = {}
        for r in envelope.recipients:
            if not r.local:
                continue
            for address in r.resolved or (r.address,):
                acct = await self.ctx.accounts.resolve_recipient(address)
                if acct is None:
                    raise DeliveryError(sc.LOCAL_ERROR)  # removed since RCPT: try again later
                accounts.setdefault(acct.id, r.address)  # one copy per account (alias + address)
        over_quota: list[str] = []
        stored = 0
        for account_id, rcpt in accounts.items():
            mailbox = await self._junk_mailbox(account_id) if envelope.junk else "INBOX"
            try:
                await self.store.deliver(account_id, mailbox, raw, blob=ref, internaldate=envelope.received_at or None)
                stored += 1
            except QuotaExceeded:
                over_quota.append(rcpt)
        if not over_quota:
            return
        if stored == 0 and not local_queued:
            # Nothing was accepted: one reply covers it. RFC 3463: 5.2.2 mailbox full (a single
            # recipient), else 4.2.2 so the client tries again later for all of them.
            raise DeliveryError(MAILBOX_FULL if len(accounts) == 1 else MAILBOX_FULL_TEMP)
        # Some copies are stored, so the message is accepted; the others bounce (RFC 5321 §6.1).
        report = dsnlib.build_dsn(
            reporting_mta=self.ctx.settings.hostname,
            sender=envelope.mail_from,
            recipients=[dsnlib.FailedRecipient(a, "5.2.2", "552 5.2.2 Mailbox full") for a in over_quota],
            original_headers=dsnlib.header_block(raw),
            arrival=envelope.received_at,
            queue_id=envelope.session_id,
        )
        await queue.deliver_dsn(self.ctx, envelope.mail_from, report)


def _from_domain(raw: bytes) -> str | None:
    """Domain of the (first) From address, for choosing the DKIM key (the d= must align, RFC 7489 §3.1.1)."""
    from email import policy
    from email.parser import BytesHeaderParser

    try:
        end = raw.find(b"\r\n\r\n")
        head = raw[: end + 4] if end >= 0 else raw[: 1 << 20]
        msg = BytesHeaderParser(policy=policy.default).parsebytes(head)
        header = msg.get("From")
        addrs = header.addresses if header is not None else ()
        return addrs[0].domain.lower() if addrs and addrs[0].domain else None
    except Exception:  # noqa: BLE001 - a broken From means no signature, not a failure
        return None
