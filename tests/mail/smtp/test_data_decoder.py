"""Sans-I/O DATA decoder: terminator, dot-unstuffing, bare CR/LF, limits, chunk boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suite.mail.smtp.data import DataDecoder, DataError


def run(chunks: list[bytes], **kw) -> tuple[DataDecoder, bytes, bytes]:
    d = DataDecoder(**kw)
    out = bytearray()
    leftover = b""
    for c in chunks:
        r = d.feed(c)
        out += r.payload
        if r.done:
            leftover = r.leftover
            break
    return d, bytes(out), leftover


def test_simple_message_and_leftover() -> None:
    d, out, left = run([b"Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n"])
    assert d.done and d.error is None
    assert out == b"Subject: hi\r\n\r\nbody\r\n"
    assert left == b"QUIT\r\n"


def test_empty_message() -> None:
    d, out, _ = run([b".\r\n"])
    assert d.done and out == b""


def test_dot_unstuffing() -> None:
    # RFC 5321 §4.5.2: the first dot of a line starting with a dot is dropped.
    d, out, _ = run([b"..leading\r\n...two\r\n.\r\n"])
    assert d.error is None
    assert out == b".leading\r\n..two\r\n"


@pytest.mark.parametrize(
    "smuggle",
    [b"\n.\n", b"\r\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\r", b"a\rb", b"a\nb"],
)
def test_smuggling_sequences_never_end_data(smuggle: bytes) -> None:
    tail = b"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nforged\r\n"
    d = DataDecoder()
    r = d.feed(b"Subject: x\r\n\r\nhello" + smuggle + tail)
    assert not r.done, "a smuggling sequence must not terminate DATA"
    assert d.error is DataError.BARE_CR_LF
    assert r.payload == b""
    r = d.feed(b"more\r\n.\r\n")
    assert r.done and d.error is DataError.BARE_CR_LF


def test_bare_lf_at_line_start_of_dot_line() -> None:
    d, _, _ = run([b"x\r\n.\nmore\r\n.\r\n"])
    assert d.done and d.error is DataError.BARE_CR_LF


def test_too_big_keeps_draining() -> None:
    d = DataDecoder(max_size=10)
    r = d.feed(b"0123456789abcdef\r\n")
    assert not r.done and d.error is DataError.TOO_BIG and r.payload == b""
    r = d.feed(b".\r\n")
    assert r.done and d.size == 18


def test_line_too_long() -> None:
    d, _, _ = run([b"x" * 999 + b"\r\n", b".\r\n"], max_line_length=1000)
    assert d.error is DataError.LINE_TOO_LONG
    d, out, _ = run([b"x" * 998 + b"\r\n", b".\r\n"], max_line_length=1000)
    assert d.error is None and len(out) == 1000


def test_finished_decoder_refuses_input() -> None:
    d = DataDecoder()
    d.feed(b".\r\n")
    with pytest.raises(RuntimeError):
        d.feed(b"x")


def _reference(data: bytes) -> tuple[bytes | None, bool, bytes]:
    """Straightforward whole-buffer reference: (payload or None if bad, done, leftover)."""
    end = data.find(b"\r\n.\r\n")
    if data.startswith(b".\r\n"):
        body, done, left = b"", True, data[3:]
    elif end >= 0:
        body, done, left = data[: end + 2], True, data[end + 5 :]
    else:
        return None, False, b""
    lines = body.split(b"\r\n")
    bad = any(b"\r" in ln or b"\n" in ln for ln in lines)
    out = b"\r\n".join(ln[1:] if ln.startswith(b".") else ln for ln in lines)
    return (None if bad else out), done, left


alphabet = st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n.", b".\r\n"])


@settings(max_examples=400, deadline=None)
@given(
    parts=st.lists(alphabet, max_size=40),
    cuts=st.lists(st.integers(0, 200), max_size=8),
)
def test_chunking_is_irrelevant(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(parts) + b"\r\n.\r\nNEXT"
    expected_payload, expected_done, expected_left = _reference(data)
    assert expected_done
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, prev = [], 0
    for p in points + [len(data)]:
        chunks.append(data[prev:p])
        prev = p
    d = DataDecoder(max_line_length=None)
    out = bytearray()
    rest = b""
    for k, chunk in enumerate(chunks):
        r = d.feed(chunk)
        out += r.payload
        if r.done:
            rest = r.leftover + b"".join(chunks[k + 1 :])
            break
    assert d.done
    assert rest == expected_left
    if expected_payload is None:
        assert d.error is DataError.BARE_CR_LF
    else:
        assert d.error is None and bytes(out) == expected_payload
