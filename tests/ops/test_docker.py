"""docker/compose.yaml as Debian's docker-compose reads it (there is no Docker engine here: the
same topology runs without containers in tests/scale/test_topology.py), and the Dockerfile's
promises (slim base, non-root user, health check)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from suite.config import Settings
from suite.testing import missing

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
SECRETS = {
    "SUITE_HOSTNAME": "mail.example.org",
    "POSTGRES_PASSWORD": "pg-secret",
    "S3A_ACCESS_KEY": "s3a-key",
    "S3A_SECRET_KEY": "s3a-secret-123",
    "S3B_ACCESS_KEY": "s3b-key",
    "S3B_SECRET_KEY": "s3b-secret-123",
    "TURN_SECRET": "turn-secret",
}
SUITE_SERVICES = {"smtp", "imap", "managesieve", "files", "voip", "gateway1", "gateway2"}


def _compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing("docker-compose (Debian package docker-compose) is not installed")
    return subprocess.run(
        [binary, "-f", str(COMPOSE), *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_config_is_valid_and_secrets_come_from_the_environment():
    r = _compose("config", "-q", env=SECRETS)
    assert r.returncode == 0, r.stderr
    for name in SECRETS:  # each secret is required: leaving one out is an error naming it
        r = _compose("config", "-q", env={k: v for k, v in SECRETS.items() if k != name})
        assert r.returncode != 0 and name in r.stderr, (name, r.stderr)


def test_compose_topology():
    r = _compose("config", env=SECRETS)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    services = cfg["services"]
    assert SUITE_SERVICES | {"postgres", "redis", "coturn", "s3a", "s3b", "proxy", "init"} <= set(services)
    published = {
        int(str(p["published"]) if isinstance(p, dict) else str(p).split(":")[0])
        for s in services.values()
        for p in s.get("ports", [])
    }
    assert {25, 465, 587, 143, 993, 443, 4190} <= published
    owners = []
    for name in SUITE_SERVICES:
        s = services[name]
        cmd = s["command"]
        assert cmd[:3] == ["suite", "serve", "--only"], (name, cmd)
        assert s["depends_on"]["init"]["condition"] == "service_completed_successfully"
        env = s["environment"]
        assert "pg-secret" in env["SUITE_DATABASE_URL"] and env["SUITE_BUS_BACKEND"] == "redis"
        if env["SUITE_CALL_SWITCH_OWNER"] == "true":
            owners.append(name)
        # every SUITE_* variable names a setting (nested ones by their top-level field)
        fields = set(Settings.model_fields)
        unknown = [
            k for k in env if k.startswith("SUITE_") and k[6:].lower().split("__")[0] not in fields | {"storage"}
        ]
        assert not unknown, (name, unknown)
    assert owners == ["voip"]  # exactly one call switch
    # the two S3 stores are two providers, each with its own credentials
    providers = yaml.safe_load(services["smtp"]["environment"]["SUITE_STORAGE__PROVIDERS"])
    assert [(p["name"], p["endpoint"], p["access_key"]) for p in providers] == [
        ("s3a", "http://s3a:9000", "s3a-key"),
        ("s3b", "http://s3b:9000", "s3b-key"),
    ]
    assert {v["source"] if isinstance(v, dict) else v.split(":")[0] for v in services["smtp"]["volumes"]} >= {
        "suite-data"
    }


def test_dockerfile_is_slim_non_root_with_healthcheck():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms and all("slim" in f for f in froms)
    assert "node build.mjs" in text and "--from=web" in text  # the web bundle is built, node stays behind
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/readyz" in text
