"""TURN REST-API credentials and the loopback coturn configuration."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
import subprocess
from pathlib import Path

import pytest

from suite.testing import require_tool
from suite.voip.turn import (
    CoturnLoopback,
    TurnSettings,
    coturn_argv,
    coturn_command,
    ice_servers,
    parse_turn_username,
    render_coturn_config,
    turn_credential,
    verify_turn_credential,
    write_coturn_config,
)

SECRET = "north-and-south-secret-0123456789"
NOW = 1_700_000_000.7


def reference_password(secret: str, username: str) -> str:
    """The coturn rule written out independently: base64(HMAC-SHA1(secret, username))."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def test_known_answer() -> None:
    cred = turn_credential(SECRET, "alice@example.org", NOW, ttl=3600)
    assert cred.username == "1700003600:alice@example.org"
    assert cred.expires_at == 1_700_003_600
    assert cred.password == reference_password(SECRET, "1700003600:alice@example.org")
    assert len(base64.b64decode(cred.password)) == 20  # a SHA-1 MAC


def test_against_openssl() -> None:
    """Same credential computed by another implementation (OpenSSL's HMAC)."""
    openssl = require_tool("openssl")
    cred = turn_credential("north", "alice", 1433892318, ttl=3600)
    assert cred.username == "1433895918:alice"
    mac = subprocess.run(
        [openssl, "dgst", "-sha1", "-hmac", "north", "-binary"],
        input=cred.username.encode(),
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    assert cred.password == base64.b64encode(mac).decode()


def test_verify_roundtrip_and_expiry() -> None:
    cred = turn_credential(SECRET, "bob", NOW, ttl=600)
    assert verify_turn_credential(SECRET, cred.username, cred.password, NOW) == "bob"
    # coturn accepts up to and including the expiry second, refuses after.
    assert verify_turn_credential(SECRET, cred.username, cred.password, cred.expires_at) == "bob"
    assert verify_turn_credential(SECRET, cred.username, cred.password, cred.expires_at + 1) is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda u, p: (
            u,
            p[:-2] + ("AA" if not p.endswith("AA") else "BB"),
        ),  # wrong password
        lambda u, p: (u.replace(":bob", ":bobby"), p),  # another account, same password
        lambda u, p: (str(int(u.split(":")[0]) + 86400) + ":bob", p),  # extended expiry
        lambda u, p: ("bob", p),  # no timestamp
        lambda u, p: ("x" + u, p),
        lambda u, p: (u, ""),
    ],
)
def test_verify_refuses_tampering(mutate) -> None:  # type: ignore[no-untyped-def]
    cred = turn_credential(SECRET, "bob", NOW)
    user, pwd = mutate(cred.username, cred.password)
    assert verify_turn_credential(SECRET, user, pwd, NOW) is None


def test_wrong_secret_is_refused() -> None:
    cred = turn_credential(SECRET, "bob", NOW)
    assert verify_turn_credential(SECRET + "x", cred.username, cred.password, NOW) is None


def test_account_with_colon_keeps_timestamp_first() -> None:
    cred = turn_credential(SECRET, "team:alice", NOW, ttl=60)
    assert parse_turn_username(cred.username) == (int(NOW) + 60, "team:alice")
    assert verify_turn_credential(SECRET, cred.username, cred.password, NOW) == "team:alice"


@pytest.mark.parametrize("account", ["", "a b", "a\nb", "x" * 321])
def test_unusable_accounts_are_refused(account: str) -> None:
    with pytest.raises(ValueError):
        turn_credential(SECRET, account, NOW)


@pytest.mark.parametrize("ttl", [0, -5, 24 * 3600 + 1])
def test_ttl_bounds(ttl: int) -> None:
    with pytest.raises(ValueError):
        turn_credential(SECRET, "bob", NOW, ttl=ttl)


def test_ice_servers_shape() -> None:
    cfg = TurnSettings(
        turn_secret=SECRET,
        turn_urls=(
            "turn:127.0.0.1:3478?transport=udp",
            "turn:127.0.0.1:3478?transport=tcp",
        ),
        stun_urls=("stun:127.0.0.1:3478",),
        turn_ttl=900,
    )
    servers = ice_servers(cfg, "carol", NOW)
    assert servers[0] == {"urls": ["stun:127.0.0.1:3478"]}
    turn = servers[1]
    assert turn["urls"] == list(cfg.turn_urls)
    assert turn["username"] == f"{int(NOW) + 900}:carol"
    assert turn["credential"] == reference_password(SECRET, turn["username"])
    assert verify_turn_credential(SECRET, turn["username"], turn["credential"], NOW + 899) == "carol"
    assert verify_turn_credential(SECRET, turn["username"], turn["credential"], NOW + 901) is None
    assert SECRET not in repr(servers)
    # Without TURN URLs there is no credential to hand out.
    assert ice_servers(TurnSettings(turn_secret=SECRET, stun_urls=("stun:127.0.0.1",)), "c", NOW) == [
        {"urls": ["stun:127.0.0.1"]}
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"turn_secret": "short"},
        {"turn_secret": SECRET, "turn_ttl": 10},
        {"turn_secret": SECRET, "turn_urls": ("http://127.0.0.1",)},
        {"turn_secret": SECRET, "stun_urls": ("stun:bad host",)},
    ],
)
def test_turn_settings_validation(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        TurnSettings(**kwargs)


def test_coturn_config_file(tmp_path: Path) -> None:
    cfg = CoturnLoopback(
        secret=SECRET,
        workdir=tmp_path / "turn",
        port=34780,
        min_port=50000,
        max_port=50010,
    )
    path = write_coturn_config(cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#")
    settings = dict(line.split("=", 1) if "=" in line else (line, None) for line in lines[1:])
    assert settings["listening-ip"] == settings["relay-ip"] == "127.0.0.1"
    assert settings["listening-port"] == "34780"
    assert (settings["min-port"], settings["max-port"]) == ("50000", "50010")
    assert settings["static-auth-secret"] == SECRET
    assert settings["realm"] == "suite.test"
    for flag in (
        "use-auth-secret",
        "no-cli",
        "no-tls",
        "no-dtls",
        "allow-loopback-peers",
        "no-stun-backward-compatibility",
    ):
        assert flag in settings and settings[flag] is None
    assert settings["userdb"].startswith(str(tmp_path))
    assert coturn_command(path) == ["turnserver", "-c", str(path)]
    argv = coturn_argv(cfg, "/usr/bin/turnserver")
    assert argv[:2] == ["/usr/bin/turnserver", "-n"]
    assert "--listening-ip=127.0.0.1" in argv and "--no-cli" in argv
    assert f"--static-auth-secret={SECRET}" in argv
    assert render_coturn_config(cfg) == path.read_text()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret": "abc\nno-auth"},  # no injecting extra options
        {"realm": " padded"},
        {"port": 0},
        {"min_port": 50010, "max_port": 50000},
    ],
)
def test_coturn_settings_validation(tmp_path: Path, kwargs: dict) -> None:  # type: ignore[type-arg]
    args = {"secret": SECRET, "workdir": tmp_path, **kwargs}
    with pytest.raises(ValueError):
        CoturnLoopback(**args)


def test_coturn_knows_every_option_we_write(tmp_path: Path) -> None:
    """Only reads ``turnserver --help``; the server itself is not started."""
    binary = require_tool("turnserver", "coturn")
    proc = subprocess.run([binary, "-h"], check=False, capture_output=True, text=True, timeout=30)
    usage = proc.stdout + proc.stderr
    cfg = CoturnLoopback(secret=SECRET, workdir=tmp_path)
    for name, _ in cfg.options():
        assert f"--{name}" in usage, name
