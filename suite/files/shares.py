"""Share links: a public URL ``/s/<token>`` for a file or a folder, or a "file drop" into a folder.

Token: ``secrets.token_urlsafe(24)`` (192 bits); only its SHA-256 is stored, so a database leak does
not leak working links. Options: password (argon2id), expiry, a maximum number of uses (downloads,
or uploads for a drop link), revoke. Every access is logged for the owner.

Answers of the public page, documented (README "Files"):

====================================  =====
unknown token, revoked link            404
expired link                           410
use limit reached                      410
password required but not sent        401 (an HTML form, or ``WWW-Authenticate: Basic``)
wrong password                         403
too many wrong passwords               429 with ``Retry-After``
====================================  =====

The password is sent as the password of HTTP Basic (any user name) or as the form field
``password`` of a POST. Wrong passwords are counted per share and per client IP in a sliding
window; past the limit the password is not even checked.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, cast

from sqlalchemy import func, select, update

from suite.accounts import passwords
from suite.files.models import FileNode, Share, ShareAccess
from suite.files.tree import FilesError, FileTree, Node, NotFound
from suite.storage import db

KINDS = ("download", "drop")
PASSWORD_WINDOW = 15 * 60
MAX_BAD_PASSWORDS_PER_IP = 5
MAX_BAD_PASSWORDS_PER_SHARE = 30


class ShareError(FilesError):
    status = 400


class ShareNotFound(ShareError):
    status = 404


class ShareGone(ShareError):
    status = 410


class PasswordRequired(ShareError):
    status = 401


class WrongPassword(ShareError):
    status = 403


class TooManyAttempts(ShareError):
    status = 429


@dataclass(frozen=True, slots=True)
class ShareInfo:
    id: int
    account_id: int
    node_id: int
    kind: str
    has_password: bool
    expires_at: float | None
    max_uses: int | None
    uses: int
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return (
            self.revoked_at is None
            and (self.expires_at is None or self.expires_at > time.time())
            and (self.max_uses is None or self.uses < self.max_uses)
        )


@dataclass(frozen=True, slots=True)
class AccessEntry:
    at: float
    ip: str | None
    action: str
    detail: str


def link_url(base_url: str, token: str) -> str:
    """The link people get (API ``url``, CLI, big mail attachments): the public page ``/p/<token>``.
    ``/s/<token>`` stays the direct download; each path sends the other kind of client to the other one
    (suite/gateway/files/shares.py, suite/gateway/public_share.py)."""
    return f"{base_url.rstrip('/')}/p/{token}"


def download_url(base_url: str, token: str) -> str:
    """The direct download of a link (curl, scripts): ``/s/<token>``."""
    return f"{base_url.rstrip('/')}/s/{token}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _info(r: Share) -> ShareInfo:
    return ShareInfo(
        r.id,
        r.account_id,
        r.node_id,
        r.kind,
        r.password_hash is not None,
        r.expires_at,
        r.max_uses,
        r.uses,
        r.created_at,
        r.revoked_at,
    )


class ShareStore:
    def __init__(self, ctx, tree: FileTree) -> None:
        self.ctx = ctx
        self.tree = tree
        self.sessions = ctx.sessions

    async def create(
        self,
        account_id: int,
        node_id: int,
        *,
        kind: str = "download",
        password: str | None = None,
        expires_at: float | None = None,
        max_uses: int | None = None,
    ) -> tuple[ShareInfo, str]:
        """A new link; returns (info, token). The token is shown once."""
        if kind not in KINDS:
            raise ShareError(f"unknown share kind {kind!r}; kinds are {', '.join(KINDS)}")
        node = await self.tree.get(account_id, node_id)
        if node.is_root and kind == "download":
            raise ShareError("share a folder or a file, not the whole root")
        if kind == "drop" and not node.is_dir:
            raise ShareError("a file drop link needs a folder")
        if max_uses is not None and max_uses < 1:
            raise ShareError("the maximum number of uses must be at least 1")
        if expires_at is not None and expires_at <= time.time():
            raise ShareError("the expiry is in the past")
        if password is not None and (not password or len(password) > 1024):
            raise ShareError("a share password must be 1 to 1024 characters")
        pw_hash = await passwords.hash_password(password) if password else None
        token = secrets.token_urlsafe(24)  # 192 bits
        async with self.sessions.begin() as s:
            r = Share(
                token=token_hash(token),
                account_id=account_id,
                node_id=node.id,
                kind=kind,
                password_hash=pw_hash,
                expires_at=expires_at,
                max_uses=max_uses,
                uses=0,
                created_at=time.time(),
                revoked_at=None,
            )
            s.add(r)
            await s.flush()
            return _info(r), token

    async def list(self, account_id: int) -> builtins.list[tuple[ShareInfo, str]]:
        """(info, path of the shared node) of the account's links, newest first."""
        async with self.sessions() as s:
            rows = list(await s.scalars(select(Share).where(Share.account_id == account_id).order_by(Share.id.desc())))
        out = []
        for r in rows:
            try:
                path = await self.tree.path_of(account_id, r.node_id)
            except NotFound:
                path = "?"
            out.append((_info(r), path))
        return out

    async def revoke(self, token: str, *, account_id: int | None = None) -> ShareInfo:
        async with self.sessions.begin() as s:
            q = select(Share).where(Share.token == token_hash(token))
            if account_id is not None:
                q = q.where(Share.account_id == account_id)
            r = await s.scalar(q)
            if r is None:
                raise ShareNotFound("no such share link")
            if r.revoked_at is None:
                r.revoked_at = time.time()
            return _info(r)

    async def revoke_id(self, account_id: int, share_id: int) -> None:
        async with self.sessions.begin() as s:
            res = await s.execute(
                update(Share)
                .where(Share.id == share_id, Share.account_id == account_id, Share.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            if db.rowcount(res) != 1:
                raise ShareNotFound("no such share link")

    async def access_log(self, account_id: int, share_id: int, limit: int = 200) -> builtins.list[AccessEntry]:
        async with self.sessions() as s:
            r = await s.get(Share, share_id)
            if r is None or r.account_id != account_id:
                raise ShareNotFound("no such share link")
            rows = await s.scalars(
                select(ShareAccess).where(ShareAccess.share_id == share_id).order_by(ShareAccess.id.desc()).limit(limit)
            )
            return [AccessEntry(a.at, a.ip, a.action, a.detail) for a in rows]

    async def log(self, share_id: int, ip: str | None, action: str, detail: str = "") -> None:
        async with self.sessions.begin() as s:
            s.add(ShareAccess(share_id=share_id, at=time.time(), ip=ip, action=action, detail=detail[:300]))

    async def open(self, token: str, *, password: str | None, ip: str | None) -> tuple[ShareInfo, Node]:
        """Check a visitor's access; raises a ShareError subclass carrying the documented status."""
        if not token or len(token) > 100:
            raise ShareNotFound("no such share link")
        async with self.sessions() as s:
            r = await s.scalar(select(Share).where(Share.token == token_hash(token)))
        if r is None or r.revoked_at is not None:
            raise ShareNotFound("no such share link")
        info = _info(r)
        if r.expires_at is not None and r.expires_at <= time.time():
            await self.log(r.id, ip, "denied-expired")
            raise ShareGone("this link has expired")
        if r.max_uses is not None and r.uses >= r.max_uses:
            await self.log(r.id, ip, "denied-limit")
            raise ShareGone("this link has been used up")
        if r.password_hash is not None:
            if password is None:
                raise PasswordRequired("this link needs a password")
            since = time.time() - PASSWORD_WINDOW
            async with self.sessions() as s:
                base = (
                    select(func.count())
                    .select_from(ShareAccess)
                    .where(ShareAccess.share_id == r.id, ShareAccess.action == "bad-password", ShareAccess.at >= since)
                )
                per_share = await s.scalar(base) or 0
                per_ip = (await s.scalar(base.where(ShareAccess.ip == ip)) or 0) if ip else 0
            if per_ip >= MAX_BAD_PASSWORDS_PER_IP or per_share >= MAX_BAD_PASSWORDS_PER_SHARE:
                await self.log(r.id, ip, "rate-limited")
                raise TooManyAttempts("too many wrong passwords; try again later")
            ok, _ = await passwords.verify_password(r.password_hash, password[:1024])
            if not ok:
                await self.log(r.id, ip, "bad-password")
                raise WrongPassword("wrong password")
        try:
            node = await self.tree.get(r.account_id, r.node_id)
        except NotFound:
            raise ShareNotFound("the shared file is gone") from None
        return info, node

    async def use(self, share: ShareInfo, ip: str | None, action: str, detail: str = "") -> None:
        """Count one use (atomically against the limit) and log it; ShareGone when used up."""
        async with self.sessions.begin() as s:
            q = update(Share).where(Share.id == share.id)
            if share.max_uses is not None:
                q = q.where(Share.uses < share.max_uses)
            res = await s.execute(q.values(uses=Share.uses + 1))
            if db.rowcount(res) != 1:
                raise ShareGone("this link has been used up")
            s.add(ShareAccess(share_id=share.id, at=time.time(), ip=ip, action=action, detail=detail[:300]))

    async def free_name(self, account_id: int, folder_id: int, name: str) -> str:
        """``name``, or "name (2).ext", … — the first not taken in the folder (drops never overwrite)."""
        taken = {n.name for n in await self.tree.list(account_id, folder_id)}
        if name not in taken:
            return name
        stem, dot, ext = name.rpartition(".")
        if not (dot and stem):
            stem, ext = name, ""
        for i in range(2, 10000):
            cand = f"{stem} ({i}).{ext}" if ext else f"{stem} ({i})"
            if cand not in taken:
                return cand
        raise ShareError("too many files with that name")


class _Sink:
    """A write-only, non-seekable file for ``zipfile``: it then writes data descriptors, so the
    archive streams; we drain what it wrote after each step (memory: one chunk)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, b) -> int:
        self._parts.append(bytes(b))
        return len(b)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator with no items


async def zip_folder(tree: FileTree, account_id: int, folder: Node) -> AsyncIterator[bytes]:
    """Stream ``folder`` as a ZIP (stored, ZIP64 when needed), walking the tree as it goes."""
    sink = _Sink()
    zf = zipfile.ZipFile(cast(IO[bytes], sink), "w", compression=zipfile.ZIP_STORED, allowZip64=True)
    stack: list[tuple[str, Node]] = [("", folder)]
    while stack:
        prefix, d = stack.pop()
        children = await tree.list(account_id, d.id)
        if prefix and not children:
            zf.writestr(zipfile.ZipInfo(prefix, _dt(d.modified_at)), b"")
        for c in children:
            arc = f"{prefix}{c.name}"
            if c.is_dir:
                stack.append((arc + "/", c))
                continue
            zi = zipfile.ZipInfo(arc, _dt(c.modified_at))
            zi.compress_type = zipfile.ZIP_STORED
            zi.file_size = c.size
            with zf.open(zi, "w", force_zip64=c.size >= 2**31) as w:
                async for chunk in tree.blobs.read(c.blob) if c.blob else _nothing():
                    w.write(chunk)
                    yield sink.drain()
            yield sink.drain()
    zf.close()
    yield sink.drain()


def _dt(t: float) -> tuple[int, int, int, int, int, int]:
    d = datetime.fromtimestamp(max(t, 315532800), UTC)  # ZIP dates start in 1980
    return (d.year, d.month, d.day, d.hour, d.minute, d.second)


async def folder_size(tree: FileTree, account_id: int, folder: Node) -> int:
    async with tree.sessions() as s:
        total = 0
        frontier = [folder.id]
        while frontier:
            rows = list(
                await s.execute(
                    select(FileNode.id, FileNode.is_dir, FileNode.size).where(
                        FileNode.parent_id.in_(frontier), FileNode.trashed_at.is_(None)
                    )
                )
            )
            total += sum(r.size for r in rows if not r.is_dir)
            frontier = [r.id for r in rows if r.is_dir]
        return total
