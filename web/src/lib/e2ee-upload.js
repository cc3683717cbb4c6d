// Encrypted uploads (docs/ENCRYPTED-LINKS.md) through tus-js-client, with the bytes made and sent by
// workers (e2ee-upload-worker.js). tus-js-client still runs the protocol (creation, offsets, retries,
// pause/resume, progress); what it gets from the file source is only a ticket {start, end, size}, and
// this module's httpStack hands each PATCH with its ticket to a worker, which reads, encrypts, makes the
// chunk's Blob and sends it, then makes the next chunk while this one is on the wire.
//
// Memory: a Blob made by a page keeps its bytes in the browser process until that page's garbage
// collector frees the small Blob object — it does not see the bytes, so chunk after chunk piled up
// (bench/files/browser.py: +300-420 MiB over idle for 1 GiB). Each worker sends CHUNKS_PER_WORKER chunks
// and is then ended, which frees its Blobs and buffers at once (1 GiB: +117-147 MiB with 16 MiB chunks,
// +205-219 with 32 MiB; two workers alive: the one sending, the one making the next chunk). Measured without DevTools attached (bench/files/cdp.py;
// under Playwright an ArrayBuffer body is copied into the protocol and crawls at 2 MB/s), an ArrayBuffer
// or Uint8Array body instead of the Blob moves the copying rather than saving it: the browser process
// -1.3 CPU-s/GiB, the renderer +1.0, the network service +0.5, 10-20 % fewer MB/s and +30-80 MiB; and a
// chunk written to the origin-private file system and sent as its File cost more (browser process +0.5-1).
import * as tus from "tus-js-client";
import { makeHeader, recordCount, DEFAULT_RECORD_EXP, TAG } from "./crypto-format.js";

const CHUNKS_PER_WORKER = 1;
const plainStack = new tus.DefaultHttpStack();

function parseHeaders(text) {
  const h = new Map();
  for (const line of text.trim().split(/[\r\n]+/)) {
    const i = line.indexOf(":");
    if (i > 0) h.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return h;
}

class WorkerResponse {
  constructor(m) { this.m = m; this.h = parseHeaders(m.headers || ""); }
  getStatus() { return this.m.status; }
  getHeader(name) { return this.h.get(name.toLowerCase()) ?? null; }
  getBody() { return this.m.body; }
  getUnderlyingObject() { return null; }
}

// For tus.Upload: {size, fileReader, httpStack, close}; chunkSize must be the Upload's chunkSize.
export async function encryptedUpload(file, key, chunkSize, exp = DEFAULT_RECORD_EXP) {
  const workerUrl = document.querySelector('meta[name="suite-e2ee-upload-worker"]')?.content;
  if (!workerUrl) throw new Error("The encrypting uploader is missing from this build.");
  const { header, keys } = await makeHeader(key, { name: file.name, type: file.type, size: file.size }, exp);
  const size = header.length + file.size + TAG * recordCount(file.size, exp);
  const job = { file, header, keys: { content: keys.content, nonce: keys.nonce }, exp };
  const span = chunkSize * CHUNKS_PER_WORKER;
  const workers = new Map(); // group (start / span) -> {worker, handlers: Map(id -> fn)}
  let seq = 0;

  function worker(g) {
    let w = workers.get(g);
    if (!w) {
      const ww = new Worker(workerUrl, { type: "module", name: "e2ee-upload" });
      w = { worker: ww, handlers: new Map() };
      const me = w;
      ww.onmessage = (ev) => { const h = me.handlers.get(ev.data.id); if (h) h(ev.data); };
      ww.onerror = (ev) => {
        for (const h of [...me.handlers.values()]) h({ type: "error", message: ev.message || "the encrypting worker failed" });
      };
      ww.postMessage({ type: "init", job });
      workers.set(g, w);
    }
    return w;
  }
  function retire(below) {
    for (const [g, w] of workers) if (g < below) { w.worker.terminate(); workers.delete(g); }
  }

  class PatchRequest {
    constructor(url) { this.url = url; this.headers = {}; this.progress = () => {}; this.sent = null; }
    getMethod() { return "PATCH"; }
    getURL() { return this.url; }
    setHeader(k, v) { this.headers[k] = v; }
    getHeader(k) { return this.headers[k]; }
    setProgressHandler(fn) { this.progress = fn; }
    getUnderlyingObject() { return null; }
    abort() {
      if (this.sent) this.sent.w.worker.postMessage({ type: "abort", id: this.sent.id });
      return Promise.resolve();
    }
    send(ticket) {
      const { start, end } = ticket;
      const g = Math.floor(start / span);
      retire(g); // chunks before this one are all sent: their workers (and Blobs) go
      const w = worker(g);
      const id = ++seq;
      this.sent = { w, id };
      const next = end < size ? [end, Math.min(size, end + chunkSize)] : null;
      const ng = next && Math.floor(next[0] / span);
      return new Promise((resolve, reject) => {
        w.handlers.set(id, (m) => {
          if (m.type === "progress") { this.progress(m.loaded); return; }
          w.handlers.delete(id);
          if (m.type === "done") resolve(new WorkerResponse(m));
          else reject(new Error(m.message));
        });
        const url = new URL(this.url, location.href).href;
        w.worker.postMessage({ type: "send", id, url, headers: this.headers, start, end, next: ng === g ? next : null });
        if (next && ng !== g) worker(ng).worker.postMessage({ type: "prepare", start: next[0], end: next[1] });
      });
    }
  }

  const source = {
    size,
    async slice(start, end) {
      end = Math.min(end, size);
      return { value: { start, end, size: end - start }, done: end >= size }; // tus-js-client reads value.size
    },
    close() { retire(Infinity); },
  };
  return {
    size,
    fileReader: { openFile: async () => source },
    httpStack: {
      createRequest: (method, url) => (method === "PATCH" ? new PatchRequest(url) : plainStack.createRequest(method, url)),
      getName: () => "SuiteEncryptedUploadStack",
    },
    close: () => source.close(),
  };
}
