"""JMAP errors: request-level problem documents (RFC 8620 §3.6.1, RFC 7807), method-level errors
(§3.6.2) and per-object SetErrors (§5.3)."""

from __future__ import annotations

from typing import Any

URN = "urn:ietf:params:jmap:error:"


class RequestError(Exception):
    """A request-level error: the whole request is refused with an RFC 7807 problem document."""

    def __init__(self, type_: str, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.type = type_
        self.status = status
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        # RFC 8620 §3.6.1: unknownCapability, notJSON, notRequest, limit (with "limit")
        out = {"type": URN + self.type, "status": self.status, "detail": self.detail}
        out.update(self.extra)
        return out


class MethodError(Exception):
    """A method-level error (RFC 8620 §3.6.2): the call's response is ["error", {...}, id]."""

    def __init__(self, type_: str, description: str | None = None, **extra: Any) -> None:
        super().__init__(description or type_)
        self.type = type_
        self.description = description
        self.extra = extra

    def args_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.description:
            out["description"] = self.description
        out.update(self.extra)
        return out


def invalid_arguments(description: str) -> MethodError:
    return MethodError("invalidArguments", description)


def set_error(type_: str, description: str | None = None, **extra: Any) -> dict[str, Any]:
    """A SetError object (RFC 8620 §5.3)."""
    out: dict[str, Any] = {"type": type_}
    if description:
        out["description"] = description
    out.update(extra)
    return out
