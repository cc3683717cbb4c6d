"""Runs a JMAP request's method calls in order (RFC 8620 §3.3–3.7): references resolved against
earlier results, creation ids shared across calls, errors per call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from suite.mail.jmap.limits import Limits, account_id
from suite.mail.jmap.protocol.errors import MethodError
from suite.mail.jmap.protocol.request import Request, resolve_references

log = structlog.get_logger("suite.jmap")


@dataclass
class CallContext:
    """What a method sees: the caller's account, the store, the request (creation ids) and limits."""

    account_id: int
    address: str
    ctx: Any  # suite.context.Context
    store: Any  # suite.mail.store.MailStore
    request: Request
    limits: Limits
    using: set[str] = field(default_factory=set)
    submitter: Any = None  # suite.mail.jmap.submit.Submitter
    pusher: Any = None  # suite.mail.jmap.push.Pusher
    cache: dict = field(default_factory=dict)  # per app (one database): derived values keyed by state
    call_id: str = ""
    # extra responses a method adds after its own (EmailSubmission/set's implicit Email/set)
    extra: list[tuple[str, dict, str]] = field(default_factory=list)

    @property
    def jmap_account_id(self) -> str:
        return account_id(self.account_id)

    def check_account(self, args: dict) -> None:
        """RFC 8620 §3.6.2 accountNotFound: only the caller's own account exists for them."""
        acc = args.get("accountId")
        if not isinstance(acc, str):
            raise MethodError("invalidArguments", "accountId is required")
        if acc != self.jmap_account_id:
            raise MethodError("accountNotFound", "no such account")

    def created_id(self, ref: str) -> str | None:
        """The id a ``#creationId`` reference stands for (RFC 8620 §5.3)."""
        return self.request.created.get(ref)


Handler = Callable[[CallContext, dict], Awaitable[dict]]


@dataclass(frozen=True)
class Method:
    capability: str
    handler: Handler


REGISTRY: dict[str, Method] = {}


def method(name: str, capability: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        REGISTRY[name] = Method(capability, fn)
        return fn

    return deco


async def run(request: Request, make_ctx: Callable[[Request], CallContext], session_state: str = "") -> dict:
    """The Response object (RFC 8620 §3.4)."""
    from suite.mail.jmap import methods  # noqa: F401  (registers every method)

    responses: list[tuple[str, dict, str]] = []
    if request.created_ids is not None:
        request.created.update(request.created_ids)
    using = set(request.using)
    for call in request.calls:
        cctx = make_ctx(request)
        cctx.using = using
        cctx.call_id = call.call_id
        m = REGISTRY.get(call.name)
        try:
            if m is None:
                raise MethodError("unknownMethod", f"unknown method {call.name!r}")
            if m.capability not in using:
                # RFC 8620 §3.6.2: a method of a capability the request did not ask for (core too)
                raise MethodError("unknownMethod", f"{call.name} needs {m.capability!r} in 'using'")
            args = resolve_references(call.args, responses)
            result = await m.handler(cctx, args)
            responses.append((call.name, result, call.call_id))
            responses.extend(cctx.extra)
        except MethodError as exc:
            responses.append(("error", exc.args_json(), call.call_id))
        except Exception:
            log.exception("jmap.method_failed", method=call.name)
            responses.append(("error", {"type": "serverFail", "description": "internal error"}, call.call_id))
    out: dict[str, Any] = {
        "methodResponses": [[n, a, i] for n, a, i in responses],
        "sessionState": session_state,
    }
    if request.created_ids is not None:
        out["createdIds"] = dict(request.created)
    return out
