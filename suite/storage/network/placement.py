"""Where a blob's copies belong: a pure function of (digest, providers) — no I/O, no state.

Weighted rendezvous hashing (highest random weight): each provider gets a score for the digest,
``-weight / ln(h)`` with ``h`` the hash of ``digest + provider name`` mapped into (0, 1); providers in
decreasing score order are the blob's preference list. A provider is first for a share of digests
proportional to its weight, and adding or removing a provider only moves the blobs whose list it
enters or leaves — every other pair keeps its relative order (the score of a pair never changes).

Copies go on distinct providers and, while possible, distinct zones: the list is walked in score
order taking one provider per zone first, then (only when there are fewer zones than replicas) the
remaining providers in score order. Providers in an excluded zone never appear. Every process
computes the same list without asking anyone (Garage computes its layout the same way).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Place:
    """What placement needs to know about a provider."""

    name: str
    weight: float = 1.0
    zone: str = ""
    writable: bool = True  # active (False: draining or read-only — never a placement target)


def _unit(digest: str, name: str) -> float:
    """The hash of digest+name mapped to the open interval (0, 1)."""
    h = hashlib.blake2b(f"{digest}\0{name}".encode(), digest_size=8).digest()
    return (int.from_bytes(h, "big") + 0.5) / 2.0**64


def score(digest: str, place: Place) -> float:
    """Weighted rendezvous score: -w / ln(h); higher wins (h in (0,1), so ln h < 0)."""
    return -place.weight / math.log(_unit(digest, place.name))


def ranked(digest: str, providers: Iterable[Place], exclude_zones: Iterable[str] = ()) -> list[Place]:
    """All eligible writable providers for ``digest``, best first, zones spread: one provider per zone
    in score order, then the rest in score order. Ties (never in practice) break by name."""
    excluded = set(exclude_zones)
    eligible = [p for p in providers if p.writable and p.zone not in excluded]
    by_score = sorted(eligible, key=lambda p: (-score(digest, p), p.name))
    first: list[Place] = []
    rest: list[Place] = []
    zones: set[str] = set()
    for p in by_score:
        if p.zone in zones:
            rest.append(p)
        else:
            zones.add(p.zone)
            first.append(p)
    return first + rest


def place(digest: str, providers: Sequence[Place], replicas: int, exclude_zones: Iterable[str] = ()) -> list[Place]:
    """The ``replicas`` providers a blob's copies belong on (fewer when fewer are eligible)."""
    return ranked(digest, providers, exclude_zones)[:replicas]


def allowed(providers: Iterable[Place], exclude_zones: Iterable[str] = ()) -> set[str]:
    """Names of providers a copy may stay on (any state, not in an excluded zone)."""
    excluded = set(exclude_zones)
    return {p.name for p in providers if p.zone not in excluded}
