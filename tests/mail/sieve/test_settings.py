"""ManageSieve's port and the Sieve settings: defaults, environment, `suite serve --only managesieve`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from suite.config import Settings
from suite.testing import free_port, serve_env


def test_defaults_and_environment(monkeypatch):
    s = Settings()
    assert (s.managesieve_port, s.sieve_max_script_size, s.sieve_max_redirects, s.srs_secret) == (4190, 65536, 5, "")
    monkeypatch.setenv("SUITE_MANAGESIEVE_PORT", "14190")
    monkeypatch.setenv("SUITE_SIEVE_MAX_REDIRECTS", "2")
    s = Settings()
    assert s.managesieve_port == 14190 and s.sieve_max_redirects == 2


def test_suite_serve_only_managesieve_greets(tmp_path):
    port = free_port()
    env = serve_env()
    env.update(SUITE_DATA_DIR=str(tmp_path / "data"), SUITE_MANAGESIEVE_PORT=str(port), SUITE_BUS_BACKEND="memory")
    proc = subprocess.Popen(
        [sys.executable, "-m", "suite.cli", "serve", "--only", "managesieve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # signal handlers are installed once it says "ready"
            if line.startswith("ready"):
                break
        deadline = time.monotonic() + 60
        greeting = b""
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    f = s.makefile("rb")
                    while not greeting.endswith(b"\r\n") or not greeting.split(b"\r\n")[-2].startswith(b"OK"):
                        line = f.readline()
                        if not line:
                            break
                        greeting += line
                break
            except OSError:
                assert proc.poll() is None, "suite serve exited"
                time.sleep(0.2)
        assert b'"IMPLEMENTATION" "Suite ManageSieve"' in greeting and b'"STARTTLS"' in greeting
        assert greeting.rstrip().endswith(b'OK "ManageSieve ready."')
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stopped" in out
