"""SRS0 addresses: round trip, tampering, expiry, case folding; the key file made once."""

from __future__ import annotations

from suite.config import Settings
from suite.mail.sieve import srs
from suite.mail.sieve.store import srs_key

KEY = b"k" * 32
NOW = 1_796_169_600.0


def test_round_trip_and_refusals():
    a = srs.forward("carol@remote.test", "example.test", KEY, now=NOW)
    assert a.startswith("SRS0=") and a.endswith("=remote.test=carol@example.test")
    assert srs.reverse(a, KEY, now=NOW) == "carol@remote.test"
    assert srs.reverse(a.lower(), KEY, now=NOW + 86400) == "carol@remote.test"  # folded by some MTA
    assert srs.reverse(a, b"other key", now=NOW) is None
    tampered = a.replace("=carol@", "=mallory@")
    assert srs.reverse(tampered, KEY, now=NOW) is None
    assert srs.reverse(a, KEY, now=NOW + 22 * 86400) is None  # expired after 21 days
    assert srs.reverse("SRS0=x@example.test", KEY, now=NOW) is None
    assert srs.forward("", "example.test", KEY) == ""  # a bounce stays a bounce
    assert srs.forward("bob@example.test", "example.test", KEY) == "bob@example.test"  # ours already
    assert srs.forward(a, "example.test", KEY) == a  # never rewritten twice


def test_key_from_setting_or_made_once(tmp_path):
    assert srs_key(Settings(data_dir=tmp_path, srs_secret="s3cret")) == b"s3cret"
    st = Settings(data_dir=tmp_path / "d")
    first = srs_key(st)
    assert len(first) == 64 and srs_key(st) == first
    assert (tmp_path / "d" / "srs.key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["srs.key"]  # no temporary left
