"""What the IMAP service needs from the mail store (the port; ``suite.mail.store.MailStore`` is
wired into it by :class:`~suite.mail.imap.server.ImapService`).

The store retries transactions the database refused transiently (deadlock, serialization
failure, busy SQLite) itself: the IMAP side never sees a database driver's exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from suite.mail import mime
from suite.mail.mime import searchtext
from suite.mail.store import AppendItem, Changes, MailboxInfo, MailboxStatus, MessageInfo


class MailStorePort(Protocol):
    # ------------------------------------------------------------------ mailboxes
    async def list_mailboxes(self, account_id: int) -> list[MailboxInfo]: ...

    async def get_mailbox(self, account_id: int, name: str) -> MailboxInfo | None: ...

    async def create_mailbox(
        self, account_id: int, name: str, *, special_use: str | None = None, publish: bool = True
    ) -> MailboxInfo: ...

    async def delete_mailbox(self, account_id: int, name: str) -> None: ...

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None: ...

    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None: ...

    async def status(self, mailbox_id: int) -> MailboxStatus: ...

    async def usage(self, account_id: int) -> tuple[int, int] | None: ...

    # ------------------------------------------------------------------ messages
    async def append(
        self,
        account_id: int,
        mailbox: str | int | MailboxInfo,
        raw: bytes,
        *,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
    ) -> tuple[MailboxInfo, MessageInfo]: ...

    async def append_many(
        self, account_id: int, mailbox: str | int | MailboxInfo, items: Sequence[AppendItem]
    ) -> tuple[MailboxInfo, list[MessageInfo]]: ...

    async def message_rows(self, mailbox_id: int) -> list[tuple]: ...

    async def changes_since(self, mailbox_id: int, modseq: int) -> Changes: ...

    async def structures(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, mime.MessageStructure]: ...

    async def search_texts(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, searchtext.SearchText]: ...

    async def text_candidates(self, mailbox_id: int, key: str, term: str) -> set[int] | None: ...

    async def sent_dates(self, mailbox_id: int) -> dict[int, float | None]: ...

    async def object_ids(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, tuple[str, str]]: ...

    def mailbox_object_id(self, mailbox_id: int) -> str: ...

    async def store_flags(
        self,
        account_id: int,
        mailbox_id: int,
        uids: Sequence[int],
        mode: str,
        flags: Iterable[str],
        *,
        unchangedsince: int | None = None,
        durable: bool = True,
    ) -> tuple[list[MessageInfo], list[int]]: ...

    async def copy(
        self, account_id: int, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int
    ) -> list[tuple[int, int]]: ...

    async def move(
        self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int, account_id: int | None = None
    ) -> list[tuple[int, int]]: ...

    async def expunge(self, account_id: int, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]: ...

    async def expunge_modseq(
        self, account_id: int, mailbox_id: int, uids: Sequence[int] | None = None
    ) -> tuple[list[int], int | None]: ...

    # ------------------------------------------------------------------ IMAP4rev1 \Recent
    async def claim_recent(self, mailbox_id: int) -> tuple[int, int]: ...

    async def recent_from(self, mailbox_id: int) -> int: ...

    async def recent_count(self, mailbox_id: int) -> int: ...

    async def lost_subscriptions(self, account_id: int) -> list[str]: ...
