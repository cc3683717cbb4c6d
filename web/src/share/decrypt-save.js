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
//  2. Otherwise Blob parts: plaintext is gathered in 8 MiB Blobs, one Blob of them is saved at the end.
//     The page holds at most one 8 MiB batch in its own heap; the parts live in the browser's blob
//     storage, which Chromium pages out to disk past its in-memory limit, so a 2 GB file does not need
//     2 GB of page memory. Nothing is offered for saving unless every record authenticated.
import { decryptStream } from "../lib/crypto-format.js";

const FSA_MIN = 256 * 1024 * 1024;
const BATCH = 8 * 1024 * 1024;

export async function saveDecrypted({ url, headers, key, meta, total, onProgress }) {
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
  const sw = await serviceWorkerSink(meta).catch(() => null);
  if (sw) return sw(plain);
  if (typeof window.showSaveFilePicker === "function" && meta.size >= FSA_MIN) {
    let handle = null;
    try { handle = await window.showSaveFilePicker({ suggestedName: meta.name }); } catch { handle = null; }
    if (handle) {
      const writable = await handle.createWritable();
      await plain.pipeTo(writable); // aborts the writable (discarding the file) on a decryption error
      return "written to disk";
    }
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
  const ready = new Promise((resolve) => { ch.port1.onmessage = (e) => resolve(e.data === "ready"); });
  reg.active.postMessage({ id, name: meta.name, size: meta.size }, [ch.port2]);
  if (!(await Promise.race([ready, new Promise((r) => setTimeout(() => r(false), 5000))]))) return null;
  return (plain) => new Promise((resolve, reject) => {
    const reader = plain.getReader();
    ch.port1.onmessage = async ({ data }) => {
      if (data === "cancel") { reader.cancel(); reject(new Error("The download was cancelled.")); return; }
      if (data !== "pull") return;
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
    const frame = document.createElement("iframe");
    frame.hidden = true;
    frame.src = `/p/_dl/${id}`;
    document.body.appendChild(frame);
  });
}
