"""Running an account's active Sieve script at local delivery and carrying out its actions.

Called by the SMTP deliverer per recipient account. Nothing is lost: a script that fails to compile
or to run, or an action that fails, ends in the message kept in INBOX (RFC 5228 §2.10.6) and a log
line. ``fileinto`` a missing mailbox files into INBOX unless ``:create`` was given (Dovecot's rule).
Redirects go to the outbound queue with an SRS envelope sender; vacation replies with the null
sender, once per sender and period.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import logging
from collections.abc import Awaitable, Callable

from . import srs
from . import vacation as vac
from .evaluate import INBOX, Outcome, Store, evaluate
from .message import Envelope, MessageView
from .parser import SieveError
from .store import SieveStore, srs_key

log = logging.getLogger("suite.mail.sieve")

MAX_RECEIVED = 30  # a message that went round this often is not redirected again (loop, RFC 5228 §4.2)
MAX_REDIRECT_HOPS = 10
REDIRECTED_FROM = "X-Sieve-Redirected-From"  # one per redirect (as Dovecot): our loop detection


class RedirectLoop(Exception):
    pass


def _putter(ctx, raw: bytes) -> Callable[[], Awaitable]:
    ref: list = []

    async def put():
        if not ref:
            ref.append(await ctx.blobs.put(raw))
        return ref[0]

    return put


class SieveDelivery:
    def __init__(self, ctx, mail_store, scripts: SieveStore | None = None) -> None:
        self.ctx = ctx
        self.store = mail_store
        self.scripts = scripts or SieveStore(ctx)
        self._srs_key: bytes | None = None

    @property
    def srs_key(self) -> bytes:
        if self._srs_key is None:
            self._srs_key = srs_key(self.ctx.settings)
        return self._srs_key

    async def deliver(
        self,
        account_id: int,
        rcpt: str,
        mail_from: str,
        raw: bytes,
        ref,
        *,
        keep_mailbox: int,
        internaldate: float | None,
        put_blob: Callable[[], Awaitable],
    ) -> bool:
        """Filter and store one copy; False when the account has no active script (the caller stores
        as usual). QuotaExceeded from the store propagates like a plain delivery's."""
        try:
            script = await self.scripts.active_script(account_id)
        except SieveError as exc:
            log.warning("sieve: account %s: active script does not compile (%s); kept in INBOX", account_id, exc)
            return False
        if script is None:
            return False
        msg = MessageView.from_bytes(raw)
        env = Envelope(mail_from, rcpt)
        try:
            outcome = evaluate(script, msg, env)
        except Exception as exc:  # RFC 5228 §2.10.6: a run-time error means implicit keep
            log.warning("sieve: account %s: script failed (%s); kept in INBOX", account_id, exc)
            return False
        await self._stores(account_id, outcome, raw, ref, keep_mailbox, internaldate, put_blob)
        if outcome.redirects:
            try:
                await self._redirect(account_id, rcpt, mail_from, msg, outcome.redirects)
            except Exception:
                log.exception("sieve: account %s: redirect failed; keeping a copy in INBOX", account_id)
                if not outcome.stores:
                    await self.store.deliver(account_id, keep_mailbox, raw, blob=ref, internaldate=internaldate)
        if outcome.vacation is not None:
            try:
                await self._vacation(account_id, rcpt, mail_from, msg, outcome)
            except Exception:
                log.exception("sieve: account %s: vacation reply failed", account_id)
        return True

    async def _stores(
        self, account_id: int, outcome: Outcome, raw: bytes, ref, keep_mailbox: int, when, put_blob
    ) -> None:
        from suite.mail.store.store import MailStoreError

        # Resolve mailboxes first: a missing one becomes INBOX (merged, so INBOX gets one copy).
        targets: dict[int | str, tuple[str, ...]] = {}
        for s in outcome.stores:
            target: int | str = keep_mailbox
            if s.mailbox.upper() != INBOX:
                target = await self._mailbox(account_id, s)
            flags = targets.get(target, ())
            targets[target] = tuple(dict.fromkeys((*flags, *s.flags)))
        if ref is None and len(targets) > 1:
            ref = await put_blob()  # one blob for every copy
        for target, flags in targets.items():
            try:
                await self.store.deliver(account_id, target, raw, blob=ref, flags=flags, internaldate=when)
            except MailStoreError as exc:
                if exc.code == "OVERQUOTA" or target == "INBOX":
                    raise
                # a fileinto mailbox, or the remembered Junk, deleted meanwhile: INBOX by name
                fallback: int | str = "INBOX" if target == keep_mailbox else keep_mailbox
                log.warning("sieve: account %s: storing failed (%s); filed into INBOX", account_id, exc)
                await self.store.deliver(account_id, fallback, raw, blob=ref, flags=flags, internaldate=when)

    async def _mailbox(self, account_id: int, s: Store) -> int | str:
        from suite.mail.store.store import MailStoreError

        mb = await self.store.get_mailbox(account_id, s.mailbox)
        if mb is not None:
            return mb.id
        if s.create:  # RFC 5490 §3.2
            try:
                return (await self.store.create_mailbox(account_id, s.mailbox)).id
            except MailStoreError as exc:
                mb = await self.store.get_mailbox(account_id, s.mailbox)  # created meanwhile?
                if mb is not None:
                    return mb.id
                log.warning("sieve: account %s: cannot create %r (%s); INBOX instead", account_id, s.mailbox, exc)
        else:
            log.info("sieve: account %s: fileinto %r: no such mailbox; filed into INBOX", account_id, s.mailbox)
        return "INBOX"

    async def _redirect(self, account_id, rcpt, mail_from, msg: MessageView, targets) -> None:
        """Remote targets: the outbound queue with the SRS0 sender. Local targets: straight into that
        account (its own script runs). Each hop adds X-Sieve-Redirected-From; a message that already
        passed this address, or too many hops, is not redirected again (RFC 5228 §4.2 loops)."""
        from suite.mail.queue import queue

        hops = [v.strip().lower() for v in msg.header_values(REDIRECTED_FROM.lower())]
        received = sum(1 for n, _ in msg.headers if n == "received")
        if rcpt.lower() in hops or len(hops) >= MAX_REDIRECT_HOPS or received > MAX_RECEIVED:
            raise RedirectLoop(f"mail loop: already redirected by {', '.join(hops) or 'many relays'}")
        raw = f"{REDIRECTED_FROM}: {rcpt}\r\n".encode() + msg.raw
        remote: list[str] = []
        for target in targets:
            domain = target.rpartition("@")[2]
            acct = (
                await self.ctx.accounts.resolve_recipient(target)
                if await self.ctx.accounts.is_local_domain(domain)
                else None
            )
            if acct is None:
                remote.append(target)
                continue
            if acct.disabled:
                log.warning("sieve: account %s: redirect to disabled %s dropped", account_id, target)
                continue
            inbox = (await self.store.require_mailbox(acct.id, "INBOX")).id
            if not await self.deliver(
                acct.id,
                target,
                mail_from,
                raw,
                None,
                keep_mailbox=inbox,
                internaldate=None,
                put_blob=_putter(self.ctx, raw),
            ):
                await self.store.deliver(acct.id, inbox, raw)
            log.info("sieve: account %s: redirected to local %s", account_id, target)
        if not remote:
            return
        our_domain = rcpt.rpartition("@")[2]
        sender = srs.forward(mail_from, our_domain, self.srs_key)
        ref = await self.ctx.blobs.put(raw)
        await queue.enqueue(
            self.ctx,
            mail_from=sender,
            recipients=remote,
            blob=ref,
            account_id=account_id,
            smtputf8=not (sender.isascii() and all(t.isascii() for t in remote)),
            body_8bit=any(b > 127 for b in msg.raw[msg.body_offset : msg.body_offset + 65536]),
        )
        log.info("sieve: account %s: redirected to %s (envelope sender %s)", account_id, ", ".join(remote), sender)

    async def _vacation(self, account_id, rcpt, mail_from, msg: MessageView, outcome: Outcome) -> None:
        from suite.mail.queue import dkim, queue

        action = outcome.vacation
        assert action is not None
        acct = await self.ctx.accounts.get_by_id(account_id)
        own = (acct.address,) if acct is not None else ()
        own += tuple(await self.ctx.accounts.aliases_of(account_id))
        env = Envelope(mail_from, rcpt, own)
        if action.from_ is not None:
            # the sender is bound to the account: :from must be an address it may send as
            addr = email.utils.parseaddr(action.from_)[1]
            if not addr or not await self.ctx.accounts.may_send_as(account_id, addr):
                log.warning(
                    "sieve: account %s: vacation :from %r is not the account's; using %s",
                    account_id,
                    action.from_,
                    rcpt,
                )
                action = dataclasses.replace(action, from_=None)
        why = vac.skip_reason(msg, env, action)
        if why is not None:
            log.info("sieve: account %s: no vacation reply to %r: %s", account_id, mail_from, why)
            return
        if not await self.scripts.vacation_due(account_id, vac.period_key(mail_from, action.handle), action.days):
            log.info("sieve: account %s: vacation reply to %r already sent this period", account_id, mail_from)
            return
        reply = vac.build_reply(msg, env, action, hostname=self.ctx.settings.hostname)
        domain = rcpt.rpartition("@")[2]
        keys = await dkim.domain_keys(self.ctx, domain)
        dkim_headers = await asyncio.to_thread(dkim.sign, reply, keys) if keys else b""
        local = await self.ctx.accounts.resolve_recipient(mail_from)
        if local is not None and await self.ctx.accounts.is_local_domain(mail_from.rpartition("@")[2]):
            await self.store.deliver(local.id, "INBOX", dkim_headers + reply)
        else:
            ref = await self.ctx.blobs.put(reply)
            # RFC 3834 §3.3 / RFC 5230 §5.1: the reply's envelope sender is empty
            await queue.enqueue(
                self.ctx,
                mail_from="",
                recipients=[mail_from],
                blob=ref,
                dkim_headers=dkim_headers,
                account_id=account_id,
                smtputf8=not mail_from.isascii(),
                body_8bit=not reply.isascii(),
            )
        log.info("sieve: account %s: vacation reply to %s", account_id, mail_from)
