"""The per-account file tree: folders and files over the content-addressed blob store.

Rules:
- every query is scoped by ``account_id``; a node id of another account is "not found", and a path
  is resolved segment by segment from the account's root (".." is refused by ``names``, never
  interpreted), so nothing can reach outside the account;
- a file's content is a blob (dedup: two files with the same bytes share one blob; each file still
  counts its full size against the account's one quota, shared with mail, through
  ``AccountStore.charge`` inside the same transaction that references the blob);
- overwriting a file keeps the old content as a version (the last ``keep_versions``); versions
  count against the quota until pruned;
- delete moves a subtree to the trash (restore, or purge; ``purge_expired`` removes what has been
  there longer than ``trash_days``); purging frees the quota and drops the blob references.
"""

from __future__ import annotations

import asyncio
import builtins
import mimetypes
import secrets
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from suite.accounts.store import AccountStore
from suite.files.models import FileNode, FileProp, FileVersion
from suite.files.names import BadName, check_name, split_path
from suite.storage.blobs import BlobRef, BlobStore
from suite.storage.events import FileChanged

__all__ = [
    "BadName",
    "Conflict",
    "FileTree",
    "FilesError",
    "Node",
    "NotFound",
    "QuotaExceeded",
    "TooLarge",
    "Version",
]

# Bytes handed to the blob store per write when a body is streamed in (see FileTree.write).
WRITE_BLOCK = 1024 * 1024  # two per upload in flight: 20 concurrent uploads hold 40 MiB

EMPTY_DIGEST = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class FilesError(Exception):
    """A refused operation; the message is one line for a person."""


class NotFound(FilesError):
    pass


class Conflict(FilesError):
    """The name is taken, the parent is not a folder, or a folder would move into itself."""


class QuotaExceeded(FilesError):
    pass


class TooLarge(FilesError):
    pass


@dataclass(frozen=True, slots=True)
class Node:
    id: int
    account_id: int
    parent_id: int | None
    name: str
    is_dir: bool
    size: int
    blob: str | None
    media_type: str
    etag: str
    created_at: float
    modified_at: float
    trashed_at: float | None

    @property
    def is_root(self) -> bool:
        return self.parent_id is None


@dataclass(frozen=True, slots=True)
class Version:
    id: int
    node_id: int
    blob: str
    size: int
    media_type: str
    modified_at: float


def _node(n: FileNode) -> Node:
    return Node(
        n.id,
        n.account_id,
        n.parent_id,
        n.name,
        n.is_dir,
        n.size,
        n.blob,
        n.media_type,
        n.etag,
        n.created_at,
        n.modified_at,
        n.trashed_at,
    )


def guess_type(name: str) -> str:
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def _file_etag(digest: str, modified: float) -> str:
    # Strong validator: changes with the bytes (and with the modification time, so a rewrite of
    # identical bytes still counts as a change for sync clients).
    return f"{digest[:24]}-{int(modified * 1000):x}"


def _dir_etag() -> str:
    return secrets.token_hex(12)


class FileTree:
    def __init__(self, ctx, *, keep_versions: int = 10, trash_days: float = 30) -> None:
        self.sessions = ctx.sessions
        self.blobs: BlobStore = ctx.blobs
        self.bus = ctx.bus
        self.accounts = ctx.accounts
        self.keep_versions = keep_versions
        self.trash_days = trash_days

    async def _publish(self, account_id: int, node_id: int, action: str) -> None:
        await self.bus.publish(FileChanged(account_id=account_id, node_id=node_id, action=action))

    # ------------------------------------------------------------------ lookup
    async def _root(self, s: AsyncSession, account_id: int) -> FileNode:
        root = await s.scalar(select(FileNode).where(FileNode.account_id == account_id, FileNode.parent_id.is_(None)))
        if root is not None:
            return root
        now = time.time()
        try:
            async with s.begin_nested():
                root = FileNode(
                    account_id=account_id,
                    parent_id=None,
                    name="",
                    is_dir=True,
                    size=0,
                    blob=None,
                    media_type="inode/directory",
                    etag=_dir_etag(),
                    created_at=now,
                    modified_at=now,
                )
                s.add(root)
                await s.flush()
        except IntegrityError:  # created concurrently
            root = (
                await s.scalars(select(FileNode).where(FileNode.account_id == account_id, FileNode.parent_id.is_(None)))
            ).one()
        return root

    async def root(self, account_id: int) -> Node:
        async with self.sessions.begin() as s:
            return _node(await self._root(s, account_id))

    async def _child(self, s: AsyncSession, parent_id: int, name: str) -> FileNode | None:
        return await s.scalar(
            select(FileNode).where(
                FileNode.parent_id == parent_id, FileNode.name == name, FileNode.trashed_at.is_(None)
            )
        )

    async def _resolve(self, s: AsyncSession, account_id: int, parts: builtins.list[str]) -> FileNode | None:
        node = await self._root(s, account_id)
        for part in parts:
            if not node.is_dir:
                return None
            child = await self._child(s, node.id, part)
            if child is None:
                return None
            node = child
        return node

    async def resolve(self, account_id: int, path: str) -> Node | None:
        """The live node at ``path`` (``BadName`` for an invalid path), or None."""
        parts = split_path(path)
        async with self.sessions.begin() as s:
            n = await self._resolve(s, account_id, parts)
            return _node(n) if n else None

    async def _get(self, s: AsyncSession, account_id: int, node_id: int, *, live: bool = True) -> FileNode:
        n = await s.get(FileNode, node_id)
        if n is None or n.account_id != account_id:
            raise NotFound("no such file or folder")
        if live and not await self._is_live(s, n):
            raise NotFound("no such file or folder (it is in the trash)")
        return n

    async def _is_live(self, s: AsyncSession, n: FileNode | None) -> bool:
        while n is not None:
            if n.trashed_at is not None:
                return False
            if n.parent_id is None:
                return True
            n = await s.get(FileNode, n.parent_id)
        return False

    async def get(self, account_id: int, node_id: int, *, live: bool = True) -> Node:
        async with self.sessions() as s:
            return _node(await self._get(s, account_id, node_id, live=live))

    async def path_of(self, account_id: int, node_id: int) -> str:
        async with self.sessions() as s:
            n = await self._get(s, account_id, node_id, live=False)
            parts = []
            while n.parent_id is not None:
                parts.append(n.name)
                n = await s.get(FileNode, n.parent_id)
            return "/" + "/".join(reversed(parts))

    async def list(self, account_id: int, node_id: int) -> builtins.list[Node]:
        async with self.sessions() as s:
            d = await self._get(s, account_id, node_id)
            if not d.is_dir:
                raise Conflict(f"{d.name} is not a folder")
            rows = await s.scalars(
                select(FileNode)
                .where(FileNode.parent_id == d.id, FileNode.trashed_at.is_(None))
                .order_by(FileNode.name)
            )
            return [_node(r) for r in rows]

    async def _dir(self, s: AsyncSession, account_id: int, parent_id: int) -> FileNode:
        d = await self._get(s, account_id, parent_id)
        if not d.is_dir:
            raise Conflict(f"{d.name} is not a folder")
        return d

    @staticmethod
    def _touch(d: FileNode, now: float) -> None:
        d.modified_at = now
        d.etag = _dir_etag()

    # ------------------------------------------------------------------ create
    async def mkdir(self, account_id: int, parent_id: int, name: str) -> Node:
        name = check_name(name)
        async with self.sessions.begin() as s:
            d = await self._dir(s, account_id, parent_id)
            if await self._child(s, d.id, name) is not None:
                raise Conflict(f"{name} exists already")
            now = time.time()
            n = FileNode(
                account_id=account_id,
                parent_id=d.id,
                name=name,
                is_dir=True,
                size=0,
                blob=None,
                media_type="inode/directory",
                etag=_dir_etag(),
                created_at=now,
                modified_at=now,
            )
            s.add(n)
            self._touch(d, now)
            try:
                await s.flush()
            except IntegrityError:
                raise Conflict(f"{name} exists already") from None
            node = _node(n)
        await self._publish(account_id, node.id, "created")
        return node

    async def makedirs(self, account_id: int, path: str) -> Node:
        """The folder at ``path``, created with its parents when missing."""
        node = await self.root(account_id)
        for part in split_path(path):
            async with self.sessions() as s:
                row = await self._child(s, node.id, part)
                child = _node(row) if row else None
            if child is None:
                try:
                    child = await self.mkdir(account_id, node.id, part)
                except Conflict:
                    child = await self.resolve(account_id, f"{await self.path_of(account_id, node.id)}/{part}")
                    if child is None:
                        raise
            if not child.is_dir:
                raise Conflict(f"{part} is not a folder")
            node = child
        return node

    async def put_file(
        self,
        account_id: int,
        parent_id: int,
        name: str,
        blob: BlobRef,
        media_type: str | None = None,
        *,
        modified_at: float | None = None,
        s: AsyncSession | None = None,
    ) -> tuple[Node, bool]:
        """Make ``parent/name`` hold ``blob`` (already written): a new file, or a new version of an
        existing one. Returns (node, created). Raises QuotaExceeded with nothing changed."""
        name = check_name(name)
        if s is None:
            async with self.sessions.begin() as s2:
                node, created = await self._put_file(s2, account_id, parent_id, name, blob, media_type, modified_at)
        else:
            node, created = await self._put_file(s, account_id, parent_id, name, blob, media_type, modified_at)
        await self._publish(account_id, node.id, "created" if created else "modified")
        return node, created

    async def _put_file(self, s, account_id, parent_id, name, blob, media_type, modified_at) -> tuple[Node, bool]:
        d = await self._dir(s, account_id, parent_id)
        now = time.time()
        mtime = modified_at if modified_at is not None else now
        existing = await self._child(s, d.id, name)
        delta = blob.size
        if existing is not None:
            if existing.is_dir:
                raise Conflict(f"{name} is a folder")
            if existing.size > 0 or (existing.blob and existing.blob != EMPTY_DIGEST):
                s.add(
                    FileVersion(
                        node_id=existing.id,
                        blob=existing.blob,
                        size=existing.size,
                        media_type=existing.media_type,
                        modified_at=existing.modified_at,
                    )
                )
            elif existing.blob is not None:  # an empty placeholder (WebDAV creates one before the PUT body)
                await BlobStore.unref(s, existing.blob)  # no version, no charge
            await s.flush()
            old = list(
                await s.scalars(
                    select(FileVersion)
                    .where(FileVersion.node_id == existing.id)
                    .order_by(FileVersion.id.desc())
                    .offset(self.keep_versions)
                )
            )
            for v in old:
                delta -= v.size
                await BlobStore.unref(s, v.blob)
                await s.delete(v)
            existing.blob = blob.digest
            existing.size = blob.size
            existing.media_type = media_type or existing.media_type or guess_type(name)
            existing.modified_at = mtime
            existing.etag = _file_etag(blob.digest, now)
            n, created = existing, False
        else:
            n = FileNode(
                account_id=account_id,
                parent_id=d.id,
                name=name,
                is_dir=False,
                size=blob.size,
                blob=blob.digest,
                media_type=media_type or guess_type(name),
                etag=_file_etag(blob.digest, now),
                created_at=now,
                modified_at=mtime,
            )
            s.add(n)
            created = True
        if not await AccountStore.charge(s, account_id, delta):
            raise QuotaExceeded("quota exceeded: the file does not fit in the account's storage")
        await BlobStore.ref(s, blob)
        self._touch(d, now)
        try:
            await s.flush()
        except IntegrityError:
            raise Conflict(f"{name} was created concurrently") from None
        return _node(n), created

    async def write(
        self,
        account_id: int,
        parent_id: int,
        name: str,
        data: bytes | AsyncIterable[bytes],
        media_type: str | None = None,
        *,
        max_size: int | None = None,
        modified_at: float | None = None,
    ) -> tuple[Node, bool]:
        """Stream ``data`` into a blob (memory flat), then ``put_file``. Checks the name first and the
        size while writing (TooLarge), the quota at the end (QuotaExceeded)."""
        name = check_name(name)
        w = await self.blobs.writer()
        pending: asyncio.Task | None = None
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                if max_size is not None and len(data) > max_size:
                    raise TooLarge(f"files are limited to {max_size} bytes here")
                await w.write(data)
            else:
                # The body arrives in pieces of 64-256 KiB; the store gets WRITE_BLOCK at a time (one
                # hash update and one thread hop per block instead of per piece), and writing one
                # block overlaps receiving the next. At most two blocks are held: memory stays flat.
                buf = bytearray()
                size = 0
                async for chunk in data:
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise TooLarge(f"files are limited to {max_size} bytes here")
                    buf += chunk
                    if len(buf) >= WRITE_BLOCK:
                        if pending is not None:
                            await pending
                        pending = asyncio.ensure_future(w.write(buf))
                        buf = bytearray()
                if pending is not None:
                    await pending
                    pending = None
                if buf:
                    await w.write(buf)
            ref = await w.commit()
        except BaseException:
            try:
                if pending is not None:
                    # Never cancel a block write: its thread still uses the file, which abort closes.
                    await asyncio.wait({pending})
                    if not pending.cancelled():
                        pending.exception()  # retrieved: the first error is the one raised
            finally:
                await w.abort()
            raise
        return await self.put_file(account_id, parent_id, name, ref, media_type, modified_at=modified_at)

    # ------------------------------------------------------------------ move / copy
    async def _check_not_inside(self, s: AsyncSession, node: FileNode, dest: FileNode) -> None:
        cur: FileNode | None = dest
        while cur is not None:
            if cur.id == node.id:
                raise Conflict("a folder cannot be moved or copied into itself")
            cur = await s.get(FileNode, cur.parent_id) if cur.parent_id is not None else None

    async def _clear_dest(self, s: AsyncSession, d: FileNode, name: str, overwrite: bool, now: float) -> None:
        existing = await self._child(s, d.id, name)
        if existing is not None:
            if not overwrite:
                raise Conflict(f"{name} exists already")
            existing.trashed_at = now  # replaced, not lost: it goes to the trash
            await s.flush()

    async def move(
        self, account_id: int, node_id: int, dest_parent_id: int, dest_name: str, *, overwrite: bool = False
    ) -> Node:
        """Rename and/or move; the destination (when ``overwrite``) goes to the trash."""
        dest_name = check_name(dest_name)
        async with self.sessions.begin() as s:
            n = await self._get(s, account_id, node_id)
            if n.parent_id is None:
                raise Conflict("the root folder cannot be moved")
            d = await self._dir(s, account_id, dest_parent_id)
            if n.parent_id == d.id and n.name == dest_name:
                return _node(n)
            await self._check_not_inside(s, n, d)
            now = time.time()
            await self._clear_dest(s, d, dest_name, overwrite, now)
            old_parent = await s.get(FileNode, n.parent_id)
            n.parent_id = d.id
            n.name = dest_name
            self._touch(old_parent, now)
            self._touch(d, now)
            try:
                await s.flush()
            except IntegrityError:
                raise Conflict(f"{dest_name} exists already") from None
            node = _node(n)
        await self._publish(account_id, node.id, "moved")
        return node

    async def _subtree(self, s: AsyncSession, top: FileNode, *, live_only: bool) -> builtins.list[FileNode]:
        """``top`` and every node below it, parents before children."""
        out = [top]
        frontier = [top.id] if top.is_dir else []
        while frontier:
            q = select(FileNode).where(FileNode.parent_id.in_(frontier))
            if live_only:
                q = q.where(FileNode.trashed_at.is_(None))
            children = list(await s.scalars(q.order_by(FileNode.id)))
            out.extend(children)
            frontier = [c.id for c in children if c.is_dir]
        return out

    async def copy(
        self,
        account_id: int,
        node_id: int,
        dest_parent_id: int,
        dest_name: str,
        *,
        overwrite: bool = False,
        depth_zero: bool = False,
    ) -> Node:
        """Copy a file or a folder (recursively unless ``depth_zero``); blobs are shared, the quota is
        charged for every copied byte, dead properties are copied along."""
        dest_name = check_name(dest_name)
        async with self.sessions.begin() as s:
            n = await self._get(s, account_id, node_id)
            d = await self._dir(s, account_id, dest_parent_id)
            if n.is_dir and not depth_zero:
                await self._check_not_inside(s, n, d)
            now = time.time()
            await self._clear_dest(s, d, dest_name, overwrite, now)
            nodes = [n] if depth_zero else await self._subtree(s, n, live_only=True)
            total = sum(x.size for x in nodes if not x.is_dir)
            if total and not await AccountStore.charge(s, account_id, total):
                raise QuotaExceeded("quota exceeded: the copy does not fit in the account's storage")
            mapping: dict[int, int] = {}
            refs: builtins.list[BlobRef] = []
            top_copy: FileNode | None = None
            for x in nodes:
                # parents come before children (``_subtree``): a child's parent is mapped already
                parent = d.id if x is n or x.parent_id is None else mapping[x.parent_id]
                c = FileNode(
                    account_id=account_id,
                    parent_id=parent,
                    name=dest_name if x is n else x.name,
                    is_dir=x.is_dir,
                    size=x.size,
                    blob=x.blob,
                    media_type=x.media_type,
                    etag=_dir_etag() if x.is_dir else _file_etag(x.blob or EMPTY_DIGEST, now),
                    created_at=now,
                    modified_at=x.modified_at if not x.is_dir else now,
                )
                s.add(c)
                try:
                    await s.flush()
                except IntegrityError:
                    raise Conflict(f"{c.name} exists already") from None
                mapping[x.id] = c.id
                if x.blob:
                    refs.append(BlobRef(x.blob, x.size))
                for p in await s.scalars(select(FileProp).where(FileProp.node_id == x.id)):
                    s.add(FileProp(node_id=c.id, name=p.name, value=p.value))
                top_copy = top_copy or c
            await BlobStore.ref_many(s, refs)  # blob rows last, by digest (lock order)
            assert top_copy is not None  # ``nodes`` starts with ``n``
            self._touch(d, now)
            await s.flush()
            node = _node(top_copy)
        await self._publish(account_id, node.id, "created")
        return node

    # ------------------------------------------------------------------ trash
    async def trash(self, account_id: int, node_id: int) -> Node:
        async with self.sessions.begin() as s:
            n = await self._get(s, account_id, node_id)
            if n.parent_id is None:
                raise Conflict("the root folder cannot be deleted")
            now = time.time()
            n.trashed_at = now
            self._touch(await s.get(FileNode, n.parent_id), now)
            await s.flush()
            node = _node(n)
        await self._publish(account_id, node.id, "trashed")
        return node

    async def list_trash(self, account_id: int) -> builtins.list[Node]:
        async with self.sessions() as s:
            rows = await s.scalars(
                select(FileNode)
                .where(FileNode.account_id == account_id, FileNode.trashed_at.is_not(None))
                .order_by(FileNode.trashed_at.desc())
            )
            return [_node(r) for r in rows]

    async def restore(self, account_id: int, node_id: int) -> Node:
        """Back from the trash to its folder (or to the root when that folder is gone); a name taken
        meanwhile gets a " (restored)" suffix."""
        async with self.sessions.begin() as s:
            n = await self._get(s, account_id, node_id, live=False)
            if n.trashed_at is None:
                raise Conflict(f"{n.name} is not in the trash")
            parent = await s.get(FileNode, n.parent_id)
            if parent is None or not await self._is_live(s, parent):
                parent = await self._root(s, account_id)
            name = n.name
            i = 0
            while await self._child(s, parent.id, name) is not None:
                i += 1
                stem, dot, ext = n.name.rpartition(".")
                suffix = " (restored)" if i == 1 else f" (restored {i})"
                name = f"{stem}{suffix}.{ext}" if dot and stem else f"{n.name}{suffix}"
            n.parent_id, n.name, n.trashed_at = parent.id, name, None
            self._touch(parent, time.time())
            await s.flush()
            node = _node(n)
        await self._publish(account_id, node.id, "restored")
        return node

    async def _purge(self, s: AsyncSession, account_id: int, n: FileNode) -> int:
        nodes = await self._subtree(s, n, live_only=False)
        ids = [x.id for x in nodes]
        freed = 0
        for x in nodes:
            if x.blob:
                freed += x.size
                await BlobStore.unref(s, x.blob)
        for i in range(0, len(ids), 500):
            for v in await s.scalars(select(FileVersion).where(FileVersion.node_id.in_(ids[i : i + 500]))):
                freed += v.size
                await BlobStore.unref(s, v.blob)
        # children first (explicit, rather than trusting ON DELETE CASCADE on every backend)
        for x in reversed(nodes):
            await s.execute(delete(FileVersion).where(FileVersion.node_id == x.id))
            await s.execute(delete(FileProp).where(FileProp.node_id == x.id))
            await s.execute(delete(FileNode).where(FileNode.id == x.id))
        if freed:
            await AccountStore.charge(s, account_id, -freed)
        return freed

    async def purge(self, account_id: int, node_id: int) -> int:
        """Delete for good (a trashed node, or a live one); returns the bytes freed."""
        async with self.sessions.begin() as s:
            n = await self._get(s, account_id, node_id, live=False)
            if n.parent_id is None:
                raise Conflict("the root folder cannot be deleted")
            freed = await self._purge(s, account_id, n)
        await self._publish(account_id, node_id, "deleted")
        return freed

    async def empty_trash(self, account_id: int) -> int:
        freed = 0
        for n in await self.list_trash(account_id):
            try:
                freed += await self.purge(account_id, n.id)
            except NotFound:  # inside a subtree purged just before
                pass
        return freed

    async def purge_expired(self, now: float | None = None) -> int:
        """Purge everything in any account's trash for longer than ``trash_days``. Returns the count."""
        cutoff = (now or time.time()) - self.trash_days * 86400
        async with self.sessions() as s:
            rows = list(
                await s.execute(
                    select(FileNode.id, FileNode.account_id).where(
                        FileNode.trashed_at.is_not(None), FileNode.trashed_at < cutoff
                    )
                )
            )
        n = 0
        for node_id, account_id in rows:
            try:
                await self.purge(account_id, node_id)
                n += 1
            except NotFound:
                pass
        return n

    # ------------------------------------------------------------------ versions
    async def versions(self, account_id: int, node_id: int) -> builtins.list[Version]:
        async with self.sessions() as s:
            n = await self._get(s, account_id, node_id)
            rows = await s.scalars(
                select(FileVersion).where(FileVersion.node_id == n.id).order_by(FileVersion.id.desc())
            )
            return [Version(v.id, v.node_id, v.blob, v.size, v.media_type, v.modified_at) for v in rows]

    async def restore_version(self, account_id: int, node_id: int, version_id: int) -> Node:
        """Make an old version current again (the current content becomes a version)."""
        async with self.sessions.begin() as s:
            n = await self._get(s, account_id, node_id)
            v = await s.get(FileVersion, version_id)
            if v is None or v.node_id != n.id:
                raise NotFound("no such version")
            parent = await s.get(FileNode, n.parent_id)
            node, _ = await self._put_file(
                s, account_id, parent.id, n.name, BlobRef(v.blob, v.size), v.media_type, None
            )
        await self._publish(account_id, node.id, "modified")
        return node

    # ------------------------------------------------------------------ dead properties (WebDAV)
    async def props(self, account_id: int, node_id: int) -> dict[str, str]:
        async with self.sessions() as s:
            await self._get(s, account_id, node_id)
            return {p.name: p.value for p in await s.scalars(select(FileProp).where(FileProp.node_id == node_id))}

    async def props_many(self, account_id: int, node_ids: builtins.list[int]) -> dict[int, dict[str, str]]:
        """Dead properties of many nodes of one account in one query (PROPFIND Depth 1)."""
        out: dict[int, dict[str, str]] = {i: {} for i in node_ids}
        async with self.sessions() as s:
            for i in range(0, len(node_ids), 500):
                rows = await s.execute(
                    select(FileProp.node_id, FileProp.name, FileProp.value)
                    .join(FileNode, FileNode.id == FileProp.node_id)
                    .where(FileProp.node_id.in_(node_ids[i : i + 500]), FileNode.account_id == account_id)
                )
                for nid, name, value in rows:
                    out[nid][name] = value
        return out

    async def set_props(self, account_id: int, node_id: int, changes: dict[str, str | None]) -> None:
        """Set (value) or remove (None) dead properties, all in one transaction."""
        async with self.sessions.begin() as s:
            await self._get(s, account_id, node_id)
            for name, value in changes.items():
                await s.execute(delete(FileProp).where(FileProp.node_id == node_id, FileProp.name == name))
                if value is not None:
                    s.add(FileProp(node_id=node_id, name=name, value=value))

    async def used_bytes(self, account_id: int) -> int:
        """Bytes the files service holds for the account (live, trash and versions)."""
        async with self.sessions() as s:
            a = await s.scalar(
                select(func.coalesce(func.sum(FileNode.size), 0)).where(FileNode.account_id == account_id)
            )
            b = await s.scalar(
                select(func.coalesce(func.sum(FileVersion.size), 0))
                .join(FileNode, FileNode.id == FileVersion.node_id)
                .where(FileNode.account_id == account_id)
            )
            return int(a or 0) + int(b or 0)

    async def set_modified(self, account_id: int, node_id: int, mtime: float) -> None:
        async with self.sessions.begin() as s:
            n = await self._get(s, account_id, node_id)
            await s.execute(update(FileNode).where(FileNode.id == n.id).values(modified_at=mtime))
