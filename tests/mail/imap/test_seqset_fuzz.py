"""Every command that takes a sequence set (FETCH, STORE, COPY, MOVE, SEARCH, their UID forms,
UID EXPUNGE) answers OK, NO or BAD for any set, in an empty and a non-empty mailbox — never an
internal error (RFC 9051 §6.4.6 / §9: ``*`` in an empty mailbox names no message: BAD, as Dovecot)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import MSG, PASSWORD

from suite.mail.imap.session import ImapSession, Shared
from suite.mail.store import MailStore

LOGIN = b'a0 LOGIN alice@example.test "' + PASSWORD.encode() + b'"\r\n'

_NUMBER = st.one_of(
    st.sampled_from(["*", "*", "1", "2", "3", "0", "4294967295", "4294967296", "99999999999999999999"]),
    st.integers(min_value=1, max_value=6).map(str),
)
_ITEM = st.one_of(_NUMBER, st.tuples(_NUMBER, _NUMBER).map(":".join))
SEQSET = st.one_of(
    st.lists(_ITEM, min_size=1, max_size=5).map(",".join),
    st.sampled_from(["$", "", ",", "1,", ":", "1:", "*:*", "-1", "1:-2", "1 2", "1,,2", "a"]),
)
COMMANDS = [
    "FETCH {} (FLAGS UID)",
    "FETCH {} (BODY.PEEK[HEADER] MODSEQ)",
    "STORE {} +FLAGS (\\Deleted)",
    "STORE {} FLAGS.SILENT ($Fuzz)",
    "STORE {} (UNCHANGEDSINCE 1) -FLAGS (\\Seen)",
    "COPY {} INBOX",
    "COPY {} Nowhere",
    "MOVE {} Other",
    "MOVE {} INBOX",
    "SEARCH {}",
    "SEARCH NOT {} UNSEEN",
    "SEARCH RETURN (MIN MAX SAVE) {}",
    "UID FETCH {} (FLAGS)",
    "UID FETCH {} (FLAGS) (CHANGEDSINCE 1)",
    "UID STORE {} +FLAGS.SILENT (\\Deleted)",
    "UID COPY {} Other",
    "UID MOVE {} INBOX",
    "UID SEARCH UID {}",
    "UID EXPUNGE {}",
    "EXPUNGE",
]
_TAGGED = re.compile(rb"^(c\d+) (OK|NO|BAD)\b", re.M)


async def _run(shared: Shared, lines: list[bytes]) -> bytes:
    out: list[bytes] = []

    async def write(chunks):
        out.extend(bytes(c) for c in chunks)

    s = ImapSession(shared, write, peer="127.0.0.1")
    await s.start()
    await s.feed(b"".join(lines))
    await s.flush()
    s.close()
    return b"".join(out)


@pytest.fixture
async def shared(ctx, accounts):
    ctx.settings.allow_plaintext_loopback = True
    store = MailStore(ctx)
    alice, _ = accounts
    await store.create_mailbox(alice.id, "Other")
    await store.create_mailbox(alice.id, "Empty")
    return Shared(ctx, store, auth_delay=0), store, alice


@example(steps=[("STORE {} +FLAGS (\\Deleted)", "1:*")], mailbox="Empty")  # the case
@example(steps=[("FETCH {} (FLAGS UID)", "*"), ("MOVE {} INBOX", "*:1")], mailbox="Empty")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(st.tuples(st.sampled_from(COMMANDS), SEQSET), min_size=1, max_size=6),
    mailbox=st.sampled_from(["INBOX", "Empty"]),
)
async def test_sequence_sets_never_reach_an_internal_error(shared, steps, mailbox):
    sh, store, alice = shared
    inbox = await store.get_mailbox(alice.id, "INBOX")
    if len(await store.message_rows(inbox.id)) < 3:  # MOVE / EXPUNGE of earlier examples took them
        for flags in ([], ["\\Seen"], ["\\Deleted"]):
            await store.deliver(alice.id, "INBOX", MSG, flags=flags)
    lines = [LOGIN, b"a1 ENABLE CONDSTORE\r\n", f"a2 SELECT {mailbox}\r\n".encode()]
    lines += [f"c{i} {cmd.format(seqset)}\r\n".encode() for i, (cmd, seqset) in enumerate(steps)]
    data = await _run(sh, lines)
    assert b"SERVERBUG" not in data and b"Internal error" not in data, data
    answered = [m.group(1) for m in _TAGGED.finditer(data)]
    assert answered == [f"c{i}".encode() for i in range(len(steps))], data
    if mailbox == "Empty":
        # nothing may come to exist in the empty mailbox by these commands
        for m in re.finditer(rb"^c(\d+) (OK|NO|BAD)", data, re.M):
            cmd, seqset = steps[int(m.group(1))]
            if cmd.split()[0] in ("FETCH", "STORE", "COPY", "MOVE") and seqset != "$":
                assert m.group(2) == b"BAD", (cmd, data)
