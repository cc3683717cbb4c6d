"""aiortc is pinned (pyproject.toml) because the SFU (suite/voip/sfu.py) uses a few of its internals
that no public hook covers. These tests fail when the installed aiortc is another version or one of
those internals changed, and say what to re-check before updating the pin and the hashes below."""

from __future__ import annotations

import hashlib
import inspect
import queue

import aiortc
import aiortc.rtcrtpreceiver as rx
import aiortc.rtcrtpsender as tx
import pytest
from aiortc.codecs import opus, vpx

from suite.voip import sfu

PINNED_VERSION = "1.16.0"

RELIED_ON = {
    "RTCRtpReceiver.__init__": (
        rx.RTCRtpReceiver.__init__,
        "3e3b7b5cefbaac6f32d31c024a5ecf70093b55e60db6a3b4f4f900400688ccb9",
        "sfu.Publication replaces self.__decoder_queue after __init__: check it is still the one "
        "queue between the jitter buffer and the decoder thread.",
    ),
    "RTCRtpReceiver.receive": (
        rx.RTCRtpReceiver.receive,
        "d6d8d8d7a0bf4e95f3fb7cb78cf275d0a5f50c4912e0cb8498272008779916ef",
        "check receive() still hands self.__decoder_queue (read at call time) to the decoder thread.",
    ),
    "RTCRtpReceiver._handle_rtp_packet": (
        rx.RTCRtpReceiver._handle_rtp_packet,
        "4e54983d021a6336d80c29490f82f9a6dd531c0d3179b2daed818120c5ece238",
        "sfu._Tap.put gets (codec, JitterFrame) on the event loop: check complete encoded frames "
        "still go through self.__decoder_queue.put, with .data and a mapped .timestamp.",
    ),
    "RTCRtpReceiver.__stop_decoder": (
        rx.RTCRtpReceiver._RTCRtpReceiver__stop_decoder,
        "108105d17e257dba61a4e9cd00e443ca32dce3d0bd7407f1af2fd9d127f10afc",
        "sfu._Tap ends the idle decoder thread on put(None): check stopping still puts None and joins.",
    ),
    "decoder_worker": (
        rx.decoder_worker,
        "d500d4e567d6846c0bd1b501685ec5dd65202563280a01b25e2c014c2273c3eb",
        "check the decoder thread only calls input_q.get() and makes a decoder only for a task.",
    ),
    "RTCRtpReceiver._send_rtcp_pli": (
        rx.RTCRtpReceiver._send_rtcp_pli,
        "ae74c43d50f6eb7bd6d5d6fbafe46e507f937e651db022d04206926ed21c7184",
        "sfu.Publication.request_keyframe sends PLIs to the publisher with it (media ssrc argument).",
    ),
    "RTCRtpSender._handle_rtcp_packet": (
        tx.RTCRtpSender._handle_rtcp_packet,
        "a4ee4c7355f8de7a67ae75215d25d2d34931931a33b8ad2ce89ba2d9a24fc704",
        "PLI and FIR from a subscriber must still call self._send_keyframe() (replaced per sender by "
        "the SFU to relay them) and NACKs still retransmit from the sender's history.",
    ),
    "RTCRtpSender._next_encoded_frame": (
        tx.RTCRtpSender._next_encoded_frame,
        "89dd9fa4fb33741cc60857f1cebae31c9a88b72da9a42f91abc6090f40cb8253",
        "sfu.SlotTrack yields av.Packet: check packets are still only packed (Encoder.pack), never encoded.",
    ),
    "Vp8Encoder.pack": (
        vpx.Vp8Encoder.pack,
        "7f5276527a794bfaf80307b1c94257112f44634683c1f6cb6aba8ada7cfe5dd2",
        "check VP8 packing still takes bytes(packet), pts and time_base.",
    ),
    "OpusEncoder.pack": (
        opus.OpusEncoder.pack,
        "124c7eab72fc93cbfb9cbd92ceee0b5bd167c48183f4df28c979db1be2d78dda",
        "check Opus packing still takes bytes(packet), pts and time_base.",
    ),
}


def test_pinned_version():
    assert aiortc.__version__ == PINNED_VERSION, "re-check every internal listed in RELIED_ON"


@pytest.mark.parametrize("name", sorted(RELIED_ON))
def test_internal_unchanged(name):
    obj, digest, what = RELIED_ON[name]
    assert hashlib.sha256(inspect.getsource(obj).encode()).hexdigest() == digest, what


async def test_decoder_queue_attribute_exists():
    from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    receiver = pc.addTransceiver("video", direction="recvonly").receiver
    await pc.close()
    assert isinstance(getattr(receiver, sfu._DECODER_QUEUE), queue.Queue)
    assert callable(tx.RTCRtpSender._send_keyframe)
