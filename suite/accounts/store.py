"""The one account store: domains, accounts, aliases, app passwords, quotas, logins.

Every service (IMAP, SMTP, files, calls, the gateway) asks this API; none reads the tables directly.
Values leave as frozen dataclasses, never as ORM objects.
"""

from __future__ import annotations

import re
import secrets
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from suite.accounts import identities, passwords
from suite.accounts.identities import IdentityInfo
from suite.accounts.models import (
    Account,
    Alias,
    AppPassword,
    Domain,
    Identity,
    LoginFailure,
    WebSession,
)
from suite.accounts.security import Security
from suite.storage import changelog, db
from suite.storage.events import CredentialsRevoked, IdentitiesChanged

SCOPES = ("imap", "smtp", "dav", "jmap")
SESSION_ID_CHARS = 24  # the public id of a web session: this many hex digits of its token hash
AUTH_CACHE_SECONDS = 60.0  # how long a verified password spares argon2 (Dovecot: auth_cache_ttl)
APP_PASSWORD_USE_SECONDS = 60.0  # an app password's "last used" is written at most this often per process
MAX_APP_PASSWORDS = 20
RECIPIENT_DELIMITER = "+"

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOCAL = re.compile(r"^[^\s@\"(),:;<>\[\]\\]{1,64}$")


class AccountError(ValueError):
    """A request the store refuses; the message is one line for a person."""


class NotFound(AccountError):
    pass


class Exists(AccountError):
    pass


@dataclass(frozen=True, slots=True)
class DomainInfo:
    id: int
    name: str
    accounts: int = 0


@dataclass(frozen=True, slots=True)
class AccountInfo:
    id: int
    address: str
    display_name: str
    quota_bytes: int
    used_bytes: int
    is_admin: bool
    disabled: bool
    big_attachment_links: bool = False


# The account columns behind an AccountInfo, in its field order: the one list both the ORM path
# (``_info``) and raw SQL (the login query, ``_info_from_row``) read.
_INFO_COLUMNS = (
    "id",
    "address",
    "display_name",
    "quota_bytes",
    "used_bytes",
    "is_admin",
    "disabled",
    "big_attachment_links",
)


@dataclass(frozen=True, slots=True)
class AliasInfo:
    id: int
    address: str
    target: str


@dataclass(frozen=True, slots=True)
class AppPasswordInfo:
    id: int
    label: str
    scopes: tuple[str, ...]
    created_at: float
    last_used_at: float | None


@dataclass(frozen=True, slots=True)
class AuthResult:
    account: AccountInfo | None
    # "ok", "bad-credentials", "locked", "disabled", "app-password-required" (a second factor is
    # on: mail, DAV and JMAP clients sign in with app passwords only)
    outcome: str
    via_app_password: bool = False
    retry_after: float = 0.0
    app_password_id: int | None = None  # which app password signed in (revocation ends its connections)

    @property
    def ok(self) -> bool:
        return self.account is not None


@dataclass(frozen=True, slots=True)
class WebSessionInfo:
    account: AccountInfo
    csrf_token: str
    expires_at: float
    session_id: str = ""  # public id: a prefix of the stored token hash (never the token)


@dataclass(frozen=True, slots=True)
class WebSessionRow:
    session_id: str
    created_at: float
    expires_at: float
    ip: str | None
    user_agent: str


def normalize_domain(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii") if any(ord(c) > 127 for c in name) else name
    except UnicodeError as exc:
        raise AccountError(f"invalid domain name: {name!r}") from exc
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise AccountError(f"invalid domain name: {name!r}")
    return name


def normalize_address(address: str, *, allow_wildcard: bool = False) -> tuple[str, str]:
    """Return (local, domain), lowercased and NFC-normalised; local parts may be UTF-8 (RFC 6531)."""
    address = unicodedata.normalize("NFC", address.strip())
    local, sep, domain = address.rpartition("@")
    if not sep or not local:
        raise AccountError(f"invalid address: {address!r}")
    local = local.lower()
    if not (allow_wildcard and local == "*") and (
        not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local
    ):
        raise AccountError(f"invalid address: {address!r}")
    return local, normalize_domain(domain)


def _info(a: Account) -> AccountInfo:
    return _info_from_row([getattr(a, c) for c in _INFO_COLUMNS])


def _info_from_row(row: Sequence[Any]) -> AccountInfo:
    """An AccountInfo from the first ``len(_INFO_COLUMNS)`` values of a row selected in that order."""
    (id_, address, display_name, quota, used, is_admin, disabled, big_links) = row[: len(_INFO_COLUMNS)]
    return AccountInfo(id_, address, display_name, quota, used, bool(is_admin), bool(disabled), bool(big_links))


class _AuthCache:
    """Verified account passwords of one account store (one per process): key → (password hash it
    was verified against, expiry). Keys are HMACs under the cache's own random secret, so they mean
    nothing outside it. See :meth:`AccountStore.authenticate`."""

    def __init__(self, ttl: float = AUTH_CACHE_SECONDS, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._secret = secrets.token_bytes(32)
        self._d: dict[tuple[str, bytes], tuple[str, float]] = {}

    def key(self, address: str, password: str) -> tuple[str, bytes]:
        return address, passwords.cache_key(self._secret, address, password)

    def get(self, key: tuple[str, bytes], pw_hash: str) -> bool:
        hit = self._d.get(key)
        if hit is None:
            return False
        if hit[1] < time.monotonic() or not passwords.same_hash(hit[0], pw_hash):
            self._d.pop(key, None)  # expired, or the password was changed since
            return False
        return True

    def put(self, key: tuple[str, bytes], pw_hash: str) -> None:
        now = time.monotonic()
        if len(self._d) >= self.max_entries:
            for k in [k for k, (_, exp) in self._d.items() if exp < now]:
                del self._d[k]
            while len(self._d) >= self.max_entries:
                del self._d[next(iter(self._d))]
        self._d[key] = (pw_hash, now + self.ttl)

    def clear(self) -> None:
        self._d.clear()


class AccountStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings, bus=None) -> None:
        self._sessions = sessions
        self._settings = settings
        # where revocations are announced (``CredentialsRevoked``); None: nobody listens
        self._bus = bus
        self._engine = sessions.kw["bind"]
        self._auth_cache = _AuthCache()  # the login cache (see ``authenticate``)
        self._app_used: dict[int, float] = {}  # app password id -> when its use was last written (monotonic)
        self.security = Security(sessions)  # second factors, audit log, live connections

    async def _identities_changed(self, account_id: int) -> None:
        if self._bus is not None:
            await self._bus.publish(IdentitiesChanged(account_id=account_id))

    async def _revoked(self, account_id: int, scope: str, reason: str, **kw) -> None:
        """Announce, after the commit, that live connections signed in with these credentials end."""
        if self._bus is not None:
            await self._bus.publish(CredentialsRevoked(account_id=account_id, scope=scope, reason=reason, **kw))

    # ------------------------------------------------------------------ domains
    async def add_domain(self, name: str) -> DomainInfo:
        name = normalize_domain(name)
        async with self._sessions.begin() as s:
            if await s.scalar(select(Domain.id).where(Domain.name == name)) is not None:
                raise Exists(f"domain {name} exists already")
            d = Domain(name=name, created_at=time.time())
            s.add(d)
            await s.flush()
            return DomainInfo(d.id, d.name)

    async def list_domains(self) -> list[DomainInfo]:
        async with self._sessions() as s:
            counts = select(Account.domain_id, func.count().label("n")).group_by(Account.domain_id).subquery()
            rows = await s.execute(
                select(Domain.id, Domain.name, func.coalesce(counts.c.n, 0))
                .outerjoin(counts, counts.c.domain_id == Domain.id)
                .order_by(Domain.name)
            )
            return [DomainInfo(i, n, c) for i, n, c in rows]

    async def remove_domain(self, name: str) -> None:
        name = normalize_domain(name)
        async with self._sessions.begin() as s:
            d = await s.scalar(select(Domain).where(Domain.name == name))
            if d is None:
                raise NotFound(f"no domain {name}")
            n = await s.scalar(select(func.count()).select_from(Account).where(Account.domain_id == d.id))
            if n:
                raise AccountError(f"domain {name} still has {n} account(s); remove them first")
            await s.execute(delete(Alias).where(Alias.domain_id == d.id))
            await s.delete(d)

    async def is_local_domain(self, name: str) -> bool:
        try:
            name = normalize_domain(name)
        except AccountError:
            return False
        async with self._sessions() as s:
            return await s.scalar(select(Domain.id).where(Domain.name == name)) is not None

    async def _domain(self, s: AsyncSession, name: str) -> Domain:
        d = await s.scalar(select(Domain).where(Domain.name == name))
        if d is None:
            raise NotFound(f"unknown domain {name}; add it with `suite domain add {name}`")
        return d

    # ------------------------------------------------------------------ accounts
    async def add_account(
        self,
        address: str,
        password: str,
        *,
        display_name: str = "",
        quota_bytes: int | None = None,
        is_admin: bool = False,
    ) -> AccountInfo:
        local, domain = normalize_address(address)
        address = f"{local}@{domain}"
        try:
            passwords.check_policy(password, address)
        except passwords.WeakPassword as exc:
            raise AccountError(str(exc)) from None
        pw_hash = await passwords.hash_password(password)
        quota = self._settings.default_quota_bytes if quota_bytes is None else quota_bytes
        if quota < 0:
            raise AccountError("quota must not be negative")
        try:
            async with self._sessions.begin() as s:
                d = await self._domain(s, domain)
                if await s.scalar(select(Alias.id).where(Alias.address == address)) is not None:
                    raise Exists(f"{address} is an alias already")
                if await s.scalar(select(Account.id).where(Account.address == address)) is not None:
                    raise Exists(f"user {address} exists already")
                a = Account(
                    domain_id=d.id,
                    address=address,
                    display_name=display_name,
                    password_hash=pw_hash,
                    quota_bytes=quota,
                    used_bytes=0,
                    is_admin=is_admin,
                    disabled=False,
                    created_at=time.time(),
                )
                s.add(a)
                await s.flush()
                await identities.add(s, a.id, address, may_delete=False)  # RFC 8621 §6: the own address
                return _info(a)
        except IntegrityError:
            raise Exists(f"user {address} exists already") from None

    async def get(self, address: str) -> AccountInfo | None:
        try:
            local, domain = normalize_address(address)
        except AccountError:
            return None
        async with self._sessions() as s:
            a = await s.scalar(select(Account).where(Account.address == f"{local}@{domain}"))
            return _info(a) if a else None

    async def get_by_id(self, account_id: int) -> AccountInfo | None:
        async with self._sessions() as s:
            a = await s.get(Account, account_id)
            return _info(a) if a else None

    async def require(self, address: str) -> AccountInfo:
        info = await self.get(address)
        if info is None:
            raise NotFound(f"no user {address}")
        return info

    async def list_accounts(self, domain: str | None = None) -> list[AccountInfo]:
        async with self._sessions() as s:
            q = select(Account).order_by(Account.address)
            if domain:
                q = q.join(Domain).where(Domain.name == normalize_domain(domain))
            return [_info(a) for a in await s.scalars(q)]

    async def count_accounts(self) -> int:
        async with self._sessions() as s:
            return await s.scalar(select(func.count()).select_from(Account)) or 0

    async def set_password(self, address: str, password: str) -> None:
        info = await self.require(address)
        try:
            passwords.check_policy(password, info.address)
        except passwords.WeakPassword as exc:
            raise AccountError(str(exc)) from None
        pw_hash = await passwords.hash_password(password)
        async with self._sessions.begin() as s:
            await s.execute(update(Account).where(Account.id == info.id).values(password_hash=pw_hash))
            # A new password ends every web session (the user may be locking someone out).
            await s.execute(delete(WebSession).where(WebSession.account_id == info.id))
        await self._revoked(info.id, "password", "password changed")

    async def set_quota(self, address: str, quota_bytes: int) -> AccountInfo:
        if quota_bytes < 0:
            raise AccountError("quota must not be negative")
        info = await self.require(address)
        async with self._sessions.begin() as s:
            await s.execute(update(Account).where(Account.id == info.id).values(quota_bytes=quota_bytes))
        return await self.require(address)

    async def set_big_attachment_links(self, address: str, on: bool) -> None:
        """Turn on/off the rewriting of big attachments into share links for mail this account sends
        through SMTP submission (the web app always does it)."""
        info = await self.require(address)
        async with self._sessions.begin() as s:
            await s.execute(update(Account).where(Account.id == info.id).values(big_attachment_links=on))

    async def big_attachment_links(self, account_id: int) -> bool:
        """Read fresh (an AccountInfo in a web session may be older than the last change)."""
        async with self._sessions() as s:
            on = await s.scalar(select(Account.big_attachment_links).where(Account.id == account_id))
            return bool(on)

    async def set_disabled(self, address: str, disabled: bool) -> None:
        info = await self.require(address)
        async with self._sessions.begin() as s:
            await s.execute(update(Account).where(Account.id == info.id).values(disabled=disabled))
            if disabled:
                await s.execute(delete(WebSession).where(WebSession.account_id == info.id))
        if disabled:
            await self._revoked(info.id, "account", "account disabled")

    async def set_admin(self, address: str, is_admin: bool) -> AccountInfo:
        info = await self.require(address)
        async with self._sessions.begin() as s:
            await s.execute(update(Account).where(Account.id == info.id).values(is_admin=is_admin))
        return await self.require(address)

    async def remove_account(self, address: str) -> None:
        info = await self.require(address)
        async with self._sessions.begin() as s:
            for model in (Alias, AppPassword, WebSession, Identity):
                await s.execute(delete(model).where(model.account_id == info.id))
            await s.execute(delete(Account).where(Account.id == info.id))
        await self._revoked(info.id, "account", "account removed")

    # ------------------------------------------------------------------ quota
    @staticmethod
    async def charge(tx: db.Tx, account_id: int, delta: int) -> bool:
        """Add ``delta`` bytes to the account's usage inside the caller's transaction ``tx`` (an ORM
        session or a RawDB connection: one statement, no round trip of its own).

        A positive charge fails (returns False, nothing changed) when it would pass the quota; a
        negative one (freeing space) always succeeds. One quota serves mail and files. The UPDATE
        locks the account row, the first lock of every write that charges (lock order: account row,
        then the caller's rows, then blob rows by digest).
        """
        c = await db.conn(tx)
        if delta > 0:
            sql = "UPDATE accounts SET used_bytes = used_bytes + ? WHERE id = ? AND used_bytes + ? <= quota_bytes"
            return await c.run(sql, delta, account_id, delta) == 1
        return await c.run("UPDATE accounts SET used_bytes = used_bytes + ? WHERE id = ?", delta, account_id) == 1

    @staticmethod
    async def lock(tx: db.Tx, account_id: int) -> None:
        """Lock the account row in ``tx`` before a write that will charge an amount it still has to
        read (an expunge), so the lock order holds: account row first. SQLite has one writer at a
        time, so there is nothing to lock there."""
        c = await db.conn(tx)
        if c.pg:
            await c.run("SELECT id FROM accounts WHERE id = ? FOR UPDATE", account_id)

    async def usage(self, account_id: int) -> tuple[int, int] | None:
        """(used bytes, quota bytes) of the account's one quota."""
        async with db.raw(self._engine).read() as c:
            r = await c.one("SELECT used_bytes, quota_bytes FROM accounts WHERE id = ?", account_id)
        return (r[0], r[1]) if r else None

    # ------------------------------------------------------------------ aliases
    async def add_alias(self, alias: str, target: str) -> AliasInfo:
        local, domain = normalize_address(alias, allow_wildcard=True)
        alias = f"{local}@{domain}"
        tgt = await self.require(target)
        async with self._sessions.begin() as s:
            d = await self._domain(s, domain)
            if await s.scalar(select(Account.id).where(Account.address == alias)) is not None:
                raise Exists(f"{alias} is a user already")
            if await s.scalar(select(Alias.id).where(Alias.address == alias)) is not None:
                raise Exists(f"alias {alias} exists already")
            row = Alias(domain_id=d.id, address=alias, account_id=tgt.id, created_at=time.time())
            s.add(row)
            await s.flush()
            if not alias.startswith("*@"):
                await identities.add(s, tgt.id, alias, alias_id=row.id)
            info = AliasInfo(row.id, alias, tgt.address)
        await self._identities_changed(tgt.id)
        return info

    async def list_aliases(self, domain: str | None = None) -> list[AliasInfo]:
        async with self._sessions() as s:
            q = select(Alias.id, Alias.address, Account.address).join(Account, Account.id == Alias.account_id)
            if domain:
                q = q.join(Domain, Domain.id == Alias.domain_id).where(Domain.name == normalize_domain(domain))
            return [AliasInfo(i, a, t) for i, a, t in await s.execute(q.order_by(Alias.address))]

    async def aliases_of(self, account_id: int) -> list[str]:
        async with self._sessions() as s:
            return list(await s.scalars(select(Alias.address).where(Alias.account_id == account_id)))

    async def remove_alias(self, alias: str) -> None:
        local, domain = normalize_address(alias, allow_wildcard=True)
        async with self._sessions.begin() as s:
            row = await s.scalar(select(Alias).where(Alias.address == f"{local}@{domain}"))
            if row is None:
                raise NotFound(f"no alias {local}@{domain}")
            owner = row.account_id
            await s.delete(row)
            await s.flush()
            await identities.after_alias_removed(s, row)
        await self._identities_changed(owner)

    # ------------------------------------------------------------------ identities (RFC 8621 §6)
    async def identities(self, account_id: int) -> list[IdentityInfo]:
        async with self._sessions() as s:
            display = await s.scalar(select(Account.display_name).where(Account.id == account_id))
            rows = await s.scalars(select(Identity).where(Identity.account_id == account_id).order_by(Identity.id))
            return [identities.info(r, display or "") for r in rows]

    async def may_use_identity(self, account_id: int, address: str) -> bool:
        """An identity's address: the account's own, an alias, or in a domain of its catch-all."""
        try:
            local, domain = normalize_address(address)
        except AccountError:
            return False
        async with self._sessions() as s:
            return await identities.owns(s, account_id, f"{local}@{domain}")

    async def create_identity(self, account_id: int, email: str, **fields) -> IdentityInfo:
        """Raises AccountError when the account may not send from ``email``."""
        local, domain = normalize_address(email)
        async with self._sessions.begin() as s:
            if not await identities.owns(s, account_id, f"{local}@{domain}"):
                raise AccountError(f"{email} is not an address of this account")
            row = await identities.add(s, account_id, f"{local}@{domain}", **fields)
            display = await s.scalar(select(Account.display_name).where(Account.id == account_id))
            made = identities.info(row, display or "")
        await self._identities_changed(account_id)
        return made

    async def update_identity(self, account_id: int, identity_id: int, fields: dict) -> bool:
        """False when the account has no such identity."""
        async with self._sessions.begin() as s:
            row = await s.get(Identity, identity_id)
            if row is None or row.account_id != account_id:
                return False
            await identities.update(s, row, fields)
        await self._identities_changed(account_id)
        return True

    async def destroy_identity(self, account_id: int, identity_id: int) -> str:
        """ "destroyed", "notFound" or "forbidden" (the account's own address stays)."""
        async with self._sessions.begin() as s:
            row = await s.get(Identity, identity_id)
            if row is None or row.account_id != account_id:
                return "notFound"
            if not row.may_delete:
                return "forbidden"
            await s.delete(row)
            await s.flush()
            await changelog.log(await db.conn(s), account_id, [(changelog.IDENTITY, identity_id, "d")])
        await self._identities_changed(account_id)
        return "destroyed"

    async def resolve_recipient(self, address: str) -> AccountInfo | None:
        """The account that receives mail for ``address``: the account itself, an alias, the address
        without its ``+detail``, or the domain's catch-all — in that order (as Postfix's virtual maps)."""
        try:
            local, domain = normalize_address(address)
        except AccountError:
            return None
        candidates = [f"{local}@{domain}"]
        if RECIPIENT_DELIMITER in local:
            candidates.append(f"{local.split(RECIPIENT_DELIMITER, 1)[0]}@{domain}")
        async with self._sessions() as s:
            for cand in candidates:
                a = await s.scalar(select(Account).where(Account.address == cand))
                if a is None:
                    a = await s.scalar(
                        select(Account).join(Alias, Alias.account_id == Account.id).where(Alias.address == cand)
                    )
                if a is not None:
                    return _info(a)
            a = await s.scalar(
                select(Account).join(Alias, Alias.account_id == Account.id).where(Alias.address == f"*@{domain}")
            )
            return _info(a) if a else None

    async def may_send_as(self, account_id: int, address: str) -> bool:
        """An authenticated account may use its own address, its aliases (not the catch-all) and +details."""
        try:
            local, domain = normalize_address(address)
        except AccountError:
            return False
        candidates = {f"{local}@{domain}"}
        if RECIPIENT_DELIMITER in local:
            candidates.add(f"{local.split(RECIPIENT_DELIMITER, 1)[0]}@{domain}")
        async with self._sessions() as s:
            own = await s.scalar(select(Account.address).where(Account.id == account_id))
            if own in candidates:
                return True
            hit = await s.scalar(select(Alias.id).where(Alias.account_id == account_id, Alias.address.in_(candidates)))
            return hit is not None

    # ------------------------------------------------------------------ app passwords
    async def add_app_password(self, address: str, label: str, scopes: Iterable[str]) -> tuple[AppPasswordInfo, str]:
        """Create an app password; the secret is returned once and only its hash is kept."""
        info = await self.require(address)
        scopes = tuple(sorted(set(scopes)))
        if not scopes:
            raise AccountError(f"an app password needs at least one scope of: {', '.join(SCOPES)}")
        bad = [x for x in scopes if x not in SCOPES]
        if bad:
            raise AccountError(f"unknown scope {bad[0]!r}; scopes are {', '.join(SCOPES)}")
        label = label.strip()
        if not label or len(label) > 100:
            raise AccountError("an app password needs a label of 1 to 100 characters")
        secret = passwords.new_app_secret()
        async with self._sessions.begin() as s:
            n = await s.scalar(select(func.count()).select_from(AppPassword).where(AppPassword.account_id == info.id))
            if (n or 0) >= MAX_APP_PASSWORDS:
                raise AccountError(f"{info.address} has {MAX_APP_PASSWORDS} app passwords already; revoke one first")
            row = AppPassword(
                account_id=info.id,
                label=label,
                secret_hash=passwords.app_secret_hash(secret),
                scopes=",".join(scopes),
                created_at=time.time(),
                last_used_at=None,
            )
            s.add(row)
            await s.flush()
            return AppPasswordInfo(row.id, label, scopes, row.created_at, None), secret

    async def list_app_passwords(self, address: str) -> list[AppPasswordInfo]:
        info = await self.require(address)
        async with self._sessions() as s:
            rows = await s.scalars(
                select(AppPassword).where(AppPassword.account_id == info.id).order_by(AppPassword.id)
            )
            return [
                AppPasswordInfo(r.id, r.label, tuple(r.scopes.split(",")), r.created_at, r.last_used_at) for r in rows
            ]

    async def revoke_app_password(self, address: str, app_id: int) -> None:
        info = await self.require(address)
        async with self._sessions.begin() as s:
            res = await s.execute(
                delete(AppPassword).where(AppPassword.account_id == info.id, AppPassword.id == app_id)
            )
            if db.rowcount(res) == 0:
                raise NotFound(f"{info.address} has no app password {app_id}")
        await self._revoked(info.id, "app_password", "app password revoked", app_password_id=app_id)

    # ------------------------------------------------------------------ authentication
    async def _failures(self, s: AsyncSession, key: str, since: float) -> int:
        return (
            await s.scalar(
                select(func.count()).select_from(LoginFailure).where(LoginFailure.key == key, LoginFailure.at >= since)
            )
            or 0
        )

    async def login_allowed(self, address: str, ip: str | None) -> tuple[bool, float]:
        """(allowed, retry_after seconds) by the failure counts per address and per client IP."""
        st = self._settings
        now = time.time()
        since = now - st.login_window_seconds
        async with self._sessions() as s:
            if await self._failures(s, f"addr:{address.strip().lower()}", since) >= st.login_max_failures_per_address:
                return False, st.login_window_seconds
            if ip and await self._failures(s, f"ip:{ip}", since) >= st.login_max_failures_per_ip:
                return False, st.login_window_seconds
        return True, 0.0

    async def record_login_failure(self, address: str, ip: str | None) -> None:
        """A failed sign-in step other than the password (a second factor, a current password):
        counted with the password failures, so every step shares one limit per address and IP."""
        await self._record_failure(address, ip)

    async def _record_failure(self, address: str, ip: str | None) -> None:
        now = time.time()
        async with self._sessions.begin() as s:
            s.add(LoginFailure(key=f"addr:{address.strip().lower()}", at=now))
            if ip:
                s.add(LoginFailure(key=f"ip:{ip}", at=now))
            # Keep the table small: forget failures older than the window.
            await s.execute(delete(LoginFailure).where(LoginFailure.at < now - self._settings.login_window_seconds))

    async def _app_password_used(self, app_id: int) -> None:
        """Note an app password's use ("last used" on the settings screen and in the CLI). A client
        that sends it with every request (DAV, tus PATCHes, JMAP) would otherwise cost a commit per
        request: within ``APP_PASSWORD_USE_SECONDS`` of the last noted use in this process nothing is
        written, and the write is not fsynced on its own (``durable=False``: a power loss may lose the
        last second of "last used", never a login decision)."""
        now = time.monotonic()
        last = self._app_used.get(app_id)
        if last is not None and now - last < APP_PASSWORD_USE_SECONDS:
            return
        if len(self._app_used) >= 10_000:
            self._app_used.clear()
        self._app_used[app_id] = now
        async with db.raw(self._engine).write(durable=False) as c:
            await c.run("UPDATE app_passwords SET last_used_at = ? WHERE id = ?", time.time(), app_id)

    async def authenticate_token(self, secret: str, *, scope: str, ip: str | None = None) -> AuthResult:
        """An app password used alone as a bearer token (``Authorization: Bearer``, JMAP clients):
        its 150 random bits name the account. Failures count against the client IP."""
        st = self._settings
        if ip:
            async with self._sessions() as s:
                if await self._failures(s, f"ip:{ip}", time.time() - st.login_window_seconds) >= (
                    st.login_max_failures_per_ip
                ):
                    return AuthResult(None, "locked", retry_after=st.login_window_seconds)

        async def failed() -> AuthResult:
            if ip:  # no address to count against: the client IP alone
                async with self._sessions.begin() as s:
                    s.add(LoginFailure(key=f"ip:{ip}", at=time.time()))
            return AuthResult(None, "bad-credentials")

        if scope not in SCOPES or not passwords.looks_like_app_secret(secret):
            return await failed()
        h = passwords.app_secret_hash(secret)
        async with self._sessions() as s:
            row = (
                await s.execute(
                    select(AppPassword.id, AppPassword.scopes, Account)
                    .join(Account, Account.id == AppPassword.account_id)
                    .where(AppPassword.secret_hash == h)
                )
            ).first()
        if row is None or scope not in row[1].split(","):
            return await failed()
        info = _info(row[2])
        if info.disabled:
            return AuthResult(None, "disabled")
        await self._app_password_used(row[0])
        return AuthResult(info, "ok", via_app_password=True, app_password_id=row[0])

    async def authenticate(self, address: str, password: str, *, scope: str, ip: str | None = None) -> AuthResult:
        """Check a login. ``scope`` is "web" (account password only) or one of SCOPES, where an app
        password with that scope also works. Failures are recorded per address and per IP; past the
        limits the answer is "locked" without checking the password.

        A verified account password is remembered for ``AUTH_CACHE_SECONDS`` (as Dovecot's
        auth_cache), so a client that reconnects does not pay argon2 again: the entry is keyed by
        the address and an HMAC of the password under the cache's secret (no password is kept),
        is used only while the account row still has the same password hash, and only successes
        are remembered — the rate limits, the disabled flag and app-password scopes are checked on
        every login as before."""
        try:
            local, domain = normalize_address(address)
        except AccountError:
            if not (await self.login_allowed(address, ip))[0]:
                return AuthResult(None, "locked", retry_after=self._settings.login_window_seconds)
            await passwords.burn_time(password)
            await self._record_failure(address, ip)
            return AuthResult(None, "bad-credentials")
        canonical = f"{local}@{domain}"
        st = self._settings
        since = time.time() - st.login_window_seconds
        addr_key = f"addr:{address.strip().lower()}"
        ip_key = f"ip:{ip}" if ip else None
        async with db.raw(self._engine).read() as c:
            keys = [addr_key] + ([ip_key] if ip_key else [])
            failures = dict(
                await c.all(
                    "SELECT key, COUNT(*) FROM login_failures WHERE key IN "
                    f"({db.placeholders(len(keys))}) AND at >= ? GROUP BY key",
                    *keys,
                    since,
                )
            )
            if failures.get(addr_key, 0) >= st.login_max_failures_per_address or (
                ip_key and failures.get(ip_key, 0) >= st.login_max_failures_per_ip
            ):
                return AuthResult(None, "locked", retry_after=st.login_window_seconds)
            row = await c.one(
                f"SELECT {', '.join(_INFO_COLUMNS)}, password_hash, "
                "(EXISTS (SELECT 1 FROM second_factors f WHERE f.account_id = accounts.id "
                "AND f.totp_enabled_at IS NOT NULL) "
                "OR EXISTS (SELECT 1 FROM passkeys p WHERE p.account_id = accounts.id)) "
                "FROM accounts WHERE address = ?",
                canonical,
            )
            apps = []
            if row is not None and scope in SCOPES and passwords.looks_like_app_secret(password):
                apps = await c.all("SELECT id, secret_hash, scopes FROM app_passwords WHERE account_id = ?", row[0])
        if row is None:
            await passwords.burn_time(password)
            await self._record_failure(canonical, ip)
            return AuthResult(None, "bad-credentials")
        info = _info_from_row(row)
        pw_hash = row[len(_INFO_COLUMNS)]
        if apps:
            h = passwords.app_secret_hash(password)
            for app_id, stored, app_scopes in apps:
                if passwords.same_hash(stored, h) and scope in app_scopes.split(","):
                    if info.disabled:
                        return AuthResult(None, "disabled")
                    await self._app_password_used(app_id)
                    return AuthResult(info, "ok", via_app_password=True, app_password_id=app_id)
        key = self._auth_cache.key(canonical, password)
        if self._auth_cache.get(key, pw_hash):
            ok, rehash = True, None
        else:
            ok, rehash = await passwords.verify_password(pw_hash, password)
        if not ok:
            await self._record_failure(canonical, ip)
            return AuthResult(None, "bad-credentials")
        if info.disabled:
            return AuthResult(None, "disabled")
        if row[len(_INFO_COLUMNS) + 1] and scope != "web":
            # a second factor is on: the account password alone opens no protocol session
            return AuthResult(None, "app-password-required")
        if rehash:
            async with self._sessions.begin() as s:
                await s.execute(update(Account).where(Account.id == info.id).values(password_hash=rehash))
            pw_hash = rehash
        self._auth_cache.put(key, pw_hash)
        return AuthResult(info, "ok")

    # ------------------------------------------------------------------ web sessions
    async def create_web_session(
        self, account_id: int, *, ip: str | None = None, user_agent: str = ""
    ) -> tuple[str, str]:
        """A new web session: (cookie token, CSRF token), both 256 bits from ``secrets``."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = time.time()
        async with self._sessions.begin() as s:
            s.add(
                WebSession(
                    token_hash=passwords.token_hash(token),
                    account_id=account_id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + self._settings.session_lifetime_seconds,
                    ip=ip,
                    user_agent=user_agent[:200],
                )
            )
            await s.execute(delete(WebSession).where(WebSession.expires_at < now))
        return token, csrf

    async def web_session(self, token: str) -> WebSessionInfo | None:
        """The session of a cookie token, with its account (plain SQL: every web app request asks)."""
        cols = ", ".join(f"a.{c}" for c in _INFO_COLUMNS)
        async with db.raw(self._engine).read() as c:
            row = await c.one(
                f"SELECT {cols}, s.csrf_token, s.expires_at, s.token_hash FROM web_sessions s "
                "JOIN accounts a ON a.id = s.account_id WHERE s.token_hash = ?",
                passwords.token_hash(token),
            )
        if row is None:
            return None
        info = _info_from_row(row)
        csrf, expires_at, token_hash = row[len(_INFO_COLUMNS) :]
        if expires_at < time.time() or info.disabled:
            return None
        return WebSessionInfo(info, csrf, expires_at, token_hash[:SESSION_ID_CHARS])

    async def end_web_session(self, token: str) -> None:
        """Sign out: the session's row goes, and its live streams (WebSocket, EventSource) close."""
        h = passwords.token_hash(token)
        async with self._sessions.begin() as s:
            account_id = await s.scalar(select(WebSession.account_id).where(WebSession.token_hash == h))
            await s.execute(delete(WebSession).where(WebSession.token_hash == h))
        if account_id is not None:
            await self._revoked(account_id, "web_session", "signed out", session_id=h[:SESSION_ID_CHARS])

    async def list_web_sessions(self, account_id: int) -> list[WebSessionRow]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(WebSession)
                .where(WebSession.account_id == account_id, WebSession.expires_at >= time.time())
                .order_by(WebSession.created_at)
            )
            return [
                WebSessionRow(r.token_hash[:SESSION_ID_CHARS], r.created_at, r.expires_at, r.ip, r.user_agent)
                for r in rows
            ]

    async def end_web_session_by_id(self, account_id: int, session_id: str) -> None:
        """End one of the account's web sessions by its public id (the Sessions screen's "End")."""
        if len(session_id) != SESSION_ID_CHARS or not all(c in "0123456789abcdef" for c in session_id):
            raise NotFound("no such session")
        async with self._sessions.begin() as s:
            res = await s.execute(
                delete(WebSession).where(
                    WebSession.account_id == account_id, WebSession.token_hash.startswith(session_id, autoescape=True)
                )
            )
            if db.rowcount(res) == 0:
                raise NotFound("no such session")
        await self._revoked(account_id, "web_session", "session ended", session_id=session_id)

    async def end_connection(self, account_id: int, connection_id: str) -> None:
        """End one live protocol connection of the account, in whichever process holds it."""
        if connection_id not in {c.id for c in await self.security.connections(account_id)}:
            raise NotFound("no such connection")
        await self._revoked(account_id, "connection", "connection ended", connection_id=connection_id)

    async def sign_out_everywhere(self, account_id: int) -> None:
        """Every web session ends and every live connection closes (app passwords stay valid:
        clients reconnect with them; revoke one to keep a device out)."""
        async with self._sessions.begin() as s:
            await s.execute(delete(WebSession).where(WebSession.account_id == account_id))
        await self._revoked(account_id, "account", "signed out everywhere")

    async def check_password(self, account_id: int, password: str) -> bool:
        """Is this the account's password? (changing it or turning a second factor off asks)."""
        async with self._sessions() as s:
            stored = await s.scalar(select(Account.password_hash).where(Account.id == account_id))
        if stored is None:
            return False
        ok, _ = await passwords.verify_password(stored, password)
        return ok
