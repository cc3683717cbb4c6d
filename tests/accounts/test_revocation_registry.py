"""LiveConnections and a sign-in racing a revocation (issue 16): a connection whose credential check
began before a revocation was heard, and registered after, is ended as it registers; one whose check
began after, or another credential, is not. Memory bus, no sockets (the IMAP test forces the same
interleaving over a real connection)."""

from __future__ import annotations

from suite.accounts.revocation import APP_PASSWORD, PASSWORD, Credential, LiveConnection, LiveConnections
from suite.storage.bus import MemoryBus
from suite.storage.events import CredentialsRevoked
from suite.testing import async_wait_until


async def test_a_revocation_heard_during_the_check_ends_the_connection_on_registration():
    bus = MemoryBus()
    registry = LiveConnections(bus)
    ended: list[str] = []

    def conn(cred: Credential, name: str) -> LiveConnection:
        return LiveConnection(cred, "imap", lambda reason: ended.append(f"{name}: {reason}"))

    phone = Credential(7, APP_PASSWORD, app_password_id=3)
    try:
        before = registry.mark()  # the phone's login check starts
        await bus.publish(CredentialsRevoked(account_id=7, scope="app_password", app_password_id=3, reason="revoked"))
        await async_wait_until(lambda: registry.mark() > before, what="the registry heard it")
        after = registry.mark()
        registry.add(conn(phone, "raced"), before)  # the check had passed: ended as it registers
        registry.add(conn(phone, "checked after"), after)  # its check saw the revocation: not replayed
        registry.add(conn(Credential(7, APP_PASSWORD, app_password_id=4), "laptop"), before)
        registry.add(conn(Credential(7, PASSWORD), "password"), before)
        registry.add(conn(Credential(8, APP_PASSWORD, app_password_id=3), "other account"), before)
        registry.add(conn(phone, "no mark"))
        assert ended == ["raced: revoked"]
        assert (
            registry.dispatch(CredentialsRevoked(account_id=7, scope="account", reason="disabled")) == 4
        )  # the rest of account 7
    finally:
        await registry.stop()
