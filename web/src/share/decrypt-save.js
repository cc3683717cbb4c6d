// Download an encrypted link's ciphertext and save the plaintext, decrypting while it arrives:
// fetch body reader → TransformStream (decryptStream) → a sink.
//
// Sinks, in order of preference:
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
