"""`suite domain add` (DKIM keys), `suite dns`, `suite queue list|retry|delete` as a person runs them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from sqlalchemy import select

from suite.mail.queue import dkim
from suite.mail.queue.models import QueuedRecipient
from suite.mail.queue.queue import enqueue, list_queue
from suite.testing import serve_env


async def suite(settings, *args: str) -> tuple[int, str, str]:
    env = serve_env()
    env.update(
        SUITE_DATA_DIR=str(settings.data_dir),
        SUITE_DATABASE_URL=settings.db_url,
        SUITE_BUS_BACKEND="memory",
        SUITE_HOSTNAME="mail.example.org",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "suite.cli", *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_domain_add_makes_both_dkim_keys_and_dns_prints_them(ctx, settings):
    rc, out, err = await suite(settings, "domain", "add", "example.org")
    assert rc == 0, err
    keys = await dkim.domain_keys(ctx, "example.org")
    assert sorted((k.algorithm, k.selector) for k in keys) == [("ed25519", "suite-ed"), ("rsa", "suite-rsa")]

    rc, out, err = await suite(settings, "dns", "example.org")
    assert rc == 0, err
    lines = out.splitlines()

    def has(name: str, rdtype: str, fragment: str) -> bool:
        return any(l.split()[0] == name and f" {rdtype} " in l and fragment in l for l in lines if l and l[0] != ";")

    assert has("example.org.", "MX", "10 mail.example.org.")
    assert has("example.org.", "TXT", "v=spf1 mx -all")
    for key in keys:
        # The published key is the one we sign with (long RSA values are split into 255-octet strings).
        joined = next(l for l in lines if l.startswith(key.dns_name() + "."))
        text = "".join(part for i, part in enumerate(joined.split('"')) if i % 2 == 1)
        assert text == key.dns_txt()
    assert has("_dmarc.example.org.", "TXT", "v=DMARC1; p=quarantine")
    assert has("autoconfig.example.org.", "CNAME", "mail.example.org.")
    assert has("autodiscover.example.org.", "CNAME", "mail.example.org.")
    assert has("_imaps._tcp.example.org.", "SRV", "0 1 993 mail.example.org.")
    assert has("_submission._tcp.example.org.", "SRV", "0 1 587 mail.example.org.")
    assert has("_submissions._tcp.example.org.", "SRV", "0 1 465 mail.example.org.")


async def test_dns_for_an_unknown_domain_is_one_line(ctx, settings):
    rc, _, err = await suite(settings, "dns", "nowhere.example")
    assert rc == 1 and err.count("\n") == 1 and "unknown domain" in err


async def test_queue_list_retry_delete(ctx, settings):
    ref = await ctx.blobs.put(b"Subject: queued\r\n\r\nx\r\n")
    mid = await enqueue(ctx, mail_from="alice@example.org", recipients=["a@far.test", "b@far.test"], blob=ref)
    later = time.time() + 3600
    async with ctx.sessions.begin() as s:
        for r in await s.scalars(select(QueuedRecipient)):
            r.next_attempt_at, r.attempts, r.last_reply = later, 2, "451 4.4.2 connection refused"
    rc, out, err = await suite(settings, "queue", "list")
    assert rc == 0, err
    assert f"{mid}\t" in out and "from <alice@example.org>" in out
    assert "<a@far.test>\tqueued, 2 attempt(s), next try in" in out and "451 4.4.2" in out

    rc, out, _ = await suite(settings, "queue", "retry", str(mid))
    assert rc == 0 and "2 recipient(s) due now" in out
    [entry] = await list_queue(ctx)
    assert all(r.next_attempt_at <= time.time() for r in entry.recipients)

    rc, out, err = await suite(settings, "queue", "delete", str(mid))
    assert rc == 0, err
    assert await list_queue(ctx) == []
    assert await ctx.blobs.refcount(ref.digest) == 0  # the queue's reference is gone

    rc, out, err = await suite(settings, "queue", "delete", str(mid))
    assert rc == 1 and f"no queued message {mid}" in err
