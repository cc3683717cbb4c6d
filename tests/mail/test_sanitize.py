"""suite.mail.sanitize: the hostile corpus leaves nothing that runs or loads; ordinary mail keeps its look."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from suite.mail.sanitize import frame_csp, height_hint, render_message, sanitize_html
from suite.testing import TEST_DATA

CORPUS = sorted((TEST_DATA / "hostile-html").glob("*.eml"))


def body_of(doc: str) -> str:
    return doc.split("<body>", 1)[1]


def test_corpus_is_there():
    assert len(CORPUS) >= 13


ALLOWED_ATTRS = {"href", "src", "alt", "title", "style", "width", "height", "target", "rel", "bgcolor", "align"}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
@pytest.mark.parametrize("images", [False, True])
def test_hostile_corpus_is_defused(path, images):
    doc = render_message(path.read_bytes(), images=images)
    assert doc is not None
    parsed = Tags()
    parsed.feed(body_of(doc.html))
    forbidden = {"script", "svg", "math", "style", "noscript", "iframe", "object", "embed", "form", "input", "button",
                 "base", "meta", "link", "video", "audio", "source", "picture", "template", "image", "use"}  # fmt: skip
    for tag, attrs in parsed.tags:
        assert tag not in forbidden, (tag, attrs)
        assert set(attrs) <= ALLOWED_ATTRS, (tag, attrs)
        for name, value in attrs.items():
            v = value.lower()
            assert not re.search(r"url\(|@import|expression|javascript:|vbscript:|data:text", v), (tag, name, value)
            if name == "href":
                assert v.startswith(("https:", "mailto:")), (tag, value)
            if name == "src":
                assert v.startswith("data:image/png") or (images and v.startswith("http://evil.test/")), (tag, value)


def test_remote_images_blocked_until_asked_and_cid_inlined():
    raw = (TEST_DATA / "hostile-html" / "remote-image.eml").read_bytes()
    off = render_message(raw, images=False)
    assert off is not None and off.blocked_images == 1 and "evil.test" not in off.html
    assert 'src="data:image/png;base64,' in off.html  # the message's own cid: image
    on = render_message(raw, images=True)
    assert on is not None and on.remote_images == 1 and 'src="http://evil.test/track.gif"' in on.html


def test_links_open_in_a_new_tab_without_opener_or_referrer():
    out = sanitize_html('<a href="https://example.org/x">x</a><a href="mailto:a@b.test">m</a><a href="/rel">r</a>').html
    assert out.count('target="_blank"') == 3 and out.count('rel="noopener noreferrer"') == 3
    assert 'href="https://example.org/x"' in out and 'href="mailto:a@b.test"' in out
    assert 'href="/rel"' not in out  # relative links have nowhere to go


def test_ordinary_formatting_is_kept():
    src = (
        '<table width="100%" cellpadding="4"><tr><td bgcolor="#eeeeee" style="color:#333;padding:4px">'
        "<b>Bold</b> <i>it</i> <font color=red>red</font></td></tr></table>"
        "<blockquote>quoted</blockquote><ul><li>one</li></ul><h2>Title</h2>"
    )
    out = sanitize_html(src).html
    for keep in ("<table", 'width="100%"', 'bgcolor="#eeeeee"', "color:#333", "<b>Bold</b>", "<blockquote>", "<li>"):
        assert keep in out, (keep, out)


def test_the_frame_policy_runs_nothing_and_loads_only_what_was_asked():
    off, on = frame_csp(False), frame_csp(True)
    for csp in (off, on):
        assert "default-src 'none'" in csp and "script-src" not in csp  # default-src 'none' covers scripts
        assert "sandbox" in csp and "allow-scripts" not in csp and "allow-same-origin" not in csp
        assert "form-action 'none'" in csp and "base-uri 'none'" in csp
    assert "img-src data:;" in off and "https:" in on


def test_plain_text_only_message_has_no_html_document():
    raw = b"From: a@b.test\r\nTo: c@d.test\r\nSubject: hi\r\n\r\nJust text.\r\n"
    assert render_message(raw) is None


def test_broken_charset_does_not_raise():
    raw = (
        b"From: a@b.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=x-no-such-charset\r\n\r\n<p>caf\xe9</p>\r\n"
    )
    doc = render_message(raw)
    assert doc is not None and "<p>caf" in doc.html


def test_huge_html_is_cut_with_a_note():
    doc = sanitize_html("<p>" + "a" * (5 * 1024 * 1024) + "</p>")
    assert doc.cut


def test_height_hint_grows_with_the_body():
    short = height_hint("<p>Hi</p>")
    long = height_hint("<p>" + "word " * 2000 + "</p>" + "<p>x</p>" * 50)
    images = height_hint('<img src="data:image/png;base64,AA" height="300"><img src="data:image/png;base64,AA">')
    assert 24 <= short < 100 < long
    assert images == 24 + 300 + 200


def test_unsized_remote_images_counts_what_the_measuring_copy_cannot_size():
    from suite.mail.sanitize import unsized_remote_images

    body = (
        '<img src="https://a.test/1.png"><img src="http://a.test/2.png" height="40">'
        '<img src="data:image/png;base64,AA=="><IMG alt="x" SRC="https://a.test/3.png" width="9">'
    )
    assert unsized_remote_images(body) == 2
