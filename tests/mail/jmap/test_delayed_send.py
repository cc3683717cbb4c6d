"""Delayed send (RFC 8621 §7 undoStatus, RFC 4865 FUTURERELEASE): a submission with HOLDFOR /
HOLDUNTIL waits in the outbound queue — local recipients too — is ``pending`` and can be canceled
until a queue worker (of any process) claims it, and goes out when due."""

from __future__ import annotations

import asyncio
import time

from suite.mail.queue import queue
from suite.mail.queue.transport import Outcome
from suite.mail.smtp.delivery import LocalFirstTransport, StoreDeliverer
from suite.testing import async_wait_until
from tests.mail.jmap.conftest import SUB
from tests.mail.jmap.test_blobs_identity_submission import _draft


class Remote:
    """The queue's transport for other domains: accepts, or waits for ``gate`` first."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def send(self, envelope, message: bytes) -> list[Outcome]:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append(envelope.recipients)
        return [Outcome(r, 250, "250 2.0.0 ok") for r in envelope.recipients]


async def _submit(jmap, eid: str, rcpts: list[str], params: dict | None) -> dict:
    ident = (await jmap.ok("Identity/get", {}))["list"][0]["id"]
    env = {"mailFrom": {"email": "alice@example.test", "parameters": params}, "rcptTo": [{"email": r} for r in rcpts]}
    return await jmap.ok(
        "EmailSubmission/set", {"create": {"s": {"identityId": ident, "emailId": eid, "envelope": env}}}
    )


async def test_hold_cancel_and_release(jmap, bob_jmap, ctx):
    ext = jmap.session["accounts"][jmap.account_id]["accountCapabilities"][SUB]
    assert ext["maxDelayedSend"] > 0 and "FUTURERELEASE" in ext["submissionExtensions"]
    eid = await _draft(jmap)
    # bad parameters are refused (RFC 4865 §3)
    for bad in ({"HOLDFOR": "x"}, {"HOLDFOR": "1", "HOLDUNTIL": "2030-01-01T00:00:00Z"}, {"HOLDFOR": str(10**8)}):
        body = await _submit(jmap, eid, ["bob@example.test"], bad)
        assert body["notCreated"]["s"]["type"] == "invalidProperties"
    # held: the local and the remote recipient both wait in the queue; nothing reaches bob
    body = await _submit(jmap, eid, ["bob@example.test", "x@remote.example"], {"HOLDFOR": "600"})
    made = body["created"]["s"]
    assert made["undoStatus"] == "pending" and made["envelope"]["mailFrom"]["parameters"] == {"HOLDFOR": "600"}
    (entry,) = await queue.list_queue(ctx)
    assert sorted(r.address for r in entry.recipients) == ["bob@example.test", "x@remote.example"]
    assert all(r.next_attempt_at > time.time() + 500 for r in entry.recipients)
    got = (await jmap.ok("EmailSubmission/get", {"ids": [made["id"]]}))["list"][0]
    assert got["undoStatus"] == "pending" and got["sendAt"] == made["sendAt"]
    # cancel while pending (§7.5): out of the queue
    body = await jmap.ok("EmailSubmission/set", {"update": {made["id"]: {"undoStatus": "canceled"}}})
    assert body["updated"] == {made["id"]: None} and await queue.list_queue(ctx) == []
    assert (await jmap.ok("EmailSubmission/get", {"ids": [made["id"]]}))["list"][0]["undoStatus"] == "canceled"
    assert (await bob_jmap.ok("Email/query", {}))["ids"] == []
    # released when due: the worker delivers the local recipient into bob's INBOX, the remote one out
    remote = Remote()
    worker = queue.QueueWorker(ctx, LocalFirstTransport(StoreDeliverer(ctx), remote))
    await worker.start()
    try:
        body = await _submit(jmap, eid, ["bob@example.test", "x@remote.example"], {"HOLDFOR": "1"})
        sid = body["created"]["s"]["id"]
        assert body["created"]["s"]["undoStatus"] == "pending"
        await async_wait_until(lambda: bob_jmap.ok("Email/query", {}), timeout=20)

        async def delivered():
            got = (await jmap.ok("EmailSubmission/get", {"ids": [sid]}))["list"][0]
            done = all(d["delivered"] == "yes" for d in got["deliveryStatus"].values())
            return got if done else None

        got = await async_wait_until(delivered, timeout=20)
        # final once a worker took it (no undo any more); delivered to both
        assert got["undoStatus"] == "final" and set(got["deliveryStatus"]) == {"bob@example.test", "x@remote.example"}
        assert remote.sent == [("x@remote.example",)]
        # claimed by a worker (here: stuck in the remote transport), a held message can't be canceled
        remote.gate = asyncio.Event()
        remote.entered.clear()
        body = await _submit(jmap, eid, ["x@remote.example"], {"HOLDUNTIL": "2000-01-01T00:00:00Z"})
        sid = body["created"]["s"]["id"]
        await asyncio.wait_for(remote.entered.wait(), 20)
        body = await jmap.ok("EmailSubmission/set", {"update": {sid: {"undoStatus": "canceled"}}})
        assert body["notUpdated"][sid]["type"] == "cannotUnsend"
        remote.gate.set()
    finally:
        await worker.stop()
