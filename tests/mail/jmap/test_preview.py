"""The preview (RFC 8621 §4.1.4) looks at a body's first characters only: the same answer as
collapsing the whitespace of the whole text, for any text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from suite.mail import mime
from suite.mail.jmap import message


def _naive(text: str, n: int) -> str:
    return " ".join(text.split())[:n]


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab \t\r\n\u00a0\u2028x"), max_size=3000),
    st.integers(min_value=0, max_value=300),
)
def test_collapsed_head_is_the_whole_collapse_cut(text: str, n: int) -> None:
    assert message.collapsed_head(text, n) == _naive(text, n)


def test_long_words_and_long_runs_of_space() -> None:
    for text in ("x" * 5000, " " * 5000 + "y" * 10, ("w" * 300 + " ") * 50, "a " * 2000, "\r\n" * 3000 + "z"):
        assert message.collapsed_head(text) == _naive(text, 256)


def test_preview_of_a_megabyte_body() -> None:
    lines = b"".join(b"%d%s\r\n" % (i, b"X" * 78) for i in range(13000))
    raw = b"From: <a@b.test>\r\nSubject: big\r\n\r\n  \r\n" + lines
    st_ = mime.parse_structure(raw)
    facts = message.list_facts(raw, st_)
    assert facts["preview"] == _naive(lines.decode(), 256)
