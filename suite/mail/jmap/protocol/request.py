"""The JMAP request object (RFC 8620 §3.3) and result references (§3.7). Pure functions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from suite.mail.jmap.protocol.errors import MethodError, RequestError
from suite.mail.jmap.protocol.types import valid_id


@dataclass
class Invocation:
    name: str
    args: dict[str, Any]
    call_id: str


@dataclass
class Request:
    using: list[str]
    calls: list[Invocation]
    created_ids: dict[str, str] | None = None
    # filled while running: creation id → real id (RFC 8620 §3.3 createdIds)
    created: dict[str, str] = field(default_factory=dict)


def parse(body: bytes, *, max_calls: int, capabilities: set[str]) -> Request:
    """Parse and check a request body; raises :class:`RequestError` as §3.6.1 says."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("notJSON", 400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise RequestError("notRequest", 400, "the request must be a JSON object")
    using, calls, created = data.get("using"), data.get("methodCalls"), data.get("createdIds")
    if not isinstance(using, list) or not all(isinstance(u, str) for u in using):
        raise RequestError("notRequest", 400, "'using' must be a list of capability URIs")
    if not isinstance(calls, list):
        raise RequestError("notRequest", 400, "'methodCalls' must be a list of invocations")
    if created is not None and (
        not isinstance(created, dict) or not all(isinstance(v, str) and valid_id(v) for v in created.values())
    ):
        raise RequestError("notRequest", 400, "'createdIds' must map creation ids to ids")
    for u in using:
        if u not in capabilities:
            raise RequestError("unknownCapability", 400, f"unknown capability {u!r}")
    if len(calls) > max_calls:
        # RFC 8620 §3.6.1: the limit that was exceeded
        raise RequestError("limit", 400, f"at most {max_calls} method calls per request", limit="maxCallsInRequest")
    out: list[Invocation] = []
    for c in calls:
        if (
            not isinstance(c, list)
            or len(c) != 3
            or not isinstance(c[0], str)
            or not isinstance(c[1], dict)
            or not isinstance(c[2], str)
        ):
            raise RequestError("notRequest", 400, "each invocation is [name, arguments, call id]")
        out.append(Invocation(c[0], c[1], c[2]))
    return Request(using, out, dict(created) if created is not None else None)


# ------------------------------------------------------------------ result references (§3.7)
def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")  # RFC 6901 §4


def evaluate_pointer(value: Any, path: str) -> Any:
    """RFC 6901 JSON Pointer with JMAP's ``*`` (RFC 8620 §3.7): on an array, ``*`` applies the
    rest of the path to every item, and arrays that result are flattened into one."""
    if path == "":
        return value
    if not path.startswith("/"):
        raise MethodError("invalidResultReference", f"bad JSON pointer {path!r}")
    tokens = [_unescape(t) for t in path[1:].split("/")]
    return _walk(value, tokens, path)


def _walk(value: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        return value
    tok, rest = tokens[0], tokens[1:]
    if isinstance(value, list):
        if tok == "*":
            out: list[Any] = []
            for item in value:
                r = _walk(item, rest, path)
                if isinstance(r, list):
                    out.extend(r)
                else:
                    out.append(r)
            return out
        if not tok.isdigit() or int(tok) >= len(value):
            raise MethodError("invalidResultReference", f"{path!r} does not match the result")
        return _walk(value[int(tok)], rest, path)
    if isinstance(value, dict) and tok in value:
        return _walk(value[tok], rest, path)
    raise MethodError("invalidResultReference", f"{path!r} does not match the result")


def resolve_references(args: dict[str, Any], responses: list[tuple[str, dict, str]]) -> dict[str, Any]:
    """Replace ``#name`` arguments by the value their ResultReference points at."""
    if not any(k.startswith("#") for k in args):
        return args
    out: dict[str, Any] = {}
    for key, value in args.items():
        if not key.startswith("#"):
            out[key] = value
            continue
        name = key[1:]
        if name in args:
            raise MethodError("invalidArguments", f"both {name!r} and {key!r} given")
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("resultOf"), str)
            or not isinstance(value.get("name"), str)
            or not isinstance(value.get("path"), str)
        ):
            raise MethodError("invalidResultReference", f"{key!r} is not a ResultReference")
        for rname, rargs, rid in responses:
            if rid == value["resultOf"]:
                if rname != value["name"]:
                    raise MethodError(
                        "invalidResultReference", f"call {rid!r} answered {rname!r}, not {value['name']!r}"
                    )
                out[name] = evaluate_pointer(rargs, value["path"])
                break
        else:
            raise MethodError("invalidResultReference", f"no earlier result for call {value['resultOf']!r}")
    return out
