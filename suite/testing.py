"""Helpers for Suite's own tests (and anyone driving a Suite server from tests), like aiosmtpd.testing.

``require_tool`` skips a test when an external tool is missing — unless ``SUITE_REQUIRE_ALL=1`` (CI),
where a missing tool fails the test instead of hiding it.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

#: Fixtures that tests read (the mail corpus, …) live in the repository under tests/data/.
TEST_DATA = Path(os.environ.get("SUITE_TEST_DATA", Path(__file__).resolve().parents[1] / "tests" / "data"))
MAIL_CORPUS = TEST_DATA / "mail"

POSTGRES_ADMIN_DSN = os.environ.get("SUITE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def require_all() -> bool:
    return os.environ.get("SUITE_REQUIRE_ALL") == "1"


def missing(reason: str) -> None:
    """Skip locally; fail in CI (SUITE_REQUIRE_ALL=1)."""
    if require_all():
        pytest.fail(f"required in CI but missing: {reason}")
    pytest.skip(reason)


def require_tool(name: str, package: str | None = None) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not installed (Debian package {package or name})")
    return path  # type: ignore[return-value]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0
