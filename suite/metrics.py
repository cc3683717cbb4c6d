"""Prometheus metrics of one process: one ``CollectorRegistry`` per ``Metrics`` object, owned by the
``Context`` (``ctx.metrics``), so two contexts in one test process never share counters and no
module keeps mutable state.

Services move the counters where the thing happens (a login, a delivery, an upload); gauges that
mirror in-process state (open connections, calls) read it at scrape time through ``set_function``;
figures that live in the shared database (queue depth, bytes stored) are read by ``refresh`` just
before a scrape. The text is served on the gateway's ``/metrics`` and, for processes without the
gateway, on ``metrics_port`` (:class:`MetricsServer`, off by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Enum, Gauge, Histogram, generate_latest
from sqlalchemy import text

if TYPE_CHECKING:
    from suite.context import Context

log = structlog.get_logger("suite.metrics")

# Request latencies from a millisecond (a cached FETCH) to a minute (a large upload).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


# Per storage-network provider, read at scrape time (``ops.status``): name suffix → help text.
PROVIDER_GAUGES = {
    "up": "1 when the provider answers a HeadBucket",
    "probe_seconds": "HeadBucket round trip at the last scrape",
    "read_latency_seconds": "Smoothed time to first byte of reads",
    "write_latency_seconds": "Smoothed time to put a small blob",
    "objects": "Good copies on the provider",
    "bytes": "Bytes of good copies on the provider",
    "bad_copies": "Copies marked bad on the provider",
}


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.connections = Gauge("suite_connections", "Open client connections", ["service"], registry=r)
        self.logins = Counter("suite_logins", "Login attempts", ["protocol", "outcome"], registry=r)
        self.messages_in = Counter("suite_messages_received", "Messages stored into mailboxes", ["via"], registry=r)
        self.messages_out = Counter(
            "suite_messages_sent", "Outbound delivery attempts per recipient", ["result"], registry=r
        )
        self.queue_depth = Gauge("suite_queue_depth", "Recipients waiting in the outbound queue", registry=r)
        self.bytes_stored = Gauge("suite_blob_bytes_stored", "Bytes in the blob store (referenced blobs)", registry=r)
        self.blobs_stored = Gauge("suite_blobs_stored", "Blobs in the blob store", registry=r)
        self.uploads = Counter("suite_uploads", "Completed file uploads", ["via"], registry=r)
        self.upload_bytes = Counter("suite_upload_bytes", "Bytes of completed file uploads", ["via"], registry=r)
        self.active_calls = Gauge("suite_active_calls", "Calls ringing or connected", registry=r)
        self.http_latency = Histogram(
            "suite_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.imap_latency = Histogram(
            "suite_imap_command_duration_seconds",
            "IMAP command latency by command",
            ["command"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # the storage network (``blob_backend = "network"``): the figures ``suite storage status`` prints
        p = ["provider"]
        self.storage_state = Enum(
            "suite_storage_provider_state", "Provider state", p, states=["active", "draining", "read-only"], registry=r
        )
        self.storage_provider = {
            key: Gauge(f"suite_storage_provider_{key}", doc, p, registry=r) for key, doc in PROVIDER_GAUGES.items()
        }
        self.storage_under = Gauge(
            "suite_storage_under_replicated_blobs", "Referenced blobs with fewer good copies than replicas", registry=r
        )
        self.storage_queue = Gauge("suite_storage_repair_queue", "Blobs queued for repair or rebalance", registry=r)
        self.storage_work_done = Counter(
            "suite_storage_work",
            "Repair loop work in this process: repair ok/failed, repair_bytes copied, scrub ok/bad",
            ["what", "outcome"],
            registry=r,
        )

    # ------------------------------------------------------------------ hooks for the services
    def login(self, protocol: str, ok: bool) -> None:
        self.logins.labels(protocol, "ok" if ok else "failed").inc()

    def watch_connections(self, service: str, count: Callable[[], int]) -> None:
        """The ``suite_connections{service=…}`` gauge reads ``count()`` at scrape time."""
        self.connections.labels(service).set_function(lambda: float(count()))

    def storage_work(self, what: str, outcome: str, n: int = 1) -> None:
        self.storage_work_done.labels(what, outcome).inc(n)

    def upload(self, via: str, size: int) -> None:
        self.uploads.labels(via).inc()
        self.upload_bytes.labels(via).inc(size)

    # ------------------------------------------------------------------ scrape
    async def refresh(self, ctx: Context) -> None:
        """Read the figures that live in the shared database (cluster-wide: every process reports
        the same values; a dashboard takes ``max``). A database that is down leaves the last values."""
        try:
            async with ctx.engine.connect() as conn:
                depth = await conn.scalar(text("SELECT count(*) FROM queue_recipients WHERE status = 'queued'"))
                row = (await conn.execute(text("SELECT count(*), coalesce(sum(size), 0) FROM blobs"))).one()
        except Exception as exc:
            log.warning("metrics.refresh_failed", error=str(exc))
            return
        self.queue_depth.set(depth or 0)
        self.blobs_stored.set(row[0] or 0)
        self.bytes_stored.set(row[1] or 0)
        hub = ctx.call_hub
        self.active_calls.set(len(hub.switch.calls()) if hub is not None else 0)
        if ctx.network is not None:
            await self._refresh_storage(ctx)

    async def _refresh_storage(self, ctx: Context) -> None:
        from suite.storage.network import ops

        assert ctx.network is not None
        try:
            rows, totals = await ops.status(ctx.network)
        except Exception as exc:
            log.warning("metrics.storage_refresh_failed", error=str(exc))
            return
        self.storage_state.clear()  # a provider removed by a reload leaves no stale series
        for g in self.storage_provider.values():
            g.clear()
        for row in rows:
            self.storage_state.labels(row.name).state(row.state)
            values = {
                "up": 1 if row.health == "ok" else 0,
                "probe_seconds": row.latency,
                "read_latency_seconds": row.read_latency,
                "write_latency_seconds": row.write_latency,
                "objects": row.objects,
                "bytes": row.bytes,
                "bad_copies": row.bad,
            }
            for key, v in values.items():
                if v is not None:
                    self.storage_provider[key].labels(row.name).set(v)
        self.storage_under.set(totals["under_replicated"])
        self.storage_queue.set(totals["repair_queue"])

    def render(self) -> bytes:
        return generate_latest(self.registry)


CONTENT_TYPE = CONTENT_TYPE_LATEST


async def readiness(ctx: Context) -> dict[str, str]:
    """What ``/readyz`` reports: each dependency "ok" or "down"."""
    out: dict[str, str] = {}
    try:
        async with asyncio.timeout(5):
            async with ctx.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        out["database"] = "ok"
    except Exception:
        out["database"] = "down"
    try:
        async with asyncio.timeout(5):
            await ctx.blobs.backend.size("0" * 64)  # a HEAD / stat of a digest that is never stored
        out["blobs"] = "ok"
    except Exception:
        out["blobs"] = "down"
    try:
        async with asyncio.timeout(5):
            await ctx.bus.ping()
        out["bus"] = "ok"
    except Exception:
        out["bus"] = "down"
    return out


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``metrics_port`` for processes without the
    gateway: a minimal HTTP/1.1 responder (GET only, one request per connection, bounded read)."""

    MAX_REQUEST = 8192

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._server: asyncio.AbstractServer | None = None
        self.port: int | None = None

    async def start(self) -> None:
        st = self.ctx.settings
        try:
            self._server = await asyncio.start_server(
                self._handle, st.listen_host, st.metrics_port, reuse_port=st.reuse_port or None
            )
        except OSError as exc:
            raise OSError(f"metrics cannot listen on {st.listen_host}:{st.metrics_port}: {exc.strerror}") from None
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            status, ctype, body = await self._answer(head)
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            status, ctype, body = "400 Bad Request", "text/plain", b"bad request\n"
        try:
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, head: bytes) -> tuple[str, str, bytes]:
        if len(head) > self.MAX_REQUEST:
            return "431 Request Header Fields Too Large", "text/plain", b"request too large\n"
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or parts[0] != b"GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        path = parts[1].split(b"?", 1)[0]
        if path == b"/metrics":
            started = time.perf_counter()
            await self.ctx.metrics.refresh(self.ctx)
            body = self.ctx.metrics.render()
            log.debug("metrics.scrape", ms=round((time.perf_counter() - started) * 1000, 1))
            return "200 OK", CONTENT_TYPE, body
        if path == b"/healthz":
            return "200 OK", "application/json", b'{"status": "ok"}'
        if path == b"/readyz":
            import json

            checks = await readiness(self.ctx)
            ok = all(v == "ok" for v in checks.values())
            body = json.dumps({"status": "ok" if ok else "down", **checks}).encode()
            return ("200 OK" if ok else "503 Service Unavailable"), "application/json", body
        return "404 Not Found", "text/plain", b"not found\n"
