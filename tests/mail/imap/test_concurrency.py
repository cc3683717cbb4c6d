"""Several clients at once on one mailbox: consistency of every session's view, and throughput.

Ten clients mix LOGIN / SELECT / FETCH / STORE / SEARCH / APPEND / EXPUNGE / NOOP on the same
INBOX.  Every response is checked for protocol sanity (sequence numbers within the session's own
count, EXPUNGE never during FETCH/STORE/SEARCH), and at the end every session agrees with the store.
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import MSG, Client

N_CLIENTS = 10
ROUNDS = 12


class Tracker:
    """Follows EXISTS / EXPUNGE like a client must and checks every numbered response."""

    def __init__(self, exists: int) -> None:
        self.exists = exists

    def feed(self, lines: list[bytes], command: str) -> None:
        for line in lines:
            m = re.match(rb"\* (\d+) (EXISTS|EXPUNGE|FETCH)", line)
            if not m:
                continue
            n, kind = int(m.group(1)), m.group(2)
            if kind == b"EXISTS":
                # RFC 9051 §7.4.1 / §5.2: the count only shrinks through EXPUNGE responses
                assert n >= self.exists, (line, self.exists)
                self.exists = n
            elif kind == b"EXPUNGE":
                # RFC 9051 §7.5.1: not while answering FETCH / STORE / SEARCH
                assert command not in ("FETCH", "STORE", "SEARCH"), (command, line)
                assert 1 <= n <= self.exists, (n, self.exists)
                self.exists -= 1
            else:
                assert 1 <= n <= self.exists, (line, self.exists)


async def _worker(port: int, seed: int, counter: list[int]) -> Client:
    rnd = random.Random(seed)
    c = await Client.connect(port)
    await c.login()
    counter[0] += 1
    r = await c.cmd("s SELECT INBOX")
    counter[0] += 1
    exists = int(next(re.match(rb"\* (\d+) EXISTS", x).group(1) for x in r if x.endswith(b" EXISTS\r\n")))
    t = Tracker(exists)
    n = 0
    for _ in range(ROUNDS):
        steps = [
            ("FETCH", "FETCH 1:* (UID FLAGS)"),
            ("UID FETCH", "UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)"),
            ("STORE", f"STORE {rnd.randint(1, 3)} +FLAGS (\\Seen)"),
            ("UID STORE", "UID STORE 1:* -FLAGS.SILENT (\\Flagged)"),
            ("SEARCH", "SEARCH UNSEEN SUBJECT hello"),
            ("UID SEARCH", "UID SEARCH RETURN (COUNT) ALL"),
            ("APPEND", f"APPEND INBOX {{{len(MSG)}+}}\r\n" + MSG.decode()),
            ("NOOP", "NOOP"),
        ]
        if rnd.random() < 0.3:
            steps.append(("UID STORE", f"UID STORE {rnd.randint(1, 40)} +FLAGS.SILENT (\\Deleted)"))
            steps.append(("EXPUNGE", "EXPUNGE"))
        rnd.shuffle(steps)
        for kind, text in steps:
            if t.exists == 0 and kind in ("FETCH", "STORE"):
                continue
            n += 1
            r = await c.cmd(f"c{n} {text}")
            counter[0] += 1
            assert re.match(rb"c\d+ OK", r[-1]), (text, r[-1])
            t.feed(r, kind)
    r = await c.cmd("z NOOP")
    t.feed(r, "NOOP")
    c.tracker = t  # type: ignore[attr-defined]
    return c


async def test_ten_clients_mixed_commands(server, store, accounts):
    alice, _ = accounts
    for _ in range(5):
        await store.deliver(alice.id, "INBOX", MSG)
    counter = [0]
    clients = await asyncio.gather(*(_worker(server.port, i, counter) for i in range(N_CLIENTS)))
    assert counter[0] >= N_CLIENTS * (2 + ROUNDS * 6)  # every worker ran its rounds (no timing: see bench/)
    # every view converges on the store after a final NOOP
    inbox = await store.get_mailbox(alice.id, "INBOX")
    truth = [m.uid for m in await store.messages(inbox.id)]
    for c in clients:
        r = await c.cmd("y NOOP")
        c.tracker.feed(r, "NOOP")
        r = await c.cmd("x FETCH 1:* UID")
        uids = [int(m.group(1)) for m in (re.search(rb"UID (\d+)", x) for x in r) if m]
        assert uids == truth
        assert c.tracker.exists == len(truth)
        await c.close()
