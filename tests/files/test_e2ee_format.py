"""The encrypted-link format (suite.files.e2ee_format): round trips at record edges, and every kind
of damage — a changed byte, a cut, appended data, a swapped record, a wrong key or password — refused."""

from __future__ import annotations

import io
import os

import pytest

from suite.files import e2ee_format as fmt

KEY = bytes(range(32))


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 7])
def test_round_trip_at_record_edges(size):
    data = os.urandom(size)
    blob = fmt.encrypt(data, KEY, "a <b>.txt", "text/plain", record_exp=12)
    n = fmt.record_count(size, 12)
    head, _ = fmt.read_header(io.BytesIO(blob), KEY)
    assert len(blob) == fmt.ciphertext_size(size, head.length - fmt.FIXED_LEN, 12)
    assert len(blob) == head.length + size + 16 * n
    meta, out = fmt.decrypt(blob, KEY)
    assert out == data
    assert meta == {"name": "a <b>.txt", "type": "text/plain", "size": size}


def test_streamed_encryption_matches_one_shot():
    data = os.urandom(70_000)
    salt = bytes(16)
    one = fmt.encrypt(data, KEY, "x", "y", salt=salt, record_exp=12)
    head, keys = fmt.header(KEY, "x", "y", len(data), salt=salt, record_exp=12)
    chunks = [data[i : i + 333] for i in range(0, len(data), 333)]
    assert head + b"".join(fmt.encrypt_records(keys, chunks, len(data), 12)) == one


def test_no_plaintext_window_in_ciphertext():
    data = b"A" * 100_000
    blob = fmt.encrypt(data, KEY)
    assert b"A" * 64 not in blob


def _damaged(blob: bytes, at: int) -> bytes:
    b = bytearray(blob)
    b[at] ^= 0x01
    return bytes(b)


def test_tampering_is_refused():
    data = os.urandom(5 * 4096 + 10)
    blob = fmt.encrypt(data, KEY, record_exp=12)
    head, _ = fmt.read_header(io.BytesIO(blob), KEY)
    rec = 4096 + 16
    # a changed byte in a middle record, in the last record, in a tag
    for at in (head.length + rec * 2 + 5, len(blob) - 20, len(blob) - 1):
        with pytest.raises(fmt.Tampered):
            fmt.decrypt(_damaged(blob, at), KEY)
    # cut at a record boundary (the last-record flag is missing), cut inside a record, data added
    with pytest.raises(fmt.Tampered):
        fmt.decrypt(blob[: head.length + rec * 5], KEY)
    with pytest.raises(fmt.Tampered):
        fmt.decrypt(blob[:-3], KEY)
    with pytest.raises(fmt.Tampered):
        fmt.decrypt(blob + b"\0", KEY)
    # two records swapped (the nonce carries the counter)
    r1 = blob[head.length : head.length + rec]
    r2 = blob[head.length + rec : head.length + 2 * rec]
    swapped = blob[: head.length] + r2 + r1 + blob[head.length + 2 * rec :]
    with pytest.raises(fmt.Tampered):
        fmt.decrypt(swapped, KEY)
    # the header is authenticated with the metadata: a changed record size or salt is a wrong key
    with pytest.raises(fmt.WrongKey):
        fmt.decrypt(_damaged(blob, 10), KEY)
    with pytest.raises(fmt.FormatError):
        fmt.decrypt(_damaged(blob, 4), KEY)  # the version byte


def test_records_refused_before_any_bad_plaintext_is_given_out():
    data = os.urandom(3 * 4096)
    blob = fmt.encrypt(data, KEY, record_exp=12)
    head, recs = fmt.decrypt_stream(io.BytesIO(_damaged(blob, len(blob) - 30)), KEY)
    got = []
    with pytest.raises(fmt.Tampered):
        for r in recs:
            got.append(r)
    assert b"".join(got) == data[: 2 * 4096]  # the good records only


def test_wrong_key_and_passwords():
    blob = fmt.encrypt(b"secret", KEY)
    with pytest.raises(fmt.WrongKey):
        fmt.decrypt(blob, bytes(32))
    frag = fmt.fragment(KEY)
    assert fmt.key_from_fragment("#" + frag) == KEY
    with pytest.raises(fmt.WrongKey):
        fmt.key_from_fragment("")
    with pytest.raises(fmt.WrongKey):
        fmt.key_from_fragment("k1.abc")
    pfrag = fmt.fragment(KEY, "pässword", salt=bytes(16))
    assert pfrag.startswith("p1.")
    assert fmt.key_from_fragment(pfrag, "pässword") == KEY
    with pytest.raises(fmt.WrongKey):
        fmt.key_from_fragment(pfrag, "password")
    with pytest.raises(fmt.WrongKey):
        fmt.key_from_fragment(pfrag)
    wrap, auth = fmt.password_keys("pässword", bytes(16))
    assert fmt.b64u(wrap) != auth and len(fmt.unb64u(auth)) == 32
