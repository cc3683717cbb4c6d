"""The rule builder's Sieve: it compiles, does what the rule says on sample messages, reads back."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from suite.mail.sieve import Envelope, MessageView, compile_script, evaluate
from suite.mail.sieve.rules import RuleSet, parse_rules, quote, to_sieve


def run(rs: RuleSet, raw: bytes, mail_from: str = "x@remote.test"):
    script = compile_script(to_sieve(rs))
    return evaluate(script, MessageView.from_bytes(raw), Envelope(mail_from, "me@example.test"))


def msg(subject: str, frm: str = "Boss <boss@corp.test>", to: str = "me@example.test", body: str = "hi") -> bytes:
    return f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


def test_quote_escapes_backslash_and_quote():
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    name = 'we"ird\\name'
    script = compile_script('require "fileinto";\nfileinto ' + quote(name) + ";\n")
    assert script.commands[0].strings == (name,)


@pytest.mark.parametrize(
    "value",
    [
        'Invoice "Q3" \\ paid\\',  # quotes and backslashes, one at the very end
        '"; discard; #',  # a try to close the string and add a command
        'x" {\n}\ndiscard;\nif true { keep; } #',  # newlines: Sieve strings may span lines
        "text:\r\nkeep;\r\n.\r\n",  # a multi-line literal's syntax inside a quoted string
        "${subject} */\\ ? *",  # variables syntax and wildcards stay text for "contains"
    ],
)
def test_hostile_condition_values_stay_one_string(value):
    """Whatever a subject condition holds, the script compiles to the one rule it describes: the
    value is one quoted string (RFC 5228 §2.4.2), nothing of it becomes a command."""
    rs = RuleSet.model_validate(
        {
            "rules": [
                {
                    "name": 'evil"\nname',
                    "conditions": [{"field": "subject", "value": value}],
                    "actions": [{"type": "move", "mailbox": value}],
                }
            ]
        }
    )
    text = to_sieve(rs)
    script = compile_script(text)
    (rule,) = script.commands  # one if, holding what the rule says — nothing injected
    assert rule.name == "if" and [(c.name, c.strings) for c in rule.block] == [("fileinto", (value,)), ("stop", ())]
    assert rule.test is not None and rule.test.keys == (value,)
    assert parse_rules(text) == rs  # and it reads back unchanged
    if "\n" not in value and "\r" not in value:  # a header line cannot hold a newline
        out = run(rs, msg(f"Re: {value} (2)"))
        assert [s.mailbox for s in out.stores] == [value] and out.discarded is False
    out = run(rs, msg("something else"))
    assert [s.mailbox for s in out.stores] == ["INBOX"] and out.discarded is False


def test_move_flag_and_stop():
    rs = RuleSet.model_validate(
        {
            "rules": [
                {
                    "conditions": [{"field": "from", "value": "boss@"}],
                    "actions": [{"type": "flag"}, {"type": "move", "mailbox": 'Work "important"'}],
                },
                {"conditions": [], "actions": [{"type": "discard"}]},
            ]
        }
    )
    out = run(rs, msg("Q3"))
    assert [(s.mailbox, s.flags) for s in out.stores] == [('Work "important"', ("\\Flagged",))]
    assert out.discarded is False  # the first rule stopped
    out = run(rs, msg("Q3", frm="other@corp.test"))
    assert out.stores == [] and out.discarded is True


def test_flag_only_keeps_with_the_flag_and_does_not_leak_to_later_rules():
    rs = RuleSet.model_validate(
        {
            "rules": [
                {"conditions": [{"field": "subject", "value": "urgent"}], "actions": [{"type": "flag"}], "stop": False},
                {
                    "conditions": [{"field": "to", "op": "is", "value": "me@example.test"}],
                    "actions": [{"type": "move", "mailbox": "Me"}],
                },
            ]
        }
    )
    out = run(rs, msg("URGENT thing"))
    assert {(s.mailbox, s.flags) for s in out.stores} == {("INBOX", ("\\Flagged",)), ("Me", ())}


def test_size_any_forward_and_reply():
    rs = RuleSet.model_validate(
        {
            "rules": [
                {
                    "match": "any",
                    "conditions": [
                        {"field": "size", "op": "over", "value": 100},
                        {"field": "subject", "op": "not_contains", "value": "hello"},
                    ],
                    "actions": [
                        {"type": "forward", "address": "me@elsewhere.test", "keep": False},
                        {"type": "reply", "text": "Thanks,\nI am away.", "subject": "Away", "days": 3},
                    ],
                }
            ]
        }
    )
    out = run(rs, msg("hello", body="x" * 200))
    assert out.redirects == ["me@elsewhere.test"] and out.implicit_keep is False
    assert out.vacation is not None and out.vacation.days == 3 and out.vacation.reason == "Thanks,\nI am away."
    out = run(rs, msg("hello"))
    assert out.redirects == [] and [s.mailbox for s in out.stores] == ["INBOX"]


def test_reads_back_and_refuses_nonsense():
    rs = RuleSet.model_validate({"rules": [{"name": "a", "conditions": [], "actions": [{"type": "discard"}]}]})
    text = to_sieve(rs)
    assert parse_rules(text) == rs
    assert parse_rules(text.replace("discard;", "keep;")) is None  # edited by hand
    assert parse_rules("keep;") is None
    with pytest.raises(ValidationError):
        RuleSet.model_validate({"rules": [{"actions": [{"type": "forward", "address": "not an address"}]}]})
    with pytest.raises(ValidationError):
        RuleSet.model_validate({"rules": [{"actions": [{"type": "flag", "flag": "bad flag"}]}]})
    with pytest.raises(ValueError):
        to_sieve(
            RuleSet.model_validate(
                {
                    "rules": [
                        {
                            "conditions": [{"field": "size", "op": "contains", "value": 1}],
                            "actions": [{"type": "discard"}],
                        }
                    ]
                }
            )
        )


def test_out_of_office_runs_before_the_rules():
    rs = RuleSet.model_validate(
        {
            "out_of_office": {"enabled": True, "subject": "Away", "text": "Back on Monday.", "days": 2},
            "rules": [{"conditions": [], "actions": [{"type": "move", "mailbox": "All"}]}],
        }
    )
    out = run(rs, msg("hello"))
    assert out.vacation is not None and (out.vacation.subject, out.vacation.reason, out.vacation.days) == (
        "Away",
        "Back on Monday.",
        2,
    )
    assert [s.mailbox for s in out.stores] == ["All"]
    assert parse_rules(to_sieve(rs)) == rs
    off = RuleSet.model_validate({"out_of_office": {"enabled": False, "text": "x"}})
    assert run(off, msg("hello")).vacation is None
    with pytest.raises(ValueError, match="needs a text"):
        to_sieve(RuleSet.model_validate({"out_of_office": {"enabled": True, "text": " "}}))


def test_out_of_office_between_dates():
    from suite.mail.sieve import Envelope as Env

    rs = RuleSet.model_validate(
        {
            "out_of_office": {
                "enabled": True,
                "text": "Away.",
                "start": "2026-12-01T00:00:00+01:00",
                "end": "2026-12-10T00:00:00Z",
            }
        }
    )
    script = compile_script(to_sieve(rs))
    raw = MessageView.from_bytes(msg("hi"))

    def at(iso: str):
        import datetime

        now = datetime.datetime.fromisoformat(iso).timestamp()
        return evaluate(script, raw, Env("x@remote.test", "me@example.test", now=now)).vacation

    assert at("2026-11-30T22:59:59+00:00") is None
    assert at("2026-11-30T23:00:00+00:00") is not None  # start, given in +01:00
    assert at("2026-12-09T23:59:59+00:00") is not None
    assert at("2026-12-10T00:00:00+00:00") is None  # the end is exclusive
    assert parse_rules(to_sieve(rs)) == rs
    with pytest.raises(ValueError, match="before"):
        to_sieve(
            RuleSet.model_validate(
                {
                    "out_of_office": {
                        "enabled": True,
                        "text": "x",
                        "start": "2026-12-02T00:00:00Z",
                        "end": "2026-12-01T00:00:00Z",
                    }
                }
            )
        )
