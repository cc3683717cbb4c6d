"""Encrypted share links, format version 1: the Python reference of what the browser writes and reads.

The layout, the key derivation and what the server sees are in docs/ENCRYPTED-LINKS.md. The browser
(web/src/lib/crypto-format.js) and this module must agree byte for byte; the tests decrypt what
Chromium uploaded with this module and check that a changed byte is refused.

The server never calls this module on user data: it only stores and serves the ciphertext.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

MAGIC = b"SE2E"
VERSION = 1
DEFAULT_RECORD_EXP = 16  # 64 KiB plaintext records
MIN_RECORD_EXP, MAX_RECORD_EXP = 12, 24
FIXED = struct.Struct(">4sBB16sI")  # magic, version, record_exp, salt, meta_len
FIXED_LEN = FIXED.size  # 26
TAG = 16
KEY_LEN = 32
SALT_LEN = 16
MAX_META = 64 * 1024
META_PAD = 256
PBKDF2_ITERATIONS = 600_000
MEDIA_TYPE = "application/vnd.suite.e2ee"
LAST, MORE = b"\x01", b"\x00"  # the record's AAD: is it the last one


class FormatError(ValueError):
    """Not this format, or a version/record size this code does not know."""


class WrongKey(ValueError):
    """The metadata does not decrypt: the key (or the password) is not the one the file was made with."""


class Tampered(ValueError):
    """A record does not authenticate, is missing, or data follows the last record."""


@dataclass(frozen=True, slots=True)
class Keys:
    content: bytes
    meta: bytes
    nonce: bytes


@dataclass(frozen=True, slots=True)
class Header:
    record_exp: int
    salt: bytes
    meta: dict
    length: int  # bytes of header incl. the encrypted metadata: records start here

    @property
    def record_size(self) -> int:
        return 1 << self.record_exp


def derive(key: bytes, salt: bytes) -> Keys:
    """HKDF-SHA256 (RFC 5869) of the link key with the file's salt: content key, metadata key, base nonce."""
    if len(key) != KEY_LEN:
        raise WrongKey("the key must be 32 bytes")

    def h(info: bytes, n: int) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(key)

    return Keys(
        h(b"suite-e2ee v1 content key", 32), h(b"suite-e2ee v1 metadata key", 32), h(b"suite-e2ee v1 nonce", 12)
    )


def record_nonce(base: bytes, counter: int) -> bytes:
    """The base nonce XOR the record counter as a 96-bit big-endian integer."""
    return (int.from_bytes(base, "big") ^ counter).to_bytes(12, "big")


def record_count(size: int, record_exp: int = DEFAULT_RECORD_EXP) -> int:
    r = 1 << record_exp
    return max(1, -(-size // r))


def _meta_plain(name: str, media_type: str, size: int) -> bytes:
    raw = json.dumps({"name": name, "type": media_type, "size": size}, ensure_ascii=False).encode()
    return raw + b" " * (-len(raw) % META_PAD)  # hide the exact name length


def header(key: bytes, name: str, media_type: str, size: int, *, salt: bytes | None = None, record_exp: int = 16):
    """(header bytes, keys) for a new file."""
    salt = salt if salt is not None else os.urandom(SALT_LEN)
    keys = derive(key, salt)
    meta = _meta_plain(name, media_type, size)
    fixed = FIXED.pack(MAGIC, VERSION, record_exp, salt, len(meta) + TAG)
    return fixed + AESGCM(keys.meta).encrypt(bytes(12), meta, fixed), keys


def ciphertext_size(size: int, meta_len: int, record_exp: int = DEFAULT_RECORD_EXP) -> int:
    return FIXED_LEN + meta_len + size + TAG * record_count(size, record_exp)


def encrypt_records(
    keys: Keys, chunks: Iterable[bytes], size: int, record_exp: int = DEFAULT_RECORD_EXP
) -> Iterator[bytes]:
    """Cut the plaintext (``size`` bytes, any chunking) into records and encrypt each."""
    r = 1 << record_exp
    n = record_count(size, record_exp)
    aes = AESGCM(keys.content)
    buf = bytearray()
    i = 0
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        buf += chunk
        while len(buf) >= r and i < n - 1:
            yield aes.encrypt(record_nonce(keys.nonce, i), bytes(buf[:r]), MORE)
            del buf[:r]
            i += 1
    if seen != size or len(buf) > r:
        raise ValueError(f"the plaintext has {seen} bytes, not {size}")
    yield aes.encrypt(record_nonce(keys.nonce, i), bytes(buf), LAST)


def encrypt(data: bytes, key: bytes, name: str = "file", media_type: str = "application/octet-stream", **kw) -> bytes:
    head, keys = header(key, name, media_type, len(data), **kw)
    return head + b"".join(encrypt_records(keys, [data], len(data), kw.get("record_exp", DEFAULT_RECORD_EXP)))


def read_header(f: BinaryIO, key: bytes) -> tuple[Header, Keys]:
    fixed = f.read(FIXED_LEN)
    if len(fixed) < FIXED_LEN:
        raise FormatError("too short for an encrypted file")
    magic, version, exp, salt, meta_len = FIXED.unpack(fixed)
    if magic != MAGIC:
        raise FormatError("not a Suite encrypted file")
    if version != VERSION:
        raise FormatError(f"format version {version} is not supported (this code reads {VERSION})")
    if not MIN_RECORD_EXP <= exp <= MAX_RECORD_EXP or not TAG <= meta_len <= MAX_META:
        raise FormatError("bad header")
    ct = f.read(meta_len)
    if len(ct) < meta_len:
        raise Tampered("the file ends inside its header")
    keys = derive(key, salt)
    try:
        meta = json.loads(AESGCM(keys.meta).decrypt(bytes(12), ct, fixed))
    except InvalidTag:
        raise WrongKey("wrong or missing key: this file cannot be decrypted with this link") from None
    return Header(exp, salt, meta, FIXED_LEN + meta_len), keys


def decrypt_stream(f: BinaryIO, key: bytes) -> tuple[Header, Iterator[bytes]]:
    """The header (metadata checked) and an iterator of plaintext records; raises Tampered on any
    change, cut or addition — before yielding the record concerned."""
    head, keys = read_header(f, key)
    size = head.meta.get("size")
    if not isinstance(size, int) or size < 0:
        raise FormatError("bad metadata")
    n = record_count(size, head.record_exp)
    r = head.record_size

    def records() -> Iterator[bytes]:
        aes = AESGCM(keys.content)
        for i in range(n):
            last = i == n - 1
            want = (size - (n - 1) * r if last else r) + TAG
            ct = f.read(want)
            if len(ct) != want:
                raise Tampered(f"the file is cut at record {i}")
            try:
                yield aes.decrypt(record_nonce(keys.nonce, i), ct, LAST if last else MORE)
            except InvalidTag:
                raise Tampered(f"record {i} was changed") from None
        if f.read(1):
            raise Tampered("data follows the last record")

    return head, records()


def decrypt(data: bytes, key: bytes) -> tuple[dict, bytes]:
    import io

    head, recs = decrypt_stream(io.BytesIO(data), key)
    return head.meta, b"".join(recs)


# ---------------------------------------------------------------- link fragments and passwords
def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def password_keys(password: str, salt: bytes, iterations: int = PBKDF2_ITERATIONS) -> tuple[bytes, str]:
    """PBKDF2-SHA256 → (key-wrapping key, the share password the server checks). The second half is
    all the server ever gets of the password; it cannot unwrap the key with it."""
    pw = unicodedata.normalize("NFC", password).encode()
    out = PBKDF2HMAC(algorithm=hashes.SHA256(), length=64, salt=salt, iterations=iterations).derive(pw)
    return out[:32], b64u(out[32:])


def fragment(key: bytes, password: str | None = None, *, salt: bytes | None = None) -> str:
    """The link's fragment (without '#'): ``k1.<key>`` or ``p1.<salt>.<AES-KW wrapped key>``."""
    if password is None:
        return "k1." + b64u(key)
    salt = salt if salt is not None else os.urandom(SALT_LEN)
    wrap, _ = password_keys(password, salt)
    return f"p1.{b64u(salt)}.{b64u(aes_key_wrap(wrap, key))}"


def key_from_fragment(frag: str, password: str | None = None) -> bytes:
    parts = frag.lstrip("#").split(".")
    try:
        if parts[0] == "k1" and len(parts) == 2:
            key = unb64u(parts[1])
        elif parts[0] == "p1" and len(parts) == 3:
            if password is None:
                raise WrongKey("this link needs its password")
            wrap, _ = password_keys(password, unb64u(parts[1]))
            try:
                key = aes_key_unwrap(wrap, unb64u(parts[2]))
            except InvalidUnwrap:
                raise WrongKey("wrong password") from None
        else:
            raise WrongKey("the link has no key (the part after #)")
    except (ValueError, IndexError) as exc:
        if isinstance(exc, WrongKey):
            raise
        raise WrongKey("the link's key is damaged") from None
    if len(key) != KEY_LEN:
        raise WrongKey("the link's key is damaged")
    return key
