"""S3 blob backend (aiobotocore): the ``BlobBackend`` protocol on any S3 engine (AWS, Ceph RGW, MinIO).

Layout in the bucket: ``blobs/<sha256 hex>`` for blobs, ``tmp/<random>`` for uploads in progress.

"A blob is either absent or complete under its digest" — how:

- The digest is only known once the last byte is written, so nothing is ever written under
  ``blobs/`` before that. A blob smaller than one part stays in memory and goes up with a single
  ``PutObject`` straight to ``blobs/<digest>``; S3 publishes an object atomically once the whole body
  has arrived (TLS, or the SigV4 payload hash over plain HTTP to another host, guards the body in
  transit: ``sign_payload``), so readers see nothing or all of it.
- A larger blob streams as a multipart upload to ``tmp/<random>``: parts go up while the caller is
  still writing, at most ``max_concurrency`` of them in flight, so memory stays at
  ``(max_concurrency + 1) × part_size`` whatever the blob size (the parts in flight plus the one being
  filled; each part is a ``BytesIO`` that aiohttp sends in 64 KiB slices without copying it). ``commit`` completes the upload, checks the size of the assembled temp object with
  ``HeadObject`` (Ceph's ``CompleteMultipartUpload`` answers with an empty ETag, so nothing here
  trusts that answer), copies it server-side to ``blobs/<digest>`` (``CopyObject``, or
  ``UploadPartCopy`` parts above S3's 5 GiB copy limit — again atomic on completion) and deletes the
  temp object.
- Same content written twice: the second write overwrites ``blobs/<digest>`` with identical bytes
  instead of skipping it. That is what the disk backend's ``utime`` does: it refreshes
  ``LastModified``, so a concurrent ``gc`` (which deletes unreferenced blobs by age) keeps a blob a
  writer has just been promised. On Ceph the server-side copy only bumps reference counts on the
  data, on AWS it is a server-side copy; no byte crosses the network twice.
- A crashed writer leaves at most a pending multipart upload or an object under ``tmp/``, never
  anything under ``blobs/``; ``clean_tmp`` (called by ``BlobStore.gc``) aborts/deletes those by age.

Deleting by age is HeadObject then DeleteObject (S3 has no portable conditional delete); a write of the
same content landing between the two can lose its refresh — the same window as the disk backend's
stat-then-unlink, and only for a blob nobody references yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import ipaddress
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from suite.storage.blobs import (
    CHUNK,
    WINDOW,
    BlobBackend,
    BlobNotFound,
    BlobRef,
    Bytes,
    T,
    _check_digest,
    copy_file_in,
)

MIN_PART = 5 * 1024**2  # S3: every part but the last is at least 5 MiB
MAX_PARTS = 10_000  # S3: parts per multipart upload
COPY_LIMIT = 5 * 1024**3  # S3: largest object CopyObject copies in one request
COPY_PART = 512 * 1024**2

BLOB_PREFIX = "blobs/"
TMP_PREFIX = "tmp/"


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _missing(exc: Exception) -> bool:
    return _code(exc) in ("404", "NoSuchKey", "NotFound")


class S3Error(IOError):
    pass


def sign_payload(endpoint: str) -> bool:
    """Whether request bodies carry their SHA-256 in the signature (AWS Signature Version 4's
    ``x-amz-content-sha256``), so that the provider refuses a body altered on the way.

    Over HTTPS, TLS already authenticates every byte (its record MAC), and on a loopback endpoint
    no wire carries them: there the body goes as ``UNSIGNED-PAYLOAD`` — without it botocore hashes
    every byte of every copy with SHA-256 on this side and the provider hashes it again to check.
    Only plain HTTP to another host keeps the payload hash, the one guard of its body in transit.
    Blobs are content-addressed besides: the storage network checks every full read and every
    repair copy against the SHA-256 digest (a bad copy is marked and repaired), whatever the
    transport did."""
    if not endpoint:
        return False  # AWS: https
    url = urlsplit(endpoint)
    if url.scheme == "https":
        return False
    host = url.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


class _S3Writer:
    """Hashes while streaming; parts upload in the background, bounded by ``max_concurrency``.
    Without ``hashing`` (the storage network, which hashes the stream once for all its copies) the
    digest is the caller's: ``commit(digest)``."""

    def __init__(self, backend: S3Backend, hashing: bool = True) -> None:
        self._b = backend
        self._hash = hashlib.sha256() if hashing else None
        self._buf = io.BytesIO()  # handed to aiohttp as is: it sends a BytesIO in 64 KiB slices, no copy
        self._tmp = f"{TMP_PREFIX}{secrets.token_hex(16)}"
        self._upload_id: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._parts: dict[int, str] = {}
        self._next_part = 1
        self._done = False
        self.size = 0

    async def write(self, data: Bytes) -> None:
        if self._done:
            raise RuntimeError("blob writer used after commit/abort")
        if not data:
            return
        if self._hash is not None:
            self._hash.update(data)
        self.size += len(data)
        part_size = self._b.part_size
        if type(data) is bytes and not self._buf.tell() and part_size <= len(data) < 2 * part_size:
            # a whole part already (the storage network hands each of its copies the same one):
            # bytes cannot change under the upload, so it goes as is — no copy per copy
            await self._ship(io.BytesIO(data))
            return
        view = memoryview(data).cast("B")
        while view:
            room = part_size - self._buf.tell()
            self._buf.write(view[:room])
            view = view[room:]
            if self._buf.tell() >= part_size:
                await self._ship()

    async def _reap(self, block: bool) -> None:
        """Collect finished part uploads (raising the first failure); with ``block``, wait for one."""
        if block and self._tasks:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in [t for t in self._tasks if t.done()]:
            self._tasks.discard(t)
            t.result()

    async def _ship(self, whole: io.BytesIO | None = None) -> None:
        """Hand the full buffer (or ``whole``, a part of its own) to a background part upload;
        waits while the limit is reached."""
        await self._reap(block=False)
        while len(self._tasks) >= self._b.max_concurrency:
            await self._reap(block=True)
        if self._next_part > MAX_PARTS:
            raise S3Error(f"blob larger than {MAX_PARTS} parts of {self._b.part_size} bytes")
        if self._upload_id is None:
            client = await self._b._client()
            res = await client.create_multipart_upload(Bucket=self._b.bucket, Key=self._tmp)
            self._upload_id = res["UploadId"]
        if whole is None:
            body, self._buf = self._buf, io.BytesIO()
            body.seek(0)
        else:
            body = whole
        n = self._next_part
        self._next_part += 1
        self._tasks.add(asyncio.create_task(self._upload_part(n, body)))

    async def _upload_part(self, n: int, body: io.BytesIO) -> None:
        client = await self._b._client()
        res = await client.upload_part(
            Bucket=self._b.bucket, Key=self._tmp, UploadId=self._upload_id, PartNumber=n, Body=body
        )
        self._parts[n] = res["ETag"]

    async def commit(self, digest: str | None = None) -> BlobRef:
        if self._done:
            raise RuntimeError("blob writer used after commit/abort")
        if (digest is None) == (self._hash is None):
            raise ValueError("commit(digest) is for a writer opened without hashing, and only for it")
        self._done = True
        try:
            return await self._commit(digest or self._hash.hexdigest())  # type: ignore[union-attr]
        except BaseException:
            await self._cleanup()
            raise

    async def _commit(self, digest: str) -> BlobRef:
        b = self._b
        client = await b._client()
        final = b._key(digest)
        if self._upload_id is None:
            # Smaller than one part: one atomic PutObject under the final name.
            body, self._buf = self._buf, io.BytesIO()
            body.seek(0)
            await client.put_object(Bucket=b.bucket, Key=final, Body=body)
            return BlobRef(digest, self.size)
        if self._buf.tell():
            await self._ship()
        while self._tasks:
            await self._reap(block=True)
        parts = [{"PartNumber": n, "ETag": self._parts[n]} for n in sorted(self._parts)]
        # The answer's ETag is empty on Ceph RGW; the HeadObject below is what we check.
        await client.complete_multipart_upload(
            Bucket=b.bucket, Key=self._tmp, UploadId=self._upload_id, MultipartUpload={"Parts": parts}
        )
        self._upload_id = None
        head = await client.head_object(Bucket=b.bucket, Key=self._tmp)
        if head["ContentLength"] != self.size:
            raise S3Error(f"assembled upload has {head['ContentLength']} bytes, wrote {self.size}")
        await b._copy(self._tmp, final, self.size)
        await client.delete_object(Bucket=b.bucket, Key=self._tmp)
        return BlobRef(digest, self.size)

    async def _cleanup(self) -> None:
        self._buf = io.BytesIO()
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        client = await self._b._client()
        with contextlib.suppress(Exception):
            if self._upload_id is not None:
                await client.abort_multipart_upload(Bucket=self._b.bucket, Key=self._tmp, UploadId=self._upload_id)
                self._upload_id = None
            else:
                await client.delete_object(Bucket=self._b.bucket, Key=self._tmp)

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        await self._cleanup()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.abort()


class S3Backend:
    name = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str = "",
        access_key: str = "",
        secret_key: str = "",
        region: str = "us-east-1",
        part_size: int = 8 * 1024**2,
        max_concurrency: int = 4,
        create_bucket: bool = True,
        retries: int = 5,
        connect_timeout: float = 60.0,
    ) -> None:
        if part_size < MIN_PART:
            raise ValueError(f"s3 part size must be at least {MIN_PART} bytes (S3 minimum), got {part_size}")
        if max_concurrency < 1:
            raise ValueError("s3 max concurrency must be at least 1")
        self.bucket = bucket
        self.endpoint = endpoint
        self.region = region
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self.copy_limit = COPY_LIMIT
        self.copy_part_size = COPY_PART
        self._access_key = access_key
        self._secret_key = secret_key
        self._create_bucket = create_bucket
        # The storage network asks for few retries and a short connect timeout: it has other copies.
        self._retries = retries
        self._connect_timeout = connect_timeout
        self._stack: contextlib.AsyncExitStack | None = None
        self._cl: Any = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings) -> S3Backend:
        return cls(
            settings.s3_bucket,
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            region=settings.s3_region,
            part_size=settings.s3_part_size,
            max_concurrency=settings.s3_max_concurrency,
        )

    # ----- client -----
    async def _client(self) -> Any:
        if self._cl is not None:
            return self._cl
        async with self._lock:
            if self._cl is None:
                from aiobotocore.config import AioConfig
                from aiobotocore.session import get_session

                s3: dict[str, Any] = {"payload_signing_enabled": sign_payload(self.endpoint)}
                if self.endpoint:
                    s3["addressing_style"] = "path"
                config = AioConfig(
                    signature_version="s3v4",
                    s3=s3,
                    retries={"max_attempts": self._retries, "mode": "standard"},
                    connect_timeout=self._connect_timeout,
                    # Ceph RGW before Reef does not know the CRC trailers newer botocore adds by default;
                    # and no CRC32 of every body either: see ``sign_payload`` for what guards the bytes.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    max_pool_connections=max(10, 2 * self.max_concurrency),
                )
                kwargs: dict[str, Any] = {"region_name": self.region, "config": config}
                if self.endpoint:
                    kwargs["endpoint_url"] = self.endpoint
                    if self.endpoint.startswith("http://"):
                        kwargs["verify"] = False  # no TLS; ignore AWS_CA_BUNDLE
                if self._access_key:
                    kwargs["aws_access_key_id"] = self._access_key
                    kwargs["aws_secret_access_key"] = self._secret_key
                stack = contextlib.AsyncExitStack()
                client = await stack.enter_async_context(get_session().create_client("s3", **kwargs))
                try:
                    if self._create_bucket:
                        await self._ensure_bucket(client)
                except BaseException:
                    await stack.aclose()
                    raise
                self._stack, self._cl = stack, client
        return self._cl

    async def _ensure_bucket(self, client: Any) -> None:
        try:
            await client.head_bucket(Bucket=self.bucket)
            return
        except Exception as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            await client.create_bucket(**kwargs)
        except Exception as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._cl = self._stack, None, None
            await stack.aclose()

    @staticmethod
    def _key(digest: str) -> str:
        return BLOB_PREFIX + _check_digest(digest)

    # ----- BlobBackend -----
    async def open_writer(self, hashing: bool = True) -> _S3Writer:
        await self._client()
        return _S3Writer(self, hashing)

    async def put_known(self, digest: str, data: bytes) -> None:
        """Store ``data`` whose digest the caller computed: one PutObject under the final name."""
        client = await self._client()
        await client.put_object(Bucket=self.bucket, Key=self._key(digest), Body=data)

    async def put_bytes(self, data: bytes) -> BlobRef:
        w = await self.open_writer()
        try:
            await w.write(data)
            return await w.commit()
        except BaseException:
            await w.abort()
            raise

    async def put_bytes_with(self, data: bytes, work: Callable[[bytes], T]) -> tuple[T, BlobRef]:
        # the work first (in a thread), then the upload on the loop: work that fails stores nothing,
        # and no thread waits on the network
        result = await asyncio.to_thread(work, data)
        return result, await self.put_bytes(data)

    async def put_file(self, path: Path, digest: str) -> BlobRef:
        return await copy_file_in(self, path, digest)

    def local_path(self, digest: str) -> Path | None:
        return None  # no local file: readers stream (``read``, ``windows``)

    async def _head(self, digest: str) -> dict | None:
        client = await self._client()
        try:
            return await client.head_object(Bucket=self.bucket, Key=self._key(digest))
        except Exception as exc:
            if _missing(exc):
                return None
            raise

    async def size(self, digest: str) -> int | None:
        head = await self._head(digest)
        return None if head is None else head["ContentLength"]

    async def last_modified(self, digest: str) -> float | None:
        head = await self._head(digest)
        return None if head is None else head["LastModified"].timestamp()

    async def _get(self, digest: str, start: int, end: int | None) -> Any:
        """The body of one GET of bytes [start, end) (None: nothing in that range)."""
        key = self._key(digest)
        client = await self._client()
        if end is not None and end <= start:
            if await self._head(digest) is None:
                raise BlobNotFound(digest)
            return None
        kwargs: dict[str, Any] = {}
        if start or end is not None:
            # RFC 9110 §14.1.2: last-pos is inclusive.
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            res = await client.get_object(Bucket=self.bucket, Key=key, **kwargs)
        except Exception as exc:
            if _missing(exc):
                raise BlobNotFound(digest) from None
            if _code(exc) == "InvalidRange":  # start at or past the end (RFC 9110 §15.5.17)
                if await self._head(digest) is None:
                    raise BlobNotFound(digest) from None
                return None
            raise
        return res["Body"]

    async def read(
        self, digest: str, start: int = 0, end: int | None = None, chunk: int = CHUNK
    ) -> AsyncGenerator[bytes, None]:
        """Yield bytes [start, end) in ``chunk``-sized pieces from one ranged GET; memory stays at a chunk."""
        body = await self._get(digest, start, end)
        if body is None:
            return
        try:
            buf = bytearray()
            while True:
                data = await body.read(chunk - len(buf))
                if not data:
                    break
                if not buf and len(data) == chunk:
                    yield data
                    continue
                buf += data
                if len(buf) >= chunk:
                    yield bytes(buf)
                    buf.clear()
            if buf:
                yield bytes(buf)
        finally:
            body.close()

    async def pieces(self, digest: str, start: int, end: int | None, most: int) -> AsyncGenerator[bytes, None]:
        """Bytes [start, end) from one ranged GET as they arrive: each piece is what the connection
        holds, at most ``most`` bytes (aiohttp buffers up to 2 × ``most`` before it stops reading
        the socket), with no re-chunking copy — for a reader that pays per piece (the storage
        network's ``windows``: a timer and a hash update per piece)."""
        body = await self._get(digest, start, end)
        if body is None:
            return
        try:
            while data := await body.read(most):
                yield data
        finally:
            body.close()

    async def windows(
        self, digest: str, start: int, end: int, window: int = WINDOW
    ) -> AsyncGenerator[bytes | memoryview, None]:
        """Bytes [start, end) from one ranged GET, in ``CHUNK`` pieces as they arrive (nothing to
        map: a bigger piece would only be a bigger buffer)."""
        pos = start
        async for data in self.read(digest, start, end):
            pos += len(data)
            yield data
        if pos < end:
            raise OSError(f"blob {digest} is shorter than its recorded size")

    async def delete(self, digest: str, *, older_than: float | None = None) -> bool:
        head = await self._head(digest)
        if head is None:
            return False
        if older_than is not None and head["LastModified"].timestamp() > older_than:
            return False
        client = await self._client()
        await client.delete_object(Bucket=self.bucket, Key=self._key(digest))
        return True

    async def presign(self, digest: str, ttl: int, disposition: str, media_type: str) -> str | None:
        """A presigned GET (SigV4 query string) answered with our Content-Disposition and type."""
        client = await self._client()
        params = {
            "Bucket": self.bucket,
            "Key": self._key(digest),
            "ResponseContentDisposition": disposition,
            "ResponseContentType": media_type,
        }
        return await client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl)

    async def list_digests(self) -> AsyncIterator[str]:
        async for obj in self._list(BLOB_PREFIX):
            name = obj["Key"][len(BLOB_PREFIX) :]
            if len(name) == 64 and all(c in "0123456789abcdef" for c in name):  # skip foreign keys
                yield name

    async def _list(self, prefix: str) -> AsyncIterator[dict]:
        client = await self._client()
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", ()):
                yield obj

    async def clean_tmp(self, older_than: float) -> int:
        """Abort multipart uploads and delete temp objects a crashed writer left behind."""
        client = await self._client()
        n = 0
        paginator = client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=TMP_PREFIX):
            for up in page.get("Uploads", ()):
                if up["Initiated"].timestamp() < older_than:
                    with contextlib.suppress(Exception):
                        await client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                        n += 1
        async for obj in self._list(TMP_PREFIX):
            if obj["LastModified"].timestamp() < older_than:
                await client.delete_object(Bucket=self.bucket, Key=obj["Key"])
                n += 1
        return n

    # ----- server-side copy -----
    async def _copy(self, src: str, dst: str, size: int) -> None:
        client = await self._client()
        source = {"Bucket": self.bucket, "Key": src}
        if size <= self.copy_limit:
            await client.copy_object(Bucket=self.bucket, Key=dst, CopySource=source, MetadataDirective="COPY")
            return
        part = max(self.copy_part_size, -(-size // MAX_PARTS))
        up = await client.create_multipart_upload(Bucket=self.bucket, Key=dst)
        upload_id = up["UploadId"]
        sem = asyncio.Semaphore(self.max_concurrency)

        async def one(n: int, first: int) -> dict:
            last = min(first + part, size) - 1
            async with sem:
                res = await client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dst,
                    UploadId=upload_id,
                    PartNumber=n,
                    CopySource=source,
                    CopySourceRange=f"bytes={first}-{last}",
                )
            return {"PartNumber": n, "ETag": res["CopyPartResult"]["ETag"]}

        parts: list[dict] = []
        try:
            async with asyncio.TaskGroup() as tg:  # a failed part cancels the others
                tasks = [tg.create_task(one(i + 1, off)) for i, off in enumerate(range(0, size, part))]
            parts = [t.result() for t in tasks]
            await client.complete_multipart_upload(
                Bucket=self.bucket, Key=dst, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(Bucket=self.bucket, Key=dst, UploadId=upload_id)
            raise


if TYPE_CHECKING:  # mypy checks that the backend satisfies the protocol
    _s3_is_a_backend: type[BlobBackend] = S3Backend

__all__ = ["S3Backend", "S3Error"]
