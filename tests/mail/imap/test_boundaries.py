"""The IMAP side's boundaries (issue 11): the session talks to the mail store through its port and
never sees a database driver; no module of suite/mail/imap keeps a process-wide cache."""

from __future__ import annotations

import ast
from pathlib import Path

import suite.mail.imap as imap_pkg

IMAP = Path(imap_pkg.__file__).parent
DRIVERS = ("asyncpg", "sqlite3", "aiosqlite", "sqlalchemy", "psycopg")


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out += [f"{node.module or ''}.{a.name}" for a in node.names]
    return out


def test_no_database_driver_in_imap():
    for path in IMAP.rglob("*.py"):
        bad = [m for m in _imports(path) if m.split(".")[0] in DRIVERS or m.startswith("suite.storage.db")]
        assert not bad, (path.name, bad)


def test_session_uses_the_port_not_the_concrete_store():
    names = _imports(IMAP / "session.py")
    assert "suite.mail.store.MailStore" not in names
    assert ".ports.MailStorePort" in names or "ports.MailStorePort" in {n.lstrip(".") for n in names}


_MUTATORS = {"append", "add", "update", "setdefault", "pop", "popitem", "clear", "extend", "insert", "remove"}


def test_no_module_level_mutable_caches():
    """No function changes a module-level container (a cache or registry shared by the process)."""
    for path in IMAP.rglob("*.py"):
        _check_module(path)


def _check_module(path: Path) -> None:
    tree = ast.parse(path.read_text())
    module_names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            module_names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            module_names.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decos = [ast.unparse(d) for d in node.decorator_list]
            assert not any("cache" in d for d in decos), (path.name, node.name, decos)
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        local = {a.arg for a in fn.args.args + fn.args.kwonlyargs} | {
            n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        for node in ast.walk(fn):
            if isinstance(node, ast.Global):
                raise AssertionError((path.name, fn.name, "global", node.names))
            target = None
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                for tg in node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]:
                    if isinstance(tg, ast.Subscript) and isinstance(tg.value, ast.Name):
                        target = tg.value.id
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in _MUTATORS and isinstance(node.func.value, ast.Name):
                    target = node.func.value.id
            assert target is None or target not in module_names or target in local, (path.name, fn.name, target)
