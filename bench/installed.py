"""The project's installed ``suite``, as the benches run it — never a path inside the repository.

In order: ``$SUITE_BIN``; the ``suite`` script beside the interpreter running the bench (its virtualenv or
prefix, where ``pip install`` put it); the ``suite`` on ``PATH``; else ``<this python> -m suite.cli``.
The Python that runs it (for the benches' helper processes that import ``suite``) is the script's own
interpreter, read from its ``#!`` line.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def suite_bin() -> Path | None:
    """The installed ``suite`` console script, or None when there is none."""
    explicit = os.environ.get("SUITE_BIN")
    if explicit:
        return Path(explicit)
    beside = Path(sys.executable).parent / "suite"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("suite")
    return Path(found) if found else None


def suite_command(explicit: str | os.PathLike[str] | None = None) -> list[str]:
    """The argv prefix that runs the CLI: ``[script]`` or ``[python, "-m", "suite.cli"]``."""
    found = Path(explicit) if explicit else suite_bin()
    return [str(found)] if found is not None else [sys.executable, "-m", "suite.cli"]


def suite_python(explicit: str | os.PathLike[str] | None = None) -> str:
    """The interpreter of the installed ``suite`` (its ``#!`` line), else this one."""
    found = Path(explicit) if explicit else suite_bin()
    if found is not None:
        try:
            with open(found, "rb") as f:
                first = f.readline(4096)
        except OSError:
            return sys.executable
        if first.startswith(b"#!"):
            parts = first[2:].decode(errors="replace").split()
            if parts and Path(parts[0]).name.startswith("python") and os.access(parts[0], os.X_OK):
                return parts[0]
    return sys.executable
