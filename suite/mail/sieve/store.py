"""Sieve scripts per account and the vacation memory, in the database (tables in ``models.py``).

One ``SieveStore`` per service (the SMTP delivery, ManageSieve, the gateway) holds the compiled
active script of the accounts it delivered to, checked against the row's ``version`` on every use,
so a script changed by another process takes effect on the next message.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from suite.storage import db as dbmod

from .models import SieveScript, SieveVacation
from .parser import SieveError
from .validate import Script, compile_script

MAX_SCRIPTS = 20
MAX_NAME = 128
MAX_CACHE = 10_000


class SieveStoreError(Exception):
    """Refused; ``code`` is the ManageSieve response code that fits (RFC 5804 §1.3)."""

    code = ""


class NoSuchScript(SieveStoreError):
    code = "NONEXISTENT"


class ScriptExists(SieveStoreError):
    code = "ALREADYEXISTS"


class ScriptActive(SieveStoreError):
    code = "ACTIVE"


class QuotaError(SieveStoreError):
    code = "QUOTA/MAXSCRIPTS"


class BadName(SieveStoreError):
    code = ""


@dataclass(frozen=True, slots=True)
class ScriptInfo:
    name: str
    active: bool
    size: int
    updated_at: float


def check_name(name: str) -> str:
    """RFC 5804 §1.6: script names are UTF-8 without controls; we also keep them short."""
    if not name or len(name) > MAX_NAME or any(ord(c) < 0x20 or c in "\x7f\u2028\u2029/" for c in name):
        raise BadName(f"bad script name (1-{MAX_NAME} characters, no control characters or /)")
    return name


def srs_key(settings) -> bytes:
    """The SRS HMAC key: ``SUITE_SRS_SECRET``, else a random one kept in ``<data dir>/srs.key``
    (processes sharing a database must share the setting)."""
    if settings.srs_secret:
        return settings.srs_secret.encode("utf-8")
    path = Path(settings.data_dir) / "srs.key"
    try:
        key = path.read_bytes().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    # First use: write a random key beside, then link it in place (atomic; the first process wins).
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".srs.key.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode("ascii"))
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()


class SieveStore:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        st = ctx.settings
        self.max_size = st.sieve_max_script_size
        self.max_redirects = st.sieve_max_redirects
        self._compiled: dict[int, tuple[int, int, Script | SieveError]] = {}

    def compile(self, content: str | bytes) -> Script:
        return compile_script(content, max_bytes=self.max_size, max_redirects=self.max_redirects)

    # ------------------------------------------------------------ management (ManageSieve, API)
    async def list_scripts(self, account_id: int) -> list[ScriptInfo]:
        async with self.ctx.sessions() as s:
            rows = await s.scalars(
                select(SieveScript).where(SieveScript.account_id == account_id).order_by(SieveScript.name)
            )
            return [ScriptInfo(r.name, r.active, len(r.content.encode("utf-8")), r.updated_at) for r in rows]

    async def get_script(self, account_id: int, name: str) -> str:
        async with self.ctx.sessions() as s:
            content = await s.scalar(
                select(SieveScript.content).where(SieveScript.account_id == account_id, SieveScript.name == name)
            )
        if content is None:
            raise NoSuchScript(f"no script named {name!r}")
        return content

    async def active_name(self, account_id: int) -> str | None:
        async with self.ctx.sessions() as s:
            return await s.scalar(
                select(SieveScript.name).where(SieveScript.account_id == account_id, SieveScript.active.is_(True))
            )

    async def have_space(self, account_id: int, name: str, size: int) -> None:
        """RFC 5804 §2.3: raises QuotaError when a script of ``size`` bytes named ``name`` would not fit."""
        if size > self.max_size:
            e = QuotaError(f"scripts are limited to {self.max_size} bytes")
            e.code = "QUOTA/MAXSIZE"
            raise e
        async with self.ctx.sessions() as s:
            n = await s.scalar(select(func.count()).where(SieveScript.account_id == account_id)) or 0
            exists = await s.scalar(
                select(SieveScript.id).where(SieveScript.account_id == account_id, SieveScript.name == name)
            )
        if exists is None and n >= MAX_SCRIPTS:
            raise QuotaError(f"at most {MAX_SCRIPTS} scripts per account")

    async def put_script(self, account_id: int, name: str, content: str, *, activate: bool = False) -> None:
        """Store (create or replace) a script after checking it compiles (RFC 5804 §2.6)."""
        check_name(name)
        raw = content.encode("utf-8")
        await self.have_space(account_id, name, len(raw))
        self.compile(content)  # raises SieveError
        try:
            await self._put(account_id, name, content, activate)
        except IntegrityError:  # created by someone else meanwhile: replace it
            await self._put(account_id, name, content, activate)

    async def _put(self, account_id: int, name: str, content: str, activate: bool) -> None:
        now = time.time()
        async with self.ctx.sessions.begin() as s:
            row = await s.scalar(
                select(SieveScript).where(SieveScript.account_id == account_id, SieveScript.name == name)
            )
            if row is None:
                row = SieveScript(account_id=account_id, name=name, content=content, active=False, version=1)
                row.updated_at = now
                s.add(row)
            else:
                row.content = content
                row.version = row.version + 1
                row.updated_at = now
            if activate and not row.active:
                await s.execute(
                    update(SieveScript)
                    .where(SieveScript.account_id == account_id, SieveScript.active.is_(True))
                    .values(active=False, version=SieveScript.version + 1)
                )
                row.active = True

    async def set_active(self, account_id: int, name: str) -> None:
        """RFC 5804 §2.8: activate ``name``; "" deactivates every script."""
        async with self.ctx.sessions.begin() as s:
            if name:
                row = await s.scalar(
                    select(SieveScript).where(SieveScript.account_id == account_id, SieveScript.name == name)
                )
                if row is None:
                    raise NoSuchScript(f"no script named {name!r}")
            await s.execute(
                update(SieveScript)
                .where(SieveScript.account_id == account_id, SieveScript.active.is_(True))
                .values(active=False, version=SieveScript.version + 1)
            )
            if name:
                await s.execute(
                    update(SieveScript)
                    .where(SieveScript.account_id == account_id, SieveScript.name == name)
                    .values(active=True, version=SieveScript.version + 1)
                )

    async def delete_script(self, account_id: int, name: str) -> None:
        async with self.ctx.sessions.begin() as s:
            row = await s.scalar(
                select(SieveScript).where(SieveScript.account_id == account_id, SieveScript.name == name)
            )
            if row is None:
                raise NoSuchScript(f"no script named {name!r}")
            if row.active:
                raise ScriptActive('the active script cannot be deleted (SETACTIVE "" first)')  # RFC 5804 §2.10
            await s.execute(delete(SieveScript).where(SieveScript.id == row.id))

    async def rename_script(self, account_id: int, old: str, new: str) -> None:
        check_name(new)
        try:
            async with self.ctx.sessions.begin() as s:
                row = await s.scalar(
                    select(SieveScript).where(SieveScript.account_id == account_id, SieveScript.name == old)
                )
                if row is None:
                    raise NoSuchScript(f"no script named {old!r}")
                clash = await s.scalar(
                    select(SieveScript.id).where(SieveScript.account_id == account_id, SieveScript.name == new)
                )
                if clash is not None:
                    raise ScriptExists(f"a script named {new!r} exists")
                row.name = new
                row.version = row.version + 1
        except IntegrityError:
            raise ScriptExists(f"a script named {new!r} exists") from None

    # ------------------------------------------------------------ delivery
    async def active_script(self, account_id: int) -> Script | None:
        """The compiled active script, or None when the account has none (one indexed read).
        Raises SieveError when the stored script no longer compiles."""
        raw = dbmod.raw(self.ctx.engine)
        async with raw.read() as c:
            row = await c.one(
                "SELECT id, version FROM sieve_scripts WHERE account_id = ? AND active = ?", account_id, True
            )
        if row is None:
            self._compiled.pop(account_id, None)
            return None
        hit = self._compiled.get(account_id)
        if hit is None or hit[0] != row[0] or hit[1] != row[1]:
            async with raw.read() as c:
                content = await c.scalar("SELECT content FROM sieve_scripts WHERE id = ?", row[0])
            compiled: Script | SieveError
            try:
                compiled = self.compile(content or "")
            except SieveError as exc:
                compiled = exc
            if len(self._compiled) >= MAX_CACHE:
                self._compiled.clear()
            hit = (row[0], row[1], compiled)
            self._compiled[account_id] = hit
        if isinstance(hit[2], SieveError):
            raise hit[2]
        return hit[2]

    async def vacation_due(self, account_id: int, key: str, days: int) -> bool:
        """True (and remembered) when no reply went to this sender+handle in the last ``days`` days
        (RFC 5230 §4.6); one atomic statement, so two deliveries at once send one reply."""
        now = time.time()
        cutoff = now - days * 86400
        async with dbmod.raw(self.ctx.engine).write() as c:
            row = await c.one(
                "INSERT INTO sieve_vacation (account_id, key, sent_at) VALUES (?, ?, ?) "
                "ON CONFLICT (account_id, key) DO UPDATE SET sent_at = excluded.sent_at "
                "WHERE sieve_vacation.sent_at < ? RETURNING id",
                account_id,
                key,
                now,
                cutoff,
            )
        return row is not None

    async def forget_vacation(self, account_id: int) -> None:
        async with self.ctx.sessions.begin() as s:
            await s.execute(delete(SieveVacation).where(SieveVacation.account_id == account_id))
