"""``suite export --user ADDRESS PATH``: one account's data in formats other programs read —
each mailbox as an mbox file (``mail/<name>.mbox``, the hierarchy as folders; flags in the
``Status``/``X-Status`` headers Thunderbird and mutt read), the file tree (without the trash) as
``files.zip``. Reads go through the mail store's and the file tree's public APIs."""

from __future__ import annotations

import mailbox
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from suite.context import Context
from suite.files.tree import FileTree
from suite.mail.store import MailStore

# IMAP system flags → mbox Status (R, O) / X-Status (A, F, D) letters (mailbox.mboxMessage)
_FLAG_LETTERS = {"\\seen": "R", "\\answered": "A", "\\flagged": "F", "\\deleted": "D"}


class ExportError(Exception):
    pass


@dataclass
class ExportSummary:
    mailboxes: int = 0
    messages: int = 0
    files: int = 0
    file_bytes: int = 0


def _safe_parts(name: str) -> list[str]:
    """A mailbox or file name as path parts that cannot leave the export directory."""
    parts = []
    for p in name.split("/"):
        p = p.replace("\x00", "").strip()
        if p in ("", ".", ".."):
            p = "_" + p.replace(".", "_") if p else "_"
        parts.append(p)
    return parts


async def export_account(ctx: Context, address: str, path: Path) -> ExportSummary:
    account = await ctx.accounts.get(address)
    if account is None:
        raise ExportError(f"no user {address}")
    if path.exists() and any(path.iterdir()):
        raise ExportError(f"{path} is not empty; give a new directory")
    path.mkdir(parents=True, exist_ok=True)
    out = ExportSummary()
    await _export_mail(ctx, account.id, path / "mail", out)
    await _export_files(ctx, account.id, path / "files.zip", out)
    return out


async def _export_mail(ctx: Context, account_id: int, root: Path, out: ExportSummary) -> None:
    store = MailStore(ctx)
    for mb in await store.list_mailboxes(account_id):
        parts = _safe_parts(mb.name)
        target = root.joinpath(*parts[:-1], parts[-1] + ".mbox")
        target.parent.mkdir(parents=True, exist_ok=True)
        box = mailbox.mbox(target, create=True)
        box.lock()
        try:
            for m in await store.messages(mb.id):
                msg = mailbox.mboxMessage(await store.raw(m.blob))
                msg.set_from("MAILER-DAEMON", time.gmtime(m.internaldate))
                letters = "".join(_FLAG_LETTERS.get(f.lower(), "") for f in m.flags)
                msg.set_flags(letters + "O")
                keywords = [f for f in m.flags if not f.startswith("\\")]
                if keywords:
                    msg["X-Keywords"] = " ".join(keywords)
                box.add(msg)
                out.messages += 1
            box.flush()
        finally:
            box.unlock()
            box.close()
        out.mailboxes += 1


async def _export_files(ctx: Context, account_id: int, target: Path, out: ExportSummary) -> None:
    tree = FileTree(ctx)
    root = await tree.root(account_id)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        stack: list[tuple[int, list[str]]] = [(root.id, [])]
        while stack:
            node_id, prefix = stack.pop()
            for node in await tree.list(account_id, node_id):
                parts = [*prefix, *_safe_parts(node.name)]
                when = time.gmtime(max(node.modified_at, 315532800))[:6]  # zip dates start in 1980
                if node.is_dir:
                    zf.writestr(zipfile.ZipInfo("/".join(parts) + "/", date_time=when), b"")
                    stack.append((node.id, parts))
                    continue
                info = zipfile.ZipInfo("/".join(parts), date_time=when)
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w", force_zip64=node.size > 2**31) as f:
                    if node.blob is not None:
                        async for chunk in ctx.blobs.read(node.blob):
                            f.write(chunk)
                out.files += 1
                out.file_bytes += node.size
