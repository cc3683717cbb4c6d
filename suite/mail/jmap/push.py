"""Push to callback URLs (RFC 8620 §7.2): the PushVerification at creation, then a StateChange
POSTed to every verified, unexpired subscription of an account when its states move.

One ``Pusher`` per gateway process, started and stopped with the gateway; it listens to the event
bus (so changes made by any process are pushed) and coalesces bursts of events. Every gateway
process hears every event, so each StateChange owed is a row of ``jmap_push_deliveries`` keyed by
(subscription, the states it reports): the processes all insert it (one row wins) and claim it with
a conditional UPDATE; the one that claims it sends it — once, however many gateways run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import structlog

from suite.mail.jmap import limits
from suite.mail.store import emails as model
from suite.storage.bus import Resync
from suite.storage.events import IdentitiesChanged, MailboxChanged, MailboxListChanged

log = structlog.get_logger("suite.jmap.push")
TYPES = (model.EMAIL, model.MAILBOX, model.THREAD, model.SUBMISSION, model.IDENTITY)


def url_allowed(settings, url: object) -> bool:
    return isinstance(url, str) and any(url.startswith(p) for p in settings.jmap_push_allowed_urls if p)


async def post(url: str, body: dict) -> bool:
    try:
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as http:
            r = await http.post(url, json=body, headers={"TTL": "86400"})
        return r.status_code < 300
    except httpx.HTTPError as exc:
        log.info("push.failed", url=url, error=type(exc).__name__)
        return False


def _state_key(states: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(states.items()))


def _parse_key(key: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in key.split(",") if "=" in p)


KEEP_SENT = 600.0  # seconds a sent row stays (the latest one per subscription always stays)


class Pusher:
    def __init__(self, ctx, store) -> None:
        self.ctx = ctx
        self.store = store
        self._task: asyncio.Task | None = None
        self.sent = 0  # StateChanges this process sent (tests)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="jmap-push")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    async def verify(self, sub_id: int, url: str, code: str) -> None:
        # RFC 8620 §7.2.2: the PushVerification object
        await post(url, {"@type": "PushVerification", "pushSubscriptionId": str(sub_id), "verificationCode": code})

    async def _run(self) -> None:
        with self.ctx.bus.subscribe(MailboxChanged, MailboxListChanged, IdentitiesChanged) as sub:
            while True:
                events = [await sub.get()]
                await asyncio.sleep(0.05)  # coalesce a burst
                while not sub.queue.empty():
                    events.append(sub.queue.get_nowait())
                accounts = {ev.account_id for ev in events if not isinstance(ev, Resync)}
                if sub.missed:  # events were lost (a bus reconnect, a full queue): every account is looked at
                    sub.missed = False
                    try:
                        accounts |= await self._subscribed_accounts()
                    except Exception:
                        log.exception("push.resync_failed")
                for account_id in accounts:
                    try:
                        await self.push_account(account_id)
                    except Exception:
                        log.exception("push.account_failed", account=account_id)

    async def _subscribed_accounts(self) -> set[int]:
        async with self.store.raw_db.read() as c:
            rows = await c.all(
                "SELECT DISTINCT account_id FROM jmap_push_subscriptions WHERE verified = ? AND expires > ?",
                True,
                time.time(),
            )
        return {r[0] for r in rows}

    async def push_account(self, account_id: int) -> None:
        now = time.time()
        async with self.store.raw_db.read() as c:
            subs = await c.all(
                "SELECT id, url, types FROM jmap_push_subscriptions WHERE account_id = ? AND verified = ? "
                "AND expires > ?",
                account_id,
                True,
                now,
            )
            if not subs:
                return
            states = {k: str(await model.state(c, account_id, k)) for k in TYPES}
        for sid, url, types_json in subs:
            wanted = set(json.loads(types_json)) if types_json else None
            mine = {k: v for k, v in states.items() if wanted is None or k in wanted}
            body = await self._claim(sid, account_id, mine, now)
            if body is not None:
                self.sent += 1
                asyncio.get_running_loop().create_task(post(url, body))

    async def _claim(self, sub_id: int, account_id: int, states: dict[str, str], now: float) -> dict | None:
        """The StateChange this process is to send for ``states``, or None (nothing changed since the
        subscription's last one, or another process claimed it)."""
        key = _state_key(states)
        async with self.store.raw_db.write() as c:
            last = await c.one(
                "SELECT id, state_key FROM jmap_push_deliveries WHERE subscription_id = ? ORDER BY id DESC LIMIT 1",
                sub_id,
            )
            before = _parse_key(last[1]) if last else {}
            changed = {k: v for k, v in states.items() if before.get(k) != v}
            if not changed:
                return None
            body = {"@type": "StateChange", "changed": {limits.account_id(account_id): changed}}
            await c.run(
                "INSERT INTO jmap_push_deliveries (subscription_id, state_key, body, claimed_at, created_at) "
                "VALUES (?, ?, ?, NULL, ?) ON CONFLICT (subscription_id, state_key) DO NOTHING",
                sub_id,
                key,
                json.dumps(body),
                now,
            )
            if last is not None:
                await c.run(
                    "DELETE FROM jmap_push_deliveries WHERE subscription_id = ? AND id <= ? AND claimed_at < ?",
                    sub_id,
                    last[0],
                    now - KEEP_SENT,
                )
        async with self.store.raw_db.write() as c:
            # the claim: one process's UPDATE finds the row unclaimed
            row = await c.one(
                "UPDATE jmap_push_deliveries SET claimed_at = ? WHERE subscription_id = ? AND state_key = ? "
                "AND claimed_at IS NULL RETURNING body",
                now,
                sub_id,
                key,
            )
        return json.loads(row[0]) if row else None
