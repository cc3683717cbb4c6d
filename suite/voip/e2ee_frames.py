"""End-to-end encrypted meeting frames: the Python reference of what the browsers write and read.

The browsers (web/src/lib/frame-crypto.js, run in the worker web/src/meeting/e2ee-worker.js)
encrypt every encoded frame before it is packetized and decrypt it after the jitter buffer; the SFU
(Python or Janus) forwards the frames without the key. The server never calls this module on
media: the tests use it to show that what the SFU forwarded is ciphertext of this format.

Layout of one frame (as Jitsi's e2ee, the first bytes stay in clear so that VP8/Opus
(de)packetizers keep working; they are authenticated)::

    clear[n] | AES-256-GCM(key, iv, plaintext=rest, aad=clear) (ciphertext + 16-byte tag) | iv[12] | n

``n`` is 10 for a VP8 keyframe (frame tag, start code, size — RFC 6386 §9.1), 3 for a VP8 delta
frame (the frame tag) and 1 for Opus (the TOC byte, RFC 6716 §3.1). The IV is random per frame.
The frame key is HKDF-SHA-256 (RFC 5869) of the 32 random bytes in the link's fragment
(``#k=<base64url>``), salt ``suite meeting e2ee v1``, info ``frame key``.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
IV_BYTES = 12
TAG_BYTES = 16
CLEAR_KEYFRAME, CLEAR_DELTA, CLEAR_AUDIO = 10, 3, 1
SALT = b"suite meeting e2ee v1"
INFO = b"frame key"
_TRAILER = IV_BYTES + 1


def key_from_text(text: str) -> bytes:
    """The room key of a fragment's ``k=`` value (43 base64url characters)."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != KEY_BYTES:
        raise ValueError("a room key is 32 bytes")
    return raw


def key_to_text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def frame_key(raw: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=INFO).derive(raw)
    return AESGCM(derived)


def encrypt_frame(key: AESGCM, data: bytes, clear: int) -> bytes:
    n = min(clear, len(data), 255)
    iv = os.urandom(IV_BYTES)
    return data[:n] + key.encrypt(iv, data[n:], data[:n]) + iv + bytes([n])


def decrypt_frame(key: AESGCM, data: bytes) -> bytes | None:
    """The plaintext frame, or None when it is not a frame of this format under this key."""
    if len(data) < TAG_BYTES + _TRAILER:
        return None
    n = data[-1]
    if n + TAG_BYTES + _TRAILER > len(data):
        return None
    iv = data[-_TRAILER:-1]
    try:
        return data[:n] + key.decrypt(iv, data[n:-_TRAILER], data[:n])
    except InvalidTag:
        return None
