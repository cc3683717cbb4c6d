// End-to-end encrypted meetings: one encoded media frame in, one encrypted frame out (and back).
// The Python reference of the same format is suite/voip/e2ee_frames.py; docs/ARCHITECTURE.md
// ("Meetings", E2EE) describes it. The SFU forwards these frames without being able to read them.
//
//   frame = clear[n] | AES-256-GCM(key, iv, plaintext = rest, aad = clear) (ciphertext + 16-byte tag) | iv[12] | n
//
// The first n bytes stay in clear, as Jitsi's e2ee does, so that packetizers and depacketizers
// that look at them still work: the VP8 payload header (10 bytes of a keyframe: frame tag, start
// code, size; 3 of a delta frame) and the Opus TOC byte (1). They are authenticated (AAD).
// The IV is random per frame (96 bits from crypto.getRandomValues): senders need no shared counter.
// The frame key comes from the 32 random bytes of the link's fragment (#k=...) through HKDF-SHA-256.

export const KEY_BYTES = 32;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
export const CLEAR_BYTES = { key: 10, delta: 3, audio: 1 };
const SALT = new TextEncoder().encode("suite meeting e2ee v1");
const INFO = new TextEncoder().encode("frame key");
const TRAILER = IV_BYTES + 1;

export function newRoomKey() {
  return crypto.getRandomValues(new Uint8Array(KEY_BYTES));
}

export function keyToText(raw) {
  let s = "";
  for (const b of raw) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// The key of a link's fragment ("#k=<base64url>"), or null when it has none (or a malformed one).
export function keyFromFragment(hash) {
  const m = /(?:^#|&)k=([A-Za-z0-9_-]{43})(?:&|$)/.exec(hash || "");
  if (!m) return null;
  const bin = atob(m[1].replace(/-/g, "+").replace(/_/g, "/") + "=");
  const raw = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) raw[i] = bin.charCodeAt(i);
  return raw.length === KEY_BYTES ? raw : null;
}

export async function deriveFrameKey(raw) {
  const base = await crypto.subtle.importKey("raw", raw, "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt: SALT, info: INFO }, base,
    { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

// How many leading bytes of a frame stay in clear: kind is "audio" or "video", type the encoded
// frame's type ("key" / "delta"; audio frames have none).
export function clearBytes(kind, type) {
  if (kind === "audio") return CLEAR_BYTES.audio;
  return type === "key" ? CLEAR_BYTES.key : CLEAR_BYTES.delta;
}

export async function encryptFrame(key, data, clear) {
  const n = Math.min(clear, data.length, 255);
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const head = data.subarray(0, n);
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: head }, key,
    data.subarray(n)));
  const out = new Uint8Array(n + sealed.length + TRAILER);
  out.set(head, 0);
  out.set(sealed, n);
  out.set(iv, n + sealed.length);
  out[out.length - 1] = n;
  return out;
}

// The plaintext frame, or null when the frame is not ours or not for this key (wrong key, changed byte).
export async function decryptFrame(key, data) {
  if (data.length < TAG_BYTES + TRAILER) return null;
  const n = data[data.length - 1];
  if (n + TAG_BYTES + TRAILER > data.length) return null;
  const iv = data.subarray(data.length - TRAILER, data.length - 1);
  const head = data.subarray(0, n);
  let plain;
  try {
    plain = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: head }, key,
      data.subarray(n, data.length - TRAILER)));
  } catch {
    return null;
  }
  const out = new Uint8Array(n + plain.length);
  out.set(head, 0);
  out.set(plain, n);
  return out;
}
