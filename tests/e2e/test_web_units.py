"""The web app's pure modules (search syntax, address fields, formats) under node's test runner."""

from __future__ import annotations

import subprocess
from pathlib import Path

from suite.testing import require_tool

WEB = Path(__file__).resolve().parents[2] / "web"


def test_node_unit_tests():
    node = require_tool("node", "nodejs")
    r = subprocess.run([node, "--test", "test/"], cwd=WEB, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "# fail 0" in r.stdout and "# pass 0" not in r.stdout, r.stdout[-1000:]
