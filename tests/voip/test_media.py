"""Media end to end (aiortc), each test inside its own network namespace with only ``lo``:
a call between two aiortc phones through the signalling, the echo test, voicemail into the INBOX."""

from __future__ import annotations

import asyncio
import email
import io
from email.policy import default as default_policy

import av

from suite.testing import async_wait_until
from suite.voip.agent import PcmTrack, tone_pcm


async def test_aiortc_call_through_signalling(netns, server, phone_class, loud):
    if not netns:
        return
    Phone, loud_frames = phone_class, loud
    from suite.voip.hub import hub_for

    alice = await Phone(server.port, "alice@example.test").login()
    bob = await Phone(server.port, "bob@example.test").login()
    try:
        await alice.send(type="invite", call_id="media-0001", to="bob@example.test", media="audio")
        await bob.expect("incoming")
        await bob.send(type="accept", call_id="media-0001")
        await alice.expect("accepted")
        await bob.expect("accepted")
        answer = asyncio.create_task(bob.answer("media-0001", PcmTrack(tone_pcm(1.0, (660.0,)), loop=True)))
        await alice.offer("media-0001", PcmTrack(tone_pcm(1.0, (440.0,)), loop=True))
        await answer
        heard_by_bob = await bob.track("audio")
        heard_by_alice = await alice.track("audio")
        assert await loud_frames(heard_by_bob) >= 10
        assert await loud_frames(heard_by_alice) >= 10
        assert alice.pc.connectionState == "connected" and bob.pc.connectionState == "connected"
        await alice.send(type="hangup", call_id="media-0001")
        assert (await bob.expect("call_ended"))["reason"] == "hangup"
        await hub_for(server).flush()
        rows = (await bob.http.get("/api/calls/history")).json()["calls"]
        assert rows[0]["outcome"] == "answered" and rows[0]["duration"] > 0.1
    finally:
        await alice.close()
        await bob.close()


async def test_echo_sends_audio_and_video_back(netns, server, phone_class, loud):
    if not netns:
        return
    Phone, loud_frames = phone_class, loud
    from aiortc.mediastreams import VideoStreamTrack

    from suite.voip.hub import hub_for

    alice = await Phone(server.port, "alice@example.test").login()
    try:
        contacts = (await alice.http.get("/api/contacts")).json()["contacts"]
        assert contacts[0] == {
            "address": "echo@example.test",
            "display_name": "Echo test",
            "presence": "online",
            "kind": "echo",
        }
        await alice.send(type="invite", call_id="echo-0001", to="echo@example.test", media="video")
        assert (await alice.expect("accepted"))["peer"] == "echo@example.test"
        await alice.offer("echo-0001", PcmTrack(tone_pcm(1.0, (440.0,)), loop=True), VideoStreamTrack())
        audio = await alice.track("audio")
        video = await alice.track("video")
        assert await loud_frames(audio) >= 10  # our tone came back, not silence
        frames = [await asyncio.wait_for(video.recv(), 10) for _ in range(5)]
        assert {(f.width, f.height) for f in frames} == {(640, 480)}
        assert hub_for(server).side_calls() == ["echo-0001"]
        await alice.send(type="hangup", call_id="echo-0001")
        assert (await alice.expect("call_ended"))["reason"] == "hangup"
        await hub_for(server).flush()
        assert hub_for(server).side_calls() == []
    finally:
        await alice.close()


def _stored_messages(server, address):
    async def run():
        from suite.mail.store.store import MailStore

        acct = await server.accounts.get(address)
        store = MailStore(server)
        inbox = await store.require_mailbox(acct.id, "INBOX")
        out = []
        for m in await store.messages(inbox.id):
            raw = await server.blobs.read_bytes(m.blob)
            out.append(email.message_from_bytes(raw, policy=default_policy))
        return out

    return run()


def _ogg_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.audio[0].codec_context.name == "opus"
        return sum(f.samples for f in c.decode(audio=0)) / 48000


async def test_voicemail_into_the_inbox(netns, server, phone_class, loud):
    if not netns:
        return
    Phone, loud_frames = phone_class, loud
    from suite.voip.hub import hub_for

    alice = await Phone(server.port, "alice@example.test").login()
    try:
        # 1. carol is offline: diverted at once; alice speaks, hangs up after about 1.5 s
        await alice.send(type="invite", call_id="vm-000001", to="carol@example.test")
        assert (await alice.expect("diverted"))["target"] == "voicemail"
        await alice.offer("vm-000001", PcmTrack(tone_pcm(1.0, (440.0,)), loop=True))
        greeting = await alice.track("audio")
        assert await loud_frames(greeting, want=5) >= 5  # the greeting is audible
        for _ in range(75):  # alice talks on for 1.5 s of the agent's media clock (75 frames of 20 ms)
            await asyncio.wait_for(greeting.recv(), 10)
        await alice.send(type="hangup", call_id="vm-000001")
        assert (await alice.expect("call_ended"))["reason"] == "hangup"
        await alice.pc.close()
        # 2. again, but alice talks on: the agent stops at voicemail_max_seconds = 3
        await alice.send(type="invite", call_id="vm-000002", to="carol@example.test")
        await alice.expect("diverted")
        await alice.offer("vm-000002", PcmTrack(tone_pcm(1.0, (440.0,)), loop=True))
        assert (await alice.expect("call_ended", timeout=15))["reason"] == "hangup"  # by the agent, at the cap
        hub = hub_for(server)
        await hub.flush()

        async def two_mails() -> list:
            mails = await _stored_messages(server, "carol@example.test")
            return mails if len(mails) == 2 else []

        mails = await async_wait_until(two_mails, what="both voicemails in carol's INBOX")
        durations = []
        for m in mails:
            assert m["From"] == "alice@example.test" and m["To"] == "carol@example.test"
            assert m["Subject"] == "Voicemail from alice@example.test"
            body = m.get_body(("plain",)).get_content()
            parts = [p for p in m.iter_attachments()]
            assert len(parts) == 1 and parts[0].get_content_type() == "audio/ogg"
            seconds = _ogg_seconds(parts[0].get_content())
            assert f"{seconds:.1f} s" in body
            durations.append(seconds)
        first, second = sorted(durations)
        assert 0 < first < 2.9  # ended by alice's hang-up, before the cap
        assert 2.9 <= second <= 3.05  # the agent stops at voicemail_max_seconds of received audio
        # both calls are missed calls of carol's, marked as voicemail
        rows = (await alice.http.get("/api/calls/history")).json()["calls"]
        assert [(r["call_id"], r["voicemail"]) for r in rows] == [("vm-000002", True), ("vm-000001", True)]
        assert await _stored_messages(server, "bob@example.test") == []
    finally:
        await alice.close()
