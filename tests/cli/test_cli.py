"""The `suite` command as a person runs it: real subprocesses, one-line errors, `suite serve` on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from suite.testing import free_port, serve_env

PW = "correct horse battery"


@pytest.fixture
def env(tmp_path, db_url):
    e = serve_env()
    e.update(
        SUITE_DATA_DIR=str(tmp_path / "data"),
        SUITE_DATABASE_URL=db_url,
        SUITE_HTTP_PORT=str(free_port()),
        SUITE_IMAP_PORT=str(free_port()),
        SUITE_IMAPS_PORT=str(free_port()),
        SUITE_MANAGESIEVE_PORT=str(free_port()),
        SUITE_SMTP_PORT=str(free_port()),
        SUITE_SUBMISSION_PORT=str(free_port()),
        SUITE_SUBMISSIONS_PORT=str(free_port()),
        SUITE_BUS_BACKEND="memory",
    )
    if db_url.startswith("postgresql"):
        # the shared test database may carry other tests' rows: start from an empty schema
        import asyncio

        from suite.storage import db

        async def reset():
            engine = db.make_engine(db_url)
            await db.downgrade(engine, "base")
            await engine.dispose()

        asyncio.run(reset())
    return e


def suite(env, *args, stdin: str | None = None):
    """Run the CLI as a person does: a new process with only its environment."""
    return subprocess.run(
        [sys.executable, "-m", "suite.cli", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def run(env, monkeypatch, capsys):
    """The same CLI entry point in-process (a subprocess costs seconds of imports per call)."""
    import io

    from suite import cli

    for k in [k for k in os.environ if k.startswith("SUITE_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        if k.startswith("SUITE_"):
            monkeypatch.setenv(k, v)

    def call(*args, stdin: str | None = None):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        code = cli.main(list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return call


def one_line_error(res, needle: str) -> None:
    assert res.returncode == 1, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr, res.stderr


def test_commands_before_init_say_so(env):
    one_line_error(suite(env, "domain", "list"), "suite init")


def test_account_commands_and_errors(run):
    suite = lambda _env, *a, **kw: run(*a, **kw)
    env = None
    assert suite(env, "init").returncode == 0
    assert suite(env, "init").stdout.startswith("already initialised")
    assert suite(env, "domain", "add", "example.test").returncode == 0
    one_line_error(suite(env, "domain", "add", "example.test"), "exists already")
    one_line_error(suite(env, "domain", "add", "not a domain"), "invalid domain")
    r = suite(env, "user", "add", "alice@example.test", "--password-stdin", "--quota", "2G", stdin=PW + "\n")
    assert r.returncode == 0 and "2.0 GiB" in r.stdout
    one_line_error(
        suite(env, "user", "add", "alice@example.test", "--password-stdin", stdin=PW + "\n"), "exists already"
    )
    one_line_error(suite(env, "user", "add", "bob@unknown.test", "--password-stdin", stdin=PW + "\n"), "unknown domain")
    one_line_error(suite(env, "user", "add", "bob@example.test", "--password-stdin", stdin="\n"), "password is empty")
    one_line_error(suite(env, "user", "add", "bob@example.test", "--password-stdin", stdin="abc\n"), "shorter")
    one_line_error(suite(env, "user", "add", "bob@example.test", stdin=""), "--password-stdin")
    one_line_error(suite(env, "user", "quota", "alice@example.test", "lots"), "not a size")
    one_line_error(suite(env, "user", "remove", "nobody@example.test"), "no user")
    assert "alice@example.test" in suite(env, "user", "list").stdout
    assert suite(env, "alias", "add", "info@example.test", "alice@example.test").returncode == 0
    assert "info@example.test\talice@example.test" in suite(env, "alias", "list").stdout
    r = suite(env, "app-password", "add", "alice@example.test", "--label", "phone", "--scopes", "imap")
    assert r.returncode == 0
    secret = r.stdout.strip().splitlines()[-1]
    assert len(secret) >= 30
    listing = suite(env, "app-password", "list", "alice@example.test").stdout
    assert "phone" in listing and secret not in listing
    one_line_error(
        suite(env, "app-password", "add", "alice@example.test", "--label", "x", "--scopes", "ftp"), "unknown scope"
    )
    one_line_error(suite(env, "app-password", "revoke", "alice@example.test", "999"), "no app password")
    one_line_error(suite(env, "domain", "remove", "example.test"), "still has")
    assert suite(env, "doctor").returncode == 0


def test_bad_config_is_one_line(env):
    env = dict(env, SUITE_HTTP_PORT="not-a-number")
    one_line_error(suite(env, "doctor"), "http_port")


def test_serve_healthz_login_and_sigterm(env):
    assert suite(env, "init").returncode == 0
    assert suite(env, "domain", "add", "example.test").returncode == 0
    port = env["SUITE_HTTP_PORT"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "suite.cli", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("ready") or not line:
                break
        out = "".join(lines)
        assert f"gateway    http://127.0.0.1:{port}/" in out
        assert "suite user add admin@example.org --admin" in out  # no accounts yet: tells the newcomer
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
        assert suite(env, "user", "add", "alice@example.test", "--password-stdin", stdin=PW + "\n").returncode == 0
        r = httpx.post(f"http://127.0.0.1:{port}/api/login", json={"address": "alice@example.test", "password": PW})
        assert r.status_code == 200 and r.json()["address"] == "alice@example.test"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "stopped" in proc.stdout.read()
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_refuses_a_busy_port(env):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", int(env["SUITE_HTTP_PORT"])))
        s.listen()
        r = subprocess.run(
            [sys.executable, "-m", "suite.cli", "serve"], env=env, capture_output=True, text=True, timeout=60
        )
    assert r.returncode == 1 and "cannot listen" in r.stderr and "Traceback" not in r.stderr
