"""Interfaces between the SMTP layer and the rest of Suite.

The SMTP servers only talk to accounts, the mail store and the outbound queue
through these Protocols; production implementations live with those
components and are wired in by the service that starts the servers.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from suite.mail.smtp.address import Mailbox
from suite.mail.smtp.statuscodes import Reply


# --- Recipients -----------------------------------------------------------------------------
class RecipientStatus(enum.Enum):
    LOCAL = "local"  # a mailbox (or alias) we deliver to
    UNKNOWN_USER = "unknown-user"  # our domain, but no such user → 550 5.1.1
    NOT_LOCAL = "not-local"  # not one of our domains → 550 5.7.1 on the MX
    TEMPFAIL = "tempfail"  # lookup failed → 451 4.3.0


@dataclass(frozen=True, slots=True)
class RecipientDecision:
    status: RecipientStatus
    # For LOCAL: the canonical address(es) this recipient resolves to (alias expansion).
    resolved: tuple[str, ...] = ()


@runtime_checkable
class RecipientPolicy(Protocol):
    async def check_recipient(self, mailbox: Mailbox) -> RecipientDecision:
        """Is ``mailbox`` delivered here? Called for every RCPT TO on both servers."""
        ...


# --- Authentication ---------------------------------------------------------------------------
class AuthStatus(enum.Enum):
    OK = "ok"
    INVALID = "invalid"  # → 535 5.7.8
    LOCKED = "locked"  # rate limited / locked out → 454 4.7.0
    TEMPFAIL = "tempfail"  # backend unavailable → 454 4.7.0


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    status: AuthStatus
    account_id: str | None = None
    app_password_id: int | None = None  # signed in with this app password (else the account password)


@runtime_checkable
class Authenticator(Protocol):
    async def authenticate(self, username: str, password: str, *, scope: str, client_ip: str) -> AuthOutcome:
        """Check credentials for ``scope`` ("smtp-submission").

        Implementations count failures per username/IP and answer LOCKED when a
        limit is hit; they must not block the event loop (hash in a thread).
        """
        ...


# --- Senders ----------------------------------------------------------------------------------
@runtime_checkable
class LinkPolicy(Protocol):
    async def links_big_attachments(self, account_id: str) -> bool:
        """Whether this account's submitted attachments over the threshold become share links; such an
        account may submit up to the submission size limit (the stored message must fit the normal one)."""
        ...


class SenderPolicy(Protocol):
    async def may_send_as(self, account_id: str, address: str) -> bool:
        """May the authenticated account use ``address`` in MAIL FROM or the From header?"""
        ...


# --- Delivery ---------------------------------------------------------------------------------
class SpooledMessage:
    """A complete message: a file in the spool directory, or (``path`` None) bytes in ``data``.

    ``size`` is the exact length, counted while it was written.  Messages come in memory only to a
    Deliverer that says ``accepts_memory = True``; every other one gets a file.  The SMTP layer
    deletes the file after ``deliver`` returns: a Deliverer that keeps it must link or rename it.
    """

    __slots__ = ("_sha256", "data", "path", "size")

    def __init__(self, path: Path | None, size: int, sha256: str | None = None, *, data: bytes | None = None) -> None:
        if (path is None) == (data is None):
            raise ValueError("a spooled message is either a file or bytes")
        self.path = path
        self.size = size
        self.data = data
        self._sha256 = sha256

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the content, computed on first use (the blob store hashes what it keeps
        itself, so the receive path does not). Reads a file: call it in a thread when large."""
        if self._sha256 is None:
            h = hashlib.sha256()
            if self.data is not None:
                h.update(self.data)
            else:
                assert self.path is not None
                with open(self.path, "rb") as f:
                    while chunk := f.read(1 << 16):
                        h.update(chunk)
            self._sha256 = h.hexdigest()
        return self._sha256

    def source(self) -> Path | bytes:
        """The file's path, or the bytes when the message is held in memory."""
        return self.path if self.path is not None else self.data  # type: ignore[return-value]

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else "memory"
        return f"SpooledMessage({where!r}, size={self.size})"


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str  # as given in RCPT TO
    local: bool  # RecipientPolicy said LOCAL
    resolved: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageEnvelope:
    mail_from: str  # "" for the null reverse-path
    recipients: tuple[Recipient, ...]
    client_ip: str
    helo: str
    tls: bool
    smtputf8: bool = False
    body_8bit: bool = False
    submission: bool = False
    account_id: str | None = None  # authenticated account (submission)
    junk: bool = False  # DMARC quarantine (or other local verdict): deliver to Junk
    authentication_results: str | None = None
    received_at: float = 0.0
    session_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # RFC 4865 FUTURERELEASE (submission only): every recipient, local ones too, waits in the
    # outbound queue until then
    hold_until: float | None = None


class DeliveryError(Exception):
    """Raised by a Deliverer to answer the final DATA reply with ``reply``."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@runtime_checkable
class Deliverer(Protocol):
    """Stores accepted messages.

    A deliverer may also set ``accepts_prefix = True``: the server then passes header fields that
    belong on top of the message (Authentication-Results, RFC 8601 §5) as ``deliver(..., prefix=b)``
    instead of copying the spool file into a new one that starts with them; and
    ``accepts_memory = True``: small messages then come as bytes (``SpooledMessage.data``), with no
    spool file at all.
    """

    async def deliver(self, envelope: MessageEnvelope, message: SpooledMessage) -> None:
        """Store (local recipients) and/or queue (remote, when ``envelope.submission``).

        Must fsync and commit before returning: the client gets 250 right after.
        Raise ``DeliveryError`` for a specific reply; any other exception → 451 4.3.0.
        """
        ...


# --- Delivery log -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """One recipient's outcome of an SMTP transaction (in: at the end of DATA; out: a queue attempt)."""

    direction: str  # "in" | "out"
    status: str  # accepted | rejected | sent | deferred | failed
    mail_from: str
    recipient: str
    reply: str
    remote: str = ""
    account_id: int | None = None
    ref: str = ""


@runtime_checkable
class TransactionLog(Protocol):
    async def record(self, records: list[TransactionRecord]) -> None:
        """Append to the delivery log (after the reply went out; a failure is logged, not fatal)."""
        ...


# --- Big attachments --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SharedLink:
    url: str  # what the recipient opens, logged out
    expires_at: float  # UNIX seconds


@runtime_checkable
class AttachmentLinker(Protocol):
    """Keeps an attachment that is too big to mail for the sender and gives back a link to it (the
    files service's tree and share links, wired in by the runner: suite/wiring.py)."""

    async def share(self, account_id: int, filename: str, media_type: str, data: bytes) -> SharedLink:
        """Store ``data`` as ``filename`` in the account's files, durably, and make an expiring link.

        Raise ``DeliveryError`` for a specific reply (a full quota: 552 5.2.2)."""
        ...
