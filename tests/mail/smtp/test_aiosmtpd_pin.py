"""aiosmtpd is pinned (pyproject.toml) because SuiteSMTP relies on a few of its internals that no
public hook covers (see the module docstring of suite/mail/smtp/server.py). These tests fail when
the installed aiosmtpd is another version or one of those internals changed, and say what to
re-check before updating the pin and the hashes below."""

from __future__ import annotations

import hashlib
import inspect
import re
from pathlib import Path

import aiosmtpd
import pytest
from aiosmtpd.smtp import SMTP

from suite.mail.smtp.server import SuiteSMTP

PINNED_VERSION = "1.4.6"

# name on aiosmtpd.smtp.SMTP -> (sha256 of inspect.getsource, what SuiteSMTP relies on)
RELIED_ON = {
    "__init__": (
        "8a9ca80f23ad9bf273e58e284170e9f919dc6269b280ca0624ac0603a8ad3604",
        "SuiteSMTP.__dir__ lists only auth_*/smtp_* names: check that __init__ still discovers "
        "commands and AUTH mechanisms on the SMTP object by those prefixes only.",
    ),
    "_handle_client": (
        "0e4d096403af6c74c87b2fe722c213884e2140a9388e95feb05aec2f39e05556",
        "SuiteSMTP.smtp_DATA reads the body from self._reader inside this loop and puts pipelined "
        "bytes back into its buffer; SuiteSMTP.push treats the first reply as the greeting (refused "
        "connections answer 421 there). Check the loop still reads commands from self._reader, the "
        "greeting is still its first push, and it resets the timer per command.",
    ),
    "_reset_timeout": (
        "fef19b94d28dff319ca0ca9ecc1884e8f419d9f016d1d25380b01d5e85ff3c78",
        "SuiteSMTP._receive_data calls it during long DATA transfers (the timeout is per data "
        "block, RFC 5321 §4.5.3.2.5): check it still restarts the idle timer with no argument.",
    ),
    "_cb_client_connected": (
        "a73e95bb7f362ab9dbd9f0a4f310c203c525c0c98682dede6f98af4c97d15ad4",
        "SuiteSMTP reads DATA and drops pipelined STARTTLS bytes through self._reader: check it is "
        "still the connection's StreamReader.",
    ),
    "connection_made": (
        "77a45df5065bba343a040b6f6c88de8907b40c80bc03727e7f18ede20d19f4bf",
        "SuiteSMTP.tls_active reads session.ssl and connection_made tells the first connection from "
        "the STARTTLS re-entry by its own flag: check a completed STARTTLS still makes a new session "
        "with session.ssl set, and still clears the plaintext buffer.",
    ),
}


def test_aiosmtpd_is_the_pinned_version():
    assert aiosmtpd.__version__ == PINNED_VERSION, (
        f"aiosmtpd {aiosmtpd.__version__} is installed, SuiteSMTP was checked against {PINNED_VERSION}: "
        "re-check every item of RELIED_ON in this file, then update the pin here and in pyproject.toml"
    )
    pyproject = (Path(__file__).resolve().parents[3] / "pyproject.toml").read_text()
    assert re.search(rf'"aiosmtpd=={re.escape(PINNED_VERSION)}"', pyproject), "pyproject.toml must pin aiosmtpd"


@pytest.mark.parametrize("name", sorted(RELIED_ON))
def test_relied_on_internals_are_unchanged(name):
    digest, what = RELIED_ON[name]
    source = inspect.getsource(getattr(SMTP, name))
    assert hashlib.sha256(source.encode()).hexdigest() == digest, f"aiosmtpd SMTP.{name} changed. {what}"


def test_no_other_private_aiosmtpd_method_is_overridden():
    """SuiteSMTP overrides aiosmtpd's public methods only (smtp_*, auth_*, push, handle_exception,
    check_*_needed, connection_made/lost); a new private override needs an entry above."""
    overridden = {n for n, v in vars(SuiteSMTP).items() if callable(v) and n.startswith("_") and hasattr(SMTP, n)}
    assert overridden <= {"__init__", "__dir__"} | set(RELIED_ON), sorted(overridden - set(RELIED_ON))
