"""The mail store: mailboxes, messages (blobs + rows), flags, UIDs, MODSEQ — the public API that IMAP,
SMTP delivery, the webmail and voicemail use."""

from suite.mail.store.store import (
    DEFAULT_MAILBOXES,
    SEPARATOR,
    AppendItem,
    BadMailboxName,
    Changes,
    MailboxExists,
    MailboxInfo,
    MailboxStatus,
    MailStore,
    MailStoreError,
    MessageInfo,
    NoSuchMailbox,
    QuotaExceeded,
    check_name,
    normalize_flags,
)

__all__ = [
    "DEFAULT_MAILBOXES",
    "SEPARATOR",
    "AppendItem",
    "BadMailboxName",
    "Changes",
    "MailboxExists",
    "MailboxInfo",
    "MailboxStatus",
    "MailStore",
    "MailStoreError",
    "MessageInfo",
    "NoSuchMailbox",
    "QuotaExceeded",
    "check_name",
    "normalize_flags",
]
