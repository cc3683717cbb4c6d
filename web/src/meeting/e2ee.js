// The page side of end-to-end encrypted meetings: starts the frame encryptor worker
// (e2ee-worker.js, bundled, served from our origin), gives it the room key and hooks it into each
// sender (encrypt) and receiver (decrypt) through RTCRtpScriptTransform, or Chromium's
// createEncodedStreams() where that is all there is. The key lives in the link's fragment
// (#k=...), which browsers never send to the server.

export function e2eeSupported() {
  return typeof RTCRtpScriptTransform !== "undefined"
    || (typeof RTCRtpSender !== "undefined" && "createEncodedStreams" in RTCRtpSender.prototype);
}

export class FrameCrypto {
  constructor(raw) {
    const url = document.querySelector('meta[name="suite-e2ee-worker"]')?.content;
    if (!url) throw new Error("the frame encryptor is missing from this build");
    this.worker = new Worker(url, { type: "module", name: "meeting-e2ee" });
    this.worker.postMessage({ type: "key", raw });
    this.script = typeof RTCRtpScriptTransform !== "undefined";
    this.pending = new Map();
    this.seq = 0;
    this.worker.onmessage = (ev) => {
      const done = this.pending.get(ev.data.id);
      if (done) { this.pending.delete(ev.data.id); done(ev.data); }
    };
  }

  // Extra RTCPeerConnection configuration (createEncodedStreams needs it at construction).
  pcConfig() { return this.script ? {} : { encodedInsertableStreams: true }; }

  // endpoint: an RTCRtpSender (op "encrypt") or RTCRtpReceiver (op "decrypt"); kind "audio"/"video".
  attach(endpoint, op, kind) {
    if (this.script) {
      endpoint.transform = new RTCRtpScriptTransform(this.worker, { op, kind });
      return;
    }
    const { readable, writable } = endpoint.createEncodedStreams();
    this.worker.postMessage({ type: "streams", op, kind, readable, writable }, [readable, writable]);
  }

  // {encrypted, decrypted, failed} frame counts of this page (for getStats-like checks).
  counts() {
    return new Promise((resolve) => {
      const id = ++this.seq;
      this.pending.set(id, resolve);
      this.worker.postMessage({ type: "stats", id });
      setTimeout(() => { if (this.pending.delete(id)) resolve(null); }, 2000);
    });
  }

  close() { this.worker.terminate(); }
}
