"""WebDAV (RFC 4918, class 1 and 2) at /dav/ over the files tree, for rclone, davfs2, Finder, Windows.

Decision: WsgiDAV with our own DAVProvider, mounted through a2wsgi, rather than our own DAV
server. WsgiDAV is a well-kept implementation of the protocol's hard parts (If-header evaluation,
lock semantics, PROPFIND/PROPPATCH multistatus, Depth handling, COPY/MOVE overwrite rules) and passes
litmus; the house rule is a maintained library before hand-written protocol code. What we own is the
storage side: the provider maps paths onto ``FileTree`` (same tree, quota, versions, trash and
dedup as the HTTP API), dead properties live in the ``file_props`` table keyed by node (so MOVE
keeps them and COPY copies them), and locks are kept per account in memory (one gateway process;
a lock is advisory and short-lived — a restart drops them, which clients survive by re-locking).

Threads: WsgiDAV is synchronous; a2wsgi runs it in a thread pool, and the provider calls the
async store on the server's loop with ``asyncio.run_coroutine_threadsafe(...).result()``, so the
database and blob store are only ever used from the loop. Request bodies stream through a2wsgi's
queue and go to the blob writer chunk by chunk; GET bodies come from the blob file (disk) or chunk
by chunk from the blob store (S3): memory stays flat.

Auth happens before WsgiDAV: HTTP Basic with an app password of scope "dav" (401 with
WWW-Authenticate otherwise). A full quota is 507 Insufficient Storage (RFC 4918 §11.5), checked
from Content-Length before the body is read, and again when the body is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import time
from collections.abc import AsyncGenerator
from urllib.parse import unquote

from a2wsgi import WSGIMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from wsgidav import util as dav_util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_NOT_FOUND,
    HTTP_REQUEST_ENTITY_TOO_LARGE,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider
from wsgidav.error_printer import ErrorPrinter
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from suite.files.names import BadName, check_name, split_path
from suite.files.tree import (
    Conflict,
    FilesError,
    Node,
    NotFound,
    QuotaExceeded,
    TooLarge,
    guess_type,
)
from suite.gateway import auth
from suite.gateway.errors import ApiError
from suite.storage.blobs import BlobStore

MOUNT = "/dav"


def _dav_error(exc: Exception) -> DAVError:
    if isinstance(exc, QuotaExceeded):
        return DAVError(HTTP_INSUFFICIENT_STORAGE, str(exc))
    if isinstance(exc, TooLarge):
        return DAVError(HTTP_REQUEST_ENTITY_TOO_LARGE, str(exc))
    if isinstance(exc, BadName):
        return DAVError(HTTP_FORBIDDEN, str(exc))
    if isinstance(exc, NotFound):
        return DAVError(HTTP_NOT_FOUND, str(exc))
    if isinstance(exc, Conflict):
        return DAVError(HTTP_CONFLICT, str(exc))
    return DAVError(HTTP_BAD_REQUEST, str(exc))


class _Bridge:
    """Run the store's coroutines on the server loop from WsgiDAV's worker threads."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def run(self, coro):
        assert self.loop is not None
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop).result()
        except (FilesError, BadName) as exc:
            raise _dav_error(exc) from None


class _BlobReader(io.RawIOBase):
    """A seekable sync file over ``BlobStore.read`` (for backends without a local file, e.g. S3):
    WsgiDAV seeks for Range requests; a seek drops the current stream and the next read opens a
    ranged one at the new position."""

    def __init__(self, bridge: _Bridge, blobs: BlobStore, digest: str, size: int) -> None:
        self._bridge = bridge
        self._blobs = blobs
        self._digest = digest
        self._size = size
        self._pos = 0
        self._it: AsyncGenerator[bytes, None] | None = None
        self._buf = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        new = base + offset
        if new < 0:
            raise ValueError("negative seek position")
        if new != self._pos:
            self._drop()
            self._pos = new
        return self._pos

    def _drop(self) -> None:
        if self._it is not None:
            with contextlib.suppress(Exception):  # a stream closed early: nothing to report
                self._bridge.run(self._it.aclose())
        self._it = None
        self._buf = b""

    def readinto(self, b) -> int:
        if self._pos >= self._size:
            return 0
        if not self._buf:
            if self._it is None:
                self._it = self._blobs.read(self._digest, self._pos)
            try:
                self._buf = self._bridge.run(anext(self._it))
            except StopAsyncIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._drop()
        super().close()


class _Writer:
    """What WsgiDAV's PUT writes into: a blob writer; ``close`` stores the file (507 on quota)."""

    def __init__(self, res: FileResource, content_type: str | None) -> None:
        self.res = res
        p = res.provider
        self.bridge = p.bridge
        self.w = self.bridge.run(p.files.ctx.blobs.writer())
        self.media_type = (content_type or "").split(";")[0].strip() or None
        self.max = p.files.limits.max_upload_bytes
        self.done = False

    def write(self, data: bytes) -> None:
        if self.w.size + len(data) > self.max:
            raise DAVError(HTTP_REQUEST_ENTITY_TOO_LARGE, f"files are limited to {self.max} bytes")
        self.bridge.run(self.w.write(data))

    def close(self) -> None:
        if self.done:
            return
        self.done = True
        p = self.res.provider
        ref = self.bridge.run(self.w.commit())
        node = self.res.node
        # QuotaExceeded arrives as DAVError 507 (RFC 4918 §11.5) through the bridge
        self.res.node, _ = p.bridge.run(
            p.files.tree.put_file(
                p.account_id,
                node.parent_id,
                node.name,
                ref,
                self.media_type if self.media_type not in (None, "application/octet-stream") else None,
            )
        )

    def abort(self) -> None:
        if not self.done:
            self.done = True
            self.bridge.run(self.w.abort())


def _cache(environ: dict | None) -> dict:
    """Per-request memo: ref URL → node id, node id → dead properties (PROPFIND reads them for
    every member; one query per listing instead of several per member)."""
    if environ is None:
        return {"ids": {}, "props": {}}
    return environ.setdefault("suite.dav.cache", {"ids": {}, "props": {}})


class _Mixin:
    node: Node
    provider: SuiteProvider

    def get_creation_date(self):
        return self.node.created_at

    def get_display_name(self):
        return self.node.name

    def get_last_modified(self):
        return self.node.modified_at

    def _tree(self):
        return self.provider.files.tree

    def _run(self, coro):
        return self.provider.bridge.run(coro)

    def _dest(self, dest_path: str) -> tuple[Node, str]:
        try:
            parts = split_path(dest_path)
        except BadName as exc:
            raise DAVError(HTTP_FORBIDDEN, str(exc)) from None
        if not parts:
            raise DAVError(HTTP_FORBIDDEN, "the root cannot be a destination")
        parent = self._run(self._tree().resolve(self.provider.account_id, "/".join(parts[:-1])))
        if parent is None or not parent.is_dir:
            raise DAVError(HTTP_CONFLICT, "the destination's parent does not exist")
        return parent, parts[-1]

    def delete(self):
        self._run(self._tree().trash(self.provider.account_id, self.node.id))
        self.remove_all_locks(recursive=True)

    def copy_move_single(self, dest_path, *, is_move):
        parent, name = self._dest(dest_path)
        tree = self._tree()
        acct = self.provider.account_id
        existing = self._run(tree.resolve(acct, dest_path))
        if is_move:
            self._run(tree.move(acct, self.node.id, parent.id, name, overwrite=True))
        elif existing is not None and existing.is_dir and self.node.is_dir:
            # WsgiDAV copies a tree level by level onto an existing collection: keep it, add props
            props = self._run(tree.props(acct, self.node.id))
            if props:
                self._run(tree.set_props(acct, existing.id, props))
        else:
            self._run(tree.copy(acct, self.node.id, parent.id, name, overwrite=True, depth_zero=True))

    def support_recursive_move(self, dest_path):
        return True

    def move_recursive(self, dest_path):
        parent, name = self._dest(dest_path)
        self._run(self._tree().move(self.provider.account_id, self.node.id, parent.id, name))

    def set_last_modified(self, dest_path, time_stamp, *, dry_run):
        secs = time_stamp if isinstance(time_stamp, (int, float)) else dav_util.parse_time_string(time_stamp)
        if not dry_run:
            self._run(self._tree().set_modified(self.provider.account_id, self.node.id, float(secs)))
        return True


class FileResource(_Mixin, DAVNonCollection):
    def __init__(self, path: str, environ: dict, node: Node) -> None:
        super().__init__(path, environ)
        self.node = node
        self._writer: _Writer | None = None
        if node.id:
            _cache(environ)["ids"][self.get_ref_url()] = node.id

    def get_content_length(self):
        return self.node.size

    def get_content_type(self):
        return self.node.media_type

    def get_etag(self):
        return self.node.etag

    def support_etag(self):
        return True

    def support_ranges(self):
        return True

    def get_content(self):
        blobs = self.provider.files.ctx.blobs
        path = blobs.local_path(self.node.blob) if self.node.blob else None
        if path is not None:
            return open(path, "rb", buffering=256 * 1024)
        return io.BufferedReader(_BlobReader(self.provider.bridge, blobs, self.node.blob, self.node.size), 256 * 1024)

    def begin_write(self, *, content_type=None):
        self._writer = _Writer(self, content_type)
        return self._writer

    def end_write(self, *, with_errors):
        if with_errors and self._writer is not None:
            self._writer.abort()


class FolderResource(_Mixin, DAVCollection):
    def __init__(self, path: str, environ: dict, node: Node) -> None:
        super().__init__(path, environ)
        self.node = node
        self._children: list[Node] | None = None
        _cache(environ)["ids"][self.get_ref_url()] = node.id

    def get_etag(self):
        return None

    def _list(self) -> list[Node]:
        if self._children is None:
            acct = self.provider.account_id
            self._children = self._run(self._tree().list(acct, self.node.id))
            if self.environ.get("REQUEST_METHOD") == "PROPFIND" and self._children:
                _cache(self.environ)["props"].update(
                    self._run(self._tree().props_many(acct, [c.id for c in self._children]))
                )
        return self._children

    def get_member_names(self):
        return [c.name for c in self._list()]

    def get_member(self, name):
        for c in self._list():
            if c.name == name:
                path = dav_util.join_uri(self.path, name)
                return FolderResource(path, self.environ, c) if c.is_dir else FileResource(path, self.environ, c)
        return None

    def get_member_list(self):
        out = []
        for c in self._list():
            path = dav_util.join_uri(self.path, c.name)
            out.append(FolderResource(path, self.environ, c) if c.is_dir else FileResource(path, self.environ, c))
        return out

    # RFC 4331 quota properties
    def get_used_bytes(self):
        a = self._run(self.provider.files.ctx.accounts.get_by_id(self.provider.account_id))
        return a.used_bytes if a else None

    def get_available_bytes(self):
        a = self._run(self.provider.files.ctx.accounts.get_by_id(self.provider.account_id))
        return max(0, a.quota_bytes - a.used_bytes) if a else None

    def create_empty_resource(self, name):
        path = dav_util.join_uri(self.path, name)
        self._children = None
        if self.environ.get("REQUEST_METHOD") == "PUT":
            # The body follows at once: nothing is stored until it is complete (a failed or
            # over-quota PUT leaves no empty file behind, and a new file costs one transaction).
            try:
                name = check_name(name)
            except BadName as exc:
                raise DAVError(HTTP_FORBIDDEN, str(exc)) from None
            now = time.time()
            pending = Node(
                0, self.provider.account_id, self.node.id, name, False, 0, None, guess_type(name), "", now, now, None
            )
            return FileResource(path, self.environ, pending)
        # LOCK on an unmapped URL (RFC 4918 §7.3): an empty resource that exists from now on
        node, _ = self._run(self._tree().write(self.provider.account_id, self.node.id, name, b""))
        return FileResource(path, self.environ, node)

    def create_collection(self, name):
        self._run(self._tree().mkdir(self.provider.account_id, self.node.id, name))
        self._children = None

    def delete(self):
        if self.node.is_root:
            raise DAVError(HTTP_FORBIDDEN, "the root cannot be deleted")
        super().delete()


class NodePropertyManager:
    """Dead properties (RFC 4918 §4.2) in ``file_props``, keyed by node: MOVE keeps them (same
    node), COPY copies them (``FileTree.copy``), DELETE sends the node with them to the trash."""

    def __init__(self, provider: SuiteProvider) -> None:
        self.provider = provider

    def _node_id(self, norm_url: str, environ: dict | None = None) -> int | None:
        known = _cache(environ)["ids"].get(norm_url)
        if known is not None:
            return known
        p = self.provider
        path = unquote(norm_url)
        if p.share_path not in ("", "/") and path.startswith(p.share_path):
            path = path[len(p.share_path) :]
        try:
            n = p.bridge.run(p.files.tree.resolve(p.account_id, path))
        except (DAVError, BadName):
            return None
        return n.id if n else None

    def _props(self, nid: int, environ: dict | None) -> dict[str, str]:
        cache = _cache(environ)["props"]
        if nid not in cache:
            cache[nid] = self.provider.bridge.run(self.provider.files.tree.props(self.provider.account_id, nid))
        return cache[nid]

    def get_properties(self, norm_url, environ=None):
        nid = self._node_id(norm_url, environ)
        return [] if nid is None else list(self._props(nid, environ))

    def get_property(self, norm_url, name, environ=None):
        nid = self._node_id(norm_url, environ)
        return None if nid is None else self._props(nid, environ).get(name)

    def write_property(self, norm_url, name, property_value, dry_run=False, environ=None):
        nid = self._node_id(norm_url, environ)
        if nid is None:
            raise DAVError(HTTP_NOT_FOUND)
        if len(name) > 500 or len(property_value) > 64 * 1024:
            raise DAVError(HTTP_INSUFFICIENT_STORAGE, "property too large")
        if not dry_run:
            value = property_value.decode("utf-8") if isinstance(property_value, bytes) else property_value
            self.provider.bridge.run(self.provider.files.tree.set_props(self.provider.account_id, nid, {name: value}))
            _cache(environ)["props"].pop(nid, None)

    def remove_property(self, norm_url, name, dry_run=False, environ=None):
        nid = self._node_id(norm_url, environ)
        if nid is None:
            raise DAVError(HTTP_NOT_FOUND)
        if not dry_run:
            self.provider.bridge.run(self.provider.files.tree.set_props(self.provider.account_id, nid, {name: None}))
            _cache(environ)["props"].pop(nid, None)

    def remove_properties(self, norm_url, environ=None):
        pass  # the node keeps them in the trash; purge deletes them

    def copy_properties(self, src_url, dest_url, environ=None):
        pass  # FileTree.copy copies them

    def move_properties(self, src_url, dest_url, with_children, environ=None):
        pass  # same node after a move


class SuiteProvider(DAVProvider):
    def __init__(self, files, bridge: _Bridge, account_id: int) -> None:
        super().__init__()
        self.files = files
        self.bridge = bridge
        self.account_id = account_id

    def get_resource_inst(self, path, environ):
        self._count_get_resource_inst += 1
        try:
            node = self.bridge.run(self.files.tree.resolve(self.account_id, path))
        except (DAVError, BadName):
            return None
        if node is None:
            return None
        return FolderResource(path, environ, node) if node.is_dir else FileResource(path, environ, node)


class DavApp:
    """ASGI app for /dav: authenticate, check quota on PUT, hand over to the account's WsgiDAV."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.bridge = _Bridge()
        self._apps: dict[int, WsgiDAVApp] = {}
        self._lock = threading.Lock()
        self._wsgi = WSGIMiddleware(self._dispatch, workers=16, send_queue_size=8)

    def _app_for(self, environ) -> WsgiDAVApp:
        scope = environ["asgi.scope"]
        account_id = scope["suite.dav_account_id"]
        with self._lock:
            app = self._apps.get(account_id)
            if app is None:
                provider = SuiteProvider(scope["app"].state.files, self.bridge, account_id)
                config = {
                    "provider_mapping": {"/": provider},
                    "mount_path": MOUNT,
                    "lock_storage": True,
                    "property_manager": NodePropertyManager(provider),
                    "middleware_stack": [ErrorPrinter, RequestResolver],
                    "http_authenticator": {"domain_controller": None},
                    "simple_dc": {"user_mapping": {"*": True}},
                    "verbose": 1,
                    "logging": {"enable": False},
                    "dir_browser": {"enable": False},
                    "add_header_MS_Author_Via": True,
                    "hotfixes": {"re_encode_path_info": True},
                }
                app = WsgiDAVApp(config)
                self._apps[account_id] = app
            return app

    def _dispatch(self, environ, start_response):
        scope = environ["asgi.scope"]
        environ["wsgidav.auth.user_name"] = scope["suite.dav_address"]
        environ["wsgidav.auth.realm"] = "Suite"
        environ["wsgidav.auth.roles"] = ("editor",)
        environ["wsgidav.auth.permissions"] = ()
        return self._app_for(environ)(environ, start_response)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        self.bridge.loop = asyncio.get_running_loop()
        request = Request(scope, receive)
        try:
            caller = await auth.require(request, basic_scope="dav")
        except ApiError as exc:
            headers = dict(exc.headers or {})
            headers.setdefault("WWW-Authenticate", 'Basic realm="Suite", charset="UTF-8"')
            await JSONResponse(
                {"error": exc.code, "message": str(exc.detail)}, status_code=exc.status_code, headers=headers
            )(scope, receive, send)
            return
        files = scope["app"].state.files
        rel = scope["path"].removeprefix(MOUNT)
        try:
            split_path(rel)  # no "..", ".", control characters: refused here, never interpreted
        except BadName as exc:
            await Response(f"bad path: {exc}\n", 400, media_type="text/plain")(scope, receive, send)
            return
        if scope["method"] == "PUT":
            length = request.headers.get("content-length")
            if length is not None and length.isdigit():
                n = int(length)
                if n > files.limits.max_upload_bytes:
                    await Response(
                        f"files are limited to {files.limits.max_upload_bytes} bytes\n", 413, media_type="text/plain"
                    )(scope, receive, send)
                    return
                acct = await self.ctx.accounts.get_by_id(caller.account.id)
                if acct.used_bytes + n > acct.quota_bytes:
                    # RFC 4918 §11.5 507 Insufficient Storage, before reading the body
                    await Response("quota exceeded\n", 507, media_type="text/plain", headers={"Connection": "close"})(
                        scope, receive, send
                    )
                    return
        scope = dict(scope)
        scope["suite.dav_account_id"] = caller.account.id
        scope["suite.dav_address"] = caller.account.address
        await self._wsgi(scope, receive, send)
