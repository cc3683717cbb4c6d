"""A DNS server on 127.0.0.1 answering from a dict (real UDP, real dnspython messages) for the queue tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import dns.asyncresolver
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest


class Zone(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.servfail: set[str] = set()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records.setdefault((name.lower().rstrip("."), rdtype.upper()), []).extend(values)

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        q = query.question[0]
        name = q.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(q.rdtype)
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif values := self.records.get((name, rdtype)):
            response.answer.append(dns.rrset.from_text_list(q.name, 300, dns.rdataclass.IN, q.rdtype, values))
        elif not any(k[0] == name for k in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def zone() -> AsyncIterator[Zone]:
    loop = asyncio.get_running_loop()
    transport, z = await loop.create_datagram_endpoint(Zone, local_addr=("127.0.0.1", 0))
    z.port = transport.get_extra_info("sockname")[1]
    yield z
    transport.close()


@pytest.fixture
def resolver(zone: Zone) -> dns.asyncresolver.Resolver:
    from suite.config import Settings
    from suite.mail.queue.mx import make_resolver

    r = make_resolver(Settings(dns_nameservers=["127.0.0.1"], dns_port=zone.port))
    r.lifetime = 2
    return r
