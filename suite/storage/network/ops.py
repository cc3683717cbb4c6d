"""Operations on the storage network for ``suite storage …``: status figures, verification,
migration of a disk / single-S3 install into the network, and provider entries in the TOML file."""

from __future__ import annotations

import asyncio
import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from suite.storage import db
from suite.storage.blobs import BlobNotFound
from suite.storage.network.backend import NetworkBackend, Provider
from suite.storage.network.repair import Repairer


@dataclass
class ProviderStatus:
    name: str
    state: str
    zone: str
    weight: float
    health: str  # ok / down: <error>
    latency: float | None  # seconds for a HeadBucket
    objects: int
    bytes: int
    bad: int
    read_latency: float  # this process's smoothed time to first byte (0: no read yet)
    write_latency: float  # this process's smoothed time to put a small blob (0: no write yet)


PROBE_TIMEOUT = 10.0  # probes run in parallel: a scrape waits at most this long for a hung provider


async def _probe(p: Provider) -> tuple[str, float | None]:
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            client = await p.backend._client()  # makes the bucket when missing
            await client.head_bucket(Bucket=p.backend.bucket)
    except Exception as exc:
        return f"down: {type(exc).__name__}", None
    return "ok", time.monotonic() - t0


async def figures(net: NetworkBackend) -> tuple[dict[tuple[str, str], tuple[int, int]], dict[str, int]]:
    """From the database: (provider, state) → (copies, bytes); overall: blobs under-replicated,
    the repair queue and (during a migration) referenced blobs with no copy in the network yet."""
    async with net.sessions()() as s:
        c = await db.conn(s)
        per = {
            (r[0], r[1]): (int(r[2]), int(r[3] or 0))
            for r in await c.all(
                "SELECT provider, state, COUNT(*), SUM(size) FROM blob_locations GROUP BY provider, state"
            )
        }
        under = await c.scalar(
            "SELECT COUNT(*) FROM blobs b WHERE b.refcount > 0 AND "
            "(SELECT COUNT(*) FROM blob_locations l WHERE l.digest = b.digest AND l.state = 'good') < ?",
            net.replicas,
        )
        absent = await c.scalar(
            "SELECT COUNT(*) FROM blobs b WHERE b.refcount > 0 AND NOT EXISTS "
            "(SELECT 1 FROM blob_locations l WHERE l.digest = b.digest AND l.state = 'good')"
        )
        queue = await c.scalar("SELECT COUNT(*) FROM blob_repairs")
    totals = {"under_replicated": int(under or 0), "repair_queue": int(queue or 0), "not_in_network": int(absent or 0)}
    return per, totals


async def status(net: NetworkBackend) -> tuple[list[ProviderStatus], dict[str, int]]:
    """Per provider: state, health (a live HeadBucket, all providers at once), latency, good
    copies and bytes, bad copies; overall: blobs under-replicated and the repair queue."""
    per, totals = await figures(net)
    providers = list(net.providers.values())
    probes = await asyncio.gather(*(_probe(p) for p in providers))
    out = []
    for p, (health, latency) in zip(providers, probes, strict=True):
        objects, size = per.get((p.name, "good"), (0, 0))
        out.append(
            ProviderStatus(
                p.name, p.state, p.place.zone, p.place.weight, health, latency, objects, size,
                per.get((p.name, "bad"), (0, 0))[0], p.ewma, p.write_ewma,
            )
        )  # fmt: skip
    return out, totals


async def held(net: NetworkBackend, name: str) -> int:
    """Good copies recorded on provider ``name``."""
    async with net.sessions()() as s:
        c = await db.conn(s)
        n = await c.scalar("SELECT COUNT(*) FROM blob_locations WHERE provider = ? AND state = 'good'", name)
    return int(n or 0)


async def verify(net: NetworkBackend, sample: int) -> tuple[int, int]:
    """Scrub ``sample`` copies now (least recently checked first); returns (checked, bad)."""
    return await Repairer(net).scrub(sample)


async def migrate(net: NetworkBackend, *, progress=None) -> tuple[int, int, int]:
    """Copy every referenced blob of the backend being migrated from (``net.legacy``) into the
    network, checked against its digest on the way. Idempotent: blobs already holding
    ``replicas`` good copies are skipped. Returns (copied, skipped, left) — ``left`` counts
    referenced blobs still without a good copy when the pass ends (written meanwhile by a process
    not yet switched): run again until it is 0, then remove ``storage.migrate_from``."""
    copied = skipped = 0
    async with net.sessions()() as s:
        c = await db.conn(s)
        digests = [r[0] for r in await c.all("SELECT digest FROM blobs WHERE refcount > 0 ORDER BY digest")]
    for d in digests:
        locs = await net.locations(d)
        if sum(1 for st in locs.values() if st == "good") >= net.replicas:
            skipped += 1
            continue
        try:
            await net.take_from_legacy(d)
        except BlobNotFound:
            if "good" not in locs.values():
                raise OSError(f"blob {d} is neither in the network nor on the {net.migrate_from} backend") from None
            continue  # under-replicated in the network itself: the repair loop's work
        copied += 1
        if progress is not None:
            progress(copied, skipped, len(digests))
    left = (await figures(net))[1]["not_in_network"]
    return copied, skipped, left


# ----- provider entries in the TOML configuration -----
_BLOCK = re.compile(r"(?ms)^\[\[storage\.providers\]\]\s*$.*?(?=^\[|\Z)")


def _blocks(text: str) -> list[tuple[re.Match, dict]]:
    found = []
    for m in _BLOCK.finditer(text):
        body = m.group(0).split("\n", 1)[1] if "\n" in m.group(0) else ""
        found.append((m, tomllib.loads(body)))
    return found


def provider_add(path: Path, entry: dict) -> None:
    text = path.read_text() if path.exists() else ""
    if any(b.get("name") == entry["name"] for _, b in _blocks(text)):
        raise ValueError(f"provider {entry['name']!r} is already configured in {path}")
    lines = ["", "[[storage.providers]]"]
    for k, v in entry.items():
        lines.append(f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else f"{k} = {v}")
    path.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n")


def provider_set_state(path: Path, name: str, state: str) -> None:
    text = path.read_text() if path.exists() else ""
    for m, b in _blocks(text):
        if b.get("name") == name:
            block = m.group(0)
            if re.search(r"(?m)^state\s*=", block):
                new = re.sub(r"(?m)^state\s*=.*$", f'state = "{state}"', block)
            else:
                new = block.rstrip("\n") + f'\nstate = "{state}"\n\n'
            path.write_text(text[: m.start()] + new + text[m.end() :])
            return
    raise ValueError(f"no provider {name!r} in {path}")


def provider_remove(path: Path, name: str) -> None:
    text = path.read_text() if path.exists() else ""
    for m, b in _blocks(text):
        if b.get("name") == name:
            path.write_text(text[: m.start()] + text[m.end() :])
            return
    raise ValueError(f"no provider {name!r} in {path}")
