"""The E2EE frame format: the Python reference and the browser's module (node) agree byte for byte."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from suite.testing import require_tool
from suite.voip.e2ee_frames import (
    CLEAR_KEYFRAME,
    decrypt_frame,
    encrypt_frame,
    frame_key,
    key_from_text,
    key_to_text,
)

WEB = Path(__file__).resolve().parents[2] / "web"
RAW = bytes(range(32))
VP8_KEY = bytes.fromhex("b0d5009d012a8002e001") + b"secret picture " * 20


def test_roundtrip_keeps_the_header_in_clear_and_hides_the_rest():
    key = frame_key(RAW)
    sealed = encrypt_frame(key, VP8_KEY, CLEAR_KEYFRAME)
    assert sealed[:CLEAR_KEYFRAME] == VP8_KEY[:CLEAR_KEYFRAME]
    assert b"secret picture" not in sealed
    assert len(sealed) == len(VP8_KEY) + 16 + 12 + 1
    assert decrypt_frame(key, sealed) == VP8_KEY


def test_wrong_key_changed_byte_and_short_frames_are_refused():
    sealed = encrypt_frame(frame_key(RAW), VP8_KEY, CLEAR_KEYFRAME)
    assert decrypt_frame(frame_key(bytes(32)), sealed) is None
    for i in (0, 5, 20, len(sealed) - 5):  # clear header (AAD), ciphertext, IV
        changed = bytearray(sealed)
        changed[i] ^= 1
        assert decrypt_frame(frame_key(RAW), bytes(changed)) is None
    assert decrypt_frame(frame_key(RAW), b"\x00" * 28) is None
    assert decrypt_frame(frame_key(RAW), sealed[:-1] + b"\xff") is None


def test_key_text():
    assert key_from_text(key_to_text(RAW)) == RAW
    assert len(key_to_text(RAW)) == 43


def test_browser_module_and_python_agree():
    node = require_tool("node", "nodejs")
    script = f"""
import {{ deriveFrameKey, encryptFrame, decryptFrame, keyFromFragment, clearBytes }} from "./src/lib/frame-crypto.js";
const raw = keyFromFragment("#k={key_to_text(RAW)}");
const key = await deriveFrameKey(raw);
const data = Uint8Array.from(Buffer.from("{VP8_KEY.hex()}", "hex"));
const sealed = await encryptFrame(key, data, clearBytes("video", "key"));
const back = await decryptFrame(key, Uint8Array.from(Buffer.from(process.argv[1], "hex")));
const wrong = await decryptFrame(await deriveFrameKey(new Uint8Array(32)), sealed);
console.log(JSON.stringify({{ sealed: Buffer.from(sealed).toString("hex"), back: Buffer.from(back).toString("hex"),
  wrong, noKey: keyFromFragment("#x=1"), audio: clearBytes("audio"), delta: clearBytes("video", "delta") }}));
"""
    python_sealed = encrypt_frame(frame_key(RAW), VP8_KEY, CLEAR_KEYFRAME)
    r = subprocess.run(
        [node, "--input-type=module", "-e", script, python_sealed.hex()],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert decrypt_frame(frame_key(RAW), bytes.fromhex(out["sealed"])) == VP8_KEY  # browser -> Python
    assert bytes.fromhex(out["back"]) == VP8_KEY  # Python -> browser
    assert out["wrong"] is None and out["noKey"] is None
    assert (out["audio"], out["delta"]) == (1, 3)
