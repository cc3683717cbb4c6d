"""MX resolution (RFC 5321 §5.1, RFC 7505) against a DNS server on loopback."""

from __future__ import annotations

import random

from suite.mail.queue.mx import RouteError, order_mx, resolve_route


async def test_mx_hosts_in_preference_order_with_addresses(zone, resolver):
    zone.add("dest.test", "MX", "20 backup.dest.test.", "10 primary.dest.test.")
    zone.add("primary.dest.test", "A", "127.0.0.2")
    zone.add("primary.dest.test", "AAAA", "::1")
    zone.add("backup.dest.test", "A", "127.0.0.3")
    route = await resolve_route(resolver, "dest.test")
    assert route.error is None
    assert [(h.name, h.preference, h.addresses) for h in route.hosts] == [
        ("primary.dest.test", 10, ("127.0.0.2", "::1")),
        ("backup.dest.test", 20, ("127.0.0.3",)),
    ]


async def test_no_mx_falls_back_to_the_domains_address(zone, resolver):
    zone.add("plain.test", "A", "127.0.0.9")  # the name exists, no MX record
    route = await resolve_route(resolver, "plain.test")
    assert [(h.name, h.preference, h.addresses) for h in route.hosts] == [("plain.test", 0, ("127.0.0.9",))]


async def test_null_mx_is_permanent(zone, resolver):
    zone.add("nomail.test", "MX", "0 .")
    route = await resolve_route(resolver, "nomail.test")
    assert route.error is RouteError.NULL_MX and route.hosts == ()


async def test_nxdomain_is_permanent(zone, resolver):
    route = await resolve_route(resolver, "does-not-exist.test")
    assert route.error is RouteError.NO_DOMAIN


async def test_servfail_is_temporary(zone, resolver):
    zone.servfail.add("broken.test")
    route = await resolve_route(resolver, "broken.test")
    assert route.error is RouteError.TEMPORARY


async def test_mx_without_addresses(zone, resolver):
    zone.add("dangling.test", "MX", "10 nowhere.dangling.test.")
    route = await resolve_route(resolver, "dangling.test")
    assert route.error is RouteError.NO_HOSTS


async def test_idn_domain_is_looked_up_as_a_label(zone, resolver):
    zone.add("xn--jxalpdlp.test", "MX", "10 mx.xn--jxalpdlp.test.")
    zone.add("mx.xn--jxalpdlp.test", "A", "127.0.0.5")
    route = await resolve_route(resolver, "δοκιμή.test")
    assert route.hosts[0].addresses == ("127.0.0.5",)


async def test_address_literal_needs_no_dns(resolver):
    route = await resolve_route(resolver, "[127.0.0.7]")
    assert route.hosts[0].addresses == ("127.0.0.7",)


def test_equal_preferences_are_shuffled():
    records = [(10, "a"), (10, "b"), (10, "c"), (5, "z")]
    seen = {tuple(n for _, n in order_mx(records, random.Random(seed))) for seed in range(40)}
    assert all(order[0] == "z" for order in seen)
    assert len(seen) > 1  # RFC 5321 §5.1: spread the load over equal-preference hosts
