"""Core/echo (RFC 8620 §4): the arguments come back unchanged."""

from __future__ import annotations

from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import CORE


@method("Core/echo", CORE)
async def echo(cctx: CallContext, args: dict) -> dict:
    return args
