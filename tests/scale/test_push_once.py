"""PushSubscription callbacks (RFC 8620 §7.2) with two gateway processes (``suite serve --only
gateway`` ×2 on PostgreSQL and the Redis bus): both hear every change, each StateChange reaches
the callback once (the processes claim it in the database)."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))
from cluster import PASSWORD, Cluster, reset_postgres

from suite.testing import missing, port_open, wait_until

USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]


class Receiver:
    """A loopback HTTP endpoint that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.bodies.append(body)
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, kind: str) -> list[dict]:
        with self.lock:
            return [b for b in self.bodies if b["@type"] == kind]


@pytest.fixture(scope="module")
def two_gateways(tmp_path_factory, pg_url):
    if not port_open("127.0.0.1", 6379):
        missing("Redis not running on 127.0.0.1:6379 (make test-env)")
    root = tmp_path_factory.mktemp("push-once")
    reset_postgres(pg_url)
    rx = Receiver()
    c = Cluster.make(
        root,
        database_url=pg_url,
        bus_backend="redis",
        redis_url="redis://127.0.0.1:6379/0",
        jmap_push_allowed_urls=json.dumps([f"http://127.0.0.1:{rx.port}/"]),
    )
    c.bootstrap(users=("alice",))
    gws = [c.serve("gw1", "gateway"), c.serve("gw2", "gateway")]
    yield c, gws, rx
    rx.server.shutdown()
    assert not c.stop_all()


def test_state_change_sent_once_by_two_gateways(two_gateways):
    _, gws, rx = two_gateways
    clients = [
        httpx.Client(base_url=f"http://127.0.0.1:{g.ports['http_port']}", auth=("alice@example.test", PASSWORD))
        for g in gws
    ]
    aid = clients[0].get("/.well-known/jmap").json()["primaryAccounts"][USING[1]]

    def call(n: int, name: str, args: dict) -> dict:
        if not name.startswith("PushSubscription/"):  # RFC 8620 §7.2: not per account
            args = {"accountId": aid, **args}
        r = clients[n].post("/jmap/api", json={"using": USING, "methodCalls": [[name, args, "0"]]})
        assert r.status_code == 200, r.text
        resp = r.json()["methodResponses"][0]
        assert resp[0] == name, resp
        return resp[1]

    url = f"http://127.0.0.1:{rx.port}/cb"
    sub = call(0, "PushSubscription/set", {"create": {"p": {"deviceClientId": "d", "url": url, "types": ["Email"]}}})
    sid = sub["created"]["p"]["id"]
    wait_until(lambda: rx.of("PushVerification"), timeout=15)
    code = rx.of("PushVerification")[0]["verificationCode"]
    assert sid in call(1, "PushSubscription/set", {"update": {sid: {"verificationCode": code}}})["updated"]
    mailboxes = call(0, "Mailbox/get", {"ids": None})["list"]
    drafts = next(m["id"] for m in mailboxes if m["role"] == "drafts")
    states = []
    for n in range(4):  # changes through either gateway; the last one is the sentinel
        made = call(n % 2, "Email/set", {"create": {"d": {"mailboxIds": {drafts: True}, "subject": f"draft {n}"}}})
        states.append(made["newState"])
        wait_until(lambda: any(b["changed"][aid]["Email"] == states[-1] for b in rx.of("StateChange")), timeout=15)
    # every state pushed once: a second process's copy would have arrived with the first one,
    # before the next change's push (the sentinel's)
    pushed = [b["changed"][aid]["Email"] for b in rx.of("StateChange")]
    assert sorted(set(pushed)) == sorted(pushed), pushed
    assert set(states) <= set(pushed)
    assert len(rx.of("PushVerification")) == 1
