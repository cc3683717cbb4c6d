"""Browser tests reuse the media fixtures of tests/voip (private network namespace, Suite server)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "voip" / "conftest.py"
_spec = importlib.util.spec_from_file_location("suite_tests_voip_fixtures", _path)
_voip = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_voip)

netns = _voip.netns
loopback_ice = _voip.loopback_ice
server = _voip.server
server_settings = _voip.server_settings
PW = _voip.PW
