// Calls logic (from the former calls page): contacts with presence, calling, ringing, the in-call view,
// history. Signalling: JSON messages on /ws/calls (suite/voip/messages.py). The caller sends the first
// offer once the call is accepted; either side may renegotiate later (screen share) with a new offer.
// The DOM it drives is rendered once by views/calls.js (ids below); it stays connected while signed
// in, so a call rings whatever view is open.
import { api } from "./api.js";
import { navigate } from "./router.js";

const $ = (id) => document.getElementById(id);
const state = { me: null, ws: null, iceServers: [], iceUntil: 0, call: null, incoming: null, ring: null,
                timer: null, stopped: true, intervals: [] };
window.suiteCalls = { state, stats };

function status(text) { const s = $("calls-status"); if (s) s.textContent = text; }

function newId() {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

// --- signalling socket -------------------------------------------------------------------------

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws/calls`);
  state.ws = ws;
  ws.onopen = () => status("Ready");
  ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    if (state.stopped) return;
    if (ev.code === 4401) { status("Not signed in"); return; }
    if (state.call) teardown("connection lost");
    status("Reconnecting…");
    setTimeout(() => { if (!state.stopped) connect(); }, 2000);
  };
}

async function onMessage(m) {
  const call = state.call;
  switch (m.type) {
    case "incoming":
      if (call || state.incoming) { send({ type: "busy", call_id: m.call_id }); return; }
      state.incoming = m;
      $("incoming-caller").textContent = m.caller;
      $("incoming-media").textContent = m.meeting ? "meeting" : m.media;
      $("incoming").hidden = false;
      startRingtone();
      send({ type: "ringing", call_id: m.call_id });
      return;
    case "stop_ringing":
      if (state.incoming && state.incoming.call_id === m.call_id) {
        stopIncoming();
        status(m.reason === "answered_elsewhere" ? "Answered on another device" : `Missed call (${m.reason})`);
        historySoon();
      }
      return;
    case "ringing":
      if (call && call.id === m.call_id) setCallState("Ringing…");
      return;
    case "accepted":
      if (call && call.id === m.call_id) {
        call.peer = m.peer;
        $("incall-peer").textContent = m.peer;
        setCallState("Connecting…");
        await ensureMedia(call);
        if (call.role === "caller") await makeOffer(call);
        else if (call.pendingOffer) { const o = call.pendingOffer; call.pendingOffer = null; await onOffer(call, o); }
      }
      return;
    case "diverted":
      if (call && call.id === m.call_id) {
        call.voicemail = true;
        call.media = "audio";
        $("incall-peer").textContent = `${call.peer} (voicemail)`;
        setCallState("Leave a message after the tone");
        await ensureMedia(call);
        await makeOffer(call);
      }
      return;
    case "offer":
      if (call && call.id === m.call_id) {
        if (!call.mediaReady) { call.pendingOffer = m.sdp; return; }
        await call.mediaReady;  // the callee's camera may still be starting (begun at Accept)
        await onOffer(call, m.sdp);
      }
      return;
    case "answer":
      if (call && call.id === m.call_id && call.pc) {
        await call.pc.setRemoteDescription({ type: "answer", sdp: m.sdp });
        await flushIce(call);
      }
      return;
    case "ice":
      if (call && call.id === m.call_id) {
        if (call.pc && call.pc.remoteDescription) await call.pc.addIceCandidate(m.candidate).catch(() => {});
        else call.pendingIce.push(m.candidate);
      }
      return;
    case "move_to_meeting": // the call went on as a meeting (someone was added), or we accepted an invitation
      if (call && call.id === m.call_id) teardown("Moved to a meeting");
      navigate(m.url);
      return;
    case "call_ended":
      if (call && call.id === m.call_id) teardown(endText(m.reason));
      return;
    case "error":
      if (call && m.call_id === call.id && !call.pc) teardown(m.detail);
      else status(`Error: ${m.detail}`);
      return;
  }
}

function endText(reason) {
  return { hangup: "Call ended", declined: "Declined", busy: "Busy", cancelled: "Cancelled", timeout: "No answer",
           unavailable: "Not available", disconnected: "Connection lost" }[reason] || `Call ended (${reason})`;
}

// --- placing, answering, media ---------------------------------------------------------------------

// ICE servers (TURN credentials) are fetched when the page connects and again before they expire, so
// placing or answering a call never waits for them.
async function refreshIce() {
  try {
    const r = await api("/api/calls/ice");
    state.iceServers = r.iceServers;
    state.iceUntil = r.ttl ? Date.now() + r.ttl * 1000 : Infinity;
  } catch { state.iceServers = []; state.iceUntil = 0; }
}

async function iceReady() {
  if (Date.now() >= state.iceUntil - 60000) await refreshIce();  // not fetched yet, or about to expire
}

async function placeCall(to, media) {
  if (state.call) return;
  await iceReady();
  state.call = { id: newId(), peer: to, media, role: "caller", pc: null, pendingIce: [], local: null };
  $("incall-peer").textContent = to;
  $("incall").hidden = false;
  setCallState("Calling…");
  send({ type: "invite", call_id: state.call.id, to, media });
}

async function accept() {
  const inc = state.incoming;
  if (!inc) return;
  stopIncoming();
  if (inc.meeting) { send({ type: "accept", call_id: inc.call_id }); return; } // answered by move_to_meeting
  await iceReady();
  const call = { id: inc.call_id, peer: inc.caller, media: inc.media, role: "callee", pc: null, pendingIce: [], local: null };
  state.call = call;
  $("incall-peer").textContent = inc.caller;
  $("incall").hidden = false;
  setCallState("Connecting…");
  send({ type: "accept", call_id: inc.call_id });
  // Camera and peer connection start now, while "accept" travels to the caller and its offer comes back.
  ensureMedia(call);
}

// startMedia once per call; everything that needs the peer connection with its tracks awaits this.
function ensureMedia(call) {
  if (!call.mediaReady) call.mediaReady = startMedia(call);
  return call.mediaReady;
}

function decline() {
  const inc = state.incoming;
  if (!inc) return;
  stopIncoming();
  send({ type: "decline", call_id: inc.call_id });
  status("Declined");
  historySoon();
}

async function startMedia(call) {
  if (call.pc) return;
  const pc = new RTCPeerConnection({ iceServers: state.iceServers });
  call.pc = pc;
  try {
    call.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: call.media === "video" });
  } catch (err) {
    status(`No microphone/camera: ${err.message}`);
    call.local = new MediaStream();
  }
  $("local-video").srcObject = call.local;
  for (const t of call.local.getTracks()) pc.addTrack(t, call.local);
  if (call.media !== "video") pc.addTransceiver("video", { direction: "recvonly" });
  pc.onicecandidate = (ev) => {
    if (ev.candidate) send({ type: "ice", call_id: call.id, candidate: ev.candidate.toJSON() });
  };
  const remote = new MediaStream();
  $("remote-video").srcObject = remote;
  pc.ontrack = (ev) => { remote.addTrack(ev.track); };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") { setCallState("Connected"); startTimer(); }
    if (pc.connectionState === "failed") setCallState("Media failed");
  };
}

async function makeOffer(call) {
  const offer = await call.pc.createOffer();
  await call.pc.setLocalDescription(offer);
  send({ type: "offer", call_id: call.id, sdp: call.pc.localDescription.sdp });
}

async function onOffer(call, sdp) {
  await call.pc.setRemoteDescription({ type: "offer", sdp });
  await flushIce(call);
  const answer = await call.pc.createAnswer();
  await call.pc.setLocalDescription(answer);
  send({ type: "answer", call_id: call.id, sdp: call.pc.localDescription.sdp });
}

async function flushIce(call) {
  const pending = call.pendingIce.splice(0);
  for (const c of pending) await call.pc.addIceCandidate(c).catch(() => {});
}

// "Add person": the server makes a meeting of this call and rings the added person.
function addPerson(ev) {
  ev.preventDefault();
  const call = state.call;
  const input = $("add-person-address");
  const to = input.value.trim();
  if (!call || !call.pc || !to) return;
  send({ type: "add_person", call_id: call.id, to });
  setCallState(`Adding ${to}…`);
  $("add-person").hidden = true;
  input.value = "";
}

function hangup() {
  const call = state.call;
  if (!call) return;
  send({ type: call.pc || call.voicemail ? "hangup" : "cancel", call_id: call.id });
  teardown("Call ended");
}

function teardown(text) {
  const call = state.call;
  state.call = null;
  if (call) {
    if (call.pc) call.pc.close();
    for (const t of call.local ? call.local.getTracks() : []) t.stop();
    if (call.screen) call.screen.getTracks().forEach((t) => t.stop());
  }
  clearInterval(state.timer);
  state.timer = null;
  status(text);
  if (!$("incall")) return; // stopped with the view (unmounted)
  $("incall").hidden = true;
  $("add-person").hidden = true;
  $("remote-video").srcObject = null;
  $("local-video").srcObject = null;
  for (const id of ["btn-mute", "btn-camera", "btn-screen"]) $(id).setAttribute("aria-pressed", "false");
  historySoon();
}

// The history row is written right after the call ends; read it a moment later (and once more).
function historySoon() {
  setTimeout(loadHistory, 300);
  setTimeout(loadHistory, 1500);
}

function setCallState(text) { $("incall-state").textContent = text; }

function startTimer() {
  if (state.timer) return;
  const t0 = Date.now();
  const tick = () => {
    const s = Math.floor((Date.now() - t0) / 1000);
    $("incall-timer").textContent = `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  };
  tick();
  state.timer = setInterval(tick, 1000);
}

function toggle(button, kind) {
  const call = state.call;
  if (!call || !call.local) return;
  const on = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-pressed", String(on));
  for (const t of call.local.getTracks()) if (t.kind === kind) t.enabled = !on;
}

async function shareScreen() {
  const call = state.call;
  if (!call || !call.pc) return;
  const btn = $("btn-screen");
  if (call.screen) { // back to the camera
    call.screen.getTracks().forEach((t) => t.stop());
    call.screen = null;
    const cam = call.local.getVideoTracks()[0] || null;
    if (call.screenSender) await call.screenSender.replaceTrack(cam);
    btn.setAttribute("aria-pressed", "false");
    return;
  }
  try {
    call.screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
  } catch (err) { status(`Screen share: ${err.message}`); return; }
  const track = call.screen.getVideoTracks()[0];
  track.onended = () => { if (call.screen) shareScreen(); };
  const sender = call.pc.getSenders().find((s) => s.track && s.track.kind === "video");
  if (sender) {
    await sender.replaceTrack(track);
    call.screenSender = sender;
  } else { // audio call: a new video track needs a new offer/answer (renegotiation)
    const tr = call.pc.getTransceivers().find((t) => t.receiver.track.kind === "video" && !t.sender.track);
    if (tr) { tr.direction = "sendrecv"; await tr.sender.replaceTrack(track); call.screenSender = tr.sender; }
    else call.screenSender = call.pc.addTrack(track, call.screen);
    await makeOffer(call);
  }
  btn.setAttribute("aria-pressed", "true");
}

// --- ringtone (WebAudio) -------------------------------------------------------------------------

function startRingtone() {
  try {
    const ctx = new AudioContext();
    const gain = ctx.createGain();
    gain.gain.value = 0;
    gain.connect(ctx.destination);
    for (const f of [440, 480]) {
      const osc = ctx.createOscillator();
      osc.frequency.value = f;
      osc.connect(gain);
      osc.start();
    }
    let on = false;
    const iv = setInterval(() => { on = !on; gain.gain.setTargetAtTime(on ? 0.15 : 0, ctx.currentTime, 0.02); }, 1000);
    state.ring = { ctx, iv };
  } catch { state.ring = null; }
}

function stopIncoming() {
  state.incoming = null;
  if ($("incoming")) $("incoming").hidden = true;
  if (state.ring) { clearInterval(state.ring.iv); state.ring.ctx.close(); state.ring = null; }
}

// --- lists -------------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

async function loadContacts() {
  let contacts;
  try { contacts = (await api("/api/contacts")).contacts; } catch { return; }
  const ul = $("contacts");
  if (state.stopped || !ul) return; // the view went away while the request was in flight
  $("add-person-contacts").replaceChildren(...contacts.map((c) => el("option", { value: c.address })));
  ul.replaceChildren(...contacts.map((c) => el("li", { "data-address": c.address, "data-presence": c.presence },
    el("span", { class: `presence ${c.presence}`, title: c.presence.replace("_", " ") }),
    el("span", { class: "name" }, c.display_name ? `${c.display_name} <${c.address}>` : c.address),
    el("button", { type: "button", class: "call-audio", onclick: () => placeCall(c.address, "audio") }, "Call"),
    el("button", { type: "button", class: "call-video", onclick: () => placeCall(c.address, "video") }, "Video"))));
}

function fmtDuration(s) {
  s = Math.round(s);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

async function loadHistory() {
  let calls;
  try { calls = (await api("/api/calls/history?limit=50")).calls; } catch { return; }
  if (state.stopped || !$("history")) return;
  const label = (c) => c.missed ? "missed" : c.outcome === "answered" ? fmtDuration(c.duration) : c.outcome;
  $("history").replaceChildren(...calls.map((c) => el("li", {
      class: c.missed ? "missed" : c.outcome, "data-call-id": c.call_id, "data-outcome": c.outcome },
    el("span", { class: "when" }, new Date(c.started_at * 1000).toLocaleString()),
    el("span", { class: "dir" }, c.direction === "outgoing" ? "→" : "←"),
    el("span", { class: "peer" }, c.peer),
    el("span", { class: "badge" }, label(c) + (c.voicemail ? " · voicemail" : "")))));
}

// --- stats (also read by the browser tests) ---------------------------------------------------------

async function stats() {
  const call = state.call;
  if (!call || !call.pc) return null;
  const out = { connectionState: call.pc.connectionState, iceConnectionState: call.pc.iceConnectionState,
                inbound: {}, outbound: {} };
  (await call.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp") out.inbound[r.kind] = (out.inbound[r.kind] || 0) + (r.bytesReceived || 0);
    if (r.type === "outbound-rtp") out.outbound[r.kind] = (out.outbound[r.kind] || 0) + (r.bytesSent || 0);
  });
  return out;
}

// --- start / stop ---------------------------------------------------------------------------------

export function startCalls(me) {
  if (!state.stopped) return;
  state.stopped = false;
  state.me = me;
  $("btn-accept").addEventListener("click", accept);
  $("btn-decline").addEventListener("click", decline);
  $("btn-hangup").addEventListener("click", hangup);
  $("btn-mute").addEventListener("click", (ev) => toggle(ev.currentTarget, "audio"));
  $("btn-camera").addEventListener("click", (ev) => toggle(ev.currentTarget, "video"));
  $("btn-screen").addEventListener("click", shareScreen);
  $("btn-add-person").addEventListener("click", () => {
    $("add-person").hidden = !$("add-person").hidden;
    if (!$("add-person").hidden) $("add-person-address").focus();
  });
  $("add-person").addEventListener("submit", addPerson);
  connect();
  refreshIce();
  state.intervals.push(setInterval(() => { if (Date.now() >= state.iceUntil - 120000) refreshIce(); }, 30000));
  loadContacts();
  loadHistory();
  state.intervals.push(setInterval(loadContacts, 5000));
}

export function stopCalls() {
  if (state.stopped) return;
  state.stopped = true;
  if (state.call) hangup();
  stopIncoming();
  state.intervals.splice(0).forEach(clearInterval);
  if (state.ws) state.ws.close();
  state.ws = null;
}
