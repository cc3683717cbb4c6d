"""Helpers shared by the Sieve tests (send through real SMTP, read mailboxes from the store)."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

from smtp_service_helpers import ALICE, REMOTE_DOMAIN

from suite.mail.sieve.store import SieveStore
from suite.mail.store.store import MailStore

CAROL = f"carol@{REMOTE_DOMAIN}"


def send_sync(port: int, mail_from: str, rcpts: list[str], msg: EmailMessage | bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        if isinstance(msg, bytes):
            s.sendmail(mail_from, rcpts, msg)
        else:
            s.send_message(msg, from_addr=mail_from, to_addrs=rcpts)


def message(subject: str, *, frm: str = CAROL, to: str = ALICE, body: str = "Hello.\n", **headers) -> EmailMessage:
    m = EmailMessage()
    m["From"] = frm
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = f"<{abs(hash(subject))}@{REMOTE_DOMAIN}>"
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    return m


async def activate(ctx, account_id: int, script: str, name: str = "main") -> None:
    await SieveStore(ctx).put_script(account_id, name, script, activate=True)


async def mailbox(suite, account_id: int, name: str) -> list[tuple[bytes, tuple[str, ...]]]:
    store = MailStore(suite.ctx)
    await store.ensure_defaults(account_id)
    mb = await store.get_mailbox(account_id, name)
    if mb is None:
        return []
    return [(await store.raw(m.blob), m.flags) for m in await store.messages(mb.id)]


async def wait_for(pred, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await pred():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def send(suite, msg, *, mail_from: str = CAROL, rcpts: list[str] | None = None) -> None:
    await asyncio.to_thread(send_sync, suite.port("smtp"), mail_from, rcpts or [ALICE], msg)
