"""Push to callback URLs (RFC 8620 §7.2): the PushVerification at creation, then a StateChange
POSTed to every verified, unexpired subscription of an account when its states move.

One ``Pusher`` per gateway process, started and stopped with the gateway; it listens to the event
bus (so changes made by any process are pushed) and coalesces bursts of events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import structlog

from suite.mail.jmap import limits
from suite.mail.store import emails as model
from suite.storage.events import MailboxChanged, MailboxListChanged

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


class Pusher:
    def __init__(self, ctx, store) -> None:
        self.ctx = ctx
        self.store = store
        self._task: asyncio.Task | None = None
        self._last: dict[int, dict[str, str]] = {}

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
        with self.ctx.bus.subscribe(MailboxChanged, MailboxListChanged) as sub:
            while True:
                ev = await sub.get()
                accounts = {ev.account_id}
                await asyncio.sleep(0.05)  # coalesce a burst
                while not sub.queue.empty():
                    accounts.add(sub.queue.get_nowait().account_id)
                for account_id in accounts:
                    try:
                        await self.push_account(account_id)
                    except Exception:
                        log.exception("push.account_failed", account=account_id)

    async def push_account(self, account_id: int) -> None:
        async with self.store.raw_db.read() as c:
            subs = await c.all(
                "SELECT id, url, types FROM jmap_push_subscriptions WHERE account_id = ? AND verified = ? "
                "AND expires > ?",
                account_id,
                True,
                time.time(),
            )
            if not subs:
                return
            states = {k: str(await model.state(c, account_id, k)) for k in TYPES}
        before = self._last.get(account_id, {})
        self._last[account_id] = states
        changed = {k: v for k, v in states.items() if before.get(k) != v}
        for _sid, url, types_json in subs:
            wanted = set(json.loads(types_json)) if types_json else None
            mine = {k: v for k, v in changed.items() if wanted is None or k in wanted}
            if mine:
                body = {"@type": "StateChange", "changed": {limits.account_id(account_id): mine}}
                asyncio.get_running_loop().create_task(post(url, body))
