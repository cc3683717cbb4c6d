// Resumable uploads with tus-js-client against /api/tus/: a queue (two at a time), progress per file and
// in total, pause/resume, and resume after a reload (tus-js-client's URL storage in localStorage: the
// same file picked or dropped again continues where the server stopped).
import * as tus from "tus-js-client";
import { session } from "./api.js";
import { Observable } from "./store.js";

export const ENDPOINT = "/api/tus/";
const PARALLEL = 2;
// A picked file goes in one PATCH, as `curl -T` would: no idle fsync + commit between chunks, and a
// cut costs nothing (the server keeps and acknowledges what arrived before it; HEAD says where to go on).
// Encrypted uploads make each chunk in memory (plaintext + ciphertext), so theirs are 32 MiB: against 16,
// half the workers, PATCHes and fsyncs per GiB, 0.5-1 CPU-s/GiB less in Chromium and +210 MiB over idle
// instead of +120 for 1 GiB; 64 MiB went over 400 (bench/files/browser.py, bench/README.md).
const CHUNK = Infinity;
export const CHUNK_ENCRYPTED = 32 * 1024 * 1024;
// Progress repaints at most this often (XHR reports far more often; each repaint is a render + layout).
const PROGRESS_MS = 250;

// The byte source of a picked file: the File itself when the whole of it is sent (Chromium then sends
// the file from disk in the network process, at half the CPU of a Blob slice, which the browser process
// streams through a data pipe); a slice when resuming from an offset.
const wholeFileReader = {
  openFile: async (file) => ({
    size: file.size,
    slice: async (start, end) => ({
      value: start === 0 && end >= file.size ? file : file.slice(start, end),
      done: end >= file.size,
    }),
    close() {},
  }),
};

// [{id, name, folder, size, sent, state: queued|uploading|paused|done|error, error, encrypted}]
export const uploads = new Observable([]);
let seq = 0;
const live = new Map(); // id -> {upload, job}
const listeners = new Set(); // called with (job, fileInfo) when one finishes

export function onUploaded(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function patch(id, fields) {
  uploads.update((list) => list.map((u) => (u.id === id ? { ...u, ...fields } : u)));
}

export function totals(list = uploads.get()) {
  const active = list.filter((u) => u.state !== "error");
  const size = active.reduce((a, u) => a + u.size, 0);
  const sent = active.reduce((a, u) => a + u.sent, 0);
  return { size, sent, count: active.length, done: active.filter((u) => u.state === "done").length };
}

// The same file (name, place, size, date) maps to the same stored upload URL.
const fingerprint = (file, options) =>
  Promise.resolve(["suite", options.metadata.folder, options.metadata.filename, file.size, file.lastModified].join("|"));

// Queue files: [{file, folder}] where folder is the destination path ("/a/b").
// source: an encrypted upload (e2ee-upload.js: its file reader and PATCH sender; made for CHUNK_ENCRYPTED),
// no resume across reloads.
export function enqueue(items, opts = {}) {
  const jobs = items.map(({ file, folder, source, name, type }) => ({
    id: ++seq, file, folder, source, name: name || file.name, type: type ?? file.type,
    size: source ? source.size : file.size, sent: 0, state: "queued", error: "", encrypted: !!source,
  }));
  uploads.update((list) => [...list, ...jobs.map(({ file, source, ...rest }) => rest)]);
  for (const j of jobs) live.set(j.id, { job: j, upload: null, resolve: null });
  pump();
  return Promise.all(jobs.map((j) => new Promise((resolve) => { live.get(j.id).resolve = resolve; })));
}

// At most one encrypted upload runs at a time: each holds up to two CHUNK_ENCRYPTED chunks (plaintext and
// ciphertext) in the browser, so two at once would double that (+210 MiB over idle for one).
function pump() {
  const list = uploads.get();
  const active = list.filter((u) => u.state === "uploading");
  let running = active.length;
  let encrypting = active.some((u) => u.encrypted);
  for (const u of list) {
    if (running >= PARALLEL) break;
    if (u.state !== "queued" || (u.encrypted && encrypting)) continue;
    start(u.id);
    running++;
    encrypting = encrypting || u.encrypted;
  }
}

async function start(id) {
  const entry = live.get(id);
  if (!entry) return;
  const { job } = entry;
  patch(id, { state: "uploading", error: "" });
  if (entry.upload) { entry.upload.start(); return; } // resumed after a pause: HEAD, then on from the offset
  let shown = -Infinity; // when the progress was last shown
  const upload = new tus.Upload(job.source ? new Blob([]) : job.file, {
    endpoint: ENDPOINT,
    chunkSize: job.source ? CHUNK_ENCRYPTED : CHUNK,
    retryDelays: [0, 1000, 3000, 5000],
    metadata: { filename: job.name, folder: job.folder, filetype: job.type || "application/octet-stream" },
    headers: { "X-CSRF-Token": session.csrf || "" },
    fingerprint,
    storeFingerprintForResuming: !job.source,
    removeFingerprintOnSuccess: true,
    ...(job.source
      ? { fileReader: job.source.fileReader, httpStack: job.source.httpStack, uploadSize: job.source.size }
      : { fileReader: wholeFileReader }),
    onProgress: (sent) => {
      const now = performance.now();
      if (now - shown < PROGRESS_MS) return;
      shown = now;
      patch(id, { sent });
    },
    onError: (err) => {
      const body = err.originalResponse && err.originalResponse.getBody && err.originalResponse.getBody();
      let msg = err.message;
      try { msg = JSON.parse(body).message || msg; } catch { /* not JSON */ }
      patch(id, { state: "error", error: msg.split("\n")[0] });
      finish(id, null, true); // kept: "Resume" tries again from the server's offset
    },
    onSuccess: () => {
      patch(id, { state: "done", sent: job.size });
      finish(id, { name: job.name, folder: job.folder, url: upload.url });
    },
  });
  entry.upload = upload;
  if (!job.source) {
    const previous = await upload.findPreviousUploads();
    if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
  }
  upload.start();
}

function finish(id, result, keep = false) {
  const entry = live.get(id);
  if (entry && entry.resolve) { entry.resolve(result); entry.resolve = null; }
  if (!keep) live.delete(id);
  if (result) for (const fn of listeners) fn(result);
  pump();
}

export function pause(id) {
  const e = live.get(id);
  if (e && e.upload) { e.upload.abort(); patch(id, { state: "paused" }); pump(); }
}

export function resume(id) {
  const e = live.get(id);
  if (!e) return;
  patch(id, { state: "queued" });
  pump();
}

export function cancel(id) {
  const e = live.get(id);
  if (e && e.upload) e.upload.abort(true).catch(() => {});
  if (e && e.job.source) e.job.source.close();
  if (e) finish(id, null);
  uploads.update((list) => list.filter((u) => u.id !== id));
}

export function clearFinished() {
  uploads.update((list) => list.filter((u) => u.state !== "done" && u.state !== "error"));
}

// Uploads a previous page started and did not finish: [{name, folder, size}] (to pick again).
export async function unfinished() {
  const all = await tus.defaultOptions.urlStorage.findAllUploads().catch(() => []);
  return all
    .filter((u) => String(u.urlStorageKey || "").includes("suite|"))
    .map((u) => ({ name: u.metadata && u.metadata.filename, folder: u.metadata && u.metadata.folder, size: u.size, key: u.urlStorageKey }));
}

export async function forget(key) {
  await tus.defaultOptions.urlStorage.removeUpload(key);
}
