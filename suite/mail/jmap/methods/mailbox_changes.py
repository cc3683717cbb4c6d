"""Mailbox/changes (RFC 8621 §2.2, RFC 8620 §5.2)."""

from __future__ import annotations

from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.common import changes
from suite.mail.store import emails as model


@method("Mailbox/changes", MAIL)
async def mailbox_changes(cctx: CallContext, args: dict) -> dict:
    return await changes(cctx, args, model.MAILBOX, "M")
