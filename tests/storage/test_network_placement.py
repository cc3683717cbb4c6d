"""Placement is a pure function: no I/O, counts not timings."""

from __future__ import annotations

import hashlib
from collections import Counter

from suite.storage.network.placement import Place, place, ranked

DIGESTS = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000)]


def test_deterministic_and_order_independent():
    ps = [Place("a"), Place("b", 2.0), Place("c", 1.0, "fr")]
    for d in DIGESTS[:200]:
        assert place(d, ps, 2) == place(d, list(reversed(ps)), 2)
        assert [p.name for p in place(d, ps, 2)] == [p.name for p in place(d, ps, 2)]


def test_first_choice_proportional_to_weight():
    ps = [Place("a", 1.0), Place("b", 2.0), Place("c", 3.0), Place("d", 4.0)]
    first = Counter(place(d, ps, 1)[0].name for d in DIGESTS)
    total = sum(p.weight for p in ps)
    for p in ps:
        expected = len(DIGESTS) * p.weight / total
        assert abs(first[p.name] - expected) < 0.05 * len(DIGESTS), (p.name, first[p.name], expected)


def test_copies_on_distinct_providers_and_zones_when_possible():
    ps = [Place("a", zone="de"), Place("b", zone="de"), Place("c", zone="fr"), Place("d", zone="nl")]
    for d in DIGESTS[:2000]:
        got = place(d, ps, 3)
        assert len({p.name for p in got}) == 3
        assert len({p.zone for p in got}) == 3
    # more replicas than zones: still distinct providers
    two_zones = [Place("a", zone="de"), Place("b", zone="de"), Place("c", zone="fr")]
    for d in DIGESTS[:2000]:
        got = place(d, two_zones, 3)
        assert len({p.name for p in got}) == 3
        assert {p.zone for p in got[:2]} == {"de", "fr"}


def test_excluded_zones_never_and_non_writable_never():
    ps = [Place("a", zone="us"), Place("b", zone="de"), Place("c", zone="fr"), Place("x", writable=False)]
    for d in DIGESTS[:2000]:
        got = place(d, ps, 3, exclude_zones=["us"])
        assert [p.zone for p in got if p.zone == "us"] == []
        assert "x" not in {p.name for p in got}
        assert len(got) == 2  # fewer eligible providers than replicas: fewer places, never an excluded one


def test_adding_a_provider_moves_only_what_it_takes():
    old = [Place("a"), Place("b"), Place("c")]
    new = [*old, Place("d")]
    moved = 0
    for d in DIGESTS:
        before = {p.name for p in place(d, old, 2)}
        after = {p.name for p in place(d, new, 2)}
        lost = before - after
        # a copy only ever moves to the new provider
        assert after - before <= {"d"}
        assert len(lost) <= 1
        moved += len(lost)
    # d takes its fair share (2 of 4 copies' slots ∝ 1/4 of 2 copies per digest) and no more
    expected = len(DIGESTS) * 2 / 4
    assert abs(moved - expected) < 0.05 * len(DIGESTS), (moved, expected)


def test_weight_change_and_drain_move_minimal():
    old = [Place("a"), Place("b"), Place("c")]
    drained = [Place("a"), Place("b"), Place("c", writable=False)]
    for d in DIGESTS[:3000]:
        before = [p.name for p in place(d, old, 2)]
        after = [p.name for p in place(d, drained, 2)]
        assert "c" not in after
        if "c" not in before:
            assert set(after) == set(before)  # untouched when the drained provider held none


def test_ranked_lists_every_eligible_provider_once():
    ps = [Place(n, w) for n, w in [("a", 1), ("b", 5), ("c", 0.5)]]
    for d in DIGESTS[:100]:
        assert sorted(p.name for p in ranked(d, ps)) == ["a", "b", "c"]


def _net(states: dict[str, str]):
    from suite.storage.network import NetworkBackend, Provider
    from suite.storage.s3 import S3Backend

    provs = [
        Provider(n, Place(n, 1.0, "", st == "active"), S3Backend("b", endpoint="http://127.0.0.1:9"), state=st)
        for n, st in states.items()
    ]
    return NetworkBackend(provs, db_url="sqlite+aiosqlite:///:memory:", replicas=2)


def test_what_the_repair_loop_considers_different_from_placement():
    from suite.storage.network.repair import Repairer

    rep = Repairer(_net({"a": "active", "b": "active", "c": "active"}))
    for d in DIGESTS[:50]:
        want = rep.wanted(d)
        assert rep.differs(d, dict.fromkeys(want, "good")) is None
        assert rep.differs(d, {want[0]: "good"}) == "under-replicated"
        assert rep.differs(d, {want[0]: "good", want[1]: "bad"}) == "bad-copy"
        other = ({"a", "b", "c"} - set(want)).pop()
        assert rep.differs(d, {want[0]: "good", other: "good"}) == "rebalance"
    # copies on a draining provider must move; on a read-only one they may stay as extras
    drain = Repairer(_net({"a": "active", "b": "active", "c": "draining"}))
    frozen = Repairer(_net({"a": "active", "b": "active", "c": "read-only"}))
    for d in DIGESTS[:50]:
        assert drain.differs(d, {"a": "good", "b": "good", "c": "good"}) == "rebalance"
        assert frozen.differs(d, {"a": "good", "b": "good", "c": "good"}) is None
        assert frozen.differs(d, {"a": "good", "c": "good"}) == "rebalance"
