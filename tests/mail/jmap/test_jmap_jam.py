"""jmap-jam (npm, a third-party JMAP client) from a node script against the gateway (issue #13
Tests): Bearer auth with an app password of scope jmap, Mailbox/get, Email/query + Email/get by
result reference, Email/set."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

from suite.testing import missing
from tests.mail.jmap.conftest import message

NODE_DIR = Path(__file__).parent / "node"


def _ensure_jam() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        missing("node and npm are needed for the jmap-jam client test")
    if not (NODE_DIR / "node_modules" / "jmap-jam").exists():
        r = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300
        )
        if r.returncode != 0:
            missing(f"npm ci for jmap-jam failed: {r.stderr[-500:]}")
    return node


async def test_jmap_jam(base_url, ctx, store, accounts):
    node = _ensure_jam()
    await store.deliver(accounts[0].id, "INBOX", message("Hello from jam", msgid="jam@x"))
    _, token = await ctx.accounts.add_app_password("alice@example.test", "jam", ["jmap"])
    proc = await asyncio.create_subprocess_exec(
        node,
        "drive.mjs",
        f"{base_url}/.well-known/jmap",
        token,
        cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["inbox"] == "INBOX" and seen["total"] == 1
    assert seen["subjects"] == ["Hello from jam"]
    assert len(seen["updated"]) == 1 and seen["keywords"] == {"$flagged": True}


async def test_bearer_token_rules(base_url, ctx):
    import httpx

    _, dav = await ctx.accounts.add_app_password("alice@example.test", "dav", ["dav"])
    async with httpx.AsyncClient(base_url=base_url) as http:
        r = await http.get("/.well-known/jmap", headers={"Authorization": f"Bearer {dav}"})
        assert r.status_code == 401  # an app password of another scope
        r = await http.get("/.well-known/jmap", headers={"Authorization": "Bearer not-a-token"})
        assert r.status_code == 401
