"""External IMAP clients against the real server: curl, mbsync (isync) and offlineimap.

Each test skips when the tool is missing (Debian packages curl, isync, offlineimap3) unless
SUITE_REQUIRE_ALL=1, where it fails instead.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import MSG, PASSWORD

from suite.testing import require_tool

USER = "alice@example.test"


async def run(*args: str, cwd: Path | None = None, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env={**os.environ, "HOME": str(cwd or Path.cwd())},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _msg(subject: str, body: str = "Body text") -> bytes:
    return (
        f"From: Bob <bob@example.test>\r\nTo: {USER}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.test>\r\n"
        f"Date: Mon, 02 Jan 2023 10:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()


# --------------------------------------------------------------------------- curl
async def test_curl_list_fetch_append_search(server, store, accounts, tmp_path):
    curl = require_tool("curl")
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", MSG)
    base = f"imap://127.0.0.1:{server.port}"
    auth = ["--user", f"{USER}:{PASSWORD}", "-s", "-S"]
    rc, out, err = await run(curl, *auth, f"{base}/")
    assert rc == 0, err
    assert '* LIST (\\HasNoChildren) "/" "INBOX"' in out and '\\Sent) "/" "Sent"' in out
    rc, out, err = await run(curl, *auth, f"{base}/INBOX;UID=1")
    assert rc == 0, err
    assert out.encode() == MSG
    upload = tmp_path / "up.eml"
    upload.write_bytes(_msg("Uploaded by curl"))
    rc, out, err = await run(curl, *auth, "-T", str(upload), f"{base}/Archive")
    assert rc == 0, err
    archive = await store.get_mailbox(alice.id, "Archive")
    msgs = await store.messages(archive.id)
    assert len(msgs) == 1 and await store.raw(msgs[0].blob) == upload.read_bytes()
    rc, out, err = await run(curl, *auth, f"{base}/Archive", "-X", "UID SEARCH SUBJECT curl")
    assert rc == 0, err
    assert out.strip() == "* SEARCH 1"
    rc, out, err = await run(curl, *auth, f"{base}/Archive", "-X", "UID SEARCH SUBJECT nothing-like-this")
    assert rc == 0 and out.strip() == "* SEARCH"
    rc, out, err = await run(curl, "--user", f"{USER}:wrong", "-s", f"{base}/")
    assert rc != 0  # login refused


# --------------------------------------------------------------------------- mbsync
def _maildir_files(root: Path, box: str) -> dict[str, Path]:
    """Message-ID → file of a Maildir folder (new and cur)."""
    out = {}
    for sub in ("cur", "new"):
        d = root / box / sub
        if d.is_dir():
            for f in d.iterdir():
                for line in f.read_bytes().split(b"\r\n" if b"\r\n" in f.read_bytes() else b"\n"):
                    if line.lower().startswith(b"message-id:"):
                        out[line.split(b":", 1)[1].strip().decode()] = f
                        break
    return out


def _flags(f: Path) -> str:
    return f.name.rsplit(":2,", 1)[1] if ":2," in f.name else ""


async def test_mbsync_two_way_sync(server, store, accounts, tmp_path):
    mbsync = require_tool("mbsync", "isync")
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", _msg("one"))
    await store.deliver(alice.id, "INBOX", _msg("two"), flags=["\\Seen"])
    await store.create_mailbox(alice.id, "Work")
    await store.deliver(alice.id, "Work", _msg("work one"))
    maildir = tmp_path / "Mail"
    maildir.mkdir()
    conf = tmp_path / "mbsyncrc"
    conf.write_text(f"""
IMAPAccount suite
Host 127.0.0.1
Port {server.port}
User {USER}
Pass "{PASSWORD}"
SSLType None
AuthMechs PLAIN LOGIN

IMAPStore remote
Account suite

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel suite
Far :remote:
Near :local:
Patterns INBOX Work
Create Both
Expunge Both
SyncState *
""")
    rc, out, err = await run(mbsync, "-c", str(conf), "-a", cwd=tmp_path)
    assert rc == 0, out + err
    inbox = _maildir_files(maildir, "INBOX")
    assert set(inbox) == {"<one@example.test>", "<two@example.test>"}
    assert _flags(inbox["<two@example.test>"]) == "S" and _flags(inbox["<one@example.test>"]) == ""
    assert set(_maildir_files(maildir, "Work")) == {"<work.one@example.test>"}

    # local changes: read "one", delete "two", a new message in Work
    f = inbox["<one@example.test>"]
    f.rename(f.parent.parent / "cur" / (f.name.split(":2,")[0] + ":2,S"))
    inbox["<two@example.test>"].unlink()
    (maildir / "Work" / "new" / "1700000000.local.host").write_bytes(_msg("made locally").replace(b"\r\n", b"\n"))
    # server changes: flag "work one", a new message in INBOX
    work = await store.get_mailbox(alice.id, "Work")
    await store.store_flags(alice.id, work.id, [1], "add", ["\\Flagged"])
    await store.deliver(alice.id, "INBOX", _msg("three"))

    rc, out, err = await run(mbsync, "-c", str(conf), "-a", cwd=tmp_path)
    assert rc == 0, out + err
    inbox_mb = await store.get_mailbox(alice.id, "INBOX")
    server_inbox = {m.uid: m for m in await store.messages(inbox_mb.id)}
    assert sorted(server_inbox) == [1, 3]  # "two" deleted locally → expunged on the server
    assert "\\Seen" in server_inbox[1].flags
    server_work = await store.messages(work.id)
    assert len(server_work) == 2
    raws = [await store.raw(m.blob) for m in server_work]
    assert any(b"Subject: made locally" in r for r in raws)
    local_inbox = _maildir_files(maildir, "INBOX")
    assert set(local_inbox) == {"<one@example.test>", "<three@example.test>"}
    assert "F" in _flags(_maildir_files(maildir, "Work")["<work.one@example.test>"])

    # a third sync changes nothing
    rc, out, err = await run(mbsync, "-c", str(conf), "-a", cwd=tmp_path)
    assert rc == 0, out + err
    assert sorted(m.uid for m in await store.messages(inbox_mb.id)) == [1, 3]


# --------------------------------------------------------------------------- offlineimap
async def test_offlineimap_sync(server, store, accounts, tmp_path):
    offlineimap = require_tool("offlineimap", "offlineimap3")
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", _msg("first"))
    await store.deliver(alice.id, "Sent", _msg("sent one"), flags=["\\Seen"])
    local = tmp_path / "Mail"
    conf = tmp_path / "offlineimaprc"
    conf.write_text(f"""
[general]
accounts = suite
metadata = {tmp_path}/meta
ui = basic

[Account suite]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {local}

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {server.port}
remoteuser = {USER}
remotepass = {PASSWORD}
ssl = no
starttls = no
folderfilter = lambda name: name in ["INBOX", "Sent"]
""")
    rc, out, err = await run(offlineimap, "-c", str(conf), "-o", "-u", "basic", cwd=tmp_path, timeout=120)
    assert rc == 0, out + err
    assert set(_maildir_files(local, "INBOX")) == {"<first@example.test>"}
    sent = _maildir_files(local, "Sent")
    assert set(sent) == {"<sent.one@example.test>"} and "S" in _flags(sent["<sent.one@example.test>"])
    # local: mark "first" as flagged+seen; sync back
    f = _maildir_files(local, "INBOX")["<first@example.test>"]
    base = f.name.split(":2,")[0]
    f.rename(f.parent.parent / "cur" / (base + ":2,FS"))
    rc, out, err = await run(offlineimap, "-c", str(conf), "-o", "-u", "basic", cwd=tmp_path, timeout=120)
    assert rc == 0, out + err
    inbox = await store.get_mailbox(alice.id, "INBOX")
    (m,) = await store.messages(inbox.id)
    assert {"\\Seen", "\\Flagged"} <= set(m.flags)
