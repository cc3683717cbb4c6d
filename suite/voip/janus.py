"""Meetings on Janus's VideoRoom plugin (Debian's ``janus``) behind our own signalling.

``sfu_engine = "janus"`` makes :class:`JanusRoom` carry a room's media instead of the Python SFU
(:mod:`suite.voip.sfu`); rooms, lobby, mute, remove stay in :mod:`suite.voip.rooms`. Suite talks
to Janus over its WebSocket API (``janus-protocol``); browsers never talk to Janus's API, only
to its media ports.

* **Which Janus.** Several instances (``janus_urls``) take rooms by rendezvous hashing of the
  room id (:func:`pick_instance`): every process sends a room to the same instance, and adding or
  removing an instance moves only the rooms that instance gains or loses.
* **Publishing.** Janus answers publishers, it never offers to them, so the page publishes on a
  connection of its own: the engine sends ``publish``, the page offers (``publish_offer``), the
  engine joins the VideoRoom as a publisher with that offer and returns Janus's answer
  (``publish_answer``). VP8 and Opus only, as with the Python SFU.
* **Receiving.** One multistream subscription per participant (one receiving connection):
  Janus offers (``offer`` with ``publish`` false), the page answers (``answer``), the engine
  sends it with ``start``. A new publisher is added with ``subscribe`` (Janus offers again), a gone
  one removed with ``unsubscribe``; a participant's renegotiations run one at a time.
  ``layout`` maps the receiving mids to participants from Janus's ``streams``.
* **Reconnect** (the page's network changed): an ICE restart on the same connections, which
  Janus answers (RFC 8445 §9) — the page offers again with ``iceRestart`` (``publish`` with
  ``restart``; the engine sends that offer with ``configure``) and the subscription gets a new
  offer (``configure`` with ``restart``). Before the first ``webrtcup`` the engine starts over.
* **Mute** is Janus's ``moderate`` on the publisher's mid (the room secret is ours).
* **Active speaker.** The room is made with ``audiolevel_event``: Janus averages the RFC 6464 levels
  of each publisher's audio over the same window and threshold as the Python SFU
  (:func:`suite.voip.speaker.talk_window`) and sends ``talking`` / ``stopped-talking`` to every
  publisher handle; the one on the talker's own handle drives :class:`TalkingSpeaker`.
* **Recording** is Janus's own (``configure`` with ``record`` on each publisher, into the room's
  ``rec_dir``: ``janus_rec_dir``, a folder Janus writes and we read); when it stops,
  :mod:`suite.voip.janus_recording` turns the .mjr files into frames and
  :func:`suite.voip.recording.replayed` into the same WebM as the Python SFU's. A speaker change
  asks the new speaker for a keyframe (``configure`` ``keyframe``) so the video can switch there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake

from suite.voip.janus_recording import collect, pp_rec
from suite.voip.meeting_messages import Layout, MediaOffer, MeetingServerMessage, PublishRequest
from suite.voip.recording import Recording, replayed
from suite.voip.sfu import SfuError
from suite.voip.speaker import TalkingSpeaker, talk_window

log = logging.getLogger(__name__)

PLUGIN: Final = "janus.plugin.videoroom"
KEEPALIVE: Final = 25.0
"""Seconds between keepalives (Janus drops a session after ``session_timeout``, 60 s by default)."""
REQUEST_TIMEOUT: Final = 15.0
ANSWER_TIMEOUT: Final = 20.0
ERROR_ROOM_EXISTS: Final = 427
TOP_LAYER: Final = 1
"""Simulcast: the page publishes substreams 0 (half size) and 1 (full size)."""


def pick_instance(room_key: str, urls: Sequence[str]) -> str:
    """Rendezvous (highest random weight) hashing: the instance whose hash with the room is highest."""
    if not urls:
        raise SfuError("no Janus instance configured (janus_urls)")
    return max(urls, key=lambda url: hashlib.sha256(f"{url}\x00{room_key}".encode()).digest())


class JanusError(SfuError):
    pass


class JanusSession:
    """One Janus API session over one WebSocket: requests matched to answers by transaction,
    plugin events without a transaction handed to the handle's listener, keepalives."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.id: int | None = None
        self._ws: ClientConnection | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._acked: set[str] = set()
        self.listeners: dict[int, Callable[[dict[str, Any]], None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._ids = itertools.count(1)

    async def open(self) -> JanusSession:
        try:
            self._ws = await connect(self.url, subprotocols=["janus-protocol"], max_size=2**22)  # type: ignore[list-item]
        except (TimeoutError, OSError, InvalidHandshake) as exc:
            raise JanusError(f"Janus at {self.url} unreachable: {exc}") from None
        self._tasks.append(asyncio.create_task(self._reader()))
        answer = await self._call({"janus": "create"})
        self.id = int(answer["data"]["id"])
        self._tasks.append(asyncio.create_task(self._keepalive()))
        return self

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.send(json.dumps({"janus": "destroy", "session_id": self.id, "transaction": "bye"}))
            await self._ws.close()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(JanusError("Janus session closed"))

    async def attach(self, listener: Callable[[dict[str, Any]], None]) -> int:
        answer = await self._call({"janus": "attach", "plugin": PLUGIN, "session_id": self.id})
        handle = int(answer["data"]["id"])
        self.listeners[handle] = listener
        return handle

    async def detach(self, handle: int) -> None:
        self.listeners.pop(handle, None)
        with contextlib.suppress(JanusError, asyncio.TimeoutError):
            await self._call({"janus": "detach", "session_id": self.id, "handle_id": handle})

    async def message(self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        """A plugin request; returns the plugin's answer (synchronous requests) or its event
        (asynchronous ones: ``ack`` first, then the event with the same transaction)."""
        msg: dict[str, Any] = {"janus": "message", "session_id": self.id, "handle_id": handle, "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        answer = await self._call(msg)
        data = answer.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise JanusError(f"Janus {body.get('request')}: {data.get('error_code')} {data.get('error')}")
        return answer

    async def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self._ws is None:
            raise JanusError("Janus session not open")
        tx = f"t{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[tx] = fut
        try:
            await self._ws.send(json.dumps({**msg, "transaction": tx}))
            answer = await asyncio.wait_for(fut, REQUEST_TIMEOUT)
        finally:
            self._pending.pop(tx, None)
            self._acked.discard(tx)
        if answer.get("janus") == "error":
            err = answer.get("error", {})
            raise JanusError(f"Janus {msg.get('janus')}: {err.get('code')} {err.get('reason')}")
        return answer

    async def _reader(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                msg = json.loads(raw)
                kind = msg.get("janus")
                tx = msg.get("transaction")
                fut = self._pending.get(tx) if tx else None
                if kind == "ack":
                    if tx:
                        self._acked.add(tx)
                    continue
                if fut is not None and not fut.done() and kind in ("success", "error", "event"):
                    fut.set_result(msg)
                    continue
                listener = self.listeners.get(msg.get("sender", 0))
                if listener is not None:
                    listener(msg)
        except Exception as exc:  # connection gone: fail what waits
            log.warning("janus connection lost: %s", exc)
        for f in self._pending.values():
            if not f.done():
                f.set_exception(JanusError("Janus connection lost"))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE)
            with contextlib.suppress(Exception):
                assert self._ws is not None
                await self._ws.send(
                    json.dumps({"janus": "keepalive", "session_id": self.id, "transaction": f"k{next(self._ids)}"})
                )


def _mids(sdp: str) -> dict[str, str]:
    """kind -> mid of the first m-line of each kind in an SDP (RFC 8843 §5: a=mid)."""
    out: dict[str, str] = {}
    kind = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        elif line.startswith("a=mid:") and kind and kind not in out:
            out[kind] = line[6:].strip()
    return out


@dataclass(eq=False)
class _Participant:
    pid: str
    feed: int
    pub_handle: int | None = None
    offered: bool = False
    restarting: bool = False
    """An ICE restart asked the page for a new offer on its publishing connection."""
    published: bool = False
    """Janus took the offer and the connection is up (``webrtcup``): others may subscribe."""
    pub_mids: dict[str, str] = field(default_factory=dict)
    sub_handle: int | None = None
    subscribed: set[int] = field(default_factory=set)
    layout: dict[str, str] = field(default_factory=dict)
    video_mids: dict[str, str] = field(default_factory=dict)
    """publisher pid -> the mid of its video in this participant's subscription"""
    negotiating: asyncio.Lock = field(default_factory=asyncio.Lock)
    answer: asyncio.Future[str] | None = None
    muted: dict[str, bool] = field(default_factory=dict)


@dataclass(eq=False)
class _JanusRecording:
    """One recording on Janus: its files are ``<base>-<feed>-<kind>-<mindex>.mjr`` in ``rec_dir``."""

    base: str
    offset: float
    """The event loop's clock minus the wall clock when it started (the .mjr times are wall clock)."""
    owners: dict[int, str] = field(default_factory=dict)
    """feed -> participant, also of those who left meanwhile"""
    stopping: asyncio.Task[None] | None = None


class JanusRoom:
    """The media of one meeting on a Janus VideoRoom; the same calls as :class:`SfuRoom`."""

    def __init__(
        self,
        url: str,
        room_id: int,
        *,
        send: Callable[[str, MeetingServerMessage], None],
        ice: Callable[[str], tuple[dict[str, Any], ...]],
        max_participants: int = 8,
        on_speaker: Callable[[str], None] | None = None,
        rec_dir: Path | None = None,
    ) -> None:
        self.url = url
        self.rec_dir = rec_dir
        """Janus's recording folder, the same path here (None: recording is refused)."""
        self._on_speaker = on_speaker or (lambda _pid: None)
        self._recording: _JanusRecording | None = None
        self._stopped: deque[_JanusRecording] = deque()
        self.room_id = room_id
        self.max_participants = max_participants
        self._send = send
        self._ice = ice
        self._secret = secrets.token_urlsafe(18)
        self._session: JanusSession | None = None
        self._control: int | None = None
        self._open_lock = asyncio.Lock()
        self.peers: dict[str, _Participant] = {}
        self.speakers = TalkingSpeaker()
        """Active speaker from Janus's ``talking`` / ``stopped-talking`` events."""
        self._feeds = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the SFU calls ------------------------------------------------------------

    async def join(self, pid: str) -> None:
        """Ask the page to publish (``publish``); the receiving side follows once others publish.
        Returns None: there is no single offer as with the Python SFU."""
        if pid in self.peers:
            raise SfuError("already joined")
        if len(self.peers) >= self.max_participants:
            raise SfuError("room full")
        session = await self._open()
        p = _Participant(pid, next(self._feeds))
        self.peers[pid] = p
        p.pub_handle = await session.attach(lambda m: self._publisher_event(p, m))
        await session.message(
            p.pub_handle, {"request": "join", "ptype": "publisher", "room": self.room_id, "id": p.feed, "display": pid}
        )
        self._send(pid, PublishRequest(ice_servers=self._ice(pid)))

    async def publish(self, pid: str, sdp: str) -> str:
        p = self._peer(pid)
        if p.pub_handle is None or (p.offered and not p.restarting):
            raise SfuError("already publishing")
        restart, p.offered, p.restarting = p.restarting, True, False
        session = await self._open()
        body: dict[str, Any] = {"request": "publish", "audiocodec": "opus", "videocodec": "vp8"}
        if restart:  # the same publisher, new ICE credentials in the offer
            body = {"request": "configure"}
        event = await session.message(p.pub_handle, body, jsep={"type": "offer", "sdp": sdp, "trickle": False})
        jsep = event.get("jsep") or {}
        if jsep.get("type") != "answer":
            raise SfuError("Janus did not answer the publisher")
        p.pub_mids = _mids(sdp)
        return str(jsep["sdp"])

    def _publisher_event(self, p: _Participant, msg: dict[str, Any]) -> None:
        # Janus lists a feed for subscribers only once its connection is up.
        if msg.get("janus") == "webrtcup" and not p.published and p.pid in self.peers:
            p.published = True
            self._spawn(self._published(p))
        data = msg.get("plugindata", {}).get("data", {})
        talk = data.get("videoroom")
        # every publisher's handle hears everyone's talking: take the talker's own
        if talk in ("talking", "stopped-talking") and data.get("id") == p.feed and p.pid in self.peers:
            if talk == "talking":
                changed = self.speakers.talking(p.pid, -float(data.get("audio-level-dBov-avg", 0.0)))
            else:
                changed = self.speakers.stopped(p.pid)
            if changed is not None:
                self._on_speaker(changed)

    async def _published(self, p: _Participant) -> None:
        if self._recording is not None and self._recording.stopping is None:
            await self._record_one(self._recording, p, True)
        for kind, muted in p.muted.items():
            if muted:
                await self._moderate(p, kind, True)
        for other in self.peers.values():
            if other is not p and other.published:
                self._spawn(self._subscribe(other, [p.feed]))
        others = [o.feed for o in self.peers.values() if o is not p and o.published]
        if others:
            self._spawn(self._subscribe(p, others))

    async def restart_ice(self, pid: str) -> bool:
        """The page's network changed: restart ICE on both its connections (False when it never
        connected: the caller starts over)."""
        p = self._peer(pid)
        if not p.published:
            return False
        p.restarting = True
        self._send(pid, PublishRequest(ice_servers=self._ice(pid), restart=True))
        if p.sub_handle is not None:
            self._spawn(self._restart_subscription(p))
        return True

    async def _restart_subscription(self, p: _Participant) -> None:
        async with p.negotiating:
            if p.sub_handle is None or p.pid not in self.peers:
                return
            session = await self._open()
            event = await session.message(p.sub_handle, {"request": "configure", "restart": True})
            await self._renegotiate(p, event)

    async def answer(self, pid: str, sdp: str) -> None:
        p = self._peer(pid)
        if p.answer is None or p.answer.done():
            raise SfuError("no offer is waiting for an answer")
        p.answer.set_result(sdp)

    async def leave(self, pid: str) -> None:
        p = self.peers.pop(pid, None)
        self.speakers.gone(pid)
        if p is None or self._session is None:
            return
        if p.answer is not None and not p.answer.done():
            p.answer.cancel()
        for handle in (p.sub_handle, p.pub_handle):
            if handle is not None:
                await self._session.detach(handle)
        if p.published:
            for other in self.peers.values():
                if p.feed in other.subscribed:
                    self._spawn(self._unsubscribe(other, p.feed))

    async def close(self) -> None:
        for pid in list(self.peers):
            await self.leave(pid)
        for t in list(self._tasks):
            t.cancel()
        if self._session is not None:
            if self._control is not None:
                with contextlib.suppress(SfuError, asyncio.TimeoutError):
                    await self._session.message(
                        self._control, {"request": "destroy", "room": self.room_id, "secret": self._secret}
                    )
            await self._session.close()
            self._session = None

    def set_muted(self, pid: str, kind: str, muted: bool) -> None:
        p = self._peer(pid)
        p.muted[kind] = muted
        if p.published:
            self._spawn(self._moderate(p, kind, muted))

    def set_layer(self, pid: str, publisher: str, layer: int) -> None:
        """Simulcast: relay the publisher's substream ``layer`` (0 lowest) to this participant."""
        p = self._peer(pid)
        mid = p.video_mids.get(publisher)
        if mid is not None and p.sub_handle is not None and self._session is not None:
            body = {"request": "configure", "mid": mid, "substream": layer}
            self._spawn(self._session.message(p.sub_handle, body))

    def record(self, recorder: Any) -> None:
        """Start (any ``recorder``) or stop (None) Janus's own recording of every publisher. The
        frames are not handed over live: :meth:`recorded` reads them when it stopped."""
        if recorder is None:
            rec, self._recording = self._recording, None
            if rec is not None:
                # not one of the room's tasks: close() must not cancel it, the files close anyway
                rec.stopping = asyncio.get_running_loop().create_task(self._record_all(rec, False))
                self._stopped.append(rec)
            return
        if self._recording is not None:
            return
        if self.rec_dir is None:
            raise SfuError("recording on the Janus engine needs janus_rec_dir (Janus's recording folder)")
        if pp_rec() is None:
            raise SfuError("recording on the Janus engine needs janus-pp-rec (Debian package janus-tools)")
        loop = asyncio.get_running_loop()
        self._recording = _JanusRecording(f"suite-{self.room_id}-{secrets.token_hex(8)}", loop.time() - time.time())
        self._spawn(self._record_all(self._recording, True))

    async def recorded(self, rec: Recording) -> Recording:
        """The frames Janus kept for the oldest stopped recording, replayed into ``rec``'s choices
        (speaker video, everyone's audio) on its clock."""
        if not self._stopped or self.rec_dir is None:
            return rec
        jr = self._stopped.popleft()
        if jr.stopping is not None:
            await asyncio.wait([jr.stopping])
        frames = await asyncio.to_thread(collect, self.rec_dir, jr.base, jr.owners)
        return replayed(rec, ((t + jr.offset, owner, kind, data) for t, owner, kind, data in frames))

    def request_keyframe(self, pid: str) -> None:
        """A keyframe from ``pid`` (the recording switches to it there); Janus asks publishers for
        keyframes itself on subscribe and layer switch."""
        p = self.peers.get(pid)
        if p is not None and p.published and p.pub_handle is not None and self._session is not None:
            self._spawn(self._session.message(p.pub_handle, {"request": "configure", "keyframe": True}))

    def layout(self, pid: str) -> dict[str, str]:
        return dict(self._peer(pid).layout)

    # --- internals ----------------------------------------------------------------

    def _peer(self, pid: str) -> _Participant:
        try:
            return self.peers[pid]
        except KeyError:
            raise SfuError("unknown participant") from None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("janus room %s: %s", self.room_id, task.exception())

    async def _open(self) -> JanusSession:
        async with self._open_lock:
            if self._session is None:
                session = await JanusSession(self.url).open()
                self._control = await session.attach(lambda _m: None)
                try:
                    await session.message(
                        self._control,
                        {
                            "request": "create",
                            "room": self.room_id,
                            "publishers": self.max_participants,
                            "secret": self._secret,
                            "audiocodec": "opus",
                            "videocodec": "vp8",
                            "permanent": False,
                            "is_private": True,
                            "audiolevel_event": True,
                            **talk_window(),
                            **({"rec_dir": str(self.rec_dir)} if self.rec_dir is not None else {}),
                        },
                    )
                except JanusError as exc:
                    if f" {ERROR_ROOM_EXISTS} " not in f"{exc} ":
                        await session.close()
                        raise
                self._session = session
            return self._session

    async def _record_all(self, rec: _JanusRecording, on: bool) -> None:
        for p in list(self.peers.values()):
            if p.published:
                with contextlib.suppress(SfuError, asyncio.TimeoutError):
                    await self._record_one(rec, p, on)

    async def _record_one(self, rec: _JanusRecording, p: _Participant, on: bool) -> None:
        if p.pub_handle is None or self._session is None:
            return
        body: dict[str, Any] = {"request": "configure", "record": on}
        if on:
            rec.owners[p.feed] = p.pid
            body["filename"] = f"{rec.base}-{p.feed}"
        await self._session.message(p.pub_handle, body)

    async def _moderate(self, p: _Participant, kind: str, muted: bool) -> None:
        mid = p.pub_mids.get(kind)
        if mid is None or self._session is None or self._control is None:
            return
        await self._session.message(
            self._control,
            {
                "request": "moderate",
                "room": self.room_id,
                "secret": self._secret,
                "id": p.feed,
                "mid": mid,
                "mute": muted,
            },
        )

    async def _subscribe(self, p: _Participant, feeds: list[int]) -> None:
        async with p.negotiating:
            feeds = [f for f in feeds if f not in p.subscribed and any(o.feed == f for o in self.peers.values())]
            if not feeds or p.pid not in self.peers:
                return
            session = await self._open()
            # Simulcast publishers send two layers (the page's sendEncodings); start on the top one
            # (Janus's default, 2, would wait for a third). The page then picks per tile (Layer).
            streams = [{"feed": f, "substream": TOP_LAYER} for f in feeds]
            if p.sub_handle is None:
                handle = await session.attach(lambda m: self._unsolicited(p, m))
                body = {"request": "join", "ptype": "subscriber", "room": self.room_id, "streams": streams}
                try:
                    event = await session.message(handle, body)
                except SfuError:
                    await session.detach(handle)
                    raise
                p.sub_handle = handle
            else:
                event = await session.message(p.sub_handle, {"request": "subscribe", "streams": streams})
            p.subscribed.update(feeds)
            await self._renegotiate(p, event)

    async def _unsubscribe(self, p: _Participant, feed: int) -> None:
        async with p.negotiating:
            if feed not in p.subscribed or p.sub_handle is None or p.pid not in self.peers:
                return
            session = await self._open()
            event = await session.message(p.sub_handle, {"request": "unsubscribe", "streams": [{"feed": feed}]})
            p.subscribed.discard(feed)
            await self._renegotiate(p, event)

    def _unsolicited(self, p: _Participant, msg: dict[str, Any]) -> None:
        # Janus renegotiates on its own when a publisher's streams go away.
        if (msg.get("jsep") or {}).get("type") == "offer":
            self._spawn(self._unsolicited_offer(p, msg))

    async def _unsolicited_offer(self, p: _Participant, msg: dict[str, Any]) -> None:
        async with p.negotiating:
            await self._renegotiate(p, msg)

    async def _renegotiate(self, p: _Participant, event: dict[str, Any]) -> None:
        data = event.get("plugindata", {}).get("data", {})
        by_feed = {o.feed: o.pid for o in self.peers.values()}
        if "streams" in data:
            live = [s for s in data["streams"] if s.get("active", True) and s.get("feed_id") in by_feed]
            p.layout = {str(s["mid"]): by_feed[s["feed_id"]] for s in live}
            p.video_mids = {by_feed[s["feed_id"]]: str(s["mid"]) for s in live if s.get("type") == "video"}
        jsep = event.get("jsep") or {}
        if jsep.get("type") != "offer" or p.sub_handle is None or self._session is None:
            self._send(p.pid, Layout(slots=p.layout))
            return
        p.answer = asyncio.get_running_loop().create_future()
        self._send(p.pid, MediaOffer(sdp=str(jsep["sdp"]), ice_servers=self._ice(p.pid), publish=False))
        self._send(p.pid, Layout(slots=p.layout))
        sdp = await asyncio.wait_for(p.answer, ANSWER_TIMEOUT)
        await self._session.message(
            p.sub_handle, {"request": "start"}, jsep={"type": "answer", "sdp": sdp, "trickle": False}
        )
