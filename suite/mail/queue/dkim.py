"""DKIM keys per domain and signing of outbound mail (dkimpy).

Every domain gets two keys at ``suite domain add``: Ed25519 (RFC 8463) under selector ``suite-ed`` and
RSA-2048 (RFC 6376 §3.3.3; RFC 8301 §3.2 wants at least 1024, 2048 is today's floor) under ``suite-rsa``.
Messages are signed with both: receivers that do not know Ed25519 ignore that signature
(RFC 8463 §3: "signers SHOULD ... sign with both").
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from suite.accounts.store import normalize_domain
from suite.mail.queue.models import DkimKey

SELECTORS = {"ed25519": "suite-ed", "rsa": "suite-rsa"}
# RFC 6376 §5.4.1 recommended header fields; From is required. Listing a field once more than it occurs
# ("oversigning") stops a later hop from adding one (RFC 6376 §8.15).
SIGNED_HEADERS = (
    b"from",
    b"from",
    b"to",
    b"cc",
    b"subject",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)


@dataclass(frozen=True, slots=True)
class DomainKey:
    domain: str
    selector: str
    algorithm: str  # ed25519 | rsa
    private_pem: bytes

    def _private(self):
        return serialization.load_pem_private_key(self.private_pem, password=None)

    def public_b64(self) -> str:
        """The p= value of the DNS record (RFC 6376 §3.6.1; RFC 8463 §4.2 for the raw Ed25519 key)."""
        pub = self._private().public_key()
        if self.algorithm == "ed25519":
            raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            raw = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(raw).decode()

    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def dns_txt(self) -> str:
        k = "ed25519" if self.algorithm == "ed25519" else "rsa"
        return f"v=DKIM1; k={k}; p={self.public_b64()}"

    def dkimpy_private(self) -> bytes:
        """The private key in the form dkimpy takes: PEM for RSA, base64 of the 32-byte seed for Ed25519."""
        if self.algorithm == "ed25519":
            seed = self._private().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            return base64.b64encode(seed)
        return self.private_pem


def _new_pem(algorithm: str) -> bytes:
    key = ed25519.Ed25519PrivateKey.generate() if algorithm == "ed25519" else rsa.generate_private_key(65537, 2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


async def domain_keys(ctx, domain: str) -> list[DomainKey]:
    domain = normalize_domain(domain)
    async with ctx.sessions() as s:
        rows = await s.scalars(select(DkimKey).where(DkimKey.domain == domain).order_by(DkimKey.algorithm))
        return [DomainKey(r.domain, r.selector, r.algorithm, r.private_key.encode()) for r in rows]


async def ensure_keys(ctx, domain: str) -> list[DomainKey]:
    """Create the domain's Ed25519 and RSA keys when missing (idempotent); returns both."""
    domain = normalize_domain(domain)
    have = {k.algorithm for k in await domain_keys(ctx, domain)}
    for algorithm, selector in SELECTORS.items():
        if algorithm in have:
            continue
        pem = await asyncio.to_thread(_new_pem, algorithm)
        try:
            async with ctx.sessions.begin() as s:
                s.add(
                    DkimKey(
                        domain=domain,
                        selector=selector,
                        algorithm=algorithm,
                        private_key=pem.decode(),
                        created_at=time.time(),
                    )
                )
        except IntegrityError:
            pass  # made concurrently by another process
    return await domain_keys(ctx, domain)


def sign(message: bytes, keys: list[DomainKey]) -> bytes:
    """DKIM-Signature header lines for ``message`` (CRLF line ends), one per key. Blocking: run in a thread.

    Both signatures cover the same message (neither covers the other's header)."""
    out = b""
    for key in sorted(keys, key=lambda k: k.algorithm):  # ed25519 then rsa; RFC 6376 leaves the order free
        algo = b"ed25519-sha256" if key.algorithm == "ed25519" else b"rsa-sha256"
        header = dkim.sign(
            message,
            key.selector.encode(),
            key.domain.encode(),
            key.dkimpy_private(),
            include_headers=list(SIGNED_HEADERS),
            signature_algorithm=algo,
            canonicalize=(b"relaxed", b"relaxed"),
            linesep=b"\r\n",
        )
        out += header
    return out
