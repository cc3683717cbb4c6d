"""Passkeys (WebAuthn) as a second factor, through /api/settings/passkeys and the two-step login,
with a software authenticator written here from the WebAuthn Level 2 data formats (§6.1 authenticator
data, §6.5.4 "none" attestation, COSE EC2 keys of RFC 9053) — not with py_webauthn's own helpers,
so the server's verification is checked against an independent client."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from base64 import urlsafe_b64decode, urlsafe_b64encode

import cbor2
import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from suite.gateway.service import GatewayService

PW = "correct horse battery"
ALICE = "alice@example.test"


def b64u(b: bytes) -> str:
    return urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s: str) -> bytes:
    return urlsafe_b64decode(s + "=" * (-len(s) % 4))


class SoftAuthenticator:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cred_id = os.urandom(32)
        self.count = 0

    def _cose(self) -> bytes:
        n = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: n.x.to_bytes(32, "big"), -3: n.y.to_bytes(32, "big")})

    def create(self, options: dict, origin: str) -> dict:
        rp_id = options["rp"]["id"]
        client_data = json.dumps(
            {"type": "webauthn.create", "challenge": options["challenge"], "origin": origin, "crossOrigin": False}
        ).encode()
        attested = bytes(16) + struct.pack(">H", len(self.cred_id)) + self.cred_id + self._cose()
        auth_data = hashlib.sha256(rp_id.encode()).digest() + bytes([0x45]) + struct.pack(">I", self.count) + attested
        att = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64u(self.cred_id),
            "rawId": b64u(self.cred_id),
            "type": "public-key",
            "response": {"clientDataJSON": b64u(client_data), "attestationObject": b64u(att)},
        }

    def get(self, options: dict, origin: str, *, challenge: str | None = None) -> dict:
        assert b64u(self.cred_id) in [c["id"] for c in options["allowCredentials"]]
        self.count += 1
        client_data = json.dumps(
            {"type": "webauthn.get", "challenge": challenge or options["challenge"], "origin": origin}
        ).encode()
        auth_data = hashlib.sha256(options["rpId"].encode()).digest() + bytes([0x05]) + struct.pack(">I", self.count)
        sig = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64u(self.cred_id),
            "rawId": b64u(self.cred_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64u(client_data),
                "authenticatorData": b64u(auth_data),
                "signature": b64u(sig),
                "userHandle": None,
            },
        }


@pytest.fixture
async def gw(ctx):
    ctx.settings.http_port = 0
    await ctx.accounts.add_domain("example.test")
    await ctx.accounts.add_account(ALICE, PW)
    svc = GatewayService(ctx)
    await svc.start()
    yield svc
    await svc.stop()


async def test_passkey_enrolment_and_second_step_login(gw, ctx):
    origin = f"http://127.0.0.1:{gw.port}"
    auth = SoftAuthenticator()
    async with httpx.AsyncClient(base_url=origin, timeout=20) as c:
        r = await c.post("/api/login", json={"address": ALICE, "password": PW})
        csrf = r.json()["csrf_token"]
        r = await c.post("/api/settings/passkeys/options", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        ticket, options = r.json()["ticket"], r.json()["options"]
        assert options["rp"]["id"] == "127.0.0.1" and options["user"]["name"] == ALICE
        # a credential made for another origin is refused
        bad = auth.create(options, "http://evil.example")
        r = await c.post(
            "/api/settings/passkeys",
            json={"ticket": ticket, "label": "key", "credential": bad},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 400
        r = await c.post("/api/settings/passkeys/options", headers={"X-CSRF-Token": csrf})
        ticket, options = r.json()["ticket"], r.json()["options"]
        r = await c.post(
            "/api/settings/passkeys",
            json={"ticket": ticket, "label": "YubiKey", "credential": auth.create(options, origin)},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 201, r.text
        assert [p["label"] for p in (await c.get("/api/settings/passkeys")).json()["passkeys"]] == ["YubiKey"]
        assert (await c.get("/api/settings")).json()["mail_clients_need_app_passwords"] is True
    assert (await ctx.accounts.authenticate(ALICE, PW, scope="imap")).outcome == "app-password-required"

    async with httpx.AsyncClient(base_url=origin, timeout=20) as c:
        r = await c.post("/api/login", json={"address": ALICE, "password": PW})
        assert r.json()["second_factor"] == ["passkey"]
        challenge = r.json()["challenge"]
        opts = (await c.post("/api/login/passkey-options", json={"challenge": challenge})).json()["options"]
        # an assertion over another challenge does not pass
        forged = auth.get(opts, origin, challenge=b64u(os.urandom(32)))
        r = await c.post("/api/login/second-factor", json={"challenge": challenge, "passkey": forged})
        assert r.status_code == 401
        opts = (await c.post("/api/login/passkey-options", json={"challenge": challenge})).json()["options"]
        assertion = auth.get(opts, origin)
        r = await c.post("/api/login/second-factor", json={"challenge": challenge, "passkey": assertion})
        assert r.status_code == 200, r.text
        assert (await c.get("/api/me")).json()["address"] == ALICE
        # the same assertion again (replay) is refused: its challenge was used
        c2 = httpx.AsyncClient(base_url=origin, timeout=20)
        ch2 = (await c2.post("/api/login", json={"address": ALICE, "password": PW})).json()["challenge"]
        await c2.post("/api/login/passkey-options", json={"challenge": ch2})
        r = await c2.post("/api/login/second-factor", json={"challenge": ch2, "passkey": assertion})
        assert r.status_code == 401
        await c2.aclose()
