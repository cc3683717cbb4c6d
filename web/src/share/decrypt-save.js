// Download an encrypted link's ciphertext and save the plaintext, decrypting while it arrives:
// fetch body reader → TransformStream (decryptStream) → a sink.
//
// Sinks, in order of preference:
//  0. A Service Worker stream (/p/sw.js, scope /p/): a hidden frame navigates to /p/_dl/<id>, the worker
//     answers with a ReadableStream that pulls one decrypted chunk at a time from this page, and the
//     browser saves it as a download. Memory: a few records whatever the size. A refused record errors
//     the stream: the browser marks the download failed and drops the partial file.
//  1. File System Access API (showSaveFilePicker, Chromium desktop) for files over FSA_MIN: plaintext
//     records are written to the chosen file as they are decrypted; memory is bounded by the stream
//     queues (a few 64 KiB records) whatever the size. A refused record aborts the writable, so the
//     partial file is discarded.
//  2. Otherwise Blob parts, for files up to BLOB_MAX only: plaintext is gathered in 8 MiB Blobs, one
//     Blob of them is saved at the end. The whole file sits in the browser's memory until it is saved
//     (measured: +1 GiB of PSS for a 1 GiB file), so a bigger file is refused *before* anything is
//     downloaded, with a message saying how to get it (BlobFallbackTooLarge). Nothing is offered for
//     saving unless every record authenticated.
import { decryptStream } from "../lib/crypto-format.js";

const FSA_MIN = 256 * 1024 * 1024;
const BATCH = 8 * 1024 * 1024;
export const BLOB_MAX = 256 * 1024 * 1024; // docs/ENCRYPTED-LINKS.md: the largest file the Blob fallback takes

export class BlobFallbackTooLarge extends Error {}

export async function saveDecrypted({ url, headers, key, meta, total, onProgress }) {
  // The sink is chosen before the download starts: a file the only sink left cannot take in bounded
  // memory is refused without fetching a byte.
  const sw = await serviceWorkerSink(meta).catch(() => null);
  const fsa = !sw && typeof window.showSaveFilePicker === "function" && meta.size >= FSA_MIN;
  let handle = null;
  if (fsa) {
    try { handle = await window.showSaveFilePicker({ suggestedName: meta.name }); } catch { handle = null; }
  }
  if (!sw && !handle && meta.size > BLOB_MAX) {
    throw new BlobFallbackTooLarge(
      `This browser cannot save a file this big (${Math.round(meta.size / 2 ** 20)} MiB) while decrypting it: ` +
      `without a Service Worker (e.g. in a private window) it would have to hold the whole file in memory, ` +
      `and it takes at most ${BLOB_MAX / 2 ** 20} MiB that way. Open the link in a normal window of ` +
      `Chromium, Firefox or Safari.`);
  }
  const res = await fetch(url, { headers, credentials: "omit" });
  if (!res.ok) {
    const e = new Error(res.status === 410 ? "This link has expired or has been used up." : `The download failed (${res.status}).`);
    e.status = res.status;
    throw e;
  }
  let seen = 0;
  const counted = res.body.pipeThrough(new TransformStream({
    transform(chunk, c) { seen += chunk.length; onProgress(seen); c.enqueue(chunk); },
  }));
  const plain = counted.pipeThrough(decryptStream(key));
  if (sw) return sw(plain);
  if (handle) {
    const writable = await handle.createWritable();
    await plain.pipeTo(writable); // aborts the writable (discarding the file) on a decryption error
    return "written to disk";
  }
  const parts = [];
  let batch = [], size = 0;
  const reader = plain.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    batch.push(value);
    size += value.length;
    if (size >= BATCH) { parts.push(new Blob(batch)); batch = []; size = 0; }
  }
  if (batch.length) parts.push(new Blob(batch));
  const blob = new Blob(parts, { type: meta.type || "application/octet-stream" });
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = meta.name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 120000);
  return "saved through the browser";
}

async function serviceWorkerSink(meta) {
  if (!("serviceWorker" in navigator)) return null;
  const reg = await Promise.race([
    navigator.serviceWorker.register("/p/sw.js", { scope: "/p/" }).then(() => navigator.serviceWorker.ready),
    new Promise((resolve) => setTimeout(() => resolve(null), 5000)),
  ]);
  if (!reg || !reg.active) return null;
  const id = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  const ch = new MessageChannel();
  // The worker's stream asks for its first chunk ("pull") right after "ready", possibly before the
  // page has its plaintext stream (the page fetches in between): pulls and a cancel that come early
  // are kept until the sink starts, so none is lost (a lost pull would stall the download).
  let early = 0, cancelled = false, onPull = null, onCancel = null;
  let readyResolve;
  const ready = new Promise((resolve) => { readyResolve = resolve; });
  ch.port1.onmessage = ({ data }) => {
    if (data === "ready") readyResolve(true);
    else if (data === "pull") { if (onPull) onPull(); else early++; }
    else if (data === "cancel") { if (onCancel) onCancel(); else cancelled = true; }
  };
  reg.active.postMessage({ id, name: meta.name, size: meta.size }, [ch.port2]);
  if (!(await Promise.race([ready, new Promise((r) => setTimeout(() => r(false), 5000))]))) return null;
  return (plain) => new Promise((resolve, reject) => {
    const reader = plain.getReader();
    onCancel = () => { reader.cancel(); reject(new Error("The download was cancelled.")); };
    onPull = async () => {
      try {
        const { value, done } = await reader.read();
        if (done) { ch.port1.postMessage({ done: true }); resolve("streamed to the browser's downloads"); return; }
        const buf = value.byteOffset === 0 && value.byteLength === value.buffer.byteLength ? value.buffer : value.slice().buffer;
        ch.port1.postMessage({ chunk: buf }, [buf]);
      } catch (err) {
        ch.port1.postMessage({ error: err.message });
        reject(err);
      }
    };
    if (cancelled) { onCancel(); return; }
    for (; early > 0; early--) onPull();
    const frame = document.createElement("iframe");
    frame.hidden = true;
    frame.src = `/p/_dl/${id}`;
    document.body.appendChild(frame);
  });
}
