"""``suite export --user ADDRESS PATH``: one account's data in formats other programs read —
each mailbox as an mbox file (``mail/<name>.mbox``, the hierarchy as folders; flags in the
``Status``/``X-Status`` headers Thunderbird and mutt read), the file tree (without the trash) as
``files.zip``. Reads go through the mail store's and the file tree's public APIs.

``export_zip`` writes the same export as ONE zip (``mail/<name>.mbox`` and ``files/...``) to a
writer that need not seek — the web app's "Export my data" streams it to the HTTP response. Each
mailbox is written to a temporary mbox file (the same code as the CLI's) and copied into the zip in
chunks, so memory stays bounded by a chunk, not by the account."""

from __future__ import annotations

import mailbox
import os
import tempfile
import time
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from suite.context import Context
from suite.files.tree import FileTree
from suite.mail.store import MailStore

# IMAP system flags → mbox Status (R, O) / X-Status (A, F, D) letters (mailbox.mboxMessage)
_FLAG_LETTERS = {"\\seen": "R", "\\answered": "A", "\\flagged": "F", "\\deleted": "D"}


CHUNK = 256 * 1024


class ExportError(Exception):
    pass


Drain = Callable[[], Awaitable[None]]


async def _no_drain() -> None:
    return None


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
    with zipfile.ZipFile(path / "files.zip", "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        await _zip_files(ctx, account.id, zf, "", out, _no_drain)
    return out


async def export_zip(ctx: Context, address: str, fp: IO[bytes], drain: Drain = _no_drain) -> ExportSummary:
    """The export of ``address`` as one zip written to ``fp`` (which need not seek): each mailbox
    as ``mail/<name>.mbox``, the file tree under ``files/``. ``drain`` is awaited after every
    chunk written, so the caller can hand what ``fp`` holds on (and wait for a slow reader)."""
    account = await ctx.accounts.get(address)
    if account is None:
        raise ExportError(f"no user {address}")
    out = ExportSummary()
    with zipfile.ZipFile(fp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        store = MailStore(ctx)
        ctx.settings.spool_dir.mkdir(parents=True, exist_ok=True)  # a process without SMTP may lack it
        fd, tmp_name = tempfile.mkstemp(suffix=".export.mbox", dir=ctx.settings.spool_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            for mb in await store.list_mailboxes(account.id):
                tmp.unlink(missing_ok=True)
                await _write_mbox(store, mb.id, tmp, out)
                info = zipfile.ZipInfo("mail/" + "/".join(_safe_parts(mb.name)) + ".mbox", time.gmtime()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                with tmp.open("rb") as src, zf.open(info, "w", force_zip64=tmp.stat().st_size > 2**31) as dst:
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                        await drain()
                out.mailboxes += 1
        finally:
            tmp.unlink(missing_ok=True)
        await _zip_files(ctx, account.id, zf, "files/", out, drain)
    await drain()
    return out


async def _write_mbox(store: MailStore, mailbox_id: int, target: Path, out: ExportSummary) -> None:
    """One mailbox as an mbox file at ``target`` (flags as Status/X-Status, keywords as X-Keywords)."""
    box = mailbox.mbox(target, create=True)
    box.lock()
    try:
        for m in await store.messages(mailbox_id):
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


async def _export_mail(ctx: Context, account_id: int, root: Path, out: ExportSummary) -> None:
    store = MailStore(ctx)
    for mb in await store.list_mailboxes(account_id):
        parts = _safe_parts(mb.name)
        target = root.joinpath(*parts[:-1], parts[-1] + ".mbox")
        target.parent.mkdir(parents=True, exist_ok=True)
        await _write_mbox(store, mb.id, target, out)
        out.mailboxes += 1


async def _zip_files(
    ctx: Context, account_id: int, zf: zipfile.ZipFile, prefix: str, out: ExportSummary, drain: Drain
) -> None:
    """The file tree (without the trash) into ``zf``, each name under ``prefix``."""
    tree = FileTree(ctx)
    root = await tree.root(account_id)
    stack: list[tuple[int, list[str]]] = [(root.id, [])]
    while stack:
        node_id, parts_so_far = stack.pop()
        for node in await tree.list(account_id, node_id):
            parts = [*parts_so_far, *_safe_parts(node.name)]
            when = time.gmtime(max(node.modified_at, 315532800))[:6]  # zip dates start in 1980
            if node.is_dir:
                zf.writestr(zipfile.ZipInfo(prefix + "/".join(parts) + "/", date_time=when), b"")
                stack.append((node.id, parts))
                continue
            info = zipfile.ZipInfo(prefix + "/".join(parts), date_time=when)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=node.size > 2**31) as f:
                if node.blob is not None:
                    async for chunk in ctx.blobs.read(node.blob):
                        f.write(chunk)
                        await drain()
            out.files += 1
            out.file_bytes += node.size
