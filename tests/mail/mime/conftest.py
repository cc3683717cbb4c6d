"""Corpus location and the skip-or-fail rule for missing external data."""

from __future__ import annotations

import os

import pytest


def require(what: bool, reason: str) -> None:
    """Skip with a reason, or fail when SUITE_REQUIRE_ALL=1."""
    if what:
        return
    if os.environ.get("SUITE_REQUIRE_ALL") == "1":
        pytest.fail(reason)
    pytest.skip(reason)
