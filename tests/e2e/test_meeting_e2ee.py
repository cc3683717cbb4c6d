"""End-to-end encrypted meetings in Chromium, in a private network namespace: the host creates an
E2EE room (the key is made in the page and lives only in the link's fragment), a member with the
full link and the host decode each other's audio and video; the SFU forwarded only frames sealed
under the room key (AES-GCM verifies with the Python reference, the picture is not readable
without it); a guest whose link carries another key decodes nothing; a link without the key
cannot join. Screenshot of the room (desktop)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from urllib.parse import urlsplit

from suite.testing import async_wait_until
from suite.voip.e2ee_frames import CLEAR_KEYFRAME, decrypt_frame, frame_key, key_from_text, key_to_text

_spec = importlib.util.spec_from_file_location("suite_e2e_meetfix", Path(__file__).with_name("meetfix.py"))
mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mf)

VP8_START_CODE = b"\x9d\x01\x2a"  # RFC 6386 §9.1: bytes 3..5 of a keyframe


def _vp8_picture(frame: bytes) -> bool:
    """libvpx (PyAV) decodes this VP8 keyframe into a picture."""
    import av

    codec = av.CodecContext.create("libvpx", "r")
    try:
        return bool(codec.decode(av.Packet(frame)))
    except av.error.FFmpegError:
        return False


async def test_e2ee_meeting_server_forwards_ciphertext_wrong_key_decodes_nothing(netns, server, monkeypatch):
    if not netns:
        return
    from suite.voip import sfu

    # A tap on the SFU (test side): every encoded frame the server forwards, by kind.
    seen: dict[str, list[bytes]] = {"audio": [], "video": []}
    forward = sfu.Publication._forward

    def tap(self, codec, frame):
        if len(seen[self.kind]) < 400:
            seen[self.kind].append(bytes(frame.data))
        forward(self, codec, frame)

    monkeypatch.setattr(sfu.Publication, "_forward", tap)

    async with mf.chromium(server) as (browser, base):
        alice = await mf.context(browser, base, "alice@example.test")
        link = await mf.create_meeting(alice, "Board", lobby=False, e2ee=True)
        fragment = urlsplit(link).fragment
        assert fragment.startswith("k=")
        room_key = key_from_text(fragment[2:])
        await alice.locator("#meeting-e2ee").wait_for()
        a_id = await mf.join(alice)

        # The same link without its fragment cannot join: the page says why.
        nokey = await mf.context(browser, base, None)
        await nokey.goto(link.split("#")[0])
        await nokey.get_by_role("alert").filter(has_text="including the part after #").wait_for()
        assert await nokey.get_by_role("button", name="Join meeting").is_disabled()
        await nokey.context.close()

        bob = await mf.context(browser, base, "bob@example.test")
        await bob.goto(link)
        await bob.wait_for_function(mf.PREVIEW_READY)
        b_id = await mf.join(bob)
        await mf.receives_from(alice, [b_id])
        await mf.receives_from(bob, [a_id])
        await alice.get_by_text("End-to-end encrypted", exact=True).wait_for()
        if mf.screenshots():
            await alice.screenshot(path=f"{mf.screenshots()}/meeting-e2ee.png")

        # A guest whose link carries another key: frames arrive, none decrypts, none decodes.
        eve = await mf.context(browser, base, None)
        await eve.goto(link.split("#")[0] + "#k=" + key_to_text(bytes(32)))
        await eve.get_by_label("Your name").fill("Eve")
        await eve.wait_for_function(mf.PREVIEW_READY)
        e_id = await mf.join(eve)

        async def eve_failing():
            s = await eve.evaluate("window.suiteMeeting.stats()")
            return s if s and s.get("e2ee") and s["e2ee"]["failed"] >= 60 else None

        s = await async_wait_until(eve_failing, 45, interval=0.5, what="frames reaching the wrong-key guest")
        assert s["e2ee"]["decrypted"] == 0, s
        assert all(v["video"] == 0 for v in s["peers"].values()), s
        # alice cannot read eve either, while she still decodes bob
        a = await mf.receives_from(alice, [b_id])
        assert a["peers"].get(e_id, {}).get("video", 0) == 0, a
        assert a["e2ee"]["failed"] > 0, a

    # What the server forwarded: every frame is sealed under the room key (the GCM tag verifies),
    # and the keyframes it saw are not pictures to libvpx while their plaintexts are.
    key = frame_key(room_key)
    assert len(seen["video"]) > 20 and len(seen["audio"]) > 20, {k: len(v) for k, v in seen.items()}
    wrong = frame_key(bytes(32))
    sealed = [f for f in seen["video"] + seen["audio"] if decrypt_frame(key, f) is not None]
    by_eve = [f for f in seen["video"] + seen["audio"] if decrypt_frame(wrong, f) is not None]
    assert len(sealed) + len(by_eve) == len(seen["video"]) + len(seen["audio"])
    assert sealed
    keyframes = [f for f in seen["video"] if f[3:6] == VP8_START_CODE and decrypt_frame(key, f) is not None]
    assert keyframes, "no keyframe forwarded"
    for f in keyframes[:3]:
        assert f[-1] == CLEAR_KEYFRAME
        plain = decrypt_frame(key, f)
        assert plain is not None and _vp8_picture(plain)
        assert not _vp8_picture(f)
