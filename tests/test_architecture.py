"""Rules of docs/ARCHITECTURE.md that a reader checks by reading the code, checked by reading it:
one storage boundary (quota and blob counts only through the account and blob stores), no caller
asking which blob backend it has, and nothing shared by services outside ``Context``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[1] / "suite"


def _sources(*exclude: str) -> list[Path]:
    return [p for p in sorted(SUITE.rglob("*.py")) if not any(p.is_relative_to(SUITE / e) for e in exclude)]


# SQL that moves quota or blob counts: only the account store and the blob store write these columns.
QUOTA_OR_REFCOUNT_SQL = re.compile(
    r"UPDATE\s+accounts\b|used_bytes\s*=|UPDATE\s+blobs\b|INSERT\s+INTO\s+blobs\b|DELETE\s+FROM\s+blobs\b|refcount\s*=",
    re.IGNORECASE,
)


def test_quota_and_blob_counts_move_only_through_their_stores():
    offenders = []
    for path in _sources("accounts", "storage"):
        text = path.read_text()
        for m in QUOTA_OR_REFCOUNT_SQL.finditer(text):
            offenders.append(f"{path.relative_to(SUITE)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}")
        tree = ast.parse(text)
        for node in ast.walk(tree):  # ORM updates of the same columns
            if isinstance(node, ast.keyword) and node.arg in ("used_bytes", "refcount"):
                offenders.append(f"{path.relative_to(SUITE)}:{node.lineno}: {node.arg}=")
    assert offenders == [], "use AccountStore.charge / BlobStore.ref, unref, ref_many, unref_many"


# Files that use the blob store: none of them may know the backends' classes or probe for methods.
BLOB_CALLERS = [
    "mail/store/store.py",
    "storage/blobs.py",
    "gateway/dav.py",
    "context.py",
    *[str(p.relative_to(SUITE)) for p in sorted((SUITE / "gateway" / "files").glob("*.py"))],
    *[str(p.relative_to(SUITE)) for p in sorted((SUITE / "files").glob("*.py"))],
]


@pytest.mark.parametrize("name", BLOB_CALLERS)
def test_no_branching_on_the_blob_backend(name):
    text = (SUITE / name).read_text()
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = [ast.unparse(a) for a in node.args]
            if node.func.id == "isinstance":
                assert not re.search(r"Backend\b", args[1]), f"{name}:{node.lineno}: isinstance on a backend class"
            if node.func.id in ("hasattr", "getattr"):
                assert "backend" not in args[0], f"{name}:{node.lineno}: {node.func.id} probing a backend"
    if name != "storage/blobs.py":  # where the backends are defined and chosen (make_backend)
        assert "DiskBackend" not in text and "S3Backend" not in text, f"{name} names a backend class"


def test_services_share_only_what_context_declares():
    from dataclasses import fields

    from suite.context import Context

    declared = {f.name for f in fields(Context)}
    for path in _sources():
        text = path.read_text()
        assert not re.search(r"\bctx\._\w+\s*=[^=]", text), f"{path.relative_to(SUITE)} sets a private ctx attribute"
        if re.search(r"\bctx\s*=\s*ssl\.", text):
            continue  # there ``ctx`` is an SSLContext
        for m in re.finditer(r"\bctx\.(\w+)\s*=[^=]", text):
            assert m.group(1) in declared, f"{path.relative_to(SUITE)}: ctx.{m.group(1)} is not a Context field"
        assert not re.search(r"getattr\(\s*(self\.)?ctx\b", text), f"{path.relative_to(SUITE)} probes the context"
        assert not re.search(r"\bid\(\s*(self\.)?ctx\s*\)", text), f"{path.relative_to(SUITE)} keys state by id(ctx)"
