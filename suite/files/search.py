"""Find files and folders by name anywhere in an account's tree (the web app's search box)."""

from __future__ import annotations

from sqlalchemy import func, select

from suite.files.models import FileNode
from suite.files.tree import FileTree, Node, _node

MAX_RESULTS = 200


def _like(q: str) -> str:
    return "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search_names(tree: FileTree, account_id: int, q: str, limit: int = MAX_RESULTS) -> list[tuple[Node, str]]:
    """(node, path) of live nodes whose name contains ``q`` (case-insensitive), shortest paths first.
    Nodes under a folder in the trash are left out."""
    q = q.strip()
    if not q:
        return []
    out: list[tuple[Node, str]] = []
    async with tree.sessions() as s:
        rows = list(
            await s.scalars(
                select(FileNode)
                .where(
                    FileNode.account_id == account_id,
                    FileNode.parent_id.is_not(None),
                    FileNode.trashed_at.is_(None),
                    func.lower(FileNode.name).like(_like(q), escape="\\"),
                )
                .order_by(FileNode.name)
                .limit(limit * 2)
            )
        )
        for r in rows:
            parts, n, live = [r.name], r, True
            while n.parent_id is not None:
                n = await s.get(FileNode, n.parent_id)
                if n is None or n.trashed_at is not None:
                    live = False
                    break
                if n.parent_id is not None:
                    parts.append(n.name)
            if live:
                out.append((_node(r), "/" + "/".join(reversed(parts))))
    out.sort(key=lambda x: (x[1].count("/"), x[1].lower()))
    return out[:limit]
