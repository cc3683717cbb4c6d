"""Email/query filters and sorts (RFC 8621 §4.4) compiled to one SQL statement over the
``emails`` rows (and the memberships when a mailbox is given), so a query never loops over an
account's messages in Python. Pure: builds SQL text and parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import MethodError
from suite.mail.mime.searchtext import fold
from suite.mail.store import emails as model
from suite.mail.store import search

CONDITIONS = {
    "inMailbox",
    "inMailboxOtherThan",
    "before",
    "after",
    "minSize",
    "maxSize",
    "allInThreadHaveKeyword",
    "someInThreadHaveKeyword",
    "noneInThreadHaveKeyword",
    "hasKeyword",
    "notKeyword",
    "hasAttachment",
    "text",
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "body",
    "header",
}


@dataclass
class Compiled:
    where: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    needs_text: bool = False
    mailbox: int | None = None  # a top-level inMailbox: the query is driven by that mailbox's index


def utc_date(value: Any, name: str) -> float:
    if not isinstance(value, str):
        raise MethodError("invalidArguments", f"{name} must be a UTCDate")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MethodError("invalidArguments", f"{name} must be a UTCDate") from None
    if dt.tzinfo is None:
        raise MethodError("invalidArguments", f"{name} must be a UTCDate")
    return dt.timestamp()


def _keyword(value: Any) -> str:
    if not isinstance(value, str) or not model.valid_keyword(value):
        raise MethodError("invalidArguments", "bad keyword")
    return value.lower()


class Compiler:
    def __init__(self, pg: bool) -> None:
        self.pg = pg
        self.needs_text = False

    def contains(self, expr: str) -> str:
        return f"strpos({expr}, ?) > 0" if self.pg else f"instr({expr}, ?) > 0"

    def header_json(self, name: str) -> tuple[str, list[Any]]:
        """The JSON text of one header's decoded values (``message_texts.headers``)."""
        self.needs_text = True
        if self.pg:
            return "coalesce((t.headers::jsonb -> CAST(? AS text))::text, '')", [name]
        return "coalesce(json_extract(t.headers, ?), '')", ['$."' + name + '"']

    def mailbox_id(self, value: Any) -> int:
        n = types.parse("M", value)
        if n is None:
            return -1  # no such mailbox: matches nothing
        return n

    def condition(self, cond: Any) -> tuple[str, list[Any]]:
        if not isinstance(cond, dict):
            raise MethodError("invalidArguments", "a filter must be an object")
        if "operator" in cond:
            op, subs = cond.get("operator"), cond.get("conditions")
            if op not in ("AND", "OR", "NOT") or not isinstance(subs, list) or set(cond) - {"operator", "conditions"}:
                raise MethodError("invalidArguments", "bad FilterOperator")
            parts = [self.condition(s) for s in subs]
            if not parts:
                return ("1=1", []) if op != "OR" else ("1=0", [])
            flat = [a for _, pa in parts for a in pa]
            if op == "AND":
                return "(" + " AND ".join(p for p, _ in parts) + ")", flat
            if op == "OR":
                return "(" + " OR ".join(p for p, _ in parts) + ")", flat
            return "NOT (" + " OR ".join(p for p, _ in parts) + ")", flat
        bad = [k for k in cond if k not in CONDITIONS]
        if bad:
            raise MethodError("unsupportedFilter", f"unknown filter condition {bad[0]!r}")
        sql: list[str] = []
        args: list[Any] = []
        for key, value in cond.items():
            if key == "inMailbox":
                sql.append("EXISTS (SELECT 1 FROM messages mm WHERE mm.email_id = e.id AND mm.mailbox_id = ?)")
                args.append(self.mailbox_id(value))
            elif key == "inMailboxOtherThan":
                if not isinstance(value, list):
                    raise MethodError("invalidArguments", "inMailboxOtherThan is a list of ids")
                ids = [self.mailbox_id(v) for v in value] or [-1]
                sql.append(
                    "EXISTS (SELECT 1 FROM messages mm WHERE mm.email_id = e.id AND mm.mailbox_id NOT IN "
                    f"({', '.join('?' * len(ids))}))"
                )
                args += ids
            elif key == "before":
                sql.append("e.received_at < ?")
                args.append(utc_date(value, key))
            elif key == "after":
                sql.append("e.received_at >= ?")
                args.append(utc_date(value, key))
            elif key in ("minSize", "maxSize"):
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise MethodError("invalidArguments", f"{key} must be an unsigned integer")
                sql.append("e.size >= ?" if key == "minSize" else "e.size < ?")
                args.append(value)
            elif key in ("hasKeyword", "notKeyword"):
                sql.append(("e.keywords LIKE ?") if key == "hasKeyword" else "e.keywords NOT LIKE ?")
                args.append(f"% {_keyword(value)} %")
            elif key in ("allInThreadHaveKeyword", "someInThreadHaveKeyword", "noneInThreadHaveKeyword"):
                kw = f"% {_keyword(value)} %"
                if key == "allInThreadHaveKeyword":
                    sql.append(
                        "NOT EXISTS (SELECT 1 FROM emails te WHERE te.account_id = e.account_id AND "
                        "te.thread_id = e.thread_id AND te.keywords NOT LIKE ?)"
                    )
                else:
                    neg = "NOT " if key == "noneInThreadHaveKeyword" else ""
                    sql.append(
                        f"{neg}EXISTS (SELECT 1 FROM emails te WHERE te.account_id = e.account_id AND "
                        "te.thread_id = e.thread_id AND te.keywords LIKE ?)"
                    )
                args.append(kw)
            elif key == "hasAttachment":
                sql.append("e.has_attachment = ?")
                args.append(bool(value))
            elif key in ("from", "to", "cc", "bcc", "subject"):
                if not isinstance(value, str):
                    raise MethodError("invalidArguments", f"{key} must be a string")
                # the full-text index narrows it down, the header's own text decides
                fts = search.match(self.pg, value, "subject" if key == "subject" else "addrs")
                if fts is not None:
                    sql.append(fts[0])
                    args += fts[1]
                expr, hargs = self.header_json(key)
                sql.append(self.contains(expr))
                args += [*hargs, fold(value)]
            elif key in ("body", "text"):
                # token-prefix matches through the full-text index (suite.mail.store.search)
                if not isinstance(value, str):
                    raise MethodError("invalidArguments", f"{key} must be a string")
                fts = search.match(self.pg, value, "body" if key == "body" else None)
                if fts is not None:
                    sql.append(fts[0])
                    args += fts[1]
            elif key == "header":
                if (
                    not isinstance(value, list)
                    or not 1 <= len(value) <= 2
                    or not all(isinstance(v, str) for v in value)
                    or not value[0]
                    or not all(33 <= ord(ch) <= 126 and ch not in '"\\' for ch in value[0])
                ):
                    raise MethodError("invalidArguments", "header is [name] or [name, value]")
                name = value[0].lower()
                if len(value) == 1:
                    self.needs_text = True
                    if self.pg:
                        sql.append("jsonb_exists(t.headers::jsonb, CAST(? AS text))")
                        args.append(name)
                    else:
                        sql.append("json_type(t.headers, ?) IS NOT NULL")
                        args.append('$."' + name + '"')
                else:
                    expr, hargs = self.header_json(name)
                    sql.append(self.contains(expr))
                    args += [*hargs, fold(value[1])]
        if not sql:
            return "1=1", []
        return "(" + " AND ".join(sql) + ")", args


SORTS = {
    "receivedAt",
    "sentAt",
    "size",
    "from",
    "to",
    "subject",
    "hasKeyword",
    "allInThreadHaveKeyword",
    "someInThreadHaveKeyword",
}


def order_by(sort: Any, mailbox_driven: bool) -> tuple[str, list[Any]]:
    if sort is None:
        sort = [{"property": "receivedAt", "isAscending": False}]
    if not isinstance(sort, list):
        raise MethodError("invalidArguments", "sort must be a list of Comparators")
    parts: list[str] = []
    args: list[Any] = []
    last_desc = True
    for comp in sort:
        if not isinstance(comp, dict) or not isinstance(comp.get("property"), str):
            raise MethodError("invalidArguments", "bad Comparator")
        prop = comp["property"]
        if prop not in SORTS:
            raise MethodError("unsupportedSort", f"cannot sort by {prop!r}")
        coll = comp.get("collation")
        if coll is not None and coll not in ("i;ascii-casemap", "i;unicode-casemap", "i;ascii-numeric"):
            raise MethodError("unsupportedSort", f"unknown collation {coll!r}")
        desc = comp.get("isAscending", True) is False
        last_desc = desc
        d = " DESC" if desc else ""
        if prop == "receivedAt":
            parts.append(("m.internaldate" if mailbox_driven else "e.received_at") + d)
        elif prop == "sentAt":
            parts.append(f"coalesce(e.sent_at, e.received_at){d}")
        elif prop == "size":
            parts.append(f"e.size{d}")
        elif prop == "from":
            parts.append(f"e.from_sort{d}")
        elif prop == "to":
            parts.append(f"e.to_sort{d}")
        elif prop == "subject":
            parts.append(f"e.subject{d}")
        else:
            kw = f"% {_keyword(comp.get('keyword'))} %"
            if prop == "hasKeyword":
                parts.append(f"(CASE WHEN e.keywords LIKE ? THEN 1 ELSE 0 END){d}")
            elif prop == "someInThreadHaveKeyword":
                parts.append(
                    "(CASE WHEN EXISTS (SELECT 1 FROM emails te WHERE te.account_id = e.account_id AND "
                    f"te.thread_id = e.thread_id AND te.keywords LIKE ?) THEN 1 ELSE 0 END){d}"
                )
            else:
                parts.append(
                    "(CASE WHEN NOT EXISTS (SELECT 1 FROM emails te WHERE te.account_id = e.account_id AND "
                    f"te.thread_id = e.thread_id AND te.keywords NOT LIKE ?) THEN 1 ELSE 0 END){d}"
                )
            args.append(kw)
    parts.append("e.id DESC" if last_desc else "e.id")
    return ", ".join(parts), args


def top_mailbox(flt: Any) -> int | None:
    """The mailbox of a top-level ``inMailbox`` (alone or in a top-level AND)."""
    if not isinstance(flt, dict):
        return None
    if "inMailbox" in flt and "operator" not in flt:
        return types.parse("M", flt["inMailbox"])
    if flt.get("operator") == "AND" and isinstance(flt.get("conditions"), list):
        for c in flt["conditions"]:
            if isinstance(c, dict) and "inMailbox" in c and "operator" not in c:
                return types.parse("M", c["inMailbox"])
    return None


def only_mailbox(flt: Any) -> int | None:
    """The mailbox when the filter is nothing but ``{"inMailbox": id}`` (a folder opened in a client)."""
    if isinstance(flt, dict) and list(flt) == ["inMailbox"] and isinstance(flt["inMailbox"], str):
        return types.parse("M", flt["inMailbox"])
    return None


def _without_top_mailbox(flt: dict) -> dict:
    if "inMailbox" in flt and "operator" not in flt:
        return {k: v for k, v in flt.items() if k != "inMailbox"}
    conds = list(flt["conditions"])
    for i, c in enumerate(conds):
        if isinstance(c, dict) and "inMailbox" in c and "operator" not in c:
            conds[i] = {k: v for k, v in c.items() if k != "inMailbox"}
            break
    return {**flt, "conditions": conds}


def build(account_id: int, flt: Any, sort: Any, pg: bool) -> tuple[str, list[Any], str, list[Any]]:
    """(FROM+WHERE sql, args, ORDER BY sql, args) — ``e`` is the Email, ``m`` the membership."""
    comp = Compiler(pg)
    mb = top_mailbox(flt)
    if mb is not None:
        flt = _without_top_mailbox(flt)  # the join on that mailbox's memberships does it
    where, args = comp.condition(flt) if flt is not None else ("1=1", [])
    if mb is not None:
        src = "messages m JOIN emails e ON e.id = m.email_id"
        base, bargs = "m.mailbox_id = ? AND e.account_id = ?", [mb, account_id]
    else:
        src = "emails e"
        base, bargs = "e.account_id = ?", [account_id]
    if comp.needs_text:
        src += " JOIN message_texts t ON t.blob = e.blob"
    order, oargs = order_by(sort, mb is not None)
    return f"FROM {src} WHERE {base} AND {where}", bargs + args, order, oargs
