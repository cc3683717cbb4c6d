"""Tables of the account store. Times are UNIX seconds (float) on every backend."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from suite.storage.db import Base, BigInt


class Domain(Base):
    __tablename__ = "domains"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    created_at: Mapped[float] = mapped_column(Float)


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="RESTRICT"), index=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    quota_bytes: Mapped[int] = mapped_column(BigInt)
    used_bytes: Mapped[int] = mapped_column(BigInt, default=0)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    # Mail sent through SMTP submission: attachments over ``big_attachment_bytes`` go to the sender's
    # Files and the message carries a share link instead (migration 0003ba).
    big_attachment_links: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Alias(Base):
    __tablename__ = "aliases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="RESTRICT"), index=True)
    # "local@domain", or "*@domain" for the domain's catch-all.
    address: Mapped[str] = mapped_column(String(320), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[float] = mapped_column(Float)


class Identity(Base):
    """An address the account sends from (RFC 8621 §6): its own (made with the account), one per
    alias (made and removed with the alias), and those the user adds (own, alias or catch-all addresses)."""

    __tablename__ = "identities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)  # None: the account's display name
    reply_to: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON [EmailAddress] or null
    bcc: Mapped[str | None] = mapped_column(Text, nullable=True)
    text_signature: Mapped[str] = mapped_column(Text, default="")
    html_signature: Mapped[str] = mapped_column(Text, default="")
    may_delete: Mapped[bool] = mapped_column(Boolean, default=True)
    alias_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # made for this alias
    created_at: Mapped[float] = mapped_column(Float)
    __table_args__ = ({"sqlite_autoincrement": True},)


class AppPassword(Base):
    __tablename__ = "app_passwords"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the 128-bit+ random secret
    scopes: Mapped[str] = mapped_column(String(100))  # comma separated: imap,smtp,dav,jmap
    created_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LoginFailure(Base):
    """One row per failed login, keyed by ``addr:<address>`` and ``ip:<address>``; a sliding window counts them."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400))
    at: Mapped[float] = mapped_column(Float)
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)


class WebSession(Base):
    __tablename__ = "web_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    # shown on the Sessions screen (migration 0003s)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str] = mapped_column(String(200), default="", server_default="")


class SecondFactor(Base):
    """TOTP (RFC 6238) of an account: the secret while enrolling, enabled once a code was verified.
    ``totp_last_step`` is the last time step accepted: a code is never accepted twice."""

    __tablename__ = "second_factors"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    totp_secret: Mapped[str] = mapped_column(String(64))
    totp_enabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    totp_last_step: Mapped[int] = mapped_column(BigInt, default=0)


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of a 60-bit+ random code
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LoginChallenge(Base):
    """The second step of a web login: the password was right, a second factor is due."""

    __tablename__ = "login_challenges"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    # "login" (second step of a web login) or "passkey-register"; the WebAuthn challenge issued
    kind: Mapped[str] = mapped_column(String(32), default="login", server_default="login")
    webauthn_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)


class Passkey(Base):
    """A WebAuthn credential (second factor): its id and COSE public key, as the browser sent them."""

    __tablename__ = "passkeys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(String(400), unique=True)  # base64url
    public_key: Mapped[str] = mapped_column(Text)  # base64url of the COSE key
    sign_count: Mapped[int] = mapped_column(BigInt, default=0)
    label: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuditEntry(Base):
    """Sign-ins, admin and security actions: who, what, when, from where."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(320))  # the address that acted ("" for the system)
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # the account concerned
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(500), default="")
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LiveConnectionRow(Base):
    """Signed-in protocol connections of every process (the Sessions screen), with heartbeats:
    a process refreshes its rows' ``seen_at``; rows of a process that died age out."""

    __tablename__ = "live_connections"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    service: Mapped[str] = mapped_column(String(32))
    client: Mapped[str] = mapped_column(String(200), default="")
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    credential: Mapped[str] = mapped_column(String(32))  # password | app_password | web_session
    app_password_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    since: Mapped[float] = mapped_column(Float)
    seen_at: Mapped[float] = mapped_column(Float, index=True)


__all__ = [
    "Domain",
    "Account",
    "Alias",
    "AppPassword",
    "LoginFailure",
    "WebSession",
    "SecondFactor",
    "RecoveryCode",
    "LoginChallenge",
    "Passkey",
    "AuditEntry",
    "LiveConnectionRow",
]
