"""Mail HTML made safe to show: an nh3 (ammonia) allow-list, no CSS ``url()``, no remote resources.

The web app shows a message's HTML in a sandboxed iframe (no scripts, opaque origin) loaded from the
gateway, which serves the document built here with :func:`frame_csp` as its Content-Security-Policy.
Three layers, each enough on its own against script: the allow-list (no script, SVG, MathML, forms,
``<base>``, ``<meta>``, event handlers, ``srcset``), the frame's sandbox, and its CSP.

Remote images are dropped unless the reader asked for them (``images=True``); images the message
carries itself (``cid:`` parts) are inlined as ``data:`` URIs. Pure: bytes/str in, str out.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import nh3

#: Tags a mail body may keep (structure, text, tables, images). Not here, so removed with their
#: markup kept as text: everything else; removed with their content: CLEAN_CONTENT.
TAGS = {
    "a", "abbr", "address", "article", "b", "big", "blockquote", "br", "caption", "center", "cite", "code",
    "col", "colgroup", "dd", "del", "details", "div", "dl", "dt", "em", "figcaption", "figure", "font",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "i", "img", "ins", "kbd", "li", "mark",
    "ol", "p", "pre", "q", "s", "section", "small", "span", "strike", "strong", "sub", "summary", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "wbr",
}  # fmt: skip
#: Removed with everything inside (their text is code or hidden, never meant for the reader).
CLEAN_CONTENT = {"script", "style", "title", "noscript", "template", "svg", "math", "object", "iframe", "head"}

ATTRIBUTES = {
    "*": {"style", "title", "dir", "lang", "align", "valign"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height", "border"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor"},
    "td": {"width", "height", "colspan", "rowspan", "bgcolor", "nowrap"},
    "th": {"width", "height", "colspan", "rowspan", "bgcolor", "nowrap"},
    "tr": {"bgcolor"},
    "font": {"color", "face", "size"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "ol": {"start", "type"},
    "li": {"value"},
}

#: CSS properties a ``style`` attribute keeps (none of them takes an image or a URL).
STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style", "font-weight",
    "font-variant", "line-height", "letter-spacing", "word-spacing", "text-align", "text-decoration",
    "text-indent", "text-transform", "white-space", "vertical-align", "direction",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left", "border-color", "border-style",
    "border-width", "border-collapse", "border-spacing", "border-radius",
    "width", "height", "max-width", "min-width", "max-height", "min-height", "display", "float", "clear",
    "list-style-type", "table-layout", "overflow-wrap", "word-break",
}  # fmt: skip

#: Anything in a CSS value that can fetch or run: url(), image-set(), expression(), escapes, @import.
_CSS_BAD = re.compile(r"url\s*\(|image-set|image\s*\(|expression|@import|\\|javascript:|behavior", re.I)
_DATA_IMAGE = re.compile(r"data:image/(png|gif|jpe?g|webp|bmp);base64,[a-z0-9+/=\s]*$", re.I)
_HREF_OK = re.compile(r"(https?|mailto):", re.I)
_REMOTE = re.compile(r"https?://", re.I)

MAX_INLINE_IMAGES = 8 * 1024 * 1024  # bytes of cid: images inlined as data: URIs, in all
MAX_HTML = 4 * 1024 * 1024  # characters of HTML sanitised (the rest is cut, with a note)


@dataclass
class Sanitized:
    html: str
    blocked_images: int = 0  # remote images left out (the reader may ask for them)
    remote_images: int = 0  # remote images kept (images=True)
    cut: bool = False


@dataclass
class _Filter:
    images: bool
    cids: dict[str, str] = field(default_factory=dict)
    blocked: int = 0
    remote: int = 0

    def __call__(self, tag: str, attr: str, value: str) -> str | None:
        v = value.strip()
        if attr == "style":
            return None if _CSS_BAD.search(v) else value
        if attr == "href":
            return v if _HREF_OK.match(v) else None
        if tag == "img" and attr == "src":
            if v[:4].lower() == "cid:":
                return self.cids.get(_cid_key(v[4:]))
            if _DATA_IMAGE.match(v):
                return v
            if _REMOTE.match(v):
                if self.images:
                    self.remote += 1
                    return v
                self.blocked += 1
            return None
        if attr in ("bgcolor", "color"):
            return None if _CSS_BAD.search(v) else v
        return value


def _cid_key(cid: str) -> str:
    return cid.strip().strip("<>").lower()


def sanitize_html(source: str, *, images: bool = False, cids: dict[str, str] | None = None) -> Sanitized:
    """Clean one HTML body. ``cids`` maps Content-ID (without <>) to a ``data:`` URI."""
    cut = len(source) > MAX_HTML
    filt = _Filter(images=images, cids={_cid_key(k): v for k, v in (cids or {}).items()})
    out = nh3.clean(
        source[:MAX_HTML],
        tags=TAGS,
        clean_content_tags=CLEAN_CONTENT,
        attributes=ATTRIBUTES,
        attribute_filter=filt,
        strip_comments=True,
        link_rel="noopener noreferrer",
        url_schemes={"http", "https", "mailto", "cid", "data"},
        filter_style_properties=STYLE_PROPERTIES,
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    return Sanitized(out, blocked_images=filt.blocked, remote_images=filt.remote, cut=cut)


def frame_csp(images: bool, *, measure: bool = False) -> str:
    """The CSP of the served mail document: nothing runs, nothing loads but (when asked) images.

    ``measure``: the copy the reader lays out once, hidden, to learn the body's height (a frame without
    scripts cannot tell its parent): it keeps the app's origin so the app can read its layout, and so it
    loads nothing at all, not even images shown in the visible copy, and has no popups or links to follow.
    """
    if measure:
        return (
            "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src 'none'; "
            "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox allow-same-origin"
        )
    img = "data: https: http:" if images else "data:"
    return (
        f"default-src 'none'; img-src {img}; style-src 'unsafe-inline'; font-src 'none'; "
        "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; "
        "sandbox allow-popups allow-popups-to-escape-sandbox"
    )


FRAME_STYLE = """
html{color-scheme:light}
body{margin:0;padding:4px 2px;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
overflow-wrap:anywhere;word-break:break-word}
img{max-width:100%;height:auto}table{max-width:100%}pre{white-space:pre-wrap}
blockquote{margin:0 0 0 .5em;padding-left:.8em;border-left:3px solid #d0d7de;color:#57606a}
a{color:#0b57d0}
"""


def _parts(msg: EmailMessage):
    yield from msg.walk()


def _inline_images(msg: EmailMessage) -> dict[str, str]:
    out: dict[str, str] = {}
    budget = MAX_INLINE_IMAGES
    for part in _parts(msg):
        cid = part.get("content-id")
        ctype = part.get_content_type()
        if not cid or not re.fullmatch(r"image/(png|gif|jpe?g|webp|bmp)", ctype):
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or len(data) > budget:
            continue
        budget -= len(data)
        out[_cid_key(str(cid))] = f"data:{ctype};base64,{base64.b64encode(data).decode()}"
    return out


def html_part(msg: EmailMessage) -> str | None:
    """The message's HTML body (the text/html of its best alternative), decoded; None when it has none."""
    body = msg.get_body(preferencelist=("html",))
    if body is None or body.get_content_type() != "text/html":
        return None
    try:
        content = body.get_content()
    except (LookupError, ValueError, AssertionError):  # unknown charset, broken transfer encoding
        payload = body.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else None


@dataclass
class Document:
    html: str
    blocked_images: int
    remote_images: int
    height_hint: int = 0  # px the body needs at ~600 px wide, roughly (before the reader measured it)
    unsized_remote_images: int = 0  # remote images without a height: the measuring copy cannot load them


_TAG = re.compile(r"<[^>]*>")
_BLOCK = re.compile(r"<(?:p|div|br|tr|li|h[1-6]|blockquote|pre)\b", re.I)
_IMG_H = re.compile(r'<img\b[^>]*?height="(\d+)"', re.I)
_IMG = re.compile(r"<img\b[^>]*>", re.I)
_REMOTE_SRC = re.compile(r'\ssrc="https?:', re.I)
_HEIGHT = re.compile(r'\sheight="\d', re.I)


def unsized_remote_images(body: str) -> int:
    return sum(1 for tag in _IMG.findall(body) if _REMOTE_SRC.search(tag) and not _HEIGHT.search(tag))


def height_hint(body: str) -> int:
    """A rough height for the frame, since a sandboxed frame without scripts cannot report its own:
    text lines at ~80 characters, block breaks, image heights (200 px when unknown)."""
    text = html.unescape(_TAG.sub(" ", body))
    lines = len(" ".join(text.split())) // 80 + len(_BLOCK.findall(body))
    images = body.lower().count("<img")
    known = [min(int(h), 2000) for h in _IMG_H.findall(body)]
    return 24 + 24 * lines + sum(known) + 200 * (images - len(known))


def render_message(raw: bytes, *, images: bool = False) -> Document | None:
    """The sanitised HTML document of a raw RFC 5322 message (None when it has no HTML body)."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    source = html_part(msg)
    if source is None:
        return None
    clean = sanitize_html(source, images=images, cids=_inline_images(msg))
    note = '<p style="color:#57606a">[This message was cut: it is too long to show here.]</p>' if clean.cut else ""
    doc = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        f"<style>{FRAME_STYLE}</style></head><body>{clean.html}{note}</body></html>"
    )
    return Document(
        doc, clean.blocked_images, clean.remote_images, height_hint(clean.html), unsized_remote_images(clean.html)
    )
