// Meetings: /m (new meeting, signed in) and /m/<token> (join from the link, signed in or as a guest).
// Media goes through the server's SFU (suite/voip/sfu.py): the server offers, m-lines 0/1 carry what
// we publish, the other m-lines are slots; a "layout" message says which participant each slot holds.
import "./meeting.css";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { Icon } from "../lib/icons.js";
import { api } from "../lib/api.js";
import { navigate } from "../lib/router.js";
import { keyFromFragment, keyToText, newRoomKey } from "../lib/frame-crypto.js";
import { FrameCrypto, e2eeSupported } from "../meeting/e2ee.js";
import { stageLayout } from "../meeting/layout.js";

const CLOSED_TEXT = {
  denied: "The host did not let you in.",
  removed: "You were removed from the meeting.",
  ended: "The meeting has ended.",
  left: "You left the meeting.",
};

// --- the connection: signalling socket + SFU peer connection --------------------------------

// The server takes SDP with all candidates (no trickle): wait for gathering (3 s at most).
async function gathered(pc) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
    setTimeout(resolve, 3000);
  });
}

class MeetingConnection {
  constructor(token, onChange) {
    this.token = token;
    this.onChange = onChange;
    this.ws = null;
    this.pc = null;
    this.state = { phase: "connecting", me: null, role: null, title: "", locked: false, participants: new Map(),
      lobby: new Map(), chat: [], error: null, closed: null, layout: {}, mutedBy: null, recording: false, recordingSaved: null, speaker: null };
    this.local = null; // MediaStream we publish
    this.screen = null;
    this.iceServers = [];
    this.crypto = null; // FrameCrypto in an end-to-end encrypted room
    this.pubPc = null; // engines that take our media on a connection of its own (Janus)
    this.decrypting = new WeakSet(); // receivers with a decrypting transform
  }

  pcConfig() {
    return { iceServers: this.iceServers, bundlePolicy: "max-bundle", ...(this.crypto ? this.crypto.pcConfig() : {}) };
  }

  emit() { this.onChange({ ...this.state }); }

  open(hello) {
    return new Promise((resolve, reject) => {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = (this.ws = new WebSocket(`${proto}//${location.host}/ws/meetings/${encodeURIComponent(this.token)}`));
      ws.onopen = () => { ws.send(JSON.stringify({ type: "hello", ...hello })); resolve(); };
      ws.onerror = () => reject(new Error("could not connect"));
      ws.onmessage = (ev) => this.handle(JSON.parse(ev.data));
      ws.onclose = (ev) => {
        if (!this.state.closed) {
          this.state.closed = ev.code === 4410 ? "ended" : this.state.phase === "in" ? "left" : null;
          if (!this.state.closed && !this.state.error) this.state.error = "The connection was lost.";
        }
        this.stopMedia();
        this.emit();
      };
    });
  }

  send(msg) { if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg)); }

  async handle(m) {
    const s = this.state;
    switch (m.type) {
      case "error":
        s.error = m.detail; s.errorCode = m.code; break;
      case "waiting":
        s.phase = "waiting"; s.error = null; break;
      case "joined":
        s.phase = "in"; s.error = null; s.me = m.peer_id; s.role = m.role; s.title = m.title; s.locked = m.locked;
        s.participants = new Map(m.participants.map((p) => [p.peer_id, p]));
        s.lobby = new Map(m.lobby.map((k) => [k.peer_id, k]));
        break;
      case "participant_joined":
      case "participant_updated":
        s.participants.set(m.participant.peer_id, m.participant); break;
      case "participant_left":
        s.participants.delete(m.peer_id); break;
      case "lobby_knock":
        s.lobby.set(m.knocker.peer_id, m.knocker); break;
      case "lobby_gone":
        s.lobby.delete(m.peer_id); break;
      case "room_state":
        s.locked = m.locked; break;
      case "speaker":
        s.speaker = m.peer_id; break;
      case "recording":
        s.recording = m.on;
        if (m.saved) s.recordingSaved = m.saved;
        break;
      case "muted":
        s.mutedBy = m.by;
        if (m.kind === "audio") this.setTrack("audio", false, false);
        else this.setTrack("video", false, false);
        break;
      case "closed":
        s.closed = m.reason; break;
      case "chat":
        s.chat = [...s.chat.slice(-199), m]; break;
      case "layout":
        s.layout = m.slots; break;
      case "offer":
        if (m.ice_servers && m.ice_servers.length) this.iceServers = m.ice_servers;
        if (m.publish === false) await this.receive(m.sdp);
        else await this.answer(m.sdp);
        break;
      case "publish":
        if (m.ice_servers && m.ice_servers.length) this.iceServers = m.ice_servers;
        await this.publish(m.restart === true); break;
      case "publish_answer":
        if (this.pubPc) await this.pubPc.setRemoteDescription({ type: "answer", sdp: m.sdp });
        break;
    }
    this.emit();
  }

  async answer(sdp) {
    if (this.pc) this.pc.close(); // a new offer after a reconnect: the old transport is gone
    const pc = (this.pc = new RTCPeerConnection(this.pcConfig()));
    pc.ontrack = () => this.emit();
    pc.onconnectionstatechange = () => {
      this.measureQuality().catch(() => {});
      this.watch();
    };
    if (!this.qualityTimer) this.qualityTimer = setInterval(() => this.measureQuality().catch(() => {}), 2000);
    this.watchOnline();
    await pc.setRemoteDescription({ type: "offer", sdp });
    const [audioTx, videoTx] = pc.getTransceivers();
    const a = this.local.getAudioTracks()[0] || null;
    const v = this.local.getVideoTracks()[0] || null;
    audioTx.direction = "sendonly";
    videoTx.direction = "sendonly";
    if (this.crypto) {
      // Every frame we send is encrypted, every frame we receive decrypted (or dropped).
      this.crypto.attach(audioTx.sender, "encrypt", "audio");
      this.crypto.attach(videoTx.sender, "encrypt", "video");
      for (const t of pc.getTransceivers().slice(2)) this.crypto.attach(t.receiver, "decrypt", t.receiver.track.kind);
    }
    await audioTx.sender.replaceTrack(a);
    await videoTx.sender.replaceTrack(v);
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    this.send({ type: "answer", sdp: pc.localDescription.sdp });
  }

  // The network changed under us (ICE failed, or stayed disconnected): tell the server, we stay in
  // the room. The Python SFU sends a new offer (aiortc cannot answer an ICE restart); Janus restarts
  // ICE on the same connections (publish with restart, and a new offer for receiving).
  watch() {
    const states = [this.pc, this.pubPc].filter(Boolean).map((pc) => pc.connectionState);
    if (states.includes("failed")) {
      clearTimeout(this.reconnectTimer); this.reconnectTimer = null;
      this.reconnect();
    } else if (states.includes("disconnected")) {
      this.reconnectTimer ||= setTimeout(() => { this.reconnectTimer = null; this.reconnect(); }, 4000);
    } else {
      clearTimeout(this.reconnectTimer); this.reconnectTimer = null;
    }
  }

  watchOnline() {
    if (!this.onOnline) { this.onOnline = () => this.reconnect(); window.addEventListener("online", this.onOnline); }
  }

  // Janus: we offer our media on a connection of its own; the engine answers (publish_answer).
  // restart: the same connection offers again with new ICE credentials (an ICE restart).
  async publish(restart = false) {
    if (restart && this.pubPc) {
      this.iceRestarts = (this.iceRestarts || 0) + 1;
      await this.pubPc.setLocalDescription(await this.pubPc.createOffer({ iceRestart: true }));
      await gathered(this.pubPc);
      this.send({ type: "publish_offer", sdp: this.pubPc.localDescription.sdp });
      return;
    }
    // a new media session (joining, or the server started over): new connections both ways
    if (this.pubPc) this.pubPc.close();
    if (this.pc) { this.pc.close(); this.pc = null; }
    const pc = (this.pubPc = new RTCPeerConnection(this.pcConfig()));
    pc.onconnectionstatechange = () => { this.emit(); this.watch(); };
    this.watchOnline();
    const a = this.local.getAudioTracks()[0];
    const v = this.local.getVideoTracks()[0];
    const audioTx = pc.addTransceiver(a || "audio", { direction: "sendonly", streams: [this.local] });
    // Simulcast (Janus relays each receiver the layer its tile needs): full size and half size,
    // the highest first as Janus expects.
    const videoTx = pc.addTransceiver(v || "video", { direction: "sendonly", streams: [this.local],
      sendEncodings: [{ rid: "h", maxBitrate: 900_000 }, { rid: "l", maxBitrate: 200_000, scaleResolutionDownBy: 2 }] });
    if (this.crypto) {
      this.crypto.attach(audioTx.sender, "encrypt", "audio");
      this.crypto.attach(videoTx.sender, "encrypt", "video");
    }
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    this.send({ type: "publish_offer", sdp: pc.localDescription.sdp });
  }

  // Janus: the receiving connection, offered (and re-offered as people come and go) by the engine.
  async receive(sdp) {
    let pc = this.pc;
    if (!pc) {
      pc = this.pc = new RTCPeerConnection(this.pcConfig());
      pc.ontrack = () => this.emit();
      pc.onconnectionstatechange = () => { this.emit(); this.watch(); };
    }
    await pc.setRemoteDescription({ type: "offer", sdp });
    if (this.crypto) {
      for (const t of pc.getTransceivers()) {
        if (this.decrypting.has(t.receiver)) continue;
        this.decrypting.add(t.receiver);
        this.crypto.attach(t.receiver, "decrypt", t.receiver.track.kind);
      }
    }
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    this.send({ type: "answer", sdp: pc.localDescription.sdp });
  }

  // The receiving tracks of one participant (its slot's audio and video m-lines).
  tracksOf(peerId) {
    if (!this.pc) return [];
    const mids = Object.entries(this.state.layout).filter(([, p]) => p === peerId).map(([mid]) => mid);
    return this.pc.getTransceivers().filter((t) => mids.includes(t.mid)).map((t) => t.receiver.track);
  }

  me() { return this.state.participants.get(this.state.me); }

  // The simulcast layer a tile of this height (CSS px) needs: 1 (full) above the half layer's height.
  wantLayer(peerId, cssHeight) {
    const layer = cssHeight * (window.devicePixelRatio || 1) > 200 ? 1 : 0;
    this.layers ||= new Map();
    if (this.layers.get(peerId) === layer) return;
    this.layers.set(peerId, layer);
    this.send({ type: "layer", peer_id: peerId, layer });
  }

  setTrack(kind, on, tell = true) {
    const t = kind === "audio" ? this.local?.getAudioTracks()[0] : this.local?.getVideoTracks()[0];
    if (t) t.enabled = on;
    const me = this.me();
    if (me && tell) {
      this.tellState(kind === "audio" ? !on : me.audio_muted, kind === "video" ? !on : me.video_muted);
    }
    this.emit();
  }

  // our microphone / camera state, and whether the video we send is a shared screen (the others
  // then put it on the stage)
  tellState(audio_muted, video_muted) {
    this.send({ type: "media_state", audio_muted, video_muted, screen: !!this.screen });
  }

  async toggleScreen() {
    const videoTx = (this.pubPc || this.pc)?.getTransceivers()[1];
    if (!videoTx) return;
    if (this.screen) {
      this.screen.getTracks().forEach((t) => t.stop());
      this.screen = null;
      await videoTx.sender.replaceTrack(this.local.getVideoTracks()[0] || null);
    } else {
      this.screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
      const track = this.screen.getVideoTracks()[0];
      track.onended = () => { if (this.screen) this.toggleScreen(); };
      await videoTx.sender.replaceTrack(track);
    }
    const me = this.me();
    if (me) this.tellState(me.audio_muted, me.video_muted);
    this.emit();
  }

  // For tests and the quality indicator: what arrived from whom (getStats, inbound-rtp by mid).
  async stats() {
    const out = { connectionState: this.pc?.connectionState || "new", peers: {}, rtt: null, received: 0, lost: 0,
      publishState: this.pubPc?.connectionState || null, iceRestarts: this.iceRestarts || 0,
      receiveUfrag: /a=ice-ufrag:(\S+)/.exec(this.pc?.remoteDescription?.sdp || "")?.[1] || null };
    if (!this.pc) return out;
    const report = await this.pc.getStats();
    report.forEach((r) => {
      if (r.type === "candidate-pair" && r.nominated && r.currentRoundTripTime !== undefined) out.rtt = r.currentRoundTripTime;
      if (r.type !== "inbound-rtp") return;
      out.received += r.packetsReceived || 0;
      out.lost += Math.max(0, r.packetsLost || 0);
      const who = this.state.layout[r.mid];
      if (!who) return;
      const p = (out.peers[who] ||= { audio: 0, video: 0, audioPackets: 0, width: 0 });
      if (r.kind === "video") { p.video = r.framesDecoded || 0; p.width = r.frameWidth || 0; p.height = r.frameHeight || 0; }
      else { p.audio = r.totalSamplesReceived || 0; p.audioPackets = r.packetsReceived || 0; }
    });
    if (this.crypto) out.e2ee = await this.crypto.counts();
    return out;
  }

  // Connection quality from getStats() every 2 s: loss over the last interval and the round trip.
  async measureQuality() {
    const s = await this.stats();
    const prev = this.lastStats || { received: 0, lost: 0 };
    this.lastStats = s;
    const got = s.received - prev.received, lost = s.lost - prev.lost;
    const loss = got + lost > 0 ? lost / (got + lost) : 0;
    let q;
    if (s.connectionState !== "connected") q = s.connectionState === "failed" ? "lost" : "connecting";
    else if (loss > 0.1 || (s.rtt ?? 0) > 0.5) q = "poor";
    else if (loss > 0.02 || (s.rtt ?? 0) > 0.2) q = "fair";
    else q = "good";
    const text = s.rtt == null ? "" : ` (${Math.round(s.rtt * 1000)} ms, ${(loss * 100).toFixed(0)} % loss)`;
    if (q !== this.state.quality || text !== this.state.qualityText) {
      this.state.quality = q; this.state.qualityText = text; this.emit();
    }
  }

  reconnect() {
    const pcs = [this.pc, this.pubPc].filter(Boolean);
    if (this.state.closed || !pcs.length || pcs.every((pc) => pc.connectionState === "connected")) return;
    this.send({ type: "reconnect" });
  }

  stopMedia() {
    clearInterval(this.qualityTimer); this.qualityTimer = null;
    clearTimeout(this.reconnectTimer);
    if (this.onOnline) { window.removeEventListener("online", this.onOnline); this.onOnline = null; }
    if (this.pc) { this.pc.close(); this.pc = null; }
    if (this.pubPc) { this.pubPc.close(); this.pubPc = null; }
    if (this.crypto) { this.crypto.close(); this.crypto = null; }
    if (this.screen) { this.screen.getTracks().forEach((t) => t.stop()); this.screen = null; }
  }

  leave() {
    this.state.closed = "left";
    this.send({ type: "leave" });
    this.stopMedia();
    if (this.local) this.local.getTracks().forEach((t) => t.stop());
    if (this.ws) this.ws.close();
    this.emit();
  }
}

// --- pieces ----------------------------------------------------------------------------------

function Video({ stream, tracks, muted, label }) {
  const ref = useRef(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const s = stream || (tracks && tracks.length ? new MediaStream(tracks) : null);
    if (el.srcObject !== s) el.srcObject = s;
  }, [stream, tracks && tracks.map((t) => t.id).join()]);
  return html`<video ref=${ref} autoplay playsinline muted=${muted} aria-label=${label}></video>`;
}

function LevelMeter({ stream }) {
  const [level, setLevel] = useState(0);
  useEffect(() => {
    const track = stream?.getAudioTracks()[0];
    if (!track) return undefined;
    const ctx = new AudioContext();
    const src = ctx.createMediaStreamSource(new MediaStream([track]));
    const an = ctx.createAnalyser();
    an.fftSize = 512;
    src.connect(an);
    const buf = new Float32Array(an.fftSize);
    const timer = setInterval(() => {
      an.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const x of buf) sum += x * x;
      setLevel(Math.min(1, Math.sqrt(sum / buf.length) * 4));
    }, 100);
    return () => { clearInterval(timer); ctx.close(); };
  }, [stream]);
  return html`<label class="meter">Microphone level <meter min="0" max="1" value=${level} aria-label="Microphone level"></meter></label>`;
}

async function devices(kind) {
  try { return (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === kind); } catch { return []; }
}

function e2eeProblem(info, roomKey) {
  if (!info.e2ee) return null;
  if (!e2eeSupported()) return "This meeting is end-to-end encrypted and this browser cannot encrypt calls. Use a current Chromium, Chrome, Edge or Safari.";
  if (!roomKey) return "This meeting is end-to-end encrypted: open the full link you were given, including the part after #, to join.";
  return null;
}

function PreJoin({ info, user, onJoin, error, roomKey }) {
  const [stream, setStream] = useState(null);
  const [mics, setMics] = useState([]);
  const [cams, setCams] = useState([]);
  const [mic, setMic] = useState("");
  const [cam, setCam] = useState("");
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [audioOn, setAudioOn] = useState(true);
  const [videoOn, setVideoOn] = useState(true);
  const [busy, setBusy] = useState(false);
  const [mediaError, setMediaError] = useState(null);

  useEffect(() => {
    let s = null;
    let stop = false;
    (async () => {
      try {
        s = await navigator.mediaDevices.getUserMedia({
          audio: mic ? { deviceId: { exact: mic } } : true,
          video: cam ? { deviceId: { exact: cam } } : { width: 640, height: 360 },
        });
        if (stop) { s.getTracks().forEach((t) => t.stop()); return; }
        setStream(s);
        setMediaError(null);
        setMics(await devices("audioinput"));
        setCams(await devices("videoinput"));
      } catch (e) {
        setMediaError("Camera or microphone not available: " + e.message);
      }
    })();
    return () => { stop = true; };
  }, [mic, cam]);

  useEffect(() => () => {}, []);

  const submit = async (ev) => {
    ev.preventDefault();
    setBusy(true);
    if (stream) {
      stream.getAudioTracks().forEach((t) => (t.enabled = audioOn));
      stream.getVideoTracks().forEach((t) => (t.enabled = videoOn));
    }
    await onJoin({ stream: stream || new MediaStream(), name: user ? undefined : name.trim(),
      password: info.password && !user ? password : undefined, audioOn, videoOn });
    setBusy(false);
  };

  return html`
    <section class="prejoin" aria-labelledby="prejoin-title">
      <h1 id="prejoin-title">${info.title}</h1>
      <div class="cam-preview">
        <${Video} stream=${stream} muted=${true} label="Your camera preview" />
        ${!videoOn && html`<div class="cam-off">Camera off</div>`}
      </div>
      ${mediaError && html`<p class="error" role="alert">${mediaError}</p>`}
      <form onSubmit=${submit} class="prejoin-form">
        <${LevelMeter} stream=${stream} />
        <label>Microphone
          <select value=${mic} onChange=${(e) => setMic(e.target.value)}>
            <option value="">Default microphone</option>
            ${mics.map((d, i) => html`<option value=${d.deviceId}>${d.label || `Microphone ${i + 1}`}</option>`)}
          </select>
        </label>
        <label>Camera
          <select value=${cam} onChange=${(e) => setCam(e.target.value)}>
            <option value="">Default camera</option>
            ${cams.map((d, i) => html`<option value=${d.deviceId}>${d.label || `Camera ${i + 1}`}</option>`)}
          </select>
        </label>
        <div class="toggles">
          <button type="button" aria-pressed=${!audioOn} onClick=${() => setAudioOn(!audioOn)}>${audioOn ? "Mute" : "Unmute"}</button>
          <button type="button" aria-pressed=${!videoOn} onClick=${() => setVideoOn(!videoOn)}>${videoOn ? "Camera off" : "Camera on"}</button>
        </div>
        ${!user && html`<label>Your name <input name="name" required maxlength="64" value=${name} onInput=${(e) => setName(e.target.value)} /></label>`}
        ${!user && info.password && html`<label>Meeting password <input name="password" type="password" required value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>`}
        ${user && html`<p class="muted">Joining as ${user.display_name || user.address}</p>`}
        ${info.e2ee && html`<p class="muted" id="meeting-e2ee">End-to-end encrypted: the server forwards what it cannot read.</p>`}
        ${e2eeProblem(info, roomKey) && html`<p class="error" role="alert">${e2eeProblem(info, roomKey)}</p>`}
        ${error && html`<p class="error" role="alert">${error}</p>`}
        <button class="primary" type="submit" disabled=${busy || !!e2eeProblem(info, roomKey)}>Join meeting</button>
      </form>
    </section>`;
}

// Badges sit in a row at the top of the tile, the name at the bottom: on a small tile neither
// covers the other (a badge row that does not fit is cut, the name ends in an ellipsis).
function Tile({ conn, p, me, speaking, main }) {
  const tracks = me ? null : conn.tracksOf(p.peer_id);
  const ref = useRef(null);
  useEffect(() => {
    if (me || !ref.current || typeof ResizeObserver === "undefined") return undefined;
    const ro = new ResizeObserver(([entry]) => conn.wantLayer(p.peer_id, entry.contentRect.height));
    ro.observe(ref.current);
    return () => ro.disconnect();
  }, [me, p.peer_id]);
  const cls = ["tile", speaking && "m-speaking", main && "m-main", p.screen && "m-screen"].filter(Boolean).join(" ");
  return html`
    <figure class=${cls} ref=${ref} data-peer=${p.peer_id} aria-label=${p.name} aria-current=${speaking ? "true" : undefined}>
      <${Video} stream=${me ? conn.screen || conn.local : null} tracks=${tracks} muted=${me} label=${me ? "You" : p.name} />
      <div class="m-badges">
        ${p.screen && html`<span class="badge m-sharing">Sharing screen</span>`}
        ${p.audio_muted && html`<span class="badge" title="Microphone muted">muted</span>`}
        ${p.hand_raised && html`<span class="badge hand">Hand raised</span>`}
        ${speaking && html`<span class="badge m-talking">Speaking</span>`}
      </div>
      <figcaption>
        <span class="name" title=${p.name}>${me ? `${p.name} (you)` : p.name}</span>
      </figcaption>
    </figure>`;
}

// The stage's size, watched: the tiles are sized from it (stageLayout) and follow window
// resizes and the side panel opening.
function useSize(ref) {
  const [size, setSize] = useState({ width: 0, height: 0 });
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === "undefined") return undefined;
    const ro = new ResizeObserver(([entry]) => {
      const { width, height } = entry.contentRect;
      setSize((old) => (old.width === width && old.height === height ? old : { width, height }));
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return size;
}

const PHONE = "(max-width: 600px)";

function Participants({ conn, s }) {
  const host = s.role === "host";
  return html`
    <section class="m-panel" aria-label="Participants">
      <h2>Participants (${s.participants.size})</h2>
      <ul class="people">
        ${[...s.participants.values()].map((p) => html`
          <li key=${p.peer_id} data-peer=${p.peer_id}>
            <span class="name" title=${p.name}>${p.name}</span>
            <span class="muted">${p.role}${p.audio_muted ? " · muted" : ""}${p.hand_raised ? " · hand raised" : ""}</span>
            ${host && p.peer_id !== s.me && html`
              <span class="actions">
                <button type="button" class="small" aria-label=${`Mute ${p.name}`} disabled=${p.audio_muted} onClick=${() => conn.send({ type: "mute", peer_id: p.peer_id, kind: "audio" })}>Mute</button>
                <button type="button" class="small danger" aria-label=${`Remove ${p.name}`} onClick=${() => conn.send({ type: "remove", peer_id: p.peer_id })}>Remove</button>
              </span>`}
          </li>`)}
      </ul>
      ${host && s.lobby.size > 0 && html`
        <h2>Waiting in the lobby</h2>
        <ul class="people lobby">
          ${[...s.lobby.values()].map((k) => html`
            <li key=${k.peer_id}>
              <span class="name" title=${k.name}>${k.name}</span>
              <span class="actions">
                <button type="button" class="small primary" aria-label=${`Admit ${k.name}`} onClick=${() => conn.send({ type: "admit", peer_id: k.peer_id })}>Admit</button>
                <button type="button" class="small" aria-label=${`Deny ${k.name}`} onClick=${() => conn.send({ type: "deny", peer_id: k.peer_id })}>Deny</button>
              </span>
            </li>`)}
        </ul>`}
    </section>`;
}

function ChatPanel({ conn, s }) {
  const [text, setText] = useState("");
  const send = (ev) => {
    ev.preventDefault();
    if (!text.trim()) return;
    conn.send({ type: "chat", text });
    setText("");
  };
  return html`
    <section class="m-panel chat" aria-label="Chat">
      <h2>Chat</h2>
      <ol class="messages" aria-live="polite">
        ${s.chat.map((m) => html`<li key=${m.seq}><b>${m.name}</b> ${m.text}</li>`)}
      </ol>
      <form onSubmit=${send}>
        <input aria-label="Chat message" maxlength="2000" value=${text} onInput=${(e) => setText(e.target.value)} />
        <button type="submit">Send</button>
      </form>
    </section>`;
}

// Whether a media query matches, following changes (a phone turned, a window resized).
function useMedia(query) {
  const [on, setOn] = useState(() => typeof matchMedia === "function" && matchMedia(query).matches);
  useEffect(() => {
    if (typeof matchMedia !== "function") return undefined;
    const mq = matchMedia(query);
    const changed = () => setOn(mq.matches);
    changed();
    mq.addEventListener("change", changed);
    return () => mq.removeEventListener("change", changed);
  }, [query]);
  return on;
}

// The meeting controls. Desktop: one row of labelled buttons. Phone (as Jitsi's): one row of the main
// ones (icon and short label) and "More actions" showing the rest above the row; Enter or a tap opens
// it, Escape (or choosing, or a tap elsewhere) closes it and focus goes back to the button. Every
// control keeps its accessible name (its text) in both layouts.
function Controls({ conn, s, me, panel, setPanel, layout, toggleView }) {
  const phone = useMedia(PHONE);
  const [open, setOpen] = useState(false);
  const moreRef = useRef(null);
  const menuRef = useRef(null);
  useEffect(() => { if (!phone) setOpen(false); }, [phone]);
  useLayoutEffect(() => { if (open) menuRef.current?.querySelector("button")?.focus(); }, [open]);
  useEffect(() => {
    if (!open) return undefined;
    const away = (ev) => {
      if (!menuRef.current?.contains(ev.target) && !moreRef.current?.contains(ev.target)) setOpen(false);
    };
    document.addEventListener("pointerdown", away);
    return () => document.removeEventListener("pointerdown", away);
  }, [open]);
  const closeMenu = () => { setOpen(false); moreRef.current?.focus(); };
  const onMenuKey = (ev) => {
    if (ev.key === "Escape" && open) { ev.preventDefault(); ev.stopPropagation(); closeMenu(); return; }
    if (!menuRef.current || (ev.key !== "ArrowDown" && ev.key !== "ArrowUp")) return;
    const items = [...menuRef.current.querySelectorAll("button")];
    const i = items.indexOf(document.activeElement);
    if (i < 0) return;
    ev.preventDefault();
    items[(i + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus();
  };
  const audioOn = me ? !me.audio_muted : true;
  const videoOn = me ? !me.video_muted : true;
  const host = s.role === "host";
  // [label, pressed, action, icon (the phone row's controls), danger]
  const c = {
    audio: [audioOn ? "Mute" : "Unmute", !audioOn, () => conn.setTrack("audio", !audioOn), audioOn ? "mic" : "mic-off"],
    video: [videoOn ? "Camera off" : "Camera on", !videoOn, () => conn.setTrack("video", !videoOn), videoOn ? "video" : "video-off"],
    screen: [conn.screen ? "Stop sharing" : "Share screen", !!conn.screen, () => conn.toggleScreen().catch(() => {})],
    hand: [me?.hand_raised ? "Lower hand" : "Raise hand", !!me?.hand_raised, () => conn.send({ type: "hand", raised: !me?.hand_raised })],
    people: ["Participants" + (s.lobby.size ? ` (${s.lobby.size} waiting)` : ""), panel === "people",
      () => setPanel(panel === "people" ? null : "people"), "users"],
    chat: ["Chat", panel === "chat", () => setPanel(panel === "chat" ? null : "chat"), "chat"],
    view: ["Speaker view", layout === "speaker", toggleView],
    lock: host && [s.locked ? "Unlock" : "Lock", s.locked, () => conn.send({ type: "lock", locked: !s.locked })],
    record: host && [s.recording ? "Stop recording" : "Record", s.recording, () => conn.send({ type: "record", on: !s.recording })],
    end: host && ["End meeting", undefined, () => conn.send({ type: "end" }), null, true],
    leave: ["Leave", undefined, () => conn.leave(), "phone-off", true],
  };
  const button = (k, { icon = false, after = null } = {}) => {
    if (!c[k]) return null;
    const [label, pressed, act, ico, danger] = c[k];
    // the phone row's Participants shows the people waiting as a count on its icon (the label would
    // not fit); its accessible name still says how many wait
    const waiting = icon && k === "people" && s.lobby.size ? s.lobby.size : 0;
    return html`<button type="button" key=${k} class=${danger ? "danger" : undefined} aria-pressed=${pressed}
      aria-label=${waiting ? label : undefined} onClick=${() => { act(); if (after) after(); }}>
      ${icon
        ? html`<span class="ctl-icon"><${Icon} name=${ico} />${waiting ? html`<span class="ctl-count" aria-hidden="true">${waiting}</span>` : null}</span><span class="ctl-label" aria-hidden=${waiting ? "true" : undefined}>${waiting ? "Participants" : label}</span>`
        : label}</button>`;
  };
  if (!phone) {
    return html`<nav class="controls" aria-label="Meeting controls">
      ${["audio", "video", "screen", "hand", "people", "chat", "view", "lock", "record", "end", "leave"].map((k) => button(k))}
    </nav>`;
  }
  return html`<nav class="controls compact" aria-label="Meeting controls" onKeyDown=${onMenuKey}>
    ${["audio", "video", "chat", "people"].map((k) => button(k, { icon: true }))}
    <button type="button" ref=${moreRef} aria-label="More actions" aria-expanded=${open ? "true" : "false"} aria-controls="m-more"
      onClick=${() => setOpen(!open)}><${Icon} name="more" /><span class="ctl-label" aria-hidden="true">More</span></button>
    ${button("leave", { icon: true })}
    ${open && html`<div class="m-more" id="m-more" role="group" aria-label="More actions" ref=${menuRef}>
      ${["screen", "hand", "view", "lock", "record", "end"].map((k) => button(k, { after: closeMenu }))}
    </div>`}
  </nav>`;
}

// The meeting's link for inviting others, as the address bar has it (an end-to-end encrypted room's key
// is in its fragment). Where the clipboard is refused, the link is shown selected for copying by hand.
function CopyLink() {
  const [state, setState] = useState(null); // null | "copied" | "manual"
  const field = useRef(null);
  useEffect(() => { if (state === "manual") field.current?.select(); }, [state]);
  useEffect(() => {
    if (state !== "copied") return undefined;
    const t = setTimeout(() => setState(null), 4000);
    return () => clearTimeout(t);
  }, [state]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      setState("copied");
    } catch {
      setState("manual");
    }
  };
  return html`<span class="m-copy">
    <button type="button" class="small" onClick=${copy}>Copy meeting link</button>
    <span role="status" class="muted">${state === "copied" ? "Link copied" : ""}</span>
    ${state === "manual" && html`<input ref=${field} type="text" readonly value=${location.href} aria-label="Meeting link"
      onBlur=${() => setState(null)} />`}
  </span>`;
}

// exported for the layout page test (tests/e2e/test_meeting_layout.py), which renders it with synthetic participants
export function InMeeting({ conn, s }) {
  const [panel, setPanel] = useState(null);
  const [view, setView] = useState("grid");
  const [shareView, setShareView] = useState(null); // the layout chosen while a screen is shared
  const stageRef = useRef(null);
  const size = useSize(stageRef);
  const me = s.participants.get(s.me);
  const others = [...s.participants.values()].filter((p) => p.peer_id !== s.me);
  const tiles = [me, ...others].filter(Boolean);
  // a shared screen takes the stage (speaker view, the screen large); when it ends, the layout
  // goes back to what it was
  const sharer = tiles.find((p) => p.screen)?.peer_id || null;
  useEffect(() => { if (!sharer) setShareView(null); }, [sharer]);
  const layout = sharer ? shareView || "speaker" : view;
  // speaker view: the shared screen, else the active speaker (from the audio levels the server
  // reads), large; the tiles keep their order in the page (CSS puts the main one first)
  const speaking = s.participants.has(s.speaker) ? s.speaker : null;
  const main = layout === "speaker" ? sharer || speaking || others[0]?.peer_id || s.me : null;
  const phone = useMedia(PHONE);
  const L = stageLayout({ width: size.width, height: size.height, count: tiles.length, phone, view: layout === "speaker" ? "speaker" : "grid" });
  const style = `--cols:${L.cols};--tile-w:${L.tileW}px;--tile-h:${L.tileH}px;--main-w:${L.mainW || 0}px;--main-h:${L.mainH || 0}px`;
  const toggleView = () => {
    if (sharer) setShareView(layout === "speaker" ? "grid" : "speaker");
    else setView(view === "speaker" ? "grid" : "speaker");
  };
  return html`
    <section class="meeting" aria-labelledby="meeting-title">
      <header class="meeting-head">
        <h1 id="meeting-title">${s.title}</h1>
        ${s.locked && html`<span class="badge">Locked</span>`}
        ${conn.crypto && html`<span class="badge" title="Frames are encrypted in the browsers; the server cannot read them">End-to-end encrypted</span>`}
        <${CopyLink} />
        <span class=${`muted quality m-q-${s.quality || "connecting"}`} id="meeting-connection" role="status" aria-label="Connection quality">Connection: ${s.quality || "connecting"}${s.qualityText || ""}</span>
      </header>
      ${s.recording && html`<p class="notice m-recording" role="status" id="meeting-recording">● This meeting is being recorded.</p>`}
      ${s.recordingSaved && !s.recording && html`<p class="notice" role="status" id="meeting-recording-saved">Recording saved in Files: ${s.recordingSaved}</p>`}
      ${s.mutedBy && html`<p class="notice" role="status">${s.mutedBy} muted your microphone.</p>`}
      <div class="m-body">
        <div class="m-stage" ref=${stageRef}>
          <div class=${layout === "speaker" ? "grid m-speaker-view" : "grid"} data-count=${tiles.length} style=${style}>
            ${tiles.map((p) => html`<${Tile} key=${p.peer_id} conn=${conn} p=${p} me=${p.peer_id === s.me} speaking=${p.peer_id === speaking} main=${p.peer_id === main} />`)}
          </div>
        </div>
        ${panel && html`<aside class="m-side">
          ${panel === "people" && html`<${Participants} conn=${conn} s=${s} />`}
          ${panel === "chat" && html`<${ChatPanel} conn=${conn} s=${s} />`}
        </aside>`}
      </div>
      <${Controls} conn=${conn} s=${s} me=${me} panel=${panel} setPanel=${setPanel} layout=${layout} toggleView=${toggleView} />
    </section>`;
}

// --- views ------------------------------------------------------------------------------------

export function NewMeeting() {
  const [title, setTitle] = useState("Meeting");
  const [lobby, setLobby] = useState(true);
  const [password, setPassword] = useState("");
  const [e2ee, setE2ee] = useState(false);
  const [start, setStart] = useState("");
  const [minutes, setMinutes] = useState(60);
  const [invitees, setInvitees] = useState("");
  const [planned, setPlanned] = useState(null);
  const [error, setError] = useState(null);
  const submit = async (ev) => {
    ev.preventDefault();
    const body = { title, lobby, password: password || undefined };
    if (start) {
      // datetime-local is the browser's local time; the server wants an offset
      Object.assign(body, { start: new Date(start).toISOString(), minutes: Number(minutes),
        invitees: invitees.split(/[\s,;]+/).filter(Boolean) });
    }
    try {
      // The room key is made here and lives only in the link's fragment: the server never sees it
      // (so the link in a mailed invitation has no key: the host shares the full link).
      const key = e2ee ? `#k=${keyToText(newRoomKey())}` : "";
      const r = await api("/api/meetings", { method: "POST", body: { ...body, e2ee } });
      if (start) setPlanned({ ...r, url: r.url + key }); else navigate(r.url + key);
    } catch (e) { setError(e.message); }
  };
  if (planned) {
    return html`
      <section class="prejoin" aria-labelledby="new-meeting">
        <h1 id="new-meeting">Meeting scheduled</h1>
        <p role="status" id="meeting-scheduled">${planned.title}, ${new Date(planned.start).toLocaleString()} (${planned.minutes} minutes).
          ${planned.invited.length ? ` Invitations sent to ${planned.invited.join(", ")}.` : ""}</p>
        <p>Link: <a href=${planned.url}>${location.origin}${planned.url}</a></p>
      </section>`;
  }
  return html`
    <section class="prejoin" aria-labelledby="new-meeting">
      <h1 id="new-meeting">New meeting</h1>
      <form class="prejoin-form" onSubmit=${submit}>
        <label>Title <input required maxlength="200" value=${title} onInput=${(e) => setTitle(e.target.value)} /></label>
        <label class="check"><input type="checkbox" checked=${lobby} onChange=${(e) => setLobby(e.target.checked)} /> Guests wait in a lobby until I admit them</label>
        <label class="check"><input type="checkbox" checked=${e2ee} disabled=${!e2eeSupported()} onChange=${(e) => setE2ee(e.target.checked)} /> End-to-end encrypted</label>
        <label>Password for guests (optional) <input type="password" value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>
        <fieldset class="m-schedule">
          <legend>Schedule a meeting (optional)</legend>
          <label>Starts <input type="datetime-local" value=${start} onInput=${(e) => setStart(e.target.value)} /></label>
          <label>Minutes <input type="number" min="5" max="1440" value=${minutes} onInput=${(e) => setMinutes(e.target.value)} /></label>
          <label>Invite (addresses) <input type="text" value=${invitees} placeholder="ann@example.com, bo@example.org" onInput=${(e) => setInvitees(e.target.value)} /></label>
        </fieldset>
        ${error && html`<p class="error" role="alert">${error}</p>`}
        <button class="primary" type="submit">${start ? "Schedule meeting" : "Create meeting"}</button>
      </form>
    </section>`;
}

export function MeetingView({ token, user }) {
  const [info, setInfo] = useState(null);
  const [s, setS] = useState(null);
  const [error, setError] = useState(null);
  const connRef = useRef(null);
  const [roomKey] = useState(() => keyFromFragment(location.hash));

  useEffect(() => {
    api(`/api/meetings/${encodeURIComponent(token)}`).then(setInfo, (e) => setError(e.status === 404 ? "This meeting link is not valid." : e.message));
    return () => { if (connRef.current) connRef.current.leave(); };
  }, [token]);

  useEffect(() => {
    window.suiteMeeting = { stats: () => (connRef.current ? connRef.current.stats() : null), state: () => connRef.current?.state };
  }, []);

  const join = async ({ stream, name, password, audioOn, videoOn }) => {
    const conn = connRef.current && !connRef.current.state.closed && connRef.current.ws?.readyState === WebSocket.OPEN
      ? connRef.current : new MeetingConnection(token, setS);
    connRef.current = conn;
    conn.local = stream;
    if (info.e2ee && !conn.crypto) conn.crypto = new FrameCrypto(roomKey);
    if (user) { try { conn.iceServers = (await api("/api/calls/ice")).iceServers; } catch { conn.iceServers = []; } }
    conn.state.error = null;
    if (conn.ws && conn.ws.readyState === WebSocket.OPEN) conn.send({ type: "hello", name, password });
    else await conn.open({ name, password }).catch((e) => setError(e.message));
    // Tell the room our starting state once we are in.
    const wait = setInterval(() => {
      if (conn.state.phase === "in") {
        clearInterval(wait);
        if (!audioOn || !videoOn) conn.send({ type: "media_state", audio_muted: !audioOn, video_muted: !videoOn });
      } else if (conn.state.closed || conn.state.error) clearInterval(wait);
    }, 200);
  };

  const conn = connRef.current;
  let body;
  if (error) body = html`<p class="error" role="alert">${error}</p>`;
  else if (!info) body = html`<p class="boot" role="status">Loading…</p>`;
  else if (info.ended || s?.closed) {
    const reason = s?.closed || "ended";
    body = html`<section class="prejoin"><h1>${info.title}</h1><p role="status" id="meeting-closed">${CLOSED_TEXT[reason]}</p>
      ${user && html`<a class="button" href="/calls">Back to Calls</a>`}</section>`;
  } else if (s?.phase === "in") body = html`<${InMeeting} conn=${conn} s=${s} />`;
  else if (s?.phase === "waiting") body = html`<section class="prejoin"><h1>${info.title}</h1><p role="status" id="meeting-waiting">Waiting for the host to let you in…</p></section>`;
  else body = html`<${PreJoin} info=${info} user=${user} onJoin=${join} error=${s?.error} roomKey=${roomKey} />`;
  return html`<main class="meeting-page" id="main">${body}</main>`;
}
