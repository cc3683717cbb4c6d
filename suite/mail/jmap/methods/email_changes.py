"""Email/changes (RFC 8621 §4.3)."""

from __future__ import annotations

from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.common import changes
from suite.mail.store import emails as model


@method("Email/changes", MAIL)
async def email_changes(cctx: CallContext, args: dict) -> dict:
    return await changes(cctx, args, model.EMAIL, "e")
