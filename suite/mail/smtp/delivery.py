"""The production side of the SMTP interfaces: recipients, logins and senders from the account store,
delivery into the mail store and the outbound queue.

Memory: the mail store parses a message from bytes (``suite.mail.mime`` needs ``bytes``; an mmap lacks
``startswith``), so the message is read once, in a thread, while holding a share of a byte budget:
however many sessions finish DATA at once, no more than ``parse_budget`` bytes of message content are
in memory for parsing, signing and storing. Those same bytes go to the blob store (once, however many
mailboxes and queue entries refer to them).

Speed: every message asks the account store the same few questions (is this domain ours, which account
is this address, which mailbox is INBOX). ``DirectoryCache`` keeps the positive answers for a few seconds,
so a busy MX asks once per address and not once per RCPT and again per delivery.
"""

from __future__ import annotations

import asyncio
import logging
import time

from suite.mail.sieve import srs
from suite.mail.sieve.delivery import SieveDelivery
from suite.mail.sieve.store import srs_key
from suite.mail.smtp import bigattach
from suite.mail.smtp import statuscodes as sc
from suite.mail.smtp.address import Mailbox
from suite.mail.smtp.interfaces import (
    AttachmentLinker,
    AuthOutcome,
    AuthStatus,
    DeliveryError,
    MessageEnvelope,
    Recipient,
    RecipientDecision,
    RecipientStatus,
    SpooledMessage,
)
from suite.mail.smtp.statuscodes import Reply
from suite.storage.blobs import BlobRef

log = logging.getLogger("suite.mail.smtp.delivery")

DEFAULT_PARSE_BUDGET = 32 * 1024 * 1024
REWRITE_FACTOR = 3  # budget share of a message whose big attachments become links (bigattach.py)
INLINE_READ = 256 * 1024  # spool files up to this size are read on the event loop
DIRECTORY_TTL = 5.0  # seconds a positive account-store answer is reused
MAILBOX_FULL = Reply(552, "5.2.2", "Mailbox full")  # RFC 3463 §3.3
MAILBOX_FULL_TEMP = Reply(452, "4.2.2", "Mailbox full, try again later")
SRS_FORWARD = "\x00srs:"  # resolved "address" of an SRS recipient: forward to what follows


class ByteBudget:
    """An async semaphore counted in bytes; a request larger than the budget waits for all of it.

    Nobody waiting and room enough (the usual case): taken and given back without the condition's lock."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._waiting = 0
        self._cond = asyncio.Condition()

    async def acquire(self, n: int) -> int:
        n = min(max(n, 1), self.total)
        if not self._waiting and self.free >= n:
            self.free -= n
            return n
        self._waiting += 1
        try:
            async with self._cond:
                await self._cond.wait_for(lambda: self.free >= n)
                self.free -= n
        finally:
            self._waiting -= 1
        return n

    async def release(self, n: int) -> None:
        self.free += n
        if self._waiting:
            async with self._cond:
                self._cond.notify_all()


# ---------------------------------------------------------------- policies
class DirectoryCache:
    """Positive answers of the account store, reused for ``ttl`` seconds.

    Only positive answers are kept: a domain or user added a moment ago is never refused from the
    cache (a 550 is final for the sender). The price is that a domain, account or alias removed or
    disabled less than ``ttl`` seconds ago may still receive mail.
    """

    def __init__(self, accounts, *, ttl: float = DIRECTORY_TTL, max_entries: int = 10_000) -> None:
        self.accounts = accounts
        self.ttl = ttl
        self.max_entries = max_entries
        self._domains: dict[str, float] = {}
        self._recipients: dict[str, tuple[float, object]] = {}

    def _room(self, table: dict) -> None:
        if len(table) >= self.max_entries:
            now = time.monotonic()
            for key in [k for k, v in table.items() if (v if isinstance(v, float) else v[0]) <= now]:
                del table[key]
            if len(table) >= self.max_entries:
                table.clear()

    async def is_local_domain(self, domain: str) -> bool:
        key = domain.lower()
        expires = self._domains.get(key)
        if expires is not None and expires > time.monotonic():
            return True
        local = await self.accounts.is_local_domain(domain)
        if local:
            self._room(self._domains)
            self._domains[key] = time.monotonic() + self.ttl
        return local

    async def resolve_recipient(self, address: str):
        """``AccountStore.resolve_recipient`` (an ``AccountInfo`` or None), cached when found."""
        hit = self._recipients.get(address)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        acct = await self.accounts.resolve_recipient(address)
        if acct is not None:
            self._room(self._recipients)
            self._recipients[address] = (time.monotonic() + self.ttl, acct)
        return acct


class AccountRecipients:
    """RecipientPolicy over the account store: local domains, accounts, aliases, +detail, catch-all."""

    def __init__(self, ctx, directory: DirectoryCache | None = None) -> None:
        self.ctx = ctx
        self.directory = directory or DirectoryCache(ctx.accounts)

    async def check_recipient(self, mailbox: Mailbox) -> RecipientDecision:
        accounts = self.ctx.accounts
        if mailbox.domain == "" and mailbox.local_part.lower() == "postmaster":
            # RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted.
            for d in await accounts.list_domains():
                acct = await accounts.resolve_recipient(f"postmaster@{d.name}")
                if acct is not None:
                    return RecipientDecision(RecipientStatus.LOCAL, (acct.address,))
            return RecipientDecision(RecipientStatus.UNKNOWN_USER)
        if mailbox.is_literal or not await self.directory.is_local_domain(mailbox.domain):
            return RecipientDecision(RecipientStatus.NOT_LOCAL)
        if srs.is_srs(mailbox.local_part):
            # A bounce (or reply) to the SRS sender of mail a Sieve redirect forwarded: back to the
            # original sender when the address is ours and unexpired, else unknown.
            original = srs.reverse(str(mailbox), srs_key(self.ctx.settings))
            if original is None:
                return RecipientDecision(RecipientStatus.UNKNOWN_USER)
            return RecipientDecision(RecipientStatus.LOCAL, (SRS_FORWARD + original,))
        acct = await self.directory.resolve_recipient(f"{mailbox.local_part}@{mailbox.domain}")
        if acct is None or acct.disabled:
            return RecipientDecision(RecipientStatus.UNKNOWN_USER)
        return RecipientDecision(RecipientStatus.LOCAL, (acct.address,))


class AccountAuthenticator:
    """Authenticator over ``AccountStore.authenticate`` with scope "smtp" (account or app password)."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def authenticate(self, username: str, password: str, *, scope: str, client_ip: str) -> AuthOutcome:
        result = await self.ctx.accounts.authenticate(username, password, scope="smtp", ip=client_ip or None)
        self.ctx.metrics.login("smtp", result.ok)
        if result.ok:
            return AuthOutcome(AuthStatus.OK, str(result.account.id), result.app_password_id)
        if result.outcome == "locked":
            return AuthOutcome(AuthStatus.LOCKED)
        return AuthOutcome(AuthStatus.INVALID)


class AccountSenders:
    """SenderPolicy over ``AccountStore.may_send_as``: own address, aliases, +details."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def may_send_as(self, account_id: str, address: str) -> bool:
        return await self.ctx.accounts.may_send_as(int(account_id), address)


# The Received field the server writes on top of what the client sent (counted in the spool file's size,
# not in the RFC 1870 limit the client was given).
TRACE_ROOM = 8192


class AccountLinks:
    """LinkPolicy over the account's ``big_attachment_links`` setting."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def links_big_attachments(self, account_id: str) -> bool:
        return await self.ctx.accounts.big_attachment_links(int(account_id))


# ---------------------------------------------------------------- delivery
def _read_all(path, prefix: bytes = b"") -> bytes:
    with open(path, "rb") as f:
        return prefix + f.read() if prefix else f.read()


class StoreDeliverer:
    """Deliverer: local recipients into the mail store (INBOX, or Junk on a DMARC quarantine verdict),
    remote recipients (submission only) DKIM-signed into the outbound queue."""

    accepts_prefix = True  # see interfaces.Deliverer
    accepts_memory = True

    def __init__(
        self,
        ctx,
        *,
        parse_budget: int = DEFAULT_PARSE_BUDGET,
        directory: DirectoryCache | None = None,
        linker: AttachmentLinker | None = None,
    ) -> None:
        from suite.mail.store.store import MailStore

        self.ctx = ctx
        # Big attachments of submitted mail become share links (when wired and the account asks).
        self.linker = linker
        self.big_attachment_bytes: int = ctx.settings.big_attachment_bytes
        # what is queued or stored, after the rewrite, whatever the submission limit let in
        self.max_message_size: int = ctx.settings.smtp_max_message_size
        self.max_stored_size = self.max_message_size + TRACE_ROOM
        self.store = MailStore(ctx)
        self.budget = ByteBudget(parse_budget)
        self.directory = directory or DirectoryCache(ctx.accounts)
        self._mailbox_ids: dict[tuple[int, bool], tuple[float, int]] = {}
        self.sieve = SieveDelivery(ctx, self.store)  # per-account compiled scripts live in its store

    async def deliver(self, envelope: MessageEnvelope, message: SpooledMessage, prefix: bytes = b"") -> None:
        """Deliver ``prefix`` (header fields to add on top, e.g. Authentication-Results) + the spool file."""
        from suite.mail.queue import dkim, queue

        local = [r for r in envelope.recipients if r.local]
        remote = [r.address for r in envelope.recipients if not r.local]
        if envelope.hold_until is not None and envelope.submission:
            # RFC 4865: held in the queue, local recipients too (delivered when due, see LocalFirst)
            local, remote = [], [r.address for r in envelope.recipients]
        if remote and not envelope.submission:
            raise DeliveryError(sc.RELAY_DENIED)  # the MX never relays (the RCPT check refused them already)
        accounts = await self._local_accounts(envelope) if local else {}
        srs_back = [a[len(SRS_FORWARD) :] for r in local for a in r.resolved if a.startswith(SRS_FORWARD)]
        link_account = await self._links_for(envelope, message)
        need = message.size + len(prefix)
        # Rewriting holds the parsed message (its encoded parts) and the decoded attachments next to the
        # bytes: about three times as much. A message over a third of the budget takes all of it.
        held = await self.budget.acquire(REWRITE_FACTOR * need if link_account is not None else need)
        raw = b""
        try:
            if message.data is not None:
                raw = prefix + message.data if prefix else message.data
            elif message.size <= INLINE_READ:
                raw = _read_all(message.path, prefix)  # just written, in the page cache: cheaper than a thread hop
            else:
                raw = await asyncio.to_thread(_read_all, message.path, prefix)
            if len(raw) != message.size + len(prefix):
                raise RuntimeError("spool file changed while it was read")
            if link_account is not None:
                raw = await self._share_big_attachments(link_account, raw)
            if len(raw) - len(prefix) > self.max_stored_size:
                # RFC 1870 §6.3: let in under the submission limit, still too big once the attachments
                # over the threshold became links (or the account turned links off meanwhile)
                raise DeliveryError(self._too_big(len(raw)))
            # One blob however many references: the queue entry and every mailbox copy share it.
            # A lone mailbox copy lets the store write it (it parses the same bytes in the same step).
            ref = await self.ctx.blobs.put(raw) if remote or srs_back or len(accounts) > 1 else None
            if srs_back and ref is not None:
                # RFC 5321 §4.5.5: a bounce keeps its null reverse-path on the way back.
                await queue.enqueue(
                    self.ctx,
                    mail_from=envelope.mail_from,
                    recipients=srs_back,
                    blob=ref,
                    smtputf8=envelope.smtputf8,
                    body_8bit=envelope.body_8bit,
                    session_id=envelope.session_id,
                )
            if remote:
                assert ref is not None
                dkim_headers = b""
                from_domain = await asyncio.to_thread(_from_domain, raw)
                if from_domain and await self.directory.is_local_domain(from_domain):
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
                    hold_until=envelope.hold_until if envelope.submission else None,
                )
            if accounts:
                await self._deliver_local(envelope, accounts, raw, ref, local_queued=bool(remote or srs_back))
                self.ctx.metrics.messages_in.labels("smtp").inc(len(accounts))
        finally:
            raw = b""  # drop the bytes before another session may take the budget
            await self.budget.release(held)

    async def _links_for(self, envelope: MessageEnvelope, message: SpooledMessage) -> int | None:
        """The sending account when this message may carry attachments to turn into links."""
        if self.linker is None or not envelope.submission or not envelope.account_id:
            return None
        if message.size <= self.big_attachment_bytes:  # no part can be larger than the whole
            return None
        account_id = int(envelope.account_id)
        return account_id if await self.ctx.accounts.big_attachment_links(account_id) else None

    def _too_big(self, size: int) -> Reply:
        return sc.MESSAGE_TOO_BIG.with_text(
            f"Message too big: {size} bytes once attachments over {self.big_attachment_bytes} bytes are links; "
            f"the limit is {self.max_message_size}"
        )

    async def _share_big_attachments(self, account_id: int, raw: bytes) -> bytes:
        """Issue 14 §3: each attachment over the threshold goes to the sender's files and the message
        carries a link instead; before it is queued, stored or DKIM-signed."""
        assert self.linker is not None
        msg, big = await asyncio.to_thread(bigattach.find_big_parts, raw, self.big_attachment_bytes)
        if bigattach.size_after(len(raw), big) > self.max_stored_size:
            raise DeliveryError(self._too_big(bigattach.size_after(len(raw), big)))  # before storing a file
        if not big:
            return raw
        replaced = []
        for part in big:
            link = await self.linker.share(account_id, part.filename, part.media_type, part.data)
            replaced.append((part, link))
        out = await asyncio.to_thread(bigattach.rewrite, msg, replaced)
        log.info("big attachments shared: account=%s parts=%d bytes %d -> %d", account_id, len(big), len(raw), len(out))
        return out

    async def _local_accounts(self, envelope: MessageEnvelope) -> dict[int, str]:
        """Account id -> the RCPT address it came from; one copy per account (alias + address)."""
        accounts: dict[int, str] = {}
        for r in envelope.recipients:
            if not r.local:
                continue
            for address in r.resolved or (r.address,):
                if address.startswith(SRS_FORWARD):
                    continue
                acct = await self.directory.resolve_recipient(address)
                if acct is None:
                    raise DeliveryError(sc.LOCAL_ERROR)  # removed since RCPT: try again later
                accounts.setdefault(acct.id, r.address)
        return accounts

    async def _junk_mailbox(self, account_id: int) -> str:
        """The account's \\Junk mailbox (RFC 6154 §2), whatever it is called; INBOX when there is none."""
        for mb in await self.store.list_mailboxes(account_id):
            if mb.special_use == "\\Junk":
                return mb.name
        return "INBOX"

    async def _mailbox_id(self, account_id: int, junk: bool) -> int:
        """INBOX's (or Junk's) id, known for ``DIRECTORY_TTL`` seconds: the store then needs no lookup."""
        hit = self._mailbox_ids.get((account_id, junk))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        name = await self._junk_mailbox(account_id) if junk else "INBOX"
        mailbox_id = (await self.store.require_mailbox(account_id, name)).id
        if len(self._mailbox_ids) >= self.directory.max_entries:
            self._mailbox_ids.clear()
        self._mailbox_ids[(account_id, junk)] = (time.monotonic() + self.directory.ttl, mailbox_id)
        return mailbox_id

    async def _store(self, account_id: int, junk: bool, raw: bytes, ref: BlobRef | None, when: float | None) -> None:
        from suite.mail.store.store import NoSuchMailbox

        try:
            await self.store.deliver(
                account_id, await self._mailbox_id(account_id, junk), raw, blob=ref, internaldate=when
            )
        except NoSuchMailbox:
            # The remembered mailbox went away (a Junk folder deleted): look it up again, once.
            self._mailbox_ids.pop((account_id, junk), None)
            await self.store.deliver(
                account_id, await self._mailbox_id(account_id, junk), raw, blob=ref, internaldate=when
            )

    async def _deliver_local(
        self,
        envelope: MessageEnvelope,
        accounts: dict[int, str],
        raw: bytes,
        ref: BlobRef | None,
        *,
        local_queued: bool,
    ) -> None:
        from suite.mail.queue import dsn as dsnlib
        from suite.mail.queue import queue
        from suite.mail.store.store import QuotaExceeded

        over_quota: list[str] = []
        stored = 0
        blob_ref = [ref]

        async def put_blob() -> BlobRef:
            got = blob_ref[0]
            if got is None:
                got = blob_ref[0] = await self.ctx.blobs.put(raw)
            return got

        for account_id, rcpt in accounts.items():
            try:
                when = envelope.received_at or None
                # The account's active Sieve script, if any, decides where the copy goes.
                if not await self.sieve.deliver(
                    account_id,
                    rcpt,
                    envelope.mail_from,
                    raw,
                    blob_ref[0],
                    keep_mailbox=await self._mailbox_id(account_id, envelope.junk),
                    internaldate=when,
                    put_blob=put_blob,
                ):
                    await self._store(account_id, envelope.junk, raw, blob_ref[0], when)
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
    except Exception:
        return None


class LocalFirstTransport:
    """The queue's ``OutboundTransport``: recipients in our own domains are delivered into their
    mailboxes by the ``StoreDeliverer`` (only held messages — RFC 4865 FUTURERELEASE — reach the
    queue with local recipients); every other domain goes through ``inner`` (MX / smarthost)."""

    def __init__(self, deliverer: StoreDeliverer, inner) -> None:
        self.deliverer = deliverer
        self.inner = inner

    async def send(self, envelope, message: bytes) -> list:
        from suite.mail.queue.transport import Outcome

        if not await self.deliverer.directory.is_local_domain(envelope.domain):
            return await self.inner.send(envelope, message)
        out = []
        for rcpt in envelope.recipients:
            env = MessageEnvelope(
                mail_from=envelope.mail_from,
                recipients=(Recipient(rcpt, True),),
                client_ip="127.0.0.1",
                helo="queue",
                tls=True,
                smtputf8=envelope.smtputf8,
                body_8bit=envelope.body_8bit,
                submission=True,
                received_at=time.time(),
            )
            try:
                await self.deliverer.deliver(env, SpooledMessage(None, len(message), data=message))
            except DeliveryError as exc:
                out.append(Outcome(rcpt, exc.reply.code, str(exc.reply)))
                continue
            out.append(Outcome(rcpt, 250, "250 2.0.0 delivered locally"))
        return out
