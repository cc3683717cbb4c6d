"""Typed events that cross services through the bus. Small: ids and numbers, never message bodies."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

_REGISTRY: dict[str, type[Event]] = {}


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    topic: ClassVar[str] = ""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.topic:
            if cls.topic in _REGISTRY and _REGISTRY[cls.topic] is not cls:
                raise TypeError(f"two events with topic {cls.topic!r}")
            _REGISTRY[cls.topic] = cls


def event_class(topic: str) -> type[Event] | None:
    return _REGISTRY.get(topic)


class MailDelivered(Event):
    topic: ClassVar[str] = "mail.delivered"
    account_id: int
    mailbox_id: int
    uid: int


class MailboxChanged(Event):
    """Anything in a mailbox changed (flags, expunge, new message); IMAP sessions re-sync on it."""

    topic: ClassVar[str] = "mail.mailbox_changed"
    account_id: int
    mailbox_id: int
    modseq: int


class MailboxListChanged(Event):
    topic: ClassVar[str] = "mail.mailboxes_changed"
    account_id: int


class IdentitiesChanged(Event):
    """The account's sending identities changed (an alias added or removed, Identity/set): JMAP push."""

    topic: ClassVar[str] = "accounts.identities_changed"
    account_id: int


class CallSignal(Event):
    """A signalling message for one account's sessions (or one session) on any process."""

    topic: ClassVar[str] = "voip.signal"
    account_id: int
    session_id: str | None = None
    payload: dict[str, Any]


class FileChanged(Event):
    topic: ClassVar[str] = "files.changed"
    account_id: int
    node_id: int
    action: str  # created, modified, moved, trashed, restored, deleted


class AccountChanged(Event):
    topic: ClassVar[str] = "accounts.changed"
    account_id: int
    action: str  # created, removed, disabled, password


class CredentialsRevoked(Event):
    """Live connections signed in with these credentials must end now (IMAP ``* BYE``, SMTP 421,
    WebSocket/EventSource close), in whichever process holds them.

    ``scope`` says what ended: "account" (disabled, removed, signed out everywhere: every
    connection), "password" (the account password changed: connections signed in with it and every
    web session), "app_password" (one app password, ``app_password_id``), "web_session" (one web
    session, ``session_id``), "connection" (one live connection, ``connection_id``)."""

    topic: ClassVar[str] = "accounts.revoked"
    account_id: int
    scope: str
    app_password_id: int | None = None
    session_id: str | None = None
    connection_id: str | None = None
    reason: str = ""


class ProvidersChanged(Event):
    """The storage network's ``[[storage.providers]]`` changed (``suite storage provider …``): every
    process re-reads its configuration and applies it (``suite.storage.network.reload``)."""

    topic: ClassVar[str] = "storage.providers_changed"
    reason: str = ""
