"""Shared helpers for the voip tests."""

from __future__ import annotations

import os
import shutil

import pytest


def _require_tool(name: str) -> str:
    """Path of an external tool; skip when missing, fail if SUITE_REQUIRE_ALL=1."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (apt-get install coturn provides it)"
        if os.environ.get("SUITE_REQUIRE_ALL") == "1":
            pytest.fail(f"SUITE_REQUIRE_ALL=1 but {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture
def require_tool():  # type: ignore[no-untyped-def]
    """Fixture form of :func:`_require_tool` (test modules import no conftest)."""
    return _require_tool
