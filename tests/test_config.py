"""Configuration precedence: environment over the TOML file over defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from suite.config import Settings


def test_defaults(monkeypatch, tmp_path):
    for k in [k for k in __import__("os").environ if k.startswith("SUITE_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("SUITE_DATA_DIR", str(tmp_path))
    s = Settings()
    assert (s.smtp_port, s.submission_port, s.submissions_port, s.imap_port, s.imaps_port, s.http_port) == (
        2525,
        2587,
        2465,
        2143,
        2993,
        8080,
    )
    assert s.db_url == f"sqlite+aiosqlite:///{(tmp_path / 'suite.db').resolve()}"


def test_toml_in_data_dir_then_env_wins(monkeypatch, tmp_path):
    for k in [k for k in __import__("os").environ if k.startswith("SUITE_")]:
        monkeypatch.delenv(k)
    (tmp_path / "suite.toml").write_text('hostname = "mail.example.test"\nimap_port = 1143\nhttp_port = 9000\n')
    monkeypatch.setenv("SUITE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SUITE_HTTP_PORT", "9100")
    s = Settings()
    assert (s.hostname, s.imap_port, s.http_port) == ("mail.example.test", 1143, 9100)


def test_explicit_config_file_and_unknown_keys(monkeypatch, tmp_path):
    for k in [k for k in __import__("os").environ if k.startswith("SUITE_")]:
        monkeypatch.delenv(k)
    cfg = tmp_path / "other.toml"
    cfg.write_text("no_such_setting = 1\n")
    monkeypatch.setenv("SUITE_CONFIG", str(cfg))
    with pytest.raises(ValidationError):
        Settings()
