"""CPU a received video packet in the meetings bench's clients (bench/calls/sfu_clients.py), no network:

    python bench/calls/receiver_cost.py [--repeat 20]

The bench's VP8 (320x240, 500 kbit/s, encoded once as bench/calls/sfu.py does) packetised by aiortc
into RTP, then fed, already decrypted, to (1) aiortc's receiving path (``RTCRtpReceiver``: NACK,
jitter buffer, VP8 depayloading) with libvpx decoding each complete frame — a participant of the
decoding sample; (2) the same without decoding (``--no-decode``); (3) :func:`count_only`, the light
path of the participants outside the sample (``--decoders``). CPU time (process_time), so the figure
holds under load; what all three share (UDP, ICE, SRTP, the event loop) is not in it, nor aiortc's
REMB estimator (the packets carry no abs-send-time; in the bench it runs in (1) and (2) too, a
sixth to a seventh of a client's profile). Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SSRC = 1234
PT = 96


class _Router:
    def __init__(self) -> None:
        self.ssrc_table: dict = {}
        self.receivers: set = set()


class _Transport:
    """What RTCRtpReceiver and count_only use of an RTCDtlsTransport."""

    state = "connected"

    def __init__(self) -> None:
        self._rtp_router = _Router()

    def _register_rtp_receiver(self, receiver, parameters) -> None:
        self._rtp_router.receivers.add(receiver)
        for encoding in parameters.encodings:
            self._rtp_router.ssrc_table[encoding.ssrc] = receiver

    def _unregister_rtp_receiver(self, receiver) -> None:
        self._rtp_router.receivers.discard(receiver)

    async def _send_rtp(self, data: bytes) -> None:
        pass

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        raise AssertionError("a packet count_only did not take")


def rtp_packets(repeat: int) -> list[bytes]:
    import av
    from aiortc.codecs.vpx import Vp8Encoder
    from aiortc.rtp import RtpPacket

    from bench.calls import load

    video = load.encode_video(width=320, height=240)
    packer = Vp8Encoder()
    out: list[bytes] = []
    seq = ts = 0
    for _ in range(repeat):
        for data in video:
            packet = av.Packet(data)
            packet.pts, packet.time_base = 0, fractions.Fraction(1, load.VIDEO_CLOCK)
            payloads, _ = packer.pack(packet)
            for i, payload in enumerate(payloads):
                rtp = RtpPacket(payload_type=PT, sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=SSRC)
                rtp.marker, rtp.payload = i == len(payloads) - 1, payload
                out.append(rtp.serialize())
                seq += 1
            ts += load.VIDEO_CLOCK // load.VIDEO_FPS
    return out


async def measure(mode: str, packets: list[bytes]) -> str:
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpDecodingParameters, RTCRtpReceiveParameters
    from aiortc.rtcrtpreceiver import RemoteStreamTrack, RTCRtpReceiver
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket

    from bench.calls.sfu_clients import DecodingTap, count_only
    from suite.voip.sfu import _DECODER_QUEUE

    transport = _Transport()
    receiver = RTCRtpReceiver("video", transport)
    receiver._set_rtcp_ssrc(99)
    receiver._track = RemoteStreamTrack(kind="video")
    tap = DecodingTap("video", mode == "decode")
    setattr(receiver, _DECODER_QUEUE, tap)
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=PT)
    await receiver.receive(
        RTCRtpReceiveParameters(codecs=[codec], encodings=[RTCRtpDecodingParameters(ssrc=SSRC, payloadType=PT)])
    )
    extensions = HeaderExtensionsMap()
    if mode == "light":
        count_only(transport)
        handle = transport._handle_rtp_data
        t0 = time.process_time()
        for i, data in enumerate(packets):
            await handle(data, i)
    else:
        t0 = time.process_time()
        for i, data in enumerate(packets):
            await receiver._handle_rtp_packet(RtpPacket.parse(data, extensions), arrival_time_ms=i)
    cpu = time.process_time() - t0
    await receiver.stop()
    per_frame = cpu / tap.frames * 1e6 if tap.frames else float("nan")
    return (
        f"{mode:>9}: {cpu / len(packets) * 1e6:6.1f} µs CPU a packet, {per_frame:6.1f} µs a frame"
        f" ({tap.frames} frames complete, {tap.decoded} counted as delivered);"
        f" a 30 fps stream {per_frame * 30 / 1e4:.3f} % of a core"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20, help="times the 3 s loop is fed")
    args = ap.parse_args()
    packets = rtp_packets(args.repeat)
    print(f"bench/calls/receiver_cost: {len(packets)} RTP packets of VP8 320x240 at 500 kbit/s, twice each mode")
    for mode in ("decode", "no-decode", "light") * 2:
        print(asyncio.run(measure(mode, packets)), flush=True)


if __name__ == "__main__":
    main()
