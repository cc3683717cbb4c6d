"""Inbound MX and submission SMTP servers on top of ``aiosmtpd.smtp.SMTP``.

aiosmtpd supplies the command loop, STARTTLS plumbing and the SASL challenge
helper; this subclass replaces EHLO/HELO, MAIL, RCPT, DATA, STARTTLS and AUTH
with versions that

* stream DATA to a spool file through the sans-I/O ``DataDecoder`` (bounded
  memory, dot-unstuffing, bare CR/LF rejection: no SMTP smuggling),
* parse paths strictly (``address``) and refuse relaying on the MX,
* ask the ``RecipientPolicy``/``Authenticator``/``SenderPolicy``/``Deliverer``
  interfaces (``interfaces``) for every decision that involves accounts,
* answer every reply with an enhanced status code (RFC 2034).

aiosmtpd's public surface is used where it has one: ``smtp_VERB`` / ``auth_MECHANISM`` methods,
``push``, ``challenge_auth``, ``check_helo_needed`` / ``check_auth_needed``, ``session``
(``host_name``, ``extended_smtp``, ``ssl``, ``auth_data``, ``authenticated``) and
``connection_made`` / ``connection_lost``. Three things have no public hook and rely on aiosmtpd's
internals, so aiosmtpd is pinned in pyproject.toml and tests/mail/smtp/test_aiosmtpd_pin.py fails
when one of them changes (it says what to re-check):

* DATA streams from ``self._reader`` (set by ``_cb_client_connected``) inside ``_handle_client``'s
  command loop, and hands pipelined bytes back to that reader's buffer;
* a long DATA transfer calls ``_reset_timeout`` (the idle timer is per data block, RFC 5321
  §4.5.3.2.5; aiosmtpd only resets it per command);
* ``__dir__`` lists only the ``auth_*`` / ``smtp_*`` names ``__init__`` scans for.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import logging
import re
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from suite.accounts.revocation import Credential, LiveConnection, LiveConnections
from suite.mail.smtp import spool
from suite.mail.smtp import statuscodes as sc
from suite.mail.smtp.address import AddressError, Mailbox, parse_path_argument
from suite.mail.smtp.data import DataDecoder, DataError
from suite.mail.smtp.interfaces import (
    Authenticator,
    AuthStatus,
    Deliverer,
    DeliveryError,
    LinkPolicy,
    MessageEnvelope,
    Recipient,
    RecipientPolicy,
    RecipientStatus,
    SenderPolicy,
    SpooledMessage,
    TransactionLog,
    TransactionRecord,
)
from suite.mail.smtp.limits import Admission, ConnectionLimiter
from suite.mail.smtp.statuscodes import Reply

log = logging.getLogger("suite.mail.smtp")

AUTH_SCOPE = "smtp-submission"
DATA_CHUNK = 256 * 1024  # bytes taken from the reader at once during DATA
MEMORY_SPOOL = 256 * 1024  # messages up to this size skip the spool file (Deliverer.accepts_memory)
# Larger ones too, up to MEMORY_SPOOL_MAX, while what the server's sessions hold past MEMORY_SPOOL
# fits in MEMORY_SPOOL_SHARED together: no spool file to write, read back in a thread and unlink.
MEMORY_SPOOL_MAX = 4 * 1024 * 1024
MEMORY_SPOOL_SHARED = 32 * 1024 * 1024
MAX_AUTH_FAILURES = 3


@dataclass(frozen=True, slots=True)
class InboundVerdict:
    """What the inbound checker (SPF/DKIM/DMARC) decided about a spooled message."""

    authentication_results: str | None  # header value, without "Authentication-Results:"
    reject: bool = False
    junk: bool = False


# (spooled file's path or the message's bytes, client ip, helo, mail from) -> verdict
InboundChecker = Callable[[Path | bytes, str, str, str], Awaitable[InboundVerdict]]


@dataclass
class SmtpConfig:
    hostname: str
    spool_dir: Path
    submission: bool = False  # port 587/465 semantics: AUTH required, relaying for the account
    implicit_tls: bool = False  # port 465: TLS from the first byte (RFC 8314 §3.3)
    tls_context: ssl.SSLContext | None = None
    max_message_size: int = 25 * 1024 * 1024
    # Submission only, when big attachments can become links: what an account that turned them on may
    # submit (checked at MAIL SIZE= and while reading DATA); the message after the rewrite must still fit
    # max_message_size (the deliverer checks). None: every session has max_message_size.
    max_submission_size: int | None = None
    max_recipients: int = 100  # RFC 5321 §4.5.3.1.8: at least 100 must be accepted
    max_line_length: int | None = 1000  # RFC 5321 §4.5.3.1.6; None disables the check
    timeout: float = 300.0  # RFC 5321 §4.5.3.2.7 server timeout
    ident: str = "Suite ESMTP"


@dataclass
class SmtpPolicies:
    recipients: RecipientPolicy
    deliverer: Deliverer
    authenticator: Authenticator | None = None
    senders: SenderPolicy | None = None
    inbound_checker: InboundChecker | None = None
    translog: TransactionLog | None = None  # the delivery log (admin screen)
    links: LinkPolicy | None = None  # whose big attachments become links (submission, max_submission_size)


@dataclass(frozen=True, slots=True)
class AuthenticatedAccount:
    account_id: str
    username: str
    app_password_id: int | None = None


@dataclass
class _Transaction:
    mail_from: str
    smtputf8: bool = False
    body_8bit: bool = False
    size_limit: int = 0  # bytes of DATA this transaction may carry (RFC 1870)
    recipients: list[Recipient] = field(default_factory=list)
    writer: spool.SpoolWriter | None = None  # DATA's spool (memory it holds is given back at the end)


class _NoHooks:
    """aiosmtpd wants a handler object; all behaviour lives in the subclass."""


_HAS_ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")
_REPLY_LINE = re.compile(r"^(\d{3})([ -])(.*)$", re.DOTALL)


def with_enhanced_code(line: str) -> str:
    """Insert a default RFC 3463 code into a reply produced by aiosmtpd without one."""
    if _HAS_ENHANCED.match(line):
        return line
    m = _REPLY_LINE.match(line)
    if m is None:
        return line
    code = int(m.group(1))
    if code // 100 not in (2, 4, 5):
        return line  # RFC 3463 classes are 2, 4 and 5 only (354, 334 carry none)
    enhanced = sc.DEFAULT_ENHANCED.get(code) or f"{code // 100}.0.0"
    return f"{m.group(1)}{m.group(2)}{enhanced} {m.group(3)}"


class SuiteSMTP(SMTP):
    """One SMTP session (aiosmtpd protocol instance)."""

    _command_names: tuple[str, ...] | None = None

    def __dir__(self) -> list[str]:
        # aiosmtpd's __init__ scans dir(self) (inspect.getmembers, a getattr per name) for the
        # auth_* and smtp_* methods on every connection — a third of a small message's protocol
        # CPU. Those are the only names it looks for, so the listing is those, found once per class.
        cls = type(self)
        if cls._command_names is None:
            cls._command_names = tuple(n for n in super().__dir__() if n.startswith(("auth_", "smtp_")))
        return list(cls._command_names)

    def __init__(
        self,
        config: SmtpConfig,
        policies: SmtpPolicies,
        *,
        limiter: ConnectionLimiter | None = None,
        registry: set[SuiteSMTP] | None = None,
        live: LiveConnections | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        spool_budget: spool.MemoryBudget | None = None,
    ) -> None:
        self.config = config
        self._spool_budget = spool_budget
        self.policies = policies
        self._limiter = limiter
        self._registry = registry
        self._live = live  # signed-in sessions, closed with 421 when their credentials are revoked
        self._live_conn: LiveConnection | None = None
        starttls_context = None if config.implicit_tls else config.tls_context
        super().__init__(
            _NoHooks(),
            data_size_limit=max(config.max_message_size, config.max_submission_size or 0),
            enable_SMTPUTF8=True,  # RFC 6531
            decode_data=False,
            hostname=config.hostname,
            ident=config.ident,
            tls_context=starttls_context,
            # RFC 3207 §4 / RFC 8314: on port 587 nothing but EHLO/NOOP/QUIT before STARTTLS.
            require_starttls=config.submission and starttls_context is not None,
            timeout=config.timeout,
            auth_required=False,  # enforced by check_auth_needed below
            auth_require_tls=False,  # enforced by smtp_AUTH below (implicit TLS aware)
            loop=loop,
        )
        # Instance-level limits (aiosmtpd keeps them on the class and grows them on every EHLO).
        # RFC 5321 §4.5.3.1.4 (512) plus room for SIZE/BODY/SMTPUTF8/AUTH parameters.
        self.command_size_limits = collections.defaultdict(lambda: 512, {"MAIL": 512 + 128, "RCPT": 512 + 64})
        self._txn: _Transaction | None = None
        self._plain_replies = True  # the greeting carries no enhanced code
        self._connected = False
        self._client_ip = ""
        self._implicit_tls = False
        self._admission = Admission.ADMIT
        self._admitted = False
        self._auth_failures = 0
        self.session_id = secrets.token_hex(6)

    # --- connection lifecycle ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._connected:  # not the TLS transport of a STARTTLS coming back
            self._connected = True
            peer = transport.get_extra_info("peername")
            self._client_ip = str(peer[0]) if peer else ""
            self._implicit_tls = transport.get_extra_info("sslcontext") is not None
            if self._limiter is not None:
                self._admission = self._limiter.admit(self._client_ip, time.monotonic())
            self._admitted = self._admission is Admission.ADMIT and self._limiter is not None
            if self._registry is not None:
                self._registry.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._admitted and self._limiter is not None:
            self._limiter.release(self._client_ip)
            self._admitted = False
        if self._registry is not None:
            self._registry.discard(self)
        if self._live is not None:
            self._live.discard(self._live_conn)
        super().connection_lost(error)

    def end(self, reason: str) -> None:
        """Close now with 421 (RFC 5321 §3.8: the server closes the channel after a 421), whatever
        the session is doing: its credentials were revoked. The reply goes straight to the
        transport, so it cannot wait behind a command in progress."""
        transport = self.transport
        if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
            return
        transport.write(f"421 4.7.0 {self.config.hostname} Signed out: {reason}; closing connection\r\n".encode())
        transport.close()

    def tls_active(self) -> bool:
        # session.ssl: aiosmtpd sets it when a STARTTLS handshake has completed (a new session)
        return self._implicit_tls or (self.session is not None and self.session.ssl is not None)

    async def push(self, status: Any) -> None:
        if self._admission is not Admission.ADMIT:
            # The first reply is the greeting: a refused client gets the refusal instead, then the
            # connection closes (RFC 5321 §3.1: a server may refuse with its first reply).
            self._plain_replies = False
            reply = sc.TOO_MANY_CONNECTIONS if self._admission is Admission.TOO_MANY_CONNECTIONS else sc.RATE_LIMITED
            self._admission = Admission.ADMIT  # answered: what follows is the connection closing
            await super().push(str(reply))
            assert self.transport is not None
            self.transport.close()
            return
        if isinstance(status, Reply):
            status = str(status)
        elif isinstance(status, str):
            if self._plain_replies:
                self._plain_replies = False  # only the greeting passes through untouched
            else:
                status = with_enhanced_code(status)
        await super().push(status)

    async def _push_plain(self, line: str) -> None:
        self._plain_replies = True
        await self.push(line)
        self._plain_replies = False

    async def handle_exception(self, error: Exception) -> str:
        log.exception("%s SMTP session error", self.session_id)
        return str(sc.LOCAL_ERROR)

    # --- greeting and extensions -------------------------------------------------------------
    def _extensions(self) -> list[str]:
        ext = [
            # RFC 1870 §4: the largest message this port accepts from anyone; an account without big
            # attachment links gets 552 at MAIL SIZE= above max_message_size (RFC 1870 §6.1).
            f"SIZE {max(self.config.max_message_size, self.config.max_submission_size or 0)}",
            "8BITMIME",  # RFC 6152
            "SMTPUTF8",  # RFC 6531
            "PIPELINING",  # RFC 2920
            "ENHANCEDSTATUSCODES",  # RFC 2034
        ]
        if self.tls_context is not None and not self.tls_active():
            ext.append("STARTTLS")  # RFC 3207
        if self.config.submission and self.tls_active() and self.policies.authenticator is not None:
            ext.append("AUTH PLAIN LOGIN")  # RFC 4954; only over TLS (RFC 8314 §3)
        return ext

    async def smtp_EHLO(self, hostname: str) -> None:
        if not hostname:
            await self.push(sc.PARAM_SYNTAX.with_text("Syntax: EHLO hostname"))
            return
        self._txn = None  # RFC 5321 §4.1.4: EHLO resets the transaction
        assert self.session is not None
        self.session.extended_smtp = True
        self.session.host_name = hostname
        lines = [self.hostname, *self._extensions()]
        # RFC 2034 §3: no enhanced status codes in the EHLO response. All its lines in one write
        # (one send to the client instead of one per extension, for every connection).
        await self._push_plain("\r\n".join(f"250{'-' if i < len(lines) - 1 else ' '}{t}" for i, t in enumerate(lines)))

    async def smtp_HELO(self, hostname: str) -> None:
        if not hostname:
            await self.push(sc.PARAM_SYNTAX.with_text("Syntax: HELO hostname"))
            return
        self._txn = None
        assert self.session is not None
        self.session.extended_smtp = False
        self.session.host_name = hostname
        await self._push_plain(f"250 {self.hostname}")

    async def smtp_RSET(self, arg: str) -> None:
        if arg:
            await self.push(sc.PARAM_SYNTAX.with_text("Syntax: RSET"))
            return
        self._txn = None
        await self.push(sc.RESET_OK)

    async def smtp_VRFY(self, arg: str) -> None:
        # RFC 5321 §3.5.3: 252 without disclosing whether the user exists.
        await self.push(
            Reply(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )
        )

    # --- STARTTLS ----------------------------------------------------------------------------
    async def smtp_STARTTLS(self, arg: str) -> None:
        if arg:
            await self.push(sc.PARAM_SYNTAX.with_text("Syntax: STARTTLS"))
            return
        if self.tls_context is None or self.tls_active():
            await self.push(
                sc.TLS_NOT_AVAILABLE if self.tls_context is None else sc.BAD_SEQUENCE.with_text("TLS already active")
            )
            return
        # RFC 3207 §4.2 / CVE-2011-0411: anything the client pipelined after STARTTLS
        # arrived in plaintext and must not be executed inside the TLS session.
        # aiosmtpd also clears the buffer after the handshake; do it before as well.
        buffered = self._reader._buffer  # type: ignore[attr-defined]
        if buffered:
            log.warning(
                "%s discarding %d bytes pipelined after STARTTLS",
                self.session_id,
                len(buffered),
            )
            buffered.clear()
        self._txn = None  # RFC 3207 §4.2: nothing from before the handshake carries over
        await super().smtp_STARTTLS(arg)

    # --- AUTH (RFC 4954) ----------------------------------------------------------------------
    async def smtp_AUTH(self, arg: str) -> None:
        if not self.config.submission or self.policies.authenticator is None:
            await self.push(sc.AUTH_NOT_AVAILABLE)
            return
        if not self.tls_active():
            await self.push(sc.STARTTLS_REQUIRED)
            return
        await super().smtp_AUTH(arg)
        assert self.session is not None
        if not self.session.authenticated:
            self._auth_failures += 1
            if self._auth_failures >= MAX_AUTH_FAILURES:
                await self.push(Reply(421, "4.7.0", "Too many authentication failures"))
                assert self.transport is not None
                self.transport.close()

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        elif args[1] == "=":
            blob = b""  # RFC 4954 §4: "=" is an empty initial response
        else:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                return AuthResult(success=False, handled=False, message=str(sc.AUTH_BAD_BASE64))
        assert isinstance(blob, bytes)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            return AuthResult(
                success=False,
                handled=False,
                message=str(sc.AUTH_BAD_BASE64.with_text("Malformed PLAIN response")),
            )
        try:
            authzid, authcid, password = (p.decode("utf-8") for p in parts)  # RFC 4616 §2: UTF-8
        except UnicodeDecodeError:
            return AuthResult(
                success=False,
                handled=False,
                message=str(sc.AUTH_BAD_BASE64.with_text("Credentials must be UTF-8")),
            )
        if authzid and authzid != authcid:
            # RFC 4616 §2: acting as another identity is not supported.
            return AuthResult(success=False, handled=False, message=str(sc.AUTH_INVALID))
        return await self._check_credentials(authcid, password)

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self.challenge_auth("Username:")
            if login is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                login = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                return AuthResult(success=False, handled=False, message=str(sc.AUTH_BAD_BASE64))
        password = await self.challenge_auth("Password:")
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        assert isinstance(login, bytes) and isinstance(password, bytes)
        try:
            return await self._check_credentials(login.decode("utf-8"), password.decode("utf-8"))
        except UnicodeDecodeError:
            return AuthResult(
                success=False,
                handled=False,
                message=str(sc.AUTH_BAD_BASE64.with_text("Credentials must be UTF-8")),
            )

    async def _check_credentials(self, username: str, password: str) -> AuthResult:
        authenticator = self.policies.authenticator
        assert authenticator is not None
        mark = self._live.mark() if self._live is not None else None  # revocations during the check
        try:
            outcome = await authenticator.authenticate(username, password, scope=AUTH_SCOPE, client_ip=self._client_ip)
        except Exception:
            log.exception("%s authenticator failed", self.session_id)
            return AuthResult(success=False, handled=False, message=str(sc.TEMP_AUTH_FAILURE))
        if outcome.status is AuthStatus.OK and outcome.account_id:
            if self._live is not None:
                app_id = outcome.app_password_id
                cred = Credential.of_login(int(outcome.account_id), app_id)
                self._live.discard(self._live_conn)
                self._live_conn = self._live.add(LiveConnection(cred, "smtp", self.end, ip=self._client_ip), mark)
            return AuthResult(
                success=True,
                auth_data=AuthenticatedAccount(outcome.account_id, username, outcome.app_password_id),
                message=str(sc.AUTH_OK),
            )
        reply = {
            AuthStatus.LOCKED: sc.AUTH_LOCKED,
            AuthStatus.TEMPFAIL: sc.TEMP_AUTH_FAILURE,
        }.get(outcome.status, sc.AUTH_INVALID)
        return AuthResult(success=False, handled=False, message=str(reply))

    async def _size_limit(self) -> int:
        """RFC 1870: the larger submission limit only for a signed-in account whose big attachments
        become links (the deliverer rewrites them and checks the result against max_message_size)."""
        limit = self.config.max_message_size
        account = self.account()
        big, links = self.config.max_submission_size, self.policies.links
        if self.config.submission and big and big > limit and account is not None and links is not None:
            if await links.links_big_attachments(account.account_id):
                return big
        return limit

    def account(self) -> AuthenticatedAccount | None:
        assert self.session is not None
        data = self.session.auth_data
        return data if self.session.authenticated and isinstance(data, AuthenticatedAccount) else None

    async def check_auth_needed(self, caller_method: str) -> bool:
        if self.config.submission and self.account() is None:
            await self.push(sc.AUTH_REQUIRED)  # RFC 4954 §6
            return True
        return False

    async def check_helo_needed(self, helo: str = "HELO") -> bool:
        assert self.session is not None
        if not self.session.host_name:
            await self.push(sc.NEED_HELO)
            return True
        return False

    # --- MAIL / RCPT --------------------------------------------------------------------------
    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("MAIL"):
            return
        if self._txn is not None:
            await self.push(sc.NESTED_MAIL)
            return
        try:
            path = parse_path_argument(arg, "FROM", allow_null=True)
        except AddressError as e:
            await self.push(e.reply)
            return
        assert self.session is not None
        if path.params and not self.session.extended_smtp:
            await self.push(sc.MAIL_SYNTAX)
            return
        txn = _Transaction(mail_from=str(path.mailbox) if path.mailbox else "", size_limit=await self._size_limit())
        for key, value in path.params.items():
            if key == "BODY":  # RFC 6152 §2
                if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                    await self.push(sc.PARAM_NOT_IMPLEMENTED.with_text("BODY must be 7BIT or 8BITMIME"))
                    return
                txn.body_8bit = value.upper() == "8BITMIME"
            elif key == "SMTPUTF8":  # RFC 6531 §3.4
                if value is not None:
                    await self.push(sc.PARAM_SYNTAX.with_text("SMTPUTF8 takes no value"))
                    return
                txn.smtputf8 = True
            elif key == "SIZE":  # RFC 1870 §6
                if value is None or not value.isdigit():
                    await self.push(sc.PARAM_SYNTAX.with_text("SIZE needs a number"))
                    return
                if int(value) > txn.size_limit:  # RFC 1870 §6.1: refused before any data is read
                    await self.push(sc.MESSAGE_TOO_BIG)
                    return
            elif key == "AUTH" and self.config.submission:
                pass  # RFC 4954 §5: informational; the session identity is what counts
            else:
                await self.push(sc.PARAM_NOT_IMPLEMENTED.with_text(f"MAIL parameter {key} not supported"))
                return
        if path.mailbox is not None and not path.mailbox.is_ascii and not txn.smtputf8:
            await self.push(sc.NON_ASCII_NEEDS_SMTPUTF8)
            return
        account = self.account()
        if self.config.submission and account is not None:
            senders = self.policies.senders
            if (
                path.mailbox is None
                or senders is None
                or not await senders.may_send_as(account.account_id, txn.mail_from)
            ):
                await self.push(sc.SENDER_NOT_ALLOWED)
                return
        self._txn = txn
        await self.push(sc.SENDER_OK)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("RCPT"):
            return
        txn = self._txn
        if txn is None:
            await self.push(sc.NEED_MAIL)
            return
        try:
            path = parse_path_argument(arg, "TO", allow_null=False)
        except AddressError as e:
            await self.push(e.reply)
            return
        if path.params:
            await self.push(sc.PARAM_NOT_IMPLEMENTED.with_text("RCPT parameters not supported"))
            return
        mailbox = path.mailbox
        assert mailbox is not None
        if not mailbox.is_ascii and not txn.smtputf8:
            await self.push(sc.NON_ASCII_NEEDS_SMTPUTF8)
            return
        if len(txn.recipients) >= self.config.max_recipients:
            await self.push(sc.TOO_MANY_RECIPIENTS)  # RFC 5321 §4.5.3.1.10
            return
        relaying_allowed = self.config.submission and self.account() is not None
        if not relaying_allowed and (path.source_route or mailbox.is_literal or mailbox.looks_like_relay_hack):
            # No open relay: source routes (RFC 5321 §3.6.1, App. C), address literals and
            # the percent hack / bang paths (RFC 5321 §3.6.1) are never delivered locally.
            await self.push(sc.RELAY_DENIED)
            return
        reply = await self._decide_recipient(txn, mailbox, relaying_allowed)
        await self.push(reply)

    async def _decide_recipient(self, txn: _Transaction, mailbox: Mailbox, relaying_allowed: bool) -> Reply:
        try:
            decision = await self.policies.recipients.check_recipient(mailbox)
        except Exception:
            log.exception("%s recipient policy failed", self.session_id)
            return sc.LOCAL_ERROR
        if decision.status is RecipientStatus.LOCAL:
            txn.recipients.append(Recipient(str(mailbox), True, decision.resolved))
            return sc.RECIPIENT_OK
        if decision.status is RecipientStatus.UNKNOWN_USER:
            return sc.UNKNOWN_USER
        if decision.status is RecipientStatus.TEMPFAIL:
            return sc.LOCAL_ERROR
        if relaying_allowed:
            txn.recipients.append(Recipient(str(mailbox), False))
            return sc.RECIPIENT_OK
        return sc.RELAY_DENIED

    # --- DATA ---------------------------------------------------------------------------------
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        txn = self._txn
        if txn is None:
            await self.push(sc.NEED_MAIL)
            return
        if not txn.recipients:
            await self.push(sc.NO_VALID_RECIPIENTS)
            return
        if arg:
            await self.push(sc.PARAM_SYNTAX.with_text("Syntax: DATA"))
            return
        await self.push(sc.START_DATA)
        spooled: SpooledMessage | None = None
        final: SpooledMessage | None = None
        try:
            spooled, decoder_error = await self._receive_data(txn)
            if decoder_error is not None:
                await self.push(decoder_error)
                return
            if spooled is None:
                await self.push(sc.LOCAL_ERROR)
                return
            reply, final = await self._finish_message(txn, spooled)
            await self.push(reply)
            await self._log_transaction(txn, reply)
        finally:
            spool.discard(spooled)
            if final is not spooled:
                spool.discard(final)
            if txn.writer is not None:
                txn.writer.release()
            self._txn = None

    async def _log_transaction(self, txn: _Transaction, reply: Reply) -> None:
        translog = self.policies.translog
        if translog is None:
            return
        acct = self.account()
        status = "accepted" if reply.is_positive else "rejected"
        records = [
            TransactionRecord(
                "in",
                status,
                txn.mail_from,
                r.address,
                str(reply),
                self._client_ip,
                int(acct.account_id) if acct else None,
                self.session_id,
            )
            for r in txn.recipients
        ]
        try:
            await translog.record(records)
        except Exception:
            log.exception("%s delivery log write failed", self.session_id)

    async def _receive_data(self, txn: _Transaction) -> tuple[SpooledMessage | None, Reply | None]:
        """Stream DATA into a spool file. Returns (spooled message, error reply)."""
        decoder = DataDecoder(txn.size_limit, self.config.max_line_length)
        writer: spool.SpoolWriter | None
        try:
            in_memory = getattr(self.policies.deliverer, "accepts_memory", False)
            writer = txn.writer = spool.SpoolWriter(
                self.config.spool_dir,
                memory_limit=MEMORY_SPOOL if in_memory else 0,
                budget=self._spool_budget,
                budget_limit=MEMORY_SPOOL_MAX,
            )
            writer.write(self._received_header(txn))
        except OSError:
            log.exception("%s cannot create spool file", self.session_id)
            writer = None  # keep reading so the session stays in sync, then 451
        reader = self._reader
        last_reset = time.monotonic()
        try:
            while True:
                # Whatever has arrived, up to DATA_CHUNK: the decoder copes with any split, and
                # reading in large pieces instead of line by line is what keeps DATA cheap.
                chunk = await reader.read(DATA_CHUNK)
                if not chunk:
                    raise ConnectionResetError("connection closed during DATA")
                result = decoder.feed(chunk)
                if result.payload and writer is not None:
                    try:
                        writer.write(result.payload)
                    except OSError:
                        log.exception("%s spool write failed", self.session_id)
                        writer.discard()
                        writer = None
                if result.done:
                    if result.leftover:
                        # Commands pipelined after the terminator (RFC 2920 §3.1) go back to the
                        # reader for the command loop.  StreamReader has no unread(); its buffer is
                        # a bytearray, also cleared directly for STARTTLS above.
                        reader._buffer[:0] = result.leftover  # type: ignore[attr-defined]
                    break
                now = time.monotonic()
                if now - last_reset > 1.0:
                    self._reset_timeout()  # RFC 5321 §4.5.3.2.5: the timeout is per data block
                    last_reset = now
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        if decoder.error is not None:
            if writer is not None:
                writer.discard()
            return None, {
                DataError.BARE_CR_LF: sc.BARE_CR_LF,
                DataError.TOO_BIG: sc.MESSAGE_TOO_BIG,
                DataError.LINE_TOO_LONG: sc.DATA_LINE_TOO_LONG,
            }[decoder.error]
        if writer is None:
            return None, sc.LOCAL_ERROR
        return writer.finish(), None

    def _received_header(self, txn: _Transaction) -> bytes:
        assert self.session is not None
        tls_info = None
        if self.tls_active():
            transport = self.transport
            ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
            if ssl_object is not None:
                cipher = ssl_object.cipher()
                tls_info = f"using {ssl_object.version()} with cipher {cipher[0] if cipher else 'unknown'}"
        return spool.received_header(
            helo=self.session.host_name or "",
            client_ip=self._client_ip,
            by_host=self.hostname,
            protocol=spool.protocol_name(
                esmtp=self.session.extended_smtp,
                tls=self.tls_active(),
                authenticated=self.account() is not None,
                smtputf8=txn.smtputf8,
            ),
            queue_id=self.session_id,
            recipient=txn.recipients[0].address if len(txn.recipients) == 1 else None,
            tls_info=tls_info,
        )

    async def _finish_message(self, txn: _Transaction, spooled: SpooledMessage) -> tuple[Reply, SpooledMessage | None]:
        """Post-DATA checks, header edits and delivery. Returns (reply, final spool file)."""
        assert self.session is not None
        account = self.account()
        junk = False
        auth_results = None
        final = spooled
        prefix = b""
        try:
            if self.config.submission:
                reply, final = await self._prepare_submission(spooled, account)
                if reply is not None:
                    return reply, final
            elif self.policies.inbound_checker is not None:
                verdict = await self.policies.inbound_checker(
                    spooled.source(),
                    self._client_ip,
                    self.session.host_name or "",
                    txn.mail_from,
                )
                if verdict.reject:
                    return sc.DMARC_REJECT, final
                junk = verdict.junk
                auth_results = verdict.authentication_results
                if auth_results:
                    # RFC 8601 §5: added at the top of the message.
                    header = f"Authentication-Results: {auth_results}\r\n".encode()
                    if getattr(self.policies.deliverer, "accepts_prefix", False):
                        prefix = header  # no second spool file: the deliverer puts it on top
                    else:
                        final = await asyncio.to_thread(spool.rewrite, spooled, self.config.spool_dir, prepend=header)
            envelope = MessageEnvelope(
                mail_from=txn.mail_from,
                recipients=tuple(txn.recipients),
                client_ip=self._client_ip,
                helo=self.session.host_name or "",
                tls=self.tls_active(),
                smtputf8=txn.smtputf8,
                body_8bit=txn.body_8bit,
                submission=self.config.submission,
                account_id=account.account_id if account else None,
                junk=junk,
                authentication_results=auth_results,
                received_at=time.time(),
                session_id=self.session_id,
            )
            if prefix:
                await self.policies.deliverer.deliver(envelope, final, prefix=prefix)  # type: ignore[call-arg]
            else:
                await self.policies.deliverer.deliver(envelope, final)
        except DeliveryError as e:
            return e.reply, final
        except Exception:
            log.exception("%s delivery failed", self.session_id)
            return sc.LOCAL_ERROR, final
        return sc.MESSAGE_ACCEPTED.with_text(f"Message accepted for delivery as {self.session_id}"), final

    async def _prepare_submission(
        self, spooled: SpooledMessage, account: AuthenticatedAccount | None
    ) -> tuple[Reply | None, SpooledMessage]:
        assert account is not None
        try:
            if spooled.data is not None:
                block = spool.read_header_block(spooled.data)
            else:
                assert spooled.path is not None  # spooled to a file when not kept in memory
                block = await asyncio.to_thread(spool.read_header_block, spooled.path)
            headers = block.parse()
            from_header = headers.get("From")
            addresses = [a.addr_spec for a in from_header.addresses] if from_header is not None else []
            sender_header = headers.get("Sender")
            if sender_header is not None:
                addresses += [a.addr_spec for a in sender_header.addresses]
        except Exception:
            return sc.BAD_HEADER, spooled
        if from_header is None or not addresses:
            return sc.BAD_HEADER.with_text("Message has no From header (RFC 5322 §3.6)"), spooled
        senders = self.policies.senders
        for address in addresses:
            if senders is None or not await senders.may_send_as(account.account_id, address):
                return sc.SENDER_NOT_ALLOWED.with_text(f"From address {address} not allowed for this account"), spooled
        extra = spool.missing_submission_headers(headers, self.hostname, datetime.now(UTC))
        if not extra:
            return None, spooled
        final = await asyncio.to_thread(
            spool.rewrite,
            spooled,
            self.config.spool_dir,
            append_headers=extra,
            block=block,
        )
        return None, final


class SmtpServer:
    """Runs one listening socket with ``SuiteSMTP`` sessions (for tests and the service layer)."""

    def __init__(
        self,
        config: SmtpConfig,
        policies: SmtpPolicies,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limiter: ConnectionLimiter | None = None,
        live: LiveConnections | None = None,
        reuse_port: bool = False,
    ) -> None:
        if config.implicit_tls and config.tls_context is None:
            raise ValueError("implicit TLS needs a tls_context")
        self.config = config
        self.policies = policies
        self.host = host
        self.port = port
        self.limiter = limiter
        self.live = live
        self.reuse_port = reuse_port
        self.sessions: set[SuiteSMTP] = set()
        self.spool_budget = spool.MemoryBudget(MEMORY_SPOOL_SHARED)
        self._server: asyncio.base_events.Server | None = None

    def _factory(self) -> SuiteSMTP:
        return SuiteSMTP(
            self.config,
            self.policies,
            limiter=self.limiter,
            registry=self.sessions,
            live=self.live,
            loop=asyncio.get_running_loop(),
            spool_budget=self.spool_budget,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.config.spool_dir.mkdir(parents=True, exist_ok=True)
        self._server = await loop.create_server(
            self._factory,
            self.host,
            self.port,
            ssl=self.config.tls_context if self.config.implicit_tls else None,
            ssl_handshake_timeout=30 if self.config.implicit_tls else None,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def create_server(
    config: SmtpConfig,
    policies: SmtpPolicies,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    limiter: ConnectionLimiter | None = None,
) -> SmtpServer:
    """Create and start a server; ``server.port`` is the bound port."""
    server = SmtpServer(config, policies, host=host, port=port, limiter=limiter)
    await server.start()
    return server
