"""Sign-in security of the account store: TOTP (RFC 6238) with single-use recovery codes, the
second step of a web login, the audit log and the registry of live protocol connections.

Reached as ``AccountStore.security``; like the rest of the account store, values leave as frozen
dataclasses. A TOTP code is accepted once: the accepting UPDATE is conditional on the code's time
step being newer than the last accepted one, so two processes cannot both accept it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import pyotp
import webauthn
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, options_to_json
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from suite.accounts.models import (
    AuditEntry,
    LiveConnectionRow,
    LoginChallenge,
    Passkey,
    RecoveryCode,
    SecondFactor,
)
from suite.storage import db

ISSUER = "Suite"
RECOVERY_CODES = 10
TOTP_WINDOW = 1  # steps either side of now (RFC 6238 §5.2: allow for clock drift)
CHALLENGE_SECONDS = 300.0
CHALLENGE_ATTEMPTS = 5
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 3 * HEARTBEAT_SECONDS  # a row not refreshed for this long belongs to a dead process


class SecurityError(ValueError):
    """A request refused; the message is one line for a person."""


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    secret: str
    uri: str  # otpauth:// provisioning URI (for the QR code)


@dataclass(frozen=True, slots=True)
class AuditInfo:
    id: int
    at: float
    actor: str
    account_id: int | None
    action: str
    detail: str
    ip: str | None


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    id: str
    service: str
    client: str
    ip: str | None
    credential: str
    app_password_id: int | None
    since: float


@dataclass(frozen=True, slots=True)
class PasskeyInfo:
    id: int
    label: str
    created_at: float
    last_used_at: float | None


MAX_PASSKEYS = 20


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().lower().replace("-", "").replace(" ", "").encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(12))  # ~60 bits
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


class Security:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    # ------------------------------------------------------------------ TOTP
    async def totp_begin(self, account_id: int, address: str) -> TotpEnrolment:
        """A new secret to scan; TOTP is not on until :meth:`totp_confirm` got a valid code."""
        async with self._sessions.begin() as s:
            row = await s.get(SecondFactor, account_id)
            if row is not None and row.totp_enabled_at is not None:
                raise SecurityError("two-factor authentication is on already; turn it off first")
            secret = pyotp.random_base32(32)  # 160 bits (RFC 4226 §4 recommends 160)
            if row is None:
                s.add(SecondFactor(account_id=account_id, totp_secret=secret, totp_enabled_at=None, totp_last_step=0))
            else:
                row.totp_secret, row.totp_last_step = secret, 0
        uri = pyotp.TOTP(secret).provisioning_uri(name=address, issuer_name=ISSUER)
        return TotpEnrolment(secret, uri)

    async def _accept_totp(self, s: AsyncSession, row: SecondFactor, code: str, now: float) -> bool:
        code = code.strip().replace(" ", "")
        if not (code.isdigit() and len(code) == 6):
            return False
        totp = pyotp.TOTP(row.totp_secret)
        step_now = int(now // totp.interval)
        for step in range(step_now - TOTP_WINDOW, step_now + TOTP_WINDOW + 1):
            if secrets.compare_digest(totp.generate_otp(step), code):
                # one use per code: only a step newer than the last accepted one passes
                res = await s.execute(
                    update(SecondFactor)
                    .where(SecondFactor.account_id == row.account_id, SecondFactor.totp_last_step < step)
                    .values(totp_last_step=step)
                )
                return db.rowcount(res) == 1
        return False

    async def totp_confirm(self, account_id: int, code: str) -> list[str]:
        """Turn TOTP on with a first valid code; returns the ten recovery codes (shown once)."""
        now = time.time()
        async with self._sessions.begin() as s:
            row = await s.get(SecondFactor, account_id)
            if row is None:
                raise SecurityError("start the enrolment first")
            if row.totp_enabled_at is not None:
                raise SecurityError("two-factor authentication is on already")
            if not await self._accept_totp(s, row, code, now):
                raise SecurityError("that code is not valid; check the phone's clock and try the next one")
            await s.execute(
                update(SecondFactor).where(SecondFactor.account_id == account_id).values(totp_enabled_at=now)
            )
            codes = await self._new_recovery_codes(s, account_id)
        return codes

    async def _new_recovery_codes(self, s: AsyncSession, account_id: int) -> list[str]:
        await s.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account_id))
        codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
        s.add_all(RecoveryCode(account_id=account_id, code_hash=_code_hash(c), used_at=None) for c in codes)
        return codes

    async def regenerate_recovery_codes(self, account_id: int) -> list[str]:
        if not await self.totp_enabled(account_id):
            raise SecurityError("two-factor authentication is off")
        async with self._sessions.begin() as s:
            return await self._new_recovery_codes(s, account_id)

    async def totp_disable(self, account_id: int) -> None:
        async with self._sessions.begin() as s:
            await s.execute(delete(SecondFactor).where(SecondFactor.account_id == account_id))
            await s.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account_id))

    async def totp_enabled(self, account_id: int) -> bool:
        async with self._sessions() as s:
            at = await s.scalar(select(SecondFactor.totp_enabled_at).where(SecondFactor.account_id == account_id))
            return at is not None

    async def recovery_codes_left(self, account_id: int) -> int:
        async with self._sessions() as s:
            q = select(func.count()).select_from(RecoveryCode)
            return await s.scalar(q.where(RecoveryCode.account_id == account_id, RecoveryCode.used_at.is_(None))) or 0

    async def verify_second_factor(self, account_id: int, code: str) -> str | None:
        """A TOTP code or an unused recovery code: which one was accepted ("totp", "recovery"), or None.
        Both are used up by accepting them."""
        now = time.time()
        async with self._sessions.begin() as s:
            row = await s.get(SecondFactor, account_id)
            if row is None or row.totp_enabled_at is None:
                return None
            if await self._accept_totp(s, row, code, now):
                return "totp"
            res = await s.execute(
                update(RecoveryCode)
                .where(
                    RecoveryCode.account_id == account_id,
                    RecoveryCode.code_hash == _code_hash(code),
                    RecoveryCode.used_at.is_(None),
                )
                .values(used_at=now)
            )
            return "recovery" if db.rowcount(res) == 1 else None

    async def has_second_factor(self, account_id: int) -> bool:
        return await self.totp_enabled(account_id) or bool(await self.passkeys(account_id))

    async def methods(self, account_id: int) -> list[str]:
        out = ["totp", "recovery"] if await self.totp_enabled(account_id) else []
        return out + (["passkey"] if await self.passkeys(account_id) else [])

    # ------------------------------------------------------------------ passkeys (WebAuthn)
    async def passkeys(self, account_id: int) -> list[PasskeyInfo]:
        async with self._sessions() as s:
            rows = await s.scalars(select(Passkey).where(Passkey.account_id == account_id).order_by(Passkey.id))
            return [PasskeyInfo(r.id, r.label, r.created_at, r.last_used_at) for r in rows]

    async def _descriptors(self, s: AsyncSession, account_id: int) -> list[PublicKeyCredentialDescriptor]:
        ids = await s.scalars(select(Passkey.credential_id).where(Passkey.account_id == account_id))
        return [PublicKeyCredentialDescriptor(id=base64url_to_bytes(i)) for i in ids]

    async def passkey_register_options(self, account_id: int, address: str, rp_id: str) -> tuple[str, str]:
        """(ticket, PublicKeyCredentialCreationOptions as JSON) for navigator.credentials.create."""
        async with self._sessions() as s:
            exclude = await self._descriptors(s, account_id)
        if len(exclude) >= MAX_PASSKEYS:
            raise SecurityError(f"at most {MAX_PASSKEYS} passkeys; remove one first")
        opts = webauthn.generate_registration_options(
            rp_id=rp_id,
            rp_name=ISSUER,
            user_id=f"suite-{account_id}".encode(),
            user_name=address,
            exclude_credentials=exclude,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.DISCOURAGED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
        )
        ticket = await self.new_challenge(account_id, kind="passkey-register", webauthn=opts.challenge)
        return ticket, options_to_json(opts)

    async def passkey_register(
        self, account_id: int, ticket: str, credential: dict, label: str, *, rp_id: str, origin: str
    ) -> PasskeyInfo:
        label = label.strip()
        if not label or len(label) > 100:
            raise SecurityError("a passkey needs a label of 1 to 100 characters")
        challenge = await self._take_webauthn_challenge(ticket, account_id, "passkey-register")
        if challenge is None:
            raise SecurityError("the passkey request expired; start again")
        try:
            v = webauthn.verify_registration_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=rp_id, expected_origin=origin
            )
        except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
            raise SecurityError(f"the passkey was not accepted: {str(exc)[:200]}") from None
        now = time.time()
        cred_id = bytes_to_base64url(v.credential_id)
        async with self._sessions.begin() as s:
            if await s.scalar(select(Passkey.id).where(Passkey.credential_id == cred_id)) is not None:
                raise SecurityError("this passkey is registered already")
            row = Passkey(
                account_id=account_id,
                credential_id=cred_id,
                public_key=bytes_to_base64url(v.credential_public_key),
                sign_count=v.sign_count,
                label=label,
                created_at=now,
                last_used_at=None,
            )
            s.add(row)
            await s.flush()
            return PasskeyInfo(row.id, label, now, None)

    async def remove_passkey(self, account_id: int, passkey_id: int) -> bool:
        async with self._sessions.begin() as s:
            res = await s.execute(delete(Passkey).where(Passkey.account_id == account_id, Passkey.id == passkey_id))
            return db.rowcount(res) == 1

    async def passkey_login_options(self, token: str, rp_id: str) -> str | None:
        """PublicKeyCredentialRequestOptions (JSON) for the second step of the login ``token``."""
        h = _code_hash(token)
        async with self._sessions.begin() as s:
            ch = await s.get(LoginChallenge, h)
            if ch is None or ch.kind != "login" or ch.expires_at < time.time() or ch.attempts >= CHALLENGE_ATTEMPTS:
                return None
            allow = await self._descriptors(s, ch.account_id)
            if not allow:
                return None
            opts = webauthn.generate_authentication_options(
                rp_id=rp_id, allow_credentials=allow, user_verification=UserVerificationRequirement.PREFERRED
            )
            ch.webauthn_challenge = bytes_to_base64url(opts.challenge)
        return options_to_json(opts)

    async def verify_passkey(self, token: str, account_id: int, credential: dict, *, rp_id: str, origin: str) -> bool:
        challenge = await self._take_webauthn_challenge(token, account_id, "login", keep_row=True)
        if challenge is None:
            return False
        try:
            cred_id = str(credential["rawId"] if "rawId" in credential else credential["id"])
        except (KeyError, TypeError):
            return False
        async with self._sessions.begin() as s:
            pk = await s.scalar(
                select(Passkey).where(Passkey.account_id == account_id, Passkey.credential_id == cred_id)
            )
            if pk is None:
                return False
            try:
                v = webauthn.verify_authentication_response(
                    credential=credential,
                    expected_challenge=challenge,
                    expected_rp_id=rp_id,
                    expected_origin=origin,
                    credential_public_key=base64url_to_bytes(pk.public_key),
                    credential_current_sign_count=pk.sign_count,
                )
            except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError):
                return False
            pk.sign_count, pk.last_used_at = v.new_sign_count, time.time()
        return True

    async def _take_webauthn_challenge(
        self, token: str, account_id: int, kind: str, *, keep_row: bool = False
    ) -> bytes | None:
        """The WebAuthn challenge issued under ``token``, usable once (it is cleared here)."""
        h = _code_hash(token)
        async with self._sessions.begin() as s:
            ch = await s.get(LoginChallenge, h)
            if ch is None or ch.kind != kind or ch.account_id != account_id or ch.expires_at < time.time():
                return None
            value = ch.webauthn_challenge
            if keep_row:
                ch.webauthn_challenge = None
            else:
                await s.delete(ch)
        return base64url_to_bytes(value) if value else None

    # ------------------------------------------------------------------ second step of a web login
    async def new_challenge(self, account_id: int, *, kind: str = "login", webauthn: bytes | None = None) -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        async with self._sessions.begin() as s:
            await s.execute(delete(LoginChallenge).where(LoginChallenge.expires_at < now))
            s.add(
                LoginChallenge(
                    token_hash=_code_hash(token),
                    account_id=account_id,
                    attempts=0,
                    expires_at=now + CHALLENGE_SECONDS,
                    kind=kind,
                    webauthn_challenge=bytes_to_base64url(webauthn) if webauthn else None,
                )
            )
        return token

    async def challenge_account(self, token: str) -> int | None:
        """The account of a live challenge, counting one attempt (None past the limit or expiry)."""
        h = _code_hash(token)
        async with self._sessions.begin() as s:
            res = await s.execute(
                update(LoginChallenge)
                .where(
                    LoginChallenge.token_hash == h,
                    LoginChallenge.kind == "login",
                    LoginChallenge.expires_at >= time.time(),
                    LoginChallenge.attempts < CHALLENGE_ATTEMPTS,
                )
                .values(attempts=LoginChallenge.attempts + 1)
            )
            if db.rowcount(res) != 1:
                return None
            return await s.scalar(select(LoginChallenge.account_id).where(LoginChallenge.token_hash == h))

    async def end_challenge(self, token: str) -> None:
        async with self._sessions.begin() as s:
            await s.execute(delete(LoginChallenge).where(LoginChallenge.token_hash == _code_hash(token)))

    # ------------------------------------------------------------------ audit log
    async def audit(
        self, action: str, *, actor: str = "", account_id: int | None = None, detail: str = "", ip: str | None = None
    ) -> None:
        async with self._sessions.begin() as s:
            s.add(
                AuditEntry(
                    at=time.time(), actor=actor, account_id=account_id, action=action, detail=detail[:500], ip=ip
                )
            )

    async def audit_log(self, account_id: int | None = None, *, limit: int = 200) -> list[AuditInfo]:
        """The newest entries; of one account (as actor's subject) when ``account_id`` is given."""
        async with self._sessions() as s:
            q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
            if account_id is not None:
                q = q.where(AuditEntry.account_id == account_id)
            return [AuditInfo(r.id, r.at, r.actor, r.account_id, r.action, r.detail, r.ip) for r in await s.scalars(q)]

    # ------------------------------------------------------------------ live connections
    async def connection_opened(self, row: ConnectionInfo, account_id: int) -> None:
        now = time.time()
        async with self._sessions.begin() as s:
            s.add(
                LiveConnectionRow(
                    id=row.id,
                    account_id=account_id,
                    service=row.service,
                    client=row.client[:200],
                    ip=row.ip,
                    credential=row.credential,
                    app_password_id=row.app_password_id,
                    since=row.since,
                    seen_at=now,
                )
            )

    async def connection_closed(self, conn_id: str) -> None:
        async with self._sessions.begin() as s:
            await s.execute(delete(LiveConnectionRow).where(LiveConnectionRow.id == conn_id))

    async def connections_alive(self, ids: list[str]) -> None:
        """Heartbeat of one process's connections (and forget rows of dead processes)."""
        now = time.time()
        async with self._sessions.begin() as s:
            if ids:
                await s.execute(update(LiveConnectionRow).where(LiveConnectionRow.id.in_(ids)).values(seen_at=now))
            await s.execute(delete(LiveConnectionRow).where(LiveConnectionRow.seen_at < now - STALE_SECONDS))

    async def connections(self, account_id: int) -> list[ConnectionInfo]:
        since = time.time() - STALE_SECONDS
        async with self._sessions() as s:
            rows = await s.scalars(
                select(LiveConnectionRow)
                .where(LiveConnectionRow.account_id == account_id, LiveConnectionRow.seen_at >= since)
                .order_by(LiveConnectionRow.since)
            )
            return [
                ConnectionInfo(r.id, r.service, r.client, r.ip, r.credential, r.app_password_id, r.since) for r in rows
            ]

    async def connection_counts(self) -> dict[str, int]:
        """Live connections by service, over every process (admin health)."""
        since = time.time() - STALE_SECONDS
        async with self._sessions() as s:
            rows = await s.execute(
                select(LiveConnectionRow.service, func.count())
                .where(LiveConnectionRow.seen_at >= since)
                .group_by(LiveConnectionRow.service)
            )
            return {svc: n for svc, n in rows}
