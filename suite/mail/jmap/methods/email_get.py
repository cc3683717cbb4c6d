"""Email/get (RFC 8621 §4.2): metadata, header forms, body structure and values, preview."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from suite.mail.jmap import emaildata, message
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.common import check_known_args, get_ids
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import MethodError
from suite.mail.mime import MessageStructure
from suite.mail.mime.structure import iter_headers
from suite.mail.store import emails as model

METADATA = {"id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt"}
BODY = {"bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments", "hasAttachment", "preview"}
KNOWN = METADATA | BODY | set(message.CONVENIENCE) | {"headers"}
# what a row answers without its blob: its columns and its cached list facts
FROM_ROW = METADATA | {"hasAttachment", *message.LIST_FACTS}
DEFAULT = [
    "id",
    "blobId",
    "threadId",
    "mailboxIds",
    "keywords",
    "size",
    "receivedAt",
    "messageId",
    "inReplyTo",
    "references",
    "sender",
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "sentAt",
    "hasAttachment",
    "preview",
    "bodyValues",
    "textBody",
    "htmlBody",
    "attachments",
]
ARGS = {
    "accountId",
    "ids",
    "properties",
    "bodyProperties",
    "fetchTextBodyValues",
    "fetchHTMLBodyValues",
    "fetchAllBodyValues",
    "maxBodyValueBytes",
}


def parse_properties(args: dict) -> tuple[list[str], list[str]]:
    props = args.get("properties")
    if props is None:
        props = DEFAULT
    if not isinstance(props, list) or not all(isinstance(p, str) for p in props):
        raise MethodError("invalidArguments", "properties must be a list of names")
    for p in props:
        if p not in KNOWN and message.parse_header_prop(p) is None:
            raise MethodError("invalidArguments", f"unknown property {p!r}")
    body_props = args.get("bodyProperties")
    if body_props is None:
        body_props = message.BODY_PROPERTIES
    if not isinstance(body_props, list) or not all(isinstance(p, str) for p in body_props):
        raise MethodError("invalidArguments", "bodyProperties must be a list of names")
    for p in body_props:
        if p not in message.ALL_BODY_PROPERTIES and message.parse_header_prop(p) is None:
            raise MethodError("invalidArguments", f"unknown body property {p!r}")
    return list(dict.fromkeys(["id", *props])), body_props


def _utc(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class BodyOptions:
    fetch_text: bool
    fetch_html: bool
    fetch_all: bool
    max_bytes: int


def body_options(args: dict) -> BodyOptions:
    max_bytes = args.get("maxBodyValueBytes", 0)
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
        raise MethodError("invalidArguments", "maxBodyValueBytes must be a non-negative integer")
    return BodyOptions(
        bool(args.get("fetchTextBodyValues")),
        bool(args.get("fetchHTMLBodyValues")),
        bool(args.get("fetchAllBodyValues")),
        max_bytes,
    )


def _body_values(raw: bytes, tree, text_body, html_body, opts: BodyOptions) -> dict[str, Any]:
    values: dict[str, Any] = {}
    chosen = []
    if opts.fetch_all:
        stack = [tree]
        while stack:
            b = stack.pop(0)
            if b.is_multipart():
                stack[:0] = b.sub
            elif b.type.startswith("text/"):
                chosen.append(b)
    else:
        if opts.fetch_text:
            chosen += text_body
        if opts.fetch_html:
            chosen += html_body
    for bp in chosen:
        if bp.part_id in values or not bp.type.startswith("text/"):
            continue
        text, problem = message.text_of(raw, bp)
        text, truncated = message.truncate_utf8(text, opts.max_bytes)
        values[bp.part_id or ""] = {"value": text, "isEncodingProblem": problem, "isTruncated": truncated}
    return values


def render(
    raw: bytes,
    st: MessageStructure | None,
    props: list[str],
    body_props: list[str],
    opts: BodyOptions,
    row: emaildata.EmailRow | None,
    id_: str | None,
    blob_id: str | None = None,
) -> dict[str, Any]:
    """One Email object; ``row`` is None for a parsed blob (Email/parse: no metadata)."""
    obj: dict[str, Any] = {}
    headers: list = []
    tree = None
    text_body: list = []
    html_body: list = []
    attachments: list = []
    if st is not None:
        headers = iter_headers(raw, st.root.hdr_start, st.root.body_start)
        tree = message.body_tree(raw, st)
        text_body, html_body, attachments = message.classify(tree)
    email_num = row.id if row is not None else 0

    def part_blob(email_id: int, path: tuple[int, ...]) -> str | None:
        return types.part_blob_id(email_id, path) if row is not None else None

    for p in props:
        if p == "id":
            obj[p] = id_
        elif p == "blobId":
            obj[p] = types.blob_id(row.blob) if row is not None else blob_id
        elif p == "threadId":
            obj[p] = types.make("T", row.thread_id) if row is not None else None
        elif p == "mailboxIds":
            obj[p] = {types.make("M", m): True for m in row.mailbox_ids} if row is not None else None
        elif p == "keywords":
            obj[p] = {k: True for k in row.keywords} if row is not None else None
        elif p == "size":
            obj[p] = row.size if row is not None else len(raw)
        elif p == "receivedAt":
            obj[p] = _utc(row.received_at) if row is not None else None
        elif p == "hasAttachment":
            obj[p] = row.has_attachment if row is not None else bool(attachments)
        elif st is None and row is not None and row.facts is not None and p in row.facts:
            obj[p] = row.facts[p]  # a list property cached at delivery (message.LIST_FACTS)
        elif p == "headers":
            obj[p] = message.headers_list(raw, headers)
        elif p in message.CONVENIENCE:
            obj[p] = message.header_value(raw, headers, message.CONVENIENCE[p])
        elif p.startswith("header:"):
            hp = message.parse_header_prop(p)
            assert hp is not None
            obj[p] = message.header_value(raw, headers, hp)
        elif p == "preview":
            obj[p] = message.preview(raw, text_body, html_body)
        elif p == "bodyStructure" and tree is not None:
            bprops = body_props if "subParts" in body_props else [*body_props, "subParts"]
            obj[p] = message.body_part_json(raw, tree, bprops, email_num, part_blob)
        elif p in ("textBody", "htmlBody", "attachments"):
            parts = {"textBody": text_body, "htmlBody": html_body, "attachments": attachments}[p]
            plain = [b for b in body_props if b != "subParts"]
            obj[p] = [message.body_part_json(raw, bp, plain, email_num, part_blob) for bp in parts]
        elif p == "bodyValues" and tree is not None:
            obj[p] = _body_values(raw, tree, text_body, html_body, opts)
    return obj


@method("Email/get", MAIL)
async def email_get(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(args, ARGS)
    ids = get_ids(cctx, args, "e")
    if ids is None:
        raise MethodError("requestTooLarge", "ask for Emails by id (Email/query gives them)")
    props, body_props = parse_properties(args)
    opts = body_options(args)
    nums = {i: types.parse("e", i) for i in ids}
    wanted = [n for n in nums.values() if n is not None]
    store = cctx.store
    async with store.raw_db.read() as c:
        st = await model.state(c, cctx.account_id, model.EMAIL)
    rows = await emaildata.rows(store, cctx.account_id, wanted)
    need_raw = any(p not in FROM_ROW for p in props)
    need_facts = not need_raw and any(p not in METADATA for p in props)
    missing = [r.id for r in rows.values() if r.facts is None] if need_facts else []
    structs = await emaildata.structures(store, list(rows) if need_raw else missing) if need_raw or missing else {}
    if missing:
        await emaildata.fill_facts(store, [rows[m] for m in missing], structs)
    found: list[dict[str, Any]] = []
    not_found: list[str] = []
    for i in ids:
        n = nums[i]
        row = rows.get(n) if n is not None else None
        if row is None or (need_raw and row.id not in structs) or (need_facts and row.facts is None):
            not_found.append(i)
            continue
        raw = await store.raw(row.blob) if need_raw else b""
        found.append(render(raw, structs.get(row.id) if need_raw else None, props, body_props, opts, row, i))
    return {"accountId": cctx.jmap_account_id, "state": types.state(st), "list": found, "notFound": not_found}
