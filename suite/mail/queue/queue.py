"""The persistent outbound queue: enqueue, the delivery worker, DSNs, and the admin operations.

A message is enqueued in the same transaction that takes a reference on its blob, so once ``enqueue``
returns the message survives a crash. The worker claims due recipients by moving their due time forward
by a lease (a conditional UPDATE: two processes never send the same recipient at once; a crashed
process's claim runs out and the recipient is tried again), groups them by (message, domain), sends
through the ``OutboundTransport`` and writes one status per recipient. Temporary failures are retried
on ``queue_retry_schedule`` until ``queue_max_age`` (RFC 5321 §4.5.4.1 suggests giving up after 4-5 days);
permanent failures and expiry send a DSN (RFC 3464) to the envelope sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update

from suite.mail.queue import dsn as dsnlib
from suite.mail.queue.models import QueuedMessage, QueuedRecipient
from suite.mail.queue.transport import OutboundEnvelope, OutboundTransport, Outcome
from suite.mail.smtp import translog
from suite.mail.smtp.interfaces import TransactionRecord
from suite.storage.blobs import BlobRef, BlobStore

log = logging.getLogger("suite.mail.queue")

LEASE_SECONDS = 600.0
QUEUED, SENT, FAILED = "queued", "sent", "failed"


@dataclass(frozen=True, slots=True)
class RecipientState:
    id: int
    address: str
    status: str
    attempts: int
    next_attempt_at: float
    last_reply: str


@dataclass(frozen=True, slots=True)
class QueueEntry:
    id: int
    mail_from: str
    size: int
    created_at: float
    recipients: tuple[RecipientState, ...]


def recipient_domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def retry_delay(settings, attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (the schedule's last value repeats)."""
    schedule = list(settings.queue_retry_schedule) or [300.0]
    return float(schedule[min(max(attempts, 1), len(schedule)) - 1])


async def enqueue(
    ctx,
    *,
    mail_from: str,
    recipients: list[str],
    blob: BlobRef,
    dkim_headers: bytes = b"",
    account_id: int | None = None,
    smtputf8: bool = False,
    body_8bit: bool = False,
    session_id: str = "",
    hold_until: float | None = None,
) -> int:
    """Queue ``blob`` for ``recipients``; committed (with a blob reference) when this returns.
    ``hold_until`` (RFC 4865 FUTURERELEASE): no attempt before then, and until a worker claims it
    the message can be canceled (:func:`cancel_held`)."""
    now = time.time()
    due = now if hold_until is None else max(now, hold_until)
    async with ctx.sessions.begin() as s:
        msg = QueuedMessage(
            mail_from=mail_from,
            account_id=account_id,
            blob=blob.digest,
            size=blob.size,
            dkim_headers=dkim_headers.decode("ascii"),
            smtputf8=smtputf8,
            body_8bit=body_8bit,
            session_id=session_id,
            created_at=now,
            hold_until=None if hold_until is None else due,
        )
        s.add(msg)
        await s.flush()
        for rcpt in dict.fromkeys(recipients):  # once per address, in order
            s.add(
                QueuedRecipient(
                    message_id=msg.id,
                    address=rcpt,
                    domain=recipient_domain(rcpt),
                    status=QUEUED,
                    attempts=0,
                    next_attempt_at=due,
                    last_reply="",
                    remote_mta="",
                )
            )
        await BlobStore.ref(s, blob)
        message_id = msg.id
    notify_local(ctx)
    return message_id


# One wake-up event per process for the worker (``enqueue`` from the SMTP layer, ``retry`` from
# tools): ``Context.queue_wakeup``, made when the worker starts.
def _wakeup_event(ctx) -> asyncio.Event:
    if ctx.queue_wakeup is None:
        ctx.queue_wakeup = asyncio.Event()
    return ctx.queue_wakeup


def notify_local(ctx) -> None:
    if ctx.queue_wakeup is not None:
        ctx.queue_wakeup.set()


# ---------------------------------------------------------------- admin
async def list_queue(ctx) -> list[QueueEntry]:
    async with ctx.sessions() as s:
        msgs = list(await s.scalars(select(QueuedMessage).order_by(QueuedMessage.id)))
        rcpts = list(await s.scalars(select(QueuedRecipient).order_by(QueuedRecipient.id)))
    by_msg: dict[int, list[RecipientState]] = defaultdict(list)
    for r in rcpts:
        by_msg[r.message_id].append(
            RecipientState(r.id, r.address, r.status, r.attempts, r.next_attempt_at, r.last_reply)
        )
    return [QueueEntry(m.id, m.mail_from, m.size, m.created_at, tuple(by_msg[m.id])) for m in msgs]


async def retry_now(ctx, message_id: int | None = None) -> int:
    """Make queued recipients (of one message, or all) due now. Returns how many."""
    stmt = update(QueuedRecipient).where(QueuedRecipient.status == QUEUED)
    if message_id is not None:
        stmt = stmt.where(QueuedRecipient.message_id == message_id)
    async with ctx.sessions.begin() as s:
        res = await s.execute(stmt.values(next_attempt_at=time.time()))
    notify_local(ctx)
    return res.rowcount


async def delete_message(ctx, message_id: int) -> bool:
    """Drop a message from the queue without a DSN (an operator's decision)."""
    async with ctx.sessions.begin() as s:
        msg = await s.get(QueuedMessage, message_id)
        if msg is None:
            return False
        await s.execute(delete(QueuedRecipient).where(QueuedRecipient.message_id == message_id))
        await s.delete(msg)
        await BlobStore.unref(s, msg.blob)
    return True


async def cancel_held(ctx, message_id: int) -> bool:
    """Cancel a held message (RFC 4865) before any worker claimed a recipient of it: True when it is
    gone. Safe against a worker of another process: the claim moves ``next_attempt_at`` past
    ``hold_until`` and the conditional DELETE only takes recipients still at or before it (the
    database decides which of the two statements wins); if any recipient was taken, nothing is
    canceled."""

    class _Taken(Exception):
        pass

    try:
        async with ctx.sessions.begin() as s:
            msg = await s.get(QueuedMessage, message_id)
            if msg is None or msg.hold_until is None:
                return False
            total = await s.scalar(
                select(func.count()).select_from(QueuedRecipient).where(QueuedRecipient.message_id == message_id)
            )
            res = await s.execute(
                delete(QueuedRecipient).where(
                    QueuedRecipient.message_id == message_id,
                    QueuedRecipient.status == QUEUED,
                    QueuedRecipient.attempts == 0,
                    QueuedRecipient.next_attempt_at <= msg.hold_until,
                )
            )
            if res.rowcount != total:
                raise _Taken
            await s.delete(msg)
            await BlobStore.unref(s, msg.blob)
    except _Taken:
        return False
    return True


# ---------------------------------------------------------------- DSN delivery
async def deliver_dsn(ctx, sender: str, raw: bytes) -> None:
    """A DSN to ``sender``: into the INBOX of a local account, otherwise queued with the null
    reverse-path (RFC 5321 §4.5.5: a DSN is never answered by another DSN)."""
    from suite.mail.store.store import MailStore, MailStoreError

    if not sender:
        return  # RFC 5321 §4.5.5: no DSN for a message with a null reverse-path
    account = await ctx.accounts.resolve_recipient(sender)
    if account is not None and await ctx.accounts.is_local_domain(recipient_domain(sender)):
        try:
            await MailStore(ctx).deliver(account.id, "INBOX", raw)
        except MailStoreError:
            log.warning("DSN to %s could not be stored (quota?); dropped", sender)
        return
    ref = await ctx.blobs.put(raw)
    await enqueue(ctx, mail_from="", recipients=[sender], blob=ref, smtputf8=not sender.isascii())


# ---------------------------------------------------------------- worker
class QueueWorker:
    def __init__(self, ctx, transport: OutboundTransport) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.transport = transport
        self._task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()
        self._sem = asyncio.Semaphore(max(1, self.settings.queue_concurrency))
        self._stopping = False
        self.attempts = 0  # transactions tried (for tests and health)

    async def start(self) -> None:
        self._wake = _wakeup_event(self.ctx)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="queue-worker")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._wake.set()
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        if self._inflight:
            # Sends in flight are cancelled; their claims run out and they are tried again later.
            for t in list(self._inflight):
                t.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)
        self.ctx.queue_wakeup = None

    def health(self) -> dict:
        return {"inflight": len(self._inflight), "attempts": self.attempts}

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.run_due()
                delay = await self._next_due_in()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("queue worker pass failed")
                delay = 5.0
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, delay))
            except TimeoutError:
                pass

    async def _next_due_in(self) -> float:
        async with self.ctx.sessions() as s:
            due = await s.scalar(
                select(func.min(QueuedRecipient.next_attempt_at)).where(QueuedRecipient.status == QUEUED)
            )
        poll = self.settings.queue_poll_seconds
        return poll if due is None else min(poll, due - time.time())

    async def run_due(self) -> int:
        """Claim every due recipient and start its delivery; returns the number of groups started."""
        now = time.time()
        async with self.ctx.sessions() as s:
            rows = (
                await s.execute(
                    select(QueuedRecipient.id, QueuedRecipient.message_id, QueuedRecipient.domain)
                    .where(QueuedRecipient.status == QUEUED, QueuedRecipient.next_attempt_at <= now)
                    .order_by(QueuedRecipient.next_attempt_at)
                    .limit(1000)
                )
            ).all()
        groups: dict[tuple[int, str], list[int]] = defaultdict(list)
        for rid, mid, domain in rows:
            groups[(mid, domain)].append(rid)
        started = 0
        for (mid, domain), ids in groups.items():
            claimed = await self._claim(ids, now)
            if not claimed:
                continue
            task = asyncio.get_running_loop().create_task(self._deliver_group(mid, domain, claimed))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            started += 1
        return started

    async def _claim(self, ids: list[int], now: float) -> list[int]:
        claimed = []
        async with self.ctx.sessions.begin() as s:
            for rid in ids:
                res = await s.execute(
                    update(QueuedRecipient)
                    .where(
                        QueuedRecipient.id == rid,
                        QueuedRecipient.status == QUEUED,
                        QueuedRecipient.next_attempt_at <= now,
                    )
                    .values(next_attempt_at=now + LEASE_SECONDS)
                )
                if res.rowcount == 1:
                    claimed.append(rid)
        return claimed

    async def _deliver_group(self, message_id: int, domain: str, ids: list[int]) -> None:
        try:
            async with self._sem:
                await self._attempt(message_id, domain, ids)
        except asyncio.CancelledError:
            # Stopping: hand the claim back so the next start (or another process) tries at once.
            await asyncio.shield(self._release(ids))
            raise
        except Exception:
            log.exception("queue: delivery attempt for message %s failed", message_id)

    async def _release(self, ids: list[int]) -> None:
        try:
            async with self.ctx.sessions.begin() as s:
                await s.execute(
                    update(QueuedRecipient)
                    .where(
                        QueuedRecipient.id.in_(ids),
                        QueuedRecipient.status == QUEUED,
                        QueuedRecipient.next_attempt_at > time.time(),
                    )
                    .values(next_attempt_at=time.time())
                )
        except Exception:
            log.warning("queue: could not release claims %s", ids)

    async def _attempt(self, message_id: int, domain: str, ids: list[int]) -> None:
        async with self.ctx.sessions() as s:
            msg = await s.get(QueuedMessage, message_id)
            rcpts = list(await s.scalars(select(QueuedRecipient).where(QueuedRecipient.id.in_(ids))))
        if msg is None or not rcpts:
            return
        raw = msg.dkim_headers.encode("ascii") + await self.ctx.blobs.read_bytes(msg.blob)
        envelope = OutboundEnvelope(
            mail_from=msg.mail_from,
            recipients=tuple(r.address for r in rcpts),
            domain=domain,
            smtputf8=msg.smtputf8,
            body_8bit=msg.body_8bit,
        )
        self.attempts += 1
        outcomes = await self.transport.send(envelope, raw)
        by_addr = {o.recipient: o for o in outcomes}
        now = time.time()
        expired = now - (msg.hold_until or msg.created_at) >= self.settings.queue_max_age
        failed: list[dsnlib.FailedRecipient] = []
        async with self.ctx.sessions.begin() as s:
            for r in rcpts:
                o = by_addr.get(r.address) or Outcome(r.address, 0, "451 4.3.0 no result from transport")
                values: dict = {
                    "attempts": r.attempts + 1,
                    "last_attempt_at": now,
                    "last_reply": o.text[:2000],
                    "remote_mta": o.remote_mta[:255],
                }
                if o.delivered:
                    values["status"] = SENT
                    log.info("queue %s: %s delivered: %s", message_id, r.address, o.text)
                elif o.permanent or expired:
                    values["status"] = FAILED
                    status = o.status if o.permanent else "4.4.7"  # RFC 3463 §3.5: delivery time expired
                    failed.append(dsnlib.FailedRecipient(r.address, status, o.text, o.remote_mta, now))
                    log.info("queue %s: %s failed: %s", message_id, r.address, o.text)
                else:
                    values["next_attempt_at"] = min(
                        now + retry_delay(self.settings, r.attempts + 1),
                        (msg.hold_until or msg.created_at) + self.settings.queue_max_age,  # last try at expiry
                    )
                    log.info("queue %s: %s deferred: %s", message_id, r.address, o.text)
                await s.execute(update(QueuedRecipient).where(QueuedRecipient.id == r.id).values(**values))
                s.add(  # the delivery log, in the transaction that records the attempt
                    translog.row(
                        TransactionRecord(
                            "out",
                            values.get("status", "deferred"),
                            msg.mail_from,
                            r.address,
                            o.text,
                            o.remote_mta,
                            msg.account_id,
                            str(message_id),
                        ),
                        now,
                    )
                )
        for r in rcpts:
            got = by_addr.get(r.address)
            result = (
                "delivered" if got and got.delivered else "failed" if got and (got.permanent or expired) else "deferred"
            )
            self.ctx.metrics.messages_out.labels(result).inc()
        if failed:
            report = dsnlib.build_dsn(
                reporting_mta=self.settings.hostname,
                sender=msg.mail_from,
                recipients=failed,
                original_headers=dsnlib.header_block(raw[len(msg.dkim_headers) :]),
                arrival=msg.created_at,
                queue_id=str(message_id),
            )
            try:
                await deliver_dsn(self.ctx, msg.mail_from, report)
            except Exception:
                log.exception("queue %s: DSN to %s failed", message_id, msg.mail_from)
        await self._finish_if_done(message_id)

    async def _finish_if_done(self, message_id: int) -> None:
        async with self.ctx.sessions.begin() as s:
            left = await s.scalar(
                select(func.count())
                .select_from(QueuedRecipient)
                .where(QueuedRecipient.message_id == message_id, QueuedRecipient.status == QUEUED)
            )
            if left:
                return
            msg = await s.get(QueuedMessage, message_id)
            if msg is None:
                return
            await s.execute(delete(QueuedRecipient).where(QueuedRecipient.message_id == message_id))
            await s.delete(msg)
            await BlobStore.unref(s, msg.blob)
