"""A ManageSieve session (RFC 5804): states, commands, answers. No sockets here: ``feed`` takes bytes
and ``write`` (given by the server) sends them; logins go through the account store (scope "imap",
so an IMAP app password also manages filters, as Dovecot's ManageSieve shares IMAP's passdb),
scripts through :class:`~suite.mail.sieve.store.SieveStore`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
from collections.abc import Awaitable, Callable

from suite.accounts.revocation import Credential
from suite.mail.sieve.parser import SieveError
from suite.mail.sieve.store import SieveStore, SieveStoreError
from suite.mail.sieve.validate import EXTENSIONS

from .protocol import Atom, BadLine, CommandReader, Line, capability_lines, response, string

MAX_AUTH_FAILURES = 3
IMPLEMENTATION = "Suite ManageSieve"


def is_loopback(ip: str | None) -> bool:
    try:
        return bool(ip) and ipaddress.ip_address(ip).is_loopback  # type: ignore[arg-type]
    except ValueError:
        return False


class Shared:
    """What every session of one server shares."""

    def __init__(self, ctx, *, auth_delay: float = 1.0) -> None:
        self.ctx = ctx
        self.scripts = SieveStore(ctx)
        self.auth_delay = auth_delay


class _No(Exception):
    def __init__(self, text: str, code: str = "") -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class ManageSieveSession:
    def __init__(self, shared: Shared, write: Callable[[list[bytes]], Awaitable[None]], *, peer, tls: bool) -> None:
        self.shared = shared
        self.ctx = shared.ctx
        self.write = write
        self.peer = peer
        self.tls = tls
        self.reader = CommandReader(max_literal=self.ctx.settings.sieve_max_script_size + 1024)
        self.account = None
        self.credential: Credential | None = None  # what it signed in with (revocation ends it)
        self.closed = False
        self.starttls_requested = False
        self.auth_failures = 0
        self.outcome = "open"
        self._sasl: str | None = None  # waiting for the client's SASL response (PLAIN)

    @property
    def plaintext_ok(self) -> bool:
        return self.tls or bool(self.ctx.settings.allow_plaintext_loopback and is_loopback(self.peer))

    @property
    def timeout(self) -> float:
        return 1800.0 if self.account is not None else 120.0

    def capabilities(self) -> list[tuple[str, str | None]]:
        # RFC 5804 §1.7
        caps: list[tuple[str, str | None]] = [
            ("IMPLEMENTATION", IMPLEMENTATION),
            ("SIEVE", " ".join(EXTENSIONS)),
        ]
        if self.account is None:
            caps.append(("SASL", "PLAIN" if self.plaintext_ok else ""))
            if not self.tls:
                caps.append(("STARTTLS", None))
        else:
            caps.append(("OWNER", self.account.address))
        caps += [("MAXREDIRECTS", str(self.ctx.settings.sieve_max_redirects)), ("VERSION", "1.0")]
        return caps

    async def start(self) -> None:
        await self.write([capability_lines(self.capabilities()), response("OK", "ManageSieve ready.")])

    async def bye(self, text: str, code: str = "") -> None:
        if not self.closed:
            self.closed = True
            try:
                await self.write([response("BYE", text, code)])
            except (ConnectionError, OSError):
                pass

    async def feed(self, data: bytes) -> None:
        for item in self.reader.feed(data):
            if self.closed or self.starttls_requested:
                return  # RFC 5804 §2.2: nothing pipelined after STARTTLS is honoured
            if isinstance(item, BadLine):
                if self._sasl is not None:
                    self._sasl = None
                await self.write([response("NO", item.message, item.code)])
                continue
            try:
                out = await self._dispatch(item)
            except _No as no:
                out = [response("NO", no.text, no.code)]
            if out:
                await self.write(out)

    def tls_started(self) -> None:
        self.tls = True
        self.starttls_requested = False
        self.reader = CommandReader(max_literal=self.ctx.settings.sieve_max_script_size + 1024)

    async def after_starttls(self) -> None:
        # RFC 5804 §2.2: the server sends the capabilities again after the TLS handshake.
        await self.write([capability_lines(self.capabilities()), response("OK", "TLS active.")])

    # ------------------------------------------------------------ dispatch
    async def _dispatch(self, line: Line) -> list[bytes]:
        toks = line.tokens
        if self._sasl is not None:
            self._sasl = None
            if len(toks) != 1 or not isinstance(toks[0], str):
                raise _No("Expected a SASL response string.")
            if toks[0] == "*":
                raise _No("Authentication cancelled.")  # RFC 5804 §2.1
            return await self._sasl_plain(toks[0])
        if not toks:
            raise _No("Empty command.")
        if not isinstance(toks[0], Atom):
            raise _No("Expected a command name.")
        name, args = toks[0].value, toks[1:]
        handler = getattr(self, f"_cmd_{name.lower()}", None)
        if handler is None:
            raise _No(f"Unknown command {name}.")
        if name not in ("CAPABILITY", "LOGOUT", "NOOP", "STARTTLS", "AUTHENTICATE") and self.account is None:
            raise _No("Log in first (AUTHENTICATE).")
        return await handler(args)

    @staticmethod
    def _strings(args, n: int, usage: str) -> list[str]:
        if len(args) != n or not all(isinstance(a, str) for a in args):
            raise _No(f"Usage: {usage}")
        return list(args)

    # ------------------------------------------------------------ any state
    async def _cmd_capability(self, args) -> list[bytes]:
        self._strings(args, 0, "CAPABILITY")
        return [capability_lines(self.capabilities()), response("OK", "Capability completed.")]

    async def _cmd_noop(self, args) -> list[bytes]:
        if len(args) > 1 or (args and not isinstance(args[0], str)):
            raise _No("Usage: NOOP [tag]")
        if args:
            return [response("OK", "Done", "TAG " + string(args[0]).decode("utf-8"))]  # RFC 5804 §2.13
        return [response("OK", "Done")]

    async def _cmd_logout(self, args) -> list[bytes]:
        self.closed = True
        self.outcome = "logout"
        return [response("OK", "Logout completed.")]

    async def _cmd_starttls(self, args) -> list[bytes]:
        if self.tls:
            raise _No("TLS is already active.")
        if self.account is not None:
            raise _No("STARTTLS is only allowed before authentication.")
        self.starttls_requested = True
        return [response("OK", "Begin TLS negotiation now.")]

    async def _cmd_authenticate(self, args) -> list[bytes]:
        if self.account is not None:
            raise _No("Already authenticated.")
        if not args or not isinstance(args[0], str) or len(args) > 2:
            raise _No('Usage: AUTHENTICATE "PLAIN" [initial-response]')
        if args[0].upper() != "PLAIN":
            raise _No(f"Unsupported SASL mechanism {args[0]!r}.")
        if not self.plaintext_ok:
            raise _No("Use STARTTLS before authenticating.", "ENCRYPT-NEEDED")  # RFC 5804 §1.3
        if len(args) == 2:
            if not isinstance(args[1], str):
                raise _No("The initial response must be a string.")
            return await self._sasl_plain(args[1])
        self._sasl = "PLAIN"
        return [b'""\r\n']  # RFC 5804 §2.1: an empty server challenge

    async def _sasl_plain(self, b64: str) -> list[bytes]:
        try:
            raw = base64.b64decode(b64.encode("ascii"), validate=True).decode("utf-8")
            authzid, authcid, password = raw.split("\x00")
        except (binascii.Error, UnicodeError, ValueError):
            raise _No("Malformed SASL PLAIN response.") from None
        if authzid and authzid.lower() != authcid.lower():
            raise _No("Authorization identity not permitted.")
        res = await self.ctx.accounts.authenticate(authcid, password, scope="imap", ip=self.peer)
        if res.ok:
            self.account = res.account
            self.credential = Credential.of_login(res.account.id, res.app_password_id if res.via_app_password else None)
            self.outcome = "authenticated"
            return [response("OK", "Logged in.")]
        self.auth_failures += 1
        await asyncio.sleep(min(self.shared.auth_delay * 2 ** (self.auth_failures - 1), 15))
        text = "Too many failed logins; try again later." if res.outcome == "locked" else "Authentication failed."
        if self.auth_failures >= MAX_AUTH_FAILURES:
            self.outcome = "auth-failures"
            self.closed = True
            return [response("NO", text), response("BYE", "Too many failures.")]
        raise _No(text)

    # ------------------------------------------------------------ authenticated
    @property
    def _account_id(self) -> int:
        assert self.account is not None  # _dispatch refuses these commands before login
        return self.account.id

    def _store_error(self, exc: SieveStoreError) -> _No:
        return _No(str(exc), exc.code)

    async def _cmd_listscripts(self, args) -> list[bytes]:
        self._strings(args, 0, "LISTSCRIPTS")
        out = []
        for s in await self.shared.scripts.list_scripts(self._account_id):
            out.append(string(s.name) + (b" ACTIVE" if s.active else b"") + b"\r\n")
        return [*out, response("OK", "Listscripts completed.")]

    async def _cmd_getscript(self, args) -> list[bytes]:
        (name,) = self._strings(args, 1, 'GETSCRIPT "name"')
        try:
            content = await self.shared.scripts.get_script(self._account_id, name)
        except SieveStoreError as exc:
            raise self._store_error(exc) from None
        data = content.encode("utf-8")
        return [b"{%d}\r\n" % len(data), data, b"\r\n", response("OK", "Getscript completed.")]

    async def _cmd_putscript(self, args) -> list[bytes]:
        name, content = self._strings(args, 2, 'PUTSCRIPT "name" {n+} script')
        try:
            await self.shared.scripts.put_script(self._account_id, name, content)
        except SieveError as exc:
            raise _No(str(exc)) from None  # RFC 5804 §2.6: the error names the line
        except SieveStoreError as exc:
            raise self._store_error(exc) from None
        return [response("OK", "Putscript completed.")]

    async def _cmd_checkscript(self, args) -> list[bytes]:
        (content,) = self._strings(args, 1, "CHECKSCRIPT {n+} script")
        try:
            self.shared.scripts.compile(content)
        except SieveError as exc:
            raise _No(str(exc)) from None
        return [response("OK", "Script is valid.")]

    async def _cmd_setactive(self, args) -> list[bytes]:
        (name,) = self._strings(args, 1, 'SETACTIVE "name"')
        try:
            await self.shared.scripts.set_active(self._account_id, name)
        except SieveStoreError as exc:
            raise self._store_error(exc) from None
        return [response("OK", "Setactive completed.")]

    async def _cmd_deletescript(self, args) -> list[bytes]:
        (name,) = self._strings(args, 1, 'DELETESCRIPT "name"')
        try:
            await self.shared.scripts.delete_script(self._account_id, name)
        except SieveStoreError as exc:
            raise self._store_error(exc) from None
        return [response("OK", "Deletescript completed.")]

    async def _cmd_renamescript(self, args) -> list[bytes]:
        old, new = self._strings(args, 2, 'RENAMESCRIPT "old" "new"')
        try:
            await self.shared.scripts.rename_script(self._account_id, old, new)
        except SieveStoreError as exc:
            raise self._store_error(exc) from None
        return [response("OK", "Renamescript completed.")]

    async def _cmd_havespace(self, args) -> list[bytes]:
        if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], int):
            raise _No('Usage: HAVESPACE "name" size')
        try:
            await self.shared.scripts.have_space(self._account_id, args[0], args[1])
        except SieveStoreError as exc:
            raise self._store_error(exc) from None
        return [response("OK", "Putscript would succeed.")]
