"""Sieve at delivery, through real SMTP (smtplib to the running MX), checked in the mail store;
on SQLite and PostgreSQL. Scripts are the RFC examples where the RFCs have them."""

from __future__ import annotations

import asyncio
import smtplib

import pytest
from sieve_helpers import CAROL, activate, mailbox, message, send, wait_for
from smtp_service_helpers import ALICE, BOB, DOMAIN, REMOTE_DOMAIN, RemoteHandler, parse, remote_mx

from suite.mail.sieve import srs
from suite.mail.sieve.store import srs_key
from suite.mail.store.store import MailStore


async def test_no_script_delivers_to_inbox(suite_smtp):
    await send(suite_smtp, message("plain"))
    inbox = await mailbox(suite_smtp, suite_smtp.alice_id, "INBOX")
    assert len(inbox) == 1 and parse(inbox[0][0])["Subject"] == "plain"


async def test_rfc5228_fileinto_discard_and_implicit_keep(suite_smtp):
    # RFC 5228 §9 example, reduced to what our accounts can receive.
    await MailStore(suite_smtp.ctx).create_mailbox(suite_smtp.alice_id, "work")
    script = """
require ["fileinto"];
if header :is "Sender" "owner-ietf-mta-filters@imc.org" {
    fileinto "filter";  # no such mailbox: INBOX (no :create)
} elsif address :DOMAIN :is ["From", "To"] "example.com" {
    keep;
} elsif anyof (NOT address :all :contains ["To", "Cc", "Bcc"] "me@example.com",
               header :matches "subject" ["*make*money*fast*", "*university*dipl*mas*"]) {
    fileinto "work";
} else {
    discard;
}
"""
    await activate(suite_smtp.ctx, suite_smtp.alice_id, script)
    me = "me@example.com.au"  # contains "me@example.com", domain is not example.com
    await send(suite_smtp, message("Make lots of MONEY fast", to=me))  # :matches is case-insensitive
    await send(suite_smtp, message("list mail", Sender="owner-ietf-mta-filters@imc.org", to=me))
    await send(suite_smtp, message("to me", to=me))  # falls to discard
    await send(suite_smtp, message("not me", to="x@example.org"))  # NOT address ... → work
    await send(suite_smtp, message("from example.com", frm="ann@EXAMPLE.com", to=me))  # keep
    work = [parse(r)["Subject"] for r, _ in await mailbox(suite_smtp, suite_smtp.alice_id, "work")]
    inbox = [parse(r)["Subject"] for r, _ in await mailbox(suite_smtp, suite_smtp.alice_id, "INBOX")]
    assert sorted(work) == ["Make lots of MONEY fast", "not me"]
    assert inbox == ["list mail", "from example.com"]
    assert await mailbox(suite_smtp, suite_smtp.alice_id, "filter") == []


async def test_fileinto_create_and_imap4flags(suite_smtp):
    script = r"""
require ["fileinto", "imap4flags", "mailbox"];
if header :contains "subject" "urgent" {
    addflag "\\Flagged";
    addflag ["$Work", "\\Seen"];
    removeflag "\\Seen";
    fileinto :create "Projects/Urgent";
} elsif header :contains "subject" "read" {
    setflag "\\Seen";
    if hasflag :is "\\seen" { keep :flags ["\\Answered"]; }
}
"""
    await activate(suite_smtp.ctx, suite_smtp.alice_id, script)
    await send(suite_smtp, message("urgent: call"))
    await send(suite_smtp, message("read me"))
    urgent = await mailbox(suite_smtp, suite_smtp.alice_id, "Projects/Urgent")
    assert len(urgent) == 1 and set(urgent[0][1]) == {"\\Flagged", "$Work"}
    inbox = await mailbox(suite_smtp, suite_smtp.alice_id, "INBOX")
    assert len(inbox) == 1 and inbox[0][1] == ("\\Answered",)


async def test_envelope_size_body_and_copy(suite_smtp):
    script = """
require ["envelope", "fileinto", "body", "copy"];
if envelope :domain :is "from" "remote.test" { fileinto :copy "Archive"; }
if size :over 20K { fileinto "Junk"; stop; }
if body :text :contains "secret handshake" { fileinto "Trash"; }
"""
    await activate(suite_smtp.ctx, suite_smtp.alice_id, script)
    await send(suite_smtp, message("small"))
    await send(suite_smtp, message("big", body="x" * 30000 + "\n"))
    await send(suite_smtp, message("body", body="Here is the Secret Handshake.\n"))
    subjects = {}
    for name in ("INBOX", "Archive", "Junk", "Trash"):
        subjects[name] = sorted(parse(r)["Subject"] for r, _ in await mailbox(suite_smtp, suite_smtp.alice_id, name))
    assert subjects == {"INBOX": ["small"], "Archive": ["big", "body", "small"], "Junk": ["big"], "Trash": ["body"]}


async def test_broken_script_keeps_the_message(suite_smtp):
    # A script that compiled when stored but fails at run time (ascii-numeric with :contains).
    script = 'require ["fileinto", "comparator-i;ascii-numeric"];\nif header :contains :comparator "i;ascii-numeric" "X-N" "1" { discard; }\n'
    await activate(suite_smtp.ctx, suite_smtp.alice_id, script)
    await send(suite_smtp, message("still here", X_N="1"))
    inbox = await mailbox(suite_smtp, suite_smtp.alice_id, "INBOX")
    assert [parse(r)["Subject"] for r, _ in inbox] == ["still here"]


async def test_redirect_uses_srs_and_the_bounce_comes_home(suite_smtp, dns_stub, remote_port):
    handler = RemoteHandler()
    script = f'redirect "dave@{REMOTE_DOMAIN}";'
    await activate(suite_smtp.ctx, suite_smtp.alice_id, script)
    with remote_mx(remote_port, handler, dns_stub):
        await send(suite_smtp, message("forward me"))

        async def got():
            return len(handler.received) >= 1

        await wait_for(got)
        mail_from, rcpts, data = handler.received[0]
        assert rcpts == [f"dave@{REMOTE_DOMAIN}"]
        assert mail_from.startswith("SRS0=") and mail_from.endswith(f"={REMOTE_DOMAIN}=carol@{DOMAIN}")
        assert parse(data)["Subject"] == "forward me"
        key = srs_key(suite_smtp.ctx.settings)
        assert srs.reverse(mail_from, key) == CAROL
        # Not kept: redirect cancels the implicit keep.
        assert await mailbox(suite_smtp, suite_smtp.alice_id, "INBOX") == []
        # dave's MX bounces to the SRS address: our MX takes it and sends it back to carol.
        bounce = (
            b"From: MAILER-DAEMON@remote.test\r\nTo: "
            + mail_from.encode()
            + b"\r\nSubject: Undelivered\r\n\r\nbounce\r\n"
        )
        await send(suite_smtp, bounce, mail_from="", rcpts=[mail_from])

        async def got_bounce():
            return len(handler.received) >= 2

        await wait_for(got_bounce)
        b_from, b_rcpts, b_data = handler.received[1]
        assert (b_from, b_rcpts) == ("<>", [CAROL]) and b"Undelivered" in b_data
    # A forged SRS address is refused at RCPT.
    forged = f"SRS0=AAAA=AA={REMOTE_DOMAIN}=carol@{DOMAIN}"
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await send(suite_smtp, bounce, mail_from="", rcpts=[forged])


async def test_vacation_once_per_period_and_never_to_lists(suite_smtp, dns_stub, remote_port):
    script = """
require "vacation";
vacation :days 7 :subject "Out of office" :addresses ["info@example.test"] "I am away until Monday.";
"""
    await activate(suite_smtp.ctx, suite_smtp.alice_id, script)
    handler = RemoteHandler()
    with remote_mx(remote_port, handler, dns_stub):
        await send(suite_smtp, message("first"))
        await send(suite_smtp, message("second"))  # same sender, same period: no second reply
        await send(
            suite_smtp, message("list", frm="list@remote.test", List_Id="<l.remote.test>"), mail_from="list@remote.test"
        )
        await send(suite_smtp, message("bulk", frm="b@remote.test", Precedence="bulk"), mail_from="b@remote.test")
        await send(
            suite_smtp, message("auto", frm="a@remote.test", Auto_Submitted="auto-replied"), mail_from="a@remote.test"
        )
        await send(
            suite_smtp, message("daemon", frm="MAILER-DAEMON@remote.test"), mail_from="MAILER-DAEMON@remote.test"
        )
        await send(suite_smtp, message("null"), mail_from="")
        await send(suite_smtp, message("bcc'd", to="someone@remote.test"), mail_from="e@remote.test")
        await send(suite_smtp, message("alias", frm="f@remote.test", to="info@example.test"), mail_from="f@remote.test")

        async def two():
            return len(handler.received) >= 2

        await wait_for(two)
        await asyncio.sleep(0)  # every message above was delivered before its 250
        # Only one more message was sent per triggering sender; the queue is empty.
        from suite.mail.queue.queue import list_queue

        async def drained():
            return await list_queue(suite_smtp.ctx) == []

        await wait_for(drained)
    assert sorted(r[1][0] for r in handler.received) == [CAROL, "f@remote.test"]
    for mail_from, _, data in handler.received:
        assert mail_from == "<>"  # aiosmtpd spells the null reverse-path so
        reply = parse(data)
        assert reply["Auto-Submitted"] == "auto-replied"
        assert reply["Subject"] == "Out of office"
        assert reply["From"] == ALICE or reply["From"] == "info@example.test"
        assert reply["In-Reply-To"] and reply["References"]
        assert "I am away until Monday." in reply.get_content()
    # every message was kept in INBOX (vacation does not cancel the implicit keep)
    assert len(await mailbox(suite_smtp, suite_smtp.alice_id, "INBOX")) == 9


async def test_vacation_reply_to_a_local_sender(suite_smtp):
    await activate(suite_smtp.ctx, suite_smtp.alice_id, 'require "vacation";\nvacation "Away.";\n')
    await send(suite_smtp, message("hi alice", frm=BOB), mail_from=BOB)
    bob = await mailbox(suite_smtp, suite_smtp.bob_id, "INBOX")
    assert len(bob) == 1
    reply = parse(bob[0][0])
    assert reply["Subject"] == "Auto: hi alice" and reply["Auto-Submitted"] == "auto-replied"


async def test_variables_file_list_mail_by_list_id(suite_smtp):
    script = """
require ["fileinto", "mailbox", "variables", "imap4flags"];
if header :matches "List-Id" "*<*.*>" {
    set :lower "list" "${2}";
    addflag "$List";
    fileinto :create "Lists/${list}";
}
"""
    await activate(suite_smtp.ctx, suite_smtp.alice_id, script)
    await send(suite_smtp, message("list post", List_Id="Dev people <DEV.lists.remote.test>"))
    got = await mailbox(suite_smtp, suite_smtp.alice_id, "Lists/dev")
    assert [(parse(r)["Subject"], f) for r, f in got] == [("list post", ("$List",))]


async def test_local_redirect_runs_the_targets_script_and_loops_stop(suite_smtp):
    await activate(suite_smtp.ctx, suite_smtp.alice_id, f'redirect "{BOB}";')
    await activate(suite_smtp.ctx, suite_smtp.bob_id, f'redirect "{ALICE}";')
    await send(suite_smtp, message("ping-pong"))
    # alice → bob → alice: alice's second redirect sees her own X-Sieve-Redirected-From and keeps it
    alice = await mailbox(suite_smtp, suite_smtp.alice_id, "INBOX")
    assert await mailbox(suite_smtp, suite_smtp.bob_id, "INBOX") == []
    assert len(alice) == 1
    hops = parse(alice[0][0]).get_all("X-Sieve-Redirected-From")
    assert hops == [BOB, ALICE]
    from suite.mail.queue.queue import list_queue

    assert await list_queue(suite_smtp.ctx) == []  # nothing went to the outbound queue


async def test_vacation_from_must_be_the_accounts(suite_smtp):
    script = 'require "vacation";\nvacation :from "ceo@bank.test" :subject "Away" "Away.";\n'
    await activate(suite_smtp.ctx, suite_smtp.alice_id, script)
    await send(suite_smtp, message("hi", frm=BOB), mail_from=BOB)
    bob = await mailbox(suite_smtp, suite_smtp.bob_id, "INBOX")
    assert len(bob) == 1 and parse(bob[0][0])["From"] == ALICE
    script = 'require "vacation";\nvacation :from "Info <info@example.test>" :subject "Away" "Away.";\n'
    await activate(suite_smtp.ctx, suite_smtp.bob_id, script)
    await send(suite_smtp, message("hi bob", frm=ALICE, to=BOB), mail_from=ALICE, rcpts=[BOB])
    alice = [parse(r) for r, _ in await mailbox(suite_smtp, suite_smtp.alice_id, "INBOX")]
    # info@ is alice's alias, not bob's: bob's reply comes from bob
    assert [m["From"] for m in alice if m["Subject"] == "Away"] == [BOB]
