// The encrypted upload's worker (bundled on its own, served from our origin; started by
// e2ee-upload.js): it reads the plaintext, encrypts the records of one tus chunk into a Blob and sends
// that Blob as the PATCH itself — while one chunk is on the wire the next one is already being made.
// The page never holds a chunk: its Blob lives in this worker's heap only, and the page ends the worker
// once its chunk is sent, which releases everything it made at once (a Blob's bytes sit in the browser
// process until the heap that made it lets go of it, and a garbage collector does not see them).
import { ciphertextRange } from "./crypto-format.js";

let job = null; // {file, header, keys, exp}
let ready = null; // {start, end, blob: Promise<Blob>}: the chunk made ahead
const live = new Map(); // id -> XMLHttpRequest

function make(start, end) {
  const p = ciphertextRange(job.file, job.header, job.keys, job.exp, start, end).then((parts) => new Blob(parts));
  p.catch(() => {}); // a chunk made ahead and never asked for
  return p;
}

function chunk(start, end) {
  const r = ready;
  ready = null;
  return r && r.start === start && r.end === end ? r.blob : make(start, end);
}

async function send({ id, url, headers, start, end, next }) {
  let blob;
  try {
    blob = await chunk(start, end);
  } catch (e) {
    postMessage({ id, type: "error", message: `could not read or encrypt the file: ${e.message || e}` });
    return;
  }
  if (next) ready = { start: next[0], end: next[1], blob: make(next[0], next[1]) };
  const xhr = new XMLHttpRequest();
  live.set(id, xhr);
  xhr.open("PATCH", url, true);
  for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) postMessage({ id, type: "progress", loaded: e.loaded }); };
  xhr.onload = () => {
    live.delete(id);
    postMessage({ id, type: "done", status: xhr.status, headers: xhr.getAllResponseHeaders(), body: xhr.responseText });
  };
  xhr.onerror = () => { live.delete(id); postMessage({ id, type: "error", message: "network error" }); };
  xhr.send(blob);
}

onmessage = (ev) => {
  const m = ev.data;
  if (m.type === "init") job = m.job;
  else if (m.type === "prepare") ready = { start: m.start, end: m.end, blob: make(m.start, m.end) };
  else if (m.type === "send") send(m);
  else if (m.type === "abort") { const x = live.get(m.id); if (x) { live.delete(m.id); x.abort(); } }
};
