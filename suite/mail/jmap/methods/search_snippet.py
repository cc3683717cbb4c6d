"""SearchSnippet/get (RFC 8621 §5.1): the subject and a body excerpt with the search terms of the
filter marked (<mark>), HTML-escaped."""

from __future__ import annotations

import html
import re

from suite.mail.jmap import emaildata, message
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.common import check_known_args
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import MethodError
from suite.mail.mime.structure import iter_headers


def terms(flt) -> list[str]:
    out: list[str] = []
    if isinstance(flt, dict):
        for key in ("text", "subject", "body"):
            if isinstance(flt.get(key), str):
                out += [t for t in flt[key].split() if t]
        for c in flt.get("conditions") or []:
            if flt.get("operator") != "NOT":
                out += terms(c)
    return list(dict.fromkeys(out))


def highlight(text: str, words: list[str], window: int | None = None) -> str | None:
    if not words:
        return None
    rx = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.I)
    m = rx.search(text)
    if m is None:
        return None
    if window is not None:
        start = max(0, m.start() - window // 3)
        text = ("…" if start else "") + text[start : start + window]
    out, pos = [], 0
    for m in rx.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        out.append("<mark>" + html.escape(m.group(0)) + "</mark>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


@method("SearchSnippet/get", MAIL)
async def search_snippet_get(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(args, {"accountId", "filter", "emailIds"})
    ids = args.get("emailIds")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MethodError("invalidArguments", "emailIds must be a list of ids")
    if len(ids) > cctx.limits.max_objects_in_get:
        raise MethodError("requestTooLarge", "too many emailIds")
    words = terms(args.get("filter"))
    nums = {i: types.parse("e", i) for i in ids}
    store = cctx.store
    rows = await emaildata.rows(store, cctx.account_id, [n for n in nums.values() if n is not None])
    structs = await emaildata.structures(store, list(rows))
    out, not_found = [], []
    for i in ids:
        n = nums[i]
        if n is None or n not in rows or n not in structs:
            not_found.append(i)
            continue
        raw = await store.raw(rows[n].blob)
        st = structs[n]
        headers = iter_headers(raw, st.root.hdr_start, st.root.body_start)
        subject = message.header_value(raw, headers, message.CONVENIENCE["subject"]) or ""
        text_body, html_body, _ = message.classify(message.body_tree(raw, st))
        body = ""
        for bp in text_body or html_body:
            t, _ = message.text_of(raw, bp)
            body += " " + (message.html_to_text(t) if bp.type == "text/html" else t)
        out.append(
            {
                "emailId": i,
                "subject": highlight(subject, words),
                "preview": highlight(" ".join(body.split()), words, window=200),
            }
        )
    return {"accountId": cctx.jmap_account_id, "list": out, "notFound": not_found or None}
