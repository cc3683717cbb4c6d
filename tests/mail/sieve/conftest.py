"""Fixtures for the Sieve tests: the SMTP service tests' fixtures (real Suite context on SQLite and
PostgreSQL, the service on free ports, the DNS stub, a remote MX on loopback) reused from tests/mail/smtp."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SMTP_TESTS = Path(__file__).resolve().parents[1] / "smtp"
sys.path.insert(0, str(SMTP_TESTS))
sys.path.insert(0, str(Path(__file__).resolve().parent))

_spec = importlib.util.spec_from_file_location("_smtp_conftest_for_sieve", SMTP_TESTS / "conftest.py")
assert _spec is not None and _spec.loader is not None
_smtp_conftest = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _smtp_conftest
_spec.loader.exec_module(_smtp_conftest)

ca = _smtp_conftest.ca
dns_stub = _smtp_conftest.dns_stub
ca_pem = _smtp_conftest.ca_pem

from smtp_service_helpers import remote_port, settings, suite_smtp, tls_files  # noqa: E402,F401
