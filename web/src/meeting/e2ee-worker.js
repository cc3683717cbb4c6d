// The frame encryptor of end-to-end encrypted meetings, a dedicated worker served from our own
// origin (CSP worker-src 'self'). The page hands it the room key ({type: "key", raw}) and the
// encoded-frame streams of each sender (encrypt) and receiver (decrypt), either through
// RTCRtpScriptTransform (the "rtctransform" event) or as streams from createEncodedStreams().
// A frame that does not decrypt is dropped: the decoder never sees ciphertext.
import { clearBytes, decryptFrame, deriveFrameKey, encryptFrame } from "../lib/frame-crypto.js";

let key = null;
let keyReady = null;
const counts = { encrypted: 0, decrypted: 0, failed: 0 };

function setKey(raw) {
  keyReady = deriveFrameKey(raw).then((k) => { key = k; });
}

function transformer(op, kind) {
  return new TransformStream({
    async transform(frame, controller) {
      if (!key) await keyReady;
      if (!key) return; // no key yet: nothing leaves or enters in clear
      const data = new Uint8Array(frame.data);
      if (op === "encrypt") {
        const out = await encryptFrame(key, data, clearBytes(kind, frame.type));
        frame.data = out.buffer;
        counts.encrypted += 1;
        controller.enqueue(frame);
        return;
      }
      if (data.length === 0) return;
      const plain = await decryptFrame(key, data);
      if (plain === null) {
        counts.failed += 1;
        return;
      }
      frame.data = plain.buffer;
      counts.decrypted += 1;
      controller.enqueue(frame);
    },
  });
}

function pipe(readable, writable, op, kind) {
  readable.pipeThrough(transformer(op, kind)).pipeTo(writable).catch(() => {});
}

self.onrtctransform = (ev) => {
  const t = ev.transformer;
  pipe(t.readable, t.writable, t.options.op, t.options.kind);
};

self.onmessage = (ev) => {
  const m = ev.data;
  if (m.type === "key") setKey(m.raw);
  else if (m.type === "streams") pipe(m.readable, m.writable, m.op, m.kind);
  else if (m.type === "stats") self.postMessage({ type: "stats", id: m.id, ...counts });
};
