"""Email/copy (RFC 8621 §4.7) copies between accounts; a user here has exactly one account, so
the only answers are fromAccountNotFound (another account) or invalidArguments (the same one)."""

from __future__ import annotations

from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.protocol.errors import MethodError


@method("Email/copy", MAIL)
async def email_copy(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    if args.get("fromAccountId") == cctx.jmap_account_id:
        # RFC 8620 §5.4: fromAccountId MUST differ from accountId
        raise MethodError("invalidArguments", "fromAccountId must be another account")
    raise MethodError("fromAccountNotFound", "no such account")
