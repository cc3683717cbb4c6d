"""The Sieve language without I/O: the RFC examples parse and do what the RFCs say; bad scripts get
one-line errors with the line number; the limits hold."""

from __future__ import annotations

import base64

import pytest

from suite.mail.sieve import Envelope, MessageView, SieveError, compile_script, evaluate
from suite.mail.sieve import vacation as vac
from suite.mail.sieve.evaluate import SieveRuntimeError


def run(script: str, raw: bytes, mail_from: str = "sender@remote.test", rcpt: str = "me@example.test"):
    return evaluate(compile_script(script), MessageView.from_bytes(raw), Envelope(mail_from, rcpt))


def mail(headers: str, body: str = "body\r\n") -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body).encode()


def where(out) -> list[tuple[str, tuple[str, ...]]]:
    return [(s.mailbox, s.flags) for s in out.stores]


RFC5228_EXAMPLE = r"""
#
# Example Sieve Filter
# Declare any optional features or extension used by the script
#
require ["fileinto"];

#
# Handle messages from known mailing lists
# Move messages from IETF filter discussion list to filter mailbox
#
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
#
# Keep all messages to or from people in my company
#
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }

#
# Try and catch unsolicited email.  If a message is not to me,
# or it contains a subject known to be spam, file it away.
#
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        # Move all other (non-company) mail to "personal"
        # mailbox.
        fileinto "personal";
        }
"""


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("Sender: owner-ietf-mta-filters@imc.org\nTo: me@example.com", "filter"),
        ("From: Boss <boss@EXAMPLE.com>\nTo: me@example.com", "INBOX"),
        ("From: a@b.test\nTo: you@example.org", "spam"),
        ("From: a@b.test\nTo: me@example.com.au\nSubject: Make MONEY fast!", "spam"),
        ("From: a@b.test\nTo: me@example.com.au\nSubject: lunch", "personal"),
    ],
)
def test_rfc5228_section9_example(headers, expected):
    assert where(run(RFC5228_EXAMPLE, mail(headers))) == [(expected, ())]


def test_multiline_strings_comments_escapes_and_quantifiers():
    script = (
        'require ["vacation"];\r\n'
        "/* a bracket comment\r\n over lines */\r\n"
        "if size :under 1K {\r\n"
        'vacation :subject "say \\"hi\\" \\q" text: # comment\r\n'
        "..leading dot\r\n"
        "second line\r\n"
        ".\r\n"
        ";\r\n"
        "}\r\n"
    )
    out = run(script, mail("From: x@y.test\nTo: me@example.test"))
    assert out.vacation is not None
    assert out.vacation.subject == 'say "hi" q'  # RFC 5228 §2.4.2: unknown escapes drop the backslash
    assert out.vacation.reason == ".leading dot\r\nsecond line\r\n"
    assert compile_script("if size :over 2M { discard; }").commands[0].test.limit == 2 * 1024 * 1024  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("script", "line", "text"),
    [
        ("keep;\nfrobnicate;", 2, "unknown command 'frobnicate'"),
        ('if true {\n  fileinto "x";\n}', 2, 'needs require "fileinto"'),
        ('keep;\nrequire "fileinto";', 2, "require must come before"),
        ("keep;\nelsif true { keep; }", 2, "elsif without a preceding if"),
        ('require "fileinto";\nfileinto "x"\nkeep;', 2, "a missing ; before 'keep' on line 3?"),
        ('require "fileinto";\nfileinto "x"', 2, "expected ; or { after fileinto, found end of script"),
        ('if header :contains "a" "b\n\n', 1, "unterminated string"),
        ("if bogus { keep; }", 1, "unknown test 'bogus'"),
        ('if header :is :contains "a" "b" { keep; }', 1, "cannot be used together"),
        ('if header :what "a" "b" { keep; }', 1, "unknown tag :what"),
        ('if header :is :is "a" "b" { keep; }', 1, "given twice"),
        ("if size 100 { keep; }", 1, "needs :over or :under"),
        ('require "regex";', 1, "unsupported extension 'regex'"),
        ('if address "subject" "x" { keep; }', 1, "not an address header"),
        ('if header :comparator "i;klingon" "a" "b" { keep; }', 1, "unknown comparator"),
        ("if true { keep; ", 1, "missing }"),
        ("keep; }", 1, "unexpected }"),
        ("/* never closed", 1, "unterminated /* comment"),
        ('redirect "not-an-address";', 1, "not a mail address"),
        ("\n\nif true { stop; } else keep;", 3, "else needs a { block }"),
        ('require "envelope";\nif envelope "cc" "x" { keep; }', 2, "unknown envelope part"),
    ],
)
def test_errors_name_the_line(script, line, text):
    with pytest.raises(SieveError) as err:
        compile_script(script)
    assert err.value.line == line and text in str(err.value), str(err.value)
    assert str(err.value).startswith(f"line {line}: ")


def test_limits():
    with pytest.raises(SieveError, match="larger than 65536 bytes"):
        compile_script(b"#" + b"x" * 70_000)
    deep = "if true {" * 40 + "keep;" + "}" * 40
    with pytest.raises(SieveError, match="nested deeper than 32"):
        compile_script(deep)
    nested_tests = "if " + "not " * 40 + "true { keep; }"
    with pytest.raises(SieveError, match="nested deeper than 32"):
        compile_script(nested_tests)
    six = "".join(f'redirect "u{i}@example.test";\n' for i in range(6))
    with pytest.raises(SieveError, match="line 6: more than 5 redirects"):
        compile_script(six)
    with pytest.raises(SieveError, match="line 2: script is not valid UTF-8"):
        compile_script(b"keep;\n# \xff\n")
    with pytest.raises(SieveError, match="NUL"):
        compile_script("keep;\x00")


def test_match_types_and_comparators():
    raw = mail(
        'From: "Ann" <Ann.Lee@Example.COM>\nTo: me@example.test\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= *now*\nX-N: 0042'
    )
    assert where(run('if header :matches "subject" "Gr??e \\\\*now\\\\*" { discard; }', raw)) == []
    assert where(run('if header :matches "subject" "Gr??e \\\\*later*" { discard; }', raw)) == [("INBOX", ())]
    assert run('if header :is :comparator "i;octet" "subject" "grüße *now*" { discard; }', raw).discarded is False
    assert run('if header :is "subject" "GRüßE *NOW*" { discard; }', raw).discarded is True  # ASCII-only casemap
    assert run('if address :localpart :is "from" "ann.lee" { discard; }', raw).discarded is True
    assert run('if address :domain :is "from" "example.com" { discard; }', raw).discarded is True
    assert (
        run('if address :all :is "from" "Ann" { discard; }', raw).discarded is False
    )  # the display name is not the address
    num = 'require "comparator-i;ascii-numeric";\nif header :is :comparator "i;ascii-numeric" "x-n" "42" { discard; }'
    assert run(num, raw).discarded is True
    assert run('if allof (exists ["From", "x-n"], not exists "x-none") { discard; }', raw).discarded is True
    with pytest.raises(SieveRuntimeError):
        run(
            'require "comparator-i;ascii-numeric";\nif header :contains :comparator "i;ascii-numeric" "x-n" "4" { discard; }',
            raw,
        )


def test_envelope_with_the_null_sender():
    script = 'require "envelope";\nif envelope :is "from" "" { discard; }'
    assert run(script, mail("From: x@y.test"), mail_from="").discarded is True
    assert run(script, mail("From: x@y.test")).discarded is False
    s2 = 'require "envelope";\nif envelope :domain :is "to" "example.test" { discard; }'
    assert run(s2, mail("To: other@else.test")).discarded is True


def test_rfc5173_body_raw_content_text():
    html = "<p>Launch the <b>missile</b></p>"
    b64 = base64.b64encode(b"Plain text about a MISSILE launch\r\n").decode()
    raw = mail(
        "From: x@y.test\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=BB",
        f"--BB\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"
        f"--BB\r\nContent-Type: text/html\r\n\r\n{html}\r\n--BB--\r\n",
    )
    req = 'require ["body", "fileinto"];\n'
    assert run(req + 'if body :text :contains "missile launch" { discard; }', raw).discarded is True
    assert run(req + 'if body :raw :contains "missile launch" { discard; }', raw).discarded is False  # base64
    assert run(req + 'if body :raw :contains "<b>missile</b>" { discard; }', raw).discarded is True
    assert run(req + 'if body :content "text/html" :contains "MISSILE" { discard; }', raw).discarded is True
    assert run(req + 'if body :content "image" :contains "missile" { discard; }', raw).discarded is False
    # RFC 5173 §7 example
    example = req + 'if body :raw :contains "MAKE MONEY FAST" { discard; }'
    assert run(example, mail("From: x@y.test", "You can make money fast!\r\n")).discarded is True


def test_rfc5232_imap4flags():
    # RFC 5232 §6 example (first part), adapted to one message
    script = r"""
require ["imap4flags", "fileinto"];
if header :contains "from" "boss@frobnitzm.example.edu" {
    setflag "\\Flagged";
    fileinto "INBOX.From Boss";
}
if header :contains "Subject" "Make money" {
    addflag ["\\Seen", "\\Deleted"];
    removeflag "\\Flagged";
    fileinto :flags "$Spam \\Seen" "Junk";
}
if hasflag :contains "flagged" { keep; }
"""
    out = run(script, mail("From: boss@frobnitzm.example.edu\nSubject: Make money"))
    assert where(out) == [("INBOX.From Boss", ("\\Flagged",)), ("Junk", ("$Spam", "\\Seen"))]
    out = run(script, mail("From: boss@frobnitzm.example.edu\nSubject: hi"))
    assert where(out) == [("INBOX.From Boss", ("\\Flagged",)), ("INBOX", ("\\Flagged",))]


def test_rfc3894_copy_and_implicit_keep_rules():
    script = 'require ["copy", "fileinto"];\nfileinto :copy "incoming";\nredirect :copy "a@b.test";'
    out = run(script, mail("From: x@y.test"))
    assert where(out) == [("incoming", ()), ("INBOX", ())] and out.redirects == ["a@b.test"]
    out = run(
        'require "fileinto";\nfileinto "a";\nfileinto "a";\nredirect "z@b.test";\nredirect "Z@b.test";',
        mail("From: x@y.test"),
    )
    assert where(out) == [("a", ())] and out.redirects == ["z@b.test"]  # duplicates once (RFC 5228 §2.10.3)
    out = run("discard;\nkeep;", mail("From: x@y.test"))
    assert where(out) == [("INBOX", ())]  # an explicit keep after discard keeps
    out = run("keep;\nstop;\ndiscard;", mail("From: x@y.test"))
    assert where(out) == [("INBOX", ())] and not out.discarded


def test_rfc5230_vacation_rules():
    script = """require "vacation";
if header :contains "subject" "cyrus" {
    vacation :days 23 :addresses ["tjs@example.edu", "ts4z@landru.example.edu"] :handle "cyrus"
    "I'm away until October 19.  If it's an emergency, call 911, I guess." ;
} else {
    vacation :days 200 :mime "Content-Type: text/plain; charset=utf-8

I'm away.";
}"""
    raw = mail("From: a@remote.test\nTo: Tim <tjs@example.edu>\nSubject: cyrus bug\nMessage-ID: <1@remote.test>")
    out = run(script, raw, mail_from="a@remote.test", rcpt="tim@example.edu")
    v = out.vacation
    assert v is not None and v.days == 23 and v.handle == "cyrus"
    env = Envelope("a@remote.test", "tim@example.edu", ("tim@example.edu",))
    msg = MessageView.from_bytes(raw)
    assert vac.skip_reason(msg, env, v) is None  # To holds one of the :addresses
    not_me = MessageView.from_bytes(mail("From: a@remote.test\nTo: x@remote.test\nSubject: cyrus"))
    assert vac.skip_reason(not_me, env, v) == "not addressed to the user in To/Cc/Bcc"
    for extra, why in [
        ("List-Id: <l.example>", "mailing list message"),
        ("Precedence: junk", "precedence junk"),
        ("Auto-Submitted: auto-generated", "auto-submitted message"),
    ]:
        m = MessageView.from_bytes(mail(f"From: a@remote.test\nTo: tjs@example.edu\n{extra}"))
        assert vac.skip_reason(m, env, v) == why
    for sender in (
        "",
        "MAILER-DAEMON@remote.test",
        "owner-list@remote.test",
        "list-request@remote.test",
        "tjs@example.edu",
    ):
        assert vac.skip_reason(msg, Envelope(sender, "tim@example.edu", ("tim@example.edu",)), v) is not None
    reply = vac.build_reply(msg, env, v, hostname="mx.example.edu")
    head = reply.split(b"\r\n\r\n")[0].decode()
    assert "Auto-Submitted: auto-replied" in head and "In-Reply-To: <1@remote.test>" in head
    assert "Subject: Auto: cyrus bug" in head and "To: a@remote.test" in head and "From: tim@example.edu" in head
    out = run(script, mail("From: a@remote.test\nSubject: other"))
    assert out.vacation is not None and out.vacation.days == 90 and out.vacation.mime  # days capped
    mime = vac.build_reply(msg, env, out.vacation, hostname="h")
    assert b'Content-Type: text/plain; charset="utf-8"' in mime and mime.endswith(b"I'm away.")
    with pytest.raises(SieveRuntimeError):
        run('require "vacation";\nvacation "a";\nvacation "b";', raw)


RFC5229_EXAMPLE = r"""
require ["fileinto", "variables"];
if header :matches "List-ID" "*<*@*" {
    fileinto "INBOX.lists.${2}"; stop;
}
# Imagine the header
# Subject: [acme-users] [fwd] version 1.0 is out
if header :matches "Subject" "[*] *" {
    # ${1} will hold "acme-users",
    # ${2} will hold "[fwd] version 1.0 is out"
    fileinto "INBOX.lists.${1}"; stop;
}
# Imagine the header
# To: coyote@ACME.Example.COM
if address :matches ["To", "Cc"] ["coyote@**.com",
        "wile@**.com"] {
    # ${0} is the matching address
    # ${1} is always the empty string
    # ${2} is part of the domain name ("ACME.Example")
    fileinto "INBOX.business.${2}"; stop;
} else {
    # Control wouldn't reach this block if any match was
    # successful, so no match variables are set at this
    # point.
}
if anyof (true, address :domain :matches "To" "*.com") {
    # The second test is never evaluated, so there are
    # still no match variables set.
    fileinto "INBOX.other${1}"; stop;
}
"""


@pytest.mark.parametrize(
    ("headers", "mailbox"),
    [
        ("List-ID: Sieve list <sieve.ietf.org@lists.example>", "INBOX.lists.sieve.ietf.org"),
        ("Subject: [acme-users] [fwd] version 1.0 is out", "INBOX.lists.acme-users"),
        ("To: coyote@ACME.Example.COM", "INBOX.business.ACME.Example"),
        ("To: road@runner.test", "INBOX.other"),
    ],
)
def test_rfc5229_match_variables(headers, mailbox):
    assert where(run(RFC5229_EXAMPLE, mail("From: x@y.test\n" + headers))) == [(mailbox, ())]


def test_rfc5229_set_modifiers_and_string_test():
    script = r"""require ["variables", "vacation", "fileinto", "imap4flags"];
set "honorific"  "Mr";
set "last_name"  "Coyote";
set "vacation" text:
Dear ${HONORIFIC} ${last_name},
I'm out.
.
;
set :upperfirst :lower "a" "juMBlEd lETteRS";
set :length "n" "${a}";
set :quotewildcard "q" "Rock*?\\";
set :upper "u" "${a}";
if allof (string :is "${a}" "Jumbled letters", string :is "${n}" "15",
          string :is "${q}" "Rock\\*\\?\\\\", string :is "${u}" "JUMBLED LETTERS",
          string :matches "${q}" "Rock\\\\\\**", not string :is "${unset}" "x") {
    addflag "tags" ["$a", "$b"];
    removeflag "tags" "$a";
    if hasflag :is "tags" "$b" { fileinto :flags "${tags}" "${u}"; }
    vacation :subject "Re: ${last_name}" "${vacation}";
}
"""
    out = run(script, mail("From: x@y.test\nTo: me@example.test"))
    assert where(out) == [("JUMBLED LETTERS", ("$b",))]
    assert out.vacation is not None and out.vacation.reason == "Dear Mr Coyote,\r\nI'm out.\r\n"
    assert out.vacation.subject == "Re: Coyote"
    with pytest.raises(SieveError, match="line 1: '1x' is not a variable name"):
        compile_script('require "variables"; set "1x" "v";')
    with pytest.raises(SieveError, match="cannot be used together"):
        compile_script('require "variables"; set :lower :upper "a" "v";')
    with pytest.raises(SieveError, match='needs require "variables"'):
        compile_script('set "a" "b";')
    # without the extension ${...} is literal text
    assert where(run('require "fileinto"; fileinto "${x}";', mail("From: x@y.test"))) == [("${x}", ())]


def test_rfc5231_relational_value_and_count():
    req = 'require ["relational", "comparator-i;ascii-numeric"];\n'
    raw = mail("From: x@y.test\nTo: a@b.test, c@d.test, e@f.test\nX-Priority: 2\nX-Spam-Score: 10")
    assert run(
        req + 'if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3" { discard; }', raw
    ).discarded
    assert not run(req + 'if address :count "gt" :comparator "i;ascii-numeric" ["to"] "3" { discard; }', raw).discarded
    # numeric, not string order: 10 > 9 (RFC 5231 §7 example style)
    assert run(
        req + 'if header :value "gt" :comparator "i;ascii-numeric" "x-spam-score" "9" { discard; }', raw
    ).discarded
    assert not run(req + 'if header :value "gt" "x-spam-score" "9" { discard; }', raw).discarded  # "10" < "9" as text
    assert run(req + 'if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "3" { discard; }', raw).discarded
    with pytest.raises(SieveError, match='needs require "relational"'):
        compile_script('if header :value "gt" "a" "b" { keep; }')
    with pytest.raises(SieveError, match="unknown relation"):
        compile_script(req + 'if header :value "bigger" "a" "b" { keep; }')


def test_rfc5260_date_and_currentdate():
    req = 'require ["date", "relational"];\n'
    raw = mail("From: x@y.test\nDate: Tue, 01 Dec 2026 23:30:00 -0800")
    now = 1796169600.0  # 2026-12-02T00:00:00Z, a Wednesday

    def go(script):
        return evaluate(
            compile_script(req + script), MessageView.from_bytes(raw), Envelope("x@y.test", "me@x.test", now=now)
        )

    assert go('if date :zone "+0000" "date" "date" "2026-12-02" { discard; }').discarded
    assert go('if date :originalzone "date" "date" "2026-12-01" { discard; }').discarded
    assert go('if date :originalzone "date" "zone" "-0800" { discard; }').discarded
    assert go('if date :zone "+0100" "date" "time" "08:30:00" { discard; }').discarded
    assert go('if currentdate "weekday" "3" { discard; }').discarded  # Wednesday
    assert go('if currentdate :zone "+0000" "iso8601" "2026-12-02T00:00:00+00:00" { discard; }').discarded
    assert go('if currentdate :value "ge" "date" "2026-12-01" { discard; }').discarded
    assert not go('if currentdate :value "lt" "date" "2026-12-01" { discard; }').discarded
    assert go('if currentdate "julian" "61376" { discard; }').discarded  # MJD of 2026-12-02
    assert not go('if date "x-missing" "year" "2026" { discard; }').discarded
    with pytest.raises(SieveError, match="unknown date part"):
        compile_script(req + 'if currentdate "fortnight" "1" { keep; }')
    with pytest.raises(SieveError, match=":zone is"):
        compile_script(req + 'if currentdate :zone "CET" "year" "2026" { keep; }')
