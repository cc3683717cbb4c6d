"""Where one service needs another's capability (docs/ARCHITECTURE.md): the needing side declares a
port (a Protocol) and this module, used by the runner, builds the other side's implementation from
its public API. Services themselves never import each other.

- SMTP submission's ``AttachmentLinker`` (suite/mail/smtp/interfaces.py) ← the files service's tree
  and share links (suite/files/service.py, suite/files/shares.py).
- The meetings' ``RecordingStore`` (suite/voip/recording.py) ← the files service's tree: a finished
  recording goes into the host's "Recordings" folder.
- The gateway's ``InvitationMailer`` for planned meetings (suite/voip/invitations.py) ← the mail
  service's submission (suite/mail/jmap/submit.py: the path of a message the host sends).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from suite.files.names import BadName, check_name
from suite.files.service import Files
from suite.files.shares import link_url
from suite.files.tree import Conflict, QuotaExceeded, TooLarge
from suite.mail.smtp.interfaces import DeliveryError, SharedLink
from suite.mail.smtp.statuscodes import Reply

RECORDINGS = "Recordings"
#: The folder of the sender's files that big attachments go to (the web app's too: web/src/views/mail/bigfiles.js).
FOLDER = "Mail attachments"
QUOTA_FULL = Reply(552, "5.2.2", "Mailbox full: no room in your files for the big attachment")  # RFC 3463 §3.3
NOT_STORED = Reply(554, "5.3.4", "The big attachment could not be kept in your files")  # RFC 3463 §3.4


class SubmissionInvitationMailer:
    """``InvitationMailer`` on mail submission: local invitees delivered, remote ones DKIM-signed
    into the outbound queue, as a message the host sent."""

    def __init__(self, ctx: Any) -> None:
        from suite.mail.jmap.submit import QueueSubmitter

        self.submitter = QueueSubmitter(ctx)

    async def send(self, account_id: int, mail_from: str, rcpt_to: list[str], raw: bytes) -> None:
        await self.submitter.submit(account_id, mail_from, rcpt_to, raw, ref="meeting-invitation")


class FilesRecordingStore:
    """``RecordingStore`` on the files service: "Recordings/<name>" in the host's Files (a number
    is added when the name is taken); returns the path there."""

    def __init__(self, files: Files) -> None:
        self.files = files

    async def save(self, owner: str, name: str, path: Path) -> str:
        account = await self.files.ctx.accounts.get(owner)
        if account is None:
            raise LookupError(f"no account {owner}")
        tree = self.files.tree
        folder = await tree.makedirs(account.id, f"/{RECORDINGS}")
        taken = {n.name for n in await tree.list(account.id, folder.id)}
        stem, _, ext = name.rpartition(".")
        n = 2
        while name in taken:
            name = f"{stem} ({n}).{ext}"
            n += 1

        async def chunks() -> AsyncIterator[bytes]:
            with path.open("rb") as fh:
                while block := await asyncio.to_thread(fh.read, 1 << 20):
                    yield block

        await tree.write(account.id, folder.id, name, chunks(), "video/webm")
        return f"/{RECORDINGS}/{name}"


class FilesAttachmentLinker:
    """``AttachmentLinker`` on the files service: "Mail attachments/<UTC time>/<name>", then a
    download link that expires after ``big_attachment_link_days``."""

    def __init__(self, files: Files) -> None:
        self.files = files
        self.settings = files.ctx.settings

    async def share(self, account_id: int, filename: str, media_type: str, data: bytes) -> SharedLink:
        tree = self.files.tree
        try:
            name = check_name(filename.replace("/", "_").replace("\\", "_"))
        except BadName:
            name = "attachment"
        stamp = time.strftime("%Y-%m-%d %H.%M.%S", time.gmtime())
        expires_at = time.time() + self.settings.big_attachment_link_days * 86400
        try:
            folder = await tree.makedirs(account_id, f"/{FOLDER}/{stamp}")
            # unique names within the folder: two parts may carry the same file name
            taken = {n.name for n in await tree.list(account_id, folder.id)}
            stem, dot, ext = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
            n = 2
            while name in taken:
                name = f"{stem} ({n}){dot}{ext}"
                n += 1
            node, _ = await tree.write(account_id, folder.id, name, data, media_type)
            _, token = await self.files.shares.create(account_id, node.id, expires_at=expires_at)
        except QuotaExceeded:
            raise DeliveryError(QUOTA_FULL) from None
        except (TooLarge, Conflict, BadName):
            raise DeliveryError(NOT_STORED) from None
        return SharedLink(url=link_url(self.settings.base_url, token), expires_at=expires_at)


def ports(service: str, ctx: Any) -> dict[str, Any]:
    """The keyword arguments that wire ``service``'s ports (none for most services)."""
    if service == "smtp":
        return {"linker": FilesAttachmentLinker(Files(ctx))}
    if service == "gateway":
        return {
            "meeting_invitations": SubmissionInvitationMailer(ctx),
            "meeting_recordings": FilesRecordingStore(Files(ctx)),
        }
    return {}
