"""Shared fixtures: every store test runs on SQLite and on PostgreSQL (a throwaway database)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from suite.config import Settings
from suite.context import open_context
from suite.storage import db
from suite.testing import POSTGRES_ADMIN_DSN, missing, port_open

BACKENDS = ["sqlite", "postgres"]

# `suite serve` subprocesses that inherit this environment run one process, as before workers
# (tests/scale/test_workers.py asks for several; suite.testing.serve_env does the same).
os.environ.setdefault("SUITE_WORKERS", "1")


# Parallel runs (pytest-xdist; `make test` uses --dist loadfile): a test file is one unit of work, so its
# module-scoped servers start once and its tests never race each other. Files that share a fixed resource
# are one unit (run on one worker, one after the other) under a group name here. (xdist's own
# xdist_group mark does nothing on pytest 9.2: it rewrites item._nodeid, which pytest no longer reads.)
XDIST_GROUPS = {
    # Redis pub/sub channels ignore the db number: two clusters on 127.0.0.1:6379 would see each other's events
    "tests/storage/test_bus.py": "redis-bus",
    "tests/scale/test_topology.py": "redis-bus",
    "tests/scale/test_push_once.py": "redis-bus",
    "tests/mail/imap/test_revocation.py": "redis-bus",
}


# Units handed out first (xdist otherwise orders them by test count, which puts the few long tests that
# start servers, browsers and radosgw outages last, and one worker finishes alone): a prefix's rank.
LONG_FIRST = ("tests/storage/test_network.py", "redis-bus", "tests/e2e/", "tests/scale/", "tests/voip/", "tests/ops/")


def _rank(scope: str) -> int:
    return next((i for i, prefix in enumerate(LONG_FIRST) if scope.startswith(prefix)), len(LONG_FIRST))


@pytest.hookimpl(optionalhook=True)  # a run with `-p no:xdist` has no such hook
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByFileOrGroup(LoadScopeScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return XDIST_GROUPS.get(path, path)

        def _assign_work_unit(self, node) -> None:
            if not self.ordered:  # the queue is complete at the first assignment
                self.ordered = True
                for scope in sorted(self.workqueue, key=_rank):  # stable: test-count order within a rank
                    self.workqueue.move_to_end(scope)
            super()._assign_work_unit(node)

    return ByFileOrGroup(config, log)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_admin_sync(sql: str) -> None:
    # in a thread of its own: the first test to ask for pg_url may be an async one (getfixturevalue inside
    # a running loop, where asyncio.run refuses) — which one is first depends on how xdist shares out files
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _pg_admin(sql)).result()


@pytest.fixture(scope="session")
def pg_url():
    """One throwaway PostgreSQL database for the test session (each xdist worker has its own), dropped at the end."""
    name = f"suite_test_{secrets.token_hex(4)}"
    try:
        _pg_admin_sync(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        missing(f"PostgreSQL not reachable at {POSTGRES_ADMIN_DSN}: {exc.__class__.__name__}")
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    _pg_admin_sync(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_pg_migrated: set[str] = set()


async def _reset_pg(url: str) -> None:
    engine = db.make_engine(url)
    try:
        if url not in _pg_migrated:
            await db.migrate(engine)
            _pg_migrated.add(url)
        from sqlalchemy import text

        tables = [t.name for t in db.Base.metadata.sorted_tables]
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'suite.db'}"
    url = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    import suite.models  # noqa: F401

    return Settings(data_dir=tmp_path / "data", database_url=db_url, bus_backend="memory")


@pytest.fixture
async def ctx(settings: Settings):
    if settings.db_url.startswith("postgresql"):
        await _reset_pg(settings.db_url)
    else:
        engine = db.make_engine(settings.db_url)
        await db.migrate(engine)
        await engine.dispose()
    c = await open_context(settings)
    yield c
    await c.close()


ROOT = Path(__file__).resolve().parents[1]
START_CEPH = ROOT / "scripts" / "start-ceph.sh"
CEPH_KIT = ROOT / "scripts" / "ceph-s3.sh"


@pytest.fixture(scope="session")
def s3_server() -> dict:
    """A real S3 engine: Ceph RGW on 127.0.0.1 (started by scripts/start-ceph.sh when its port is closed;
    needs root, about a minute). ``SUITE_TEST_S3=http://host:port`` (+ ``S3_AK``/``S3_SK``) points elsewhere."""
    try:
        import aiobotocore  # noqa: F401
    except ImportError:
        missing("aiobotocore not installed (pip install aiobotocore)")
    ak = os.environ.get("S3_AK", "CEPHFILESACCESSKEY")
    sk = os.environ.get("S3_SK", "ceph-files-secret-key-123")
    endpoint = os.environ.get("SUITE_TEST_S3")
    if not endpoint:
        port = int(os.environ.get("RGW_PORT", "17480"))
        endpoint = f"http://127.0.0.1:{port}"
        if not port_open("127.0.0.1", port):
            if not CEPH_KIT.exists():
                missing(f"Ceph RGW not running on port {port} and {CEPH_KIT} is missing")
            if os.geteuid() != 0:
                missing(f"Ceph RGW not running on port {port}; starting it needs root")
            t0 = time.monotonic()
            proc = subprocess.run(["bash", str(START_CEPH)], check=False, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                pytest.fail(f"scripts/start-ceph.sh failed ({proc.returncode}): {proc.stderr[-2000:]}")
            print(f"Ceph RGW started in {time.monotonic() - t0:.0f}s")
    return {"endpoint": endpoint, "access_key": ak, "secret_key": sk}
