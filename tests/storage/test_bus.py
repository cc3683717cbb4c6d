"""Event bus: typed events in-process, and across two real processes over PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from suite.config import Settings
from suite.storage.bus import MemoryBus, Resync, decode, encode, make_bus
from suite.storage.events import FileChanged, MailboxChanged, MailDelivered
from suite.testing import missing, port_open


async def test_memory_bus_topics():
    bus = MemoryBus()
    await bus.start()
    mail = bus.subscribe(MailDelivered)
    every = bus.subscribe()
    await bus.publish(MailDelivered(account_id=1, mailbox_id=2, uid=3))
    await bus.publish(FileChanged(account_id=1, node_id=9, action="created"))
    assert await mail.get(1) == MailDelivered(account_id=1, mailbox_id=2, uid=3)
    assert mail.queue.empty()
    assert [type(await every.get(1)) for _ in range(2)] == [MailDelivered, FileChanged]
    mail.close()
    await bus.publish(MailDelivered(account_id=1, mailbox_id=2, uid=4))
    assert mail.queue.empty()


async def test_a_resync_wakes_every_subscription_whatever_its_topics():
    """What a process heard as a peer's Resync (its publish was lost) reaches each of its subscribers
    as the Resync marker with ``missed`` set, never as an event of a topic."""
    bus = MemoryBus()
    mail, files = bus.subscribe(MailDelivered), bus.subscribe(FileChanged)
    await bus.publish(MailDelivered(account_id=1, mailbox_id=2, uid=3))
    bus._dispatch_raw(encode(Resync()))  # as it comes off the wire
    assert [type(await mail.get(1)) for _ in range(2)] == [MailDelivered, Resync]
    assert isinstance(await files.get(1), Resync)
    assert mail.missed and files.missed and mail.queue.empty() and files.queue.empty()


def test_codec_round_trip_and_garbage():
    ev = MailboxChanged(account_id=5, mailbox_id=6, modseq=7)
    assert decode(encode(ev)) == ev
    assert decode("not json") is None
    assert decode('{"t": "unknown.topic", "d": {}}') is None
    assert decode('{"t": "mail.delivered", "d": {"account_id": "x"}}') is None


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from suite.config import Settings
    from suite.storage.bus import make_bus
    from suite.storage.events import MailDelivered, FileChanged

    async def main():
        bus = make_bus(Settings(database_url=sys.argv[1], bus_backend=sys.argv[2], redis_url=sys.argv[3]))
        await bus.start()
        sub = bus.subscribe(FileChanged)
        print("ready", flush=True)
        ev = await asyncio.wait_for(sub.get(), 20)      # from the parent process
        await bus.publish(MailDelivered(account_id=ev.account_id, mailbox_id=ev.node_id, uid=42))
        await bus.stop()  # publish returned: the event is on its way (no grace sleep)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("backend", ["postgres", "redis"])
async def test_two_processes(backend, request):
    redis_url = "redis://127.0.0.1:6379/0"
    db_url = "sqlite+aiosqlite:////nonexistent"
    if backend == "postgres":
        db_url = request.getfixturevalue("pg_url")
    elif not port_open("127.0.0.1", 6379):
        missing("Redis not running on 127.0.0.1:6379")
    bus = make_bus(Settings(database_url=db_url, bus_backend=backend, redis_url=redis_url))
    await bus.start()
    try:
        sub = bus.subscribe(MailDelivered)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, db_url, backend, redis_url, stdout=subprocess.PIPE
        )
        assert (await asyncio.wait_for(child.stdout.readline(), 20)).strip() == b"ready"
        await bus.publish(FileChanged(account_id=7, node_id=8, action="created"))
        got = await sub.get(timeout=20)
        assert got == MailDelivered(account_id=7, mailbox_id=8, uid=42)
        assert await asyncio.wait_for(child.wait(), 20) == 0
    finally:
        await bus.stop()


async def test_socket_bus_through_the_workers_broker():
    """`suite serve --workers`: what one worker publishes reaches every worker (itself included),
    through the supervisor's broker; a long event (a call's SDP) passes; garbage is dropped."""
    from suite.storage.bus import SocketBus
    from suite.storage.events import CallSignal
    from suite.workers import Broker

    broker = Broker()
    buses = []
    for i in range(2):
        theirs = await broker.attach(i)
        buses.append(SocketBus(theirs.detach()))
    for b in buses:
        await b.start()
        await b.ping()
    subs = [b.subscribe(MailDelivered, CallSignal) for b in buses]
    await buses[0].publish(MailDelivered(account_id=1, mailbox_id=2, uid=3))
    for s in subs:
        assert await s.get(5) == MailDelivered(account_id=1, mailbox_id=2, uid=3)
    assert buses[1]._writer is not None
    buses[1]._writer.write(b"garbage\n")
    sdp = {"sdp": "a=candidate:" + "x" * 200_000}
    await buses[1].publish(CallSignal(account_id=7, payload=sdp))
    for s in subs:
        assert (await s.get(5)).payload == sdp
    for b in buses:
        await b.stop()
    broker.close()
