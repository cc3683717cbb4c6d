"""Meeting rooms in SQL (table ``meeting_rooms``, SQLite and PostgreSQL).

A room is reached by its link ``/m/<token>``: the token comes from :mod:`secrets` (144 bits) and
only its SHA-256 is stored, so a leaked database does not leak working links. The optional room
password is stored as an argon2id hash (``suite.accounts.passwords``).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from suite.voip.models import MeetingRoomRow

TOKEN_BYTES = 18  # 144 bits, 24 URL-safe characters
MAX_TITLE = 200


@dataclass(frozen=True, slots=True)
class MeetingRoom:
    id: int
    owner: str
    title: str
    lobby: bool
    password_hash: str | None
    created_at: float
    ended_at: float | None
    e2ee: bool = False
    """End-to-end encrypted room (frames encrypted in the browsers; no recording)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class MeetingRooms(Protocol):
    async def create(
        self, owner: str, title: str, *, lobby: bool, password_hash: str | None, e2ee: bool = False
    ) -> tuple[str, MeetingRoom]: ...

    async def by_token(self, token: str) -> MeetingRoom | None: ...

    async def mark_ended(self, room_id: int) -> None: ...


def _room(r: MeetingRoomRow) -> MeetingRoom:
    return MeetingRoom(r.id, r.owner, r.title, r.lobby, r.password_hash, r.created_at, r.ended_at, bool(r.e2ee))


class SqlMeetingRooms:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def create(
        self, owner: str, title: str, *, lobby: bool, password_hash: str | None, e2ee: bool = False
    ) -> tuple[str, MeetingRoom]:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        row = MeetingRoomRow(
            token_hash=token_hash(token),
            owner=owner,
            title=title[:MAX_TITLE],
            lobby=lobby,
            password_hash=password_hash,
            created_at=time.time(),
            e2ee=e2ee,
        )
        async with self.sessions.begin() as s:
            s.add(row)
            await s.flush()
            room = _room(row)
        return token, room

    async def by_token(self, token: str) -> MeetingRoom | None:
        if not 16 <= len(token) <= 64:
            return None
        async with self.sessions() as s:
            row = await s.scalar(select(MeetingRoomRow).where(MeetingRoomRow.token_hash == token_hash(token)))
            return None if row is None else _room(row)

    async def mark_ended(self, room_id: int) -> None:
        async with self.sessions.begin() as s:
            await s.execute(
                update(MeetingRoomRow)
                .where(MeetingRoomRow.id == room_id, MeetingRoomRow.ended_at.is_(None))
                .values(ended_at=time.time())
            )
