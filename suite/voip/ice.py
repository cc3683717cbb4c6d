"""The ICE servers of this deployment: settings, plus our own coturn when ``coturn_enabled``.

With ``coturn_enabled`` and no ``turn_secret`` configured, a random secret is generated once into
``<data_dir>/voip/turn_secret`` (mode 0600), read by the gateway (credentials) and by the voip
service (coturn's ``static-auth-secret``) alike.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from suite.voip.turn import TurnSettings


def secret_path(settings) -> Path:
    return Path(settings.data_dir) / "voip" / "turn_secret"


def turn_secret(settings) -> str:
    if settings.turn_secret:
        return settings.turn_secret
    path = secret_path(settings)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


@dataclass(frozen=True, slots=True)
class IceConfig:
    """A :class:`~suite.voip.turn.TurnConfig` (for ``ice_servers``) built from the settings."""

    turn_secret: str = ""
    turn_urls: tuple[str, ...] = ()
    stun_urls: tuple[str, ...] = ()
    turn_ttl: int = 600
    coturn: bool = field(default=False)


def ice_config(settings) -> IceConfig:
    turn_urls = tuple(settings.turn_urls)
    if not turn_urls and settings.coturn_enabled:
        host = settings.hostname if settings.listen_host in ("0.0.0.0", "::") else settings.listen_host
        turn_urls = (f"turn:{host}:{settings.coturn_port}?transport=udp",)
    secret = turn_secret(settings) if (turn_urls or settings.coturn_enabled) else ""
    if turn_urls:
        # Validation (secret length, URI syntax, ttl range) is TurnSettings'.
        TurnSettings(secret, turn_urls, tuple(settings.stun_urls), settings.turn_ttl)
    return IceConfig(secret, turn_urls, tuple(settings.stun_urls), settings.turn_ttl, settings.coturn_enabled)


def aiortc_ice_servers(settings, name: str) -> list:
    """Explicit ICE servers for a server-side aiortc peer connection (media agent, SFU): our TURN
    with a fresh credential for ``name``, or none. Never aiortc's default (a public STUN server)."""
    import time

    from aiortc import RTCIceServer

    from suite.voip.turn import turn_credential

    cfg = ice_config(settings)
    if not cfg.turn_urls:
        return []
    cred = turn_credential(cfg.turn_secret, name, time.time(), cfg.turn_ttl)
    return [RTCIceServer(urls=list(cfg.turn_urls), username=cred.username, credential=cred.password)]
