"""Spool writer (memory first, spilling to a file), header blocks and rewrites of both kinds,
and the DATA decoder's windowed line-length check against a line-by-line count."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from suite.mail.smtp import spool
from suite.mail.smtp.data import DataDecoder, DataError

MESSAGE = b"From: a@example.test\r\nSubject: s\r\n\r\nbody line\r\n"


def test_small_message_stays_in_memory(tmp_path: Path) -> None:
    w = spool.SpoolWriter(tmp_path, memory_limit=1024)
    w.write(MESSAGE[:10])
    w.write(MESSAGE[10:])
    m = w.finish()
    assert m.path is None and m.data == MESSAGE and m.size == len(MESSAGE)
    assert m.source() == MESSAGE
    assert m.sha256 == hashlib.sha256(MESSAGE).hexdigest()
    assert list(tmp_path.iterdir()) == []  # no file was ever made
    spool.discard(m)


def test_growing_message_spills_to_a_file(tmp_path: Path) -> None:
    w = spool.SpoolWriter(tmp_path, memory_limit=64)
    parts = [b"x" * 40 + b"\r\n", b"y" * 40 + b"\r\n", b"z" * 1000 + b"\r\n"]
    for p in parts:
        w.write(p)
    m = w.finish()
    assert m.data is None and m.path is not None and m.path.parent == tmp_path
    assert m.path.read_bytes() == b"".join(parts) and m.size == sum(map(len, parts))
    assert m.sha256 == hashlib.sha256(b"".join(parts)).hexdigest()
    spool.discard(m)
    assert not m.path.exists()


def test_discard_before_finish_leaves_nothing(tmp_path: Path) -> None:
    w = spool.SpoolWriter(tmp_path, memory_limit=8)
    w.write(b"0123456789abcdef")
    assert w.path is not None and w.path.exists()
    w.discard()
    assert list(tmp_path.iterdir()) == []


def test_shared_budget_keeps_larger_messages_in_memory_while_it_has_room(tmp_path: Path) -> None:
    budget = spool.MemoryBudget(100)
    chunk = b"a" * 48 + b"\r\n"  # 50 bytes

    def writer() -> spool.SpoolWriter:
        return spool.SpoolWriter(tmp_path, memory_limit=50, budget=budget, budget_limit=120)

    first = writer()
    for _ in range(2):
        first.write(chunk)  # 50 free + 50 from the budget
    assert budget.free == 50 and first.path is None
    second = writer()
    for _ in range(3):
        second.write(chunk)  # 50 free, 50 from the budget, then none left: spilled
    assert second.path is not None and budget.free == 50  # what it held came back at the spill
    assert second.finish().path is not None
    over = writer()
    for _ in range(3):
        over.write(chunk)  # 150 > budget_limit: a file whatever the budget holds
    assert over.path is not None and budget.free == 50
    m = first.finish()
    assert m.data == chunk * 2 and m.path is None
    first.release()
    first.release()  # once only
    assert budget.free == 100
    for w in (second, over):
        w.discard()
    assert list(tmp_path.iterdir()) == []


def test_discard_gives_the_budget_back(tmp_path: Path) -> None:
    budget = spool.MemoryBudget(1000)
    w = spool.SpoolWriter(tmp_path, memory_limit=10, budget=budget, budget_limit=1000)
    w.write(b"x" * 300)
    assert budget.free == 710 and w.path is None
    w.discard()
    assert budget.free == 1000


def test_header_block_same_from_file_and_bytes(tmp_path: Path) -> None:
    for raw in (MESSAGE, b"\r\nbody\r\n", b"Subject: only headers\r\n"):
        f = tmp_path / "m.eml"
        f.write_bytes(raw)
        assert spool.read_header_block(f) == spool.read_header_block(raw)


def test_rewrite_in_memory_matches_rewrite_of_a_file(tmp_path: Path) -> None:
    w = spool.SpoolWriter(tmp_path)
    w.write(MESSAGE)
    on_disk = w.finish()
    in_memory = spool.SpooledMessage(None, len(MESSAGE), data=MESSAGE)
    kw = {"prepend": b"Authentication-Results: x; none\r\n", "append_headers": b"Date: now\r\n"}
    a = spool.rewrite(on_disk, tmp_path, **kw)
    b = spool.rewrite(in_memory, tmp_path, **kw)
    assert b.path is None and b.data == a.path.read_bytes() and b.size == a.size
    assert b.data.startswith(kw["prepend"] + b"From:") and b"Date: now\r\n\r\nbody" in b.data
    spool.discard(a)
    spool.discard(on_disk)


def _longest_line(payload: bytes) -> int:
    return max((len(line) + 2 for line in payload.split(b"\r\n")[:-1]), default=0)


@settings(max_examples=300, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 1100), min_size=1, max_size=12),
    chunk=st.integers(1, 3000),
)
def test_line_length_limit_whatever_the_chunks(lengths: list[int], chunk: int) -> None:
    """RFC 5321 §4.5.3.1.6: a line over 1000 octets (CRLF included) is refused, one of 1000 is not."""
    payload = b"".join(b"a" * n + b"\r\n" for n in lengths)
    wire = payload + b".\r\n"
    d = DataDecoder(max_line_length=1000)
    for i in range(0, len(wire), chunk):
        if d.feed(wire[i : i + chunk]).done:
            break
    assert d.done
    if _longest_line(payload) > 1000:
        assert d.error is DataError.LINE_TOO_LONG
    else:
        assert d.error is None


def test_line_length_boundary_in_the_middle_of_a_large_chunk() -> None:
    short = b"s" * 70 + b"\r\n"
    for n, refused in ((998, False), (999, True), (1500, True)):
        for before in (0, 1, 7, 300):
            payload = short * before + b"m" * n + b"\r\n" + short * 50
            d = DataDecoder(max_line_length=1000)
            r = d.feed(payload + b".\r\n")
            assert r.done
            assert (d.error is DataError.LINE_TOO_LONG) is refused, (n, before)
