"""Backup while the services run, wipe, restore into a new data dir (SQLite + disk) and into
PostgreSQL + S3: every message's UID, flags, internal date and bytes and every file's checksum come
back. Real clients: smtplib delivers while the backup runs, imaplib sets flags and reads back, tuspy
uploads, httpx downloads; the export's mbox files are read by Python's ``mailbox`` module."""

from __future__ import annotations

import base64
import hashlib
import imaplib
import mailbox
import os
import re
import secrets
import shutil
import smtplib
import sys
import threading
import zipfile
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from cluster import PASSWORD, Cluster, reset_postgres

ALICE = "alice@example.test"


def _mail(i: int) -> bytes:
    m = EmailMessage()
    m["From"] = "bob@remote.test"
    m["To"] = ALICE
    m["Subject"] = f"message {i}"
    m.set_content(f"body {i}\n" + "x" * (i * 37 % 500) + "\n")
    return m.as_bytes(policy=policy.SMTP)


def mail_state(port: int) -> dict[str, dict[int, tuple]]:
    """mailbox → uid → (flags, internaldate, sha256 of the bytes), as imaplib sees them."""
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    imap.login(ALICE, PASSWORD)
    out: dict[str, dict[int, tuple]] = {}
    typ, boxes = imap.list()
    assert typ == "OK"
    for line in boxes:
        name = line.decode().rsplit(' "/" ', 1)[1].strip('"')
        if imap.select(f'"{name}"', readonly=True)[0] != "OK":
            continue
        typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        msgs: dict[int, tuple] = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            head = item[0].decode()
            uid = int(re.search(r"UID (\d+)", head).group(1))
            # \Recent is per session (RFC 3501 §2.3.2), not stored state
            flags = tuple(sorted(set(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()) - {"\\Recent"}))
            when = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
            msgs[uid] = (flags, when, hashlib.sha256(item[1]).hexdigest())
        out[name] = msgs
    imap.logout()
    return out


def file_state(http: str, basic: str, names: list[str]) -> dict[str, str]:
    out = {}
    for n in names:
        r = httpx.get(f"{http}/api/files/content/{n}", headers={"Authorization": f"Basic {basic}"}, timeout=30)
        assert r.status_code == 200, (n, r.status_code)
        out[n] = hashlib.sha256(r.content).hexdigest()
    return out


def _populate(c: Cluster, proc, tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    from tusclient import client as tus_client

    with smtplib.SMTP("127.0.0.1", proc.ports["smtp_port"], timeout=30) as s:
        for i in range(12):
            s.sendmail("bob@remote.test", [ALICE], _mail(i))
    imap = imaplib.IMAP4("127.0.0.1", proc.ports["imap_port"], timeout=30)
    imap.login(ALICE, PASSWORD)
    imap.create("Archive/2025")
    imap.append("Archive/2025", r"(\Seen $Important)", imaplib.Time2Internaldate(1_500_000_000), _mail(99))
    imap.select("INBOX")
    assert imap.uid("STORE", "2:5", "+FLAGS", r"(\Flagged \Seen)")[0] == "OK"
    assert imap.uid("STORE", "7", "+FLAGS", r"($Label1 \Answered)")[0] == "OK"
    imap.logout()

    secret = c.app_password(ALICE)
    basic = base64.b64encode(f"{ALICE}:{secret}".encode()).decode()
    http = f"http://127.0.0.1:{proc.ports['http_port']}"
    files = {"docs/report.bin": os.urandom(700_000), "photo.jpg": os.urandom(50_000), "empty.txt": b""}
    for name, data in files.items():
        src = tmp_path / name.replace("/", "_")
        src.write_bytes(data)
        folder, _, base = name.rpartition("/")
        meta = {"filename": base} | ({"folder": "/" + folder} if folder else {})
        if data:
            tus_client.TusClient(f"{http}/api/tus/", headers={"Authorization": f"Basic {basic}"}).uploader(
                file_path=str(src), chunk_size=256 * 1024, metadata=meta
            ).upload()
        else:
            r = httpx.put(f"{http}/api/files/content/{name}", content=b"", headers={"Authorization": f"Basic {basic}"})
            assert r.status_code in (200, 201, 204), r.text
    return basic, files


def test_backup_while_running_then_restore_sqlite_and_postgres_s3(tmp_path, pg_url, s3_server):
    src = Cluster.make(tmp_path / "src")
    src.bootstrap()
    proc = src.serve("all", None)
    basic, files = _populate(src, proc, tmp_path)
    http = f"http://127.0.0.1:{proc.ports['http_port']}"
    before = mail_state(proc.ports["imap_port"])
    assert len(before["INBOX"]) == 12 and len(before["Archive/2025"]) == 1
    expected_files = file_state(http, basic, list(files))

    # SMTP keeps delivering while the backup runs
    stop = threading.Event()
    acked: list[int] = []

    def deliver() -> None:
        with smtplib.SMTP("127.0.0.1", proc.ports["smtp_port"], timeout=30) as s:
            i = 100
            while not stop.is_set():
                s.sendmail("bob@remote.test", [ALICE], _mail(i))
                acked.append(i)
                i += 1

    t = threading.Thread(target=deliver)
    t.start()
    try:
        r = src.cli("backup", str(tmp_path / "backup"))
    finally:
        stop.set()
        t.join(30)
    assert "backup of" in r.stdout, r.stdout
    assert acked, "no delivery ran during the backup"
    during = mail_state(proc.ports["imap_port"])  # the source after the concurrent deliveries
    assert not src.stop_all()
    shutil.rmtree(tmp_path / "src" / "data")  # wiped

    def check(restored: Cluster) -> int:
        """Serve the restored instance, compare, deliver one more; the INBOX's message count."""
        p = restored.serve("restored", None)
        got = mail_state(p.ports["imap_port"])
        assert set(got) == set(during)
        for name, msgs in got.items():
            # the snapshot is one point in time: every message acknowledged before the backup began,
            # and a gap-free prefix of what was delivered while it ran — each exactly as in the source
            assert set(before[name]) <= set(msgs), name
            assert sorted(msgs) == list(range(1, len(msgs) + 1)), name
            assert msgs == {uid: during[name][uid] for uid in msgs}, name
        assert got["INBOX"][3][0] == ("\\Flagged", "\\Seen")
        assert got["Archive/2025"][1][0] == ("$Important", "\\Seen")
        http2 = f"http://127.0.0.1:{p.ports['http_port']}"
        basic2 = base64.b64encode(f"{ALICE}:{restored.app_password(ALICE)}".encode()).decode()
        assert file_state(http2, basic2, list(files)) == expected_files
        # the restored instance takes new mail after the restored UIDs (sequences moved on)
        with smtplib.SMTP("127.0.0.1", p.ports["smtp_port"], timeout=30) as s:
            s.sendmail("bob@remote.test", [ALICE], _mail(500))
        inbox = mail_state(p.ports["imap_port"])["INBOX"]
        assert max(inbox) == len(got["INBOX"]) + 1
        assert not restored.stop_all()
        return len(inbox)

    one = Cluster.make(tmp_path / "restored-sqlite")
    r = one.cli("restore", str(tmp_path / "backup"))
    assert "restored" in r.stdout
    check(one)
    # restore refuses a database that is not empty
    again = one.cli("restore", str(tmp_path / "backup"), check=False)
    assert again.returncode == 1 and "not empty" in again.stderr and "Traceback" not in again.stderr

    # the same backup into PostgreSQL and S3 (another kind of database and blob store)
    reset_postgres(pg_url)
    bucket = f"suite-restore-{secrets.token_hex(4)}"
    two = Cluster.make(
        tmp_path / "restored-pg",
        database_url=pg_url,
        blob_backend="s3",
        s3_endpoint=s3_server["endpoint"],
        s3_access_key=s3_server["access_key"],
        s3_secret_key=s3_server["secret_key"],
        s3_bucket=bucket,
    )
    r = two.cli("restore", str(tmp_path / "backup"))
    assert "restored" in r.stdout
    inbox_now = check(two)

    # export: mbox per mailbox (Python's mailbox module reads it), files as a zip
    r = two.cli("export", "--user", ALICE, str(tmp_path / "export"))
    assert "mailboxes (mbox)" in r.stdout
    exported = mail_state_from_mbox(tmp_path / "export" / "mail")
    assert len(exported["INBOX"]) == inbox_now
    assert sum(1 for m in exported["INBOX"] if "F" in m.get_flags()) == 4
    assert [m["Subject"] for m in exported["Archive/2025"]] == ["message 99"]
    assert exported["Archive/2025"][0]["X-Keywords"] == "$Important"
    with zipfile.ZipFile(tmp_path / "export" / "files.zip") as zf:
        assert {n: hashlib.sha256(zf.read(n)).hexdigest() for n in files} == expected_files


def mail_state_from_mbox(root: Path) -> dict[str, list[mailbox.mboxMessage]]:
    out = {}
    for f in root.rglob("*.mbox"):
        name = str(f.relative_to(root))[: -len(".mbox")]
        out[name] = list(mailbox.mbox(f, create=False))
    return out


def test_restore_and_export_refuse_bad_input(tmp_path):
    c = Cluster.make(tmp_path)
    r = c.cli("restore", str(tmp_path / "nothing"), check=False)
    assert r.returncode == 1 and "no complete backup" in r.stderr and "Traceback" not in r.stderr
    c.bootstrap()
    r = c.cli("export", "--user", "nobody@example.test", str(tmp_path / "x"), check=False)
    assert r.returncode == 1 and "no user" in r.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    r = c.cli("backup", str(tmp_path / "full"), check=False)
    assert r.returncode == 1 and "not empty" in r.stderr
