"""Repair and rebalance: one idempotent loop over "blobs whose copies differ from placement".

- ``sweep`` compares, for every referenced blob, its good copies (``blob_locations``) with
  ``placement.place(digest, …)`` and queues the ones that differ in ``blob_repairs`` (under-replicated,
  a bad copy, a copy on a draining / removed / excluded-zone provider, or placement moved because a
  provider was added or a weight changed).
- ``run_due`` claims due queue rows with a conditional UPDATE that moves ``due_at`` forward by a
  lease (two processes never work on one blob at once; a crashed worker's claim runs out), and fixes
  each: copy to the placement's providers that lack a good copy (bytes checked against the digest
  on the way, throttled by ``bandwidth_limit``), then — only once every placed provider holds a good
  copy — delete the copies that are no longer wanted. A blob is never left with fewer good copies
  than it had.
- ``scrub`` re-reads a sample of good copies (least recently checked first) and checks their digest;
  a mismatch marks the copy bad and queues the blob.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from suite.storage import db
from suite.storage.blobs import BlobNotFound
from suite.storage.network.backend import CorruptCopy, NetworkBackend, Provider

if TYPE_CHECKING:
    from suite.metrics import Metrics

log = structlog.get_logger("suite.storage.repair")

LEASE = 300.0  # seconds a claimed repair is ours
BATCH = 500
PARALLEL = 4  # blobs one repairer works on at once (copies are streams: the wait is the network)


class Throttle:
    """A token bucket: ``await throttle(n)`` before moving n bytes keeps the rate at ``rate`` B/s."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._allowance = float(rate)
        self._t = time.monotonic()

    async def __call__(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self._allowance = min(float(self.rate), self._allowance + (now - self._t) * self.rate)
        self._t = now
        self._allowance -= n
        if self._allowance < 0:
            await asyncio.sleep(-self._allowance / self.rate)


@dataclass
class Outcome:
    copied: int = 0
    removed: int = 0
    done: bool = True


class Repairer:
    def __init__(self, net: NetworkBackend, *, bandwidth_limit: int = 0, metrics: Metrics | None = None) -> None:
        self.net = net
        self.throttle = Throttle(bandwidth_limit)
        self.metrics = metrics  # repairs and scrubs are counted here when given
        self.copied_bytes = 0  # by this repairer, since it was made

    def _count(self, what: str, outcome: str, n: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.storage_work(what, outcome, n)

    def wanted(self, digest: str) -> list[str]:
        return [p.name for p in self.net.placement(digest)]

    def differs(self, digest: str, locs: dict[str, str]) -> str | None:
        """Why a blob's copies differ from placement (None: they match)."""
        good = {n for n, st in locs.items() if st == "good"}
        if any(st != "good" for st in locs.values()):
            return "bad-copy"
        if len(good & self.net.may_hold()) < self.net.replicas:
            return "under-replicated"
        # copies on read-only providers stay (we never modify them) and do not count as misplaced
        frozen = {n for n, p in self.net.providers.items() if p.state == "read-only"}
        wanted = set(self.wanted(digest))
        if not wanted <= good or (good - wanted - frozen):
            return "rebalance"
        return None

    async def sweep(self) -> int:
        """Queue every referenced blob whose copies differ from placement; returns how many."""
        queued = 0
        after = ""
        sessions = self.net.sessions()
        while True:
            async with sessions() as s:
                c = await db.conn(s)
                digests = [
                    r[0]
                    for r in await c.all(
                        "SELECT digest FROM blobs WHERE refcount > 0 AND digest > ? ORDER BY digest LIMIT ?",
                        after,
                        BATCH,
                    )
                ]
                if not digests:
                    return queued
                marks = db.placeholders(len(digests))
                rows = await c.all(
                    f"SELECT digest, provider, state FROM blob_locations WHERE digest IN ({marks})", *digests
                )
            locs: dict[str, dict[str, str]] = {d: {} for d in digests}
            for d, p, st in rows:
                locs[d][p] = st
            for d in digests:
                why = self.differs(d, locs[d])
                if why is not None:
                    await self.net.enqueue(d, why)
                    queued += 1
            after = digests[-1]

    async def _claim(self, now: float, limit: int) -> list[str]:
        sessions = self.net.sessions()
        async with sessions() as s:
            c = await db.conn(s)
            due = [
                r[0]
                for r in await c.all(
                    "SELECT digest FROM blob_repairs WHERE due_at <= ? ORDER BY due_at LIMIT ?", now, limit
                )
            ]
        claimed = []
        for d in due:
            async with sessions.begin() as s:
                c = await db.conn(s)
                n = await c.run(
                    "UPDATE blob_repairs SET due_at = ?, attempts = attempts + 1 WHERE digest = ? AND due_at <= ?",
                    now + LEASE,
                    d,
                    now,
                )
            if n:
                claimed.append(d)
        return claimed

    async def run_due(self, limit: int = 100) -> int:
        """Fix the due queued blobs, ``PARALLEL`` at a time; returns how many were fixed."""
        gate = asyncio.Semaphore(PARALLEL)

        async def one(d: str) -> bool:
            async with gate:
                return await self._fix_claimed(d)

        return sum(await asyncio.gather(*(one(d) for d in await self._claim(time.time(), limit))))

    async def _fix_claimed(self, d: str) -> bool:
        try:
            out = await self.fix(d)
        except Exception as exc:
            self._count("repair", "failed")
            log.warning("storage.repair_failed", digest=d, error=str(exc))
            async with self.net.sessions().begin() as s:
                c = await db.conn(s)
                await c.run(
                    "UPDATE blob_repairs SET due_at = ?, last_error = ? WHERE digest = ?",
                    time.time() + 30,
                    f"{type(exc).__name__}: {exc}"[:500],
                    d,
                )
            return False
        async with self.net.sessions().begin() as s:
            c = await db.conn(s)
            if out.done:
                # only our claim (due_at still in the lease): a re-queue meanwhile moved it to now
                await c.run("DELETE FROM blob_repairs WHERE digest = ? AND due_at > ?", d, time.time())
            else:
                await c.run("UPDATE blob_repairs SET due_at = ? WHERE digest = ?", time.time() + 30, d)
        self._count("repair", "ok" if out.done else "failed")
        self._count("repair_bytes", "copied", out.copied)
        self.copied_bytes += out.copied
        return out.done

    async def _size(self, digest: str) -> int | None:
        async with self.net.sessions()() as s:
            c = await db.conn(s)
            return await c.scalar("SELECT size FROM blobs WHERE digest = ?", digest)

    async def fix(self, digest: str) -> Outcome:
        net = self.net
        out = Outcome()
        locs = await net.locations(digest)
        if await self._size(digest) is None and not locs:
            return out  # deleted meanwhile: nothing to keep
        good = [net.providers[n] for n, st in locs.items() if st == "good" and n in net.providers]
        good.sort(key=lambda p: (not p.up(), p.ewma))
        if not good:
            # no recorded good copy: look for an unrecorded one (crash, migrated install)
            for p in await net.read_order(digest):
                with contextlib.suppress(Exception):
                    if await p.backend.size(digest) is not None and await self.verify_copy(digest, p):
                        good.append(p)
                        break
        if not good and net.legacy is not None:
            # a migration in progress: the blob is still only on the old backend
            try:
                out.copied += await net.take_from_legacy(digest, self.throttle)
                return out
            except BlobNotFound:
                pass
        if not good:
            log.error("storage.blob_lost", digest=digest, locations=locs)
            out.done = False
            return out
        for dst in net.placement(digest):
            if dst in good:
                continue
            last: Exception | None = None
            for src in list(good):
                try:
                    n = await net.copy(digest, src, dst, self.throttle)
                except CorruptCopy as exc:  # the source is marked bad by copy(); try the next one
                    last = exc
                    good.remove(src)
                    continue
                except BlobNotFound as exc:
                    last = exc
                    good.remove(src)
                    await net.mark_bad(digest, src.name, "missing")
                    continue
                except Exception as exc:
                    last = exc
                    src.failed(exc)
                    continue
                out.copied += n
                await net.record(digest, n, [dst.name])
                good.append(dst)
                break
            else:
                log.warning("storage.repair_copy_failed", digest=digest, to=dst.name, error=str(last))
                out.done = False
        wanted = {p.name for p in net.placement(digest)}
        if out.done and wanted <= {p.name for p in good} and len(wanted) >= min(net.replicas, len(good)):
            for name, st in list((await net.locations(digest)).items()):
                if name in wanted and st == "good":
                    continue
                holder = net.providers.get(name)
                if holder is None:  # removed from the configuration: forget the row
                    await net.forget(digest, name)
                    continue
                if len(wanted) < net.replicas and st == "good":
                    continue  # not enough placement targets: keep the extra copy
                if holder.state == "read-only":
                    continue  # never written nor deleted by us: its copies stay, readable
                try:
                    await holder.backend.delete(digest)
                except Exception as exc:
                    holder.failed(exc)
                    out.done = False
                    continue
                await net.forget(digest, name)
                out.removed += 1
        return out

    async def verify_copy(self, digest: str, p: Provider) -> bool:
        h = hashlib.sha256()
        async for chunk in p.backend.read(digest, chunk=1024**2):
            await self.throttle(len(chunk))
            h.update(chunk)
        return h.hexdigest() == digest

    async def scrub(self, sample: int) -> tuple[int, int]:
        """Re-read ``sample`` good copies (least recently checked first); returns (checked, bad)."""
        async with self.net.sessions()() as s:
            c = await db.conn(s)
            rows = await c.all(
                "SELECT digest, provider FROM blob_locations WHERE state = 'good' "
                "ORDER BY COALESCE(checked_at, 0), digest LIMIT ?",
                sample,
            )
        checked = bad = 0
        for digest, name in rows:
            p = self.net.providers.get(name)
            if p is None:
                continue
            try:
                ok = await self.verify_copy(digest, p)
            except Exception as exc:
                if isinstance(exc, BlobNotFound):
                    await self.net.mark_bad(digest, name, "scrub-missing")
                    self._count("scrub", "bad")
                    bad += 1
                else:
                    p.failed(exc)
                continue
            checked += 1
            self._count("scrub", "ok" if ok else "bad")
            if ok:
                async with self.net.sessions().begin() as s:
                    c = await db.conn(s)
                    await c.run(
                        "UPDATE blob_locations SET checked_at = ? WHERE digest = ? AND provider = ?",
                        time.time(),
                        digest,
                        name,
                    )
            else:
                bad += 1
                await self.net.mark_bad(digest, name, "scrub-mismatch")
        return checked, bad

    async def until_settled(self, deadline: float, limit: int = 100) -> int:
        """Sweep and repair until nothing differs or the deadline passes (tests, CLI); returns the
        number of blobs still queued."""
        while True:
            await self.sweep()
            await self.run_due(limit)
            left = await self.queued()
            if left == 0 or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.2)

    async def queued(self) -> int:
        async with self.net.sessions()() as s:
            c = await db.conn(s)
            return int(await c.scalar("SELECT COUNT(*) FROM blob_repairs") or 0)
