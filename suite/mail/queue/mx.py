"""Where to deliver a domain's mail: MX lookup with dnspython (RFC 5321 §5.1, RFC 7505 null MX).

``make_resolver`` builds the one async resolver Suite uses (configurable nameservers and port, so tests
point it at a DNS stub on 127.0.0.1).
"""

from __future__ import annotations

import enum
import ipaddress
import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

DNS_TIMEOUT = 10.0


def make_resolver(settings) -> dns.asyncresolver.Resolver:
    if settings.dns_nameservers:
        r = dns.asyncresolver.Resolver(configure=False)
        r.nameservers = list(settings.dns_nameservers)
    else:
        r = dns.asyncresolver.Resolver()
    r.port = settings.dns_port
    r.use_edns(0, 0, 4096)
    r.lifetime = DNS_TIMEOUT
    return r


class RouteError(enum.Enum):
    TEMPORARY = "temporary"  # DNS failure: retry later
    NO_DOMAIN = "no-domain"  # NXDOMAIN: permanent (RFC 5321 §5.1)
    NULL_MX = "null-mx"  # RFC 7505 §3: the domain accepts no mail
    NO_HOSTS = "no-hosts"  # MX targets without addresses


@dataclass(frozen=True, slots=True)
class MxHost:
    name: str
    preference: int
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Route:
    hosts: tuple[MxHost, ...] = ()
    error: RouteError | None = None
    detail: str = ""


async def _addresses(resolver: dns.asyncresolver.Resolver, host: str) -> tuple[tuple[str, ...], bool]:
    """A and AAAA of ``host`` (IPv4 first); second value: a lookup failed temporarily."""
    out: list[str] = []
    temporary = False
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(host, rdtype, raise_on_no_answer=False, search=False)
            out.extend(r.to_text() for r in answer)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            pass
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout):
            temporary = True
    return tuple(out), temporary


def order_mx(records: list[tuple[int, str]], rng: random.Random | None = None) -> list[tuple[int, str]]:
    """Lowest preference first; hosts of equal preference in random order (RFC 5321 §5.1)."""
    rng = rng or random.Random()
    shuffled = list(records)
    rng.shuffle(shuffled)
    return sorted(shuffled, key=lambda r: r[0])


async def resolve_route(resolver: dns.asyncresolver.Resolver, domain: str) -> Route:
    domain = domain.rstrip(".").lower()
    if domain.startswith("[") and domain.endswith("]"):
        # An address literal (RFC 5321 §4.1.3) names the host itself.
        literal = domain[1:-1]
        if literal.lower().startswith("ipv6:"):
            literal = literal[5:]
        try:
            ip = ipaddress.ip_address(literal)
        except ValueError:
            return Route(error=RouteError.NO_DOMAIN, detail=f"bad address literal {domain}")
        return Route(hosts=(MxHost(domain, 0, (str(ip),)),))
    try:
        ace = dns.name.from_text(domain).to_text()  # IDNA (RFC 5890) for U-label domains
    except dns.exception.DNSException as exc:
        return Route(error=RouteError.NO_DOMAIN, detail=f"bad domain {domain}: {exc}")
    try:
        answer = await resolver.resolve(ace, "MX", raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN:
        return Route(error=RouteError.NO_DOMAIN, detail=f"domain {domain} does not exist")
    except dns.exception.DNSException as exc:
        return Route(error=RouteError.TEMPORARY, detail=f"MX lookup for {domain} failed: {exc.__class__.__name__}")
    records = [(r.preference, r.exchange.to_text().rstrip(".")) for r in answer]
    if not records:
        # RFC 5321 §5.1: no MX records → the domain itself is the implicit MX (preference 0).
        records = [(0, ace.rstrip("."))]
    elif len(records) == 1 and records[0][1] == "":
        # RFC 7505 §3: "MX 0 ." — the domain declares it receives no mail.
        return Route(error=RouteError.NULL_MX, detail=f"domain {domain} accepts no mail (null MX)")
    hosts: list[MxHost] = []
    temporary = False
    for pref, name in order_mx([r for r in records if r[1]]):
        addrs, temp = await _addresses(resolver, name)
        temporary |= temp
        if addrs:
            hosts.append(MxHost(name, pref, addrs))
    if hosts:
        return Route(hosts=tuple(hosts))
    if temporary:
        return Route(error=RouteError.TEMPORARY, detail=f"address lookup for the MX hosts of {domain} failed")
    return Route(error=RouteError.NO_HOSTS, detail=f"no address for the mail hosts of {domain}")
