"""A third-party client, jmapc (PyPI), against the gateway: mailbox listing, query, get, set,
submission and EventSource (issue #13 Tests). jmapc is synchronous, so it runs in a thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.mail.jmap.conftest import PW, message

jmapc = pytest.importorskip("jmapc", reason="pip install jmapc (in the test extras)")


def _client(base_url: str):
    """jmapc asks https://{host}/.well-known/jmap; the test gateway speaks plain HTTP on loopback,
    so the one adapter below sends https:// requests for that host over http://."""
    import requests
    from requests.adapters import HTTPAdapter

    host = base_url.split("://", 1)[1]

    class PlainLoopback(HTTPAdapter):
        def send(self, request, **kw):
            request.url = request.url.replace(f"https://{host}", f"http://{host}", 1)
            return super().send(request, **kw)

    client = jmapc.Client.create_with_password(host, "alice@example.test", PW)
    session = requests.Session()
    session.auth = client._auth
    session.mount(f"https://{host}", PlainLoopback())
    client.__dict__["requests_session"] = session
    return client


async def test_jmapc_mailboxes_query_get_set(base_url, store, accounts):
    from jmapc.methods import EmailGet, EmailQuery, EmailSet, MailboxGet, MailboxQuery

    await store.deliver(accounts[0].id, "INBOX", message("From jmapc", msgid="j1@x"))

    def run():
        c = _client(base_url)
        mbs = c.request(MailboxGet(ids=None))
        inbox = next(m for m in mbs.data if m.role == "inbox")
        assert inbox.total_emails == 1 and inbox.unread_emails == 1
        q = c.request(MailboxQuery(filter=jmapc.MailboxQueryFilterCondition(role="inbox")))
        assert q.ids == [inbox.id]
        eq = c.request(
            EmailQuery(
                filter=jmapc.EmailQueryFilterCondition(in_mailbox=inbox.id),
                sort=[jmapc.Comparator(property="receivedAt", is_ascending=False)],
            )
        )
        got = c.request(EmailGet(ids=eq.ids, properties=["subject", "from", "keywords", "mailboxIds"]))
        assert got.data[0].subject == "From jmapc" and got.data[0].mail_from[0].email == "carol@example.net"
        res = c.request(EmailSet(update={eq.ids[0]: {"keywords/$seen": True}}))
        assert res.updated and eq.ids[0] in res.updated
        again = c.request(EmailGet(ids=eq.ids, properties=["keywords"]))
        return again.data[0].keywords

    assert await asyncio.to_thread(run) == {"$seen": True}


async def test_jmapc_submission(base_url, accounts):
    from jmapc.methods import EmailSet, EmailSubmissionSet, IdentityGet, MailboxGet

    def run():
        c = _client(base_url)
        drafts = next(m for m in c.request(MailboxGet(ids=None)).data if m.role == "drafts")
        ident = c.request(IdentityGet()).data[0]
        draft = jmapc.Email(
            mail_from=[jmapc.EmailAddress(name="Alice", email="alice@example.test")],
            to=[jmapc.EmailAddress(email="bob@example.test")],
            subject="jmapc sends",
            keywords={"$draft": True},
            mailbox_ids={drafts.id: True},
            body_values=dict(body=jmapc.EmailBodyValue(value="hello from jmapc")),
            text_body=[jmapc.EmailBodyPart(part_id="body", type="text/plain")],
        )
        results = c.request(
            [
                EmailSet(create=dict(draft=draft)),
                EmailSubmissionSet(
                    on_success_destroy_email=["#emailToSend"],
                    create=dict(emailToSend=jmapc.EmailSubmission(identity_id=ident.id, email_id="#draft")),
                ),
            ]
        )
        return [r.response for r in results]

    responses = await asyncio.to_thread(run)
    assert responses[0].created["draft"].id
    assert responses[1].created["emailToSend"].undo_status.value == "final"
    # onSuccessDestroyEmail: the implicit Email/set destroyed the draft (RFC 8621 §7.5)
    assert responses[2].destroyed == [responses[0].created["draft"].id]


async def test_jmapc_eventsource(base_url, store, accounts):
    # RFC 8620 §7.3 through jmapc's EventSource reader: a delivery pushes a StateChange
    events: list = []
    ready = threading.Event()

    def listen():
        c = _client(base_url)
        c._event_source_config = jmapc.client.EventSourceConfig(types="Email,Mailbox", closeafter="no", ping=0)
        try:
            for ev in c.events:
                events.append(ev)
                ready.set()
                if len(events) >= 2:
                    return
        finally:
            c._events.resp.close()

    task = asyncio.create_task(asyncio.to_thread(listen))
    for _ in range(500):
        if ready.is_set():
            break
        await asyncio.sleep(0.02)
    assert events, "the initial state event"
    await store.deliver(accounts[0].id, "INBOX", message("push", msgid="push@x"))
    await asyncio.wait_for(task, 20)
    change = events[1].data.changed
    assert list(change) == [f"A{accounts[0].id}"]
    state = next(iter(change.values()))
    assert state.email and state.email != next(iter(events[0].data.changed.values())).email
