"""TURN credentials (coturn ``use-auth-secret``) and a loopback coturn launcher.

Time-limited credentials follow draft-uberti-behave-turn-rest-00 §2.2 as
implemented by coturn's ``use-auth-secret`` / ``static-auth-secret``:

* username = ``"{expiry_unix}:{account}"`` (expiry first, coturn's default
  ``rest-api-separator`` is ``:``; coturn takes the digits before the first
  separator as the timestamp, so an account may itself contain ``:``);
* password = ``base64(HMAC-SHA1(secret, username))``;
* coturn accepts the credential while ``expiry >= now`` (``userdb.c``:
  ``if(!turn_time_before(ts, ctime))``).

The credential goes to the browser in the W3C ``RTCIceServer`` dictionary
(webrtc-pc §4.2.4: ``urls``, ``username``, ``credential``).  The secret never
leaves the server; a credential is bound to one account and short-lived.

The second half writes a ``turnserver.conf`` and the command line that runs
coturn on 127.0.0.1 only, for integration tests (nothing here starts it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

DEFAULT_TTL: Final = 3600
MAX_TTL: Final = 24 * 3600
_ACCOUNT_RE: Final = re.compile(r"^[^\s\x00-\x1f\x7f]{1,320}$")
_URL_RE: Final = re.compile(r"^(stun|stuns|turn|turns):[^\s]+$")  # RFC 7064 §3.1, RFC 7065 §3.1


class TurnConfig(Protocol):
    """What :func:`ice_servers` needs; the suite's settings object satisfies it."""

    @property
    def turn_secret(self) -> str: ...
    @property
    def turn_urls(self) -> Sequence[str]: ...
    @property
    def stun_urls(self) -> Sequence[str]: ...
    @property
    def turn_ttl(self) -> int: ...


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """A plain :class:`TurnConfig` (tests, or when settings are built by hand)."""

    turn_secret: str
    turn_urls: tuple[str, ...] = ()
    stun_urls: tuple[str, ...] = ()
    turn_ttl: int = DEFAULT_TTL

    def __post_init__(self) -> None:
        if len(self.turn_secret) < 16:
            raise ValueError("turn_secret must be at least 16 characters")
        if not 60 <= self.turn_ttl <= MAX_TTL:
            raise ValueError(f"turn_ttl must be within 60..{MAX_TTL} seconds")
        for url in (*self.turn_urls, *self.stun_urls):
            if not _URL_RE.match(url):
                raise ValueError(f"not a STUN/TURN URI: {url!r}")


@dataclass(frozen=True, slots=True)
class TurnCredential:
    username: str
    password: str
    expires_at: int
    ttl: int


def _hmac_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_credential(secret: str, account: str, now: float, ttl: int = DEFAULT_TTL) -> TurnCredential:
    """Mint a credential for ``account`` valid until ``int(now) + ttl``."""
    if not _ACCOUNT_RE.match(account):
        raise ValueError("account is not usable in a TURN username")
    if not 1 <= ttl <= MAX_TTL:
        raise ValueError(f"ttl must be within 1..{MAX_TTL} seconds")
    expires_at = int(now) + ttl
    username = f"{expires_at}:{account}"
    return TurnCredential(username, _hmac_password(secret, username), expires_at, ttl)


def parse_turn_username(username: str) -> tuple[int, str] | None:
    """``(expiry, account)`` of a REST-API username, None when malformed."""
    stamp, sep, account = username.partition(":")
    if not sep or not stamp.isascii() or not stamp.isdigit() or not account:
        return None
    return int(stamp), account


def verify_turn_credential(secret: str, username: str, password: str, now: float) -> str | None:
    """Check a credential as coturn does; the account on success, else None."""
    parsed = parse_turn_username(username)
    if parsed is None:
        return None
    expires_at, account = parsed
    if expires_at < int(now):  # coturn: valid while !turn_time_before(ts, now)
        return None
    expected = _hmac_password(secret, username)
    if not hmac.compare_digest(expected.encode("ascii"), password.encode("utf-8", "replace")):
        return None
    return account


def ice_servers(config: TurnConfig, account: str, now: float) -> list[dict[str, Any]]:
    """The ``RTCConfiguration.iceServers`` list for ``account`` at ``now``."""
    servers: list[dict[str, Any]] = []
    if config.stun_urls:
        servers.append({"urls": list(config.stun_urls)})
    if config.turn_urls:
        cred = turn_credential(config.turn_secret, account, now, config.turn_ttl)
        servers.append(
            {
                "urls": list(config.turn_urls),
                "username": cred.username,
                "credential": cred.password,
            }
        )
    return servers


# --- coturn on loopback (integration tests) ------------------------------------------


@dataclass(frozen=True, slots=True)
class CoturnLoopback:
    """Settings of a throw-away coturn bound to 127.0.0.1 with REST-API auth.

    Option names are those of coturn 4.6 (``turnserver --help``,
    ``examples/etc/turnserver.conf``).  Since 4.6 coturn refuses loopback peers
    unless ``allow-loopback-peers`` is set, which a single-host test needs.
    """

    secret: str
    workdir: Path
    realm: str = "suite.test"
    port: int = 3478
    min_port: int = 49160
    max_port: int = 49200
    extra: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536 or not 0 < self.min_port <= self.max_port < 65536:
            raise ValueError("bad port range")
        for value in (self.secret, self.realm, *self.extra):
            if any(c in value for c in "\r\n\x00") or value != value.strip():
                raise ValueError("coturn settings must be single-line values")

    def options(self) -> list[tuple[str, str | None]]:
        """(name, value) pairs; value None is a flag."""
        return [
            ("listening-ip", "127.0.0.1"),
            ("relay-ip", "127.0.0.1"),
            ("listening-port", str(self.port)),
            ("min-port", str(self.min_port)),
            ("max-port", str(self.max_port)),
            ("realm", self.realm),
            ("use-auth-secret", None),
            ("static-auth-secret", self.secret),
            ("fingerprint", None),
            ("no-cli", None),
            ("no-tls", None),
            ("no-dtls", None),
            ("no-rfc5780", None),
            ("no-stun-backward-compatibility", None),
            ("response-origin-only-with-rfc5780", None),
            ("no-multicast-peers", None),
            ("allow-loopback-peers", None),
            ("no-software-attribute", None),
            ("userdb", str(self.workdir / "turndb")),
            ("pidfile", str(self.workdir / "turnserver.pid")),
            ("log-file", "stdout"),
            ("simple-log", None),
            *((x, None) for x in self.extra),
        ]


def render_coturn_config(cfg: CoturnLoopback) -> str:
    lines = ["# Written by suite.voip.turn for a loopback test coturn."]
    lines += [name if value is None else f"{name}={value}" for name, value in cfg.options()]
    return "\n".join(lines) + "\n"


def write_coturn_config(cfg: CoturnLoopback) -> Path:
    """Write ``turnserver.conf`` (mode 0600: it holds the secret) into workdir."""
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    path = cfg.workdir / "turnserver.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render_coturn_config(cfg))
    os.chmod(path, 0o600)
    return path


def coturn_command(config_path: Path, binary: str = "turnserver") -> list[str]:
    """argv running coturn on a written config file (``-c``)."""
    return [binary, "-c", str(config_path)]


def coturn_argv(cfg: CoturnLoopback, binary: str = "turnserver") -> list[str]:
    """argv with every option on the command line (``-n``: no config file).

    Note that the secret is then visible in the process list: prefer
    :func:`write_coturn_config` + :func:`coturn_command` outside throw-away tests.
    """
    argv = [binary, "-n"]
    argv += [f"--{name}" if value is None else f"--{name}={value}" for name, value in cfg.options()]
    return argv
