"""Per-client-IP connection limits (sans-I/O: the clock is passed in)."""

from __future__ import annotations

import enum
import ipaddress
from collections import deque
from dataclasses import dataclass, field


class Admission(enum.Enum):
    ADMIT = "admit"
    TOO_MANY_CONNECTIONS = "too-many-connections"
    RATE_LIMITED = "rate-limited"


def client_key(ip: str) -> str:
    """IPv4 addresses count alone; IPv6 clients are grouped by /64."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr.ipv4_mapped or addr) if isinstance(addr, ipaddress.IPv6Address) else str(addr)


@dataclass
class ConnectionLimiter:
    max_concurrent_per_ip: int = 20
    max_connections_per_window: int = 120  # new connections per IP in ``window_seconds``
    window_seconds: float = 60.0
    _active: dict[str, int] = field(default_factory=dict)
    _recent: dict[str, deque[float]] = field(default_factory=dict)

    def admit(self, ip: str, now: float) -> Admission:
        """Decide on a new connection; on ADMIT the caller must ``release`` it later."""
        key = client_key(ip)
        if self._active.get(key, 0) >= self.max_concurrent_per_ip:
            return Admission.TOO_MANY_CONNECTIONS
        window = self._recent.setdefault(key, deque())
        while window and window[0] <= now - self.window_seconds:
            window.popleft()
        if len(window) >= self.max_connections_per_window:
            return Admission.RATE_LIMITED
        window.append(now)
        self._active[key] = self._active.get(key, 0) + 1
        return Admission.ADMIT

    def release(self, ip: str) -> None:
        key = client_key(ip)
        left = self._active.get(key, 0) - 1
        if left > 0:
            self._active[key] = left
        else:
            self._active.pop(key, None)
            if not self._recent.get(key):
                self._recent.pop(key, None)

    def active(self, ip: str) -> int:
        return self._active.get(client_key(ip), 0)
