"""Thread/get (RFC 8621 §3.1): a thread's Email ids, oldest first (by receivedAt)."""

from __future__ import annotations

from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.common import check_known_args, get_ids, get_properties
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import MethodError
from suite.mail.store import emails as model


@method("Thread/get", MAIL)
async def thread_get(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(args, {"accountId", "ids", "properties"})
    ids = get_ids(cctx, args, "T")
    if ids is None:
        raise MethodError("requestTooLarge", "ask for threads by id")
    props = get_properties(args, {"id", "emailIds"}, ["id", "emailIds"])
    nums = {i: types.parse("T", i) for i in ids}
    wanted = sorted({n for n in nums.values() if n is not None})
    rows: dict[int, list[tuple[float, int]]] = {}
    async with cctx.store.raw_db.read(snapshot=True) as c:
        st = await model.state(c, cctx.account_id, model.THREAD)
        for k in range(0, len(wanted), model.CHUNK):
            cond, args_ = model.in_list(c, "thread_id", wanted[k : k + model.CHUNK])
            # No ORDER BY: with one, SQLite walks the account's received_at index (every Email of the
            # account, ~170 ms at 100 000) instead of the thread index; a thread is sorted here.
            for eid, tid, received in await c.all(
                f"SELECT id, thread_id, received_at FROM emails WHERE account_id = ? AND {cond}",
                cctx.account_id,
                *args_,
            ):
                rows.setdefault(tid, []).append((received, eid))
    found = {tid: [types.make("e", eid) for _, eid in sorted(emails)] for tid, emails in rows.items()}
    out, not_found = [], []
    for i in ids:
        n = nums[i]
        if n is None or n not in found:
            not_found.append(i)
            continue
        obj = {"id": i, "emailIds": found[n]}
        out.append({k: obj[k] for k in props})
    return {"accountId": cctx.jmap_account_id, "state": types.state(st), "list": out, "notFound": not_found}
