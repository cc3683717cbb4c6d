"""Tables of the files service: the per-account tree, versions, dead properties, tus uploads, shares."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from suite.storage.db import Base, BigInt


class FileNode(Base):
    """A folder or a file. Every account has one root folder (parent_id NULL, name "")."""

    __tablename__ = "file_nodes"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("file_nodes.id", ondelete="CASCADE"), nullable=True)
    name: Mapped[str] = mapped_column(String(255))  # NFC, validated by suite.files.names
    is_dir: Mapped[bool] = mapped_column(Boolean)
    blob: Mapped[str | None] = mapped_column(String(64), nullable=True)  # SHA-256 of the content
    size: Mapped[int] = mapped_column(BigInt, default=0)
    media_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    etag: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    modified_at: Mapped[float] = mapped_column(Float)
    # Set on the top node of a subtree moved to the trash; its descendants stay attached under it.
    trashed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    __table_args__ = (
        # One live name per folder; trashed nodes may repeat a name.
        Index(
            "uq_file_nodes_live_name",
            "parent_id",
            "name",
            unique=True,
            sqlite_where=text("trashed_at IS NULL"),
            postgresql_where=text("trashed_at IS NULL"),
        ),
        # One root per account.
        Index(
            "uq_file_nodes_root",
            "account_id",
            unique=True,
            sqlite_where=text("parent_id IS NULL"),
            postgresql_where=text("parent_id IS NULL"),
        ),
        Index("ix_file_nodes_parent", "parent_id"),
        Index("ix_file_nodes_trashed", "trashed_at"),
    )


class FileVersion(Base):
    """An earlier content of a file, kept when it was overwritten (the last N)."""

    __tablename__ = "file_versions"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("file_nodes.id", ondelete="CASCADE"), index=True)
    blob: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInt)
    media_type: Mapped[str] = mapped_column(String(255))
    modified_at: Mapped[float] = mapped_column(Float)


class FileProp(Base):
    """WebDAV dead properties (RFC 4918 §4), stored per node so MOVE keeps them."""

    __tablename__ = "file_props"
    node_id: Mapped[int] = mapped_column(ForeignKey("file_nodes.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), primary_key=True)  # "{namespace}local"
    value: Mapped[str] = mapped_column(Text)  # the XML element as sent


class TusUpload(Base):
    """A resumable upload (tus 1.0) in progress; the bytes are in ``<spool>/tus/<id>``."""

    __tablename__ = "tus_uploads"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("file_nodes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(255))
    length: Mapped[int] = mapped_column(BigInt)
    offset: Mapped[int] = mapped_column(BigInt, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    node_id: Mapped[int | None] = mapped_column(BigInt, nullable=True)  # the file, once complete


class Share(Base):
    """A public link to a file or a folder (download), or into a folder (drop: upload only)."""

    __tablename__ = "file_shares"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("file_nodes.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # "download" | "drop"
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ShareAccess(Base):
    """The access log of a share, visible to its owner; also the wrong-password rate limit."""

    __tablename__ = "file_share_access"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("file_shares.id", ondelete="CASCADE"))
    at: Mapped[float] = mapped_column(Float)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # download, upload, bad-password, denied-expired, denied-limit, rate-limited
    action: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(String(300), default="")
    __table_args__ = (Index("ix_file_share_access_share_at", "share_id", "at"),)
