"""/metrics, /healthz and /readyz as Prometheus and a balancer see them: a real ``suite serve``,
real clients (smtplib, imaplib, tuspy), the exposition text parsed by ``prometheus_client.parser``."""

from __future__ import annotations

import base64
import hashlib
import imaplib
import os
import smtplib
import sys
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).parent))
from cluster import PASSWORD, Cluster

from suite.testing import wait_until


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[tuple[str, tuple], float] = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _mail(subject: str) -> bytes:
    m = EmailMessage()
    m["From"] = "bob@remote.test"
    m["To"] = "alice@example.test"
    m["Subject"] = subject
    m.set_content("hello\n")
    return m.as_bytes(policy=policy.SMTP)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster.make(tmp_path)
    c.bootstrap()
    yield c
    assert not c.stop_all()


def test_counters_move_with_smtp_imap_and_tus(cluster, tmp_path):
    from tusclient import client as tus_client

    proc = cluster.serve("all", None)
    http = f"http://127.0.0.1:{proc.ports['http_port']}"
    own = f"http://127.0.0.1:{proc.ports['metrics_port']}"
    before = scrape(f"{http}/metrics")

    with smtplib.SMTP("127.0.0.1", proc.ports["smtp_port"], timeout=30) as s:
        for i in range(3):
            s.sendmail("bob@remote.test", ["alice@example.test"], _mail(f"m{i}"))

    imap = imaplib.IMAP4("127.0.0.1", proc.ports["imap_port"], timeout=30)
    with pytest.raises(imaplib.IMAP4.error):
        imap.login("alice@example.test", "wrong password")
    imap.logout()
    imap = imaplib.IMAP4("127.0.0.1", proc.ports["imap_port"], timeout=30)
    imap.login("alice@example.test", PASSWORD)
    imap.select("INBOX")
    typ, data = imap.uid("SEARCH", "ALL")
    assert typ == "OK" and len(data[0].split()) == 3
    during = scrape(f"{http}/metrics")  # the IMAP connection is still open
    imap.logout()

    secret = cluster.app_password("alice@example.test")
    basic = base64.b64encode(f"alice@example.test:{secret}".encode()).decode()
    data = os.urandom(300_000)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    up = tus_client.TusClient(f"{http}/api/tus/", headers={"Authorization": f"Basic {basic}"}).uploader(
        file_path=str(src), chunk_size=100_000, metadata={"filename": "up.bin"}
    )
    up.upload()
    got = httpx.get(f"{http}/api/files/content/up.bin", headers={"Authorization": f"Basic {basic}"}, timeout=10)
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()

    after = scrape(f"{http}/metrics")
    moved = {
        "smtp delivered": value(after, "suite_messages_received_total", via="smtp")
        - value(before, "suite_messages_received_total", via="smtp"),
        "imap ok": value(after, "suite_logins_total", protocol="imap", outcome="ok"),
        "imap failed": value(after, "suite_logins_total", protocol="imap", outcome="failed"),
        "tus uploads": value(after, "suite_uploads_total", via="tus"),
        "tus bytes": value(after, "suite_upload_bytes_total", via="tus"),
    }
    assert moved == {
        "smtp delivered": 3,
        "imap ok": 1,
        "imap failed": 1,
        "tus uploads": 1,
        "tus bytes": len(data),
    }
    assert value(during, "suite_connections", service="imap") == 1
    assert value(after, "suite_connections", service="imap") == 0
    assert value(after, "suite_logins_total", protocol="dav", outcome="ok") >= 1
    # 3 mails and the file are in the blob store: bytes stored counts them (read from the database)
    assert value(after, "suite_blobs_stored") == 4
    assert value(after, "suite_blob_bytes_stored") > len(data)
    assert value(after, "suite_queue_depth") == 0
    # latency histograms: IMAP by command, HTTP by route template (never the concrete path)
    assert value(after, "suite_imap_command_duration_seconds_count", command="LOGIN") == 2
    assert value(after, "suite_imap_command_duration_seconds_count", command="SELECT") == 1
    patch = value(
        after, "suite_http_request_duration_seconds_count", method="PATCH", route="/api/tus/{upload_id}", status="204"
    )
    assert patch == 3
    assert not any("up.bin" in dict(k[1]).get("route", "") for k in after)

    # the process's own metrics port serves the same registry, plus health and readiness
    mine = scrape(f"{own}/metrics")
    assert value(mine, "suite_uploads_total", via="tus") == 1
    assert httpx.get(f"{own}/healthz").json() == {"status": "ok"}
    r = httpx.get(f"{own}/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "database": "ok", "blobs": "ok", "bus": "ok"}
    r = httpx.get(f"{http}/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert httpx.get(f"{own}/nothing").status_code == 404
    assert httpx.post(f"{own}/metrics").status_code == 405


def test_metrics_port_of_a_process_without_gateway_and_readyz_down(cluster, tmp_path):
    """``--only smtp`` has no gateway: its metrics port answers; /readyz says 503 and names the
    dependency when the blob store cannot be reached."""
    proc = cluster.serve("smtp", "smtp")
    own = f"http://127.0.0.1:{proc.ports['metrics_port']}"
    with smtplib.SMTP("127.0.0.1", proc.ports["smtp_port"], timeout=30) as s:
        s.sendmail("bob@remote.test", ["alice@example.test"], _mail("one"))
    wait_until(lambda: value(scrape(f"{own}/metrics"), "suite_messages_received_total", via="smtp") == 1)
    assert value(scrape(f"{own}/metrics"), "suite_connections", service="smtp") == 0
    assert httpx.get(f"{own}/readyz").json()["status"] == "ok"

    broken = cluster.serve(
        "smtp-s3-down",
        "smtp",
        blob_backend="s3",
        s3_endpoint="http://127.0.0.1:9",  # nothing listens there
        s3_access_key="x",
        s3_secret_key="y",
    )
    r = httpx.get(f"http://127.0.0.1:{broken.ports['metrics_port']}/readyz", timeout=30)
    assert r.status_code == 503
    assert r.json() == {"status": "down", "database": "ok", "blobs": "down", "bus": "ok"}
