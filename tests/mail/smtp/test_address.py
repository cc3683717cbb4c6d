"""Sans-I/O MAIL/RCPT argument parsing (RFC 5321 §4.1.2, RFC 6531 §3.3)."""

from __future__ import annotations

import pytest

from suite.mail.smtp.address import AddressError, parse_path_argument


def test_plain_path_with_params() -> None:
    p = parse_path_argument("FROM:<User@Example.TEST> SIZE=100 BODY=8BITMIME", "FROM", allow_null=True)
    assert p.mailbox is not None
    assert (p.mailbox.local_part, p.mailbox.domain) == ("User", "example.test")
    assert p.params == {"SIZE": "100", "BODY": "8BITMIME"}


def test_null_reverse_path() -> None:
    assert parse_path_argument("FROM:<>", "FROM", allow_null=True).mailbox is None
    with pytest.raises(AddressError):
        parse_path_argument("TO:<>", "TO", allow_null=False)


def test_source_route_is_kept_for_the_relay_check() -> None:
    p = parse_path_argument("TO:<@a.test,@B.test:x@c.test>", "TO", allow_null=False)
    assert p.source_route == ("a.test", "b.test") and str(p.mailbox) == "x@c.test"


def test_quoted_local_part_and_literals() -> None:
    p = parse_path_argument('TO:<"odd >local"@example.test>', "TO", allow_null=False)
    assert p.mailbox is not None and p.mailbox.local_part == '"odd >local"'
    p = parse_path_argument("TO:<x@[IPv6:2001:db8::1]>", "TO", allow_null=False)
    assert p.mailbox is not None and p.mailbox.is_literal and str(p.mailbox.literal_ip) == "2001:db8::1"
    with pytest.raises(AddressError):
        parse_path_argument("TO:<x@[300.1.1.1]>", "TO", allow_null=False)


@pytest.mark.parametrize("local", ["a%b.test", "b.test!a"])
def test_relay_hacks_flagged(local: str) -> None:
    p = parse_path_argument(f"TO:<{local}@example.test>", "TO", allow_null=False)
    assert p.mailbox is not None and p.mailbox.looks_like_relay_hack


@pytest.mark.parametrize(
    "arg",
    [
        "TO:x",
        "TO:<a@b",
        "TO:<a@b>x",
        "TO:<a@-b.test>",
        "TO:<.a@b.test>",
        "TO:<a@b.test> =x",
        "TO:<a@b.test> K=1 K=2",
        "FROM:<a@b.test>",
    ],
)
def test_syntax_errors(arg: str) -> None:
    with pytest.raises(AddressError):
        parse_path_argument(arg, "TO", allow_null=False)


def test_utf8_mailbox() -> None:
    p = parse_path_argument("TO:<δοκιμή@παράδειγμα.test>", "TO", allow_null=False)
    assert p.mailbox is not None and not p.mailbox.is_ascii
